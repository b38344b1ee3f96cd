//! The two interfaces transports implement, and the data they exchange:
//! [`StreamTransport`] (durable streams and consumer groups: Redis Streams
//! in [`crate::streams`], in-memory in [`crate::memory`]) and
//! [`ChannelTransport`] (fire-and-forget channels: Redis Pub/Sub in
//! [`crate::pubsub`], in-memory). A [`crate::Bus`] routes stream operations
//! to its stream transport and channel operations to its channel transport,
//! so no transport carries operations it cannot perform.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;

use crate::envelope::{field, Envelope};
pub use crate::error::{EnvelopeError, TransportError};

/// An event ready to be written: every attribute borrowed from the publisher,
/// the payload serialized once.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Outgoing<'a> {
    /// `id`, as its 26 ULID characters.
    pub id: &'a str,
    /// `source`.
    pub source: &'a str,
    /// `type`.
    pub type_name: &'a str,
    /// `time`, RFC 3339 with milliseconds.
    pub time: &'a str,
    /// `dataschema`.
    pub dataschema: &'a str,
    /// `dataversion`.
    pub dataversion: u32,
    /// `correlationid`.
    pub correlation_id: Option<&'a str>,
    /// `causationid`.
    pub causation_id: Option<&'a str>,
    /// `tenantid`.
    pub tenant_id: Option<&'a str>,
    /// `traceparent`.
    pub traceparent: Option<&'a str>,
    /// `tracestate`.
    pub tracestate: Option<&'a str>,
    /// `subject`.
    pub subject: Option<&'a str>,
    /// `replyto`.
    pub reply_to: Option<&'a str>,
    /// `partitionkey`: the key the event's order is kept within.
    pub partition_key: Option<&'a str>,
    /// Extension attributes of the publisher's own, by name.
    pub extensions: &'a [(String, String)],
    /// `data`: the JSON payload.
    pub data: &'a [u8],
}

impl Outgoing<'_> {
    /// The optional attributes with their wire names.
    pub fn optional(&self) -> [(&'static str, Option<&str>); 8] {
        [
            (field::CORRELATIONID, self.correlation_id),
            (field::CAUSATIONID, self.causation_id),
            (field::TENANTID, self.tenant_id),
            (field::TRACEPARENT, self.traceparent),
            (field::TRACESTATE, self.tracestate),
            (field::SUBJECT, self.subject),
            (field::REPLYTO, self.reply_to),
            (field::PARTITIONKEY, self.partition_key),
        ]
    }

    /// The sorted-set member of a delayed event: its fields and values, as
    /// an `XADD` writes them, in one JSON array of strings.
    pub fn delayed_member(&self) -> String {
        let version = self.dataversion.to_string();
        let data = String::from_utf8_lossy(self.data);
        let mut parts: Vec<&str> = vec![
            field::SPECVERSION,
            crate::envelope::SPECVERSION,
            field::ID,
            self.id,
            field::SOURCE,
            self.source,
            field::TYPE,
            self.type_name,
            field::TIME,
            self.time,
            field::DATACONTENTTYPE,
            crate::envelope::JSON_CONTENT_TYPE,
            field::DATASCHEMA,
            self.dataschema,
            field::DATAVERSION,
            &version,
        ];
        for (name, value) in self.optional() {
            if let Some(v) = value {
                parts.push(name);
                parts.push(v);
            }
        }
        for (name, value) in self.extensions {
            parts.push(name);
            parts.push(value);
        }
        parts.push(field::DATA);
        parts.push(&data);
        // A list of strings always serializes.
        serde_json::to_string(&parts).unwrap_or_default()
    }

    /// The event in CloudEvents JSON structured mode.
    pub fn to_json(&self) -> Vec<u8> {
        let optional = self.optional();
        crate::envelope::write_json(
            &crate::envelope::JsonParts {
                id: self.id,
                source: self.source,
                type_name: self.type_name,
                time: Some(self.time),
                datacontenttype: crate::envelope::JSON_CONTENT_TYPE,
                dataschema: Some(self.dataschema),
                dataversion: self.dataversion,
                optional: &optional,
                extensions: self.extensions,
            },
            self.data,
        )
    }

    /// An owned envelope with the same attributes.
    pub fn to_envelope(&self) -> Envelope {
        let own = |s: Option<&str>| s.map(str::to_owned);
        Envelope {
            id: self.id.to_owned(),
            source: self.source.to_owned(),
            type_name: self.type_name.to_owned(),
            time: time::OffsetDateTime::parse(
                self.time,
                &time::format_description::well_known::Rfc3339,
            )
            .ok(),
            datacontenttype: crate::envelope::JSON_CONTENT_TYPE.to_owned(),
            dataschema: Some(self.dataschema.to_owned()),
            dataversion: self.dataversion,
            correlation_id: own(self.correlation_id),
            causation_id: own(self.causation_id),
            tenant_id: own(self.tenant_id),
            traceparent: own(self.traceparent),
            tracestate: own(self.tracestate),
            subject: own(self.subject),
            reply_to: own(self.reply_to),
            // Read back from a stream entry, `partitionkey` is one of the
            // extensions (see `Envelope::partition_key`): kept the same here.
            extensions: match self.partition_key {
                None => self.extensions.to_vec(),
                Some(key) => {
                    let mut all = self.extensions.to_vec();
                    all.push((field::PARTITIONKEY.to_owned(), key.to_owned()));
                    all
                }
            },
            retry_group: None,
            data: self.data.to_vec(),
            parked: None,
        }
    }
}

