//! `XINFO STREAM`, `XINFO GROUPS` and `XINFO CONSUMERS` replies into
//! [`StreamStats`]. Groups and consumers go through redis-rs's typed
//! replies; `XINFO STREAM` is read here, as redis-rs's reply leaves out
//! `entries-added`.

use redis::streams::{StreamInfoConsumersReply, StreamInfoGroupsReply};
use redis::{FromRedisValue, Value};

use super::value::{protocol, text};
use crate::stats::{ConsumerStats, GroupStats, StreamStats};
use crate::transport::TransportError;

/// A reply of named fields: a RESP3 map, or a RESP2 array `name, value, …`.
fn fields(command: &'static str, v: Value) -> Result<Vec<(String, Value)>, TransportError> {
    match v {
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| Ok((text(command, k)?, v)))
            .collect(),
        Value::Array(a) => {
            let mut out = Vec::with_capacity(a.len() / 2);
            let mut it = a.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((text(command, k)?, v));
            }
            Ok(out)
        }
        other => Err(protocol(
            command,
            format!("expected named fields, got {other:?}"),
        )),
    }
}

/// The id of `first-entry` / `last-entry`: `[id, [field, value, …]]`, or nil.
fn entry_id(command: &'static str, v: Value) -> Result<Option<String>, TransportError> {
    match v {
        Value::Nil => Ok(None),
        Value::Array(pair) => match pair.into_iter().next() {
            Some(id) => text(command, id).map(Some),
            None => Err(protocol(command, "entry is not [id, fields]")),
        },
        other => Err(protocol(
            command,
            format!("expected an entry, got {other:?}"),
        )),
    }
}

/// Fills `stats` from `XINFO STREAM <key>`.
pub(super) fn stream(stats: &mut StreamStats, v: Value) -> Result<(), TransportError> {
    const CMD: &str = "XINFO STREAM";
    for (name, value) in fields(CMD, v)? {
        match name.as_str() {
            "length" => stats.length = typed::<Option<u64>>(CMD, value)?.unwrap_or(0),
            "first-entry" => stats.first_entry_id = entry_id(CMD, value)?,
            "last-entry" => stats.last_entry_id = entry_id(CMD, value)?,
            "last-generated-id" => stats.last_generated_id = Some(text(CMD, value)?),
            // Nil (a count Redis cannot tell) is `None`.
            "entries-added" => stats.entries_added = typed(CMD, value)?,
            _ => {}
        }
    }
    Ok(())
}

/// A typed reply of redis-rs, its parsing error as a protocol error.
fn typed<T: FromRedisValue>(command: &'static str, v: Value) -> Result<T, TransportError> {
    T::from_redis_value(v).map_err(|e| protocol(command, e.to_string()))
}

/// Redis counts in `usize`, stats in `u64`.
fn wide(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The groups of `XINFO GROUPS <key>`, without their consumers.
pub(super) fn groups(v: Value) -> Result<Vec<GroupStats>, TransportError> {
    const CMD: &str = "XINFO GROUPS";
    let reply: StreamInfoGroupsReply = typed(CMD, v)?;
    reply
        .groups
        .into_iter()
        .map(|g| {
            if g.name.is_empty() {
                return Err(protocol(CMD, "a group has no `name`"));
            }
            let mut group = GroupStats::new(g.name);
            group.pending = wide(g.pending);
            group.last_delivered_id = g.last_delivered_id;
            group.entries_read = g.entries_read.map(wide);
            group.lag = g.lag.map(wide);
            Ok(group)
        })
        .collect()
}

/// The consumers of `XINFO CONSUMERS <key> <group>`.
pub(super) fn consumers(v: Value) -> Result<Vec<ConsumerStats>, TransportError> {
    let reply: StreamInfoConsumersReply = typed("XINFO CONSUMERS", v)?;
    Ok(reply
        .consumers
        .into_iter()
        .map(|c| ConsumerStats::new(c.name, wide(c.pending), wide(c.idle)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::BulkString(x.as_bytes().to_vec())
    }

    #[test]
    fn nil_lag_is_reported_as_unknown_not_zero() {
        let reply = Value::Array(vec![Value::Array(vec![
            s("name"),
            s("g"),
            s("consumers"),
            Value::Int(1),
            s("pending"),
            Value::Int(2),
            s("last-delivered-id"),
            s("5-0"),
            s("entries-read"),
            Value::Nil,
            s("lag"),
            Value::Nil,
        ])]);
        let groups = groups(reply).unwrap();
        assert_eq!(groups[0].name, "g");
        assert_eq!(groups[0].pending, 2);
        assert_eq!(groups[0].lag, None);
        assert_eq!(groups[0].entries_read, None);
    }

    #[test]
    fn resp3_map_of_stream_info_is_read() {
        let reply = Value::Map(vec![
            (s("length"), Value::Int(3)),
            (
                s("first-entry"),
                Value::Array(vec![s("1-0"), Value::Array(vec![])]),
            ),
            (s("last-entry"), Value::Nil),
            (s("entries-added"), Value::Int(4)),
        ]);
        let mut stats = StreamStats::new("k", "k:dlq");
        stream(&mut stats, reply).unwrap();
        assert_eq!(stats.length, 3);
        assert_eq!(stats.first_entry_id.as_deref(), Some("1-0"));
        assert_eq!(stats.last_entry_id, None);
        assert_eq!(stats.entries_added, Some(4));
    }
}
