//! Shared test support of the facade: test events, a recorder of what
//! handlers saw, and the harness of a bus on each transport. The private
//! Redis server and the suite macro come from `tidings-testkit`.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod events;
pub mod seen;
pub mod tools;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidings::{Bus, Context};
use tidings_testkit::RedisServer;

/// What one handler call saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub handler: &'static str,
    pub file_id: String,
    pub mime_type: Option<String>,
    pub event_id: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub tenant: Option<String>,
}

/// Records handler calls; shared with handlers as `State<Recorder>`.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    started: Arc<Mutex<usize>>,
    failed_once: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    pub fn record(
        &self,
        handler: &'static str,
        file_id: &str,
        mime_type: Option<String>,
        ctx: &Context,
    ) {
        let env = ctx.envelope();
        self.seen.lock().unwrap().push(Seen {
            handler,
            file_id: file_id.to_owned(),
            mime_type,
            event_id: ctx.event_id().map(|i| i.to_string()),
            correlation_id: env.and_then(|e| e.correlation_id.clone()),
            causation_id: env.and_then(|e| e.causation_id.clone()),
            tenant: ctx.tenant().map(str::to_owned),
        });
    }

    pub fn start(&self) {
        *self.started.lock().unwrap() += 1;
    }

    pub fn started(&self) -> usize {
        *self.started.lock().unwrap()
    }

    /// True the first time it is asked about `key`.
    pub fn first_time(&self, key: &str) -> bool {
        let mut f = self.failed_once.lock().unwrap();
        if f.iter().any(|k| k == key) {
            false
        } else {
            f.push(key.to_owned());
            true
        }
    }

    /// Whether `first_time(key)` was asked already.
    pub fn first_time_taken(&self, key: &str) -> bool {
        self.failed_once.lock().unwrap().iter().any(|k| k == key)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn seen_by(&self, handler: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.handler == handler)
            .collect()
    }

    /// Waits until `handler` was called `n` times (10 s at most), then
    /// returns its calls.
    pub async fn wait_for(&self, handler: &str, n: usize) -> Vec<Seen> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.seen_by(handler);
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Counts what delivery tests need: attempts per event, handled events
/// (with their event ids), handlers started, a switch that "fixes" a failing
/// handler, and a gate that holds handlers until opened.
#[derive(Debug, Clone)]
pub struct Probe {
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    handled: Arc<Mutex<Vec<(String, String)>>>,
    started: Arc<AtomicUsize>,
    fixed: Arc<AtomicBool>,
    gate: Arc<tokio::sync::Semaphore>,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            attempts: Arc::default(),
            handled: Arc::default(),
            started: Arc::default(),
            fixed: Arc::default(),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }
}

impl Probe {
    /// Counts an attempt at `key`; returns its number (1 for the first).
    pub fn attempt(&self, key: &str) -> u32 {
        let mut a = self.attempts.lock().unwrap();
        let n = a.entry(key.to_owned()).or_default();
        *n += 1;
        *n
    }

    pub fn attempts(&self, key: &str) -> u32 {
        self.attempts.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    pub fn handle(&self, key: &str, ctx: &Context) {
        let id = ctx.event_id().map(|i| i.to_string()).unwrap_or_default();
        self.handled.lock().unwrap().push((key.to_owned(), id));
    }

    /// `(key, event id)` of every successful handling, in order.
    pub fn handled(&self) -> Vec<(String, String)> {
        self.handled.lock().unwrap().clone()
    }

    pub fn handled_len(&self) -> usize {
        self.handled.lock().unwrap().len()
    }

    pub fn handled_count(&self, key: &str) -> usize {
        self.handled().iter().filter(|(k, _)| k == key).count()
    }

    pub fn start(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }

    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    pub fn fix(&self) {
        self.fixed.store(true, Ordering::SeqCst);
    }

    pub fn is_fixed(&self) -> bool {
        self.fixed.load(Ordering::SeqCst)
    }

    /// Waits until the gate is opened.
    pub async fn pass_gate(&self) {
        let _ = self.gate.acquire().await.map(|p| p.forget());
    }

    pub fn open_gate(&self) {
        self.gate.add_permits(1 << 20);
    }
}

/// Polls `cond` every 10 ms until it holds or `within` has passed; returns
/// whether it held.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A bus on one transport, with the server it needs kept alive.
pub struct Harness {
    pub bus: Bus,
    pub server: Option<RedisServer>,
}

impl Harness {
    pub fn memory() -> Self {
        Harness {
            bus: Bus::builder().source("behaviour").in_memory().unwrap(),
            server: None,
        }
    }

