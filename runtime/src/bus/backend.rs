//! The transports behind a bus, and the two macros that run one call on
//! whichever of them the bus has.

use crate::memory::MemoryTransport;
use crate::pubsub::PubSubTransport;
use crate::streams::StreamsTransport;

/// The transports behind a bus. An enum rather than a trait object so that
/// the publish path makes no allocation for dynamic dispatch.
// Built once per bus and kept behind an `Arc`, so the size of a variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Redis {
        streams: StreamsTransport,
        pubsub: PubSubTransport,
    },
    Memory(MemoryTransport),
}

impl Backend {
    /// The `messaging.system` of the metrics: `redis` or `memory`.
    pub(crate) fn system(&self) -> &'static str {
        match self {
            Backend::Redis { .. } => "redis",
            Backend::Memory(_) => "memory",
        }
    }

    /// Whether Redis is the master a set of Sentinels names, looked up
    /// again for each connection: there a replica's `READONLY` means a
    /// failover, worth a retry.
    pub(crate) fn follows_failover(&self) -> bool {
        match self {
            Backend::Redis { streams, .. } => streams.endpoint().follows_failover(),
            Backend::Memory(_) => false,
        }
    }
}

/// Runs `$call` with `$t` bound to the bus's stream transport
/// ([`StreamTransport`](crate::transport::StreamTransport)), awaited.
///
/// ```text
/// let stats = on_streams!(bus.backend(), t => t.stream_stats(&key, &dlq))?;
/// ```
macro_rules! on_streams {
    ($backend:expr, $t:ident => $call:expr) => {
        match $backend {
            $crate::bus::Backend::Redis { streams: $t, .. } => $call.await,
            $crate::bus::Backend::Memory($t) => $call.await,
        }
    };
}

/// Runs `$call` with `$t` bound to the bus's channel transport
/// ([`ChannelTransport`](crate::transport::ChannelTransport)), awaited.
macro_rules! on_channels {
    ($backend:expr, $t:ident => $call:expr) => {
        match $backend {
            $crate::bus::Backend::Redis { pubsub: $t, .. } => $call.await,
            $crate::bus::Backend::Memory($t) => $call.await,
        }
    };
}

pub(crate) use {on_channels, on_streams};
