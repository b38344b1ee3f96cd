//! Shared blocking reads: the reading loops of one consumer in one group
//! (a worker over many tenants' streams) wait for entries together, with
//! one connection and one command.
//!
//! Only a blocking read needs a connection of its own: a loop whose
//! non-blocking read found nothing hands its key to the hub, which holds
//! one dedicated connection and keeps one read in flight over every key
//! whose loop waits:
//!
//! ```text
//! XREADGROUP GROUP <group> <consumer> COUNT <n> BLOCK <ms> STREAMS <k1> … <kN> > … >
//! ```
//!
//! The entries of each key go to its loop; the read is sent again with the
//! keys still waiting and those that arrived meanwhile. A key that arrives
//! while a read is in flight ends that read early (`CLIENT UNBLOCK`, sent
//! on the bus's shared connection once the read is [`UNBLOCK_AFTER`] old),
//! so that it waits no longer than that and a round trip to be part of the
//! next; where the server refuses `CLIENT ID` or
//! `CLIENT UNBLOCK` (an ACL user), each read blocks for at most
//! [`JOIN_BOUND`] instead. Each loop is answered by the end of its own
//! `block`, with nothing when nothing came, as a read of its own would be.
//! A read that fails fails every loop that waited in it, with the error,
//! so that each recovers as after a read of its own (it reads its own
//! pending entries again).
//!
//! The non-blocking reads of loops whose key had entries, the reads of each
//! loop's own pending entries (at its start, after a reconnect, at its
//! stop), and the acknowledgements of every loop, go through the hub too,
//! on [`LANES`] more connections (a key's requests always on the same
//! one): the requests that come while one batch is on a lane's wire go
//! out together as its next (an `XACK` per key, one read per
//! [`KEYS_PER_READ`] keys; a read of pending entries the server refuses
//! for one key's sake is sent again one key each),
//! and the replies are read with the hand-written parser (`resp`). Each
//! read and acknowledgement through redis-rs on the shared connection,
//! parsed on the one task that drives it, held a worker over 1,000 tenants
//! to 0.30x the same events on one stream; batched on one lane, 0.48-0.54x,
//! on two 0.56-0.64x, in runs taking turns (`--only tenants_consume`). Keys that had nothing go on to
//! wait in the blocking read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::endpoint::Endpoint;
use super::resp::{Piped, RespConnection, StreamRead};
use super::shared::SharedConnection;
use crate::transport::{Entry, TransportError};

/// The longest a shared read blocks where the server refuses
/// `CLIENT UNBLOCK`: how long a loop that starts waiting during a read may
/// wait to be part of the next.
const JOIN_BOUND: Duration = Duration::from_millis(50);

/// The youngest a shared read is ended to take in keys that arrived
/// meanwhile: keys that arrive together join one next read, and a worker
/// whose loops go idle one after another does not send a read and a
/// `CLIENT UNBLOCK` per loop.
const UNBLOCK_AFTER: Duration = Duration::from_millis(2);

/// The most keys one non-blocking read names: a reply stays a few
/// megabytes at most, and the replies of a batch are handed out one after
/// another while the next ones arrive.
const KEYS_PER_READ: usize = 64;

/// The lanes of non-blocking reads and acknowledgements of a hub, each a
/// connection and a task with one batch in flight: while one lane's
/// replies are parsed and handed out, the other's batch is in the server.
/// Over 1,000 tenants (`--only tenants_consume`, quick, three rounds taking
/// turns), one lane read 0.48x–0.54x one stream, two 0.56x–0.64x, three
/// 0.51x–0.63x.
const LANES: usize = 2;

/// The most requests one batch of non-blocking reads takes in.
const NOW_BATCH: usize = 1024;

/// How long writing a batch of non-blocking reads, or any one reply of it,
/// may take before its connection is taken for gone (and made again for
/// the next batch).
const NOW_BOUND: Duration = Duration::from_secs(2);

/// Loops whose `block` ends within this part of it are answered together,
/// so that their next waits end together too, and reads are not ended one
/// loop at a time.
const SLACK_DIVISOR: u32 = 4;

/// The hubs of a transport, one per (group, consumer), held weakly: a hub
/// lives as long as a reader uses it.
#[derive(Default)]
pub(super) struct Hubs {
    hubs: Mutex<HashMap<(String, String), Weak<Hub>>>,
    /// Whether a hub was ever started: until then, the acknowledgements of
    /// every worker look for none without taking the lock.
    started: AtomicBool,
}

impl Hubs {
    /// The hub of `consumer` in `group`, if one runs.
    pub(super) fn find(&self, group: &str, consumer: &str) -> Option<Arc<Hub>> {
        if !self.started.load(Ordering::Relaxed) {
            return None;
        }
        // Only inserted into and pruned: a panic elsewhere cannot leave it
        // inconsistent.
        let hubs = self.hubs.lock().unwrap_or_else(|e| e.into_inner());
        hubs.get(&(group.to_owned(), consumer.to_owned()))
            .and_then(Weak::upgrade)
    }

