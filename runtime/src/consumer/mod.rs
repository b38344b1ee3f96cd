//! Consumers: handlers grouped by stream and consumer group, run by workers
//! that read, decode, dispatch with bounded concurrency and acknowledge.
//!
//! One reading task per (stream, group) reads with `XREADGROUP`, spawns one
//! task per entry, and never sleeps on behalf of a handler; finished entries
//! go to an acknowledging task that batches their ids into as few `XACK`s as
//! possible. Per-entry policy (retries with backoff, dead letters, an inbox)
//! belongs in [`process`], which runs in the entry's own task.

mod options;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

pub use options::ConsumerOptions;

use crate::bus::{Backend, Bus, Error};
use crate::envelope::Envelope;
use crate::handler::{
    BoxFuture, Context, Handler, HandlerError, HandlerOptions, Outcome, StateType, States,
};
use crate::transport::{Entry, ReadRequest, Transport, TransportError};
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
    handlers: Vec<Arc<dyn ErasedHandler>>,
    states: States,
    options: ConsumerOptions,
}

impl fmt::Debug for ConsumerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerBuilder")
            .field(
                "handlers",
                &self.handlers.iter().map(|h| h.name()).collect::<Vec<_>>(),
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
        self.handlers.push(Arc::new(Erase(handler)));
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
        // (stream key, group) -> handlers; a BTreeMap so that groups start in
        // a stable order.
        let mut groups: BTreeMap<(String, &'static str), Vec<Arc<dyn ErasedHandler>>> =
            BTreeMap::new();
        for h in &self.handlers {
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
            groups
                .entry((self.bus.stream_key(stream), h.options().group))
                .or_default()
                .push(h.clone());
        }

        let consumer = self
            .options
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.bus.source(), ulid::Ulid::new()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let states = Arc::new(self.states);
        let mut tasks = Vec::new();
        for ((key, group), handlers) in groups {
            let spec = Arc::new(GroupSpec {
                key: key.clone(),
                group,
                consumer: consumer.clone(),
                handlers: handlers
                    .into_iter()
                    .map(|h| {
                        let sem = Arc::new(Semaphore::new(h.options().concurrency.max(1)));
                        (h, sem)
                    })
                    .collect(),
                bus: self.bus.clone(),
                states: states.clone(),
                options: self.options.clone(),
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
    /// `block` time) so that no entry is handed to this consumer unseen.
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
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

struct GroupSpec {
    key: String,
    group: &'static str,
    consumer: String,
    handlers: Vec<(Arc<dyn ErasedHandler>, Arc<Semaphore>)>,
    bus: Bus,
    states: Arc<States>,
    options: ConsumerOptions,
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

/// Waits for `d`, or less if the worker is stopped; returns whether it stopped.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

async fn run_group<T: Transport>(
    transport: T,
    mut reader: T::Reader,
    spec: Arc<GroupSpec>,
    mut stop: watch::Receiver<bool>,
) {
    let opts = &spec.options;
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<String>();
    let acker = tokio::spawn(ack_loop(
        transport.clone(),
        spec.key.clone(),
        spec.group,
        ack_rx,
    ));
    // Bounds the entries read and not yet finished, so that a slow handler
    // slows reading down instead of piling deliveries up in memory.
    let prefetch = Arc::new(Semaphore::new(opts.prefetch_or_default()));
    let mut inflight = JoinSet::new();
    let mut backoff = opts.min_backoff;
    let mut next_claim = tokio::time::Instant::now();

    while !*stop.borrow() {
        while let Some(done) = inflight.try_join_next() {
            log_task_end(&spec, done);
        }
        let free = prefetch.available_permits();
        if free == 0 {
            // Wait for one delivery to finish, or for the stop.
            tokio::select! {
                permit = prefetch.clone().acquire_owned() => drop(permit),
                _ = stop.changed() => {}
            }
            continue;
        }
        let count = opts.count.min(free);
        let request = ReadRequest::new(&spec.key, spec.group, &spec.consumer, count, opts.block);

        let mut result: Result<Vec<Entry>, TransportError> = Ok(Vec::new());
        if let Some(min_idle) = opts.claim_idle {
            if tokio::time::Instant::now() >= next_claim {
                next_claim = tokio::time::Instant::now() + opts.claim_interval_or(min_idle);
                result = transport.claim_idle(&mut reader, request, min_idle).await;
            }
        }
        if matches!(&result, Ok(v) if v.is_empty()) {
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

        match result {
            Ok(entries) => {
                backoff = opts.min_backoff;
                for entry in entries {
                    let permit = match prefetch.clone().try_acquire_owned() {
                        Ok(p) => p,
                        // Cannot happen: `count` never exceeds the free permits
                        // and only this loop takes them; waiting is still correct.
                        Err(_) => match prefetch.clone().acquire_owned().await {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                    };
                    // Handler slots are taken here, in stream order, so that a
                    // handler with concurrency 1 sees entries in the order of
                    // the stream, and a busy handler slows reading down.
                    let mut slots = Vec::new();
                    if let Ok(env) = &entry.envelope {
                        for (i, (h, limit)) in spec.handlers.iter().enumerate() {
                            if h.type_name() == env.type_name {
                                if let Ok(p) = limit.clone().acquire_owned().await {
                                    slots.push((i, p));
                                }
                            }
                        }
                    }
                    inflight.spawn(process(spec.clone(), entry, slots, ack_tx.clone(), permit));
                }
            }
            Err(e) => {
                tracing::warn!(
                    stream = %spec.key, group = spec.group, error = %e,
                    retry_in = ?backoff, "reading the stream failed"
                );
                if pause(backoff, &mut stop).await {
                    break;
                }
                backoff = (backoff * 2).min(opts.max_backoff);
            }
        }
    }

    while let Some(done) = inflight.join_next().await {
        log_task_end(&spec, done);
    }
    drop(ack_tx);
    if let Err(e) = acker.await {
        tracing::error!(stream = %spec.key, group = spec.group, error = %e, "acknowledging task failed");
    }
}

fn log_task_end(spec: &GroupSpec, done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        // A panicking handler: its entry stays pending and will be claimed
        // again; the worker goes on.
        tracing::error!(stream = %spec.key, group = spec.group, error = %e, "handler task panicked; entry left pending");
    }
}

/// Acknowledges finished entries, every id that is waiting in one `XACK`.
async fn ack_loop<T: Transport>(
    transport: T,
    key: String,
    group: &'static str,
    mut rx: mpsc::UnboundedReceiver<String>,
) {
    const MAX_IDS_PER_ACK: usize = 1024;
    let mut ids = Vec::with_capacity(64);
    while rx.recv_many(&mut ids, MAX_IDS_PER_ACK).await > 0 {
        if let Err(e) = transport.ack(&key, group, &ids).await {
            // Unacknowledged entries stay pending and are claimed again;
            // handlers are idempotent by contract.
            tracing::warn!(stream = %key, group, count = ids.len(), error = %e, "XACK failed; entries stay pending");
        }
        ids.clear();
    }
}

/// Runs every handler of the group that takes the entry's type; acknowledges
/// the entry if all of them succeed (and their returned events are published).
async fn process(
    spec: Arc<GroupSpec>,
    entry: Entry,
    slots: Vec<(usize, OwnedSemaphorePermit)>,
    ack: mpsc::UnboundedSender<String>,
    _permit: OwnedSemaphorePermit,
) {
    let Entry { id, envelope } = entry;
    let envelope = match envelope {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(stream = %spec.key, group = spec.group, entry = %id, error = %e,
                "entry is not a valid envelope; left pending, not acknowledged");
            return;
        }
    };
    let matched = !slots.is_empty();
    let mut all_ok = true;
    for (index, _running) in slots {
        let handler = &spec.handlers[index].0;
        let ctx = Context::delivery(
            envelope.clone(),
            id.clone(),
            spec.group,
            spec.bus.clone(),
            spec.states.clone(),
        );
        let future = match handler.dispatch(&envelope, ctx.clone()) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(stream = %spec.key, group = spec.group, entry = %id,
                    handler = handler.name(), error = %e,
                    "event does not decode; left pending, not acknowledged");
                all_ok = false;
                continue;
            }
        };
        match future.await {
            Ok(outcome) => {
                if let Err(e) = ctx.publish_outcome(&outcome).await {
                    tracing::warn!(stream = %spec.key, group = spec.group, entry = %id,
                        handler = handler.name(), error = %e,
                        "publishing the handler's events failed; entry left pending");
                    all_ok = false;
                }
            }
            Err(e) => {
                tracing::warn!(stream = %spec.key, group = spec.group, entry = %id,
                    handler = handler.name(), error = %e,
                    "handler failed; entry left pending for redelivery");
                all_ok = false;
            }
        }
    }
    if !matched {
        tracing::debug!(stream = %spec.key, group = spec.group, entry = %id, r#type = %envelope.type_name,
            "no handler of this group takes this type; acknowledged");
    }
    if all_ok {
        let _ = ack.send(id);
    }
}
