//! Parsing of `XREADGROUP` and `XAUTOCLAIM` replies (RESP2 and RESP3) into
//! entries, moving the payload bytes out of the reply instead of copying them.

use std::sync::Arc;

use redis::streams::StreamPendingCountReply;
use redis::{FromRedisValue, Value};

use super::value::{items, protocol, text};
use crate::envelope::{Envelope, EnvelopeError};
use crate::transport::{Entry, RawEntry, TransportError};

/// `[id, [field, value, …]]` to an entry; `Err(id)` for an entry that was
/// deleted while pending (Redis before 7.0 returns it with nil fields).
fn entry(command: &'static str, v: Value) -> Result<Result<Entry, String>, TransportError> {
    let mut pair = items(command, v)?.into_iter();
    let (Some(id), Some(fields)) = (pair.next(), pair.next()) else {
        return Err(protocol(command, "entry is not [id, fields]"));
    };
    let id = text(command, id)?;
    let fields = match fields {
        Value::Nil => return Ok(Err(id)),
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
    Ok(Ok(Entry::new(id, envelope.map(Arc::new))))
}

/// `[id, [field, value, …]]` to raw fields, as `XRANGE` returns them.
pub(super) fn raw_entries(v: Value) -> Result<Vec<RawEntry>, TransportError> {
    const CMD: &str = "XRANGE";
    let mut out = Vec::new();
    for e in items(CMD, v)? {
        let mut pair = items(CMD, e)?.into_iter();
        let (Some(id), Some(fields)) = (pair.next(), pair.next()) else {
            return Err(protocol(CMD, "entry is not [id, fields]"));
        };
        let id = text(CMD, id)?;
        let fields: Vec<Value> = match fields {
            Value::Nil => Vec::new(),
            Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            other => items(CMD, other)?,
        };
        let mut pairs = Vec::with_capacity(fields.len() / 2);
        let mut it = fields.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            if let (Value::BulkString(k), Value::BulkString(v)) = (k, v) {
                pairs.push((String::from_utf8_lossy(&k).into_owned(), v));
            }
        }
        out.push(RawEntry::new(id, pairs));
    }
    Ok(out)
}

/// `XREAD` reply of one stream: nil when the block ran out, else
/// `[[key, entries]]` (RESP2) or `{key: entries}` (RESP3).
pub(super) fn read_raw(v: Value) -> Result<Vec<RawEntry>, TransportError> {
    const CMD: &str = "XREAD";
    let entries = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(m) => m.into_iter().next().map(|(_, entries)| entries),
        other => {
            let mut streams = items(CMD, other)?.into_iter();
            match streams.next() {
                None => None,
                Some(stream) => items(CMD, stream)?.into_iter().nth(1),
            }
        }
    };
    entries.map_or(Ok(Vec::new()), raw_entries)
}

/// Extended `XPENDING` reply: `[[id, consumer, idle-ms, deliveries], …]`,
/// read through redis-rs's typed reply, as `(id, deliveries)`.
pub(super) fn pending_counts(v: Value) -> Result<Vec<(String, u32)>, TransportError> {
    let reply = StreamPendingCountReply::from_redis_value(v)
        .map_err(|e| protocol("XPENDING", e.to_string()))?;
    Ok(reply
        .ids
        .into_iter()
        .map(|p| (p.id, u32::try_from(p.times_delivered).unwrap_or(u32::MAX)))
        .collect())
}

/// `XPENDING <key> <group> - + <n>` reply: every pending entry with its
/// consumer, idle time and delivery count.
pub(super) fn pending_entries(v: Value) -> Result<Vec<crate::stats::PendingEntry>, TransportError> {
    let reply = StreamPendingCountReply::from_redis_value(v)
        .map_err(|e| protocol("XPENDING", e.to_string()))?;
    Ok(reply
        .ids
        .into_iter()
        .map(|p| {
            crate::stats::PendingEntry::new(
                p.id,
                p.consumer,
                u64::try_from(p.last_delivered_ms).unwrap_or(u64::MAX),
                u32::try_from(p.times_delivered).unwrap_or(u32::MAX),
            )
        })
        .collect())
}

/// The trim script's reply: `{trimmed, min id, groups…}`.
pub(super) fn trim_report(v: Vec<Value>) -> Result<crate::stats::TrimReport, TransportError> {
    const CMD: &str = "EVAL (trim)";
    let mut it = v.into_iter();
    let trimmed = match it.next() {
        Some(Value::Int(n)) => u64::try_from(n).unwrap_or(0),
        other => return Err(protocol(CMD, format!("expected a count, got {other:?}"))),
    };
    let min_id = match it.next() {
        Some(v) => Some(text(CMD, v)?).filter(|s| !s.is_empty()),
        None => None,
    };
    let held_back_by = it.map(|v| text(CMD, v)).collect::<Result<_, _>>()?;
    Ok(crate::stats::TrimReport {
        trimmed,
        min_id,
        held_back_by,
    })
}