    /// The hub of `consumer` in `group`, started if there is none.
    pub(super) fn get(
        &self,
        group: &str,
        consumer: &str,
        endpoint: &Endpoint,
        shared: &SharedConnection,
        connect_timeout: Duration,
    ) -> Arc<Hub> {
        // Only inserted into and pruned: a panic elsewhere cannot leave it
        // inconsistent.
        let mut hubs = self.hubs.lock().unwrap_or_else(|e| e.into_inner());
        self.started.store(true, Ordering::Relaxed);
        hubs.retain(|_, h| h.strong_count() > 0);
        let id = (group.to_owned(), consumer.to_owned());
        if let Some(hub) = hubs.get(&id).and_then(Weak::upgrade) {
            return hub;
        }
        let (tx, rx) = mpsc::unbounded_channel::<Msg>();
        let state = State {
            group: id.0.clone(),
            consumer: id.1.clone(),
            endpoint: endpoint.clone(),
            shared: shared.clone(),
            connect_timeout,
            conn: None,
            unblock: true,
            waiting: HashMap::new(),
        };
        tokio::spawn(state.run(rx));
        let now_tx = std::array::from_fn(|_| {
            let (now_tx, now_rx) = mpsc::unbounded_channel::<Now>();
            let now = NowLane {
                group: id.0.clone(),
                consumer: id.1.clone(),
                endpoint: endpoint.clone(),
                shared: shared.clone(),
                own: None,
                own_tried: false,
                orphans: HashMap::new(),
            };
            tokio::spawn(now.run(now_rx));
            now_tx
        });
        let hub = Arc::new(Hub { tx, now_tx });
        hubs.insert(id, Arc::downgrade(&hub));
        hub
    }
}

/// A handle on one hub: its tasks end when the last handle is dropped.
pub(crate) struct Hub {
    tx: mpsc::UnboundedSender<Msg>,
    /// The lanes, each with its connection: a key's requests all go to
    /// one ([`Hub::lane`]).
    now_tx: [mpsc::UnboundedSender<Now>; LANES],
}

/// What a reader asks of its hub's non-blocking lane.
enum Now {
    /// The entries of a key, without waiting.
    Read(Request),
    /// The entries of a key pending to this consumer, after an id.
    Pending(Pending),
    /// Acknowledge entries of a key.
    Ack(Ack),
    /// The loop of a key stopped waiting: once the batch in flight has
    /// ended, the entries it read for the key after that, or none.
    Release(String, Reply),
}

struct Ack {
    key: String,
    ids: Vec<String>,
    reply: oneshot::Sender<Result<(), TransportError>>,
}

/// A read of a key's entries pending to this consumer, after `after`.
/// Its reply is not kept for a loop that stopped waiting: the entries
/// stay pending, and are read again.
struct Pending {
    key: String,
    count: usize,
    after: String,
    reply: oneshot::Sender<Result<History, TransportError>>,
}

/// The entries of a read of the pending list, and the ids of those
/// deleted from the stream while pending.
pub(super) type History = (Vec<Entry>, Vec<String>);

impl Now {
    fn closed(&self) -> bool {
        match self {
            Now::Read(r) => r.reply.is_closed(),
            Now::Pending(p) => p.reply.is_closed(),
            Now::Ack(a) => a.reply.is_closed(),
            Now::Release(_, reply) => reply.is_closed(),
        }
    }
}

/// What a reader asks of its hub.
enum Msg {
    /// Wait for entries of a key.
    Read(Request),
    /// The loop of a key stopped waiting (it stops, or reconnects): once no
    /// read in flight holds the key any more, the entries that read gave it
    /// (which the server delivered to this consumer), or none.
    Release(String, Reply),
}

type Reply = oneshot::Sender<Result<Vec<Entry>, TransportError>>;

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

struct Request {
    key: String,
    count: usize,
    block: Duration,
    reply: Reply,
}

impl Hub {
    /// The lane of `key`: one key's reads, acknowledgements and release
    /// are taken in order by one lane.
    fn lane(&self, key: &str) -> &mpsc::UnboundedSender<Now> {
        &self.now_tx[lane_of(key)]
    }

