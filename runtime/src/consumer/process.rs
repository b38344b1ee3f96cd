//! Per-entry policy: run the handlers that take the entry, acknowledge it
//! when all succeed, retry the failed ones with their backoff in a task of
//! their own, and move the entry to dead letters when one gives up.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tracing::Instrument;

use super::held::Held;
use super::{pause, Done, GroupSpec, HandlerSlot};
use crate::dead_letter::Burial;
use crate::envelope::{now_millis, Envelope, Rfc3339Millis};
use crate::handler::{is_fatal, Context};
use crate::telemetry;
use crate::transport::{dead_letter_field as field, DeadLettered, Entry, StreamTransport};

/// A handler's concurrency slot for one attempt at an entry.
pub(super) enum Slot {
    /// Taken for this entry: given back when the attempt ends.
    Own(OwnedSemaphorePermit),
    /// Held by the reading task, which runs the attempt itself, across
    /// the entries of its batch.
    Lent,
    /// Taken by the attempt, when it runs (a retry).
    Take,
}

/// Why one handler failed on one attempt.
pub(super) struct Failure {
    pub(super) index: usize,
    pub(super) error: String,
    pub(super) fatal: bool,
}

/// What the handling of one delivered entry holds until it ends: how to
/// acknowledge it, its prefetch permit and its place in the held set.
pub(super) struct Delivery<T> {
    pub(super) transport: T,
    pub(super) spec: Arc<GroupSpec>,
    pub(super) ack: mpsc::UnboundedSender<Done>,
    pub(super) _held: (OwnedSemaphorePermit, Held),
    pub(super) stop: watch::Receiver<bool>,
}

/// An entry whose handlers failed and will be retried after `delay`.
pub(super) struct Retry<T> {
    pub(super) delivery: Delivery<T>,
    pub(super) id: String,
    pub(super) envelope: Arc<Envelope>,
    pub(super) attempt: u32,
    pub(super) first_failure: i64,
    pub(super) delay: Duration,
    /// The handlers to run again.
    pub(super) todo: Vec<usize>,
    pub(super) trail: Trail,
}

/// Where the attempts at an entry began: those made before it was parked
/// (none for an entry read from its own stream), and its entry id in the
/// stream it was first read from, which its dead letter names.
#[derive(Debug, Clone, Default)]
pub(super) struct Trail {
    pub(super) before: u32,
    pub(super) origin: Option<String>,
    /// The priority level (`high`, `low`) of the stream it was first read
    /// from, for a parked retry.
    pub(super) level: Option<String>,
}

impl Trail {
    /// The entry id a dead letter or a park names: the original one.
    fn entry_id<'a>(&'a self, id: &'a str) -> &'a str {
        self.origin.as_deref().unwrap_or(id)
    }
}

