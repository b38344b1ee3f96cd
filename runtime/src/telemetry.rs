//! Metrics through the [`metrics`] facade, named after the OpenTelemetry
//! messaging conventions. tidings installs no exporter: install a recorder
//! (`metrics-exporter-prometheus`, an OpenTelemetry bridge, …) and the
//! series appear; without one, each call is a no-op of a few nanoseconds.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `messaging.client.sent.messages` | counter | system, destination, type |
//! | `messaging.client.operation.duration` | histogram (s) | system, destination, operation |
//! | `messaging.client.consumed.messages` | counter | system, destination, group |
//! | `messaging.process.messages` | counter | system, destination, group, handler, outcome |
//! | `messaging.process.duration` | histogram (s) | system, destination, group, handler |
//! | `messaging.stream.length`, `messaging.stream.dead_letters` | gauge | system, destination, tenant (on a tenant's bus) |
//! | `messaging.consumer.lag`, `messaging.consumer.pending`, `messaging.consumer.oldest_pending_age` (s) | gauge | system, destination, tenant, group |
//! | `tidings.reconnects` | counter | `tidings.connection` (`consumer`, `pubsub`, `replies`, `publish`) |
//!
//! The handles of the hot paths (published events, handler runs) are
//! registered with the recorder the first time they are used and kept, so
//! that counting costs an atomic add rather than a key and a look-up per
//! event: install the recorder before the bus publishes and the workers
//! start, as a process does at its start.
//!
//! Every label is bounded: the stream or channel name (never a key with a
//! tenant in it, never an event id), the event type, the group, the handler.
//! The gauges come from Redis through an opt-in task
//! ([`Bus::report_gauges`](crate::Bus::report_gauges)).

use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use metrics::{Counter, Histogram};

/// Metric names.
pub mod name {
    /// Events published (counter).
    pub const SENT: &str = "messaging.client.sent.messages";
    /// Time of a publish call, retries included (histogram, seconds).
    pub const OPERATION_DURATION: &str = "messaging.client.operation.duration";
    /// Stream entries delivered to a consumer group's worker (counter).
    pub const CONSUMED: &str = "messaging.client.consumed.messages";
    /// Handler outcomes (counter), by [`outcome`](super::outcome).
    pub const PROCESSED: &str = "messaging.process.messages";
    /// Time of one handler run (histogram, seconds).
    pub const PROCESS_DURATION: &str = "messaging.process.duration";
    /// Entries in a stream (gauge).
    pub const STREAM_LENGTH: &str = "messaging.stream.length";
    /// Entries in a stream's dead letters (gauge).
    pub const DEAD_LETTERS: &str = "messaging.stream.dead_letters";
    /// Entries a group has not read yet (gauge).
    pub const LAG: &str = "messaging.consumer.lag";
    /// Entries a group read and has not acknowledged (gauge).
    pub const PENDING: &str = "messaging.consumer.pending";
    /// Age of a group's oldest unacknowledged entry (gauge, seconds).
    pub const OLDEST_PENDING_AGE: &str = "messaging.consumer.oldest_pending_age";
    /// Connections lost and made again (counter), by
    /// [`label::CONNECTION`](super::label::CONNECTION).
    pub const RECONNECTS: &str = "tidings.reconnects";
}

/// Label names.
pub mod label {
    /// `redis` or `memory`.
    pub const SYSTEM: &str = "messaging.system";
    /// The stream or channel name, as in `#[event(stream = "…")]`.
    pub const DESTINATION: &str = "messaging.destination.name";
    /// The consumer group.
    pub const GROUP: &str = "messaging.consumer.group.name";
    /// The CloudEvents `type`.
    pub const TYPE: &str = "cloudevents.event_type";
    /// `publish` or `publish_batch`.
    pub const OPERATION: &str = "messaging.operation.name";
    /// The handler's name.
    pub const HANDLER: &str = "tidings.handler";
    /// What became of a handler run: see [`outcome`](super::outcome).
    pub const OUTCOME: &str = "tidings.outcome";
    /// The tenant, on the gauges of a tenant's bus.
    pub const TENANT: &str = "tidings.tenant";
    /// Which connection was made again: `consumer`, `pubsub`, `replies`
    /// or `publish`.
    pub const CONNECTION: &str = "tidings.connection";
}

/// Values of the [`label::OUTCOME`] label.
pub mod outcome {
    /// The handler succeeded.
    pub const OK: &str = "ok";
    /// The handler failed; it runs again after a backoff.
    pub const RETRIED: &str = "retried";
    /// The handler failed and gave up: the entry went to dead letters.
    pub const DEAD_LETTERED: &str = "dead_lettered";
    /// No handler of the group takes the entry's type (or it is not an
    /// event): acknowledged without handling, or buried.
    pub const SKIPPED: &str = "skipped";
}

