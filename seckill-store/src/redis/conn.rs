//! Connections: one multiplexed connection (standalone, via `ConnectionManager`, which
//! reconnects by itself) or a cluster connection, behind one `ConnectionLike`; URL parsing;
//! error mapping into `seckill_core::Error`.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};
use seckill_core::registry::BackendUrl;
use seckill_core::Error;
use std::time::Duration;

/// How long a command may take before it fails with a retryable error.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection to a standalone Redis or a Redis Cluster. Cheap to clone (multiplexed).
#[derive(Clone)]
pub enum RedisConn {
    /// One server.
    Single(ConnectionManager),
    /// A cluster: commands are routed by key slot.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RedisConn::Single(_) => "RedisConn::Single",
            RedisConn::Cluster(_) => "RedisConn::Cluster",
        })
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// A connection and the key prefix of this deployment (or test).
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// The connection.
    pub conn: RedisConn,
    /// Prefix of every key (no braces: the hash tag follows it).
    pub prefix: String,
    /// A client for pub/sub subscriptions (on a cluster, one node: `PUBLISH` reaches all).
    pub pubsub: redis::Client,
}

/// Maps a client error: connection trouble is `Unavailable` (retryable), the rest `Backend`.
pub fn map_err(e: RedisError) -> Error {
    if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_connection_refusal()
        || answers_later(&e)
    {
        Error::Unavailable {
            backend: "redis",
            message: e.to_string(),
        }
    } else {
        Error::backend("redis", e)
    }
}

/// Whether Redis refused for now and will answer later: `LOADING` (replaying its AOF or
/// snapshot after a restart), `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, or `READONLY` (a write
/// that reached a node demoted to replica mid-failover). These are unavailability, not bugs.
fn answers_later(e: &RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind as S};
    matches!(
        e.kind(),
        ErrorKind::Server(
            S::BusyLoading | S::TryAgain | S::ClusterDown | S::MasterDown | S::ReadOnly
        )
    )
}

/// Splits `?prefix=…` off a URL (default `seckill`).
fn split_prefix(url: &str) -> Result<(String, String), Error> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut prefix = "seckill".to_string();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("prefix", v)) if !v.is_empty() && !v.contains(['{', '}']) => {
                prefix = v.to_string()
            }
            _ => {
                return Err(Error::invalid(format!(
                "unsupported Redis URL parameter {pair:?} (supported: prefix=NAME without braces)"
            )))
            }
        }
    }
    Ok((base.to_string(), prefix))
}

/// Connects to `redis://[:password@]host:port[/db][?prefix=NAME]` or
/// `redis-cluster://[:password@]host1:port1,host2:port2,…[?prefix=NAME]`.
pub async fn connect(url: &BackendUrl) -> Result<RedisTarget, Error> {
    let (base, prefix) = split_prefix(url.expose())?;
    let pubsub: redis::Client;
    let conn = match url.scheme() {
        "redis" => {
            let client = redis::Client::open(base.as_str()).map_err(map_err)?;
            pubsub = client.clone();
            let cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            RedisConn::Single(
                client
                    .get_connection_manager_with_config(cfg)
                    .await
                    .map_err(map_err)?,
            )
        }
        "redis-cluster" => {
            let rest = &base["redis-cluster://".len()..];
            let (auth, hosts) = match rest.rsplit_once('@') {
                Some((a, h)) => (format!("{a}@"), h),
                None => (String::new(), rest),
            };
            let nodes: Vec<String> = hosts
                .split(',')
                .filter(|h| !h.is_empty())
                .map(|h| format!("redis://{auth}{h}"))
                .collect();
            if nodes.is_empty() {
                return Err(Error::invalid(
                    "redis-cluster:// needs at least one host:port",
                ));
            }
            pubsub = redis::Client::open(nodes[0].as_str()).map_err(map_err)?;
            let client = redis::cluster::ClusterClient::builder(nodes)
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .retries(2)
                .build()
                .map_err(map_err)?;
            RedisConn::Cluster(client.get_async_connection().await.map_err(map_err)?)
        }
        other => {
            return Err(Error::invalid(format!(
                "not a Redis URL scheme: {other:?} (expected redis:// or redis-cluster://)"
            )))
        }
    };
    Ok(RedisTarget {
        conn,
        prefix,
        pubsub,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_parsed_and_validated() {
        assert_eq!(
            split_prefix("redis://h:1/0?prefix=t1").unwrap(),
            ("redis://h:1/0".into(), "t1".into())
        );
        assert_eq!(split_prefix("redis://h").unwrap().1, "seckill");
        assert!(split_prefix("redis://h?prefix={x}").is_err());
        assert!(split_prefix("redis://h?bogus=1").is_err());
    }

    fn server_error(resp: &[u8]) -> RedisError {
        redis::parse_redis_value(resp)
            .unwrap()
            .extract_error()
            .unwrap_err()
    }

    #[test]
    fn a_loading_or_failing_over_redis_is_unavailable_not_a_bug() {
        for resp in [
            &b"-LOADING Redis is loading the dataset in memory\r\n"[..],
            b"-MASTERDOWN Link with MASTER is down\r\n",
            b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
            b"-CLUSTERDOWN The cluster is down\r\n",
            b"-READONLY You can't write against a read only replica.\r\n",
        ] {
            let e = map_err(server_error(resp));
            assert!(e.is_retryable(), "{e}");
            assert!(matches!(e, Error::Unavailable { .. }), "{e}");
        }
        // A script error is a bug, not an outage.
        let e = map_err(server_error(b"-ERR user_script:1: bad\r\n"));
        assert!(!matches!(e, Error::Unavailable { .. }), "{e}");
    }
}
