//! The [`Bus`]: its configuration, its keys, and the paths that publish
//! and subscribe. What is built on top of it (consumers, dead letters,
//! inspection) adds its own `impl Bus` on the floor above, so the bus never
//! names those floors.

mod backend;
mod keys;
mod live;
mod publish;
mod raw;
mod replies;
mod subscribe;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::event::{self, DEFAULT_SCHEMA_BASE};
pub(crate) use backend::{on_channels, on_streams, Backend};
pub(crate) use keys::{check_name, delayed_key, forbidden_in_name, retry_stream_key, MAX_NAME_LEN};
pub(crate) use live::ReaderLife;
pub(crate) use publish::level_key;
pub(crate) use publish::Draft;
pub use publish::{Meta, Priority, Published};
pub use raw::RawEvent;
pub(crate) use replies::{Replies, REPLY_STREAM_MAX_LEN};
pub use subscribe::{AnyEvent, AnyEventStream, EventStream};

use crate::memory::MemoryTransport;
use crate::pubsub::PubSubTransport;
use crate::streams::{redact, Durability, Endpoint, StreamsTransport, TlsFiles};
use keys::{channel_key, stream_key};

/// Key namespace used when none is configured.
pub const DEFAULT_NAMESPACE: &str = "tidings";

struct Shared {
    namespace: String,
    source: String,
    backend: Backend,
    publish_timeout: Duration,
    /// `None` for [`DEFAULT_SCHEMA_BASE`], whose `dataschema` of each type is
    /// a constant.
    schema_base: Option<Box<str>>,
    readers: live::Readers,
    replies: Replies,
    publish_metrics: crate::telemetry::PublishMetrics,
    /// Streams declared with partitions, and how many each has.
    partitions: Vec<(String, u32)>,
}

/// The partition of `key` among `count`: FNV-1a (32 bits) of its UTF-8
/// bytes, modulo `count`, which any language computes the same way.
pub fn partition_of(key: &str, count: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % count.max(1)
}

/// The event bus: publishes, subscribes, and builds consumers.
///
/// Cheap to clone (one `Arc`); every clone shares the same connection.
///
/// ```
/// # async fn run() -> Result<(), tidings::Error> {
/// let bus = tidings::Bus::in_memory();
/// let acme = bus.tenant("acme")?;           // keys and channels scoped to `acme`
/// assert_eq!(acme.stream_key("contextual")?, "tidings:{acme:contextual}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Bus {
    shared: Arc<Shared>,
    tenant: Option<Arc<str>>,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("namespace", &self.shared.namespace)
            .field("source", &self.shared.source)
            .field("tenant", &self.tenant)
            .field("backend", &self.shared.backend)
            .finish()
    }
}

/// Configuration of a [`Bus`]: key namespace, `source`, timeouts.
///
/// ```
/// let bus = tidings::Bus::builder().namespace("app").source("billing").in_memory().unwrap();
/// assert_eq!(bus.stream_key("invoices")?, "app:{invoices}");
/// # Ok::<(), tidings::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct BusBuilder {
    namespace: String,
    source: String,
    response_timeout: Option<Duration>,
    publish_timeout: Duration,
    connect_timeout: Duration,
    schema_base: Option<String>,
    reply_ttl: Duration,
    tls: TlsFiles,
    partitions: Vec<(String, u32)>,
    durability: Durability,
}

/// How long `publish` keeps trying while Redis is unreachable, by default.
const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting may take, by default.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl Default for BusBuilder {
    fn default() -> Self {
        BusBuilder {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            source: default_source(),
            response_timeout: Some(Duration::from_secs(5)),
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            schema_base: None,
            reply_ttl: replies::DEFAULT_REPLY_TTL,
            tls: TlsFiles::default(),
            partitions: Vec::new(),
            durability: Durability::Acknowledged,
        }
    }
}

/// The `source` when none is configured: the executable's name.
fn default_source() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "tidings".to_owned())
}

