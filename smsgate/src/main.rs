//! `smsgate`: parse the command line, start logging, build and run.

use clap::Parser;
use smsgate::app::{App, Roles, stop_signal};
use smsgate::cli::{Cli, Command};
use smsgate::{bench, openapi, replay, roles, telemetry};

/// glibc's allocator spends a tenth of the request path in malloc/free under many threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = cli.worker_threads {
        runtime.worker_threads(usize::from(threads));
    }
    runtime.build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Replay { .. } | Command::Audit { .. } | Command::Openapi => {
            telemetry::init_cli_logging()
        }
        _ => telemetry::init_logging(),
    }
    let (settings, roles) = match cli.command {
        Command::Serve(settings) => (settings, Roles::ALL),
        Command::Ingest(settings) => (settings, Roles::INGEST),
        Command::Projector { settings, rebuild } => {
            if rebuild {
                return roles::projector::rebuild(&settings).await;
            }
            (settings, Roles::PROJECTOR)
        }
        Command::Dispatcher(settings) => (settings, Roles::DISPATCHER),
        Command::Archiver { settings, once } => {
            if once {
                return roles::archiver::run_once(&settings).await;
            }
            (settings, Roles::ARCHIVER)
        }
        Command::Bench(args) => return bench::run(args).await,
        Command::Openapi => {
            println!("{}", openapi::document(Roles::ALL).to_pretty_json()?);
            return Ok(());
        }
        Command::ApiToken {
            api_secret,
            account_sid,
        } => {
            use secrecy::ExposeSecret;
            let secret = api_secret.expose_secret();
            anyhow::ensure!(
                secret.chars().count() >= ingest::api_clients::MIN_SECRET_LEN,
                "SMSGATE_API_SECRET must be at least {} characters",
                ingest::api_clients::MIN_SECRET_LEN
            );
            let (sid, generation) = ingest::api_clients::parse_entry(&account_sid)?;
            println!(
                "{}",
                ingest::api_clients::derive_token(secret, &sid, generation)
            );
            return Ok(());
        }
        Command::Replay { settings, args } => return replay::replay(&settings, &args).await,
        Command::Audit { settings, args } => {
            // diff(1)'s convention, so cron can tell "inconsistent" from "could not check".
            let code = match replay::audit(&settings, &args).await {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(e) => {
                    eprintln!("Error: {e:#}");
                    2
                }
            };
            std::process::exit(code);
        }
    };
    App::build(settings, roles)
        .await?
        .run_until_stopped(stop_signal())
        .await
}
