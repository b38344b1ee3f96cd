//! The bus's shared connection: redis-rs's `ConnectionManager`, made again
//! when a command times out.
//!
//! The manager makes its connection again when it is dropped or refused,
//! but keeps it after a response timeout: behind a partition that drops
//! packets silently, or a server frozen and resumed, every later command on
//! it times out too, until the operating system gives the socket up (many
//! minutes). This wrapper is what the transports hold instead: a command
//! that times out starts one replacement in the background, and commands
//! go through the new connection once it is up.
//!
//! Behind Sentinel the manager would reconnect to the address it was made
//! for, the old master's: there, a command that finds the connection gone
//! (or the server turned replica, `READONLY`) also starts a replacement,
//! made to the master the Sentinels name then.
//!
//! On a Redis Cluster the connection is redis-rs's cluster connection,
//! which routes each command (and each pipeline, all of whose keys must be
//! in one slot) to the node serving its slot, follows `MOVED` and `ASK`,
//! and reconnects to nodes itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, Pipeline, RedisFuture, Value};

use super::endpoint::Endpoint;
use crate::error::is_read_only;

/// A cheap handle (one `Arc`) on the shared connection.
#[derive(Clone)]
pub struct SharedConnection {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    config: ConnectionManagerConfig,
    current: RwLock<Conn>,
    renewing: AtomicBool,
}

/// One server's connection, or a cluster's.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl std::fmt::Debug for SharedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedConnection")
            .field("server", &self.inner.endpoint.describe())
            .finish_non_exhaustive()
    }
}

impl SharedConnection {
    /// Connects, as `ConnectionManager::new_with_config` does, to
    /// `client`, the server `endpoint` names now.
    pub async fn connect(
        endpoint: Endpoint,
        client: Client,
        config: ConnectionManagerConfig,
    ) -> redis::RedisResult<Self> {
        // redis-rs retries a lost connection 6 times from 100 ms, doubling
        // (6.3 s): behind Sentinel the address it retries is the old
        // master's, so one retry, then a replacement made to the new one.
        let config = match endpoint.follows_failover() {
            true => config.set_number_of_retries(1),
            false => config,
        };
        let conn = ConnectionManager::new_with_config(client, config.clone()).await?;
        Ok(SharedConnection {
            inner: Arc::new(Inner {
                endpoint,
                config,
                current: RwLock::new(Conn::Single(conn)),
                renewing: AtomicBool::new(false),
            }),
        })
    }

    /// Wraps a cluster connection of `endpoint`, a `redis+cluster://` one.
    pub fn cluster(endpoint: Endpoint, conn: ClusterConnection) -> Self {
        SharedConnection {
            inner: Arc::new(Inner {
                endpoint,
                config: ConnectionManagerConfig::new(),
                current: RwLock::new(Conn::Cluster(conn)),
                renewing: AtomicBool::new(false),
            }),
        }
    }

    /// Whether commands go to a Redis Cluster, each to its slot's node.
    pub fn is_cluster(&self) -> bool {
        matches!(self.current(), Conn::Cluster(_))
    }

    /// On a cluster, the address of each master serving slots now (from
    /// `CLUSTER SLOTS`, asked of any node); `None` on one server.
    pub async fn cluster_masters(&self) -> redis::RedisResult<Option<Vec<(String, u16)>>> {
        let Some(ranges) = self.slot_ranges().await? else {
            return Ok(None);
        };
        let mut masters = Vec::new();
        for (_, master) in ranges {
            if !masters.contains(&master) {
                masters.push(master);
            }
        }
        Ok(Some(masters))
    }

    /// On a cluster, the address of the master serving the slot of `key`
    /// now; `None` on one server, or when no master serves it.
    pub async fn master_of(&self, key: &str) -> redis::RedisResult<Option<(String, u16)>> {
        let slot = key_slot(key);
        Ok(self.slot_ranges().await?.and_then(|ranges| {
            ranges
                .into_iter()
                .find(|(range, _)| range.contains(&slot))
                .map(|(_, master)| master)
        }))
    }

    /// Each range of slots and the address of its master, from `CLUSTER
    /// SLOTS` asked of any node; `None` on one server.
    pub(super) async fn slot_ranges(
        &self,
    ) -> redis::RedisResult<Option<Vec<(std::ops::RangeInclusive<u16>, (String, u16))>>> {
        use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
        let Conn::Cluster(mut conn) = self.current() else {
            return Ok(None);
        };
        let reply = conn
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?;
        let bad = |detail: String| {
            redis::RedisError::from((
                redis::ErrorKind::Parse,
                "unexpected CLUSTER SLOTS reply",
                detail,
            ))
        };
        let Value::Array(items) = reply else {
            return Err(bad(format!("{reply:?}")));
        };
        let mut ranges = Vec::new();
        for range in items {
            let Value::Array(fields) = range else {
                return Err(bad(format!("a range is {range:?}")));
            };
            let bound = |at: usize| -> redis::RedisResult<u16> {
                match fields.get(at) {
                    Some(v) => redis::from_redis_value_ref(v).map_err(redis::RedisError::from),
                    None => Err(bad(format!("no slot bound in {fields:?}"))),
                }
            };
            let (first, last) = (bound(0)?, bound(1)?);
            let Some(Value::Array(node)) = fields.get(2) else {
                return Err(bad(format!("no master in {fields:?}")));
            };
            let host: String = match node.first() {
                Some(v) => redis::from_redis_value_ref(v).map_err(redis::RedisError::from)?,
                None => return Err(bad("a master without a host".into())),
            };
            let port: u16 = match node.get(1) {
                Some(v) => redis::from_redis_value_ref(v).map_err(redis::RedisError::from)?,
                None => return Err(bad("a master without a port".into())),
            };
            ranges.push((first..=last, (host, port)));
        }
        Ok(Some(ranges))
    }

