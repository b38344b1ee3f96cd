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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
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
    current: RwLock<ConnectionManager>,
    renewing: AtomicBool,
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
                current: RwLock::new(conn),
                renewing: AtomicBool::new(false),
            }),
        })
    }

    fn current(&self) -> ConnectionManager {
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
        if e.is_timeout() || lost {
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
        if any && self.inner.endpoint.follows_failover() {
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
                    *inner.current.write().unwrap_or_else(|e| e.into_inner()) = conn;
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
