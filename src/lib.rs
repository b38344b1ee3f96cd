// Rustdoc takes the first definition of a link label (CommonMark), so these,
// placed before the README, send its links to `docs/*.md` to the modules of
// `docs` below, while on GitHub the README's own definitions, at its end,
// point at the files.
#![doc = "[docs/delivery.md]: crate::docs::delivery"]
#![cfg_attr(feature = "postgres", doc = "[docs/outbox.md]: crate::docs::outbox")]
#![doc = "[docs/operations.md]: crate::docs::operations"]
#![doc = "[docs/schema-guard.md]: crate::docs::schema_guard"]
#![doc = "[docs/compatibility.md]: crate::docs::compatibility"]
#![doc = "[docs/dashboard.md]: crate::docs::dashboard"]
#![doc = "[docs/schemas.md]: crate::docs::schemas"]
#![doc = "[docs/request-reply.md]: crate::docs::request_reply"]
#![doc = "[`docs/`]: crate::docs"]
#![doc = ""]
#![doc = include_str!("../README.md")]

pub use tidings_macros::{event, handler, payload};
pub use tidings_runtime::*;

/// Live views for browsers (feature `web`): Server-Sent Events and
/// WebSocket bridges from Pub/Sub patterns and streams, with an
/// authorisation hook per request. See the crate `tidings-web`.
#[cfg(feature = "web")]
pub use tidings_web as web;

/// JSON Schemas of events: export to `schemas/`, the check that keeps that
/// folder honest, and the rules that say which changes are safe.
///
/// Two ways to run the check:
///
/// - [`check!`](crate::schemas::check!), the macro, from an integration test
///   under `tests/`: it links the package's library into the test and
///   supplies the decoders of its public events, which a test there lacks.
/// - [`check`](fn@crate::schemas::check), the function, from the unit tests
///   of the crate that declares the events (a `#[cfg(test)]` module under
///   `src/`), or from a test that declares its events itself.
///
/// Called from `tests/` without the macro, the function finds no events and
/// fails, saying so.
pub mod schemas {
    pub use tidings_macros::check;
    pub use tidings_runtime::schemas::*;
}

/// The guides of `docs/`, one module each, so docs.rs shows them beside the
/// API and `cargo test` compiles (and, where no Redis is needed, runs) every
/// Rust example in them.
///
/// Links between guides are written for GitHub (`delivery.md#dead-letters`);
/// the definitions placed before each guide take precedence in rustdoc and
/// send them to the modules here.
pub mod docs {
    #[doc = include_str!("../docs/compatibility.md")]
    pub mod compatibility {}

    #[doc = include_str!("../docs/dashboard.md")]
    pub mod dashboard {}

    #[doc = "[order-delay-priority.md]: crate::docs::order_delay_priority"]
    #[doc = ""]
    #[doc = include_str!("../docs/delivery.md")]
    pub mod delivery {}

    #[cfg(feature = "postgres")]
    #[doc = "[delivery.md]: crate::docs::delivery"]
    #[doc = ""]
    #[doc = include_str!("../docs/outbox.md")]
    pub mod outbox {}

    #[doc = "[delivery]: crate::docs::delivery#dead-letters"]
    #[doc = ""]
    #[doc = include_str!("../docs/operations.md")]
    pub mod operations {}

    #[doc = "[delivery]: crate::docs::delivery"]
    #[doc = ""]
    #[doc = include_str!("../docs/order-delay-priority.md")]
    pub mod order_delay_priority {}

    #[doc = include_str!("../docs/request-reply.md")]
    pub mod request_reply {}

    #[doc = include_str!("../docs/schema-guard.md")]
    pub mod schema_guard {}

    #[doc = "[schema-guard.md]: crate::docs::schema_guard"]
    #[doc = "[compatibility.md]: crate::docs::compatibility"]
    #[doc = ""]
    #[doc = include_str!("../docs/schemas.md")]
    pub mod schemas {}
}

/// The transactional outbox and inbox on PostgreSQL (the `postgres`
/// feature): see [tidings-postgres](tidings_postgres).
#[cfg(feature = "postgres")]
pub use tidings_postgres as postgres;