    /// Sends `cmd` to the cluster node at `host:port` (on one server, to
    /// the server).
    pub async fn query_node(&self, cmd: Cmd, host: &str, port: u16) -> redis::RedisResult<Value> {
        use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
        match self.current() {
            Conn::Cluster(mut conn) => {
                conn.route_command(
                    cmd,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.to_owned(),
                        port,
                    }),
                )
                .await
            }
            Conn::Single(mut conn) => cmd.query_async(&mut conn).await,
        }
    }

    fn current(&self) -> Conn {
        // Only ever replaced whole: a poisoned lock holds a valid manager.
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// After a timeout (or, behind Sentinel, a lost connection or a
    /// replica's `READONLY`): starts one replacement, unless one is under
    /// way.
    fn renew_after(&self, e: &redis::RedisError) {
        let lost = self.inner.endpoint.follows_failover()
            && (e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_io_error()
                || is_read_only(e));
        if !self.is_cluster() && (e.is_timeout() || lost) {
            self.renew();
        }
    }

    /// After a reply: redis-rs hands a server's error to one command back
    /// as a value (`query_async` makes it an error later), so a replica's
    /// `READONLY` is seen here, behind Sentinel a sign of a failover.
    fn renew_after_reply(&self, value: &Value) {
        let read_only = |v: &Value| matches!(v, Value::ServerError(e) if e.code() == "READONLY");
        let any = match value {
            Value::Array(items) => items.iter().any(read_only),
            other => read_only(other),
        };
        if any && !self.is_cluster() && self.inner.endpoint.follows_failover() {
            self.renew();
        }
    }

    /// Starts one replacement, unless one is under way.
    fn renew(&self) {
        if self.inner.renewing.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let fresh = match inner.endpoint.client().await {
                Ok(client) => {
                    ConnectionManager::new_with_config(client, inner.config.clone()).await
                }
                Err(e) => Err(e),
            };
            match fresh {
                Ok(conn) => {
                    *inner.current.write().unwrap_or_else(|e| e.into_inner()) = Conn::Single(conn);
                    tracing::info!(server = %inner.endpoint.describe(),
                        "made the shared Redis connection again");
                }
                Err(e) => tracing::warn!(error = %e,
                    "making the shared Redis connection again failed; the next failed command tries again"),
            }
            inner.renewing.store(false, Ordering::Release);
        });
    }
}

/// The hash slot of `key` in a Redis Cluster: CRC16 (XMODEM) of its hash
/// tag (what is between the first `{` and the next `}`, when not empty),
/// or of the whole key, modulo 16,384.
pub(crate) fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|b| *b == b'{').and_then(|open| {
        let rest = &bytes[open + 1..];
        let close = rest.iter().position(|b| *b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(bytes)) % 16_384
}

impl ConnectionLike for SharedConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let mut conn = self.current();
        Box::pin(async move {
            let reply = conn.req_packed_command(cmd).await;
            match &reply {
                Ok(value) => self.renew_after_reply(value),
                Err(e) => self.renew_after(e),
            }
            reply
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let mut conn = self.current();
        Box::pin(async move {
            let reply = conn.req_packed_commands(pipeline, offset, count).await;
            match &reply {
                Ok(values) => values.iter().for_each(|v| self.renew_after_reply(v)),
                Err(e) => self.renew_after(e),
            }
            reply
        })
    }

    fn get_db(&self) -> i64 {
        self.current().get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::key_slot;

    #[test]
    fn slots_are_those_redis_gives() {
        // `CLUSTER KEYSLOT` on Redis 7.0.
        assert_eq!(key_slot("somekey"), 11058);
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("foo{hash_tag}"), 2515);
        assert_eq!(key_slot("bar{hash_tag}"), 2515);
        // An empty tag is no tag: the whole key counts.
        assert_eq!(key_slot("{}foo"), 9500);
        // The first `{`, then the first `}` after it.
        assert_eq!(key_slot("foo{{bar}}"), 4015);
        assert_eq!(key_slot("{bar"), 4015);
        // An empty first tag is no tag, whatever follows.
        assert_eq!(key_slot("foo{}{bar}"), 8363);
        assert_eq!(key_slot("tidings:{contextual}"), key_slot("contextual"));
    }
}
