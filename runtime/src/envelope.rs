//! The CloudEvents 1.0 envelope of every event on the wire.
//!
//! A stream entry carries it in binary mode (one entry field per attribute,
//! the payload in `data`); a Pub/Sub message carries it in structured mode
//! (one JSON object, `data` inline). See DESIGN.md, "Wire format".

use std::fmt;

pub use crate::error::EnvelopeError;
use crate::Ulid;
use time::OffsetDateTime;

/// The only CloudEvents version tidings writes and reads.
pub const SPECVERSION: &str = "1.0";
/// The content type of every payload tidings writes.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// Field names of the attributes, exactly as they appear on the wire.
pub mod field {
    /// `specversion`: always `1.0`.
    pub const SPECVERSION: &str = "specversion";
    /// `id`: the ULID of the event (any non-empty string on read).
    pub const ID: &str = "id";
    /// `source`: the publishing service.
    pub const SOURCE: &str = "source";
    /// `type`: such as `file.uploaded`.
    pub const TYPE: &str = "type";
    /// `time`: RFC 3339, UTC, milliseconds.
    pub const TIME: &str = "time";
    /// `datacontenttype`: `application/json`.
    pub const DATACONTENTTYPE: &str = "datacontenttype";
    /// `dataschema`: such as
    /// `https://tidings.invalid/schemas/contextual/file.uploaded/v2.json`.
    pub const DATASCHEMA: &str = "dataschema";
    /// `dataversion`: the schema version (extension attribute).
    pub const DATAVERSION: &str = "dataversion";
    /// `correlationid`: the conversation the event belongs to.
    pub const CORRELATIONID: &str = "correlationid";
    /// `causationid`: the event that caused this one.
    pub const CAUSATIONID: &str = "causationid";
    /// `tenantid`: the tenant the event belongs to.
    pub const TENANTID: &str = "tenantid";
    /// `traceparent`: W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// `tracestate`: W3C trace context, the vendors' part.
    pub const TRACESTATE: &str = "tracestate";
    /// `subject`: what the event is about, within its source.
    pub const SUBJECT: &str = "subject";
    /// `replyto`: on a request, the stream its reply is appended to (the
    /// requester's reply stream, `ns:{reply:<instance>}`).
    pub const REPLYTO: &str = "replyto";
    /// `partitionkey`: the key whose events are handled in order (the
    /// CloudEvents partitioning extension).
    pub const PARTITIONKEY: &str = "partitionkey";
    /// `dlqgroup`: on an entry put back from dead letters, the one consumer
    /// group that handles it (the group that gave up on it); every other
    /// group acknowledges it without handling it (extension attribute).
    pub const DLQGROUP: &str = "dlqgroup";
    /// `data`: the payload.
    pub const DATA: &str = "data";
}

/// One event as it travels: every CloudEvents attribute and the raw payload.
///
/// Reading accepts every event CloudEvents 1.0 accepts: only `specversion`,
/// `id`, `source` and `type` are required. Without `dataversion`, the
/// version is the `v<N>` that `dataschema` ends in, and without either it
/// (or when `dataschema` is not one that ends in `v<N>.json`) it is 1;
/// without `data`, the payload is JSON `null`. Unknown extension
/// attributes are ignored.
///
/// ```
/// use tidings::Envelope;
///
/// let env = Envelope::new("billing", "invoice.paid", 1, "https://schemas.example.com/billing/invoice.paid/v1.json", br#"{"n":1}"#.to_vec());
/// let fields = env.to_fields();
/// let back = Envelope::from_fields("1-0", fields.iter().map(|(k, v)| (k.as_bytes(), &v[..]))).unwrap();
/// assert_eq!(back, env);
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Envelope {
    /// `id`: the ULID of an event tidings wrote (another producer may use
    /// any non-empty string), also its idempotency key.
    pub id: String,
    /// `source`: the publishing service.
    pub source: String,
    /// `type`: the event type name.
    pub type_name: String,
    /// `time`: when the event was published (UTC), if the producer said.
    pub time: Option<OffsetDateTime>,
    /// `datacontenttype`.
    pub datacontenttype: String,
    /// `dataschema`, if the producer wrote one.
    pub dataschema: Option<String>,
    /// `dataversion`: schema version of `data` (read from `dataschema`, or
    /// 1, when the producer did not write it).
    pub dataversion: u32,
    /// `correlationid`.
    pub correlation_id: Option<String>,
    /// `causationid`.
    pub causation_id: Option<String>,
    /// `tenantid`.
    pub tenant_id: Option<String>,
    /// `traceparent`.
    pub traceparent: Option<String>,
    /// `tracestate`.
    pub tracestate: Option<String>,
    /// `subject`.
    pub subject: Option<String>,
    /// `replyto`: the stream a request's reply goes to (see
    /// [`Bus::request`](crate::Bus::request)).
    pub reply_to: Option<String>,
    /// Every other attribute with a CloudEvents name (lower-case letters and
    /// digits): extensions of the producer's own, in the order read.
    pub extensions: Vec<(String, String)>,
    /// `dlqgroup`: set on an entry that [`DeadLetters::retry`](crate::DeadLetters::retry)
    /// put back into its stream, naming the only consumer group that
    /// handles it; `None` on every event as published.
    pub retry_group: Option<String>,
    /// `data`: the payload bytes (JSON).
    pub data: Vec<u8>,
    /// On an entry of a group's retry stream: where its retry stands.
    pub(crate) parked: Option<Box<Parked>>,
}