/// Runs every handler of the group that takes the entry's type once (the
/// first attempt of this delivery); acknowledges the entry when all
/// succeeded (and their returned events are published), moves it to dead
/// letters when one gives up, and returns the retry otherwise.
pub(super) async fn process<T: StreamTransport>(
    delivery: Delivery<T>,
    entry: Entry,
    slots: Vec<(usize, Slot)>,
) -> Option<Retry<T>> {
    let Entry {
        id,
        envelope,
        deliveries,
    } = entry;
    let spec = &delivery.spec;
    let envelope = match envelope {
        Ok(e) => e,
        Err(e) => {
            let now = now_millis();
            let error = format!("entry is not a CloudEvents envelope: {e}");
            telemetry::processed(
                spec.system,
                spec.stream,
                spec.group,
                "",
                telemetry::outcome::DEAD_LETTERED,
            );
            let trail = Trail::default();
            Box::pin(delivery.bury(&id, &trail, (None, &error, deliveries, now, now))).await;
            return None;
        }
    };
    if let Some(target) = envelope.retry_group.as_deref() {
        if target != spec.group {
            // A dead letter put back for the group that gave up on it: the
            // other groups handled it (or gave up on it) the first time.
            tracing::debug!(stream = %spec.key, group = spec.group, entry = %id, retry_group = target,
                "dead letter put back for another group; acknowledged without handling");
            let _ = delivery.ack.send(Done { id, mark: None });
            return None;
        }
    }
    // A parked retry: its attempts go on from where they were, for the
    // handlers that failed.
    let parked = envelope.parked.as_deref();
    let trail = Trail {
        before: parked.map_or(0, |p| p.attempts),
        origin: parked.map(|p| p.entry_id.clone()),
        level: parked.and_then(|p| p.level.clone()),
    };
    let first_failure = parked.and_then(|p| p.first_failure);
    let slots = match parked.and_then(|p| p.handlers.as_deref()) {
        Some(failed) => only_failed(spec, slots, failed),
        None => slots,
    };
    let deliveries = trail.before.saturating_add(deliveries);
    if slots.is_empty() {
        let first = spec
            .skipped_types
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(envelope.type_name.clone());
        if first {
            tracing::info!(stream = %spec.key, group = spec.group, entry = %id, r#type = %envelope.type_name,
                "no handler of this group takes this type; its events are acknowledged without handling (said once per type; counted as `skipped`)");
        } else {
            tracing::debug!(stream = %spec.key, group = spec.group, entry = %id, r#type = %envelope.type_name,
                "no handler of this group takes this type; acknowledged");
        }
        telemetry::processed(
            spec.system,
            spec.stream,
            spec.group,
            "",
            telemetry::outcome::SKIPPED,
        );
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
        for (i, _) in &slots {
            let name = spec.handlers[*i].handler.name();
            telemetry::processed(
                spec.system,
                spec.stream,
                spec.group,
                name,
                telemetry::outcome::DEAD_LETTERED,
            );
        }
        let names = handler_names(spec, slots.iter().map(|(i, _)| *i));
        let first = first_failure.unwrap_or(now);
        let burial = (Some(names), error.as_str(), deliveries, first, now);
        Box::pin(delivery.bury(&id, &trail, burial)).await;
        return None;
    }
    attempt(
        delivery,
        id,
        envelope,
        deliveries,
        first_failure,
        slots,
        trail,
    )
    .await
}

/// The slots of the handlers named in `failed` (comma-separated), the
/// others' given back (those lent by the reading task stay with it until
/// the entry ends); all of them when none is named there (a handler
/// renamed since), rather than none.
fn only_failed(spec: &GroupSpec, slots: Vec<(usize, Slot)>, failed: &str) -> Vec<(usize, Slot)> {
    let named = |i: usize| {
        let name = spec.handlers[i].handler.name();
        failed.split(',').any(|n| n == name)
    };
    if !slots.iter().any(|(i, _)| named(*i)) {
        return slots;
    }
    slots.into_iter().filter(|(i, _)| named(*i)).collect()
}

impl<T: StreamTransport> Retry<T> {
    /// Waits out each backoff and runs the failed handlers again, until they
    /// succeed or give up (`true`), or the worker stops during a wait
    /// (`false`: the entry is left pending).
    pub(super) async fn run(mut self) -> bool {
        loop {
            if pause(self.delay, &mut self.delivery.stop).await {
                tracing::info!(stream = %self.delivery.spec.key, group = self.delivery.spec.group,
                    entry = %self.id, "worker stopping during a retry wait; entry left pending for another worker");
                return false;
            }
            let todo = self.todo.iter().map(|&i| (i, Slot::Take)).collect();
            match attempt(
                self.delivery,
                self.id,
                self.envelope,
                self.attempt + 1,
                Some(self.first_failure),
                todo,
                self.trail,
            )
            .await
            {
                Some(next) => self = next,
                None => return true,
            }
        }
    }
}