impl BusBuilder {
    /// Prefix of every key and channel (default `tidings`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The `source` attribute of published events: the service name
    /// (default: the executable's name).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// How long a publishing command may wait for its reply (default 5 s;
    /// `None` waits forever).
    pub fn response_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long `publish` keeps trying while Redis is unreachable or
    /// restarting (default 10 s): a failed attempt on a dropped connection
    /// is retried with backoff on a new one until this time has passed, then
    /// `publish` returns [`Error::Unavailable`]. An attempt whose reply was
    /// lost may have been written already, so a retried event can be in the
    /// stream twice, with the same event id (the inbox drops the second).
    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// How long [`BusBuilder::connect`] may take to reach the server and
    /// log in (default 2 s), and each later connection attempt too. A
    /// closed port, a wrong password or a server that does not answer fails
    /// within it, with [`TransportError::Connect`](crate::TransportError::Connect)
    /// naming the address and the user.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The absolute URI that `dataschema` and each schema's `$id` start with
    /// (default [`DEFAULT_SCHEMA_BASE`]): where the `schemas/` folder is
    /// published, such as `https://schemas.example.com/events/`. A `/` is
    /// added if it ends in neither `/` nor `:`. Give the schema check the
    /// same base ([`Check::schema_base`](crate::schemas::Check::schema_base)),
    /// so that `$id` and `dataschema` agree.
    ///
    /// ```
    /// # use tidings::{event, Event};
    /// let bus = tidings::Bus::builder()
    ///     .schema_base("https://schemas.example.com/events")
    ///     .in_memory()?;
    /// assert_eq!(bus.schema_base(), "https://schemas.example.com/events/");
    /// assert!(tidings::Bus::builder().schema_base("schemas/").in_memory().is_err());
    /// # Ok::<(), tidings::Error>(())
    /// ```
    pub fn schema_base(mut self, base: impl Into<String>) -> Self {
        self.schema_base = Some(base.into());
        self
    }

    /// How long the reply stream of this bus instance
    /// (`ns:{reply:<instance>}`, where [`Bus::request`](crate::Bus::request)
    /// replies arrive) outlives the bus (default 60 s). The bus renews it
    /// every third of that while it runs; the stream of an instance that
    /// died expires, and replies to it are dropped by the responder.
    pub fn reply_ttl(mut self, ttl: Duration) -> Self {
        self.reply_ttl = ttl.max(Duration::from_millis(30));
        self
    }

    /// Declares `stream` with `count` partitions (1 to 1024), each a stream
    /// of its own, `ns:{stream#<k>}`: an event with a key goes to partition
    /// `fnv1a32(key) % count`, one without to partition 0. A consumer group
    /// has one active worker per partition at a time (it holds the
    /// partition's lease), so the events of one key are handled in order
    /// across all the workers of the group. Every bus that publishes to the
    /// stream or reads it declares the same count.
    ///
    /// ```
    /// let bus = tidings::Bus::builder().partitions("ledger", 8).in_memory().unwrap();
    /// assert_eq!(bus.partitions("ledger"), Some(8));
    /// ```
    pub fn partitions(mut self, stream: impl Into<String>, count: u32) -> Self {
        let stream = stream.into();
        self.partitions.retain(|(s, _)| *s != stream);
        self.partitions.push((stream, count));
        self
    }

    fn build(self, backend: Backend) -> Result<Bus, Error> {
        check_name("namespace", &self.namespace)?;
        for (stream, count) in &self.partitions {
            check_name("stream", stream)?;
            if !(1..=1024).contains(count) {
                return Err(Error::InvalidName(crate::error::NameError {
                    what: "partition count",
                    name: format!("{stream}: {count}"),
                    reason: "a stream has 1 to 1024 partitions".to_owned(),
                }));
            }
        }
        let schema_base = match self.schema_base {
            None => None,
            Some(base) => {
                let checked = event::schema_base(&base)
                    .map_err(|reason| Error::InvalidSchemaBase { base, reason })?;
                (checked != DEFAULT_SCHEMA_BASE).then(|| checked.into_boxed_str())
            }
        };
        crate::telemetry::describe();
        let replies = Replies::new(&self.namespace, self.reply_ttl);
        Ok(Bus {
            shared: Arc::new(Shared {
                namespace: self.namespace,
                source: self.source,
                backend,
                publish_timeout: self.publish_timeout,
                replies,
                schema_base,
                readers: live::Readers::default(),
                publish_metrics: Default::default(),
                partitions: self.partitions,
            }),
            tenant: None,
        })
    }