    /// Waits up to `block` for entries of `key` never delivered to the
    /// group, at most `count`, as part of the hub's shared read.
    pub(super) async fn read(
        &self,
        key: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Entry>, TransportError> {
        ask(&self.tx, |reply| {
            Msg::Read(Request {
                key: key.to_owned(),
                count: count.max(1),
                block,
                reply,
            })
        })
        .await
    }

    /// The entries of `key` never delivered to the group, at most `count`,
    /// without waiting for any: read together with the other keys asked
    /// for meanwhile.
    pub(super) async fn read_now(
        &self,
        key: &str,
        count: usize,
    ) -> Result<Vec<Entry>, TransportError> {
        ask(self.lane(key), |reply| {
            Now::Read(Request {
                key: key.to_owned(),
                count: count.max(1),
                block: Duration::ZERO,
                reply,
            })
        })
        .await
    }

    /// The entries of `key` pending to this consumer after the id `after`,
    /// at most `count`, and the ids of those deleted from the stream while
    /// pending: read together with the other keys asked for meanwhile. A
    /// worker over 1,000 tenants reads its own pending entries at its
    /// start, after each reconnect and at its stop: 16 commands where
    /// nothing is pending, rather than 1,000. A command the server refuses
    /// for one key (its group gone) is sent again one key each, so that
    /// the other keys' reads pass.
    pub(super) async fn read_pending(
        &self,
        key: &str,
        count: usize,
        after: &str,
    ) -> Result<History, TransportError> {
        ask(self.lane(key), |reply| {
            Now::Pending(Pending {
                key: key.to_owned(),
                count: count.max(1),
                after: after.to_owned(),
                reply,
            })
        })
        .await
    }

    /// Acknowledges `ids` of `key` in the hub's group, together with the
    /// other keys acknowledged or read meanwhile.
    pub(super) async fn ack(&self, key: &str, ids: &[String]) -> Result<(), TransportError> {
        ask(self.lane(key), |reply| {
            Now::Ack(Ack {
                key: key.to_owned(),
                ids: ids.to_vec(),
                reply,
            })
        })
        .await
    }

    /// Waits until no read in flight holds `key` (a loop that stopped
    /// waiting, before it reads its own pending entries, which such a read
    /// could still add to); returns the entries that read gave the key.
    ///
    /// The same for the non-blocking reads: once the batch that may hold a
    /// read of `key` has ended, the entries it gave the key after its loop
    /// stopped waiting.
    pub(super) async fn release(&self, key: &str) -> Result<Vec<Entry>, TransportError> {
        let (reply, rx) = oneshot::channel();
        let mut entries = match self.tx.send(Msg::Release(key.to_owned(), reply)) {
            Ok(()) => rx.await.unwrap_or_else(|_| Ok(Vec::new()))?,
            // No hub, no read in flight.
            Err(_) => Vec::new(),
        };
        let (reply, rx) = oneshot::channel();
        if self
            .lane(key)
            .send(Now::Release(key.to_owned(), reply))
            .is_ok()
        {
            entries.extend(rx.await.unwrap_or_else(|_| Ok(Vec::new()))?);
        }
        Ok(entries)
    }
}

/// Sends `to` the message `message` makes around a reply channel, and
/// waits for the answer; a hub or lane that is gone answers [`gone`].
async fn ask<M, T>(
    to: &mpsc::UnboundedSender<M>,
    message: impl FnOnce(oneshot::Sender<Result<T, TransportError>>) -> M,
) -> Result<T, TransportError> {
    let (reply, rx) = oneshot::channel();
    if to.send(message(reply)).is_err() {
        return Err(gone());
    }
    rx.await.unwrap_or_else(|_| Err(gone()))
}

/// The index of the lane of `key`: the same in every call (`DefaultHasher`
/// has fixed keys).
fn lane_of(key: &str) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(key) as usize % LANES
}

fn gone() -> TransportError {
    connection_error("the shared reader stopped".to_owned())
}

/// An error that reads as a lost connection, which the reading loop
/// answers by reading its own pending entries again.
fn connection_error(message: String) -> TransportError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        message,
    ))
    .into()
}

/// The error of a failed shared read, for each loop that waited in it:
/// `NOGROUP` stays `NOGROUP` (the loop makes its group again), anything
/// else reads as a lost connection.
fn share(e: &TransportError) -> TransportError {
    if e.is_no_group() {
        TransportError::Protocol {
            command: "XREADGROUP",
            reason: format!("NOGROUP (in a shared read) {e}"),
        }
    } else {
        connection_error(format!("the shared read failed: {e}"))
    }
}

struct Waiter {
    count: usize,
    deadline: Instant,
    reply: Reply,
}

struct State {
    group: String,
    consumer: String,
    endpoint: Endpoint,
    shared: SharedConnection,
    connect_timeout: Duration,
    /// The dedicated connection, with its `CLIENT ID` if the server gave it.
    conn: Option<(MultiplexedConnection, Option<i64>)>,
    /// Whether `CLIENT UNBLOCK` may end a read early.
    unblock: bool,
    waiting: HashMap<String, Waiter>,
}

