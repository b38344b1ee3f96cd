//! Consumers: handlers grouped by stream and consumer group, run by workers
//! that read, decode, dispatch with bounded concurrency and acknowledge.
//!
//! One reading task per (stream, group) reads with `XREADGROUP`, sending the
//! next read while it hands out the entries of the last one (on a backlog,
//! before them; caught up, once they are handed out). It runs each
//! entry's first attempt itself for handlers that take one entry at a time,
//! and in a task per entry for handlers with a higher concurrency; it never
//! sleeps on behalf of a handler. Finished entries go to an acknowledging
//! task that batches their ids into as few `XACK`s as possible. Per-entry
//! policy (retries with backoff, dead letters, the inbox mark) lives in
//! `process` and `attempt`; a retry waits in a task of its own (`Retry::run`),
//! holding neither the reading loop nor the handler's concurrency slot. A
//! heartbeat task keeps the entries a worker holds from looking idle to the
//! `XAUTOCLAIM` of other workers.

mod options;
mod retry;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

pub use options::ConsumerOptions;
pub use retry::RetryPolicy;

use crate::bus::{Backend, Bus, Error};
use crate::dead_letter::field as dlq_field;
use crate::envelope::{now_millis, Envelope, Rfc3339Millis};
use crate::handler::{
    is_fatal, BoxFuture, Context, Handler, HandlerError, HandlerOptions, Outcome, StateType, States,
};
use crate::transport::{DeadLettered, Entry, ReadRequest, Transport, TransportError};
use crate::{DecodeError, Event};

/// A handler with its event type erased, so that one worker runs many.
trait ErasedHandler: Send + Sync {
    fn name(&self) -> &'static str;
    fn type_name(&self) -> &'static str;
    fn stream(&self) -> Option<&'static str>;
    fn options(&self) -> HandlerOptions;
    fn states(&self) -> Vec<StateType>;
    fn dispatch(
        &self,
        envelope: &Envelope,
        ctx: Context,
    ) -> Result<BoxFuture<'static, Result<Outcome, HandlerError>>, DecodeError>;
}

struct Erase<H>(H);

impl<H: Handler> ErasedHandler for Erase<H>
where
    H::Event: Event,
{
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn type_name(&self) -> &'static str {
        <H::Event as Event>::TYPE
    }
    fn stream(&self) -> Option<&'static str> {
        <H::Event as Event>::STREAM
    }
    fn options(&self) -> HandlerOptions {
        self.0.options()
    }
    fn states(&self) -> Vec<StateType> {
        self.0.states()
    }
    fn dispatch(
        &self,
        envelope: &Envelope,
        ctx: Context,
    ) -> Result<BoxFuture<'static, Result<Outcome, HandlerError>>, DecodeError> {
        let event = H::Event::decode(envelope.dataversion, &envelope.data)?;
        Ok(self.0.call(event, ctx))
    }
}

/// Builds a worker: handlers, shared state, options; then [`ConsumerBuilder::start`].
#[must_use]
pub struct ConsumerBuilder {
    bus: Bus,
    handlers: Vec<(Arc<dyn ErasedHandler>, Option<RetryPolicy>)>,
    default_retry: Option<RetryPolicy>,
    states: States,
    options: ConsumerOptions,
}

