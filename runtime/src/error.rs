//! Every error type that crosses a floor of the runtime, on the ground
//! floor so that naming one never ties a module to the floor that raises it.
//! An error only one module returns (the schema check's, the registry's)
//! stays beside that module.

use std::fmt;

/// Why the bytes of an event could not be turned into its Rust type.
///
/// Every variant names the event type and the version that was being read, so
/// that a dead-lettered entry explains itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The entry carries a version this reader has no decoder for: newer than
    /// the current one, or older than the oldest in the `upcast_from` chain.
    #[error(
        "cannot decode `{type_name}` v{version}: this reader knows versions {}",
        Versions(known)
    )]
    UnknownVersion {
        /// Event type name, such as `file.uploaded`.
        type_name: &'static str,
        /// The version found on the wire.
        version: u32,
        /// Every version this reader decodes, ascending.
        known: Vec<u32>,
    },
    /// The payload is not valid JSON, or a field does not match the type.
    #[error("cannot decode `{type_name}` v{version} at `{path}`: {message}")]
    Data {
        /// Event type name, such as `file.uploaded`.
        type_name: &'static str,
        /// The version the payload was read as.
        version: u32,
        /// Path of the failing field (`files[2].size`), `.` for the root.
        path: String,
        /// What serde said about it.
        message: String,
    },
}

impl DecodeError {
    /// Event type name the error is about.
    pub fn type_name(&self) -> &'static str {
        match self {
            DecodeError::UnknownVersion { type_name, .. } | DecodeError::Data { type_name, .. } => {
                type_name
            }
        }
    }

    /// Version of the payload the error is about.
    pub fn version(&self) -> u32 {
        match self {
            DecodeError::UnknownVersion { version, .. } | DecodeError::Data { version, .. } => {
                *version
            }
        }
    }
}

struct Versions<'a>(&'a [u32]);

impl fmt::Display for Versions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "v{v}")?;
        }
        Ok(())
    }
}