/// One attempt of the handlers in `todo` (each with its concurrency slot,
/// taken here when not given): acknowledges, buries, parks, or returns the
/// retry.
pub(super) async fn attempt<T: StreamTransport>(
    delivery: Delivery<T>,
    id: String,
    envelope: Arc<Envelope>,
    attempt: u32,
    first_failure: Option<i64>,
    todo: Vec<(usize, Slot)>,
    trail: Trail,
) -> Option<Retry<T>> {
    let (transport, spec) = (&delivery.transport, &delivery.spec);
    let mut failures = Vec::new();
    for (index, permit) in todo {
        let slot = &spec.handlers[index];
        let _running = match permit {
            Slot::Own(p) => Some(p),
            Slot::Lent => None,
            Slot::Take => match slot.limit.clone().acquire_owned().await {
                Ok(p) => Some(p),
                Err(_) => return None,
            },
        };
        let started = std::time::Instant::now();
        let ran = run_handler(spec, slot, &envelope, &id).await;
        let name = slot.handler.name();
        let took = started.elapsed();
        slot.metrics.ran(
            spec.system,
            spec.stream,
            spec.group,
            name,
            ran.is_ok(),
            took,
        );
        if let Err((error, fatal)) = ran {
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
    let outcome = if give_up {
        telemetry::outcome::DEAD_LETTERED
    } else {
        telemetry::outcome::RETRIED
    };
    for f in &failures {
        let name = spec.handlers[f.index].handler.name();
        telemetry::processed(spec.system, spec.stream, spec.group, name, outcome);
    }
    let names = handler_names(spec, failures.iter().map(|f| f.index));
    if give_up {
        let burial = (Some(names), error.as_str(), attempt, first, now);
        Box::pin(delivery.bury(&id, &trail, burial)).await;
        return None;
    }
    let delay = failures
        .iter()
        .map(|f| spec.handlers[f.index].retry.delay_after(attempt))
        .max()
        .unwrap_or_default();
    let parking = Parking {
        attempt,
        first,
        delay,
        handlers: names,
    };
    if Box::pin(delivery.park(&id, &envelope, &trail, parking)).await {
        tracing::warn!(stream = %spec.key, group = spec.group, entry = %id, attempt,
            retry_in = ?delay, error = %error, "handler failed; retry parked until it is due");
        return None;
    }
    tracing::warn!(stream = %spec.key, group = spec.group, entry = %id, attempt,
        retry_in = ?delay, error = %error, "handler failed; will retry");
    // Counted in the entry's delivery counter (of this entry: the attempts
    // before a park are in its fields), so that a worker that claims it
    // after this one stopped goes on from here.
    let delivered = attempt.saturating_sub(trail.before).max(1);
    if let Err(e) =
        Box::pin(transport.record_attempts(&spec.key, spec.group, &spec.consumer, &id, delivered))
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
        trail,
    })
}

/// A retry that may be parked: the attempt that failed, the first failure
/// (Unix ms), the backoff, and the handlers that failed.
struct Parking {
    attempt: u32,
    first: i64,
    delay: Duration,
    handlers: String,
}

pub(super) fn handler_names(spec: &GroupSpec, indexes: impl Iterator<Item = usize>) -> String {
    indexes
        .map(|i| spec.handlers[i].handler.name())
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs one handler once; a decode error and a [`fatal`](crate::fatal)
/// error say not to retry, and a panic counts as a retryable error.
pub(super) async fn run_handler(
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
        spec.stop.clone(),
    );
    let future = slot
        .handler
        .dispatch(envelope, ctx.clone())
        .map_err(|e| (e.to_string(), true))?;
    let span = crate::trace::process_span(
        spec.system,
        spec.stream,
        spec.group,
        slot.handler.name(),
        envelope,
    );
    // One instrumentation for the handler and what it publishes: the span
    // is entered once per poll of the whole, not cloned and entered twice.
    let run = async move {
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
    };
    run.instrument(span).await
}

/// Why an entry is buried: the handlers that failed, the error, the
/// attempts, and the first and last failures (Unix ms).
type Why<'a> = (Option<String>, &'a str, u32, i64, i64);

