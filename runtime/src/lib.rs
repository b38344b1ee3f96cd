//! Runtime of tidings: the [`Event`] trait, decoding errors, the registry of
//! every event in a binary, the schema model, the [`Bus`] and its transports,
//! consumers and handlers.
//!
//! Users depend on the `tidings` facade crate, which re-exports this crate and
//! the `#[event]` and `#[handler]` macros.
//!
//! Modules form floors; a module names only modules on its own floor or
//! below:
//!
//! ```text
//! ground     envelope, id, error, compat, registry, stats, telemetry, trace,
//!            backoff, event
//! transport  transport (the StreamTransport and ChannelTransport traits)
//! backends   streams, pubsub, memory
//! bus        bus (Bus, BusBuilder, Meta, keys, publish and subscribe paths,
//!            the reply inbox)
//! above bus  handler, dead_letter, consumer, gauges, group, health, observe,
//!            replay, request, retention
//! top        schemas, __private (what the macros call)
//! ```

// Ground floor: plain data and the rules about it.
mod backoff;
mod compat;
pub mod envelope;
mod error;
mod event;
mod id;
pub mod registry;
pub mod stats;
pub mod telemetry;
mod trace;

// Transports.
pub mod memory;
pub mod pubsub;
pub mod streams;
pub mod transport;

// The bus.
mod bus;

// Above the bus.
pub mod consumer;
pub mod dead_letter;
mod gauges;
pub mod group;
mod handler;
mod health;
mod observe;
pub mod replay;
mod request;
mod retention;

// Top.
pub mod schemas;

#[doc(hidden)]
pub mod __private;

pub use bus::{
    partition_of, AnyEvent, AnyEventStream, Bus, BusBuilder, EventStream, Meta, Priority,
    Published, RawEvent, DEFAULT_NAMESPACE,
};
pub use compat::{Compat, UnknownCompat};
pub use consumer::{ConsumerBuilder, ConsumerOptions, RetryPolicy, Tenants, Worker};
pub use dead_letter::{DeadLetter, DeadLetters};
pub use envelope::Envelope;
pub use error::{DecodeError, EnvelopeError, Error, NameError, ReceiveError, TransportError};
pub use event::{Event, PartitionKey, Request, DEFAULT_SCHEMA_BASE};
pub use gauges::GaugeReporter;
pub use group::{Group, Position};
pub use handler::{
    fatal, is_fatal, retry, BoxFuture, Context, Fatal, FnHandler, Handler, HandlerCall,
    HandlerError, HandlerOptions, HandlerResult, HandlerSpec, HandlerValue, IntoHandler,
    IntoOutcome, Outcome, State, StateType,
};
pub use health::{Health, HealthOptions, ReaderHealth};
pub use id::Ulid;
pub use observe::Follow;
pub use registry::EventInfo;
pub use replay::{Replay, ReplayFailure, ReplayReport};
pub use request::{RequestCall, WaitFor, DEFAULT_REQUEST_TIMEOUT};
pub use stats::{
    ConsumerStats, GroupStats, PendingEntry, Progress, RequestStats, Retention, StreamStats,
    TrimReport,
};
pub use transport::{ChannelTransport, DueDelivery, Lease, StartFrom, StreamTransport};
