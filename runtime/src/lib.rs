//! Runtime of tidings: the [`Event`] trait, decoding errors, the registry of
//! every event in a binary, and the schema model.
//!
//! Users depend on the `tidings` facade crate, which re-exports this crate and
//! the `#[event]` and `#[handler]` macros.

mod error;
mod event;
mod id;
pub mod registry;
pub mod schemas;

#[doc(hidden)]
pub mod __private;

pub use error::DecodeError;
pub use event::Event;
pub use id::Ulid;
pub use registry::EventInfo;
pub use schemas::Compat;
