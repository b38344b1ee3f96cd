//! Runtime of tidings: the [`Event`] trait, decoding errors, the registry of
//! every event in a binary, the schema model, the [`Bus`] and its transports,
//! consumers and handlers.
//!
//! Users depend on the `tidings` facade crate, which re-exports this crate and
//! the `#[event]` and `#[handler]` macros.

mod bus;
pub mod consumer;
pub mod dead_letter;
pub mod envelope;
mod error;
mod event;
mod handler;
mod id;
pub mod memory;
pub mod metrics;
pub mod pubsub;
pub mod registry;
pub mod schemas;
pub mod streams;
pub mod transport;

#[doc(hidden)]
pub mod __private;

pub use bus::{
    AnyEvent, AnyEventStream, Bus, BusBuilder, Error, EventStream, Meta, NameError, Published,
    ReceiveError, DEFAULT_NAMESPACE,
};
pub use consumer::{ConsumerBuilder, ConsumerOptions, RetryPolicy, Worker};
pub use dead_letter::{DeadLetter, DeadLetters};
pub use envelope::{Envelope, EnvelopeError};
pub use error::DecodeError;
pub use event::Event;
pub use handler::{
    fatal, is_fatal, retry, BoxFuture, Context, Fatal, Handler, HandlerError, HandlerOptions,
    HandlerResult, IntoOutcome, Outcome, State, StateType,
};
pub use id::Ulid;
pub use metrics::{ConsumerStats, GroupStats, StreamStats};
pub use registry::EventInfo;
pub use schemas::Compat;
pub use transport::{StartFrom, Transport, TransportError};
