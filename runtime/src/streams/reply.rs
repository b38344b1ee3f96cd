//! Parsing of `XREADGROUP` and `XAUTOCLAIM` replies (RESP2 and RESP3) into
//! entries, moving the payload bytes out of the reply instead of copying them.

use std::sync::Arc;

use redis::Value;

use crate::envelope::{Envelope, EnvelopeError};
use crate::transport::{Entry, TransportError};

fn protocol(command: &'static str, reason: impl Into<String>) -> TransportError {
    TransportError::Protocol {
        command,
        reason: reason.into(),
    }
}

fn text(command: &'static str, v: Value) -> Result<String, TransportError> {
    match v {
        Value::BulkString(b) => {
            String::from_utf8(b).map_err(|_| protocol(command, "entry id is not UTF-8"))
        }
        Value::SimpleString(s) => Ok(s),
        other => Err(protocol(
            command,
            format!("expected a string, got {other:?}"),
        )),
    }
}

fn items(command: &'static str, v: Value) -> Result<Vec<Value>, TransportError> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        other => Err(protocol(
            command,
            format!("expected an array, got {other:?}"),
        )),
    }
}

/// `[id, [field, value, …]]` to an entry. A deleted entry still pending in
/// the group comes back with nil fields: it becomes an envelope error, so it
/// is reported and never acknowledged in silence.
fn entry(command: &'static str, v: Value) -> Result<Entry, TransportError> {
    let mut pair = items(command, v)?.into_iter();
    let (Some(id), Some(fields)) = (pair.next(), pair.next()) else {
        return Err(protocol(command, "entry is not [id, fields]"));
    };
    let id = text(command, id)?;
    let fields = match fields {
        Value::Nil => Vec::new(),
        Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => items(command, other)?,
    };
    let mut pairs = Vec::with_capacity(fields.len() / 2);
    let mut it = fields.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if let (Value::BulkString(k), Value::BulkString(v)) = (k, v) {
            pairs.push((k, v));
        }
    }
    let envelope = envelope_from_owned(&id, pairs);
    Ok(Entry::new(id, envelope.map(Arc::new)))
}

fn envelope_from_owned(
    id: &str,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<Envelope, EnvelopeError> {
    // Every value is moved, not copied: `data` and the text attributes are
    // the reply's own buffers.
    Envelope::from_owned_fields(id, pairs)
}

fn entries(command: &'static str, v: Value) -> Result<Vec<Entry>, TransportError> {
    items(command, v)?
        .into_iter()
        .map(|e| entry(command, e))
        .collect()
}

/// `XREADGROUP` reply: nil on timeout, else one `[key, entries]` per stream
/// (a map in RESP3).
pub(super) fn read_group(v: Value) -> Result<Vec<Entry>, TransportError> {
    const CMD: &str = "XREADGROUP";
    let streams: Vec<Value> = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(m) => m.into_iter().map(|(_, entries)| entries).collect(),
        other => items(CMD, other)?
            .into_iter()
            .map(|s| {
                let mut it = items(CMD, s)?.into_iter();
                it.nth(1)
                    .ok_or_else(|| protocol(CMD, "stream is not [key, entries]"))
            })
            .collect::<Result<_, _>>()?,
    };
    let mut out = Vec::new();
    for s in streams {
        out.extend(entries(CMD, s)?);
    }
    Ok(out)
}

/// `XAUTOCLAIM` reply: `[next-start, entries, deleted-ids]`.
pub(super) fn auto_claim(v: Value) -> Result<Vec<Entry>, TransportError> {
    const CMD: &str = "XAUTOCLAIM";
    let mut it = items(CMD, v)?.into_iter();
    match it.nth(1) {
        Some(list) => entries(CMD, list),
        None => Err(protocol(CMD, "reply is not [next, entries, deleted]")),
    }
}