/// What [`StreamTransport::lease`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lease {
    /// Take the lease if it is free (or already the owner's).
    Take,
    /// Extend the owner's lease.
    Renew,
    /// Give the owner's lease up.
    Release,
}

impl Lease {
    /// The operation as the script reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            Lease::Take => "take",
            Lease::Renew => "renew",
            Lease::Release => "release",
        }
    }
}

/// What one [`StreamTransport::deliver_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DueDelivery {
    /// Delayed events appended to their stream.
    pub moved: usize,
    /// Members that were not an entry's fields (written by something other
    /// than tidings): removed from the set, not appended.
    pub malformed: usize,
    /// When the next delayed event is due (ms since the Unix epoch), if any.
    pub next_due: Option<i64>,
}

impl DueDelivery {
    /// A report of `moved` events moved, with the next one due at `next_due`.
    pub fn new(moved: usize, malformed: usize, next_due: Option<i64>) -> Self {
        DueDelivery {
            moved,
            malformed,
            next_due,
        }
    }
}

/// One stream entry delivered to a consumer group.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Entry {
    /// Stream entry id, such as `1732442400123-0`.
    pub id: String,
    /// The envelope, or why the entry's fields are not one.
    pub envelope: Result<Arc<Envelope>, EnvelopeError>,
    /// How many times the group delivered the entry, this time included
    /// (the delivery counter of `XPENDING`): 1 for a first read, more for an
    /// entry claimed after an earlier consumer failed or stopped.
    pub deliveries: u32,
}

impl Entry {
    /// An entry delivered for the first time.
    pub fn new(id: String, envelope: Result<Arc<Envelope>, EnvelopeError>) -> Self {
        Entry {
            id,
            envelope,
            deliveries: 1,
        }
    }

    /// Sets the delivery count.
    pub fn with_deliveries(mut self, deliveries: u32) -> Self {
        self.deliveries = deliveries.max(1);
        self
    }
}

/// The raw fields of a stream entry, as read with `XRANGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RawEntry {
    /// Entry id.
    pub id: String,
    /// Field names and values, in the order they were written.
    pub fields: Vec<(String, Vec<u8>)>,
}

impl RawEntry {
    /// A raw entry.
    pub fn new(id: String, fields: Vec<(String, Vec<u8>)>) -> Self {
        RawEntry { id, fields }
    }
}

/// Names of the fields a dead letter adds to the original entry's fields,
/// re-exported as [`tidings::dead_letter::field`](crate::dead_letter::field).
///
/// They all start with `dlq_`: CloudEvents attribute names are lower-case
/// letters and digits only, so they never collide with an original field.
/// The transports read two of them back when an entry is buried again
/// ([`StreamTransport::dead_letter`]), and two when a dead letter is put
/// back or deleted ([`StreamTransport::requeue`], [`StreamTransport::purge_ids`]).
pub mod dead_letter_field {
    /// The consumer group that gave up on the entry.
    pub const GROUP: &str = "dlq_group";
    /// The handler (or handlers, comma-separated) that failed; absent when
    /// the entry is not an envelope and no handler ran.
    pub const HANDLER: &str = "dlq_handler";
    /// The error text.
    pub const ERROR: &str = "dlq_error";
    /// Attempts made, the last one included; an entry buried again by the
    /// same group adds the attempts of every burial.
    pub const ATTEMPTS: &str = "dlq_attempts";
    /// Time of the first failure (RFC 3339, milliseconds); an entry buried
    /// again by the same group keeps the first burial's.
    pub const FIRST_FAILURE: &str = "dlq_first_failure";
    /// Time of the last failure (RFC 3339, milliseconds).
    pub const LAST_FAILURE: &str = "dlq_last_failure";
    /// Entry id in the original stream.
    pub const ENTRY_ID: &str = "dlq_entry_id";
    /// The consumer that wrote the dead letter.
    pub const CONSUMER: &str = "dlq_consumer";
    /// On a stream declared with partitions, the partition the entry was
    /// read from (`k` of `ns:{stream#<k>}`), where a retry puts it back;
    /// absent otherwise.
    pub const PARTITION: &str = "dlq_partition";
    /// On a stream read with priority levels, the level the entry was read
    /// from (`high` or `low`; absent for the stream itself), where a retry
    /// puts it back: the levels give out the same entry ids.
    pub const LEVEL: &str = "dlq_level";
}

