//! The reply inbox of a bus: one reader, started by the first request or
//! wait, serves every open request and wait of the bus instance. It reads
//! the instance's reply stream `ns:{reply:<instance>}` and the streams that
//! [`Bus::wait_for`](crate::Bus::wait_for) watches, with one blocking
//! `XREAD` on a connection of its own, and hands each entry to the callers
//! waiting for its type and correlation id. A request costs its publish and
//! nothing else: no task, no connection, no Redis call of its own.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify, OnceCell};

use super::Backend;
use crate::backoff::Backoff;
use crate::envelope::{now_millis, Envelope};
use crate::error::Error;
use crate::stats::RequestStats;
use crate::transport::{Entry, StreamTransport};

/// How long a reply stream lives after its bus last renewed it, unless
/// configured ([`BusBuilder::reply_ttl`](crate::BusBuilder::reply_ttl)).
pub(crate) const DEFAULT_REPLY_TTL: Duration = Duration::from_secs(60);

/// Entries a reply stream keeps at most (about): replies are read as they
/// come, so only a requester that stopped reading ever reaches it.
pub(crate) const REPLY_STREAM_MAX_LEN: usize = 10_000;

/// How far back a wait looks: an event of its type and correlation id
/// appended up to this long before the wait began is delivered too, so that
/// a reply that beats the wait (published, then waited for) is not missed.
pub(crate) const LOOKBACK: Duration = Duration::from_secs(5);

/// Events a watched stream keeps for [`LOOKBACK`] at most.
const RECENT_MAX: usize = 10_000;

/// How long past its `BLOCK` a read may take before its connection counts
/// as dead.
const READ_GRACE: Duration = Duration::from_secs(5);

/// Entries one `XREAD` returns at most, per stream.
const READ_COUNT: usize = 1_000;

/// Pauses of the reader after a failed read: short at first, at most two
/// seconds, so that a restarted server is found soon.
const READ_BACKOFF: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));

/// The reply inbox of one bus instance.
pub(crate) struct Replies {
    inbox: Arc<Inbox>,
    /// Made once, by the first request: the reply stream exists before a
    /// request names it, as responders append to existing streams only.
    opened: OnceCell<()>,
    /// Started once, by the first request or wait; dropped with the bus,
    /// which stops the reader.
    reader: Mutex<Option<oneshot::Sender<()>>>,
}

struct Inbox {
    /// The instance's reply stream, `ns:{reply:<instance>}`.
    key: String,
    ttl: Duration,
    waiters: Mutex<Waiters>,
    /// Woken when a stream is added to those read.
    changed: Notify,
    next_id: AtomicU64,
    delivered: AtomicU64,
    late: AtomicU64,
}

#[derive(Default)]
struct Waiters {
    streams: HashMap<String, Watched>,
    open: usize,
}

/// A stream the reader reads, and who waits on it.
struct Watched {
    /// The last entry id read.
    after: String,
    /// The instance's reply stream (whose unclaimed entries are late
    /// replies) rather than a stream watched by `wait_for`.
    is_reply: bool,
    /// By correlation id: the callers waiting, each with its type.
    waiting: HashMap<String, Vec<Waiting>>,
    /// Since when nobody waits on this stream (`None` while someone does):
    /// a stream nobody waited on for [`LOOKBACK`] is no longer read.
    idle_since: Option<Instant>,
    /// Recent events with a correlation id, oldest first, with when they
    /// were read: kept for [`LOOKBACK`].
    recent: VecDeque<(Instant, Arc<Envelope>)>,
}

struct Waiting {
    id: u64,
    type_name: &'static str,
    tx: oneshot::Sender<Arc<Envelope>>,
}

impl Watched {
    fn new(after: String, is_reply: bool) -> Self {
        Watched {
            after,
            is_reply,
            waiting: HashMap::new(),
            idle_since: None,
            recent: VecDeque::new(),
        }
    }
}

/// One caller waiting for an event of a type with a correlation id; stops
/// waiting when dropped.
pub(crate) struct Waiter {
    inbox: Arc<Inbox>,
    key: String,
    correlation_id: String,
    id: u64,
    rx: oneshot::Receiver<Arc<Envelope>>,
}

impl Waiter {
    /// The event, once it is read.
    pub(crate) async fn recv(&mut self) -> Option<Arc<Envelope>> {
        (&mut self.rx).await.ok()
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut w = self.inbox.lock();
        w.open = w.open.saturating_sub(1);
        if let Some(watched) = w.streams.get_mut(&self.key) {
            if let Some(list) = watched.waiting.get_mut(&self.correlation_id) {
                list.retain(|x| x.id != self.id);
                if list.is_empty() {
                    watched.waiting.remove(&self.correlation_id);
                }
            }
            if watched.waiting.is_empty() && watched.idle_since.is_none() {
                watched.idle_since = Some(Instant::now());
            }
        }
    }
}