    pub async fn redis() -> Self {
        let server = RedisServer::start();
        let bus = Bus::builder()
            .source("behaviour")
            .connect(&server.url())
            .await
            .expect("connect to the test redis-server");
        Harness {
            bus,
            server: Some(server),
        }
    }

    /// A bus on a durable private server (AOF, `appendfsync always`), for
    /// the tests that restart it and count on no acknowledged write being lost.
    pub async fn redis_durable(publish_timeout: Duration) -> Self {
        let server = RedisServer::durable();
        let bus = Bus::builder()
            .source("faults")
            .publish_timeout(publish_timeout)
            .connect(&server.url())
            .await
            .expect("connect to the test redis-server");
        Harness {
            bus,
            server: Some(server),
        }
    }

    /// Another bus instance on the same broker or server, as another
    /// process would have.
    pub async fn another_bus(&self, builder: tidings::BusBuilder) -> Bus {
        match &self.server {
            None => builder.memory(self.bus.memory().unwrap().clone()).unwrap(),
            Some(server) => builder
                .connect(&server.url())
                .await
                .expect("connect to the test redis-server"),
        }
    }

    /// Whether the key exists on the broker or server.
    pub async fn exists(&self, key: &str) -> bool {
        match &self.server {
            None => {
                let memory = self.bus.memory().unwrap();
                tidings::StreamTransport::stream_stats(memory, key, "-")
                    .await
                    .unwrap()
                    .exists
            }
            Some(server) => {
                let mut conn = server.connection().await;
                let n: u32 = ::redis::cmd("EXISTS")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                n == 1
            }
        }
    }

    /// Delivery counts of the pending entries of `group` on `key`.
    pub async fn deliveries(&self, key: &str, group: &str) -> Vec<u32> {
        match &self.server {
            None => self
                .bus
                .memory()
                .unwrap()
                .pending_deliveries(key, group)
                .into_iter()
                .map(|(_, n)| n)
                .collect(),
            Some(server) => {
                let mut conn = server.connection().await;
                let rows: Vec<(String, String, u64, u32)> = ::redis::cmd("XPENDING")
                    .arg(key)
                    .arg(group)
                    .arg("-")
                    .arg("+")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                rows.into_iter().map(|r| r.3).collect()
            }
        }
    }

    /// Moves `group` on `key` back to the start of the stream, so that it
    /// reads every entry again (`XGROUP SETID <key> <group> 0`).
    pub async fn rewind(&self, key: &str, group: &str) {
        match &self.server {
            None => self
                .bus
                .memory()
                .unwrap()
                .set_group_position(key, group, &tidings::StartFrom::Beginning)
                .unwrap(),
            Some(server) => {
                let mut conn = server.connection().await;
                let () = ::redis::cmd("XGROUP")
                    .arg("SETID")
                    .arg(key)
                    .arg(group)
                    .arg("0")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }

    /// Waits until `group` on `key` has no entry delivered and not yet
    /// acknowledged; false if some are still pending after `within`.
    pub async fn all_acked(&self, key: &str, group: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.pending(key, group).await == 0 {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Entries of `group` on `key` delivered and not acknowledged.
    /// Entries in the stream `key` (`XLEN`).
    #[allow(dead_code)]
    pub async fn length(&self, key: &str) -> usize {
        match &self.server {
            None => self.bus.memory().unwrap().stream_len(key),
            Some(server) => {
                let mut conn = server.connection().await;
                ::redis::cmd("XLEN")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .unwrap()
            }
        }
    }

    pub async fn pending(&self, key: &str, group: &str) -> usize {
        match &self.server {
            None => self.bus.memory().unwrap().pending_len(key, group),
            Some(server) => {
                let mut conn = server.connection().await;
                let reply: ::redis::Value = ::redis::cmd("XPENDING")
                    .arg(key)
                    .arg(group)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                match reply {
                    ::redis::Value::Array(items) => match items.first() {
                        Some(::redis::Value::Int(n)) => *n as usize,
                        other => panic!("unexpected XPENDING count {other:?}"),
                    },
                    other => panic!("unexpected XPENDING reply {other:?}"),
                }
            }
        }
    }
}