/// The key of the index of the dead-letter stream `dlq`: `<dlq>:idx`, so
/// `ns:{stream}:dlq:idx`, in the stream's hash slot. A hash from
/// `<entry id>:<group>` to the id of that entry's dead letter in that
/// group, which keeps one dead letter per entry and group (a group name
/// holds no `:`, and an entry id neither); on a partitioned stream the
/// entry is `<entry id>#<partition>`, and on a priority level
/// `<entry id>@<level>` (after the partition), as partitions and levels
/// give out the same ids.
pub fn dead_letter_index_key(dlq: &str) -> String {
    format!("{dlq}:idx")
}

/// What became of an entry that was to be moved to dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadLettered {
    /// Written to the dead-letter stream and acknowledged, in one step.
    Written,
    /// The group had buried the entry before, and that dead letter is still
    /// there: it was replaced by one that adds up the attempts and keeps the
    /// first failure (so its id changed), and the entry acknowledged, in
    /// one step.
    Updated,
    /// The entry was deleted or trimmed from the stream meanwhile: there is
    /// nothing to keep, so it was only acknowledged.
    Gone,
    /// The entry is no longer pending in the group (another consumer
    /// finished it meanwhile): nothing was written.
    NotPending,
    /// The entry is a dead letter put back for another group (its
    /// `dlqgroup` names that group): it was only acknowledged.
    OtherGroup,
}

/// Where a new consumer group starts reading a stream that already has entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartFrom {
    /// Only entries added after the group is created (`$`).
    #[default]
    New,
    /// Every entry still in the stream (`0`).
    Beginning,
    /// Entries after this entry id.
    After(String),
}

impl StartFrom {
    /// The id argument of `XGROUP CREATE`.
    pub fn as_id(&self) -> &str {
        match self {
            StartFrom::New => "$",
            StartFrom::Beginning => "0",
            StartFrom::After(id) => id,
        }
    }
}

/// What a consumer reads: one group on one stream, as one consumer.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ReadRequest<'a> {
    /// Stream key.
    pub key: &'a str,
    /// Group name.
    pub group: &'a str,
    /// Consumer name, unique within the group.
    pub consumer: &'a str,
    /// Most entries to return.
    pub count: usize,
    /// Longest time to wait for one entry.
    pub block: Duration,
    /// Whether, and how much, to read ahead: see [`ReadRequest::read_ahead`].
    pub ahead: Option<ReadAhead<'a>>,
}

/// Asked when a read's reply has arrived, with the number of entries in
/// it and the number the read asked for (at most the request's `count`: a
/// transport may ask for fewer, as Redis Streams does for large entries):
/// how many entries a transport may ask for right away, at most that
/// number, so that the server prepares the next batch while the caller
/// handles this one (0 for none). The caller answers for what it can take
/// on top of this reply.
#[derive(Clone, Copy)]
pub struct ReadAhead<'a>(pub &'a (dyn Fn(usize, usize) -> usize + Sync));

impl fmt::Debug for ReadAhead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReadAhead(..)")
    }
}

impl<'a> ReadRequest<'a> {
    /// A read request.
    pub fn new(
        key: &'a str,
        group: &'a str,
        consumer: &'a str,
        count: usize,
        block: Duration,
    ) -> Self {
        ReadRequest {
            key,
            group,
            consumer,
            count,
            block,
            ahead: None,
        }
    }

    /// Lets the transport send the next read as soon as this one's reply
    /// arrives, without waiting (no `BLOCK`), if `ahead` allows it. The
    /// entries it reads are returned by the next [`StreamTransport::read_group`]
    /// call on the same reader, or by [`StreamTransport::read_ahead_rest`] when
    /// there is none. A transport may ignore it.
    pub fn read_ahead(mut self, ahead: &'a (dyn Fn(usize, usize) -> usize + Sync)) -> Self {
        self.ahead = Some(ReadAhead(ahead));
        self
    }
}

/// A Pub/Sub subscription target, as a full key (namespace included).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// One channel (`SUBSCRIBE`).
    Channel(String),
    /// A glob pattern of channels (`PSUBSCRIBE`).
    Pattern(String),
}

/// One Pub/Sub message.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Message {
    /// The channel it was published on.
    pub channel: String,
    /// Its body.
    pub body: MessageBody,
}

/// The body of a Pub/Sub message.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum MessageBody {
    /// CloudEvents JSON structured mode, as received from Redis.
    Json(Vec<u8>),
    /// An envelope handed over in process by the in-memory transport.
    Envelope(Arc<Envelope>),
    /// Not a message: the subscription's connection dropped and was made
    /// again after `down`, so messages published meanwhile were missed.
    /// `channel` is the subscription's channel or pattern.
    Gap {
        /// How long the subscription was down, about.
        down: Duration,
    },
}

impl Message {
    /// The envelope of the message, or the gap it stands for.
    pub fn envelope(self) -> Result<Arc<Envelope>, crate::error::ReceiveError> {
        match self.body {
            MessageBody::Json(json) => Ok(Envelope::from_json(&self.channel, &json).map(Arc::new)?),
            MessageBody::Envelope(env) => Ok(env),
            MessageBody::Gap { down } => Err(crate::error::ReceiveError::Gap {
                target: self.channel,
                down,
            }),
        }
    }
}