/// What an entry parked for a later retry carries besides the event (the
/// `dlq_…` fields of a dead letter, with the same meaning), so that the
/// retry goes on from where it was: attempts made, first failure, the
/// entry id in the stream it was first read from, and the handlers to run
/// again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parked {
    /// Attempts made before it was parked.
    pub(crate) attempts: u32,
    /// Time of the first failure, in Unix milliseconds, if it was readable.
    pub(crate) first_failure: Option<i64>,
    /// The entry id in the stream it was first read from.
    pub(crate) entry_id: String,
    /// The handlers that failed, comma-separated, if named.
    pub(crate) handlers: Option<String>,
    /// The priority level (`high`, `low`) of the stream it was first read
    /// from, if not the stream itself.
    pub(crate) level: Option<String>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("id", &self.id)
            .field("source", &self.source)
            .field("type", &self.type_name)
            .field("time", &self.time_rfc3339())
            .field("dataschema", &self.dataschema)
            .field("dataversion", &self.dataversion)
            .field("correlation_id", &self.correlation_id)
            .field("causation_id", &self.causation_id)
            .field("tenant_id", &self.tenant_id)
            .field("subject", &self.subject)
            .field("reply_to", &self.reply_to)
            .field("extensions", &self.extensions)
            .field("retry_group", &self.retry_group)
            .field("data", &String::from_utf8_lossy(&self.data))
            .finish_non_exhaustive()
    }
}

impl Envelope {
    /// `partitionkey`: the key the event is ordered by, if it has one
    /// (`#[event(…, key = field)]` or [`Meta::partition_key`](crate::Meta::partition_key)).
    /// Read as one of the [`extensions`](Envelope::extensions), as any
    /// CloudEvents reader sees it; an event without extensions answers at
    /// once.
    pub fn partition_key(&self) -> Option<&str> {
        self.extensions
            .iter()
            .find(|(name, _)| name == field::PARTITIONKEY)
            .map(|(_, value)| value.as_str())
    }

    /// A new envelope with a fresh ULID, the current time and a JSON payload.
    pub fn new(
        source: impl Into<String>,
        type_name: impl Into<String>,
        dataversion: u32,
        dataschema: impl Into<String>,
        data: Vec<u8>,
    ) -> Self {
        let now = now_millis();
        Envelope {
            id: Ulid::new().to_string(),
            source: source.into(),
            type_name: type_name.into(),
            time: Some(datetime_from_millis(now)),
            datacontenttype: JSON_CONTENT_TYPE.to_owned(),
            dataschema: Some(dataschema.into()),
            dataversion,
            correlation_id: None,
            causation_id: None,
            tenant_id: None,
            traceparent: None,
            tracestate: None,
            subject: None,
            reply_to: None,
            extensions: Vec::new(),
            retry_group: None,
            data,
            parked: None,
        }
    }

    /// The `time` attribute as tidings writes it: `2026-11-24T10:00:00.123Z`.
    pub fn time_rfc3339(&self) -> Option<String> {
        self.time
            .map(|t| Rfc3339Millis::from_datetime(t).as_str().to_owned())
    }

    /// The id as a ULID, if it is one (every event tidings writes).
    pub fn ulid(&self) -> Option<Ulid> {
        Ulid::from_string(&self.id).ok()
    }

