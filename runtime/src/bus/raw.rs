//! Events published from their stored form: stream, type, version and
//! payload bytes, with an id and time fixed before the publish. A relay
//! publishes what was written elsewhere (an outbox row) this way, without
//! the Rust type, and a relay that publishes a row twice after a crash
//! publishes the same id and time twice, which inboxes drop.

use time::OffsetDateTime;

use crate::bus::publish::Stamp;
use crate::bus::{check_name, stream_key, Bus, Meta, Published};
use crate::envelope::Rfc3339Millis;
use crate::error::{Error, NameError};
use crate::transport::Outgoing;
use crate::Ulid;

/// An event already serialized, with its id and time fixed: what
/// [`Bus::publish_raw`] publishes to the event's stream.
///
/// The typed path ([`Bus::publish`]) is the one to use where the Rust type
/// is at hand; this one is for events stored before they are published,
/// such as the rows of a transactional outbox.
///
/// ```
/// # async fn run() -> Result<(), tidings::Error> {
/// use tidings::{Bus, Meta, RawEvent, Ulid};
///
/// let bus = Bus::in_memory();
/// let id = Ulid::new();
/// let event = RawEvent::new("contextual", "file.uploaded", 2, br#"{"file_id":"f-1"}"#.to_vec())
///     .id(id)
///     .time(time::OffsetDateTime::now_utc())
///     .partition_key("f-1")
///     .meta(Meta::default().correlation_id("import-7"));
/// let published = bus.publish_raw(&[event]).await?;
/// assert_eq!(published[0].event_id, id);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct RawEvent {
    /// The stream the event is appended to.
    pub stream: String,
    /// `type`, such as `file.uploaded`.
    pub type_name: String,
    /// `dataversion`: the schema version of `data`, 1 or more.
    pub version: u32,
    /// `id`.
    pub id: Ulid,
    /// `time`, written with millisecond precision.
    pub time: OffsetDateTime,
    /// The schema's path under the bus's schema base, such as
    /// `contextual/file.uploaded/v2.json` (see
    /// [`Event::SCHEMA_PATH`](crate::Event::SCHEMA_PATH)); `None` for
    /// `<stream>/<type>/v<version>.json`.
    pub schema_path: Option<String>,
    /// `partitionkey`, if the event has one.
    pub partition_key: Option<String>,
    /// Correlation and causation ids, tenant, subject, traceparent,
    /// extensions. Its [`Meta::event_id`], if set, is ignored: the id is
    /// [`RawEvent::id`].
    pub meta: Meta,
    /// `data`: the JSON payload, as it was serialized.
    pub data: Vec<u8>,
}

impl RawEvent {
    /// An event of `type_name` at `version` on `stream`, with a new id and
    /// the current time.
    pub fn new(
        stream: impl Into<String>,
        type_name: impl Into<String>,
        version: u32,
        data: Vec<u8>,
    ) -> Self {
        RawEvent {
            stream: stream.into(),
            type_name: type_name.into(),
            version,
            id: Ulid::new(),
            time: OffsetDateTime::now_utc(),
            schema_path: None,
            partition_key: None,
            meta: Meta::default(),
            data,
        }
    }

    /// Sets the event's `id`.
    pub fn id(mut self, id: Ulid) -> Self {
        self.id = id;
        self
    }

    /// Sets the event's `time`.
    pub fn time(mut self, time: OffsetDateTime) -> Self {
        self.time = time;
        self
    }

    /// Sets the schema's path under the bus's schema base.
    pub fn schema_path(mut self, path: impl Into<String>) -> Self {
        self.schema_path = Some(path.into());
        self
    }

    /// Sets `partitionkey`.
    pub fn partition_key(mut self, key: impl Into<String>) -> Self {
        self.partition_key = Some(key.into());
        self
    }

    /// Sets the optional attributes.
    pub fn meta(mut self, meta: Meta) -> Self {
        self.meta = meta;
        self
    }