impl State {
    /// Takes a message between reads: a key to wait on, or a key released,
    /// which no read holds now.
    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Read(r) => {
                let waiter = Waiter {
                    count: r.count,
                    deadline: Instant::now() + r.block,
                    reply: r.reply,
                };
                self.waiting.insert(r.key, waiter);
            }
            Msg::Release(key, reply) => {
                self.waiting.remove(&key);
                let _ = reply.send(Ok(Vec::new()));
            }
        }
    }

    /// Answers with nothing the loops whose wait ends by `by`, and forgets
    /// those that stopped waiting.
    fn answer_due(&mut self, by: Instant) {
        // A closed receiver is a loop that stopped waiting: nothing to send.
        self.waiting.retain(|_, w| !w.reply.is_closed());
        let due: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.deadline <= by)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            if let Some(w) = self.waiting.remove(&k) {
                let _ = w.reply.send(Ok(Vec::new()));
            }
        }
    }

    async fn connect(&mut self) -> Result<(), TransportError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let client = self.endpoint.client().await?;
        // No response timeout: a blocking read legitimately waits for
        // `BLOCK`; the reading loops bound each of their reads.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None);
        let mut conn = match tokio::time::timeout(
            self.connect_timeout,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        {
            Ok(conn) => conn?,
            Err(_) => {
                return Err(TransportError::timed_out(format!(
                    "connecting the shared reader took more than {:?}",
                    self.connect_timeout
                )))
            }
        };
        let id = match self.unblock {
            true => redis::cmd("CLIENT")
                .arg("ID")
                .query_async::<i64>(&mut conn)
                .await
                .ok(),
            false => None,
        };
        if id.is_none() && self.unblock {
            self.unblock = false;
            tracing::debug!(group = %self.group,
                "CLIENT ID refused: shared reads block for at most {JOIN_BOUND:?}");
        }
        self.conn = Some((conn, id));
        Ok(())
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        loop {
            let now = Instant::now();
            let slack = self
                .waiting
                .values()
                .map(|w| w.deadline.saturating_duration_since(now))
                .max()
                .unwrap_or_default()
                / SLACK_DIVISOR;
            self.answer_due(now + slack.min(Duration::from_millis(250)));
            if self.waiting.is_empty() {
                match rx.recv().await {
                    Some(msg) => self.take(msg),
                    None => return,
                }
            }
            while let Ok(msg) = rx.try_recv() {
                self.take(msg);
            }
            if self.waiting.is_empty() {
                continue;
            }
            if let Err(e) = self.connect().await {
                tracing::warn!(group = %self.group, error = %e, "connecting the shared reader failed");
                for (_, w) in self.waiting.drain() {
                    let _ = w.reply.send(Err(share(&e)));
                }
                continue;
            }
            if !self.round(&mut rx).await {
                return;
            }
        }
    }

    /// One shared read over every waiting key; false when every handle is
    /// gone.
    async fn round(&mut self, rx: &mut mpsc::UnboundedReceiver<Msg>) -> bool {
        let keys: Vec<String> = self.waiting.keys().cloned().collect();
        let now = Instant::now();
        let earliest = self
            .waiting
            .values()
            .map(|w| w.deadline)
            .min()
            .unwrap_or(now);
        let mut block = earliest
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        if !self.unblock {
            block = block.min(JOIN_BOUND);
        }
        let count = self.waiting.values().map(|w| w.count).min().unwrap_or(1);
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1))
            .arg("STREAMS");
        for k in &keys {
            cmd.arg(k);
        }
        for _ in &keys {
            cmd.arg(">");
        }
        let Some((conn, id)) = self.conn.as_mut() else {
            return true;
        };
        let id = *id;
        let mut conn = conn.clone();
        let started = Instant::now();
        let read = async move { cmd.query_async::<Value>(&mut conn).await };
        tokio::pin!(read);
        let mut unblocking: Option<
            std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>,
        > = None;
        let mut unblocked = false;
        let mut joined = Vec::new();
        let mut released: Vec<(String, Reply)> = Vec::new();
        let reply = loop {
            tokio::select! {
                reply = &mut read => break reply,
                msg = rx.recv() => {
                    // The map holds the keys of this read until it ends.
                    let wake = match msg {
                        None => return false,
                        Some(Msg::Read(r)) => {
                            let new = !self.waiting.contains_key(&r.key);
                            joined.push(Msg::Read(r));
                            new
                        }
                        Some(Msg::Release(key, reply)) => {
                            if self.waiting.contains_key(&key) {
                                released.push((key, reply));
                                true
                            } else {
                                let _ = reply.send(Ok(Vec::new()));
                                false
                            }
                        }
                    };
                    if let (true, true, false, Some(id)) = (wake, self.unblock, unblocked, id) {
                        unblocked = true;
                        let at = started + UNBLOCK_AFTER;
                        unblocking = Some(Box::pin(unblock(self.shared.clone(), id, at)));
                    }
                }
                ok = async {
                    match unblocking.as_mut() {
                        Some(f) => f.as_mut().await,
                        None => std::future::pending().await,
                    }
                }, if unblocking.is_some() => {
                    unblocking = None;
                    if !ok {
                        self.unblock = false;
                        tracing::debug!(group = %self.group,
                            "CLIENT UNBLOCK refused: shared reads block for at most {JOIN_BOUND:?}");
                    }
                }
            }
        };
        let mut released: HashMap<String, Reply> = released.into_iter().collect();
        for key in released.keys() {
            self.waiting.remove(key);
        }
        for msg in joined {
            self.take(msg);
        }
        match reply
            .map_err(TransportError::from)
            .and_then(super::reply::read_streams)
        {
            Ok(streams) => {
                for (key, entries) in streams {
                    let reply = match released.remove(&key) {
                        Some(reply) => Some(reply),
                        None => self.waiting.remove(&key).map(|w| w.reply),
                    };
                    let sent = match reply {
                        Some(reply) => reply.send(Ok(entries)),
                        None => Err(Ok(entries)),
                    };
                    if let Err(Ok(entries)) = sent {
                        tracing::debug!(stream = %key, group = %self.group, count = entries.len(),
                            "entries read for a loop that stopped waiting: they stay pending to this consumer, which reads them back");
                    }
                }
            }
            Err(e) => {
                if !e.is_no_group() {
                    // The connection may be anywhere in a reply: a new one.
                    self.conn = None;
                }
                for k in &keys {
                    if let Some(w) = self.waiting.remove(k) {
                        let _ = w.reply.send(Err(share(&e)));
                    }
                }
            }
        }
        // A released key whose read gave it nothing: no read holds it now.
        for (_, reply) in released {
            let _ = reply.send(Ok(Vec::new()));
        }
        true
    }
}