impl Replies {
    /// The inbox of a new bus instance, whose reply stream is
    /// `ns:{reply:<instance>}` (the instance a fresh ULID).
    pub(crate) fn new(namespace: &str, ttl: Duration) -> Self {
        let key = format!(
            "{namespace}:{{{}:{}}}",
            super::keys::REPLY_SCOPE,
            crate::Ulid::new()
        );
        let mut waiters = Waiters::default();
        waiters
            .streams
            .insert(key.clone(), Watched::new("0-0".to_owned(), true));
        Replies {
            inbox: Arc::new(Inbox {
                key,
                ttl,
                waiters: Mutex::new(waiters),
                changed: Notify::new(),
                next_id: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                late: AtomicU64::new(0),
            }),
            opened: OnceCell::new(),
            reader: Mutex::new(None),
        }
    }

    /// The instance's reply stream.
    pub(crate) fn key(&self) -> &str {
        &self.inbox.key
    }

    pub(crate) fn stats(&self) -> RequestStats {
        RequestStats {
            open: self.inbox.lock().open,
            delivered: self.inbox.delivered.load(Ordering::Relaxed),
            late_replies: self.inbox.late.load(Ordering::Relaxed),
        }
    }

    /// Makes the reply stream, once per bus instance (the reader renews it
    /// from then on).
    pub(crate) async fn open(&self, backend: &Backend) -> Result<(), Error> {
        self.opened
            .get_or_try_init(|| async {
                let key = &self.inbox.key;
                let ttl = self.inbox.ttl;
                super::on_streams!(backend, t => t.keep_alive(key, ttl)).map_err(Error::from)
            })
            .await?;
        Ok(())
    }

    /// Starts waiting for an event of `type_name` with `correlation_id` on
    /// the stream `key` (the reply stream, or one `wait_for` watches), from
    /// [`LOOKBACK`] before now. Starts the reader if it is not running.
    pub(crate) fn wait(
        &self,
        backend: &Backend,
        key: &str,
        type_name: &'static str,
        correlation_id: &str,
    ) -> Waiter {
        self.start(backend);
        let (tx, rx) = oneshot::channel();
        let id = self.inbox.next_id.fetch_add(1, Ordering::Relaxed);
        let mut w = self.inbox.lock();
        w.open += 1;
        let watched = match w.streams.get_mut(key) {
            Some(watched) => watched,
            None => {
                let from = now_millis()
                    .saturating_sub(LOOKBACK.as_millis() as i64)
                    .max(0);
                w.streams
                    .insert(key.to_owned(), Watched::new(format!("{from}-0"), false));
                self.inbox.changed.notify_waiters();
                // Present: inserted just above.
                w.streams
                    .entry(key.to_owned())
                    .or_insert_with(|| Watched::new("0-0".to_owned(), false))
            }
        };
        watched.idle_since = None;
        let seen = watched.recent.iter().find(|(_, e)| {
            e.type_name == type_name && e.correlation_id.as_deref() == Some(correlation_id)
        });
        match seen {
            Some((_, envelope)) => {
                let _ = tx.send(envelope.clone());
                self.inbox.delivered.fetch_add(1, Ordering::Relaxed);
            }
            None => watched
                .waiting
                .entry(correlation_id.to_owned())
                .or_default()
                .push(Waiting { id, type_name, tx }),
        }
        drop(w);
        Waiter {
            inbox: self.inbox.clone(),
            key: key.to_owned(),
            correlation_id: correlation_id.to_owned(),
            id,
            rx,
        }
    }

    fn start(&self, backend: &Backend) {
        let mut reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        // Running, unless its task ended (the runtime that ran it stopped
        // while the bus lives on): then it is started again, here.
        if reader.as_ref().is_some_and(|stop| !stop.is_closed()) {
            return;
        }
        let (stop_tx, stop) = oneshot::channel();
        let inbox = self.inbox.clone();
        match backend {
            Backend::Redis { streams, .. } => {
                tokio::spawn(run(streams.clone(), inbox, stop));
            }
            Backend::Memory(memory) => {
                tokio::spawn(run(memory.clone(), inbox, stop));
            }
        }
        *reader = Some(stop_tx);
    }
}