    /// The fields of a stream entry (binary mode), in wire order; optional
    /// attributes that are unset are left out.
    pub fn to_fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut out = vec![
            (field::SPECVERSION, SPECVERSION.as_bytes().to_vec()),
            (field::ID, self.id.as_bytes().to_vec()),
            (field::SOURCE, self.source.as_bytes().to_vec()),
            (field::TYPE, self.type_name.as_bytes().to_vec()),
        ];
        if let Some(time) = self.time_rfc3339() {
            out.push((field::TIME, time.into_bytes()));
        }
        out.push((
            field::DATACONTENTTYPE,
            self.datacontenttype.as_bytes().to_vec(),
        ));
        if let Some(schema) = &self.dataschema {
            out.push((field::DATASCHEMA, schema.as_bytes().to_vec()));
        }
        out.push((
            field::DATAVERSION,
            self.dataversion.to_string().into_bytes(),
        ));
        for (name, value) in self.optional_attributes() {
            if let Some(v) = value {
                out.push((name, v.as_bytes().to_vec()));
            }
        }
        out.push((field::DATA, self.data.clone()));
        out
    }

    /// [`Envelope::to_fields`] with the extension attributes too, whose
    /// names are not `'static`.
    pub fn to_all_fields(&self) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = self
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let data = out.pop();
        for (name, value) in &self.extensions {
            out.push((name.clone(), value.as_bytes().to_vec()));
        }
        out.extend(data);
        out
    }

    fn optional_attributes(&self) -> [(&'static str, Option<&String>); 8] {
        [
            (field::CORRELATIONID, self.correlation_id.as_ref()),
            (field::CAUSATIONID, self.causation_id.as_ref()),
            (field::TENANTID, self.tenant_id.as_ref()),
            (field::TRACEPARENT, self.traceparent.as_ref()),
            (field::TRACESTATE, self.tracestate.as_ref()),
            (field::SUBJECT, self.subject.as_ref()),
            (field::REPLYTO, self.reply_to.as_ref()),
            (field::DLQGROUP, self.retry_group.as_ref()),
        ]
    }

    /// Reads the fields of a stream entry (binary mode).
    ///
    /// `entry_id` only serves to name the entry in errors. Unknown fields are
    /// ignored, as CloudEvents asks of receivers.
    pub fn from_fields<'a>(
        entry_id: &str,
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Self, EnvelopeError> {
        let mut raw = RawAttributes::default();
        for (name, value) in fields {
            raw.set(name, value);
        }
        raw.build(entry_id)
    }

    /// As [`Envelope::from_fields`], taking the values by value: the
    /// consumer's read path owns every field of a reply, so the attributes
    /// kept as text become `String`s without a copy.
    pub(crate) fn from_owned_fields(
        entry_id: &str,
        fields: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<Self, EnvelopeError> {
        let mut raw = RawAttributes::default();
        for (name, value) in fields {
            raw.set_owned(&name, value);
        }
        raw.build(entry_id)
    }

    /// The event as one CloudEvents JSON object (structured mode), `data`
    /// inline. The payload is copied as is, so it must be JSON, which every
    /// payload tidings writes is.
    pub fn to_json(&self) -> Vec<u8> {
        let time = self.time.map(Rfc3339Millis::from_datetime);
        let opts = self.optional_attributes();
        write_json(
            &JsonParts {
                id: &self.id,
                source: &self.source,
                type_name: &self.type_name,
                time: time.as_ref().map(Rfc3339Millis::as_str),
                datacontenttype: &self.datacontenttype,
                dataschema: self.dataschema.as_deref(),
                dataversion: self.dataversion,
                optional: &opts.map(|(n, v)| (n, v.map(String::as_str))),
                extensions: &self.extensions,
            },
            &self.data,
        )
    }

    /// Reads a CloudEvents JSON object (structured mode). `at` names where it
    /// came from (a channel) in errors.
    pub fn from_json(at: &str, json: &[u8]) -> Result<Self, EnvelopeError> {
        let value: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(json)
            .map_err(|e| EnvelopeError::NotJson {
                at: at.to_owned(),
                reason: e.to_string(),
            })?;
        let mut raw = RawAttributes::default();
        let mut data = None;
        for (name, value) in &value {
            if name == field::DATA {
                data = Some(serde_json::to_vec(value).unwrap_or_default());
                continue;
            }
            if name == "data_base64" {
                return Err(EnvelopeError::Malformed {
                    field: field::DATA,
                    at: at.to_owned(),
                    reason: "the event carries binary data (`data_base64`); a tidings payload is JSON in `data`".to_owned(),
                });
            }
            match value {
                serde_json::Value::String(s) => raw.set(name.as_bytes(), s.as_bytes()),
                // `dataversion` is an integer extension attribute; a writer
                // may well send it as a JSON number, and other extensions
                // may be numbers or booleans.
                serde_json::Value::Number(n) => {
                    let s = n.to_string();
                    raw.set_owned(name.as_bytes(), s.into_bytes());
                }
                serde_json::Value::Bool(b) => {
                    raw.set_owned(name.as_bytes(), b.to_string().into_bytes());
                }
                _ => {}
            }
        }
        raw.data = data.map(std::borrow::Cow::Owned);
        raw.build(at)
    }
}

/// Attributes as found on the wire, before validation.
#[derive(Default)]
struct RawAttributes<'a> {
    specversion: Option<std::borrow::Cow<'a, [u8]>>,
    id: Option<std::borrow::Cow<'a, [u8]>>,
    source: Option<std::borrow::Cow<'a, [u8]>>,
    type_name: Option<std::borrow::Cow<'a, [u8]>>,
    time: Option<std::borrow::Cow<'a, [u8]>>,
    datacontenttype: Option<std::borrow::Cow<'a, [u8]>>,
    dataschema: Option<std::borrow::Cow<'a, [u8]>>,
    dataversion: Option<std::borrow::Cow<'a, [u8]>>,
    correlation_id: Option<std::borrow::Cow<'a, [u8]>>,
    causation_id: Option<std::borrow::Cow<'a, [u8]>>,
    tenant_id: Option<std::borrow::Cow<'a, [u8]>>,
    traceparent: Option<std::borrow::Cow<'a, [u8]>>,
    tracestate: Option<std::borrow::Cow<'a, [u8]>>,
    subject: Option<std::borrow::Cow<'a, [u8]>>,
    reply_to: Option<std::borrow::Cow<'a, [u8]>>,
    retry_group: Option<std::borrow::Cow<'a, [u8]>>,
    parked_attempts: Option<std::borrow::Cow<'a, [u8]>>,
    parked_first_failure: Option<std::borrow::Cow<'a, [u8]>>,
    parked_entry_id: Option<std::borrow::Cow<'a, [u8]>>,
    parked_handlers: Option<std::borrow::Cow<'a, [u8]>>,
    parked_level: Option<std::borrow::Cow<'a, [u8]>>,
    data: Option<std::borrow::Cow<'a, [u8]>>,
    /// Attributes with a CloudEvents name that tidings does not know.
    extensions: Vec<(Vec<u8>, std::borrow::Cow<'a, [u8]>)>,
}

impl<'a> RawAttributes<'a> {
    fn slot(&mut self, name: &[u8]) -> Option<&mut Option<std::borrow::Cow<'a, [u8]>>> {
        Some(match name {
            b"specversion" => &mut self.specversion,
            b"id" => &mut self.id,
            b"source" => &mut self.source,
            b"type" => &mut self.type_name,
            b"time" => &mut self.time,
            b"datacontenttype" => &mut self.datacontenttype,
            b"dataschema" => &mut self.dataschema,
            b"dataversion" => &mut self.dataversion,
            b"correlationid" => &mut self.correlation_id,
            b"causationid" => &mut self.causation_id,
            b"tenantid" => &mut self.tenant_id,
            b"traceparent" => &mut self.traceparent,
            b"tracestate" => &mut self.tracestate,
            b"subject" => &mut self.subject,
            b"replyto" => &mut self.reply_to,
            b"dlqgroup" => &mut self.retry_group,
            b"data" => &mut self.data,
            // An entry of a retry stream: read apart, never an attribute.
            b"dlq_attempts" => &mut self.parked_attempts,
            b"dlq_first_failure" => &mut self.parked_first_failure,
            b"dlq_entry_id" => &mut self.parked_entry_id,
            b"dlq_handler" => &mut self.parked_handlers,
            b"dlq_level" => &mut self.parked_level,
            _ => return None,
        })
    }

    fn set(&mut self, name: &[u8], value: &'a [u8]) {
        self.put(name, std::borrow::Cow::Borrowed(value));
    }

    fn set_owned(&mut self, name: &[u8], value: Vec<u8>) {
        self.put(name, std::borrow::Cow::Owned(value));
    }

    fn put(&mut self, name: &[u8], value: std::borrow::Cow<'a, [u8]>) {
        match self.slot(name) {
            Some(slot) => *slot = Some(value),
            // Names outside CloudEvents' rule (`dlq_…` of a dead letter,
            // `data_base64`) are not attributes.
            None if is_attribute_name(name) => self.extensions.push((name.to_vec(), value)),
            None => {}
        }
    }

    fn build(self, at: &str) -> Result<Envelope, EnvelopeError> {
        let missing = |field: &'static str| EnvelopeError::Missing {
            field,
            at: at.to_owned(),
        };
        let malformed = |field: &'static str, reason: String| EnvelopeError::Malformed {
            field,
            at: at.to_owned(),
            reason,
        };
        let text = |field: &'static str, v: std::borrow::Cow<'a, [u8]>| {
            String::from_utf8(v.into_owned())
                .map_err(|_| malformed(field, "not valid UTF-8".to_owned()))
        };
        let required = |field: &'static str, v: Option<std::borrow::Cow<'a, [u8]>>| match v {
            Some(v) => text(field, v),
            None => Err(missing(field)),
        };
        let optional = |field: &'static str, v: Option<std::borrow::Cow<'a, [u8]>>| {
            v.map(|v| text(field, v)).transpose()
        };
        // The attributes that are parsed, not kept, are read where they lie.
        fn parsed<'v>(
            field: &'static str,
            v: &'v Option<std::borrow::Cow<'_, [u8]>>,
            at: &str,
        ) -> Result<&'v str, EnvelopeError> {
            match v {
                Some(v) => std::str::from_utf8(v).map_err(|_| EnvelopeError::Malformed {
                    field,
                    at: at.to_owned(),
                    reason: "not valid UTF-8".to_owned(),
                }),
                None => Err(EnvelopeError::Missing {
                    field,
                    at: at.to_owned(),
                }),
            }
        }

        let specversion = parsed(field::SPECVERSION, &self.specversion, at)?;
        if specversion != SPECVERSION {
            return Err(malformed(
                field::SPECVERSION,
                format!("expected `{SPECVERSION}`, found `{specversion}`"),
            ));
        }
        let non_empty = |field: &'static str, v: String| {
            if v.is_empty() {
                Err(malformed(field, "it is empty".to_owned()))
            } else {
                Ok(v)
            }
        };
        let id = non_empty(field::ID, required(field::ID, self.id)?)?;
        let time = match &self.time {
            None => None,
            Some(_) => {
                let time = parsed(field::TIME, &self.time, at)?;
                Some(
                    OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
                        .map_err(|e| {
                            malformed(field::TIME, format!("`{time}` is not RFC 3339: {e}"))
                        })?,
                )
            }
        };
        let dataschema = optional(field::DATASCHEMA, self.dataschema)?;
        let dataversion = match &self.dataversion {
            Some(_) => {
                let v = parsed(field::DATAVERSION, &self.dataversion, at)?;
                match v.parse::<u32>() {
                    Ok(v) if v >= 1 => v,
                    _ => {
                        return Err(malformed(
                            field::DATAVERSION,
                            format!("`{v}` is not a version (an integer, 1 or more)"),
                        ))
                    }
                }
            }
            // A producer that names no version at all wrote the first.
            None => dataschema
                .as_deref()
                .and_then(version_of_schema)
                .unwrap_or(1),
        };
        let datacontenttype = optional(field::DATACONTENTTYPE, self.datacontenttype)?
            .unwrap_or_else(|| JSON_CONTENT_TYPE.to_owned());
        Ok(Envelope {
            id,
            source: non_empty(field::SOURCE, required(field::SOURCE, self.source)?)?,
            type_name: non_empty(field::TYPE, required(field::TYPE, self.type_name)?)?,
            time,
            datacontenttype,
            dataschema,
            dataversion,
            correlation_id: optional(field::CORRELATIONID, self.correlation_id)?,
            causation_id: optional(field::CAUSATIONID, self.causation_id)?,
            tenant_id: optional(field::TENANTID, self.tenant_id)?,
            traceparent: optional(field::TRACEPARENT, self.traceparent)?,
            tracestate: optional(field::TRACESTATE, self.tracestate)?,
            subject: optional(field::SUBJECT, self.subject)?,
            reply_to: optional(field::REPLYTO, self.reply_to)?,
            extensions: self
                .extensions
                .into_iter()
                .map(|(name, value)| {
                    let name = String::from_utf8(name).unwrap_or_default();
                    let value = String::from_utf8_lossy(&value).into_owned();
                    (name, value)
                })
                .collect(),
            retry_group: optional(field::DLQGROUP, self.retry_group)?,
            parked: parked(
                self.parked_attempts.as_deref(),
                self.parked_first_failure.as_deref(),
                self.parked_entry_id.as_deref(),
                self.parked_handlers.as_deref(),
                self.parked_level.as_deref(),
            ),
            data: self
                .data
                .map_or_else(|| b"null".to_vec(), std::borrow::Cow::into_owned),
        })
    }
}

