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
    /// What a reservation must reach before the buy is acknowledged (`?ack=`).
    pub ack: Ack,
}

/// What a reservation must reach before its buy is acknowledged (`?ack=` of the stock URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ack {
    /// The primary's memory (the default): a failover to a replica that missed the last
    /// writes, or a restart that loses data, can lose acknowledged reservations.
    #[default]
    Memory,
    /// `ack=replicas:N`: the reservation also reached `n` replicas (`WAIT n timeout` after each
    /// reserve batch); if fewer acknowledge within `timeout` (`ack_timeout_ms`, 200 ms by
    /// default) the batch answers "unavailable" and the buyer retries under the same
    /// idempotency key, which replays the reservation.
    Replicas {
        /// Replicas that must have the write.
        n: u32,
        /// How long to wait for them.
        timeout: std::time::Duration,
    },
}

/// Maps a client error: connection trouble is `Unavailable` (retryable), the rest `Backend`.
pub fn map_err(e: RedisError) -> Error {
    if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_connection_refusal()
        || answers_later(&e)
    {
        super::metrics::connection_error();
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

/// The parameters of a Redis URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Params {
    prefix: String,
    ack: Ack,
}

/// Splits `?prefix=NAME&ack=memory|replicas:N&ack_timeout_ms=MS` off a URL (default prefix
/// `seckill`, ack `memory`).
fn split_params(url: &str) -> Result<(String, Params), Error> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut prefix = "seckill".to_string();
    let mut replicas = None;
    let mut timeout = std::time::Duration::from_millis(200);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("prefix", v)) if !v.is_empty() && !v.contains(['{', '}']) => {
                prefix = v.to_string()
            }
            Some(("ack", "memory")) => replicas = None,
            Some(("ack", v)) if v.starts_with("replicas:") => {
                let n: u32 = v["replicas:".len()..]
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        Error::invalid(format!("ack={v}: replicas:N needs a whole N ≥ 1"))
                    })?;
                replicas = Some(n);
            }
            Some(("ack_timeout_ms", v)) => {
                let ms: u64 = v.parse().ok().filter(|ms| *ms >= 1).ok_or_else(|| {
                    Error::invalid(format!("ack_timeout_ms={v}: a whole number of ms ≥ 1"))
                })?;
                timeout = std::time::Duration::from_millis(ms);
            }
            _ => {
                return Err(Error::invalid(format!(
                    "unsupported Redis URL parameter {pair:?} (supported: prefix=NAME without \
                     braces, ack=memory|replicas:N, ack_timeout_ms=MS)"
                )))
            }
        }
    }
    let ack = match replicas {
        None => Ack::Memory,
        Some(n) => Ack::Replicas { n, timeout },
    };
    Ok((base.to_string(), Params { prefix, ack }))
}

/// Connects to `redis://[:password@]host:port[/db][?prefix=NAME]` or
/// `redis-cluster://[:password@]host1:port1,host2:port2,…[?prefix=NAME]`.
pub async fn connect(url: &BackendUrl) -> Result<RedisTarget, Error> {
    let (base, Params { prefix, ack }) = split_params(url.expose())?;
    if ack != Ack::Memory && url.scheme() != "redis" {
        return Err(Error::invalid(
            "ack=replicas:N is for a standalone Redis with replicas (redis://); a Redis \
             Cluster's WAIT cannot be routed to the reservation's shard",
        ));
    }
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
    super::metrics::connected();
    Ok(RedisTarget {
        conn,
        prefix,
        pubsub,
        ack,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_parsed_and_validated() {
        let (base, p) = split_params("redis://h:1/0?prefix=t1").unwrap();
        assert_eq!(
            (base.as_str(), p.prefix.as_str(), p.ack),
            ("redis://h:1/0", "t1", Ack::Memory)
        );
        assert_eq!(split_params("redis://h").unwrap().1.prefix, "seckill");
        assert!(split_params("redis://h?prefix={x}").is_err());
        assert!(split_params("redis://h?bogus=1").is_err());
        let (_, p) = split_params("redis://h?ack=replicas:2&ack_timeout_ms=50").unwrap();
        assert_eq!(
            p.ack,
            Ack::Replicas {
                n: 2,
                timeout: std::time::Duration::from_millis(50)
            }
        );
        for bad in [
            "ack=replicas:0",
            "ack=replicas:x",
            "ack=disk",
            "ack_timeout_ms=0",
        ] {
            let e = split_params(&format!("redis://h?{bad}")).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e}");
        }
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
