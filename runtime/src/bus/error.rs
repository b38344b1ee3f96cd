use crate::envelope::EnvelopeError;
use crate::transport::TransportError;
use crate::DecodeError;

/// What went wrong building a bus, publishing, subscribing or consuming.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Redis URL does not parse.
    #[error("invalid Redis URL `{url}`: {source}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What redis-rs said about it.
        source: redis::RedisError,
    },
    /// The transport failed (connection, command error, unexpected reply).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The event does not serialize to JSON.
    #[error("cannot serialize `{type_name}` to JSON: {source}")]
    Encode {
        /// Event type name.
        type_name: &'static str,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// The event has neither `stream` nor `channel`, so it cannot be published.
    #[error("`{type_name}` has neither a stream nor a channel to be published to")]
    NoDestination {
        /// Event type name.
        type_name: &'static str,
    },
    /// `subscribe::<E>()` on an event that has no `channel`.
    #[error(
        "`{type_name}` has no channel; give it `#[event(channel = \"…\")]` to subscribe to it"
    )]
    NoChannel {
        /// Event type name.
        type_name: &'static str,
    },
    /// A tenant or namespace that would break a key or a pattern.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// A handler of an event that has no stream (Pub/Sub events have no groups).
    #[error("handler `{handler}` handles `{type_name}`, which has no stream; subscribe to channel events with `bus.subscribe()`")]
    NoStream {
        /// Handler name.
        handler: &'static str,
        /// Event type name.
        type_name: &'static str,
    },
    /// A handler takes `State<T>` and the consumer was given no `T`.
    #[error("handler `{handler}` takes `State<{state}>` but the consumer has none; add `.state(value)` before `.start()`")]
    MissingState {
        /// Handler name.
        handler: &'static str,
        /// Rust name of the state type.
        state: &'static str,
    },
    /// `start()` on a consumer with no handler.
    #[error("the consumer has no handler; add one with `.handler(…)`")]
    NoHandler,
    /// `Context::publish` on a context made by `Context::detached()`.
    #[error("this context belongs to no bus (made by `Context::detached`), so it cannot publish")]
    Detached,
    /// Redis stayed unreachable for the whole publish timeout
    /// ([`BusBuilder::publish_timeout`](crate::BusBuilder::publish_timeout)).
    #[error("Redis unreachable: `{command}` failed {attempts} times in {after:?}; last error: {last_error}")]
    Unavailable {
        /// The command that could not be sent.
        command: &'static str,
        /// The publish timeout.
        after: std::time::Duration,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last_error: String,
    },
    /// A worker task ended abnormally.
    #[error("worker task of group `{group}` on `{key}` failed: {reason}")]
    Worker {
        /// Stream key.
        key: String,
        /// Group.
        group: String,
        /// What happened.
        reason: String,
    },
}

/// A tenant or namespace name that cannot be used in a key or a pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{name}`: {reason}")]
#[non_exhaustive]
pub struct NameError {
    /// `tenant` or `namespace`.
    pub what: &'static str,
    /// The name as given.
    pub name: String,
    /// Why it is rejected.
    pub reason: String,
}

/// Checks a name that becomes part of Redis keys and `PSUBSCRIBE` patterns.
///
/// Glob characters would make a subscription of one tenant match another's
/// channels, braces would move the Redis Cluster hash tag, and `:` would make
/// `ns:tenant:channel:type` ambiguous.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), NameError> {
    let err = |reason: String| NameError {
        what,
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(err("it is empty".to_owned()));
    }
    if let Some(c) = name.chars().find(|c| {
        matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | ':' | '\\')
            || c.is_whitespace()
            || c.is_control()
    }) {
        return Err(err(format!(
            "it contains {c:?}; glob characters (* ? [ ]), braces, `:`, `\\` and whitespace are not allowed"
        )));
    }
    Ok(())
}

/// Why an item of a subscription is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The message is not a valid CloudEvents envelope.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The envelope is fine but its data does not decode as the event.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}