/// Where a parked retry stands, from its `dlq_attempts`, `dlq_first_failure`,
/// `dlq_entry_id`, `dlq_handler` and `dlq_level` fields: `None` unless the attempts and
/// the entry id are there and readable. Written by tidings only; a field
/// that does not read (another writer's) leaves the entry an ordinary one
/// rather than failing it.
fn parked(
    attempts: Option<&[u8]>,
    first_failure: Option<&[u8]>,
    entry_id: Option<&[u8]>,
    handlers: Option<&[u8]>,
    level: Option<&[u8]>,
) -> Option<Box<Parked>> {
    let text = |v: &[u8]| std::str::from_utf8(v).ok().map(str::to_owned);
    let attempts = std::str::from_utf8(attempts?).ok()?.parse::<u32>().ok()?;
    let entry_id = text(entry_id?).filter(|id| !id.is_empty())?;
    let first_failure = first_failure
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok());
    Some(Box::new(Parked {
        attempts,
        first_failure,
        entry_id,
        handlers: handlers.and_then(text).filter(|h| !h.is_empty()),
        // The levels other than the stream itself, as `Priority` names them.
        level: level
            .and_then(text)
            .filter(|l| matches!(l.as_str(), "high" | "low")),
    }))
}

/// Whether `name` is a CloudEvents attribute name: 1 to 20 lower-case
/// letters and digits.
fn is_attribute_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 20
        && name
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The `N` of a `dataschema` that ends in `v<N>.json`, as tidings writes it.
fn version_of_schema(uri: &str) -> Option<u32> {
    let file = uri.rsplit('/').next()?;
    let n = file.strip_prefix('v')?.strip_suffix(".json")?;
    match n.parse::<u32>() {
        Ok(v) if v >= 1 && !n.starts_with('+') => Some(v),
        _ => None,
    }
}

