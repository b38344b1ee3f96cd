//! The publish paths: an event serialized once into a [`Draft`], stamped
//! with its id and time, and sent on the bus's transports, with retries
//! while Redis is unreachable, up to the publish timeout.

use std::time::Duration;

use crate::backoff::Backoff;
use crate::bus::{channel_key, check_name, stream_key, Backend, Bus};
use crate::envelope::{now_millis, Rfc3339Millis};
use tracing::Instrument;

use crate::error::{Error, TransportError};
use crate::trace::{self, WireContext};
use crate::transport::{ChannelTransport, DueDelivery, Outgoing, StreamTransport};
use crate::{Event, Ulid};

/// Optional attributes of a published event.
///
/// ```
/// let meta = tidings::Meta::default()
///     .correlation_id("order-42")
///     .subject("files/7")
///     .traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
///     .extension("region", "eu-west-1")
///     .event_id(tidings::Ulid::new());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct Meta {
    /// `correlationid`.
    pub correlation_id: Option<String>,
    /// `causationid`.
    pub causation_id: Option<String>,
    /// `tenantid`; also scopes the keys, as [`Bus::tenant`] does. On a
    /// tenant's bus it must be that tenant ([`Error::OtherTenant`]
    /// otherwise).
    pub tenant: Option<String>,
    /// `subject`.
    pub subject: Option<String>,
    /// `traceparent`.
    pub traceparent: Option<String>,
    /// `tracestate`.
    pub tracestate: Option<String>,
    /// Extension attributes of your own, by name (see [`Meta::extension`]).
    pub extensions: Vec<(String, String)>,
    /// The event's `id`, when the caller chooses it (see [`Meta::event_id`]).
    pub event_id: Option<Ulid>,
    /// `partitionkey`, in place of the event's own key (see
    /// [`Meta::partition_key`]).
    pub partition_key: Option<String>,
    /// When the event is to be delivered, if later than now (see
    /// [`Meta::deliver_at`]).
    pub deliver_at: Option<std::time::SystemTime>,
    /// The priority level the event is queued at (see [`Meta::priority`]).
    pub priority: Option<Priority>,
    /// `replyto`, set by [`Bus::request`](crate::Bus::request) only.
    pub(crate) reply_to: Option<String>,
}

impl Meta {
    /// Sets `correlationid`.
    pub fn correlation_id(mut self, v: impl Into<String>) -> Self {
        self.correlation_id = Some(v.into());
        self
    }
    /// Sets `causationid`.
    pub fn causation_id(mut self, v: impl Into<String>) -> Self {
        self.causation_id = Some(v.into());
        self
    }
    /// Sets `tenantid` and publishes to the tenant's keys.
    pub fn tenant(mut self, v: impl Into<String>) -> Self {
        self.tenant = Some(v.into());
        self
    }
    /// Sets `subject`.
    pub fn subject(mut self, v: impl Into<String>) -> Self {
        self.subject = Some(v.into());
        self
    }
    /// Sets `traceparent`. With the `opentelemetry` feature, the event
    /// carries the publish span's own context instead: a child of the
    /// current span when there is one, else a child of this traceparent.
    pub fn traceparent(mut self, v: impl Into<String>) -> Self {
        self.traceparent = Some(v.into());
        self
    }
    /// Sets `tracestate`.
    pub fn tracestate(mut self, v: impl Into<String>) -> Self {
        self.tracestate = Some(v.into());
        self
    }