/// One lane of a hub: the non-blocking reads (of new entries, and of each
/// loop's own pending entries) and the acknowledgements of the keys
/// hashed to it ([`lane_of`]), on its own connection with the hand-written
/// parser where the server is reached over TCP or TLS that checks
/// certificates, else the shared connection.
struct NowLane {
    group: String,
    consumer: String,
    endpoint: Endpoint,
    shared: SharedConnection,
    own: Option<RespConnection>,
    own_tried: bool,
    /// Entries read for a key whose loop had stopped waiting: delivered to
    /// this consumer, they go to the key's next read, or its release.
    orphans: HashMap<String, Vec<Entry>>,
}

/// One command of a batch, and whom its reply answers.
enum Sent {
    Read(redis::Cmd, Vec<Request>),
    Pending(redis::Cmd, Vec<Pending>),
    Ack(redis::Cmd, Ack),
}

impl Sent {
    fn cmd(&self) -> &redis::Cmd {
        match self {
            Sent::Read(cmd, _) | Sent::Pending(cmd, _) | Sent::Ack(cmd, _) => cmd,
        }
    }

    /// Answers with the command's reply. A read of pending entries over
    /// several keys that the server refused (one key's group gone, a key
    /// that is no stream: the server checks every key before reading any)
    /// is put in `alone`, to be read again one key per command, so that
    /// the error is only its key's.
    fn answer(
        self,
        result: Piped,
        orphans: &mut HashMap<String, Vec<Entry>>,
        alone: &mut Vec<Pending>,
    ) {
        match self {
            Sent::Read(_, requests) => {
                answer(requests, result.map(Option::unwrap_or_default), orphans)
            }
            Sent::Pending(_, requests) if requests.len() > 1 && result.is_err() => {
                alone.extend(requests);
            }
            Sent::Pending(_, requests) => {
                answer_pending(requests, result.map(Option::unwrap_or_default))
            }
            Sent::Ack(_, ack) => {
                let _ = ack.reply.send(result.map(|_| ()));
            }
        }
    }

    /// Answers with the error of the batch.
    fn fail(self, e: &TransportError) {
        match self {
            Sent::Read(_, requests) => {
                for r in requests {
                    let _ = r.reply.send(Err(share(e)));
                }
            }
            Sent::Pending(_, requests) => {
                for r in requests {
                    let _ = r.reply.send(Err(share(e)));
                }
            }
            Sent::Ack(_, ack) => {
                let _ = ack.reply.send(Err(connection_error(format!(
                    "the shared connection failed: {e}"
                ))));
            }
        }
    }
}