impl fmt::Debug for ConsumerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerBuilder")
            .field(
                "handlers",
                &self.handlers.iter().map(|h| h.0.name()).collect::<Vec<_>>(),
            )
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ConsumerBuilder {
    pub(crate) fn new(bus: Bus) -> Self {
        ConsumerBuilder {
            bus,
            handlers: Vec::new(),
            default_retry: None,
            states: States::default(),
            options: ConsumerOptions::default(),
        }
    }

    /// Adds a handler: the name of a `#[handler]` function.
    pub fn handler<H>(mut self, handler: H) -> Self
    where
        H: Handler,
        H::Event: Event,
    {
        self.handlers.push((Arc::new(Erase(handler)), None));
        self
    }

    /// Sets the retry policy of the handler added last; before any handler,
    /// the policy of every handler that gets none of its own. Without it, a
    /// handler gets [`RetryPolicy::from_retries`] of its `retries`.
    ///
    /// ```text
    /// bus.consumer()
    ///     .handler(index_file)
    ///     .retry(RetryPolicy::default().attempts(5).max_delay(Duration::from_secs(10)))
    ///     .start().await?;
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        match self.handlers.last_mut() {
            Some((_, p)) => *p = Some(policy),
            None => self.default_retry = Some(policy),
        }
        self
    }

    /// Gives handlers a shared value, which they take as `State<T>`.
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.insert(value);
        self
    }

    /// Sets how entries are read (count, block, start position, consumer name…).
    pub fn options(mut self, options: ConsumerOptions) -> Self {
        self.options = options;
        self
    }

    /// Creates every group that is missing and starts reading.
    ///
    /// ```text
    /// XGROUP CREATE ns:{stream} <group> <$|0> MKSTREAM      (BUSYGROUP ignored)
    /// ```
    ///
    /// Fails before reading anything if a handler's event has no stream or a
    /// handler takes a state the consumer was not given.
    pub async fn start(self) -> Result<Worker, Error> {
        if self.handlers.is_empty() {
            return Err(Error::NoHandler);
        }
        // (stream, group) -> handlers; a BTreeMap so that groups start in
        // a stable order.
        let mut groups: BTreeMap<(&'static str, &'static str), Vec<HandlerSlot>> = BTreeMap::new();
        for (h, policy) in &self.handlers {
            let stream = h.stream().ok_or(Error::NoStream {
                handler: h.name(),
                type_name: h.type_name(),
            })?;
            if let Some(missing) = h.states().into_iter().find(|s| !self.states.contains(s)) {
                return Err(Error::MissingState {
                    handler: h.name(),
                    state: missing.name,
                });
            }
            let options = h.options();
            let retry = policy
                .or(self.default_retry)
                .unwrap_or_else(|| RetryPolicy::from_retries(options.retries));
            groups
                .entry((stream, options.group))
                .or_default()
                .push(HandlerSlot {
                    handler: h.clone(),
                    limit: Arc::new(Semaphore::new(options.concurrency.max(1))),
                    concurrency: options.concurrency.max(1),
                    retry,
                });
        }

        let consumer = self
            .options
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.bus.source(), ulid::Ulid::new()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let states = Arc::new(self.states);
        let mut tasks = Vec::new();
        for ((stream, group), handlers) in groups {
            let key = self.bus.stream_key(stream);
            let spec = Arc::new(GroupSpec {
                key: key.clone(),
                dlq: self.bus.dead_letter_key(stream),
                group,
                consumer: consumer.clone(),
                handlers,
                bus: self.bus.clone(),
                states: states.clone(),
                options: self.options.clone(),
                held: Mutex::new(HashSet::new()),
            });
            let handle = match self.bus.backend() {
                Backend::Redis { streams, .. } => {
                    start_group(streams.clone(), spec, stop_rx.clone()).await?
                }
                Backend::Memory(m) => start_group(m.clone(), spec, stop_rx.clone()).await?,
            };
            tasks.push(GroupTask { key, group, handle });
        }
        Ok(Worker {
            stop: stop_tx,
            tasks,
            consumer,
        })
    }
}

struct GroupTask {
    key: String,
    group: &'static str,
    handle: JoinHandle<()>,
}