/// Borrowed attributes for [`write_json`], so that the publish path can
/// write structured mode without building an owned [`Envelope`].
pub(crate) struct JsonParts<'a> {
    pub(crate) id: &'a str,
    pub(crate) source: &'a str,
    pub(crate) type_name: &'a str,
    pub(crate) time: Option<&'a str>,
    pub(crate) datacontenttype: &'a str,
    pub(crate) dataschema: Option<&'a str>,
    pub(crate) dataversion: u32,
    pub(crate) optional: &'a [(&'static str, Option<&'a str>)],
    pub(crate) extensions: &'a [(String, String)],
}

/// Writes a CloudEvents JSON object with `data` copied in verbatim, so that
/// the payload is serialized once, not parsed and re-serialized.
pub(crate) fn write_json(parts: &JsonParts<'_>, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + data.len());
    out.push(b'{');
    let mut first = true;
    let mut put = |out: &mut Vec<u8>, name: &str, value: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        write_json_str(out, name);
        out.push(b':');
        write_json_str(out, value);
    };
    put(&mut out, field::SPECVERSION, SPECVERSION);
    put(&mut out, field::ID, parts.id);
    put(&mut out, field::SOURCE, parts.source);
    put(&mut out, field::TYPE, parts.type_name);
    if let Some(time) = parts.time {
        put(&mut out, field::TIME, time);
    }
    put(&mut out, field::DATACONTENTTYPE, parts.datacontenttype);
    if let Some(schema) = parts.dataschema {
        put(&mut out, field::DATASCHEMA, schema);
    }
    let version = itoa_u32(parts.dataversion);
    put(&mut out, field::DATAVERSION, version.as_str());
    for (name, value) in parts.optional {
        if let Some(v) = value {
            put(&mut out, name, v);
        }
    }
    for (name, value) in parts.extensions {
        put(&mut out, name, value);
    }
    out.extend_from_slice(b",\"data\":");
    if data.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        out.extend_from_slice(data);
    }
    out.push(b'}');
    out
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's string escaping, written straight into the buffer; writing
    // into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Decimal digits of a u32 on the stack.