/// What went wrong building a bus, publishing, subscribing or consuming.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Redis URL does not parse (the URL is kept with its password
    /// masked).
    #[error("invalid Redis URL `{url}`: {source}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What redis-rs said about it.
        source: redis::RedisError,
    },
    /// A file of a TLS connection (named in the URL's query or given to
    /// the builder) could not be read.
    #[error("cannot read the TLS {what} `{}`: {source}", path.display())]
    TlsFile {
        /// `CA certificate`, `client certificate` or `client key`.
        what: &'static str,
        /// The path as given.
        path: std::path::PathBuf,
        /// What the file system said.
        source: std::io::Error,
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
    /// A delay ([`Meta::deliver_at`](crate::Meta::deliver_at)) on an event
    /// with a Pub/Sub channel: a delayed event waits in its stream's delayed
    /// set, and a channel has no such place.
    #[error("`{type_name}` has a channel; only events with a stream and no channel can be delayed (publish the delayed event to a stream-only type, or publish it now)")]
    DelayOnChannel {
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
    /// A name (tenant, namespace, stream, channel, type pattern, group,
    /// consumer) that would break a key or a pattern, or reach another
    /// tenant's.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// [`Meta::event_id`](crate::Meta::event_id) on a batch of several
    /// events, which each need an id of their own.
    #[error("a Meta with an event id cannot publish a batch of {events} events: each event needs an id of its own")]
    EventIdInBatch {
        /// Events in the batch.
        events: usize,
    },
    /// An id given at run time (a dead letter's, to retry or purge it) that
    /// is not a stream entry id: checked before anything is sent, so that a
    /// stream name in its place, say, is not taken for a key range.
    #[error("invalid {what} `{id}` for `{key}`: {reason}")]
    InvalidEntryId {
        /// What the id is: `dead-letter id`.
        what: &'static str,
        /// The id as given.
        id: String,
        /// The key it was to be found in, such as `tidings:{contextual}:dlq`.
        key: String,
        /// Why it is rejected.
        reason: String,
    },
    /// An event given to [`Bus::publish_raw`](crate::Bus::publish_raw)
    /// that can never be published as it is (see
    /// [`RawEvent::check`](crate::RawEvent::check)).
    #[error("event `{id}` of type `{type_name}` cannot be published: {reason}")]
    InvalidRawEvent {
        /// The event's id.
        id: String,
        /// Its type.
        type_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// [`BusBuilder::schema_base`](crate::BusBuilder::schema_base) is not an
    /// absolute URI.
    #[error("invalid schema base `{base}`: {reason}")]
    InvalidSchemaBase {
        /// The base as given.
        base: String,
        /// Why it is rejected.
        reason: String,
    },
    /// [`Meta::tenant`](crate::Meta::tenant) names another tenant than the
    /// tenant bus it is published on.
    #[error("the bus of tenant `{bus}` cannot publish for tenant `{requested}`; publish on `bus.tenant(\"{requested}\")` from the root bus instead")]
    OtherTenant {
        /// The bus's tenant.
        bus: String,
        /// The tenant of the `Meta`.
        requested: String,
    },
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
    /// `.tenants(…)` on the consumer of a tenant's bus: a worker over
    /// tenants is built on the root bus, which scopes each tenant's
    /// streams, dead letters and events itself.
    #[error("`.tenants(…)` needs the root bus, but this consumer was built on the bus of tenant `{tenant}`; call `.consumer()` on the bus `.tenant(…)` was called on")]
    TenantsOnTenantBus {
        /// The tenant of the bus the consumer was built on.
        tenant: String,
    },
    /// `Context::publish` on a context made by `Context::detached()`.
    #[error("this context belongs to no bus (made by `Context::detached`), so it cannot publish")]
    Detached,
    /// A reply or an awaited event whose payload does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// No reply to a request within its timeout
    /// ([`Bus::request`](crate::Bus::request)).
    #[error("no `{reply_type}` reply to the `{request_type}` request with correlation id `{correlation_id}` within {waited:?}")]
    RequestTimedOut {
        /// The request's type name.
        request_type: &'static str,
        /// The reply's type name.
        reply_type: &'static str,
        /// The correlation id the reply was awaited with.
        correlation_id: String,
        /// How long the request waited.
        waited: std::time::Duration,
    },
    /// No event of the type with the correlation id within the timeout
    /// ([`Bus::wait_for`](crate::Bus::wait_for)).
    #[error("no `{type_name}` event with correlation id `{correlation_id}` on `{stream}` within {waited:?}")]
    WaitTimedOut {
        /// The type name waited for.
        type_name: &'static str,
        /// The stream key it was awaited on.
        stream: String,
        /// The correlation id.
        correlation_id: String,
        /// How long it waited.
        waited: std::time::Duration,
    },
    /// A request or a wait on a bus whose transport has no streams, or for
    /// an event that has none.
    #[error("`{type_name}` has no stream to wait on; requests and `wait_for` need `#[event(stream = \"…\")]` on a bus with streams")]
    NoStreamToWait {
        /// The event type name.
        type_name: &'static str,
    },
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
    /// A worker stopped with handled entries it could not acknowledge: they
    /// stay pending, and are handled again once claimed.
    #[error("{count} handled entries of group `{group}` on `{key}` could not be acknowledged; they stay pending")]
    Unacknowledged {
        /// Stream key.
        key: String,
        /// Group.
        group: String,
        /// How many entries.
        count: usize,
    },
    /// [`Worker::shutdown_within`](crate::Worker::shutdown_within) reached
    /// its limit: the handlers still running were cancelled, and their
    /// entries stay pending for another worker.
    #[error("the worker did not stop within {after:?}; the handlers still running were cancelled and their entries stay pending")]
    ShutdownTimedOut {
        /// The limit.
        after: std::time::Duration,
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

/// A name given at run time (tenant, namespace, stream, channel, type
/// pattern, group, consumer) that cannot be used in a key or a pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{name}`: {reason}")]
#[non_exhaustive]
pub struct NameError {
    /// What the name is: `tenant`, `namespace`, `stream`, `channel`, `type`,
    /// `type pattern`, `group` or `consumer`.
    pub what: &'static str,
    /// The name as given.
    pub name: String,
    /// Why it is rejected.
    pub reason: String,
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
    /// The subscription's connection dropped and was made again: what was
    /// published on `target` in between was missed (Pub/Sub is at most
    /// once). The subscription goes on.
    #[error("the subscription to `{target}` was cut for {down:?} and made again; messages published meanwhile were missed")]
    Gap {
        /// The channel or pattern subscribed to.
        target: String,
        /// How long it was down, about.
        down: std::time::Duration,
    },
}

/// A missing or malformed attribute of an envelope read from the wire.
///
/// `at` names where the envelope came from: a stream entry id, or a Pub/Sub
/// channel name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// A required attribute is absent.
    #[error("envelope at `{at}` has no `{field}` attribute")]
    Missing {
        /// Attribute name.
        field: &'static str,
        /// Entry id or channel.
        at: String,
    },
    /// An attribute is present but its value is not what the wire format says.
    #[error("envelope at `{at}` has a malformed `{field}` attribute: {reason}")]
    Malformed {
        /// Attribute name.
        field: &'static str,
        /// Entry id or channel.
        at: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A structured-mode message is not a JSON object.
    #[error("message at `{at}` is not a CloudEvents JSON object: {reason}")]
    NotJson {
        /// Channel.
        at: String,
        /// What the JSON parser said.
        reason: String,
    },
}

/// What went wrong talking to a transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Redis answered with an error, or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The transport does not offer this operation.
    #[error("the {transport} transport does not support {operation}")]
    Unsupported {
        /// Transport name.
        transport: &'static str,
        /// Operation name.
        operation: &'static str,
    },
    /// Redis answered something that is not the documented reply of the command.
    #[error("unexpected reply to {command}: {reason}")]
    Protocol {
        /// The command.
        command: &'static str,
        /// What was wrong with the reply.
        reason: String,
    },
    /// With [`Durability::Replicated`](crate::streams::Durability): the
    /// master appended the entries, but fewer replicas than asked
    /// acknowledged them within the time given (`WAIT`), so a failover may
    /// still lose them. The publish is not acknowledged; publishing again
    /// appends them again (with the same event ids).
    #[error("the write was acknowledged by {reached} of the {replicas} replica(s) asked within {timeout:?} (WAIT)")]
    NotReplicated {
        /// Replicas asked for.
        replicas: u32,
        /// Replicas that acknowledged the write in time.
        reached: u32,
        /// How long the master waited.
        timeout: std::time::Duration,
    },
    /// The first connection to the server failed: refused, timed out, or
    /// the server refused the credentials.
    #[error("cannot connect to Redis at {address}{}: {source}", user.as_ref().map(|u| format!(" as user `{u}`")).unwrap_or_default())]
    Connect {
        /// `host:port` or the socket path.
        address: String,
        /// The ACL user, if the URL names one.
        user: Option<String>,
        /// What redis-rs said.
        source: redis::RedisError,
    },
}

impl TransportError {
    /// A time limit passed, as redis-rs reports it (an I/O `TimedOut`, which
    /// [`TransportError::is_transient`] counts as worth a retry).
    pub fn timed_out(message: impl Into<String>) -> Self {
        redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            message.into(),
        ))
        .into()
    }

    /// Whether the error is the connection going away (worth a reconnect).
    pub fn is_connection_error(&self) -> bool {
        match self {
            TransportError::Redis(e) | TransportError::Connect { source: e, .. } => {
                e.is_connection_dropped() || e.is_connection_refusal() || e.is_io_error()
            }
            _ => false,
        }
    }

    /// Whether trying again later may succeed: the connection went away or
    /// timed out, a restarted server is still loading its data (`LOADING`),
    /// or, behind Sentinel, no Sentinel names a master that is up yet, or
    /// on a cluster a slot has no master yet (`CLUSTERDOWN`).
    ///
    /// `READONLY` (the server written to is a replica) is not counted: on
    /// a fixed address nothing turns the replica into a master. Behind
    /// Sentinel it is worth a retry on a connection made again, which is
    /// [`TransportError::is_read_only`] together with
    /// [`Endpoint::follows_failover`](crate::streams::Endpoint::follows_failover).
    pub fn is_transient(&self) -> bool {
        match self {
            TransportError::Redis(e) => {
                self.is_connection_error()
                    || e.is_timeout()
                    || e.code() == Some("LOADING")
                    || e.code() == Some("TRYAGAIN")
                    || e.code() == Some("CLUSTERDOWN")
                    || e.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel
            }
            _ => false,
        }
    }

    /// Whether the server refused a write because it is a replica
    /// (`READONLY`), for one command or inside a transaction or pipeline:
    /// behind Sentinel, the master it was turned into a replica, a
    /// failover.
    pub fn is_read_only(&self) -> bool {
        match self {
            TransportError::Redis(e) => is_read_only(e),
            TransportError::Protocol { reason, .. } => reason.starts_with("READONLY"),
            _ => false,
        }
    }

    /// Whether a Redis Cluster node said it does not serve the key's slot
    /// (`MOVED`, `ASK`) or the cluster cannot serve it now (`CLUSTERDOWN`,
    /// `TRYAGAIN`): the command was not run, and may be sent again to the
    /// node that serves the slot.
    pub fn is_cluster_redirect(&self) -> bool {
        const CODES: [&str; 4] = ["MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN"];
        match self {
            TransportError::Redis(e) => e.code().is_some_and(|c| CODES.contains(&c)),
            TransportError::Protocol { reason, .. } => CODES
                .iter()
                .any(|c| reason.strip_prefix(c).is_some_and(|r| r.starts_with(' '))),
            _ => false,
        }
    }

    /// Whether a Redis Cluster node said `ASK` (the slot is moving, and
    /// this key already went) or `TRYAGAIN` (it is moving now): the slot is
    /// still the node's, and one command goes elsewhere or later.
    pub fn is_asked(&self) -> bool {
        match self {
            TransportError::Redis(e) => matches!(e.code(), Some("ASK" | "TRYAGAIN")),
            TransportError::Protocol { reason, .. } => {
                reason.starts_with("ASK ") || reason.starts_with("TRYAGAIN ")
            }
            _ => false,
        }
    }

    /// Whether the consumer group (or its stream) does not exist: a server
    /// restarted without persistence lost it.
    pub fn is_no_group(&self) -> bool {
        match self {
            TransportError::Redis(e) => e.code() == Some("NOGROUP"),
            TransportError::Protocol { reason, .. } => reason.starts_with("NOGROUP"),
            _ => false,
        }
    }
}

/// Whether `e` is a replica's `READONLY`, alone or among the errors of a
/// transaction or pipeline.
pub(crate) fn is_read_only(e: &redis::RedisError) -> bool {
    e.code() == Some("READONLY")
        || e.clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "READONLY"))
}
