//! Redis connections as every role wants them: reconnecting forever in the background, never
//! retrying a command (a retried script could decide twice), and bounded by a timeout so a
//! dead Redis turns into a fast error instead of a hung request.
//!
//! `REDIS_URL` names one Redis (`redis://host:port`) or a Redis Cluster, in either of two
//! spellings: `redis-cluster://host:port?node=host:port&node=…` (fred's) or
//! `redis-cluster://host:port,host:port,…`. Any one reachable node is enough; the client
//! discovers the rest with `CLUSTER SLOTS` and follows `MOVED` redirections. After a failover
//! it rediscovers the topology from every node it has ever seen, not only the URL's.

use std::time::Duration;

use fred::clients::{Client, Pool};
use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::config::Server;
use fred::types::config::{ClusterDiscoveryPolicy, Config, ReconnectPolicy, ServerConfig};
use fred::types::{Builder, CustomCommand};

/// How long one command may take before it fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Builds a pool of `size` connections to `url` (`redis://…` or `redis-cluster://…`) and starts
/// connecting. It waits up to `wait` for the first connection but returns either way: until
/// Redis answers, callers see `is_connected() == false` and fail closed.
pub async fn connect(url: &str, size: usize, wait: Duration) -> Result<Pool, fred::error::Error> {
    let mut config = Config::from_url(&cluster_url(url))?;
    if let ServerConfig::Clustered { policy, .. } = &mut config.server {
        // The URL's nodes may be the very ones that died; the last routing table knows the
        // replicas that replaced them.
        *policy = ClusterDiscoveryPolicy::UseCache;
    }
    // Let the reconnect policy also cover the very first connection.
    config.fail_fast = false;
    let pool = Builder::from_config(config)
        .with_connection_config(|c| {
            c.max_command_attempts = 1;
            c.connection_timeout = Duration::from_secs(2);
            c.internal_command_timeout = Duration::from_secs(2);
        })
        .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
        .set_policy(ReconnectPolicy::new_constant(0, 200))
        .build_pool(size.max(1))?;
    pool.connect_pool();
    let _ = tokio::time::timeout(wait, pool.wait_for_connect()).await;
    Ok(pool)
}

/// True when at least one connection of the pool is up.
pub fn is_up(pool: &Pool) -> bool {
    pool.clients().iter().any(|c| c.is_connected())
}

/// Rewrites `redis-cluster://a:1,b:2,c:3?x=y` as fred's `redis-cluster://a:1?node=b:2&node=c:3&x=y`;
/// any other URL is returned as it is.
pub fn cluster_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    if !scheme.ends_with("-cluster") {
        return url.to_owned();
    }
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let mut hosts = hosts.split(',').map(str::trim).filter(|h| !h.is_empty());
    let Some(first) = hosts.next() else {
        return url.to_owned();
    };
    let mut params: Vec<String> = hosts.map(|h| format!("node={h}")).collect();
    params.extend(
        query
            .into_iter()
            .filter(|q| !q.is_empty())
            .map(str::to_owned),
    );
    let mut out = format!("{scheme}://");
    if let Some(userinfo) = userinfo {
        out.push_str(userinfo);
        out.push('@');
    }
    out.push_str(first);
    if !params.is_empty() {
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Every key of `namespace` (`<namespace>:*`) on every primary, with `SCAN` so a busy Redis is
/// never blocked. For tests, benchmarks and audits of what a namespace holds.
pub async fn namespace_keys(
    redis: &Client,
    namespace: &str,
) -> Result<Vec<String>, fred::error::Error> {
    let pattern = format!("{namespace}:*");
    let nodes: Vec<Option<Server>> = if redis.is_clustered() {
        redis.active_connections().into_iter().map(Some).collect()
    } else {
        vec![None]
    };
    let mut found = Vec::new();
    for node in nodes {
        let mut cursor = "0".to_owned();
        loop {
            let scan = CustomCommand::new_static("SCAN", None, false);
            let args = vec![
                cursor.clone(),
                "MATCH".into(),
                pattern.clone(),
                "COUNT".into(),
                "1000".into(),
            ];
            let (next, keys): (String, Vec<String>) = match &node {
                Some(server) => redis.with_cluster_node(server).custom(scan, args).await?,
                None => redis.custom(scan, args).await?,
            };
            found.extend(keys);
            if next == "0" {
                break;
            }
            cursor = next;
        }
    }
    Ok(found)
}

/// Deletes every key of `namespace` ([`namespace_keys`]). For test and benchmark namespaces;
/// returns how many keys went.
pub async fn drop_namespace(redis: &Client, namespace: &str) -> Result<usize, fred::error::Error> {
    let mut dropped = 0;
    for key in namespace_keys(redis, namespace).await? {
        // One key per command: on a cluster the keys of a namespace span slots.
        dropped += redis.unlink::<usize, _>(key).await?;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_separated_cluster_nodes_become_node_parameters() {
        assert_eq!(
            cluster_url("redis-cluster://127.0.0.1:7000,127.0.0.1:7001, 127.0.0.1:7002"),
            "redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001&node=127.0.0.1:7002"
        );
        assert_eq!(
            cluster_url("rediss-cluster://u:p@a:1,b:2?node=c:3"),
            "rediss-cluster://u:p@a:1?node=b:2&node=c:3"
        );
        for unchanged in [
            "redis://127.0.0.1:6379",
            "redis-cluster://a:1?node=b:2",
            "redis-cluster://a:1",
        ] {
            assert_eq!(cluster_url(unchanged), unchanged);
        }
    }

    #[test]
    fn both_cluster_spellings_configure_every_node() {
        for url in [
            "redis-cluster://127.0.0.1:7000,127.0.0.1:7001",
            "redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001",
        ] {
            let config = Config::from_url(&cluster_url(url)).unwrap();
            assert!(config.server.is_clustered(), "{url}");
            assert_eq!(config.server.hosts().len(), 2, "{url}");
        }
    }
}