/// Describes every metric to the recorder installed now (a bus, a worker
/// and the gauges do, when they are made).
pub(crate) fn describe() {
    {
        use metrics::Unit;
        metrics::describe_counter!(name::SENT, Unit::Count, "Events published");
        metrics::describe_histogram!(
            name::OPERATION_DURATION,
            Unit::Seconds,
            "Time of a publish call, retries included"
        );
        metrics::describe_counter!(
            name::CONSUMED,
            Unit::Count,
            "Stream entries delivered to a consumer group's worker"
        );
        metrics::describe_counter!(
            name::PROCESSED,
            Unit::Count,
            "Handler runs, by outcome: ok, retried, dead_lettered, skipped"
        );
        metrics::describe_histogram!(
            name::PROCESS_DURATION,
            Unit::Seconds,
            "Time of one handler run"
        );
        metrics::describe_gauge!(name::STREAM_LENGTH, Unit::Count, "Entries in the stream");
        metrics::describe_gauge!(
            name::DEAD_LETTERS,
            Unit::Count,
            "Entries in the stream's dead letters"
        );
        metrics::describe_gauge!(name::LAG, Unit::Count, "Entries the group has not read");
        metrics::describe_gauge!(
            name::PENDING,
            Unit::Count,
            "Entries the group read and has not acknowledged"
        );
        metrics::describe_counter!(
            name::RECONNECTS,
            Unit::Count,
            "Connections lost and made again"
        );
        metrics::describe_gauge!(
            name::OLDEST_PENDING_AGE,
            Unit::Seconds,
            "Age of the group's oldest unacknowledged entry"
        );
    }
}

/// A connection of `what` (`consumer`, `pubsub`, `replies`, `publish`) was
/// lost and is being made again.
pub(crate) fn reconnect(what: &'static str) {
    metrics::counter!(name::RECONNECTS, label::CONNECTION => what).increment(1);
}

/// `n` entries of `destination` delivered to `group`.
pub(crate) fn consumed(
    system: &'static str,
    destination: &'static str,
    group: &'static str,
    n: u64,
) {
    metrics::counter!(name::CONSUMED,
        label::SYSTEM => system, label::DESTINATION => destination, label::GROUP => group)
    .increment(n);
}

/// What became of one handler run (or of an entry no handler took, with
/// `handler` empty).
pub(crate) fn processed(
    system: &'static str,
    destination: &'static str,
    group: &'static str,
    handler: &'static str,
    outcome: &'static str,
) {
    metrics::counter!(name::PROCESSED,
        label::SYSTEM => system, label::DESTINATION => destination, label::GROUP => group,
        label::HANDLER => handler, label::OUTCOME => outcome)
    .increment(1);
}

/// The handles of one destination and type's publishing, registered at
/// first use.
#[derive(Debug)]
struct PublishHandles {
    destination: &'static str,
    type_name: &'static str,
    operation: &'static str,
    sent: Counter,
    took: Histogram,
}

/// The publishing handles of one bus, by destination, type and operation.
#[derive(Debug, Default)]
pub(crate) struct PublishMetrics {
    handles: RwLock<Vec<PublishHandles>>,
}

impl PublishMetrics {
    /// Counts `n` events of `type_name` sent to `destination` by one call
    /// that took `took`.
    pub(crate) fn sent(
        &self,
        system: &'static str,
        destination: &'static str,
        type_name: &'static str,
        operation: &'static str,
        n: u64,
        took: Option<Duration>,
    ) {
        let same = |h: &PublishHandles| {
            std::ptr::eq(h.destination, destination)
                && std::ptr::eq(h.type_name, type_name)
                && std::ptr::eq(h.operation, operation)
        };
        {
            let handles = self.handles.read().unwrap_or_else(|e| e.into_inner());
            if let Some(h) = handles.iter().find(|h| same(h)) {
                h.sent.increment(n);
                if let Some(took) = took {
                    h.took.record(took.as_secs_f64());
                }
                return;
            }
        }
        let h = PublishHandles {
            destination,
            type_name,
            operation,
            sent: metrics::counter!(name::SENT,
                label::SYSTEM => system, label::DESTINATION => destination, label::TYPE => type_name),
            took: metrics::histogram!(name::OPERATION_DURATION,
                label::SYSTEM => system, label::DESTINATION => destination, label::OPERATION => operation),
        };
        h.sent.increment(n);
        if let Some(took) = took {
            h.took.record(took.as_secs_f64());
        }
        self.handles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(h);
    }
}

/// The handles of one handler in one group, registered at first use.
#[derive(Debug, Default)]
pub(crate) struct HandlerMetrics {
    handles: OnceLock<(Counter, Histogram)>,
}

impl HandlerMetrics {
    /// Counts one successful run of `handler` that took `took`, or records
    /// the time of a failed one.
    pub(crate) fn ran(
        &self,
        system: &'static str,
        destination: &'static str,
        group: &'static str,
        handler: &'static str,
        ok: bool,
        took: Duration,
    ) {
        let (ok_runs, durations) = self.handles.get_or_init(|| {
            (
                metrics::counter!(name::PROCESSED,
                    label::SYSTEM => system, label::DESTINATION => destination, label::GROUP => group,
                    label::HANDLER => handler, label::OUTCOME => outcome::OK),
                metrics::histogram!(name::PROCESS_DURATION,
                    label::SYSTEM => system, label::DESTINATION => destination, label::GROUP => group,
                    label::HANDLER => handler),
            )
        });
        if ok {
            ok_runs.increment(1);
        }
        durations.record(took.as_secs_f64());
    }
}