    /// Adds a CloudEvents extension attribute: a field of the stream entry
    /// and an attribute of the Pub/Sub message, which readers find in
    /// [`Envelope::extensions`](crate::Envelope::extensions). The name
    /// follows CloudEvents (lower-case letters and digits, at most 20) and
    /// is none of the attributes tidings writes itself (`specversion`, `id`,
    /// `source`, `type`, `time`, `datacontenttype`, `dataschema`,
    /// `dataversion`, `data`, `correlationid`, `causationid`, `tenantid`,
    /// `traceparent`, `tracestate`, `subject`, `partitionkey`, `replyto`,
    /// `dlqgroup`);
    /// publishing fails with [`Error::InvalidName`] otherwise. A name given
    /// twice keeps the last value.
    pub fn extension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.extensions.retain(|(n, _)| *n != name);
        self.extensions.push((name, value.into()));
        self
    }

    /// Publishes the event with this `id` instead of a new one: a caller
    /// that publishes again after an [`Error::Unavailable`] (whose attempt
    /// may have been written) keeps the id, so that a group's inbox drops
    /// the copy. Only for one event: a batch with it fails with
    /// [`Error::EventIdInBatch`].
    pub fn event_id(mut self, id: Ulid) -> Self {
        self.event_id = Some(id);
        self
    }

    /// Sets `partitionkey`, in place of the key the event's type takes
    /// from its fields (`#[event(…, key = field)]`): events of one key are
    /// handled one after another, in stream order, by each consumer group.
    /// Not empty and without control characters; publishing fails with
    /// [`Error::InvalidName`] otherwise.
    ///
    /// ```
    /// let meta = tidings::Meta::default().partition_key("customer-42");
    /// ```
    pub fn partition_key(mut self, key: impl Into<String>) -> Self {
        self.partition_key = Some(key.into());
        self
    }

    /// Delivers the event at `at` instead of now: it waits in the sorted set
    /// `ns:{stream}:delayed` (score: `at` in milliseconds) and is appended to
    /// its stream when due, by the workers of the stream (or
    /// [`Bus::deliver_due`]), each event within the workers'
    /// [`delayed_poll`](crate::ConsumerOptions::delayed_poll) of its time.
    /// On a stream declared with partitions, the set is that of the
    /// event's partition and level (`ns:{stream#<k>}:delayed`,
    /// `ns:{stream#<k>}:high:delayed`), moved by the worker that holds the
    /// partition. A time not in the future publishes at once. Only for events with a
    /// stream and no channel ([`Error::DelayOnChannel`] otherwise); the
    /// [`Published`] of a delayed event has no `entry_id` yet.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// let meta = tidings::Meta::default().deliver_at(SystemTime::now() + Duration::from_secs(60));
    /// ```
    pub fn deliver_at(mut self, at: std::time::SystemTime) -> Self {
        self.deliver_at = Some(at);
        self
    }

    /// Delivers the event `after` from now: [`Meta::deliver_at`] with
    /// now + `after`.
    ///
    /// ```
    /// let meta = tidings::Meta::default().deliver_after(std::time::Duration::from_secs(30));
    /// ```
    pub fn deliver_after(self, after: Duration) -> Self {
        let at = std::time::SystemTime::now()
            .checked_add(after)
            .unwrap_or_else(|| std::time::SystemTime::now() + Duration::from_secs(u32::MAX.into()));
        self.deliver_at(at)
    }

    /// When the event is due, in milliseconds since the Unix epoch, if that
    /// is later than `now`.
    fn due_after(&self, now: i64) -> Option<i64> {
        let at = self.deliver_at?;
        let ms = match at.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => return None,
        };
        (ms > now).then_some(ms)
    }

    /// Queues the event at a priority level: [`Priority::High`] and
    /// [`Priority::Low`] go to the streams `ns:{stream}:high` and
    /// `ns:{stream}:low` beside the stream itself, which holds the
    /// [`Priority::Normal`] ones (and every event published without a
    /// priority). A worker with
    /// [`ConsumerOptions::priorities`](crate::ConsumerOptions::priorities)
    /// reads all three, higher levels first without starving lower ones;
    /// one without reads the normal level only. On a stream declared with
    /// partitions, the levels are those of the event's partition
    /// (`ns:{stream#<k>}:high`).
    ///
    /// ```
    /// let meta = tidings::Meta::default().priority(tidings::Priority::High);
    /// ```
    pub fn priority(mut self, level: Priority) -> Self {
        self.priority = Some(level);
        self
    }

    /// Checks the extension names and the partition key.
    pub(super) fn check(&self) -> Result<(), Error> {
        for (name, _) in &self.extensions {
            check_extension_name(name)?;
        }
        if let Some(key) = &self.partition_key {
            check_partition_key(key)?;
        }
        Ok(())
    }
}

/// How urgent a task is: the level of a priority queue it waits in (see
/// [`Meta::priority`]).
///
/// A worker that reads the levels ([`ConsumerOptions::priorities`](crate::ConsumerOptions::priorities))
/// hands its handlers' free slots to the levels with entries waiting in a
/// weighted round: up to 6 to `High`, then 3 to `Normal`, then 1 to `Low`,
/// again and again. A level with nothing waiting takes no turn, so a high
/// task is started before any waiting lower one while high tasks last at
/// most 6 in a row, and a low task still gets one slot in 10 when every
/// level is busy: none starves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[non_exhaustive]
pub enum Priority {
    /// Before everything else.
    High,
    /// The stream itself: events published without a priority.
    #[default]
    Normal,
    /// After the others, when they leave room.
    Low,
}

impl Priority {
    /// Every level, highest first.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// The level's suffix on the stream key (`:high`, `:low`), none for
    /// `Normal`.
    pub fn suffix(self) -> &'static str {
        match self {
            Priority::High => ":high",
            Priority::Normal => "",
            Priority::Low => ":low",
        }
    }

    /// The level's name in a dead letter's or a parked retry's
    /// `dlq_level`: `high` or `low`, none for `Normal` (the stream itself).
    pub(crate) fn level_name(self) -> Option<&'static str> {
        match self {
            Priority::High => Some("high"),
            Priority::Normal => None,
            Priority::Low => Some("low"),
        }
    }

    /// The level a `dlq_level` names, `high` or `low`.
    pub(crate) fn from_name(name: &str) -> Option<Priority> {
        match name {
            "high" => Some(Priority::High),
            "low" => Some(Priority::Low),
            _ => None,
        }
    }

    /// Turns of this level in each weighted round.
    pub fn weight(self) -> u32 {
        match self {
            Priority::High => 6,
            Priority::Normal => 3,
            Priority::Low => 1,
        }
    }

    /// The level as written: `high`, `normal` or `low`.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = crate::error::NameError;

    /// `high`, `normal` or `low`, as records write `priority: 'normal'`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| crate::error::NameError {
                what: "priority",
                name: s.to_owned(),
                reason: "a priority is `high`, `normal` or `low`".to_owned(),
            })
    }
}