fn envelope_from_owned(
    id: &str,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<Envelope, EnvelopeError> {
    // Every value is moved, not copied: `data` and the text attributes are
    // the reply's own buffers.
    Envelope::from_owned_fields(id, pairs)
}

/// Entries, and the ids of entries deleted while pending.
fn entries(command: &'static str, v: Value) -> Result<(Vec<Entry>, Vec<String>), TransportError> {
    let mut live = Vec::new();
    let mut deleted = Vec::new();
    for e in items(command, v)? {
        match entry(command, e)? {
            Ok(e) => live.push(e),
            Err(id) => deleted.push(id),
        }
    }
    Ok((live, deleted))
}

/// `XREADGROUP` reply: nil on timeout, else one `[key, entries]` per stream
/// (a map in RESP3).
pub(super) fn read_group(v: Value) -> Result<Vec<Entry>, TransportError> {
    // `>` only returns entries that exist: nothing is deleted here.
    Ok(read_history(v)?.0)
}

/// `XREADGROUP` reply of a read of the consumer's own history (an id
/// instead of `>`): the entries, and the ids of those deleted from the
/// stream while pending (nil fields), in stream order.
pub(super) fn read_history(v: Value) -> Result<(Vec<Entry>, Vec<String>), TransportError> {
    const CMD: &str = "XREADGROUP";
    let streams: Vec<Value> = match v {
        Value::Nil => return Ok((Vec::new(), Vec::new())),
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
    let mut out = (Vec::new(), Vec::new());
    for s in streams {
        let (live, deleted) = entries(CMD, s)?;
        out.0.extend(live);
        out.1.extend(deleted);
    }
    Ok(out)
}

/// `XREAD` reply: nil on timeout, else one `[key, entries]` per stream
/// that has entries (a map in RESP3), with each stream's key.
pub(super) fn read_streams(v: Value) -> Result<Vec<(String, Vec<Entry>)>, TransportError> {
    Ok(streams_of("XREAD", v)?
        .into_iter()
        .map(|(key, entries, _)| (key, entries))
        .collect())
}

/// [`read_streams`], with the ids of the entries deleted from each stream
/// while pending (nil fields), which a read of a consumer's own pending
/// entries over several streams names.
pub(super) fn read_streams_history(
    v: Value,
) -> Result<Vec<super::resp::StreamRead>, TransportError> {
    streams_of("XREADGROUP", v)
}

/// The streams of an `XREAD` or `XREADGROUP` reply over several streams.
fn streams_of(
    command: &'static str,
    v: Value,
) -> Result<Vec<super::resp::StreamRead>, TransportError> {
    let streams: Vec<(Value, Value)> = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(m) => m,
        other => items(command, other)?
            .into_iter()
            .map(|s| {
                let mut it = items(command, s)?.into_iter();
                match (it.next(), it.next()) {
                    (Some(key), Some(list)) => Ok((key, list)),
                    _ => Err(protocol(command, "stream is not [key, entries]")),
                }
            })
            .collect::<Result<_, _>>()?,
    };
    streams
        .into_iter()
        .map(|(key, list)| {
            let (live, deleted) = entries(command, list)?;
            Ok((text(command, key)?, live, deleted))
        })
        .collect()
}

/// `XAUTOCLAIM` reply: `[next-start, entries, deleted-ids]` (the third
/// element since Redis 7.0; before, deleted entries come with nil fields).
/// Returns the entries and every deleted id.
pub(super) fn auto_claim(v: Value) -> Result<(Vec<Entry>, Vec<String>, String), TransportError> {
    const CMD: &str = "XAUTOCLAIM";
    let mut it = items(CMD, v)?.into_iter();
    let (Some(next), Some(list)) = (it.next(), it.next()) else {
        return Err(protocol(CMD, "reply is not [next, entries, deleted]"));
    };
    let next = text(CMD, next)?;
    let (live, mut deleted) = entries(CMD, list)?;
    if let Some(more) = it.next() {
        for id in items(CMD, more)? {
            deleted.push(text(CMD, id)?);
        }
    }
    Ok((live, deleted, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::BulkString(x.as_bytes().to_vec())
    }

    #[test]
    fn auto_claim_returns_where_the_next_claim_starts() {
        let reply = Value::Array(vec![
            s("1700000000000-3"),
            Value::Array(vec![]),
            Value::Array(vec![s("1-0")]),
        ]);
        let (live, deleted, next) = auto_claim(reply).unwrap();
        assert!(live.is_empty());
        assert_eq!(deleted, ["1-0"]);
        assert_eq!(next, "1700000000000-3");
        assert!(auto_claim(Value::Array(vec![s("0-0")])).is_err());
    }

    #[test]
    fn pending_counts_are_read_and_a_short_entry_is_a_protocol_error() {
        let reply = Value::Array(vec![
            Value::Array(vec![s("1-0"), s("w1"), Value::Int(5), Value::Int(3)]),
            Value::Array(vec![s("2-0"), s("w1"), Value::Int(7), Value::Int(1)]),
        ]);
        assert_eq!(
            pending_counts(reply).unwrap(),
            [("1-0".to_owned(), 3), ("2-0".to_owned(), 1)]
        );
        let short = Value::Array(vec![Value::Array(vec![s("1-0"), s("w1")])]);
        assert!(matches!(
            pending_counts(short),
            Err(TransportError::Protocol {
                command: "XPENDING",
                ..
            })
        ));
    }
}