/// A running consumer. Stop it with [`Worker::shutdown`]; dropping it stops
/// reading too, without waiting for in-flight handlers.
pub struct Worker {
    stop: watch::Sender<bool>,
    tasks: Vec<GroupTask>,
    consumer: String,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("consumer", &self.consumer)
            .field(
                "groups",
                &self
                    .tasks
                    .iter()
                    .map(|t| (t.key.as_str(), t.group))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Worker {
    /// The consumer name this worker reads as, in every group.
    pub fn consumer_name(&self) -> &str {
        &self.consumer
    }

    /// Stops reading, waits for in-flight handlers, acknowledges what they
    /// finished, and returns. A read in progress is let finish (at most the
    /// `block` time) so that no entry is handed to this consumer unseen. An
    /// entry waiting for a retry is left pending, for another worker to claim
    /// once it is idle.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        let mut first_error = None;
        for t in std::mem::take(&mut self.tasks) {
            if let Err(e) = t.handle.await {
                first_error.get_or_insert(Error::Worker {
                    key: t.key,
                    group: t.group.to_owned(),
                    reason: e.to_string(),
                });
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stops at once, as a crash would: handlers are cancelled where they
    /// are, nothing more is acknowledged, and the entries the worker held
    /// stay pending until a live worker of the group claims them (after its
    /// `claim_idle`).
    pub fn abort(mut self) {
        for t in std::mem::take(&mut self.tasks) {
            t.handle.abort();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A handler of a group, with its concurrency limit and retry policy.
struct HandlerSlot {
    handler: Arc<dyn ErasedHandler>,
    limit: Arc<Semaphore>,
    /// The limit's size: at most this many of its entries at once.
    concurrency: usize,
    retry: RetryPolicy,
}

struct GroupSpec {
    key: String,
    dlq: String,
    group: &'static str,
    consumer: String,
    handlers: Vec<HandlerSlot>,
    bus: Bus,
    states: Arc<States>,
    options: ConsumerOptions,
    /// Ids of the entries this worker holds (being handled or waiting for a
    /// retry): what the heartbeat keeps from looking idle.
    held: Mutex<HashSet<HeldId>>,
}

/// An entry id in the held set: `<ms>-<seq>` as two numbers, which hash and
/// compare without an allocation and without hashing the id's text. Any
/// other id (never one of Redis's) is kept as its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HeldId {
    Parsed(u64, u64),
    Text(Box<str>),
}

impl HeldId {
    fn of(id: &str) -> Self {
        Self::parse(id.as_bytes()).unwrap_or_else(|| HeldId::Text(id.into()))
    }

    /// `<ms>-<seq>` in the only form that prints back the same: digits, no
    /// sign, no leading zero, each part within `u64`. One pass, as it runs
    /// for every entry read.
    fn parse(id: &[u8]) -> Option<Self> {
        let mut parts = [0u64; 2];
        let mut part = 0;
        let mut start = 0;
        for (i, &b) in id.iter().enumerate() {
            if b == b'-' && part == 0 {
                if i == start {
                    return None;
                }
                part = 1;
                start = i + 1;
                continue;
            }
            let digit = b.wrapping_sub(b'0');
            if digit > 9 || (i > start && id[start] == b'0') {
                return None;
            }
            parts[part] = parts[part].checked_mul(10)?.checked_add(u64::from(digit))?;
        }
        (part == 1 && start < id.len()).then_some(HeldId::Parsed(parts[0], parts[1]))
    }

    /// The id as Redis writes it.
    fn text(&self) -> String {
        match self {
            HeldId::Parsed(ms, seq) => format!("{ms}-{seq}"),
            HeldId::Text(t) => t.to_string(),
        }
    }
}

impl GroupSpec {
    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<HeldId>> {
        // The set is only inserted into and removed from; a panic elsewhere
        // cannot leave it inconsistent.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The inbox mark of an event in this group, in the stream's hash slot.
    fn mark(&self, event_id: &crate::Ulid) -> String {
        format!("{}:inbox:{}:{}", self.key, self.group, event_id)
    }
}

/// Removes an entry from the held set when its task ends, however it ends.
struct Held {
    spec: Arc<GroupSpec>,
    id: HeldId,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.spec.held().remove(&self.id);
    }
}

/// A task aborted when dropped, so that aborting a worker's group task also
/// stops the tasks it started.
struct AbortOnDrop(Option<JoinHandle<()>>);

impl AbortOnDrop {
    async fn join(mut self) -> Result<(), tokio::task::JoinError> {
        match self.0.take() {
            Some(h) => h.await,
            None => Ok(()),
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

async fn start_group<T: Transport>(
    transport: T,
    spec: Arc<GroupSpec>,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, Error> {
    transport
        .create_group(&spec.key, spec.group, &spec.options.start)
        .await?;
    let reader = transport.reader().await?;
    Ok(tokio::spawn(run_group(transport, reader, spec, stop)))
}

/// Whether the worker was stopped, or dropped before it was ever returned
/// (a `start()` cancelled half way), which closes the channel.
fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Waits for `d`, or less if the worker is stopped; returns whether it stopped.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if stopped(stop) {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// A finished entry for the acknowledging task, with its inbox mark.
struct Done {
    id: String,
    mark: Option<String>,
}

async fn run_group<T: Transport>(
    transport: T,
    mut reader: T::Reader,
    spec: Arc<GroupSpec>,
    mut stop: watch::Receiver<bool>,
) {
    let opts = &spec.options;
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Done>();
    let acker = AbortOnDrop(Some(tokio::spawn(ack_loop(
        transport.clone(),
        spec.clone(),
        ack_rx,
    ))));
    let _heartbeat = AbortOnDrop(Some(tokio::spawn(heartbeat_loop(
        transport.clone(),
        spec.clone(),
    ))));
    // Bounds the entries read and not yet finished, so that a slow handler
    // slows reading down instead of piling deliveries up in memory.
    let prefetch = Arc::new(Semaphore::new(opts.prefetch_or_default()));
    let mut inflight = JoinSet::new();
    let mut backoff = opts.min_backoff;
    let mut failing = false;
    let mut next_claim = tokio::time::Instant::now();
    // Entries read and not yet dispatched, each with its prefetch permit and
    // its place in the held set. Each turn of the loop reads the next batch
    // while it dispatches this one.
    let mut batch: Vec<(Entry, (OwnedSemaphorePermit, Held))> = Vec::new();
    // A full batch while the prefetch can take another one: the transport
    // may ask for it before this one is read out of the reply, so that Redis
    // prepares it meanwhile. Only this loop takes permits, so what is free
    // now is free when the next read returns that batch.
    let read_ahead = |got: usize| -> usize {
        if got >= opts.count && prefetch.available_permits() >= got + opts.count {
            opts.count
        } else {
            0
        }
    };

    while !stopped(&stop) {
        while let Some(done) = inflight.try_join_next() {
            log_task_end(&spec, done);
        }
        let free = prefetch.available_permits();
        if free == 0 && batch.is_empty() {
            // Wait for one delivery to finish, or for the stop.
            tokio::select! {
                permit = prefetch.clone().acquire_owned() => drop(permit),
                _ = stop.changed() => {}
            }
            continue;
        }
        let count = opts.count.min(free);
        let request = ReadRequest::new(&spec.key, spec.group, &spec.consumer, count, opts.block)
            .read_ahead(&read_ahead);
        let entry_stop = stop.clone();
        let read = async {
            if count == 0 {
                return None;
            }
            let mut result: Result<Vec<Entry>, TransportError> = Ok(Vec::new());
            if let Some(min_idle) = opts.claim_idle {
                if tokio::time::Instant::now() >= next_claim {
                    next_claim = tokio::time::Instant::now() + opts.claim_interval_or(min_idle);
                    result = transport.claim_idle(&mut reader, request, min_idle).await;
                }
            }
            if matches!(&result, Ok(v) if v.is_empty()) {
                // A read waiting for new entries ends at the stop, unless it
                // cannot be cancelled without losing what it read.
                let read = transport.read_group(&mut reader, request);
                result = if transport.read_is_cancel_safe() {
                    tokio::select! {
                        r = read => r,
                        _ = stop.changed() => Ok(Vec::new()),
                    }
                } else {
                    read.await
                };
            }
            Some(result)
        };
        // On a backlog (a full batch) the next read goes out first, so that
        // Redis prepares it while this batch is handled. Caught up, the
        // batch is handled first: the read would mostly wait for new
        // entries, and sending it first put a write on the way of every
        // event to its handler (about 15 us of p50 at 1k-5k events/s in the
        // benchmark, `bench/README.md`).
        // A handler that waits (I/O) lets the read go out at its first await.
        let backlog = batch.len() >= opts.count;
        let dispatching = dispatch(
            &transport,
            &spec,
            std::mem::take(&mut batch),
            &ack_tx,
            &entry_stop,
            &mut inflight,
        );
        let result = if backlog {
            futures::future::join(read, dispatching).await.0
        } else {
            futures::future::join(dispatching, read).await.1
        };

        match result {
            None => {}
            Some(Ok(entries)) => {
                if failing {
                    failing = false;
                    tracing::info!(stream = %spec.key, group = spec.group, "reading the stream again");
                }
                backoff = opts.min_backoff;
                admit(&transport, &spec, &prefetch, entries, &ack_tx, &mut batch).await;
            }
            Some(Err(e)) => {
                if e.is_no_group() {
                    // A server restarted without persistence lost the group
                    // (and maybe the stream): make it again and go on.
                    tracing::warn!(stream = %spec.key, group = spec.group, error = %e,
                        "consumer group is gone; creating it again");
                    if let Err(e) = transport
                        .create_group(&spec.key, spec.group, &opts.start)
                        .await
                    {
                        tracing::warn!(stream = %spec.key, group = spec.group, error = %e,
                            "creating the consumer group failed");
                    }
                } else {
                    tracing::warn!(
                        stream = %spec.key, group = spec.group, error = %e,
                        retry_in = ?backoff, "reading the stream failed; reconnecting"
                    );
                }
                failing = true;
                if pause(backoff, &mut stop).await {
                    break;
                }
                backoff = (backoff * 2).min(opts.max_backoff);
            }
        }
    }
    // What was read is handled, as if the stop had come before the read:
    // a read sent ahead too, as Redis delivered its entries to this consumer.
    match transport.read_ahead_rest(&mut reader).await {
        Ok(entries) => admit(&transport, &spec, &prefetch, entries, &ack_tx, &mut batch).await,
        Err(e) => tracing::warn!(stream = %spec.key, group = spec.group, error = %e,
            "reading the last batch read ahead failed; its entries stay pending until claimed"),
    }
    let entry_stop = stop.clone();
    dispatch(
        &transport,
        &spec,
        batch,
        &ack_tx,
        &entry_stop,
        &mut inflight,
    )
    .await;

    while let Some(done) = inflight.join_next().await {
        log_task_end(&spec, done);
    }
    drop(ack_tx);
    if let Err(e) = acker.join().await {
        tracing::error!(stream = %spec.key, group = spec.group, error = %e, "acknowledging task failed");
    }
}

/// Takes read entries into `batch`, each with its prefetch permit and its
/// place in the held set; with an inbox, those already handled are
/// acknowledged instead.
async fn admit<T: Transport>(
    transport: &T,
    spec: &Arc<GroupSpec>,
    prefetch: &Arc<Semaphore>,
    entries: Vec<Entry>,
    ack: &mpsc::UnboundedSender<Done>,
    batch: &mut Vec<(Entry, (OwnedSemaphorePermit, Held))>,
) {
    let entries = skip_marked(transport, spec, entries, ack).await;
    for entry in entries {
        let permit = match prefetch.clone().try_acquire_owned() {
            Ok(p) => p,
            // Rare: reads never ask for more than the free permits and
            // only the reading loop takes them; waiting is still correct.
            Err(_) => match prefetch.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        // Held from now on: the heartbeat keeps an entry that waits for its
        // handler's slot from looking idle too.
        let id = HeldId::of(&entry.id);
        spec.held().insert(id.clone());
        let held = Held {
            spec: spec.clone(),
            id,
        };
        batch.push((entry, (permit, held)));
    }
}

/// Starts the handling of read entries, in stream order: takes each
/// entry's handler slots (so that a handler with concurrency 1 sees the
/// stream's order, and a busy handler slows reading down), then runs it.
async fn dispatch<T: Transport>(
    transport: &T,
    spec: &Arc<GroupSpec>,
    batch: Vec<(Entry, (OwnedSemaphorePermit, Held))>,
    ack: &mpsc::UnboundedSender<Done>,
    stop: &watch::Receiver<bool>,
    inflight: &mut JoinSet<()>,
) {
    for (entry, held) in batch {
        let mut slots = Vec::new();
        if let Ok(env) = &entry.envelope {
            for (i, slot) in spec.handlers.iter().enumerate() {
                if slot.handler.type_name() == env.type_name {
                    if let Ok(p) = slot.limit.clone().acquire_owned().await {
                        slots.push((i, p));
                    }
                }
            }
        }
        // Handlers that take one entry at a time run here, in the reading
        // task: the loop would only wait for their slot before the next
        // entry anyway, and a task per entry (spawn, wake the reader, join)
        // would cost more than a short handler. A retry still waits in a
        // task of its own, so that it holds neither the loop nor the slot.
        let one_at_a_time = !slots.is_empty()
            && slots
                .iter()
                .all(|(i, _)| spec.handlers[*i].concurrency == 1);
        let delivery = Delivery {
            transport: transport.clone(),
            spec: spec.clone(),
            ack: ack.clone(),
            _held: held,
            stop: stop.clone(),
        };
        if one_at_a_time {
            if let Some(retry) = process(delivery, entry, slots).await {
                inflight.spawn(retry.run());
            }
        } else {
            // Boxed before it is spawned, so that the task is built around
            // a pointer rather than moved through `spawn` by value (about
            // 2,000 instructions per entry less); the cold paths inside
            // (retries, dead letters, publishing what a handler returns)
            // are boxed where they are taken, so that they do not size
            // every delivery's future.
            inflight.spawn(Box::pin(async move {
                if let Some(retry) = process(delivery, entry, slots).await {
                    Box::pin(retry.run()).await;
                }
            }));
        }
    }
}

fn log_task_end(spec: &GroupSpec, done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if !e.is_cancelled() {
            tracing::error!(stream = %spec.key, group = spec.group, error = %e,
                "entry task failed; entry left pending");
        }
    }
}

/// With an inbox, acknowledges the entries whose event the group already
/// handled and returns the others; one pipelined round trip per batch.
async fn skip_marked<T: Transport>(
    transport: &T,
    spec: &GroupSpec,
    entries: Vec<Entry>,
    ack: &mpsc::UnboundedSender<Done>,
) -> Vec<Entry> {
    if spec.options.inbox.is_none() || entries.is_empty() {
        return entries;
    }
    let marks: Vec<String> = entries
        .iter()
        .filter_map(|e| e.envelope.as_ref().ok().map(|env| spec.mark(&env.id)))
        .collect();
    let found = match transport.marked(&marks).await {
        Ok(found) => found,
        Err(e) => {
            // At least once: without the inbox's answer, handle them.
            tracing::warn!(stream = %spec.key, group = spec.group, error = %e,
                "reading the inbox failed; handling the batch anyway");
            return entries;
        }
    };
    let mut found = found.into_iter();
    entries
        .into_iter()
        .filter(|e| {
            let seen = e.envelope.is_ok() && found.next().unwrap_or(false);
            if seen {
                tracing::debug!(stream = %spec.key, group = spec.group, entry = %e.id,
                    "event already handled by this group (inbox); acknowledged");
                let _ = ack.send(Done {
                    id: e.id.clone(),
                    mark: None,
                });
            }
            !seen
        })
        .collect()
}

/// Acknowledges finished entries, every id that is waiting in one `XACK`
/// (pipelined after the inbox marks, with an inbox).
async fn ack_loop<T: Transport>(
    transport: T,
    spec: Arc<GroupSpec>,
    mut rx: mpsc::UnboundedReceiver<Done>,
) {
    const MAX_IDS_PER_ACK: usize = 1024;
    let mut done = Vec::with_capacity(64);
    let mut ids = Vec::with_capacity(64);
    let mut marks = Vec::new();
    while rx.recv_many(&mut done, MAX_IDS_PER_ACK).await > 0 {
        for d in done.drain(..) {
            ids.push(d.id);
            marks.extend(d.mark);
        }
        let result = match spec.options.inbox {
            Some(ttl) if !marks.is_empty() => {
                transport
                    .ack_marking(&spec.key, spec.group, &ids, &marks, ttl)
                    .await
            }
            _ => transport.ack(&spec.key, spec.group, &ids).await,
        };
        if let Err(e) = result {
            // Unacknowledged entries stay pending and are claimed again;
            // handlers are idempotent by contract.
            tracing::warn!(stream = %spec.key, group = spec.group, count = ids.len(), error = %e,
                "XACK failed; entries stay pending");
        }
        ids.clear();
        marks.clear();
    }
}

/// Resets the idle time of the entries this worker holds, every
/// `heartbeat`, so that no other worker claims an entry a slow handler is
/// still working on.
async fn heartbeat_loop<T: Transport>(transport: T, spec: Arc<GroupSpec>) {
    const IDS_PER_CLAIM: usize = 1000;
    let every = spec.options.heartbeat_or_default();
    loop {
        tokio::time::sleep(every).await;
        let ids: Vec<String> = spec.held().iter().map(HeldId::text).collect();
        for chunk in ids.chunks(IDS_PER_CLAIM) {
            if let Err(e) = transport
                .touch(&spec.key, spec.group, &spec.consumer, chunk)
                .await
            {
                tracing::warn!(stream = %spec.key, group = spec.group, error = %e,
                    "refreshing held entries failed; another worker may claim them");
                break;
            }
        }
    }
}

/// Why one handler failed on one attempt.
struct Failure {
    index: usize,
    error: String,
    fatal: bool,
}

fn rfc3339(ms: i64) -> String {
    Rfc3339Millis::from_millis(ms).as_str().to_owned()
}

/// What the handling of one delivered entry holds until it ends: how to
/// acknowledge it, its prefetch permit and its place in the held set.
struct Delivery<T> {
    transport: T,
    spec: Arc<GroupSpec>,
    ack: mpsc::UnboundedSender<Done>,
    _held: (OwnedSemaphorePermit, Held),
    stop: watch::Receiver<bool>,
}

/// An entry whose handlers failed and will be retried after `delay`.
struct Retry<T> {
    delivery: Delivery<T>,
    id: String,
    envelope: Arc<Envelope>,
    attempt: u32,
    first_failure: i64,
    delay: Duration,
    /// The handlers to run again.
    todo: Vec<usize>,
}

/// Runs every handler of the group that takes the entry's type once (the
/// first attempt of this delivery); acknowledges the entry when all
/// succeeded (and their returned events are published), moves it to dead
/// letters when one gives up, and returns the retry otherwise.
async fn process<T: Transport>(
    delivery: Delivery<T>,
    entry: Entry,
    slots: Vec<(usize, OwnedSemaphorePermit)>,
) -> Option<Retry<T>> {
    let Entry {
        id,
        envelope,
        deliveries,
    } = entry;
    let (transport, spec) = (&delivery.transport, &delivery.spec);
    let envelope = match envelope {
        Ok(e) => e,
        Err(e) => {
            let now = now_millis();
            let error = format!("entry is not a CloudEvents envelope: {e}");
            Box::pin(bury(
                transport, spec, &id, None, &error, deliveries, now, now,
            ))
            .await;
            return None;
        }
    };
    if slots.is_empty() {
        tracing::debug!(stream = %spec.key, group = spec.group, entry = %id, r#type = %envelope.type_name,
            "no handler of this group takes this type; acknowledged");
        let _ = delivery.ack.send(Done { id, mark: None });
        return None;
    }
    let allowed = slots
        .iter()
        .map(|(i, _)| spec.handlers[*i].retry.attempts)
        .max()
        .unwrap_or(1);
    if deliveries > allowed {
        // Earlier consumers took it this often and never finished: a worker
        // that keeps dying on it, or a dead-letter write that failed.
        let now = now_millis();
        let error = format!(
            "delivered {deliveries} times, more than the {allowed} attempts its handlers allow; \
             earlier consumers stopped while handling it"
        );
        let names = handler_names(spec, slots.iter().map(|(i, _)| *i));
        Box::pin(bury(
            transport,
            spec,
            &id,
            Some(names),
            &error,
            deliveries,
            now,
            now,
        ))
        .await;
        return None;
    }
    let todo = slots.into_iter().map(|(i, p)| (i, Some(p))).collect();
    attempt(delivery, id, envelope, deliveries, None, todo).await
}

impl<T: Transport> Retry<T> {
    /// Waits out each backoff and runs the failed handlers again, until they
    /// succeed or give up.
    async fn run(mut self) {
        loop {
            if pause(self.delay, &mut self.delivery.stop).await {
                tracing::info!(stream = %self.delivery.spec.key, group = self.delivery.spec.group,
                    entry = %self.id, "worker stopping during a retry wait; entry left pending for another worker");
                return;
            }
            let todo = self.todo.iter().map(|&i| (i, None)).collect();
            match attempt(
                self.delivery,
                self.id,
                self.envelope,
                self.attempt + 1,
                Some(self.first_failure),
                todo,
            )
            .await
            {
                Some(next) => self = next,
                None => return,
            }
        }
    }
}

/// One attempt of the handlers in `todo` (each with its concurrency slot,
/// taken here when not given): acknowledges, buries, or returns the retry.
async fn attempt<T: Transport>(
    delivery: Delivery<T>,
    id: String,
    envelope: Arc<Envelope>,
    attempt: u32,
    first_failure: Option<i64>,
    todo: Vec<(usize, Option<OwnedSemaphorePermit>)>,
) -> Option<Retry<T>> {
    let (transport, spec) = (&delivery.transport, &delivery.spec);
    let mut failures = Vec::new();
    for (index, permit) in todo {
        let slot = &spec.handlers[index];
        let _running = match permit {
            Some(p) => p,
            None => match slot.limit.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => return None,
            },
        };
        if let Err((error, fatal)) = run_handler(spec, slot, &envelope, &id).await {
            failures.push(Failure {
                index,
                error,
                fatal,
            });
        }
    }
    if failures.is_empty() {
        let mark = spec.options.inbox.map(|_| spec.mark(&envelope.id));
        let _ = delivery.ack.send(Done { id, mark });
        return None;
    }

    let now = now_millis();
    let first = first_failure.unwrap_or(now);
    let give_up = failures
        .iter()
        .any(|f| f.fatal || attempt >= spec.handlers[f.index].retry.attempts);
    let error = failures
        .iter()
        .map(|f| format!("{}: {}", spec.handlers[f.index].handler.name(), f.error))
        .collect::<Vec<_>>()
        .join("; ");
    if give_up {
        let names = handler_names(spec, failures.iter().map(|f| f.index));
        Box::pin(bury(
            transport,
            spec,
            &id,
            Some(names),
            &error,
            attempt,
            first,
            now,
        ))
        .await;
        return None;
    }
    let delay = failures
        .iter()
        .map(|f| spec.handlers[f.index].retry.delay_after(attempt))
        .max()
        .unwrap_or_default();
    tracing::warn!(stream = %spec.key, group = spec.group, entry = %id, attempt,
        retry_in = ?delay, error = %error, "handler failed; will retry");
    // Counted in the entry's delivery counter, so that a worker that
    // claims it after this one stopped goes on from here.
    if let Err(e) =
        Box::pin(transport.record_attempts(&spec.key, spec.group, &spec.consumer, &id, attempt))
            .await
    {
        tracing::warn!(stream = %spec.key, group = spec.group, entry = %id, error = %e,
            "recording the attempt failed");
    }
    Some(Retry {
        delivery,
        id,
        envelope,
        attempt,
        first_failure: first,
        delay,
        todo: failures.into_iter().map(|f| f.index).collect(),
    })
}

fn handler_names(spec: &GroupSpec, indexes: impl Iterator<Item = usize>) -> String {
    indexes
        .map(|i| spec.handlers[i].handler.name())
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs one handler once; a decode error and a [`fatal`](crate::fatal)
/// error say not to retry, and a panic counts as a retryable error.
async fn run_handler(
    spec: &GroupSpec,
    slot: &HandlerSlot,
    envelope: &Arc<Envelope>,
    id: &str,
) -> Result<(), (String, bool)> {
    let ctx = Context::delivery(
        envelope.clone(),
        id.to_owned(),
        spec.group,
        spec.bus.clone(),
        spec.states.clone(),
    );
    let future = slot
        .handler
        .dispatch(envelope, ctx.clone())
        .map_err(|e| (e.to_string(), true))?;
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(Ok(outcome)) => ctx.publish_outcome(&outcome).await.map_err(|e| {
            (
                format!("publishing the handler's events failed: {e}"),
                false,
            )
        }),
        Ok(Err(e)) => Err((e.to_string(), is_fatal(&e))),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".to_owned());
            Err((format!("handler panicked: {message}"), false))
        }
    }
}

/// Moves an entry to dead letters and acknowledges it, in one atomic step;
/// if that fails the entry stays pending and is claimed again later.
#[allow(clippy::too_many_arguments)]
async fn bury<T: Transport>(
    transport: &T,
    spec: &GroupSpec,
    id: &str,
    handler: Option<String>,
    error: &str,
    attempts: u32,
    first_failure: i64,
    last_failure: i64,
) {
    let mut extra = vec![(dlq_field::GROUP, spec.group.to_owned())];
    if let Some(h) = handler {
        extra.push((dlq_field::HANDLER, h));
    }
    extra.extend([
        (dlq_field::ERROR, error.to_owned()),
        (dlq_field::ATTEMPTS, attempts.to_string()),
        (dlq_field::FIRST_FAILURE, rfc3339(first_failure)),
        (dlq_field::LAST_FAILURE, rfc3339(last_failure)),
        (dlq_field::ENTRY_ID, id.to_owned()),
        (dlq_field::CONSUMER, spec.consumer.clone()),
    ]);
    match transport
        .dead_letter(&spec.key, &spec.dlq, spec.group, id, &extra)
        .await
    {
        Ok(DeadLettered::Written) => {
            tracing::error!(stream = %spec.key, group = spec.group, entry = %id, attempts,
                error, dead_letters = %spec.dlq, "entry moved to dead letters")
        }
        Ok(DeadLettered::Gone) => {
            tracing::debug!(stream = %spec.key, group = spec.group, entry = %id,
                "entry was deleted from the stream meanwhile; forgotten")
        }
        Ok(DeadLettered::NotPending) => {
            tracing::debug!(stream = %spec.key, group = spec.group, entry = %id,
                "entry was acknowledged by another consumer meanwhile")
        }
        Err(e) => {
            tracing::error!(stream = %spec.key, group = spec.group, entry = %id, error = %e,
                "writing the dead letter failed; entry left pending, to be claimed again")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HeldId;

    #[test]
    fn held_ids_print_back_as_the_entry_id_they_were_read_from() {
        for id in [
            "0-0",
            "0-1",
            "1732442400000-7",
            "18446744073709551615-18446744073709551615",
            // Not in Redis's own form: kept as text, still the same id.
            "01-1",
            "1-01",
            "+1-1",
            "18446744073709551616-0",
            "1-",
            "-1",
            "1",
            "a-b",
            "",
        ] {
            assert_eq!(HeldId::of(id).text(), id);
        }
        assert_eq!(HeldId::of("5-3"), HeldId::Parsed(5, 3));
        assert_eq!(HeldId::of("05-3"), HeldId::Text("05-3".into()));
        assert_ne!(HeldId::of("5-3"), HeldId::of("5-30"));
    }
}