/// The key of a stream's priority level.
pub(crate) fn level_key(stream_key: String, level: Option<Priority>) -> String {
    match level {
        None | Some(Priority::Normal) => stream_key,
        Some(p) => stream_key + p.suffix(),
    }
}

/// Attributes tidings writes or reserves: no extension may take their names.
const RESERVED_ATTRIBUTES: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "datacontenttype",
    "dataschema",
    "dataversion",
    "data",
    "correlationid",
    "causationid",
    "tenantid",
    "traceparent",
    "tracestate",
    "subject",
    "partitionkey",
    "replyto",
    "dlqgroup",
];

/// Checks an extension attribute name against CloudEvents' rule and the
/// names tidings uses.
fn check_extension_name(name: &str) -> Result<(), crate::error::NameError> {
    let reason = if name.is_empty() || name.len() > 20 {
        "CloudEvents attribute names have 1 to 20 characters".to_owned()
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        "CloudEvents attribute names hold only lower-case letters (a-z) and digits".to_owned()
    } else if RESERVED_ATTRIBUTES.contains(&name) {
        "tidings writes an attribute of that name itself".to_owned()
    } else {
        return Ok(());
    };
    Err(crate::error::NameError {
        what: "extension attribute",
        name: name.to_owned(),
        reason,
    })
}

/// A partition key is not empty and holds no control characters, so that
/// every reader (and a terminal showing it) sees it as it was written.
pub(crate) fn check_partition_key(key: &str) -> Result<(), crate::error::NameError> {
    if key.is_empty() || key.chars().any(char::is_control) {
        return Err(crate::error::NameError {
            what: "partition key",
            name: key.to_owned(),
            reason: "a partition key is not empty and holds no control characters".to_owned(),
        });
    }
    Ok(())
}

/// Where a published event went.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// The stream entry id, if the event has a stream (`None` for a
    /// channel-only event).
    pub entry_id: Option<String>,
    /// The event's `id`.
    pub event_id: Ulid,
}

/// An event serialized once, with the constants of its type: what is
/// published, whether it comes from `publish` or a handler's return value.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    type_name: &'static str,
    version: u32,
    dataschema: &'static str,
    schema_path: &'static str,
    stream: Option<&'static str>,
    channel: Option<&'static str>,
    /// The event's own key ([`Event::partition_key`]).
    partition_key: Option<String>,
    data: Vec<u8>,
}

impl Draft {
    pub(crate) fn of<E: Event>(e: &E) -> Result<Draft, Error> {
        Draft::sized(e, 128)
    }

    /// The drafts of a batch, in order: each payload is written into a
    /// buffer sized after the one before, which spares the reallocations
    /// of growing every payload from empty (about 500 instructions each).
    pub(crate) fn all<'e, E: Event + 'e>(
        events: impl IntoIterator<Item = &'e E>,
    ) -> Result<Vec<Draft>, Error> {
        let events = events.into_iter();
        let mut drafts = Vec::with_capacity(events.size_hint().0);
        let mut capacity = 128;
        for e in events {
            let draft = Draft::sized(e, capacity)?;
            capacity = draft.data.len() + draft.data.len() / 8 + 16;
            drafts.push(draft);
        }
        Ok(drafts)
    }

    /// The attributes of `E` with no payload: for a batch whose payloads
    /// are serialized while it is being sent.
    fn unwritten<E: Event>() -> Draft {
        Draft {
            type_name: E::TYPE,
            version: E::VERSION,
            dataschema: E::DATASCHEMA,
            schema_path: E::SCHEMA_PATH,
            stream: E::STREAM,
            channel: E::CHANNEL,
            partition_key: None,
            data: Vec::new(),
        }
    }

    fn sized<E: Event>(e: &E, capacity: usize) -> Result<Draft, Error> {
        if E::STREAM.is_none() && E::CHANNEL.is_none() {
            return Err(Error::NoDestination { type_name: E::TYPE });
        }
        let mut data = Vec::with_capacity(capacity);
        serde_json::to_writer(&mut data, e).map_err(|source| Error::Encode {
            type_name: E::TYPE,
            source,
        })?;
        let partition_key = e.partition_key();
        if let Some(key) = &partition_key {
            check_partition_key(key)?;
        }
        Ok(Draft {
            type_name: E::TYPE,
            version: E::VERSION,
            dataschema: E::DATASCHEMA,
            schema_path: E::SCHEMA_PATH,
            stream: E::STREAM,
            channel: E::CHANNEL,
            partition_key,
            data,
        })
    }
}

/// Where the events of one type in a batch go, with their keys.
struct Destination {
    stream: Option<&'static str>,
    channel: Option<&'static str>,
    type_name: &'static str,
    stream_key: Option<String>,
    channel_key: Option<String>,
}

/// What an event being sent takes from its call: the caller's attributes,
/// the tenant it goes to, and the trace context of the publish span.
#[derive(Clone, Copy)]
struct Scope<'a> {
    meta: Option<&'a Meta>,
    tenant: Option<&'a str>,
    wire: Option<&'a WireContext>,
}

/// The attributes of one event being sent, owned on the stack.
pub(super) struct Stamp {
    id: Ulid,
    id_text: [u8; ulid::ULID_LEN],
}