    /// When a publish to Redis is acknowledged: once the master has the
    /// entries (the default), or once replicas have them too
    /// ([`Durability::Replicated`], which `WAIT`s after each publish).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The CA certificate (PEM) that a `rediss://` server's certificate
    /// must chain to, instead of the system's roots; the same as
    /// `?tls_ca=<path>` in the URL.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tidings::Error> {
    /// let bus = tidings::Bus::builder()
    ///     .tls_ca_file("/etc/redis/tls/ca.crt")
    ///     .tls_client_cert("/etc/redis/tls/client.crt", "/etc/redis/tls/client.key")
    ///     .connect("rediss://orders:secret@redis.internal:6380")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls = self.tls.ca(path);
        self
    }

    /// A client certificate and its key (PEM) for a `rediss://` server that
    /// asks for one (`tls-auth-clients yes`, Redis's default); the same as
    /// `?tls_cert=<path>&tls_key=<path>` in the URL.
    pub fn tls_client_cert(
        mut self,
        cert: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.tls = self.tls.client(cert, key);
        self
    }

    /// A bus on Redis at `url`, one of (see [`Endpoint::parse`]):
    ///
    /// - `redis://[user:password@]host:port[/db]`;
    /// - `rediss://…?tls_ca=…&tls_cert=…&tls_key=…` over TLS (`?insecure`
    ///   accepts any certificate, and is never implied);
    /// - `redis+sentinel://[user:password@]h1:26379,h2:26379/master-name[/db]`,
    ///   the master the Sentinels name, followed through a failover;
    /// - `redis+cluster://[user:password@]h1:p1,h2:p2,…`, a Redis Cluster
    ///   that any of the nodes named introduces.
    ///
    /// Every connection of the bus (publishing, reading, Pub/Sub) goes to
    /// that server. A wrong password or an untrusted certificate fails
    /// within [`BusBuilder::connect_timeout`] with
    /// [`TransportError::Connect`](crate::TransportError::Connect), which
    /// names the address and the user, never the password.
    pub async fn connect(self, url: &str) -> Result<Bus, Error> {
        let endpoint = Endpoint::parse(url, &self.tls)?;
        let streams = StreamsTransport::connect(
            endpoint.clone(),
            self.response_timeout,
            self.connect_timeout,
        )
        .await?
        .with_durability(self.durability);
        let pubsub = PubSubTransport::new(endpoint, streams.connection().clone());
        self.build(Backend::Redis { streams, pubsub })
    }

    /// A bus on a fresh in-memory broker.
    pub fn in_memory(self) -> Result<Bus, Error> {
        self.build(Backend::Memory(MemoryTransport::new()))
    }

    /// A bus on a given in-memory broker (to share one between buses of
    /// different namespaces or sources).
    pub fn memory(self, transport: MemoryTransport) -> Result<Bus, Error> {
        self.build(Backend::Memory(transport))
    }

    /// Redis at `REDIS_URL` if it is set, in-memory otherwise; logs which.
    /// In memory, every bus of the process shares one broker
    /// ([`MemoryTransport::process`]), so services in one process meet as
    /// they would on Redis.
    pub async fn from_env(self) -> Result<Bus, Error> {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.trim().is_empty() => {
                tracing::info!(url = %redact(&url), "tidings: using Redis from REDIS_URL");
                self.connect(url.trim()).await
            }
            _ => {
                tracing::info!(
                    "tidings: REDIS_URL is not set; using the in-memory broker of this process"
                );
                self.memory(MemoryTransport::process())
            }
        }
    }
}

