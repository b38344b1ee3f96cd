#![doc = include_str!("../README.md")]

mod error;
mod inbox;
mod outbox;
mod relay;
mod schema;

pub use error::Error;
pub use inbox::PgInbox;
pub use outbox::Outbox;
pub use relay::{Relay, RelayBuilder, RelayOptions, RelayStats};
pub use schema::{Migration, DEFAULT_SCHEMA, MIGRATIONS};

/// The sqlx this crate is built on: its `PgPool` and `Transaction` are the
/// ones [`Outbox`] and [`PgInbox`] take and give, so an application without
/// sqlx of its own, or with another version, uses these.
pub use sqlx;