    /// Checks everything [`Bus::publish_raw`] checks before it sends
    /// anything, so that a caller can set aside an event that can never be
    /// published: the stream and type names (the rule of [`Bus::tenant`]),
    /// the version (1 or more), the time (years 0 to 9999, as RFC 3339
    /// writes them), the schema path, the partition key, the extension
    /// names and tenant of the meta, and that `data` is one JSON value.
    pub fn check(&self) -> Result<(), Error> {
        check_name("stream", &self.stream)?;
        check_name("type", &self.type_name)?;
        self.meta.check()?;
        if let Some(tenant) = &self.meta.tenant {
            check_name("tenant", tenant)?;
        }
        let invalid = |reason: String| Error::InvalidRawEvent {
            id: self.id.to_string(),
            type_name: self.type_name.clone(),
            reason,
        };
        if self.version == 0 {
            return Err(invalid("its version is 0; versions start at 1".to_owned()));
        }
        if !(0..=9999).contains(&self.time.year()) {
            return Err(invalid(format!(
                "its time {} is outside the years 0 to 9999 that RFC 3339 writes",
                self.time
            )));
        }
        if let Some(path) = &self.schema_path {
            if path.is_empty()
                || path.starts_with('/')
                || path.chars().any(|c| {
                    c.is_whitespace()
                        || c.is_control()
                        || matches!(c, '"' | '<' | '>' | '\\' | '#' | '?')
                })
            {
                return Err(invalid(format!(
                    "its schema path `{path}` is not a relative path of a URI"
                )));
            }
        }
        if let Some(key) = &self.partition_key {
            if key.is_empty() || key.chars().any(char::is_control) {
                return Err(Error::InvalidName(NameError {
                    what: "partition key",
                    name: key.clone(),
                    reason: "a partition key is not empty and holds no control characters"
                        .to_owned(),
                }));
            }
        }
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&self.data) {
            return Err(invalid(format!("its data is not JSON: {e}")));
        }
        Ok(())
    }
}

impl Bus {
    /// Publishes events stored before, each with the id and time it was
    /// given, to their streams, in one round trip (one pipeline of `XADD`s);
    /// returns one [`Published`] per event, in order.
    ///
    /// ```text
    /// XADD ns:{stream} * specversion 1.0 id <fixed ulid> source <svc> type <type>
    ///      time <fixed rfc3339> … dataversion <n> [partitionkey <key>] data <json>
    /// ```
    ///
    /// On a stream declared with partitions ([`BusBuilder::partitions`](crate::BusBuilder::partitions))
    /// each event goes to the partition of its `partitionkey`
    /// (`ns:{stream#<k>}`, as [`Bus::publish`] routes it; partition 0 without
    /// a key).
    ///
    /// Every event is checked first ([`RawEvent::check`]); one that fails
    /// fails the call and nothing is sent. Entries of one stream are
    /// appended in the order given. As with [`Bus::publish_batch`], a batch
    /// whose connection fails half-way is sent again with the same ids
    /// until the publish timeout, so an event may appear twice, always with
    /// its one id. Raw events go to streams only, never to channels.
    pub async fn publish_raw(&self, events: &[RawEvent]) -> Result<Vec<Published>, Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tenants = Vec::with_capacity(events.len());
        for e in events {
            e.check()?;
            tenants.push(self.effective_tenant(Some(&e.meta))?);
        }
        let ns = &self.shared.namespace;
        let stamps: Vec<Stamp> = events.iter().map(|e| Stamp::of(e.id)).collect();
        let times: Vec<Rfc3339Millis> = events
            .iter()
            .map(|e| Rfc3339Millis::from_datetime(e.time))
            .collect();
        let keys: Vec<String> = events
            .iter()
            .zip(&tenants)
            .map(|(e, t)| {
                let key = e
                    .partition_key
                    .as_deref()
                    .or(e.meta.partition_key.as_deref());
                self.routed_key(stream_key(ns, *t, &e.stream), &e.stream, key)
            })
            .collect();
        let schemas: Vec<String> = events
            .iter()
            .map(|e| {
                let path = match &e.schema_path {
                    Some(p) => p.clone(),
                    None => format!("{}/{}/v{}.json", e.stream, e.type_name, e.version),
                };
                format!("{}{path}", self.schema_base())
            })
            .collect();
        let batch: Vec<(&str, Outgoing<'_>)> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let meta = &e.meta;
                (
                    keys[i].as_str(),
                    Outgoing {
                        id: stamps[i].id(),
                        source: &self.shared.source,
                        type_name: &e.type_name,
                        time: times[i].as_str(),
                        dataschema: &schemas[i],
                        dataversion: e.version,
                        correlation_id: meta.correlation_id.as_deref(),
                        causation_id: meta.causation_id.as_deref(),
                        tenant_id: tenants[i],
                        traceparent: meta.traceparent.as_deref(),
                        tracestate: meta.tracestate.as_deref(),
                        subject: meta.subject.as_deref(),
                        reply_to: None,
                        partition_key: e.partition_key.as_deref().or(meta.partition_key.as_deref()),
                        extensions: &meta.extensions,
                        data: &e.data,
                    },
                )
            })
            .collect();
        let entry_ids = self.append(&batch).await?;
        Ok(entry_ids
            .into_iter()
            .zip(events)
            .map(|(entry_id, e)| Published {
                entry_id: Some(entry_id),
                event_id: e.id,
            })
            .collect())
    }
}
