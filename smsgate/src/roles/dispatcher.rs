//! The dispatcher role: accepted SMS → the configured provider (see the `dispatcher` crate).
//!
//! Runs the consumer group `dispatcher` on the shared engine (`dispatcher::Deliver`), and beside
//! it the retry schedule and the client callbacks. Its public routes, `GET /api/sms/{id}` and
//! Twilio's receipts, are served wherever the public API is (`serve`, `ingest`) and by the
//! `dispatcher` process itself.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use dispatcher::callbacks::{CallbackConfig, CallbackSender};
use dispatcher::http::{DeliveryApi, TWILIO_STATUS_PATH, TwilioReceipts};
use dispatcher::log::LogProvider;
use dispatcher::smpp::{Concatenation, ReceiptBook, SmppConfig, SmppProvider, SmppUrl};
use dispatcher::twilio::{Sender, TwilioConfig, TwilioProvider};
use dispatcher::{Deliver, Dispatcher, DispatcherConfig, Provider};
use eventlog::{Consumer, ConsumerConfig};
use fred::clients::Pool;
use limiter::delivery::DeliveryStore;

use super::{RoleContext, RoleParts, consumer_name, release_consumer_name};
use crate::cli::{DeliverySettings, Settings, given};

/// The provider `settings` name, checked for the variables it needs. The `smpp` provider's
/// session runs among `ctx`'s tasks and unbinds on its shutdown.
pub fn provider(
    settings: &DeliverySettings,
    ctx: &RoleContext,
) -> anyhow::Result<Arc<dyn Provider>> {
    match settings.provider.as_str() {
        "smpp" => {
            let url = given(&settings.smpp_url).context(
                "SMSGATE_PROVIDER=smpp needs SMPP_URL (smpp://system_id:password@host:port)",
            )?;
            let url = SmppUrl::parse(url)?;
            let mut config = SmppConfig::new(url);
            config.window =
                usize::try_from(settings.smpp_window).unwrap_or(SmppConfig::DEFAULT_WINDOW);
            config.from = given(&settings.smpp_from).cloned().unwrap_or_default();
            config.concatenation = settings
                .smpp_concatenation
                .parse::<Concatenation>()
                .map_err(anyhow::Error::msg)?;
            config.enquire_link = settings.smpp_enquire_link;
            let book =
                ReceiptBook::new(ctx.redis.clone(), DeliveryStore::new(ctx.settings.layout()));
            let (provider, session) = SmppProvider::start(config, book, ctx.shutdown.clone());
            ctx.tasks.spawn(async move {
                if let Err(e) = session.await {
                    tracing::error!(error = %e, "SMPP session task failed");
                }
            });
            Ok(provider)
        }
        "twilio" => {
            let sid = given(&settings.twilio_account_sid)
                .cloned()
                .context("SMSGATE_PROVIDER=twilio needs TWILIO_ACCOUNT_SID")?;
            let token = given(&settings.twilio_auth_token)
                .cloned()
                .context("SMSGATE_PROVIDER=twilio needs TWILIO_AUTH_TOKEN")?;
            let sender = match (
                given(&settings.twilio_from),
                given(&settings.twilio_messaging_service_sid),
            ) {
                (_, Some(service)) => Sender::MessagingService(service.clone()),
                (Some(from), None) => Sender::From(from.clone()),
                (None, None) => anyhow::bail!(
                    "SMSGATE_PROVIDER=twilio needs TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID"
                ),
            };
            let status_callback = given(&settings.public_url)
                .map(|url| format!("{}{TWILIO_STATUS_PATH}", url.trim_end_matches('/')));
            let provider = TwilioProvider::new(TwilioConfig {
                account_sid: sid,
                auth_token: token,
                sender,
                base_url: settings.twilio_base_url.clone(),
                status_callback,
                connect_timeout: Duration::from_secs(5),
                timeout: Duration::from_secs(15),
            })?;
            Ok(Arc::new(provider))
        }
        _ => Ok(Arc::new(LogProvider::new(&settings.outbox))),
    }
}

/// The callback sender, when there is anything to sign callbacks with: smsgate's secret for
/// `POST /api/sms`'s, or API clients' tokens for their Twilio-format ones.
fn callbacks(settings: &Settings) -> anyhow::Result<Option<CallbackSender>> {
    let delivery = &settings.delivery;
    let secret = given(&delivery.callback_secret).cloned();
    let api_tokens = settings.api_clients()?.tokens();
    if secret.is_none() && api_tokens.is_empty() {
        return Ok(None);
    }
    Ok(Some(CallbackSender::new(CallbackConfig {
        secret,
        api_tokens: Arc::new(api_tokens),
        allow: delivery.callback_allow.0.clone(),
        timeout: Duration::from_secs(10),
        max_age: Duration::from_secs(86_400),
    })))
}

/// `GET /api/sms/{id}` and `POST /api/providers/twilio/status`.
pub fn public_routes(settings: &Settings, redis: Pool) -> Router {
    let delivery = &settings.delivery;
    let twilio = given(&delivery.twilio_auth_token)
        .cloned()
        .map(|auth_token| TwilioReceipts {
            auth_token,
            public_url: given(&delivery.public_url).cloned(),
        });
    dispatcher::http::router(DeliveryApi {
        redis,
        store: DeliveryStore::new(settings.layout()),
        twilio,
    })
}

pub async fn start(ctx: &RoleContext) -> anyhow::Result<RoleParts> {
    let delivery = &ctx.settings.delivery;
    let provider = provider(delivery, ctx)?;
    dispatcher::telemetry::describe(provider.name());
    metrics::counter!("smsgate_dead_letters_total", "group" => dispatcher::GROUP).increment(0);
    let config = DispatcherConfig {
        ttl: delivery.delivery_ttl,
        lease: delivery.delivery_lease,
        tps: delivery.provider_tps,
        ..DispatcherConfig::default()
    };
    let layout = ctx.settings.layout();
    let dispatcher = Arc::new(Dispatcher::new(
        ctx.redis.clone(),
        layout.clone(),
        provider,
        callbacks(&ctx.settings)?,
        config,
    ));
    tracing::info!(
        provider = dispatcher.provider().name(),
        "dispatcher starting"
    );
    let schedule = dispatcher.clone();
    let shutdown = ctx.shutdown.clone();
    ctx.tasks.spawn(async move {
        schedule
            .run_schedule_until_stopped(Duration::from_millis(200), shutdown)
            .await;
    });
    let (redis, shutdown, lease) = (
        ctx.redis.clone(),
        ctx.shutdown.clone(),
        delivery.delivery_lease,
    );
    ctx.tasks.spawn(async move {
        let Some(name) = consumer_name(&redis, &layout, dispatcher::GROUP, &shutdown).await else {
            return;
        };
        let config = ConsumerConfig {
            // A dead replica's unread decisions are taken over as soon as its claims on
            // messages in flight would be.
            claim_idle: lease,
            ..ConsumerConfig::new(name.name.clone())
        };
        let consumer = Consumer::new(Deliver::new(dispatcher), redis.clone(), layout, config);
        consumer.run_until_stopped(shutdown).await;
        release_consumer_name(&redis, &name).await;
    });
    Ok(RoleParts::default())
}
