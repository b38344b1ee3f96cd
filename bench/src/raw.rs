//! The baselines: what a careful engineer writes by hand with plain redis-rs,
//! on the same events and the same wire format as tidings.

use std::sync::atomic::{AtomicBool, Ordering};

use redis::aio::MultiplexedConnection;
use redis::{RedisError, Value};

use crate::events::FileUploaded;

/// The `time` attribute of baseline entries: fixed, so that the baseline
/// does not even pay for formatting a clock.
const TIME: &str = "2026-11-24T10:00:00.123Z";
const DATASCHEMA: &str = "schemas/bench/file.uploaded/v3.json";

/// An error of a baseline loop.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `XADD <key> * <the CloudEvents attributes> data <json>` as a command.
fn xadd_cmd(key: &str, e: &FileUploaded) -> redis::Cmd {
    let data = serde_json::to_vec(e).unwrap_or_default();
    let mut id = [0u8; ulid::ULID_LEN];
    let id = ulid::Ulid::new().array_to_str(&mut id).to_owned();
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key)
        .arg("*")
        .arg("specversion")
        .arg("1.0")
        .arg("id")
        .arg(id)
        .arg("source")
        .arg("bench")
        .arg("type")
        .arg("file.uploaded")
        .arg("time")
        .arg(TIME)
        .arg("datacontenttype")
        .arg("application/json")
        .arg("dataschema")
        .arg(DATASCHEMA)
        .arg("dataversion")
        .arg(3)
        .arg("data")
        .arg(data);
    cmd
}

/// One awaited `XADD`.
pub async fn xadd(
    conn: &mut MultiplexedConnection,
    key: &str,
    e: &FileUploaded,
) -> Result<String, RedisError> {
    xadd_cmd(key, e).query_async(conn).await
}

/// One pipeline of `XADD`s.
pub async fn xadd_pipeline(
    conn: &mut MultiplexedConnection,
    key: &str,
    events: &[FileUploaded],
) -> Result<Vec<String>, RedisError> {
    let mut pipe = redis::Pipeline::with_capacity(events.len());
    for e in events {
        pipe.add_command(xadd_cmd(key, e));
    }
    pipe.query_async(conn).await
}

/// `XGROUP CREATE <key> <group> 0 MKSTREAM`.
pub async fn create_group(
    conn: &mut MultiplexedConnection,
    key: &str,
    group: &str,
) -> Result<(), RedisError> {
    let _: Value = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await?;
    Ok(())
}

/// Entries pending in the group (`XPENDING <key> <group>`, the summary form).
pub async fn pending(
    conn: &mut MultiplexedConnection,
    key: &str,
    group: &str,
) -> Result<i64, RedisError> {
    let v: Value = redis::cmd("XPENDING")
        .arg(key)
        .arg(group)
        .query_async(conn)
        .await?;
    Ok(match v {
        Value::Array(items) => match items.first() {
            Some(Value::Int(n)) => *n,
            _ => 0,
        },
        _ => 0,
    })
}

/// Reads `n` entries in the group and acknowledges each batch, one
/// `XREADGROUP COUNT 100` then one `XACK` at a time; every payload is decoded
/// into the event and given to `handle`. Returns how many were acknowledged.
pub async fn consume(
    conn: &mut MultiplexedConnection,
    key: &str,
    group: &str,
    n: usize,
    mut handle: impl FnMut(FileUploaded),
) -> Result<usize, BoxError> {
    let mut acked = 0;
    while acked < n {
        acked += read_and_ack(conn, key, group, &mut handle).await?;
    }
    Ok(acked)
}

/// As [`consume`], until `stop` is set.
pub async fn consume_until(
    conn: &mut MultiplexedConnection,
    key: &str,
    group: &str,
    stop: &AtomicBool,
    mut handle: impl FnMut(FileUploaded),
) -> Result<usize, BoxError> {
    let mut acked = 0;
    while !stop.load(Ordering::Relaxed) {
        acked += read_and_ack(conn, key, group, &mut handle).await?;
    }
    Ok(acked)
}

/// ```text
/// XREADGROUP GROUP <group> bench COUNT 100 BLOCK 100 STREAMS <key> >
/// XACK <key> <group> <id> …
/// ```
async fn read_and_ack(
    conn: &mut MultiplexedConnection,
    key: &str,
    group: &str,
    handle: &mut impl FnMut(FileUploaded),
) -> Result<usize, BoxError> {
    let reply: Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg("bench")
        .arg("COUNT")
        .arg(100)
        .arg("BLOCK")
        .arg(100)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(conn)
        .await?;
    let mut ids: Vec<Vec<u8>> = Vec::with_capacity(100);
    for (id, data) in entries(reply) {
        let event: FileUploaded = serde_json::from_slice(&data)?;
        handle(event);
        ids.push(id);
    }
    if ids.is_empty() {
        return Ok(0);
    }
    let _: i64 = redis::cmd("XACK")
        .arg(key)
        .arg(group)
        .arg(&ids)
        .query_async(conn)
        .await?;
    Ok(ids.len())
}

/// `(entry id, data)` of each entry of an `XREADGROUP` reply (RESP2).
fn entries(reply: Value) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let Value::Array(streams) = reply else {
        return out;
    };
    for stream in streams {
        let Value::Array(mut kv) = stream else {
            continue;
        };
        let Some(Value::Array(list)) = kv.pop() else {
            continue;
        };
        for entry in list {
            let Value::Array(mut pair) = entry else {
                continue;
            };
            let (Some(Value::Array(fields)), Some(Value::BulkString(id))) =
                (pair.pop(), pair.pop())
            else {
                continue;
            };
            let mut it = fields.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                if let (Value::BulkString(k), Value::BulkString(v)) = (k, v) {
                    if k == b"data" {
                        out.push((id, v));
                        break;
                    }
                }
            }
        }
    }
    out
}

/// Moves every delayed event due by now from the sorted set `delayed` into
/// the stream `key` by hand: `ZRANGEBYSCORE … LIMIT 0 1000`, then one
/// `MULTI` with an `XADD` per member (its JSON array of fields) and a
/// `ZREM` of them, until `n` are moved or none is due. Returns how many.
pub async fn move_due(
    conn: &mut MultiplexedConnection,
    delayed: &str,
    key: &str,
    n: usize,
) -> Result<usize, BoxError> {
    let mut moved = 0;
    while moved < n {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64;
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(delayed)
            .arg("-inf")
            .arg(now)
            .arg("LIMIT")
            .arg(0)
            .arg(1000)
            .query_async(conn)
            .await?;
        if members.is_empty() {
            break;
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for m in &members {
            let fields: Vec<String> = serde_json::from_str(m)?;
            let mut cmd = redis::cmd("XADD");
            cmd.arg(key).arg("*").arg(fields);
            pipe.add_command(cmd).ignore();
        }
        pipe.cmd("ZREM").arg(delayed).arg(&members).ignore();
        let _: () = pipe.query_async(conn).await?;
        moved += members.len();
    }
    Ok(moved)
}