impl Stamp {
    fn new() -> Self {
        Stamp::of(Ulid::new())
    }
    pub(super) fn of(id: Ulid) -> Self {
        let mut id_text = [0u8; ulid::ULID_LEN];
        id.array_to_str(&mut id_text);
        Stamp { id, id_text }
    }
    pub(super) fn id(&self) -> &str {
        // Crockford base32 is ASCII.
        std::str::from_utf8(&self.id_text).unwrap_or("")
    }
}

/// Pauses between attempts at a publish while Redis is unreachable: short
/// at first, as most outages are a reconnect, never longer than half a
/// second, so that a restarted server is found soon.
const PUBLISH_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(20), Duration::from_millis(500));

impl Bus {
    /// Publishes an event to its stream and/or channel.
    ///
    /// ```text
    /// XADD ns:{stream} * specversion 1.0 id <ulid> source <svc> type <type> time <rfc3339>
    ///      datacontenttype application/json dataschema <uri> dataversion <n> data <json>
    /// PUBLISH ns:channel:type <cloudevents json>
    /// ```
    ///
    /// The payload is serialized once. Over TCP or TLS the `XADD` goes out on
    /// a connection the bus keeps for publishing, written and answered in
    /// the calling task; calls made while it is busy share the multiplexed
    /// connection and are pipelined on it.
    ///
    /// Order: publishes awaited one after the other reach the stream in that
    /// order. Publishes in flight at the same time (joined futures, several
    /// tasks) may go out on different connections and have no order among
    /// them; events that must stay in order go in one
    /// [`publish_batch`](Bus::publish_batch), whose entries are appended in
    /// the order given.
    pub async fn publish<E: Event>(&self, event: &E) -> Result<Published, Error> {
        let draft = Draft::of(event)?;
        self.send_one(&draft, None).await
    }

    /// Publishes an event with correlation id, causation id, tenant, subject
    /// or traceparent.
    pub async fn publish_with<E: Event>(&self, event: &E, meta: Meta) -> Result<Published, Error> {
        meta.check()?;
        let draft = Draft::of(event)?;
        self.send_one(&draft, Some(&meta)).await
    }

    /// Publishes many events in one round trip (one pipeline of `XADD`s,
    /// one of `PUBLISH`es); returns one [`Published`] per event, in order.
    ///
    /// Every event is serialized before anything is sent: an event that
    /// cannot be serialized fails the call with [`Error::Encode`] and nothing
    /// is published. Once sent, the batch is as durable as its commands: if
    /// the connection fails half-way, the batch is sent again (with the same
    /// event ids) until the publish timeout, so an event may appear twice.
    ///
    /// Over TCP or TLS a batch goes through a connection the bus keeps for
    /// publishing, with the commands encoded by tidings itself; a batch sent
    /// while another publish is on it goes through the shared connection.
    /// On the bus's own connection (on a Redis Cluster, that to the master
    /// of the stream's slot), a batch of events bound for one stream that
    /// is not partitioned (and no channel) is streamed out while it is
    /// serialized, inside
    /// `MULTI`/`EXEC`, so that Redis starts on it early and still appends
    /// nothing if a later event cannot be serialized:
    ///
    /// ```text
    /// MULTI
    /// XADD ns:{stream} * specversion 1.0 id <ulid> … data <json>    (one per event)
    /// EXEC
    /// ```
    pub async fn publish_batch<E: Event>(&self, events: &[E]) -> Result<Vec<Published>, Error> {
        if let Some(published) = self.publish_streamed(events).await {
            return published;
        }
        let drafts = Draft::all(events)?;
        self.send_drafts(&drafts, &Meta::default()).await
    }