/// The messages of one subscription, until it is dropped.
pub type MessageStream = Pin<Box<dyn Stream<Item = Message> + Send>>;

/// Durable streams: append to them, read them in consumer groups,
/// acknowledge, claim, dead-letter, inspect.
///
/// Every method names the Redis command it stands for; the in-memory transport
/// gives each the same meaning.
pub trait StreamTransport: Clone + fmt::Debug + Send + Sync + 'static {
    /// A connection dedicated to one reading consumer (blocking reads must
    /// not hold up the shared publishing connection).
    type Reader: Send + 'static;

    /// Short name for logs and errors: `redis-streams`, `redis-pubsub`, `memory`.
    fn name(&self) -> &'static str;

    /// Appends each event to its stream, in one round trip; returns the entry ids.
    ///
    /// ```text
    /// XADD <key> * specversion 1.0 id <ulid> … data <json>
    /// ```
    fn append(
        &self,
        batch: &[(&str, Outgoing<'_>)],
    ) -> impl Future<Output = Result<Vec<String>, TransportError>> + Send;

    /// Appends one event to the stream `key` only if the stream exists,
    /// trimming it to about `max_len` entries; `None` when there is no such
    /// stream (nothing is created). Replies go to a requester's reply
    /// stream this way, so that a reply to a requester that is gone does
    /// not make a stream that never expires.
    ///
    /// ```text
    /// XADD <key> NOMKSTREAM MAXLEN ~ <max-len> * specversion 1.0 id <ulid> … data <json>
    /// ```
    fn append_if_exists(
        &self,
        key: &str,
        event: Outgoing<'_>,
        max_len: usize,
    ) -> impl Future<Output = Result<Option<String>, TransportError>> + Send;

    /// Makes the stream `key` (empty) if it does not exist, and sets it to
    /// expire `ttl` from now: a reply stream lives as long as its bus
    /// keeps calling this.
    ///
    /// ```text
    /// EVAL "if EXISTS <key> == 0 then XADD <key> MAXLEN 0 * opened 1 end; PEXPIRE <key> <ttl-ms>" 1 <key>
    /// ```
    fn keep_alive(
        &self,
        key: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Reads the entries after `after` of each stream `key` in `streams`
    /// (`(key, after)` pairs), without a consumer group, waiting up to
    /// `block` for one; at most `count` per stream. Each entry comes with
    /// the index of its stream in `streams`. A stream that does not exist
    /// yet is waited on like an empty one.
    ///
    /// ```text
    /// XREAD COUNT <n> BLOCK <ms> STREAMS <key> … <after> …
    /// ```
    fn read_streams(
        &self,
        reader: &mut Self::Reader,
        streams: &[(&str, &str)],
        count: usize,
        block: Duration,
    ) -> impl Future<Output = Result<Vec<(usize, Entry)>, TransportError>> + Send;

    /// Whether the server answers.
    ///
    /// ```text
    /// PING
    /// ```
    fn ping(&self) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Opens a connection for one reading consumer.
    fn reader(&self) -> impl Future<Output = Result<Self::Reader, TransportError>> + Send;

    /// A reader for one of many streams that `consumer` reads in `group`
    /// (a worker over many tenants): where the transport can, such readers
    /// share one connection for their blocking reads, and send everything
    /// else on the transport's shared connection, so that a worker holds a
    /// fixed number of connections however many streams it reads. By
    /// default, [`StreamTransport::reader`].
    fn shared_reader(
        &self,
        group: &str,
        consumer: &str,
    ) -> impl Future<Output = Result<Self::Reader, TransportError>> + Send {
        let _ = (group, consumer);
        self.reader()
    }

    /// A reader to replace `reader` after a read failed or went silent: a
    /// new connection for a reader of its own, the same share for one from
    /// [`StreamTransport::shared_reader`]. By default,
    /// [`StreamTransport::reader`].
    fn reader_again(
        &self,
        reader: &Self::Reader,
    ) -> impl Future<Output = Result<Self::Reader, TransportError>> + Send {
        let _ = reader;
        self.reader()
    }

    /// Creates the group if it does not exist (an existing group is kept as is).
    ///
    /// ```text
    /// XGROUP CREATE <key> <group> <$|0|id> MKSTREAM
    /// ```
    fn create_group(
        &self,
        key: &str,
        group: &str,
        start: &StartFrom,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Reads entries never delivered to the group, waiting up to `block`.
    ///
    /// ```text
    /// XREADGROUP GROUP <group> <consumer> COUNT <n> BLOCK <ms> STREAMS <key> >
    /// ```
    fn read_group(
        &self,
        reader: &mut Self::Reader,
        request: ReadRequest<'_>,
    ) -> impl Future<Output = Result<Vec<Entry>, TransportError>> + Send;

    /// The entries of a read sent ahead ([`ReadRequest::read_ahead`]) that
    /// no call to [`StreamTransport::read_group`] has returned yet. The server
    /// delivered them to this consumer: a reader that stops reading takes
    /// them here, so that they are handled instead of waiting to be claimed.
    fn read_ahead_rest(
        &self,
        reader: &mut Self::Reader,
    ) -> impl Future<Output = Result<Vec<Entry>, TransportError>> + Send {
        let _ = reader;
        async { Ok(Vec::new()) }
    }

    /// The entries pending to this consumer after the id `after` (`0` for
    /// all), oldest first, up to `count`, with their delivery counts:
    /// entries it was given and never acknowledged, such as those a read
    /// delivered while the connection dropped. Returns them and the last id
    /// looked at (`None` when there is nothing after `after`), from which the
    /// next page starts. Entries deleted from the stream while pending are
    /// acknowledged and not returned.
    ///
    /// ```text
    /// XREADGROUP GROUP <group> <consumer> COUNT <n> STREAMS <key> <after>
    /// XPENDING <key> <group> <first> <last> <n> <consumer>     (delivery counts)
    /// ```
    fn read_own_pending(
        &self,
        reader: &mut Self::Reader,
        request: ReadRequest<'_>,
        after: &str,
    ) -> impl Future<Output = Result<(Vec<Entry>, Option<String>), TransportError>> + Send;

    /// Takes over entries delivered to any consumer of the group and not
    /// acknowledged for at least `min_idle` (a consumer that died, a handler
    /// that failed), with their delivery counts, looking from the pending
    /// entry `start` on (`0-0` for the oldest). Returns them and where the
    /// next call starts (`0-0` once the whole pending list was looked at):
    /// Redis looks at no more than ten times `count` pending entries per
    /// call, so a caller that always started from `0-0` would never reach
    /// idle entries behind many live ones. Entries deleted or trimmed from
    /// the stream while pending are dropped from the group, not returned.
    ///
    /// ```text
    /// XAUTOCLAIM <key> <group> <consumer> <min-idle-ms> <start> COUNT <n>
    /// XPENDING <key> <group> <first> <last> <n> <consumer>     (delivery counts)
    /// ```
    fn claim_idle(
        &self,
        reader: &mut Self::Reader,
        request: ReadRequest<'_>,
        min_idle: Duration,
        start: &str,
    ) -> impl Future<Output = Result<(Vec<Entry>, String), TransportError>> + Send;

    /// Trims the stream to `retention`, or with `dry_run` counts what would
    /// go, never past an entry a group has not read or not acknowledged, in
    /// one atomic step.
    ///
    /// ```text
    /// EVAL <script> 1 <key> <min-id by age> <max-len> <~|=> <dry-run>
    ///   -- XREVRANGE for max-len, XINFO GROUPS and XPENDING for the bound,
    ///   -- then XTRIM <key> MINID <~|=> <id>
    /// ```
    fn trim(
        &self,
        key: &str,
        retention: &crate::stats::Retention,
        dry_run: bool,
    ) -> impl Future<Output = Result<crate::stats::TrimReport, TransportError>> + Send;

    /// Deletes the group, its consumers and its pending list; whether it
    /// existed.
    ///
    /// ```text
    /// XGROUP DESTROY <key> <group>
    /// ```
    fn delete_group(
        &self,
        key: &str,
        group: &str,
    ) -> impl Future<Output = Result<bool, TransportError>> + Send;

    /// Moves the group's last delivered id: its next read delivers the
    /// entries after `to` (again, if it read them). Pending entries stay.
    ///
    /// ```text
    /// XGROUP SETID <key> <group> <$|0|id>
    /// ```
    fn move_group(
        &self,
        key: &str,
        group: &str,
        to: &StartFrom,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Up to `count` entries pending in the group, oldest first.
    ///
    /// ```text
    /// XPENDING <key> <group> - + <count>
    /// ```
    fn pending_entries(
        &self,
        key: &str,
        group: &str,
        count: usize,
    ) -> impl Future<Output = Result<Vec<crate::stats::PendingEntry>, TransportError>> + Send;

    /// Removes `consumer` from the group if nothing is pending to it, in one
    /// atomic step (a consumer's pending entries would leave the group with
    /// it, never to be delivered again); whether it was removed.
    ///
    /// ```text
    /// EVAL "if #XPENDING <key> <group> - + 1 <consumer> == 0 then XGROUP DELCONSUMER <key> <group> <consumer>" 1 <key>
    /// ```
    fn forget_consumer(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
    ) -> impl Future<Output = Result<bool, TransportError>> + Send;

    /// Acknowledges entries of the group, all in one command.
    ///
    /// ```text
    /// XACK <key> <group> <id> [<id> …]
    /// ```
    fn ack(
        &self,
        key: &str,
        group: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// As [`StreamTransport::ack`], for the consumer `consumer` of `group`:
    /// a transport may acknowledge for it together with the other streams
    /// that consumer reads (on Redis, those of a worker over tenants). By
    /// default, [`StreamTransport::ack`].
    fn ack_as(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<(), TransportError>> + Send {
        let _ = consumer;
        self.ack(key, group, ids)
    }

    /// Marks event ids as handled in an inbox, then acknowledges entries, in
    /// one round trip. A mark that exists already is kept as is.
    ///
    /// ```text
    /// SET <mark> 1 NX PX <ttl-ms>      (one per mark)
    /// XACK <key> <group> <id> [<id> …]
    /// ```
    fn ack_marking(
        &self,
        key: &str,
        group: &str,
        ids: &[String],
        marks: &[String],
        ttl: Duration,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Which of the inbox marks exist, in one round trip.
    ///
    /// ```text
    /// EXISTS <mark>                    (one per mark, pipelined)
    /// ```
    fn marked(
        &self,
        marks: &[String],
    ) -> impl Future<Output = Result<Vec<bool>, TransportError>> + Send;

    /// Resets the idle time of entries pending to `consumer` (taking them
    /// back if another consumer claimed them), so that a live worker with a
    /// slow handler does not lose them to `XAUTOCLAIM`. Ids no longer
    /// pending are ignored.
    ///
    /// ```text
    /// XCLAIM <key> <group> <consumer> 0 <id> [<id> …] JUSTID
    /// ```
    fn touch(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Keeps an event in the sorted set `delayed` (`ns:{stream}:delayed`)
    /// until `due` (milliseconds since the Unix epoch), instead of appending
    /// it: [`StreamTransport::deliver_due`] moves it into its stream then.
    /// The member is the entry's fields and values as one JSON array of
    /// strings, in the order an `XADD` writes them ([`Outgoing::delayed_member`]).
    ///
    /// ```text
    /// ZADD ns:{stream}:delayed <due ms> <["specversion","1.0","id",…,"data","{…}"]>
    /// ```
    fn delay(
        &self,
        delayed: &str,
        due: i64,
        event: Outgoing<'_>,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Moves the delayed events due by `now` (at most `limit`, earliest
    /// first) from `delayed` into the stream `key`, in one atomic step
    /// (a script): each is appended and removed from the set, or neither.
    ///
    /// ```text
    /// EVAL <script> 2 ns:{stream}:delayed ns:{stream} <now ms> <limit>
    ///   -- ZRANGEBYSCORE … LIMIT 0 <limit>, XADD ns:{stream} * <fields…>, ZREM,
    ///   -- ZRANGE ns:{stream}:delayed 0 0 WITHSCORES
    /// ```
    fn deliver_due(
        &self,
        delayed: &str,
        key: &str,
        now: i64,
        limit: usize,
    ) -> impl Future<Output = Result<DueDelivery, TransportError>> + Send;

    /// Parks a pending entry of `group` on `key` for a retry at `due`
    /// (milliseconds since the Unix epoch), in one atomic step: its fields
    /// (any `dlq_…` field of an earlier park left out) and `extra` (the
    /// attempts, first failure, original entry id and failed handlers, as
    /// the [`dead_letter_field`]s name them) go to the sorted set `delayed`
    /// (a member as [`StreamTransport::delay`] writes one), and the entry is
    /// acknowledged. [`StreamTransport::deliver_due`] appends it to the
    /// group's retry stream when due. Returns `false`, with nothing done,
    /// when the entry is no longer pending in the group (another consumer
    /// finished it); an entry deleted from the stream meanwhile is only
    /// acknowledged (`true`).
    ///
    /// ```text
    /// EVAL <script> 2 <key> <delayed> <group> <id> <due ms> <extra field> <value> …
    ///   -- XPENDING, XRANGE <key> <id> <id>,
    ///   -- ZADD <delayed> <due> <["specversion","1.0",…,"dlq_attempts","2",…]>, XACK
    /// ```
    fn park(
        &self,
        key: &str,
        group: &str,
        id: &str,
        delayed: &str,
        due: i64,
        extra: &[(&'static str, String)],
    ) -> impl Future<Output = Result<bool, TransportError>> + Send;

    /// [`StreamTransport::deliver_due`] over many streams, `(delayed, key)`
    /// pairs, in one call where the transport can: at most `limit` events in
    /// all; the report adds up the moves, and `next_due` is the earliest of
    /// every set. By default, one call per pair, one after another.
    ///
    /// ```text
    /// EVAL <script> 2N <delayed 1> <key 1> … <delayed N> <key N> <now ms> <limit>
    /// ```
    fn deliver_due_many(
        &self,
        pairs: &[(String, String)],
        now: i64,
        limit: usize,
    ) -> impl Future<Output = Result<DueDelivery, TransportError>> + Send {
        deliver_due_each(self, pairs, now, limit)
    }

    /// Takes, renews or releases the lease `key` for `owner`, in one atomic
    /// step: [`Lease::Take`] succeeds when nobody holds it (or `owner` does),
    /// [`Lease::Renew`] when `owner` holds it, [`Lease::Release`] deletes it
    /// when `owner` holds it. A taken or renewed lease expires after `ttl`.
    /// Returns whether it succeeded.
    ///
    /// ```text
    /// EVAL <script> 1 <lease key> <owner> <ttl ms> take|renew|release
    ///   -- GET, then SET <key> <owner> PX <ttl> / PEXPIRE <key> <ttl> / DEL
    /// ```
    fn lease(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        op: Lease,
    ) -> impl Future<Output = Result<bool, TransportError>> + Send;

    /// Makes every entry pending in `group` on `key` from the cursor
    /// `start` on (at most `count`) pending to `consumer`, without counting
    /// a delivery (a new owner of a partition takes its entries over: none
    /// of them was attempted again). Returns the next cursor, `0-0` past
    /// the last.
    ///
    /// ```text
    /// XAUTOCLAIM <key> <group> <consumer> 0 <start> COUNT <count> JUSTID
    /// ```
    fn take_pending(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        start: &str,
        count: usize,
    ) -> impl Future<Output = Result<String, TransportError>> + Send;

    /// Marks `member` alive in the set `key` at `now` (ms), or removes it
    /// with `leave`, drops the members not seen for `ttl`, and returns how
    /// many are left.
    ///
    /// ```text
    /// EVAL <script> 1 <members key> <member> <now ms> <ttl ms> join|leave
    ///   -- ZADD / ZREM, ZREMRANGEBYSCORE -inf <now - ttl>, PEXPIRE, ZCARD
    /// ```
    fn members(
        &self,
        key: &str,
        member: &str,
        now: i64,
        ttl: Duration,
        leave: bool,
    ) -> impl Future<Output = Result<usize, TransportError>> + Send;

    /// Records that `attempts` attempts at an entry failed, in its delivery
    /// counter, so that a worker that claims it later goes on counting.
    ///
    /// ```text
    /// XCLAIM <key> <group> <consumer> 0 <id> RETRYCOUNT <attempts> JUSTID
    /// ```
    fn record_attempts(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        id: &str,
        attempts: u32,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Moves a pending entry to the dead-letter stream `dlq`: every original
    /// field plus `extra` (the [`dead_letter_field`]s), and acknowledges it,
    /// in one atomic step. If this fails, the entry stays pending.
    ///
    /// One entry has at most one dead letter per group: when the index
    /// ([`dead_letter_index_key`]) names a dead letter of the same entry and
    /// group that is still there, it is replaced by the new one, whose
    /// `dlq_attempts` adds the earlier attempts and whose
    /// `dlq_first_failure` is the earlier one ([`DeadLettered::Updated`]).
    /// An entry whose `dlqgroup` names another group is only acknowledged
    /// ([`DeadLettered::OtherGroup`]).
    ///
    /// ```text
    /// EVAL <script> 3 <key> <dlq> <dlq>:idx <group> <id> <extra field> <value> …
    ///   -- XPENDING, XRANGE <key> <id> <id>, HGET <dlq>:idx <id>:<group>,
    ///   -- [XRANGE, XDEL <dlq> <earlier>], XADD <dlq> * <fields…> <extra…>,
    ///   -- HSET <dlq>:idx <id>:<group> <dead-letter id>, XACK
    /// ```
    fn dead_letter(
        &self,
        key: &str,
        dlq: &str,
        group: &str,
        id: &str,
        extra: &[(&'static str, String)],
    ) -> impl Future<Output = Result<DeadLettered, TransportError>> + Send;

    /// Reads dead letters, oldest first, after the entry id `after` (from the
    /// start when `None`).
    ///
    /// ```text
    /// XRANGE <dlq> <(after | -> + COUNT <n>
    /// ```
    fn dead_letters(
        &self,
        dlq: &str,
        after: Option<&str>,
        count: usize,
    ) -> impl Future<Output = Result<Vec<RawEntry>, TransportError>> + Send;

    /// Number of dead letters.
    ///
    /// ```text
    /// XLEN <dlq>
    /// ```
    fn dead_letter_count(
        &self,
        dlq: &str,
    ) -> impl Future<Output = Result<usize, TransportError>> + Send;

    /// Puts dead letters back into their stream with their original fields
    /// (same event id) and `dlqgroup` set to the group that gave up on each
    /// (its `dlq_group`), so that only that group handles it again; deletes
    /// them from `dlq` and from its index, atomically. Returns the new entry
    /// id of each, `None` for an id that is not a dead letter. Ids are
    /// stream entry ids (`<ms>-<seq>`): the caller checks them.
    ///
    /// ```text
    /// EVAL <script> 3 <key> <dlq> <dlq>:idx <id> …
    ///   -- per id: XRANGE <dlq> <id> <id>,
    ///   --   XADD <key> * <original fields…> dlqgroup <dlq_group>,
    ///   --   XDEL <dlq> <id>, HDEL <dlq>:idx <entry id>:<group>
    /// ```
    fn requeue(
        &self,
        key: &str,
        dlq: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Option<String>>, TransportError>> + Send;

    /// Deletes every dead letter and the index; returns how many there were.
    ///
    /// ```text
    /// EVAL "local n = XLEN; DEL <dlq>; DEL <dlq>:idx; return n" 2 <dlq> <dlq>:idx
    /// ```
    fn purge(&self, dlq: &str) -> impl Future<Output = Result<usize, TransportError>> + Send;

    /// Deletes the given dead letters, and their index entries, atomically;
    /// returns how many of them were there. Ids are stream entry ids
    /// (`<ms>-<seq>`): the caller checks them.
    ///
    /// ```text
    /// EVAL <script> 2 <dlq> <dlq>:idx <id> …
    ///   -- per id: XRANGE <dlq> <id> <id>, XDEL <dlq> <id>, HDEL <dlq>:idx <entry id>:<group>
    /// ```
    fn purge_ids(
        &self,
        dlq: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<usize, TransportError>> + Send;

    /// A snapshot of the stream `key` and its dead letters `dlq`; a stream
    /// that does not exist gives `exists: false`, not an error.
    ///
    /// ```text
    /// TYPE <key>
    /// XLEN <dlq>
    /// XINFO STREAM <key>
    /// XINFO GROUPS <key>
    /// XINFO CONSUMERS <key> <group>          (one per group)
    /// ```
    fn stream_stats(
        &self,
        key: &str,
        dlq: &str,
    ) -> impl Future<Output = Result<crate::stats::StreamStats, TransportError>> + Send;

    /// Up to `count` entries from the entry id `from` on (included; `-` for
    /// the oldest), oldest first, without a consumer group.
    ///
    /// ```text
    /// XRANGE <key> <from> + COUNT <count>
    /// ```
    fn range(
        &self,
        key: &str,
        from: &str,
        count: usize,
    ) -> impl Future<Output = Result<Vec<RawEntry>, TransportError>> + Send;

    /// The newest `count` entries, oldest first, without a consumer group.
    ///
    /// ```text
    /// XREVRANGE <key> + - COUNT <count>
    /// ```
    fn last_entries(
        &self,
        key: &str,
        count: usize,
    ) -> impl Future<Output = Result<Vec<RawEntry>, TransportError>> + Send;

    /// The keys of every stream whose key matches the glob `pattern` (as
    /// `PSUBSCRIBE` globs go), in no particular order.
    ///
    /// ```text
    /// SCAN <cursor> MATCH <pattern> COUNT 1000 TYPE stream   (until the cursor is 0)
    /// ```
    fn stream_keys(
        &self,
        pattern: &str,
    ) -> impl Future<Output = Result<Vec<String>, TransportError>> + Send;

    /// Up to `count` entries added after the entry id `after`, oldest first,
    /// waiting up to `block` for one on the reader's own connection, without
    /// a consumer group. An empty result means nothing came in `block`.
    ///
    /// ```text
    /// XREAD COUNT <count> BLOCK <ms> STREAMS <key> <after>
    /// ```
    fn read_after(
        &self,
        reader: &mut Self::Reader,
        key: &str,
        after: &str,
        count: usize,
        block: Duration,
    ) -> impl Future<Output = Result<Vec<RawEntry>, TransportError>> + Send;
}

/// [`StreamTransport::deliver_due`] for each `(delayed, key)` pair, one
/// call after another, adding up the moves (at most `limit` in all) and
/// keeping the earliest `next_due`.
pub(crate) async fn deliver_due_each<T: StreamTransport>(
    transport: &T,
    pairs: &[(String, String)],
    now: i64,
    limit: usize,
) -> Result<DueDelivery, TransportError> {
    let mut total = DueDelivery::default();
    for (delayed, key) in pairs {
        let left = limit.saturating_sub(total.moved + total.malformed);
        if left == 0 {
            break;
        }
        let done = transport.deliver_due(delayed, key, now, left).await?;
        total.moved += done.moved;
        total.malformed += done.malformed;
        total.next_due = match (total.next_due, done.next_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(total)
}

/// Fire-and-forget channels: broadcast to whoever listens, subscribe to a
/// channel or a pattern. At most once: nothing is kept for a subscriber that
/// is not there.
pub trait ChannelTransport: Clone + fmt::Debug + Send + Sync + 'static {
    /// Short name for logs and errors: `redis-pubsub`, `memory`.
    fn name(&self) -> &'static str;

    /// Broadcasts each event on its channel in structured mode, at most once.
    ///
    /// ```text
    /// PUBLISH <channel> <cloudevents json>
    /// ```
    fn broadcast(
        &self,
        batch: &[(&str, Outgoing<'_>)],
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Subscribes to a channel or a pattern; returns once the subscription is
    /// in place, so that a message published afterwards is received.
    ///
    /// ```text
    /// SUBSCRIBE <channel>   |   PSUBSCRIBE <pattern>
    /// ```
    fn subscribe(
        &self,
        target: Target,
    ) -> impl Future<Output = Result<MessageStream, TransportError>> + Send;
}