impl Bus {
    /// Configure a bus: namespace, source, timeouts.
    pub fn builder() -> BusBuilder {
        BusBuilder::default()
    }

    /// A bus on Redis at `url`, with the default configuration.
    ///
    /// One multiplexed connection (redis-rs `ConnectionManager`, which
    /// reconnects by itself) is shared by every clone of the bus.
    pub async fn connect(url: &str) -> Result<Bus, Error> {
        BusBuilder::default().connect(url).await
    }

    /// A bus on a fresh in-memory broker, with the default configuration.
    pub fn in_memory() -> Bus {
        Bus {
            shared: Arc::new(Shared {
                namespace: DEFAULT_NAMESPACE.to_owned(),
                source: default_source(),
                backend: Backend::Memory(MemoryTransport::new()),
                publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
                schema_base: None,
                readers: live::Readers::default(),
                replies: Replies::new(DEFAULT_NAMESPACE, replies::DEFAULT_REPLY_TTL),
                partitions: Vec::new(),
                publish_metrics: Default::default(),
            }),
            tenant: None,
        }
    }

    /// Redis at `REDIS_URL` if set, in-memory otherwise (one broker shared by
    /// the whole process); logs which with `tracing`.
    pub async fn from_env() -> Result<Bus, Error> {
        BusBuilder::default().from_env().await
    }

    /// The same bus, scoped to a tenant: its streams are `ns:{tenant:stream}`
    /// and its channels `ns:{tenant}:channel:type`, for publishing,
    /// subscribing and consuming alike, and its events carry `tenantid`.
    /// Nothing done through it reaches the keys or channels of the root bus
    /// or of another tenant, whatever names or patterns it is given.
    ///
    /// A name that would break a key or a pattern (empty, longer than 64
    /// bytes, whitespace or control characters, `*`, `?`, `[`, `]`, `{`,
    /// `}`, `:`, `\`) is rejected, and so is `reply`, the scope of the
    /// reply streams (`ns:{reply:<instance>}`). The same rule, with at most 128 bytes,
    /// holds for every stream, channel, group, consumer and namespace name
    /// given at run time.
    pub fn tenant(&self, tenant: &str) -> Result<Bus, Error> {
        check_name("tenant", tenant)?;
        Ok(Bus {
            shared: self.shared.clone(),
            tenant: Some(Arc::from(tenant)),
        })
    }