    /// [`Bus::publish_batch`] with the same attributes on every event
    /// (correlation, causation, subject, trace, tenant, extensions). Each
    /// event gets an id of its own, so a `Meta` with
    /// [`Meta::event_id`] fails with [`Error::EventIdInBatch`].
    ///
    /// ```
    /// # #[tidings::event(stream = "contextual", version = 1)]
    /// # struct FileUploaded { file_id: String }
    /// # async fn run(bus: tidings::Bus) -> Result<(), tidings::Error> {
    /// let files = [FileUploaded { file_id: "a".into() }, FileUploaded { file_id: "b".into() }];
    /// bus.publish_batch_with(&files, tidings::Meta::default().correlation_id("import-7")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish_batch_with<E: Event>(
        &self,
        events: &[E],
        meta: Meta,
    ) -> Result<Vec<Published>, Error> {
        if meta.event_id.is_some() && events.len() != 1 {
            return Err(Error::EventIdInBatch {
                events: events.len(),
            });
        }
        meta.check()?;
        let drafts = Draft::all(events)?;
        self.send_drafts(&drafts, &meta).await
    }

    /// [`Bus::publish_batch`] of events bound for one stream and no
    /// channel, on the Redis transport's own connection (on a cluster, that
    /// to the master of the stream's slot) when it is free:
    /// each payload is serialized just before its `XADD` is encoded, and
    /// the commands go out in pieces inside `MULTI`/`EXEC`, so that Redis
    /// is already queueing the first ones while the client serializes the
    /// rest (with everything serialized first, Redis waited for the whole
    /// batch to be serialized and encoded). A payload that cannot be
    /// serialized aborts the transaction: nothing is appended, as on the
    /// other path. `None`, with nothing sent, where that path applies.
    async fn publish_streamed<E: Event>(
        &self,
        events: &[E],
    ) -> Option<Result<Vec<Published>, Error>> {
        let (Backend::Redis { streams, .. }, Some(stream), None) =
            (&self.shared.backend, E::STREAM, E::CHANNEL)
        else {
            return None;
        };
        if events.len() < 2 || self.partitions(stream).is_some() {
            return None;
        }
        let started = std::time::Instant::now();
        let tenant = self.tenant.as_deref();
        let key = stream_key(&self.shared.namespace, tenant, stream);
        let time = Rfc3339Millis::from_millis(now_millis());
        let stamps: Vec<Stamp> = events.iter().map(|_| Stamp::new()).collect();
        let draft = Draft::unwritten::<E>();
        let dataschema = self.dataschema(draft.schema_path, draft.dataschema);
        let span = self.publish_span([&draft], "publish_batch");
        let wire = trace::wire_context(&span);
        // Each event's own key, taken before anything is sent.
        let keys: Vec<Option<String>> = events.iter().map(Event::partition_key).collect();
        for key in keys.iter().flatten() {
            if let Err(e) = check_partition_key(key) {
                return Some(Err(e.into()));
            }
        }
        let attributes: Vec<Outgoing<'_>> = stamps
            .iter()
            .zip(&keys)
            .map(|(stamp, key)| {
                let mut o = self.outgoing(
                    stamp,
                    time.as_str(),
                    &draft,
                    &dataschema,
                    Scope {
                        meta: None,
                        tenant,
                        wire: wire.as_ref(),
                    },
                );
                o.partition_key = key.as_deref();
                o
            })
            .collect();
        let payload = |i: usize, buf: &mut Vec<u8>| match events.get(i) {
            Some(e) => serde_json::to_writer(buf, e),
            None => Ok(()),
        };
        // The first attempt only if the connection is free: a batch that
        // finds it busy takes the shared connection instead, as before. It
        // is held to the publish timeout, as every attempt after it is.
        let timeout = self.shared.publish_timeout;
        let first = tokio::time::timeout(
            timeout,
            streams
                .append_streamed(&key, &attributes, payload, false)
                .instrument(span.clone()),
        )
        .await;
        let first = match first {
            Ok(first) => first?,
            Err(_) => {
                return Some(Err(Error::Unavailable {
                    command: "XADD",
                    after: timeout,
                    attempts: 1,
                    last_error: "no reply in time".to_owned(),
                }))
            }
        };
        let sent = match first {
            // Sent again with the same event ids, as the other path does.
            Err(e) if self.worth_a_retry(&e) => {
                tracing::debug!(error = %e, "streamed batch failed; sending it again");
                self.patiently("XADD", || async {
                    // Waiting for the connection, which the first attempt
                    // found free, is always possible: `None` cannot come.
                    streams
                        .append_streamed(&key, &attributes, payload, true)
                        .await
                        .unwrap_or(Err(TransportError::Unsupported {
                            transport: "redis-streams",
                            operation: "streamed batches",
                        }))
                })
                .instrument(span.clone())
                .await
            }
            other => other.map_err(Error::from),
        };
        Some(match sent {
            Ok(Ok(ids)) => {
                self.shared.publish_metrics.sent(
                    self.shared.backend.system(),
                    stream,
                    E::TYPE,
                    "publish_batch",
                    ids.len() as u64,
                    Some(started.elapsed()),
                );
                Ok(ids
                    .into_iter()
                    .zip(&stamps)
                    .map(|(id, stamp)| Published {
                        entry_id: Some(id),
                        event_id: stamp.id,
                    })
                    .collect())
            }
            Ok(Err((_, source))) => Err(Error::Encode {
                type_name: E::TYPE,
                source,
            }),
            Err(e) => Err(e),
        })
    }

    pub(super) fn effective_tenant<'a>(
        &'a self,
        meta: Option<&'a Meta>,
    ) -> Result<Option<&'a str>, Error> {
        match (
            meta.and_then(|m| m.tenant.as_deref()),
            self.tenant.as_deref(),
        ) {
            (Some(t), Some(own)) if t != own => Err(Error::OtherTenant {
                bus: own.to_owned(),
                requested: t.to_owned(),
            }),
            (Some(t), None) => {
                check_name("tenant", t)?;
                Ok(Some(t))
            }
            (_, own) => Ok(own),
        }
    }

    fn outgoing<'a>(
        &'a self,
        stamp: &'a Stamp,
        time: &'a str,
        draft: &'a Draft,
        dataschema: &'a str,
        scope: Scope<'a>,
    ) -> Outgoing<'a> {
        let Scope { meta, tenant, wire } = scope;
        let (traceparent, tracestate) = match wire {
            Some(w) => (w.traceparent.as_deref(), w.tracestate.as_deref()),
            None => (
                meta.and_then(|m| m.traceparent.as_deref()),
                meta.and_then(|m| m.tracestate.as_deref()),
            ),
        };
        Outgoing {
            id: stamp.id(),
            source: &self.shared.source,
            type_name: draft.type_name,
            time,
            dataschema,
            dataversion: draft.version,
            correlation_id: meta.and_then(|m| m.correlation_id.as_deref()),
            causation_id: meta.and_then(|m| m.causation_id.as_deref()),
            tenant_id: tenant,
            traceparent,
            tracestate,
            subject: meta.and_then(|m| m.subject.as_deref()),
            reply_to: meta.and_then(|m| m.reply_to.as_deref()),
            partition_key: meta
                .and_then(|m| m.partition_key.as_deref())
                .or(draft.partition_key.as_deref()),
            extensions: meta.map_or(&[], |m| m.extensions.as_slice()),
            data: &draft.data,
        }
    }

    /// The single-event path: keys and attributes on the stack, one command.
    async fn send_one(&self, draft: &Draft, meta: Option<&Meta>) -> Result<Published, Error> {
        let started = std::time::Instant::now();
        let tenant = self.effective_tenant(meta)?;
        let stamp = meta
            .and_then(|m| m.event_id)
            .map_or_else(Stamp::new, Stamp::of);
        let time = Rfc3339Millis::from_millis(now_millis());
        let dataschema = self.dataschema(draft.schema_path, draft.dataschema);
        let span = self.publish_span([draft], "publish");
        if !span.is_disabled() {
            span.record("messaging.message.id", stamp.id());
            if let Some(m) = meta {
                trace::adopt(&span, m.traceparent.as_deref(), m.tracestate.as_deref());
            }
        }
        let wire = trace::wire_context(&span);
        let out = self.outgoing(
            &stamp,
            time.as_str(),
            draft,
            &dataschema,
            Scope {
                meta,
                tenant,
                wire: wire.as_ref(),
            },
        );
        let ns = &self.shared.namespace;
        // The partition first, then the level within it: `ns:{stream#k}:high`.
        let stream_key = draft.stream.map(|s| {
            let key = self.routed_key(stream_key(ns, tenant, s), s, out.partition_key);
            level_key(key, meta.and_then(|m| m.priority))
        });
        let channel_key = draft
            .channel
            .map(|c| channel_key(ns, tenant, c, draft.type_name));
        if let Some(due) = meta.and_then(|m| m.due_after(now_millis())) {
            return Box::pin(self.send_delayed(draft, stream_key.as_deref(), out, due))
                .instrument(span)
                .await
                .map(|()| {
                    self.count_sent([draft], "publish", started);
                    Published {
                        entry_id: None,
                        event_id: stamp.id,
                    }
                });
        }
        let append = async {
            match &stream_key {
                Some(k) => self
                    .append(&[(k.as_str(), out)])
                    .await
                    .map(|mut ids| ids.pop()),
                None => Ok(None),
            }
        };
        // Boxed, as the delayed path: awaited beside the append, the
        // channel's publish would make every publish's future as large as
        // both, events with no channel too.
        let broadcast = async {
            match &channel_key {
                Some(k) => Box::pin(self.broadcast(&[(k.as_str(), out)])).await,
                None => Ok(()),
            }
        };
        let (entry_id, ()) = futures::future::try_join(append, broadcast)
            .instrument(span)
            .await?;
        self.count_sent([draft], "publish", started);
        Ok(Published {
            entry_id,
            event_id: stamp.id,
        })
    }

    /// Appends the delayed events of `stream` that fell due (at most 1,000
    /// a call, earliest first), atomically each: what the workers of the
    /// stream do every [`delayed_poll`](crate::ConsumerOptions::delayed_poll),
    /// for a process that runs none.
    ///
    /// ```text
    /// EVALSHA <deliver-due> 2 ns:{stream}:delayed ns:{stream} <now ms> 1000
    /// ```
    ///
    /// The priority levels' sets (`ns:{stream}:high:delayed`,
    /// `ns:{stream}:low:delayed`) are moved the same way, and on a stream
    /// declared with partitions, those of every partition
    /// (`ns:{stream#<k>}:delayed` and its levels'); the counts add up, and
    /// `next_due` is the earliest of them.
    pub async fn deliver_due(&self, stream: &str) -> Result<DueDelivery, Error> {
        let bases = match self.partitions(stream) {
            None => vec![self.stream_key(stream)?],
            Some(count) => (0..count)
                .map(|k| self.partition_stream_key(stream, k))
                .collect::<Result<_, _>>()?,
        };
        let (mut moved, mut malformed, mut next_due) = (0, 0, None::<i64>);
        for base in bases {
            for level in Priority::ALL {
                let key = level_key(base.clone(), Some(level));
                let delayed = super::keys::delayed_key(&key);
                let backend = &self.shared.backend;
                let done = self
                    .patiently("EVALSHA", || async {
                        super::on_streams!(backend, t => t.deliver_due(&delayed, &key, now_millis(), 1000))
                    })
                    .await?;
                moved += done.moved;
                malformed += done.malformed;
                next_due = match (next_due, done.next_due) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        Ok(DueDelivery::new(moved, malformed, next_due))
    }

    /// Keeps a delayed event in its stream's delayed set until `due`.
    ///
    /// ```text
    /// ZADD ns:{stream}:delayed <due ms> <["specversion","1.0",…,"data","{…}"]>
    /// ```
    async fn send_delayed(
        &self,
        draft: &Draft,
        stream_key: Option<&str>,
        out: Outgoing<'_>,
        due: i64,
    ) -> Result<(), Error> {
        let (Some(key), None) = (stream_key, draft.channel) else {
            return Err(Error::DelayOnChannel {
                type_name: draft.type_name,
            });
        };
        let delayed = super::keys::delayed_key(key);
        let backend = &self.shared.backend;
        self.patiently("ZADD", || async {
            super::on_streams!(backend, t => t.delay(&delayed, due, out))
        })
        .await
    }

    /// The span of a publish call, named after its first event.
    fn publish_span<'d>(
        &self,
        drafts: impl IntoIterator<Item = &'d Draft>,
        operation: &'static str,
    ) -> tracing::Span {
        match drafts.into_iter().next() {
            Some(d) => trace::publish_span(
                self.shared.backend.system(),
                d.stream.or(d.channel).unwrap_or_default(),
                d.type_name,
                operation,
            ),
            None => tracing::Span::none(),
        }
    }

    /// Counts published events, and the time of the call that published
    /// them, in the metrics ([`crate::telemetry`]).
    fn count_sent<'d>(
        &self,
        drafts: impl IntoIterator<Item = &'d Draft>,
        operation: &'static str,
        started: std::time::Instant,
    ) {
        let system = self.shared.backend.system();
        let metrics = &self.shared.publish_metrics;
        let mut took = Some(started.elapsed());
        let mut run: Option<(&'static str, &'static str, u64)> = None;
        for d in drafts {
            let destination = d.stream.or(d.channel).unwrap_or_default();
            match &mut run {
                Some((dest, ty, n)) if *dest == destination && *ty == d.type_name => *n += 1,
                _ => {
                    if let Some((dest, ty, n)) = run {
                        metrics.sent(system, dest, ty, operation, n, took.take());
                    }
                    run = Some((destination, d.type_name, 1));
                }
            }
        }
        if let Some((dest, ty, n)) = run {
            metrics.sent(system, dest, ty, operation, n, took.take());
        }
    }

    /// Appends events a handler returned for a request to the requester's
    /// reply stream `reply_to` (the request's `replyto`), with the ids
    /// they were published with: only if that stream exists, so that a
    /// reply to a requester that is gone is dropped instead of making a
    /// stream that never expires. A `reply_to` that is not a reply stream
    /// of this bus's namespace is not written to (a warning says so), so
    /// that no event can make a responder write to another key; the
    /// events were published all the same, so this is no failure to retry.
    pub(crate) async fn send_replies(
        &self,
        reply_to: &str,
        drafts: &[Draft],
        published: &[Published],
        meta: &Meta,
    ) -> Result<(), Error> {
        if let Err(e) = super::keys::check_reply_key(&self.shared.namespace, reply_to) {
            tracing::warn!(error = %e, "the request's `replyto` is not a reply stream; the reply was published to its own destination only");
            return Ok(());
        }
        let tenant = self.effective_tenant(Some(meta))?;
        let time = Rfc3339Millis::from_millis(now_millis());
        for (draft, p) in drafts.iter().zip(published) {
            let stamp = Stamp::of(p.event_id);
            let dataschema = self.dataschema(draft.schema_path, draft.dataschema);
            let o = self.outgoing(
                &stamp,
                time.as_str(),
                draft,
                &dataschema,
                Scope {
                    meta: Some(meta),
                    tenant,
                    wire: None,
                },
            );
            let backend = &self.shared.backend;
            let sent = self
                .patiently("XADD", || async {
                    super::on_streams!(backend, t => t.append_if_exists(reply_to, o, super::REPLY_STREAM_MAX_LEN))
                })
                .await?;
            if sent.is_none() {
                tracing::debug!(reply_to, r#type = draft.type_name,
                    "the requester's reply stream is gone (it stopped or timed out long ago); reply not sent to it");
            }
        }
        Ok(())
    }

    pub(crate) async fn send_drafts(
        &self,
        drafts: &[Draft],
        meta: &Meta,
    ) -> Result<Vec<Published>, Error> {
        if let [one] = drafts {
            return Ok(vec![self.send_one(one, Some(meta)).await?]);
        }
        if meta.due_after(now_millis()).is_some() {
            // One `ZADD` each: a delayed batch is appended as its events
            // fall due, not as one transaction.
            let mut published = Vec::with_capacity(drafts.len());
            for d in drafts {
                published.push(self.send_one(d, Some(meta)).await?);
            }
            return Ok(published);
        }
        let started = std::time::Instant::now();
        let tenant = self.effective_tenant(Some(meta))?;
        let ns = &self.shared.namespace;
        let time = Rfc3339Millis::from_millis(now_millis());
        let stamps: Vec<Stamp> = drafts.iter().map(|_| Stamp::new()).collect();
        // The keys of each destination, built once per batch: a batch is
        // mostly one event type, and a key per event was an allocation each.
        let mut destinations: Vec<Destination> = Vec::new();
        let at: Vec<usize> = drafts
            .iter()
            .map(|d| {
                let same = |k: &Destination| {
                    k.stream == d.stream && k.channel == d.channel && k.type_name == d.type_name
                };
                match destinations.iter().rposition(same) {
                    Some(i) => i,
                    None => {
                        destinations.push(Destination {
                            stream: d.stream,
                            channel: d.channel,
                            type_name: d.type_name,
                            stream_key: d
                                .stream
                                .map(|s| level_key(stream_key(ns, tenant, s), meta.priority)),
                            channel_key: d.channel.map(|c| channel_key(ns, tenant, c, d.type_name)),
                        });
                        destinations.len() - 1
                    }
                }
            })
            .collect();
        let schemas: Vec<_> = drafts
            .iter()
            .map(|d| self.dataschema(d.schema_path, d.dataschema))
            .collect();
        let span = self.publish_span(drafts, "publish_batch");
        trace::adopt(
            &span,
            meta.traceparent.as_deref(),
            meta.tracestate.as_deref(),
        );
        let wire = trace::wire_context(&span);
        // Each event's partition, on streams declared with partitions.
        let routed: Vec<Option<String>> = if drafts
            .iter()
            .any(|d| d.stream.and_then(|s| self.partitions(s)).is_some())
        {
            drafts
                .iter()
                .zip(&at)
                .map(|(d, &i)| {
                    let key = meta.partition_key.as_deref().or(d.partition_key.as_deref());
                    // The partition first, then the level within it.
                    destinations[i].stream.map(|s| {
                        let routed = self.routed_key(stream_key(ns, tenant, s), s, key);
                        level_key(routed, meta.priority)
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut appends = Vec::with_capacity(drafts.len());
        let mut broadcasts = Vec::new();
        for (n, (((draft, stamp), &i), dataschema)) in drafts
            .iter()
            .zip(&stamps)
            .zip(&at)
            .zip(&schemas)
            .enumerate()
        {
            let out = self.outgoing(
                stamp,
                time.as_str(),
                draft,
                dataschema,
                Scope {
                    meta: Some(meta),
                    tenant,
                    wire: wire.as_ref(),
                },
            );
            let d = &destinations[i];
            let key = routed
                .get(n)
                .and_then(Option::as_deref)
                .or(d.stream_key.as_deref());
            if let Some(k) = key {
                appends.push((k, out));
            }
            if let Some(k) = &d.channel_key {
                broadcasts.push((k.as_str(), out));
            }
        }
        let append = async {
            if appends.is_empty() {
                Ok(Vec::new())
            } else {
                self.append(&appends).await
            }
        };
        // Boxed, as in `send_one`: beside the append, the channels'
        // publish would make the future of every batch as large as both.
        let broadcast = async {
            if broadcasts.is_empty() {
                Ok(())
            } else {
                Box::pin(self.broadcast(&broadcasts)).await
            }
        };
        let (entry_ids, ()) = futures::future::try_join(append, broadcast)
            .instrument(span)
            .await?;
        self.count_sent(drafts, "publish_batch", started);
        let mut entry_ids = entry_ids.into_iter();
        Ok(drafts
            .iter()
            .zip(&stamps)
            .map(|(d, s)| Published {
                entry_id: d.stream.and_then(|_| entry_ids.next()),
                event_id: s.id,
            })
            .collect())
    }

    pub(super) async fn append(
        &self,
        batch: &[(&str, Outgoing<'_>)],
    ) -> Result<Vec<String>, Error> {
        match self.backend() {
            Backend::Redis { streams, .. } => {
                self.patiently("XADD", || streams.append(batch)).await
            }
            Backend::Memory(m) => Ok(StreamTransport::append(m, batch).await?),
        }
    }

    async fn broadcast(&self, batch: &[(&str, Outgoing<'_>)]) -> Result<(), Error> {
        match self.backend() {
            Backend::Redis { pubsub, .. } => {
                self.patiently("PUBLISH", || pubsub.broadcast(batch)).await
            }
            Backend::Memory(m) => Ok(ChannelTransport::broadcast(m, batch).await?),
        }
    }

    /// Whether `e` may pass if the command is sent again: a transient
    /// error, or behind Sentinel a master turned replica (`READONLY`),
    /// whose connections are being made again to the new master.
    fn worth_a_retry(&self, e: &TransportError) -> bool {
        e.is_transient() || (e.is_read_only() && self.shared.backend.follows_failover())
    }

    /// Runs `op` until it succeeds, fails for good, or the publish timeout
    /// has passed; only a transient failure (dropped connection, timeout, a
    /// server still loading its data) is tried again, after a backoff. Every
    /// call of the bus on Redis goes through it, so the first call after a
    /// restart finds the connection back instead of failing with it.
    pub(crate) async fn patiently<T, F, Fut>(
        &self,
        command: &'static str,
        mut op: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, TransportError>>,
    {
        let timeout = self.shared.publish_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let error = match tokio::time::timeout_at(deadline, op()).await {
                Ok(Ok(v)) => {
                    if attempts > 1 {
                        tracing::info!(command, attempts, "Redis is reachable again");
                        crate::telemetry::reconnect("publish");
                    }
                    return Ok(v);
                }
                Ok(Err(e)) if !self.worth_a_retry(&e) => return Err(e.into()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no reply in time".to_owned(),
            };
            let backoff = PUBLISH_BACKOFF.delay(attempts);
            let now = tokio::time::Instant::now();
            if now + backoff >= deadline {
                return Err(Error::Unavailable {
                    command,
                    after: timeout,
                    attempts,
                    last_error: error,
                });
            }
            if attempts == 1 {
                tracing::warn!(command, error = %error, "Redis is unreachable; retrying until the publish timeout");
            }
            tokio::time::sleep(backoff).await;
        }
    }
}