impl std::fmt::Debug for Replies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replies")
            .field("key", &self.inbox.key)
            .finish_non_exhaustive()
    }
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Waiters> {
        // Every update leaves the map whole, so poisoning is ignored.
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The streams to read and where each is at, the reply stream first.
    fn cursors(&self) -> Vec<(String, String)> {
        let w = self.lock();
        let mut out: Vec<(String, String)> = w
            .streams
            .iter()
            .map(|(k, s)| (k.clone(), s.after.clone()))
            .collect();
        out.sort_by_key(|(k, _)| *k != self.key);
        out
    }

    /// Hands each entry read to the callers waiting for it; counts the
    /// replies nobody waits for, keeps recent events for the look-back, and
    /// stops reading the streams nobody waits on any more.
    fn deliver(&self, read: &[(String, String)], entries: Vec<(usize, Entry)>) {
        let now = Instant::now();
        let mut w = self.lock();
        for (i, entry) in entries {
            let Some(watched) = read.get(i).and_then(|(key, _)| w.streams.get_mut(key)) else {
                continue;
            };
            watched.after = entry.id;
            let envelope = match entry.envelope {
                Ok(e) => e,
                Err(e) => {
                    if watched.is_reply {
                        tracing::debug!(stream = %self.key, error = %e, "entry on the reply stream is not an event; skipped");
                    }
                    continue;
                }
            };
            let mut handed = false;
            if let Some(cid) = envelope.correlation_id.as_deref() {
                if let Some(list) = watched.waiting.get_mut(cid) {
                    let mut i = 0;
                    while i < list.len() {
                        if list[i].type_name == envelope.type_name {
                            let w = list.swap_remove(i);
                            let _ = w.tx.send(envelope.clone());
                            self.delivered.fetch_add(1, Ordering::Relaxed);
                            handed = true;
                        } else {
                            i += 1;
                        }
                    }
                    if list.is_empty() {
                        watched.waiting.remove(cid);
                    }
                }
            }
            if watched.is_reply {
                if !handed {
                    self.late.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(stream = %self.key, r#type = %envelope.type_name,
                        correlation_id = ?envelope.correlation_id,
                        "reply for no open request (it came after the request's timeout, or twice); dropped");
                }
            } else if envelope.correlation_id.is_some() {
                // Whatever its type: a wait that begins within the look-back
                // finds it here, whichever type it waits for.
                watched.recent.push_back((now, envelope));
            }
        }
        for watched in w.streams.values_mut() {
            if watched.waiting.is_empty() && watched.idle_since.is_none() {
                watched.idle_since = Some(now);
            }
            while watched.recent.len() > RECENT_MAX
                || watched
                    .recent
                    .front()
                    .is_some_and(|(at, _)| now.duration_since(*at) > LOOKBACK)
            {
                watched.recent.pop_front();
            }
        }
        // A stream nobody waited on for the look-back is no longer read: a
        // later wait reads it again from the look-back before its start.
        w.streams.retain(|_, watched| {
            watched.is_reply
                || watched
                    .idle_since
                    .is_none_or(|since| now.duration_since(since) <= LOOKBACK)
        });
    }
}

/// The reader: one blocking read of every watched stream at a time, on a
/// connection of its own, renewing the reply stream's expiry between
/// reads. A stream added meanwhile ends the read (and its connection,
/// which a blocked command holds) so that the next read includes it.
async fn run<T: StreamTransport>(transport: T, inbox: Arc<Inbox>, mut stop: oneshot::Receiver<()>) {
    let renew_every = inbox.ttl / 3;
    let mut reader: Option<T::Reader> = None;
    let mut renew_at = Instant::now();
    let mut failures = 0u32;
    loop {
        let changed = inbox.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let step = async {
            if reader.is_none() {
                reader = Some(transport.reader().await?);
            }
            if Instant::now() >= renew_at {
                transport.keep_alive(&inbox.key, inbox.ttl).await?;
                renew_at = Instant::now() + renew_every;
            }
            let read = inbox.cursors();
            let streams: Vec<(&str, &str)> =
                read.iter().map(|(k, a)| (k.as_str(), a.as_str())).collect();
            let block = renew_at
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            let Some(conn) = reader.as_mut() else {
                return Ok(());
            };
            // Held to a deadline: a connection that died without closing
            // would otherwise hold the reader, and the reply stream would
            // expire unrenewed.
            let entries = tokio::time::timeout(
                block + READ_GRACE,
                transport.read_streams(conn, &streams, READ_COUNT, block),
            )
            .await
            .unwrap_or_else(|_| {
                Err(crate::error::TransportError::Protocol {
                    command: "XREAD",
                    reason: format!("no reply within {:?}", block + READ_GRACE),
                })
            })?;
            inbox.deliver(&read, entries);
            Ok::<(), crate::error::TransportError>(())
        };
        tokio::select! {
            _ = &mut stop => return,
            () = &mut changed => {
                // The blocked read is dropped with its connection.
                reader = None;
            }
            done = step => match done {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    let pause = READ_BACKOFF.delay(failures);
                    tracing::warn!(stream = %inbox.key, error = %e, retry_in = ?pause,
                        "reading replies failed; reconnecting");
                    crate::telemetry::reconnect("replies");
                    reader = None;
                    // After a restart the reply stream may be gone: it is
                    // made again before the next read.
                    renew_at = Instant::now();
                    tokio::select! {
                        _ = &mut stop => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }
}