pub(crate) struct U32Str {
    buf: [u8; 10],
    start: usize,
}

impl U32Str {
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits are ever written.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("0")
    }
}

pub(crate) fn itoa_u32(mut n: u32) -> U32Str {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    U32Str { buf, start: i }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn datetime_from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` on the stack: the `time` attribute is written on
/// every publish, and the `time` crate's RFC 3339 formatter allocates and
/// prints as many fractional digits as there are nanoseconds.
#[derive(Clone, Copy)]
pub(crate) struct Rfc3339Millis([u8; 24]);

impl Rfc3339Millis {
    pub(crate) fn from_millis(ms: i64) -> Self {
        let secs = ms.div_euclid(1000);
        let millis = ms.rem_euclid(1000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let y = y.clamp(0, 9999) as u32;
        put_digits(&mut b[0..4], y);
        put_digits(&mut b[5..7], m);
        put_digits(&mut b[8..10], d);
        put_digits(&mut b[11..13], sod / 3600);
        put_digits(&mut b[14..16], sod / 60 % 60);
        put_digits(&mut b[17..19], sod % 60);
        put_digits(&mut b[20..23], millis);
        Rfc3339Millis(b)
    }

    pub(crate) fn from_datetime(t: OffsetDateTime) -> Self {
        let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
        Self::from_millis(ms as i64)
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("1970-01-01T00:00:00.000Z")
    }
}

fn put_digits(slot: &mut [u8], mut n: u32) {
    for b in slot.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_formatted_with_milliseconds_in_utc() {
        // 2026-11-24T10:00:00.123Z
        let t = time::macros::datetime!(2026-11-24 10:00:00.123 UTC);
        let ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
        assert_eq!(
            Rfc3339Millis::from_millis(ms).as_str(),
            "2026-11-24T10:00:00.123Z"
        );
        assert_eq!(
            Rfc3339Millis::from_millis(0).as_str(),
            "1970-01-01T00:00:00.000Z"
        );
        let leap = time::macros::datetime!(2024-02-29 23:59:59.999 UTC);
        let ms = (leap.unix_timestamp_nanos() / 1_000_000) as i64;
        assert_eq!(
            Rfc3339Millis::from_millis(ms).as_str(),
            "2024-02-29T23:59:59.999Z"
        );
    }

    fn sample() -> Envelope {
        let mut e = Envelope::new(
            "svc",
            "file.uploaded",
            2,
            "https://tidings.invalid/schemas/contextual/file.uploaded/v2.json",
            br#"{"filename":"a \"b\".pdf"}"#.to_vec(),
        );
        e.correlation_id = Some("corr".into());
        e.subject = Some("files/1".into());
        e
    }

    #[test]
    fn fields_round_trip_keeps_every_attribute() {
        let e = sample();
        let fields = e.to_fields();
        let back = Envelope::from_fields("1-0", fields.iter().map(|(k, v)| (k.as_bytes(), &v[..])))
            .unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn json_round_trip_keeps_every_attribute_and_inlines_data() {
        let e = sample();
        let json = e.to_json();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["data"]["filename"], "a \"b\".pdf");
        assert_eq!(v["dataversion"], "2");
        assert_eq!(v["specversion"], "1.0");
        let back = Envelope::from_json("chan", &json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn dlqgroup_is_an_extension_attribute_in_both_modes() {
        let mut e = sample();
        assert!(!e.to_fields().iter().any(|(k, _)| *k == field::DLQGROUP));
        e.retry_group = Some("indexer".into());
        let fields = e.to_fields();
        assert!(fields
            .iter()
            .any(|(k, v)| *k == field::DLQGROUP && v == b"indexer"));
        let back = Envelope::from_fields("1-0", fields.iter().map(|(k, v)| (k.as_bytes(), &v[..])))
            .unwrap();
        assert_eq!(back.retry_group.as_deref(), Some("indexer"));
        let json = e.to_json();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v[field::DLQGROUP], "indexer");
        assert_eq!(Envelope::from_json("chan", &json).unwrap(), e);
    }

    #[test]
    fn a_parked_retry_reads_back_where_it_stood_and_is_no_attribute() {
        let e = sample();
        let mut fields: Vec<(String, Vec<u8>)> = e.to_all_fields();
        for (k, v) in [
            ("dlq_attempts", "2"),
            ("dlq_first_failure", "2026-11-24T10:00:00.123Z"),
            ("dlq_entry_id", "1732442400000-0"),
            ("dlq_handler", "index_file,thumbnail"),
        ] {
            fields.push((k.to_owned(), v.as_bytes().to_vec()));
        }
        let read = |fields: &[(String, Vec<u8>)]| {
            Envelope::from_fields("9-0", fields.iter().map(|(k, v)| (k.as_bytes(), &v[..])))
                .unwrap()
        };
        let back = read(&fields);
        let parked = back.parked.as_deref().unwrap();
        assert_eq!(parked.attempts, 2);
        assert_eq!(parked.first_failure, Some(1_795_514_400_123));
        assert_eq!(parked.entry_id, "1732442400000-0");
        assert_eq!(parked.handlers.as_deref(), Some("index_file,thumbnail"));
        assert!(back.extensions.is_empty(), "{:?}", back.extensions);
        assert!(!back
            .to_all_fields()
            .iter()
            .any(|(k, _)| k.starts_with("dlq_")));
        // Unreadable attempts: an ordinary entry, not a failure.
        let attempts = fields.len() - 4;
        fields[attempts].1 = b"two".to_vec();
        assert!(read(&fields).parked.is_none());
        assert!(read(&e.to_all_fields()).parked.is_none());
    }

    fn without(e: &Envelope, names: &[&str]) -> Result<Envelope, EnvelopeError> {
        let fields: Vec<_> = e
            .to_fields()
            .into_iter()
            .filter(|(k, _)| !names.contains(k))
            .collect();
        Envelope::from_fields("7-1", fields.iter().map(|(k, v)| (k.as_bytes(), &v[..])))
    }

    #[test]
    fn missing_required_attribute_names_the_field_and_entry() {
        let e = sample();
        for name in [field::SPECVERSION, field::ID, field::SOURCE, field::TYPE] {
            assert_eq!(
                without(&e, &[name]).unwrap_err(),
                EnvelopeError::Missing {
                    field: name,
                    at: "7-1".into()
                }
            );
        }
    }

    #[test]
    fn only_the_four_required_attributes_make_an_event() {
        let e = sample();
        // Another language's producer may leave every optional attribute out.
        let bare = without(
            &e,
            &[
                field::TIME,
                field::DATACONTENTTYPE,
                field::DATASCHEMA,
                field::DATAVERSION,
                field::CORRELATIONID,
                field::SUBJECT,
                field::DATA,
            ],
        )
        .unwrap();
        assert_eq!(bare.id, e.id);
        assert_eq!(bare.time, None);
        assert_eq!(bare.dataschema, None);
        assert_eq!(bare.dataversion, 1, "no version at all reads as version 1");
        assert_eq!(bare.data, b"null");
        assert_eq!(bare.datacontenttype, JSON_CONTENT_TYPE);

        // Without `dataversion`, the version is the `v<N>` of `dataschema`…
        let by_schema = without(&e, &[field::DATAVERSION]).unwrap();
        assert_eq!(by_schema.dataversion, 2);
        // …and without `dataschema`, `dataversion` alone says it.
        let by_version = without(&e, &[field::DATASCHEMA]).unwrap();
        assert_eq!(by_version.dataversion, 2);
        assert_eq!(by_version.dataschema, None);

        // A `dataschema` of another registry names no version: the first.
        let mut other = e.clone();
        other.dataschema = Some("https://registry.example.com/ids/42".into());
        assert_eq!(
            without(&other, &[field::DATAVERSION]).unwrap().dataversion,
            1
        );
    }

    #[test]
    fn ids_of_other_producers_are_kept_as_they_are() {
        let mut e = sample();
        e.id = "5b3f6c1e-7c8e-4b2a-9f3e-2a1d0c9b8a7f".into();
        let back = without(&e, &[]).unwrap();
        assert_eq!(back.id, e.id);
        assert_eq!(back.ulid(), None);
        assert!(sample().ulid().is_some());
    }

    #[test]
    fn malformed_attributes_are_typed_errors() {
        let e = sample();
        for (name, bad) in [
            (field::ID, &b""[..]),
            (field::SOURCE, b""),
            (field::TYPE, b""),
            (field::TIME, b"yesterday"),
            (field::DATAVERSION, b"two"),
            (field::DATAVERSION, b"0"),
            (field::SPECVERSION, b"0.3"),
            (field::SOURCE, b"\xff\xfe"),
        ] {
            let fields: Vec<_> = e
                .to_fields()
                .into_iter()
                .map(|(k, v)| if k == name { (k, bad.to_vec()) } else { (k, v) })
                .collect();
            let err =
                Envelope::from_fields("9-0", fields.iter().map(|(k, v)| (k.as_bytes(), &v[..])))
                    .unwrap_err();
            match err {
                EnvelopeError::Malformed { field, at, .. } => {
                    assert_eq!(field, name);
                    assert_eq!(at, "9-0");
                }
                other => panic!("expected Malformed for {name}, got {other:?}"),
            }
        }
    }

    #[test]
    fn owned_fields_read_like_borrowed_fields() {
        let e = sample();
        let fields = e.to_fields();
        let borrowed =
            Envelope::from_fields("1-0", fields.iter().map(|(k, v)| (k.as_bytes(), &v[..])))
                .unwrap();
        let owned = Envelope::from_owned_fields(
            "1-0",
            fields.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v)),
        )
        .unwrap();
        assert_eq!(owned, borrowed);
        assert_eq!(owned, e);
    }

    #[test]
    fn structured_mode_reads_a_minimal_event_and_refuses_binary_data() {
        let minimal = br#"{"specversion":"1.0","id":"a-1","source":"/py","type":"gate.opened","data":{"gate":"n"}}"#;
        let e = Envelope::from_json("c", minimal).unwrap();
        assert_eq!((e.id.as_str(), e.dataversion), ("a-1", 1));
        assert_eq!(e.data, br#"{"gate":"n"}"#);
        let with_version = br#"{"specversion":"1.0","id":"a-2","source":"/py","type":"gate.opened","dataversion":3}"#;
        let e = Envelope::from_json("c", with_version).unwrap();
        assert_eq!((e.dataversion, &e.data[..]), (3, &b"null"[..]));
        let binary = br#"{"specversion":"1.0","id":"a-3","source":"/py","type":"gate.opened","data_base64":"AAEC"}"#;
        assert!(matches!(
            Envelope::from_json("c", binary),
            Err(EnvelopeError::Malformed { field: "data", .. })
        ));
    }

    #[test]
    fn structured_mode_that_is_not_json_is_an_error() {
        assert!(matches!(
            Envelope::from_json("c", b"nope"),
            Err(EnvelopeError::NotJson { .. })
        ));
    }
}