impl NowLane {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Now>) {
        let mut asked = Vec::new();
        while rx.recv_many(&mut asked, NOW_BATCH).await > 0 {
            // A closed receiver is a loop that stopped waiting.
            asked.retain(|m| !m.closed());
            let (mut acks, mut reads, mut pending, mut released) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for m in asked.drain(..) {
                match m {
                    Now::Ack(ack) => acks.push(ack),
                    // What a read of the key got after its loop stopped
                    // waiting is the next read's.
                    Now::Read(r) if self.orphans.contains_key(&r.key) => {
                        let entries = self.orphans.remove(&r.key).unwrap_or_default();
                        self.hand(r, entries);
                    }
                    Now::Read(r) => reads.push(r),
                    Now::Pending(p) => {
                        // Entries kept for the key are pending to this
                        // consumer past the ids its loop saw: this read
                        // returns them, and they must not be handed out a
                        // second time by the key's next read.
                        self.orphans.remove(&p.key);
                        pending.push(p);
                    }
                    Now::Release(key, reply) => released.push((key, reply)),
                }
            }
            let sent = self.commands(acks, reads, pending);
            if !sent.is_empty() {
                let alone = self.send(sent).await;
                if !alone.is_empty() {
                    let sent = alone
                        .into_iter()
                        .map(|p| self.read_pending(vec![p]))
                        .collect();
                    // One key each: none is put aside again.
                    self.send(sent).await;
                }
            }
            for (key, reply) in released {
                let entries = self.orphans.remove(&key).unwrap_or_default();
                let _ = reply.send(Ok(entries));
            }
        }
    }

    /// Answers `r` with `entries`, kept for the key's next read if its loop
    /// stopped waiting.
    fn hand(&mut self, r: Request, entries: Vec<Entry>) {
        if let Err(Ok(entries)) = r.reply.send(Ok(entries)) {
            keep(&mut self.orphans, r.key, entries);
        }
    }

    /// The commands of a batch: an `XACK` per acknowledgement (so that
    /// no read returns what is acknowledged), then the reads, and the
    /// reads of pending entries, those asking for as many entries
    /// together, at most [`KEYS_PER_READ`] keys in one, and a key at most
    /// once in one.
    fn commands(
        &self,
        acks: Vec<Ack>,
        mut reads: Vec<Request>,
        mut pending: Vec<Pending>,
    ) -> Vec<Sent> {
        let mut sent: Vec<Sent> = acks
            .into_iter()
            .map(|ack| {
                let mut cmd = redis::cmd("XACK");
                cmd.arg(&ack.key).arg(&self.group).arg(&ack.ids);
                Sent::Ack(cmd, ack)
            })
            .collect();
        reads.sort_by_key(|r| r.count);
        sent.extend(together(reads, |r| (&r.key, r.count)).map(|r| self.read(r)));
        pending.sort_by_key(|p| p.count);
        sent.extend(together(pending, |p| (&p.key, p.count)).map(|p| self.read_pending(p)));
        sent
    }

    /// `XREADGROUP GROUP <group> <consumer> COUNT <count> STREAMS <keys…>
    /// <ids…>`.
    fn xreadgroup<'a>(
        &self,
        count: usize,
        keys: impl Iterator<Item = &'a str>,
        ids: impl Iterator<Item = &'a str>,
    ) -> redis::Cmd {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS");
        for k in keys {
            cmd.arg(k);
        }
        for id in ids {
            cmd.arg(id);
        }
        cmd
    }

    fn read(&self, requests: Vec<Request>) -> Sent {
        let count = requests.first().map_or(1, |r| r.count);
        let keys = requests.iter().map(|r| r.key.as_str());
        let cmd = self.xreadgroup(count, keys, requests.iter().map(|_| ">"));
        Sent::Read(cmd, requests)
    }

    fn read_pending(&self, requests: Vec<Pending>) -> Sent {
        let count = requests.first().map_or(1, |r| r.count);
        let keys = requests.iter().map(|r| r.key.as_str());
        let cmd = self.xreadgroup(count, keys, requests.iter().map(|r| r.after.as_str()));
        Sent::Pending(cmd, requests)
    }

    /// Sends the commands of a batch and answers each with its reply;
    /// returns the reads of pending entries to send again one key each
    /// ([`Sent::answer`]).
    async fn send(&mut self, sent: Vec<Sent>) -> Vec<Pending> {
        if !self.own_tried {
            // Tried again at the next batch if the address cannot be had.
            if let Ok(Ok(client)) = tokio::time::timeout(NOW_BOUND, self.endpoint.client()).await {
                self.own_tried = true;
                self.own = RespConnection::for_info(client.get_connection_info(), &self.endpoint);
            }
        }
        let orphans = &mut self.orphans;
        let mut alone = Vec::new();
        let Some(conn) = self.own.as_mut() else {
            let replies = futures::future::join_all(sent.iter().map(|s| {
                let mut conn = self.shared.clone();
                async move { s.cmd().query_async::<Value>(&mut conn).await }
            }))
            .await;
            for (s, reply) in sent.into_iter().zip(replies) {
                let result = match (&s, reply) {
                    (_, Err(e)) => Err(e.into()),
                    (Sent::Read(..) | Sent::Pending(..), Ok(v)) => {
                        super::reply::read_streams_history(v).map(Some)
                    }
                    (Sent::Ack(..), Ok(_)) => Ok(None),
                };
                s.answer(result, orphans, &mut alone);
            }
            return alone;
        };
        let packed: Vec<(Vec<u8>, bool)> = sent
            .iter()
            .map(|s| {
                let streams = matches!(s, Sent::Read(..) | Sent::Pending(..));
                (s.cmd().get_packed_command(), streams)
            })
            .collect();
        let mut waiting: Vec<Option<Sent>> = sent.into_iter().map(Some).collect();
        let piped = conn
            .pipeline(&packed, NOW_BOUND, |i, result| {
                if let Some(s) = waiting.get_mut(i).and_then(Option::take) {
                    s.answer(result, orphans, &mut alone);
                }
            })
            .await;
        if let Err((_, e)) = piped {
            for s in waiting.into_iter().flatten() {
                s.fail(&e);
            }
        }
        alone
    }
}