impl<T: StreamTransport> Delivery<T> {
    /// Parks the retry in the group's delayed set when the group parks
    /// retries, the backoff is long enough, and the event has no key (the
    /// later events of a key wait behind its retry, which a park would let
    /// pass): the entry goes there with its attempts and is acknowledged,
    /// atomically. Returns whether the entry is dealt with (parked, or
    /// finished by another consumer meanwhile); `false` leaves the retry to
    /// the worker, as without parking (a failed park too).
    /// The priority level a dead letter or a park names: that of the
    /// stream the entry was first read from (`high`, `low`), none for the
    /// stream itself.
    fn level<'a>(&'a self, trail: &'a Trail) -> Option<&'a str> {
        trail.level.as_deref().or_else(|| {
            self.spec
                .priority
                .as_ref()
                .and_then(|(_, level)| level.level_name())
        })
    }

    async fn park(&self, id: &str, envelope: &Envelope, trail: &Trail, parking: Parking) -> bool {
        let spec = &self.spec;
        let (Some(delayed), Some(threshold)) = (&spec.park, spec.options.park_after) else {
            return false;
        };
        if parking.delay < threshold || envelope.partition_key().is_some() {
            return false;
        }
        let rfc3339 = |ms| Rfc3339Millis::from_millis(ms).as_str().to_owned();
        let extra = [
            (field::ATTEMPTS, parking.attempt.to_string()),
            (field::FIRST_FAILURE, rfc3339(parking.first)),
            (field::ENTRY_ID, trail.entry_id(id).to_owned()),
            (field::HANDLER, parking.handlers),
        ];
        let level = self.level(trail).map(|l| (field::LEVEL, l.to_owned()));
        let extra: Vec<_> = extra.into_iter().chain(level).collect();
        let wait = i64::try_from(parking.delay.as_millis()).unwrap_or(i64::MAX);
        let due = now_millis().saturating_add(wait);
        match self
            .transport
            .park(&spec.key, spec.group, id, delayed, due, &extra)
            .await
        {
            Ok(true) => true,
            Ok(false) => {
                tracing::debug!(stream = %spec.key, group = spec.group, entry = %id,
                    "entry was acknowledged by another consumer meanwhile");
                true
            }
            Err(e) => {
                tracing::warn!(stream = %spec.key, group = spec.group, entry = %id, error = %e,
                    "parking the retry failed; it waits in the worker instead");
                false
            }
        }
    }

    /// Moves an entry to dead letters and acknowledges it, in one atomic step
    /// (updating the dead letter this group left for the same entry before,
    /// if there is one); if that fails the entry stays pending and is
    /// claimed again later. The dead letter names the entry `id`, or for a
    /// parked retry its entry in the stream it was first read from, with
    /// that stream's priority level.
    async fn bury(&self, id: &str, trail: &Trail, why: Why<'_>) {
        let entry_id = trail.entry_id(id);
        let (handler, error, attempts, first_failure, last_failure) = why;
        let (transport, spec) = (&self.transport, &self.spec);
        let extra = Burial {
            group: spec.group,
            handler,
            error,
            attempts,
            first_failure,
            last_failure,
            entry_id,
            consumer: &spec.consumer,
            partition: spec.partition,
            level: self.level(trail),
        }
        .fields();
        match transport
            .dead_letter(&spec.key, &spec.dlq, spec.group, id, &extra)
            .await
        {
            Ok(DeadLettered::Written) => {
                tracing::error!(stream = %spec.key, group = spec.group, entry = %id, attempts,
                    error, dead_letters = %spec.dlq, "entry moved to dead letters")
            }
            Ok(DeadLettered::Updated) => {
                tracing::error!(stream = %spec.key, group = spec.group, entry = %id, attempts,
                    error, dead_letters = %spec.dlq,
                    "entry moved to dead letters again; its earlier dead letter updated")
            }
            Ok(DeadLettered::OtherGroup) => {
                tracing::debug!(stream = %spec.key, group = spec.group, entry = %id,
                    "dead letter put back for another group; acknowledged without a dead letter")
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
}
