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
//! holding neither the reading loop nor the handler's concurrency slot, or,
//! with a backoff past `park_retries_after`, is parked in Redis and comes
//! back through the group's retry stream, which a reading loop of its own
//! reads. A
//! heartbeat task keeps the entries a worker holds from looking idle to the
//! `XAUTOCLAIM` of other workers.
//!
//! A worker over many tenants ([`ConsumerBuilder::tenants`]) runs the same
//! loops over each tenant's streams, each on the tenant's bus. Their
//! blocking reads go through one shared reader per (group, consumer)
//! ([`StreamTransport::shared_reader`](crate::transport::StreamTransport::shared_reader)):
//! on Redis, one connection that waits on every idle stream of the group
//! with one `XREADGROUP`, and two more for the non-blocking reads and the
//! acknowledgements of every stream, batched; claims and dead letters go
//! through the bus's shared connection. One
//! task moves the delayed events of every tenant's streams, in one call per
//! poll, and with [`Tenants::discover`] one more looks for new tenants.
//! Each loop still has its acknowledging and heartbeat tasks, which cost no
//! Redis call while idle.
//!
//! Files: `builder` (handlers, options, start), `worker` (stop and abort),
//! `read` (the reading loop), `process` (per-entry policy), `ack` (the
//! acknowledging and heartbeat tasks), `delay` (delayed events that fell
//! due), `held` (the held set), `partition` (leases on a stream's
//! partitions), `priority` (turns of the priority levels), `order` (the
//! lanes that keep the entries of one key in order), `tenants` (which
//! tenants, the rescan, the worker-wide mover of delayed events), `options`
//! and `retry` (what users configure).

mod ack;
mod builder;
mod delay;
mod held;
mod options;
mod order;
mod partition;
mod priority;
mod process;
mod read;
mod retry;
mod tenants;
mod worker;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

pub use builder::ConsumerBuilder;
pub use options::ConsumerOptions;
pub use retry::RetryPolicy;
pub use tenants::Tenants;
pub use worker::Worker;

use crate::bus::Bus;
use crate::handler::erase::ErasedHandler;
use crate::handler::States;
use held::HeldId;

/// A handler of a group, with its concurrency limit and retry policy.
struct HandlerSlot {
    handler: Arc<dyn ErasedHandler>,
    limit: Arc<Semaphore>,
    /// The limit's size: at most this many of its entries at once.
    concurrency: usize,
    retry: RetryPolicy,
    metrics: crate::telemetry::HandlerMetrics,
}

struct GroupSpec {
    key: String,
    /// The stream's name, for the metrics' labels.
    stream: &'static str,
    /// `redis` or `memory`, for the metrics' labels.
    system: &'static str,
    /// Types no handler of the group takes that this worker has seen: each
    /// is logged once.
    skipped_types: Mutex<HashSet<String>>,
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
    /// Ids of handled entries whose `XACK` failed and is being tried again:
    /// pending to this consumer, but not to be handled again when it reads
    /// its own pending entries.
    unacked: Mutex<HashSet<String>>,
    /// The worker's stop signal, which handlers see through their context.
    stop: watch::Receiver<bool>,
    /// How the reading loop reports itself to [`Bus::health`](crate::Bus::health).
    life: Arc<crate::bus::ReaderLife>,
    /// Whether this group's task moves the stream's delayed events (the
    /// first group of each stream in the worker).
    moves_delayed: bool,
    /// How long after the start the loop first claims idle entries: at
    /// once for a worker of its own, spread over the claim interval for the
    /// loops of a worker over tenants, so that 1,000 of them do not claim
    /// (and look for idle consumers) all at once.
    first_claim: std::time::Duration,
    /// The priority level this task reads, with the gate its group's levels
    /// share; `None` for a worker without priorities.
    priority: Option<(Arc<priority::Gate>, crate::bus::Priority)>,
    /// The delayed set of the group's retry stream, where a retry with a
    /// long backoff is parked; `None` unless
    /// [`ConsumerOptions::park_retries_after`] is set.
    park: Option<String>,
    /// The partition this task reads, on a stream declared with partitions:
    /// its dead letters name it, for a retry to put them back there.
    partition: Option<u32>,
}

impl HandlerSlot {
    /// The same handler for another priority level of its group: the same
    /// concurrency slots, metrics of its own.
    fn share(&self) -> HandlerSlot {
        HandlerSlot {
            handler: self.handler.clone(),
            limit: self.limit.clone(),
            concurrency: self.concurrency,
            retry: self.retry,
            metrics: Default::default(),
        }
    }
}

impl GroupSpec {
    /// Waits for this level's turn at the handler slots, when the group
    /// reads priority levels; hold it while taking the slots.
    async fn turn(&self) -> Option<priority::Turn> {
        match &self.priority {
            Some((gate, level)) => Some(gate.turn(*level).await),
            None => None,
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<HeldId>> {
        // The set is only inserted into and removed from; a panic elsewhere
        // cannot leave it inconsistent.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unacked(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.unacked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The inbox mark of an event in this group, in the stream's hash slot.
    fn mark(&self, event_id: &str) -> String {
        format!("{}:inbox:{}:{}", self.key, self.group, event_id)
    }
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