/// `requests` (sorted by count) in the groups that one command reads:
/// those asking for as many entries, at most [`KEYS_PER_READ`] keys, and a
/// key at most once; `of` gives a request's key and count.
fn together<R>(
    requests: Vec<R>,
    of: impl Fn(&R) -> (&String, usize),
) -> impl Iterator<Item = Vec<R>> {
    let mut groups: Vec<Vec<R>> = Vec::new();
    for r in requests {
        let (key, count) = of(&r);
        let fits = groups.last().is_some_and(|open| {
            open.first().is_none_or(|f| of(f).1 == count)
                && open.len() < KEYS_PER_READ
                && open.iter().all(|o| of(o).0 != key)
        });
        match groups.last_mut() {
            Some(open) if fits => open.push(r),
            _ => groups.push(vec![r]),
        }
    }
    groups.into_iter()
}

/// Keeps `entries` of `key` for its next read or release.
fn keep(orphans: &mut HashMap<String, Vec<Entry>>, key: String, entries: Vec<Entry>) {
    if !entries.is_empty() {
        tracing::debug!(stream = %key, count = entries.len(),
            "entries read for a loop that stopped waiting: kept for its next read");
        orphans.entry(key).or_default().extend(entries);
    }
}

/// Answers the requests of one read with the entries of each key, nothing
/// for a key without any, or the read's error.
fn answer(
    requests: Vec<Request>,
    result: Result<Vec<StreamRead>, TransportError>,
    orphans: &mut HashMap<String, Vec<Entry>>,
) {
    match result {
        Ok(streams) => {
            // `>` only returns entries that exist: nothing is deleted.
            let mut by_key: HashMap<String, Vec<Entry>> = streams
                .into_iter()
                .map(|(key, entries, _)| (key, entries))
                .collect();
            for r in requests {
                let entries = by_key.remove(&r.key).unwrap_or_default();
                if let Err(Ok(entries)) = r.reply.send(Ok(entries)) {
                    keep(orphans, r.key, entries);
                }
            }
        }
        Err(e) => {
            for r in requests {
                let _ = r.reply.send(Err(share(&e)));
            }
        }
    }
}

/// Answers the reads of pending entries of one command with the entries
/// and deleted ids of each key (nothing for a key the reply does not
/// name), or the command's error.
fn answer_pending(requests: Vec<Pending>, result: Result<Vec<StreamRead>, TransportError>) {
    match result {
        Ok(streams) => {
            let mut by_key: HashMap<String, History> = streams
                .into_iter()
                .map(|(key, entries, deleted)| (key, (entries, deleted)))
                .collect();
            for p in requests {
                let _ = p.reply.send(Ok(by_key.remove(&p.key).unwrap_or_default()));
            }
        }
        Err(e) => {
            for p in requests {
                let _ = p.reply.send(Err(share(&e)));
            }
        }
    }
}