    /// The tenant this bus is scoped to.
    pub fn tenant_name(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The key namespace.
    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    /// The `source` attribute of published events.
    pub fn source(&self) -> &str {
        &self.shared.source
    }

    /// The base of the `dataschema` of published events
    /// ([`BusBuilder::schema_base`]).
    pub fn schema_base(&self) -> &str {
        self.shared
            .schema_base
            .as_deref()
            .unwrap_or(DEFAULT_SCHEMA_BASE)
    }

    /// The `dataschema` of a type's version on this bus: its constant under
    /// the default base, the configured base and its path otherwise.
    pub(crate) fn dataschema(&self, schema_path: &str, default: &'static str) -> Cow<'static, str> {
        match &self.shared.schema_base {
            None => Cow::Borrowed(default),
            Some(base) => Cow::Owned(format!("{base}{schema_path}")),
        }
    }

    /// The in-memory broker, if the bus is in-memory.
    pub fn memory(&self) -> Option<&MemoryTransport> {
        match &self.shared.backend {
            Backend::Memory(m) => Some(m),
            Backend::Redis { .. } => None,
        }
    }

    /// How long a call keeps trying while Redis is unreachable.
    pub(crate) fn publish_timeout(&self) -> Duration {
        self.shared.publish_timeout
    }

    /// The workers' reading loops report themselves here.
    pub(crate) fn readers(&self) -> &live::Readers {
        &self.shared.readers
    }

    /// The reply inbox of this bus instance.
    pub(crate) fn replies(&self) -> &Replies {
        &self.shared.replies
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.shared.backend
    }

    /// Key of a stream: `ns:{stream}`, or `ns:{tenant:stream}` for a tenant.
    ///
    /// Fails on a stream name that could reach another stream's or another
    /// tenant's keys (see [`Bus::tenant`] for the rule).
    ///
    /// ```
    /// let bus = tidings::Bus::in_memory();
    /// assert_eq!(bus.stream_key("contextual")?, "tidings:{contextual}");
    /// assert!(bus.stream_key("acme:contextual").is_err());
    /// # Ok::<(), tidings::Error>(())
    /// ```
    pub fn stream_key(&self, stream: &str) -> Result<String, Error> {
        check_name("stream", stream)?;
        Ok(stream_key(
            &self.shared.namespace,
            self.tenant.as_deref(),
            stream,
        ))
    }

    /// How many partitions `stream` was declared with
    /// ([`BusBuilder::partitions`]), if any.
    pub fn partitions(&self, stream: &str) -> Option<u32> {
        self.shared
            .partitions
            .iter()
            .find(|(s, _)| s == stream)
            .map(|(_, n)| *n)
    }

    /// Key of partition `k` of a stream: `ns:{stream#<k>}`.
    pub fn partition_stream_key(&self, stream: &str, k: u32) -> Result<String, Error> {
        check_name("stream", stream)?;
        Ok(stream_key(
            &self.shared.namespace,
            self.tenant.as_deref(),
            &format!("{stream}#{k}"),
        ))
    }

    /// The stream key an event of `stream` with `key` goes to: its
    /// partition's when the stream has partitions, else the stream's.
    pub(crate) fn routed_key(&self, stream_key: String, stream: &str, key: Option<&str>) -> String {
        match self.partitions(stream) {
            None => stream_key,
            Some(count) => {
                let k = key.map_or(0, |key| partition_of(key, count));
                stream_key
                    .strip_suffix('}')
                    .map(|open| format!("{open}#{k}}}"))
                    .unwrap_or(stream_key)
            }
        }
    }

    /// Key of a stream's dead letters: `ns:{stream}:dlq`.
    pub fn dead_letter_key(&self, stream: &str) -> Result<String, Error> {
        let mut k = self.stream_key(stream)?;
        k.push_str(":dlq");
        Ok(k)
    }

    /// Channel of an event type: `ns:channel:type`, or
    /// `ns:{tenant}:channel:type` for a tenant.
    ///
    /// ```
    /// let bus = tidings::Bus::in_memory();
    /// let acme = bus.tenant("acme")?;
    /// assert_eq!(acme.channel_key("gates", "gate.opened")?, "tidings:{acme}:gates:gate.opened");
    /// # Ok::<(), tidings::Error>(())
    /// ```
    pub fn channel_key(&self, channel: &str, type_name: &str) -> Result<String, Error> {
        check_name("channel", channel)?;
        check_name("type", type_name)?;
        Ok(channel_key(
            &self.shared.namespace,
            self.tenant.as_deref(),
            channel,
            type_name,
        ))
    }

    /// The `PSUBSCRIBE` pattern of [`Bus::subscribe_pattern`]: the channel
    /// key with a type pattern in the type's place, checked so that it only
    /// matches inside `channel` on this bus's scope.
    ///
    /// ```
    /// let acme = tidings::Bus::in_memory().tenant("acme")?;
    /// assert_eq!(acme.channel_pattern("gates", "gate.*")?, "tidings:{acme}:gates:gate.*");
    /// # Ok::<(), tidings::Error>(())
    /// ```
    pub fn channel_pattern(&self, channel: &str, pattern: &str) -> Result<String, Error> {
        check_name("channel", channel)?;
        keys::check_type_pattern(pattern)?;
        Ok(channel_key(
            &self.shared.namespace,
            self.tenant.as_deref(),
            channel,
            pattern,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_password_is_not_logged() {
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }
}