/// Ends the blocking read of the client `id` (as if its time ran out),
/// not before `at`, trying again while it is not blocked yet (the read may
/// still be on its way); false if the server refuses the command.
async fn unblock(shared: SharedConnection, id: i64, at: Instant) -> bool {
    tokio::time::sleep_until(at).await;
    loop {
        let mut conn = shared.clone();
        match redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(id)
            .query_async::<i64>(&mut conn)
            .await
        {
            Ok(1) => return true,
            Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::resp::tests::create_group;
    use super::*;
    use redis::aio::ConnectionManagerConfig;

    /// One command reads at most 64 keys, each once, all asking for as
    /// many entries.
    #[test]
    fn requests_go_together_by_count_at_most_64_keys_each_key_once() {
        let sizes = |requests: Vec<(String, usize)>| {
            together(requests, |r| (&r.0, r.1))
                .map(|g| g.len())
                .collect::<Vec<_>>()
        };
        let keys = |n: usize, count: usize| (0..n).map(move |i| (format!("k{i}"), count));
        assert_eq!(sizes(keys(130, 10).collect()), [64, 64, 2]);
        assert_eq!(sizes(keys(3, 10).chain(keys(2, 20)).collect()), [3, 2]);
        let twice = vec![
            ("a".to_owned(), 1),
            ("a".to_owned(), 1),
            ("b".to_owned(), 1),
        ];
        assert_eq!(sizes(twice), [1, 2]);
        assert!(sizes(Vec::new()).is_empty());
    }

    async fn xadd(conn: &mut MultiplexedConnection, key: &str) -> String {
        redis::cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("type")
            .arg("t")
            .query_async(conn)
            .await
            .unwrap()
    }

    async fn hub_of(server: &tidings_testkit::RedisServer) -> Arc<Hub> {
        let endpoint = Endpoint::parse(&server.url(), &Default::default()).unwrap();
        let client = endpoint.client().await.unwrap();
        let shared =
            SharedConnection::connect(endpoint.clone(), client, ConnectionManagerConfig::new())
                .await
                .unwrap();
        Hubs::default().get("g", "c", &endpoint, &shared, Duration::from_secs(1))
    }

    /// A consumer's own pending entries are read through the lanes, several
    /// keys at a time: each key gets its own entries after the id it asked
    /// from, the ids of those deleted from the stream while pending apart,
    /// and a key with nothing pending gets nothing. On one thread, the
    /// three requests are all queued before a lane runs: one command per
    /// lane.
    #[tokio::test]
    async fn pending_entries_of_several_keys_are_read_together_with_the_deleted_apart() {
        let server = tidings_testkit::RedisServer::start();
        let mut admin = server.connection().await;
        let keys = ["a", "b", "idle"];
        let mut ids = HashMap::new();
        for key in keys {
            let mut added = Vec::new();
            for _ in 0..3 {
                added.push(xadd(&mut admin, key).await);
            }
            ids.insert(key, added);
            create_group(&mut admin, key).await;
        }
        let hub = hub_of(&server).await;
        // Delivered to this consumer, and left pending.
        for key in ["a", "b"] {
            assert_eq!(hub.read_now(key, 10).await.unwrap().len(), 3);
        }
        let _: i64 = redis::cmd("XDEL")
            .arg("b")
            .arg(&ids["b"][1])
            .query_async(&mut admin)
            .await
            .unwrap();
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut admin)
            .await
            .unwrap();
        let reads = futures::future::join_all([
            hub.read_pending("a", 10, &ids["a"][0]),
            hub.read_pending("b", 10, "0"),
            hub.read_pending("idle", 10, "0"),
        ])
        .await;
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut admin)
            .await
            .unwrap();
        let calls = stats
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_xreadgroup:calls="))
            .and_then(|l| l.split(',').next())
            .unwrap_or("0");
        // One command per lane the keys hash to.
        let lanes: std::collections::HashSet<usize> = keys.iter().map(|k| lane_of(k)).collect();
        assert_eq!(calls, lanes.len().to_string(), "{stats}");
        let [a, b, idle] = <[_; 3]>::try_from(reads).ok().unwrap();
        let of = |h: &History| h.0.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        let (a, b, idle) = (a.unwrap(), b.unwrap(), idle.unwrap());
        assert_eq!(of(&a), ids["a"][1..]);
        assert!(a.1.is_empty());
        assert_eq!(of(&b), [ids["b"][0].clone(), ids["b"][2].clone()]);
        assert_eq!(b.1, [ids["b"][1].clone()]);
        assert!(idle.0.is_empty() && idle.1.is_empty());
        // One key's group gone: the server refuses the whole command, which
        // is read again one key each, and the error is that key's alone.
        let _: i64 = redis::cmd("XGROUP")
            .arg("DESTROY")
            .arg("idle")
            .arg("g")
            .query_async(&mut admin)
            .await
            .unwrap();
        let reads = futures::future::join_all([
            hub.read_pending("a", 10, "0"),
            hub.read_pending("b", 10, "0"),
            hub.read_pending("idle", 10, "0"),
        ])
        .await;
        let [a, b, idle] = <[_; 3]>::try_from(reads).ok().unwrap();
        assert_eq!(a.unwrap().0.len(), 3);
        assert_eq!(b.unwrap().0.len(), 2);
        let e = idle.unwrap_err();
        assert!(e.is_no_group(), "{e}");
    }

    /// Entries that a batch read for a loop that had stopped waiting (the
    /// server held the read until after the loop gave up) are what the
    /// key's release returns: the loop handles them, instead of leaving
    /// them pending until claimed. Two keys on two lanes: each release
    /// gives its own key's entries, and acknowledgements on both lanes
    /// leave nothing pending.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_ends_after_its_loop_stopped_waiting_gives_the_release_its_entries() {
        let server = tidings_testkit::RedisServer::start();
        let mut admin = server.connection().await;
        let first = "k";
        let second = (0..)
            .map(|i| format!("k{i}"))
            .find(|k| lane_of(k) != lane_of(first))
            .unwrap();
        let keys = [first, second.as_str()];
        for (n, key) in [3, 2].into_iter().zip(keys) {
            for _ in 0..n {
                xadd(&mut admin, key).await;
            }
            create_group(&mut admin, key).await;
        }
        let hub = hub_of(&server).await;
        // `XREADGROUP` writes (the pending list): held by the server while
        // writes are paused.
        let _: Value = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(400)
            .arg("WRITE")
            .query_async(&mut admin)
            .await
            .unwrap();
        let waiting: Vec<_> = keys
            .iter()
            .map(|key| {
                let (hub, key) = (hub.clone(), key.to_string());
                tokio::spawn(async move { hub.read_now(&key, 10).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(150)).await;
        for w in waiting {
            w.abort();
            let _ = w.await;
        }
        for (n, key) in [3, 2].into_iter().zip(keys) {
            let released = hub.release(key).await.unwrap();
            let ids: Vec<String> = released.iter().map(|e| e.id.clone()).collect();
            assert_eq!(ids.len(), n, "{key}: {ids:?}");
            // Nothing more for the key: they were handed out once.
            assert!(hub.release(key).await.unwrap().is_empty());
            hub.ack(key, &ids).await.unwrap();
            let pending: Value = redis::cmd("XPENDING")
                .arg(key)
                .arg("g")
                .query_async(&mut admin)
                .await
                .unwrap();
            let Value::Array(summary) = pending else {
                panic!("XPENDING said {pending:?}");
            };
            assert_eq!(summary.first(), Some(&Value::Int(0)), "{key}");
        }
    }
}
