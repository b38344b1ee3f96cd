//! Redis Streams transport: durable, at-least-once delivery through consumer groups.

mod endpoint;
mod hub;
mod info;
mod reply;
mod resp;
mod shared;
mod slots;
mod value;

use std::sync::Arc;
use std::time::Duration;

pub use endpoint::{acl_rule, acl_rule_with_patterns, redact, Endpoint, TlsFiles, ACL_COMMANDS};
use redis::aio::ConnectionManagerConfig;
use redis::{Client, Cmd, Pipeline, Value};
pub use shared::SharedConnection;

use crate::envelope::{field, SPECVERSION};
use crate::stats::StreamStats;
use crate::transport::{
    dead_letter_index_key, DeadLettered, DueDelivery, Entry, Lease, Outgoing, RawEntry,
    ReadRequest, StartFrom, StreamTransport, TransportError,
};

/// Redis Streams: `XADD` to publish, `XREADGROUP`/`XACK`/`XAUTOCLAIM` to consume.
///
/// Publishing over TCP (or TLS) goes through a connection the transport keeps
/// for `XADD`s: the commands are encoded by hand and written from the
/// publishing task, and the reply is read there too, which spares the hop
/// through redis-rs's connection task on every awaited publish and costs a
/// fraction of a redis-rs pipeline per event of a batch (a batch bound for
/// one stream is streamed out inside `MULTI`/`EXEC` as its payloads are
/// serialized, see [`Bus::publish_batch`](crate::Bus::publish_batch)). Whoever finds that
/// connection busy (another publish is waiting for its reply) goes through
/// one shared [`ConnectionManager`](redis::aio::ConnectionManager) instead: it multiplexes, so concurrent
/// `publish` calls from many tasks are written to the socket back to back
/// and answered in order (pipelined without waiting for one another). Over
/// TLS the same holds, with the CA and client certificate of redis-rs's
/// connections; Unix sockets, and TLS with `insecure`, always take the
/// shared connection. Each reading
/// consumer gets connections of its own ([`StreamsReader`]), because a
/// blocking `XREADGROUP` holds its connection until it returns.
#[derive(Clone)]
pub struct StreamsTransport {
    endpoint: Endpoint,
    client: Client,
    conn: SharedConnection,
    own: Option<Arc<tokio::sync::Mutex<resp::RespConnection>>>,
    /// On a cluster, the hand-written publishing connection of each
    /// master, for awaited publishes of one event and batches to one
    /// stream.
    slots: Option<Arc<slots::SlotWriters>>,
    durability: Durability,
    response_timeout: Option<Duration>,
    connect_timeout: Duration,
    /// The shared blocking reads of workers over many streams, one per
    /// (group, consumer).
    hubs: Arc<hub::Hubs>,
}

impl std::fmt::Debug for StreamsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsTransport")
            .field("server", &self.endpoint.describe())
            .finish_non_exhaustive()
    }
}

impl StreamsTransport {
    /// Runs a command on the shared connection whose reply says nothing
    /// more than that it succeeded.
    async fn run(&self, cmd: &mut Cmd) -> Result<(), TransportError> {
        let mut conn = self.conn.clone();
        let _: Value = cmd.query_async(&mut conn).await?;
        Ok(())
    }

    /// Connects the shared publishing connection.
    ///
    /// One attempt first, held to `connect_timeout`, so that a closed port,
    /// a wrong password or a frozen server fails at once with its own
    /// reason; redis-rs's manager, which retries with backoff, only takes
    /// over a server that answered. Behind Sentinel, the Sentinels are asked
    /// for the master first, within the same time.
    pub async fn connect(
        endpoint: Endpoint,
        response_timeout: Option<Duration>,
        connect_timeout: Duration,
    ) -> Result<Self, TransportError> {
        if endpoint.cluster_client().is_some() {
            return Self::connect_cluster(endpoint, response_timeout, connect_timeout).await;
        }
        let client = match tokio::time::timeout(connect_timeout, endpoint.first_client()).await {
            Ok(found) => found?,
            Err(_) => {
                return Err(TransportError::Connect {
                    address: endpoint.describe(),
                    user: endpoint.user(),
                    source: redis::RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no master named within {connect_timeout:?}"),
                    )),
                })
            }
        };
        let probe = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(connect_timeout));
        let first = tokio::time::timeout(
            connect_timeout,
            client.get_multiplexed_async_connection_with_config(&probe),
        )
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {connect_timeout:?}"),
            )))
        });
        if let Err(e) = first {
            let info = client.get_connection_info();
            let address = match endpoint.follows_failover() {
                true => format!("{} ({})", info.addr(), endpoint.describe()),
                false => info.addr().to_string(),
            };
            return Err(TransportError::Connect {
                address,
                user: info.redis_settings().username().map(str::to_owned),
                source: e,
            });
        }
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(response_timeout)
            .set_connection_timeout(Some(connect_timeout));
        let conn = SharedConnection::connect(endpoint.clone(), client.clone(), config).await?;
        let own = resp::RespConnection::for_info(client.get_connection_info(), &endpoint)
            .map(|c| Arc::new(tokio::sync::Mutex::new(c)));
        Ok(StreamsTransport {
            endpoint,
            client,
            conn,
            own,
            slots: None,
            durability: Durability::Acknowledged,
            response_timeout,
            connect_timeout,
            hubs: Arc::default(),
        })
    }

    /// On a Redis Cluster: redis-rs's cluster connection is the shared
    /// one; the hand-written connections are the readers', each made to
    /// the master of its stream's slot, and one per master for awaited
    /// publishes of one event and batches to one stream (a batch of
    /// several streams may span slots: redis-rs sends it).
    async fn connect_cluster(
        endpoint: Endpoint,
        response_timeout: Option<Duration>,
        connect_timeout: Duration,
    ) -> Result<Self, TransportError> {
        let conn = cluster_connection(&endpoint, response_timeout, connect_timeout).await?;
        let client = endpoint.first_client().await?;
        let conn = SharedConnection::cluster(endpoint.clone(), conn);
        let slots = slots::SlotWriters::new(
            conn.clone(),
            client.get_connection_info().clone(),
            endpoint.clone(),
        );
        Ok(StreamsTransport {
            conn,
            endpoint,
            client,
            own: None,
            slots: slots.map(Arc::new),
            durability: Durability::Acknowledged,
            response_timeout,
            connect_timeout,
            hubs: Arc::default(),
        })
    }

    /// `XREAD` on a cluster: one per hash slot of the streams, all sent
    /// together on the reader's cluster connection (those to one node wait
    /// one after another there, so a read of streams in several slots of
    /// one node may wait up to `block` once per slot).
    async fn read_streams_per_slot(
        &self,
        reader: &mut StreamsReader,
        streams: &[(&str, &str)],
        count: usize,
        block: Duration,
    ) -> Result<Vec<(usize, Entry)>, TransportError> {
        use redis::cluster_routing::Slot;
        let mut groups: Vec<(Slot, Vec<usize>)> = Vec::new();
        for (i, (key, _)) in streams.iter().enumerate() {
            let slot = Slot::for_key(key);
            match groups.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, at)) => at.push(i),
                None => groups.push((slot, vec![i])),
            }
        }
        let ms = u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1);
        let replies = futures::future::join_all(groups.iter().map(|(_, at)| {
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT")
                .arg(count.max(1))
                .arg("BLOCK")
                .arg(ms)
                .arg("STREAMS");
            for i in at {
                cmd.arg(streams[*i].0);
            }
            for i in at {
                cmd.arg(streams[*i].1);
            }
            let mut conn = reader.managed.clone();
            async move { cmd.query_async::<Value>(&mut conn).await }
        }))
        .await;
        let mut out = Vec::new();
        for reply in replies {
            for (key, entries) in reply::read_streams(reply?)? {
                let Some(i) = streams.iter().position(|(k, _)| *k == key) else {
                    return Err(value::protocol(
                        "XREAD",
                        format!("the reply names the stream `{key}`, which was not read"),
                    ));
                };
                out.extend(entries.into_iter().map(|e| (i, e)));
            }
        }
        Ok(out)
    }

    /// Publishes with `durability`: with [`Durability::Replicated`], every
    /// append is followed by `WAIT` on the same connection, and the
    /// hand-written publishing connection is not used.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        if let Durability::Replicated { .. } = durability {
            self.own = None;
            self.slots = None;
        }
        self.durability = durability;
        self
    }

    /// The shared publishing connection.
    pub fn connection(&self) -> &SharedConnection {
        &self.conn
    }

    /// The client of the server the transport first connected to.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Where the transport finds Redis.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A batch to one stream, streamed out on the transport's own
    /// connection (on a cluster, that to the master of the stream's slot)
    /// as its payloads are serialized, inside `MULTI`/`EXEC` (see
    /// [`resp::RespConnection::append_streamed`]): the entry ids, or the
    /// event whose payload could not be serialized, with nothing appended.
    ///
    /// `None`, with nothing done, when the server is not reached over TCP
    /// or TLS, or, unless `wait`, when the connection is busy or the slot's
    /// publishes are left to redis-rs for now (see [`slots`]). With `wait`,
    /// a busy connection is waited for, and a batch whose slot is left to
    /// redis-rs goes through it here, every payload serialized first.
    pub(crate) async fn append_streamed(
        &self,
        key: &str,
        events: &[Outgoing<'_>],
        mut payload: impl FnMut(usize, &mut Vec<u8>) -> Result<(), serde_json::Error>,
        wait: bool,
    ) -> Option<Result<Result<Vec<String>, resp::Unwritable>, TransportError>> {
        let result = match (&self.own, &self.slots) {
            (Some(own), _) => {
                let mut conn = match own.try_lock() {
                    Ok(conn) => conn,
                    Err(_) if wait => own.lock().await,
                    Err(_) => return None,
                };
                let sent = conn.append_streamed(key, events, payload);
                within(self.response_timeout, "EXEC", sent).await
            }
            // Boxed, as in `append`: a cluster's path, and the fallback
            // below, would make every batch's future as large as theirs.
            (None, Some(writers)) => {
                let sent = Box::pin(writers.append_streamed(
                    key,
                    events,
                    &mut payload,
                    wait,
                    self.response_timeout,
                ))
                .await;
                match sent {
                    slots::Sent::Done(result) => result,
                    // Left to redis-rs: by the other path, unless the
                    // caller waits for this one.
                    slots::Sent::NotSent if !wait => return None,
                    slots::Sent::NotSent => {
                        return Some(Box::pin(self.append_serialized(key, events, payload)).await)
                    }
                }
            }
            (None, None) => return None,
        };
        Some(result.and_then(|r| match r {
            Ok(replies) => replies.into_iter().collect::<Result<Vec<_>, _>>().map(Ok),
            Err(unwritable) => Ok(Err(unwritable)),
        }))
    }

    /// The batch of [`StreamsTransport::append_streamed`] with every
    /// payload serialized first, then appended as any batch is.
    async fn append_serialized(
        &self,
        key: &str,
        events: &[Outgoing<'_>],
        mut payload: impl FnMut(usize, &mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) -> Result<Result<Vec<String>, resp::Unwritable>, TransportError> {
        let mut data = Vec::with_capacity(events.len());
        for i in 0..events.len() {
            let mut buf = Vec::new();
            if let Err(e) = payload(i, &mut buf) {
                return Ok(Err((i, e)));
            }
            data.push(buf);
        }
        let batch: Vec<(&str, Outgoing<'_>)> = events
            .iter()
            .zip(&data)
            .map(|(o, data)| (key, Outgoing { data, ..*o }))
            .collect();
        self.append(&batch).await.map(Ok)
    }
}

/// `sent`, or an error naming `command` once `limit` has passed.
///
/// Not an `async fn`: one would hold `sent` beside the timeout it is moved
/// into, twice its size in the future of every publish.
fn within<T, F>(
    limit: Option<Duration>,
    command: &'static str,
    sent: F,
) -> impl std::future::Future<Output = Result<T, TransportError>>
where
    F: std::future::Future<Output = Result<T, TransportError>>,
{
    use futures::future::{Either, FutureExt};
    match limit {
        None => Either::Left(sent),
        Some(limit) => Either::Right(tokio::time::timeout(limit, sent).map(move |r| {
            r.unwrap_or_else(|_| Err(timed_out(format!("no reply to {command} within {limit:?}"))))
        })),
    }
}

impl StreamsTransport {
    /// Fills in how often each entry was delivered, which neither
    /// `XAUTOCLAIM` nor a history read says and the retry decision needs.
    /// Only this consumer's entries in the range are listed: at most the
    /// given ones and those this worker holds.
    async fn delivery_counts(
        &self,
        reader: &mut StreamsReader,
        r: &ReadRequest<'_>,
        entries: &mut [Entry],
    ) -> Result<(), TransportError> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let value: Value = redis::cmd("XPENDING")
            .arg(r.key)
            .arg(r.group)
            .arg(&first.id)
            .arg(&last.id)
            .arg(entries.len() + 1024)
            .arg(r.consumer)
            .query_async(&mut reader.managed)
            .await?;
        let counts: std::collections::HashMap<String, u32> =
            reply::pending_counts(value)?.into_iter().collect();
        for e in entries.iter_mut() {
            if let Some(n) = counts.get(&e.id) {
                e.deliveries = (*n).max(1);
            }
        }
        Ok(())
    }
}

/// The trim of [`StreamTransport::trim`]: KEYS[1] the stream; ARGV the
/// oldest id to keep by age (`''` for none), the most entries to keep
/// (`''`), `~` or `=`, and `1` for a dry run. Returns `{trimmed, min id,
/// groups that held it back…}`. Ids are compared as numbers, built as text
/// (a sequence past 2^53 moves to the next millisecond).
/// Moves the delayed events due by ARGV[1] (ms) from the sorted set
/// KEYS[1] into the stream KEYS[2], at most ARGV[2] of them, earliest
/// first: each member is a JSON array of the entry's fields and values. A
/// member that is not one is removed and counted, so that it cannot stop
/// the ones behind it. Returns {moved, malformed, score of the next or nil}.
const DELIVER_DUE_SCRIPT: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local moved, malformed = 0, 0
for _, member in ipairs(due) do
  local ok, fields = pcall(cjson.decode, member)
  local valid = ok and type(fields) == 'table' and #fields >= 2 and #fields % 2 == 0
  if valid then
    for _, v in ipairs(fields) do
      if type(v) ~= 'string' then valid = false end
    end
  end
  if valid then
    redis.call('XADD', KEYS[2], '*', unpack(fields))
    moved = moved + 1
  else
    malformed = malformed + 1
  end
  redis.call('ZREM', KEYS[1], member)
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {moved, malformed, next[2] or false}
"#;

/// [`DELIVER_DUE_SCRIPT`] over the pairs of keys `KEYS[2i-1]` (a sorted
/// set) and `KEYS[2i]` (its stream), moving at most ARGV[2] events in all.
/// Returns {moved, malformed, the earliest score left or nil}.
const DELIVER_DUE_MANY_SCRIPT: &str = r#"
local left = tonumber(ARGV[2])
local moved, malformed, earliest = 0, 0, nil
for i = 1, #KEYS, 2 do
  if left > 0 then
    local due = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', ARGV[1], 'LIMIT', 0, left)
    for _, member in ipairs(due) do
      local ok, fields = pcall(cjson.decode, member)
      local valid = ok and type(fields) == 'table' and #fields >= 2 and #fields % 2 == 0
      if valid then
        for _, v in ipairs(fields) do
          if type(v) ~= 'string' then valid = false end
        end
      end
      if valid then
        redis.call('XADD', KEYS[i + 1], '*', unpack(fields))
        moved = moved + 1
      else
        malformed = malformed + 1
      end
      redis.call('ZREM', KEYS[i], member)
      left = left - 1
    end
  end
  local next = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if next[2] and (earliest == nil or tonumber(next[2]) < tonumber(earliest)) then
    earliest = next[2]
  end
end
return {moved, malformed, earliest or false}
"#;

const TRIM_SCRIPT: &str = r#"-- KEYS[1]: the stream. ARGV[1]: oldest id to keep by age ('' for none);
-- ARGV[2]: most entries to keep ('' for none); ARGV[3]: '~' or '=';
-- ARGV[4]: '1' for a dry run. Returns {trimmed, min id applied, groups that held it back…}.
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if ms == nil then return tonumber(id) or 0, 0 end
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  if am ~= bm then return am < bm end
  return as < bs
end
-- The id right after `id`: where a trim that keeps everything past it stops.
local function after(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if ms == nil then return id end
  if string.len(seq) < 15 then return ms .. '-' .. string.format('%.0f', tonumber(seq) + 1) end
  return string.format('%.0f', tonumber(ms) + 1) .. '-0'
end
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return {0, ''} end
local target = ARGV[1]
if ARGV[2] ~= '' then
  local n = tonumber(ARGV[2])
  if redis.call('XLEN', key) > n then
    if n == 0 then
      local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
      local past = after(last[1][1])
      if target == '' or less(target, past) then target = past end
    else
      local newest = redis.call('XREVRANGE', key, '+', '-', 'COUNT', n)
      local keep = newest[#newest][1]
      if target == '' or less(target, keep) then target = keep end
    end
  end
end
if target == '' then return {0, ''} end
-- No group may lose an entry it has not read or acknowledged.
local held = {}
local bound = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
  local name, last
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] end
    if g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  local gbound = after(last)
  local pending = redis.call('XPENDING', key, name)
  if pending[1] > 0 and less(pending[2], gbound) then gbound = pending[2] end
  if less(gbound, target) then
    held[#held + 1] = name
    if bound == nil or less(gbound, bound) then bound = gbound end
  end
end
if bound ~= nil then target = bound end
local trimmed = 0
if ARGV[4] == '1' then
  trimmed = #redis.call('XRANGE', key, '-', '(' .. target)
else
  trimmed = redis.call('XTRIM', key, 'MINID', ARGV[3], target)
end
local out = {trimmed, target}
for _, name in ipairs(held) do out[#out + 1] = name end
return out
"#;

/// `XADD <key> * <attributes…> data <payload>`.
///
/// The command is sized up front: built with `redis::cmd`, its buffers grow
/// argument by argument, and those reallocations cost more than writing the
/// arguments themselves (callgrind: about 4,000 instructions per event).
fn xadd(key: &str, o: &Outgoing<'_>) -> Cmd {
    const FIXED_FIELDS: usize = 9; // the eight attributes tidings always writes, and data
    let optional = o.optional();
    let present = optional.iter().filter(|(_, v)| v.is_some()).count() + o.extensions.len();
    let optional_bytes: usize = optional
        .iter()
        .filter_map(|(name, v)| v.map(|v| name.len() + v.len()))
        .chain(o.extensions.iter().map(|(n, v)| n.len() + v.len()))
        .sum();
    let args = 3 + 2 * (FIXED_FIELDS + present);
    // Field names and fixed values are short: 128 bytes cover them.
    let bytes = 128
        + key.len()
        + o.id.len()
        + o.source.len()
        + o.type_name.len()
        + o.time.len()
        + o.dataschema.len()
        + optional_bytes
        + o.data.len();
    let mut cmd = Cmd::with_capacity(args, bytes);
    cmd.arg("XADD");
    write_xadd(&mut cmd, key, o);
    cmd
}

/// Writes `<key> * <attributes…> data <payload>` into `cmd`.
fn write_xadd(cmd: &mut Cmd, key: &str, o: &Outgoing<'_>) {
    cmd.arg(key);
    write_entry(cmd, o);
}

/// Writes `* <attributes…> data <payload>` into `cmd`.
fn write_entry(cmd: &mut Cmd, o: &Outgoing<'_>) {
    cmd.arg("*")
        .arg(field::SPECVERSION)
        .arg(SPECVERSION)
        .arg(field::ID)
        .arg(o.id)
        .arg(field::SOURCE)
        .arg(o.source)
        .arg(field::TYPE)
        .arg(o.type_name)
        .arg(field::TIME)
        .arg(o.time)
        .arg(field::DATACONTENTTYPE)
        .arg(crate::envelope::JSON_CONTENT_TYPE)
        .arg(field::DATASCHEMA)
        .arg(o.dataschema)
        .arg(field::DATAVERSION)
        .arg(o.dataversion);
    for (name, value) in o.optional() {
        if let Some(v) = value {
            cmd.arg(name).arg(v);
        }
    }
    for (name, value) in o.extensions {
        cmd.arg(name).arg(value);
    }
    cmd.arg(field::DATA).arg(o.data);
}

/// `XREADGROUP GROUP <group> <consumer> COUNT <count> [BLOCK <ms>] STREAMS <key> >`.
fn xreadgroup(r: &ReadRequest<'_>, count: usize, block: Option<Duration>) -> Cmd {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(r.group)
        .arg(r.consumer)
        .arg("COUNT")
        .arg(count.max(1));
    if let Some(block) = block {
        cmd.arg("BLOCK").arg(block.as_millis() as u64);
    }
    cmd.arg("STREAMS").arg(r.key).arg(">");
    cmd
}

/// When a publish is acknowledged.
///
/// Redis replicates asynchronously: a write the master acknowledged can be
/// lost if the master fails before a replica has it. `Replicated` makes
/// each publish wait (`WAIT`) until `replicas` replicas have the entries,
/// for `timeout` at most, and fail with
/// [`TransportError::NotReplicated`]
/// if fewer do. It costs a round trip to the replicas per publish.
///
/// ```no_run
/// # use std::time::Duration;
/// # async fn run() -> Result<(), tidings::Error> {
/// use tidings::streams::Durability;
/// let bus = tidings::Bus::builder()
///     .durability(Durability::Replicated { replicas: 1, timeout: Duration::from_millis(500) })
///     .connect("redis+cluster://10.0.0.1:7000,10.0.0.2:7000")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledged once the master has appended the entries (the
    /// default).
    #[default]
    Acknowledged,
    /// Acknowledged once `replicas` replicas have them too.
    Replicated {
        /// How many replicas must have the entries.
        replicas: u32,
        /// How long the master waits for them.
        timeout: Duration,
    },
}

/// A connection to the cluster of `endpoint`, failing as a first
/// connection does ([`TransportError::Connect`]) within `connect_timeout`.
async fn cluster_connection(
    endpoint: &Endpoint,
    response_timeout: Option<Duration>,
    connect_timeout: Duration,
) -> Result<redis::cluster_async::ClusterConnection, TransportError> {
    let failed = |source| TransportError::Connect {
        address: endpoint.describe(),
        user: endpoint.user(),
        source,
    };
    let Some(client) = endpoint.cluster_client() else {
        return Err(failed(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "not a cluster URL",
        ))));
    };
    let mut config = redis::cluster::ClusterConfig::new().set_connection_timeout(connect_timeout);
    // A blocking read waits for `BLOCK`: those connections have no limit.
    config = config.set_response_timeout(response_timeout.unwrap_or(Duration::from_secs(3600)));
    match tokio::time::timeout(
        connect_timeout,
        client.get_async_connection_with_config(config),
    )
    .await
    {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(failed(e)),
        Err(_) => Err(failed(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {connect_timeout:?}"),
        )))),
    }
}

/// Runs `cmds` as one pipeline, or on a cluster as one `MULTI`/`EXEC`
/// per hash slot of their keys (all sent together: atomic per slot, so per
/// stream, never across slots), and gives the replies in the order of
/// `cmds`.
///
/// With [`Durability::Replicated`], each pipeline ends with `WAIT`, and
/// fewer replicas than asked fail the call.
async fn pipelined(
    conn: &SharedConnection,
    cmds: Vec<(&str, Cmd)>,
    durability: Durability,
) -> Result<Vec<Value>, TransportError> {
    use redis::cluster_routing::Slot;
    let mut groups: Vec<(Slot, Vec<usize>, Pipeline)> = Vec::new();
    let cluster = conn.is_cluster();
    for (i, (key, cmd)) in cmds.into_iter().enumerate() {
        let slot = Slot::for_key(key);
        let at = match cluster {
            true => groups.iter().position(|(s, _, _)| *s == slot),
            false => (!groups.is_empty()).then_some(0),
        };
        let at = at.unwrap_or_else(|| {
            let mut pipe = Pipeline::new();
            if cluster {
                pipe.cmd("MULTI");
            }
            groups.push((slot, Vec::new(), pipe));
            groups.len() - 1
        });
        groups[at].1.push(i);
        groups[at].2.add_command(cmd);
    }
    for (_, _, pipe) in &mut groups {
        if cluster {
            pipe.cmd("EXEC");
        }
        if let Durability::Replicated { replicas, timeout } = durability {
            let ms = u64::try_from(timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            pipe.cmd("WAIT").arg(replicas).arg(ms);
        }
    }
    let total: usize = groups.iter().map(|g| g.1.len()).sum();
    let replies = futures::future::join_all(groups.iter().map(|(_, _, pipe)| {
        let mut conn = conn.clone();
        async move { pipe.query_async::<Vec<Value>>(&mut conn).await }
    }))
    .await;
    let mut out = vec![Value::Nil; total];
    for ((_, at, _), reply) in groups.iter().zip(replies) {
        let mut reply = reply?;
        if let Durability::Replicated { replicas, timeout } = durability {
            let reached = match reply.pop() {
                Some(Value::Int(n)) => u32::try_from(n).unwrap_or(0),
                other => {
                    return Err(value::protocol("WAIT", format!("not a count: {other:?}")));
                }
            };
            if reached < replicas {
                return Err(TransportError::NotReplicated {
                    replicas,
                    reached,
                    timeout,
                });
            }
        }
        if cluster {
            // MULTI's OK and a QUEUED per command, then EXEC's array.
            reply = match reply.pop() {
                Some(Value::Array(replies)) => replies,
                Some(Value::ServerError(e)) => {
                    return Err(redis::RedisError::from(e).into());
                }
                other => {
                    return Err(value::protocol("EXEC", format!("not an array: {other:?}")));
                }
            };
        }
        if let Some(Value::ServerError(e)) =
            reply.iter().find(|v| matches!(v, Value::ServerError(_)))
        {
            return Err(redis::RedisError::from(e.clone()).into());
        }
        if reply.len() != at.len() {
            return Err(value::protocol(
                "pipeline",
                format!("{} replies to {} commands", reply.len(), at.len()),
            ));
        }
        for (i, v) in at.iter().zip(reply) {
            out[*i] = v;
        }
    }
    Ok(out)
}

fn timed_out(message: String) -> TransportError {
    TransportError::timed_out(message)
}

/// The connections of one reading consumer: `XREADGROUP` goes through a
/// connection of its own with a cheaper reply parser when the server is
/// reached over TCP or TLS, everything else through redis-rs.
///
/// A reader from [`StreamTransport::shared_reader`] has no connection of
/// its own: its reads (of new entries, and of its own pending entries) and
/// its acknowledgements go through the hub of its group and consumer,
/// which reads the keys asked for together and waits on every stream of
/// the worker with one command (see the `hub` module), and its other
/// commands (claims, dead letters) through the bus's shared connection.
pub struct StreamsReader {
    managed: SharedConnection,
    fast: Option<resp::RespConnection>,
    hub: Option<Arc<hub::Hub>>,
    /// Whether the last read through the hub found nothing: the next one
    /// goes straight to the hub, whose read returns at once if entries
    /// came meanwhile.
    idle: bool,
    /// The key this reader waited on through the hub, if it did.
    key: Option<String>,
}

impl std::fmt::Debug for StreamsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsReader")
            .field("own_parser", &self.fast.is_some())
            .field("shared", &self.hub.is_some())
            .finish_non_exhaustive()
    }
}

impl StreamTransport for StreamsTransport {
    type Reader = StreamsReader;

    fn name(&self) -> &'static str {
        "redis-streams"
    }

    async fn append(&self, batch: &[(&str, Outgoing<'_>)]) -> Result<Vec<String>, TransportError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // A publish that finds the own connection busy does not wait for
        // it: the shared connection takes this one alongside.
        if let Some(mut fast) = self.own.as_ref().and_then(|b| b.try_lock().ok()) {
            return within(self.response_timeout, "XADD", fast.append(batch)).await;
        }
        // The other paths are boxed: awaited in place, each made the future
        // of every publish as large as itself (a cluster's writer, redis-rs's
        // command), and every publish moved it.
        if let (Some(writers), [(key, o)]) = (&self.slots, batch) {
            if let slots::Sent::Done(result) =
                Box::pin(writers.append_one(key, *o, self.response_timeout)).await
            {
                return result.map(|id| vec![id]);
            }
        }
        if let ([(key, o)], Durability::Acknowledged) = (batch, self.durability) {
            let mut conn = self.conn.clone();
            let id: String = Box::pin(xadd(key, o).query_async(&mut conn)).await?;
            return Ok(vec![id]);
        }
        let cmds = batch.iter().map(|(key, o)| (*key, xadd(key, o))).collect();
        Box::pin(pipelined(&self.conn, cmds, self.durability))
            .await?
            .into_iter()
            .map(|id| {
                redis::from_redis_value::<String>(id)
                    .map_err(|e| TransportError::from(redis::RedisError::from(e)))
            })
            .collect()
    }

    async fn ping(&self) -> Result<(), TransportError> {
        self.run(&mut redis::cmd("PING")).await
    }

    async fn append_if_exists(
        &self,
        key: &str,
        event: Outgoing<'_>,
        max_len: usize,
    ) -> Result<Option<String>, TransportError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(key)
            .arg("NOMKSTREAM")
            .arg("MAXLEN")
            .arg("~")
            .arg(max_len.max(1));
        write_entry(&mut cmd, &event);
        let mut conn = self.conn.clone();
        Ok(cmd.query_async(&mut conn).await?)
    }

    async fn delay(
        &self,
        delayed: &str,
        due: i64,
        event: Outgoing<'_>,
    ) -> Result<(), TransportError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("ZADD")
            .arg(delayed)
            .arg(due)
            .arg(event.delayed_member())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn deliver_due(
        &self,
        delayed: &str,
        key: &str,
        now: i64,
        limit: usize,
    ) -> Result<DueDelivery, TransportError> {
        static DELIVER_DUE: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(DELIVER_DUE_SCRIPT));
        let mut conn = self.conn.clone();
        let (moved, malformed, next): (usize, usize, Option<String>) = DELIVER_DUE
            .key(delayed)
            .key(key)
            .arg(now)
            .arg(limit.max(1))
            .invoke_async(&mut conn)
            .await?;
        let next_due = next.and_then(|s| s.parse::<f64>().ok()).map(|f| f as i64);
        Ok(DueDelivery::new(moved, malformed, next_due))
    }

    async fn park(
        &self,
        key: &str,
        group: &str,
        id: &str,
        delayed: &str,
        due: i64,
        extra: &[(&'static str, String)],
    ) -> Result<bool, TransportError> {
        let mut invocation = script::PARK.prepare_invoke();
        invocation.key(key).key(delayed).arg(group).arg(id).arg(due);
        for (name, value) in extra {
            invocation.arg(*name).arg(value);
        }
        let mut conn = self.conn.clone();
        let code: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(code != -1)
    }

    async fn deliver_due_many(
        &self,
        pairs: &[(String, String)],
        now: i64,
        limit: usize,
    ) -> Result<DueDelivery, TransportError> {
        if pairs.is_empty() {
            return Ok(DueDelivery::default());
        }
        // On a cluster the sets lie in slots of their own: one call each.
        if self.conn.is_cluster() {
            return crate::transport::deliver_due_each(self, pairs, now, limit).await;
        }
        static DELIVER_DUE_MANY: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(DELIVER_DUE_MANY_SCRIPT));
        let mut invocation = DELIVER_DUE_MANY.prepare_invoke();
        for (delayed, key) in pairs {
            invocation.key(delayed).key(key);
        }
        invocation.arg(now).arg(limit.max(1));
        let mut conn = self.conn.clone();
        let (moved, malformed, next): (usize, usize, Option<String>) =
            invocation.invoke_async(&mut conn).await?;
        let next_due = next.and_then(|s| s.parse::<f64>().ok()).map(|f| f as i64);
        Ok(DueDelivery::new(moved, malformed, next_due))
    }

    async fn lease(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        op: Lease,
    ) -> Result<bool, TransportError> {
        static LEASE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                r"local cur = redis.call('GET', KEYS[1])
                if ARGV[3] == 'take' then
                  if cur == false or cur == ARGV[1] then
                    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
                    return 1
                  end
                  return 0
                end
                if cur ~= ARGV[1] then return 0 end
                if ARGV[3] == 'renew' then
                  redis.call('PEXPIRE', KEYS[1], ARGV[2])
                else
                  redis.call('DEL', KEYS[1])
                end
                return 1",
            )
        });
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        let done: i64 = LEASE
            .key(key)
            .arg(owner)
            .arg(ms)
            .arg(op.as_str())
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    async fn take_pending(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        start: &str,
        count: usize,
    ) -> Result<String, TransportError> {
        let mut conn = self.conn.clone();
        let reply: Value = redis::cmd("XAUTOCLAIM")
            .arg(key)
            .arg(group)
            .arg(consumer)
            .arg(0)
            .arg(start)
            .arg("COUNT")
            .arg(count.max(1))
            .arg("JUSTID")
            .query_async(&mut conn)
            .await?;
        match reply {
            Value::Array(items) => match items.into_iter().next() {
                Some(next) => redis::from_redis_value(next).map_err(|e| TransportError::Protocol {
                    command: "XAUTOCLAIM",
                    reason: format!("its cursor is not an entry id: {e}"),
                }),
                None => Err(TransportError::Protocol {
                    command: "XAUTOCLAIM",
                    reason: "an empty array".to_owned(),
                }),
            },
            other => Err(TransportError::Protocol {
                command: "XAUTOCLAIM",
                reason: format!("{other:?} instead of an array"),
            }),
        }
    }

    async fn members(
        &self,
        key: &str,
        member: &str,
        now: i64,
        ttl: Duration,
        leave: bool,
    ) -> Result<usize, TransportError> {
        static MEMBERS: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                r"if ARGV[4] == 'leave' then
                  redis.call('ZREM', KEYS[1], ARGV[1])
                else
                  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
                end
                redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
                redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 10)
                return redis.call('ZCARD', KEYS[1])",
            )
        });
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let mut conn = self.conn.clone();
        let live: usize = MEMBERS
            .key(key)
            .arg(member)
            .arg(now)
            .arg(ms)
            .arg(if leave { "leave" } else { "join" })
            .invoke_async(&mut conn)
            .await?;
        Ok(live)
    }

    async fn keep_alive(&self, key: &str, ttl: Duration) -> Result<(), TransportError> {
        static KEEP_ALIVE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                r"if redis.call('EXISTS', KEYS[1]) == 0 then
                    redis.call('XADD', KEYS[1], 'MAXLEN', '0', '*', 'opened', '1')
                end
                return redis.call('PEXPIRE', KEYS[1], ARGV[1])",
            )
        });
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        let _: Value = KEEP_ALIVE.key(key).arg(ms).invoke_async(&mut conn).await?;
        Ok(())
    }

    async fn read_streams(
        &self,
        reader: &mut StreamsReader,
        streams: &[(&str, &str)],
        count: usize,
        block: Duration,
    ) -> Result<Vec<(usize, Entry)>, TransportError> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        if reader.managed.is_cluster() {
            return self
                .read_streams_per_slot(reader, streams, count, block)
                .await;
        }
        let mut cmd = redis::cmd("XREAD");
        // `BLOCK 0` waits for ever: the shortest wait is a millisecond.
        let ms = u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1);
        cmd.arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(ms)
            .arg("STREAMS");
        for (key, _) in streams {
            cmd.arg(*key);
        }
        for (_, after) in streams {
            cmd.arg(*after);
        }
        let read = reply::read_streams(cmd.query_async(&mut reader.managed).await?)?;
        let mut out = Vec::new();
        for (key, entries) in read {
            let Some(i) = streams.iter().position(|(k, _)| *k == key) else {
                return Err(value::protocol(
                    "XREAD",
                    format!("the reply names the stream `{key}`, which was not read"),
                ));
            };
            out.extend(entries.into_iter().map(|e| (i, e)));
        }
        Ok(out)
    }

    async fn reader(&self) -> Result<StreamsReader, TransportError> {
        if self.conn.is_cluster() {
            let conn = cluster_connection(&self.endpoint, None, self.connect_timeout).await?;
            let managed = SharedConnection::cluster(self.endpoint.clone(), conn);
            // `XREADGROUP` through a connection of its own to the master
            // of the slot of the stream read.
            let fast = resp::RespConnection::for_cluster(
                self.client.get_connection_info(),
                &self.endpoint,
                managed.clone(),
            );
            return Ok(StreamsReader {
                managed,
                fast,
                hub: None,
                idle: false,
                key: None,
            });
        }
        // No response timeout: a blocking read legitimately waits for `BLOCK`
        // milliseconds, and a dead server shows up as a dropped connection.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(self.connect_timeout));
        let client = self.endpoint.client().await?;
        let managed =
            SharedConnection::connect(self.endpoint.clone(), client.clone(), config).await?;
        let fast = resp::RespConnection::for_info(client.get_connection_info(), &self.endpoint);
        Ok(StreamsReader {
            managed,
            fast,
            hub: None,
            idle: false,
            key: None,
        })
    }

    /// On one server (or behind Sentinel), a handle on the hub of
    /// `consumer` in `group`: no connection of its own. On a cluster, where
    /// the streams of the tenants lie in slots of their own, a reader of
    /// its own ([`StreamTransport::reader`]).
    async fn shared_reader(
        &self,
        group: &str,
        consumer: &str,
    ) -> Result<StreamsReader, TransportError> {
        if self.conn.is_cluster() {
            return self.reader().await;
        }
        let hub = self.hubs.get(
            group,
            consumer,
            &self.endpoint,
            &self.conn,
            self.connect_timeout,
        );
        Ok(StreamsReader {
            managed: self.conn.clone(),
            fast: None,
            hub: Some(hub),
            idle: false,
            key: None,
        })
    }

    async fn reader_again(&self, reader: &StreamsReader) -> Result<StreamsReader, TransportError> {
        match &reader.hub {
            // The hub makes its own connection again after a failed read.
            Some(hub) => {
                // A read the hub still has in flight for the key (blocking,
                // or in a batch) could add to this consumer's pending
                // entries after the loop read them again: wait for it to end.
                if let Some(key) = &reader.key {
                    let _ = hub.release(key).await;
                }
                Ok(StreamsReader {
                    managed: self.conn.clone(),
                    fast: None,
                    hub: Some(hub.clone()),
                    idle: false,
                    key: None,
                })
            }
            None => self.reader().await,
        }
    }

    async fn create_group(
        &self,
        key: &str,
        group: &str,
        start: &StartFrom,
    ) -> Result<(), TransportError> {
        let mut conn = self.conn.clone();
        let res: Result<Value, _> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg(group)
            .arg(start.as_id())
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match res {
            Ok(_) => Ok(()),
            // The group exists: keep it and its position, as a restarted
            // worker must not move its group.
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn read_group(
        &self,
        reader: &mut StreamsReader,
        r: ReadRequest<'_>,
    ) -> Result<Vec<Entry>, TransportError> {
        if let Some(hub) = &reader.hub {
            // A key that had entries gets the next at once (with the other
            // keys asked for meanwhile, in one non-blocking read), without
            // waiting to be part of the hub's next blocking read; only a
            // key with none waits there. An idle key goes
            // straight to the hub: a read of its own would be a call per
            // key and `block` for nothing.
            if reader.key.is_none() {
                reader.key = Some(r.key.to_owned());
            }
            if !reader.idle {
                let entries = hub.read_now(r.key, r.count).await?;
                if !entries.is_empty() {
                    return Ok(entries);
                }
            }
            let entries = hub.read(r.key, r.count, r.block).await?;
            reader.idle = entries.is_empty();
            return Ok(entries);
        }
        // Boxed: a read of its own (over the hand-written connection, or
        // redis-rs) takes about 4 KB while it waits, a read through the
        // hub a few hundred bytes, and the reading loop of each of a
        // worker's 1,000 tenants waits in this call.
        Box::pin(async move {
            match &mut reader.fast {
                // On a cluster, a connection that could not be made rests a
                // while: redis-rs reads meanwhile.
                Some(conn) if conn.resting() => {}
                Some(conn) => match conn.read_group(&r).await {
                    // On a cluster: the node read no longer serves the slot,
                    // or the connection to the slot's master could not be
                    // made. Nothing was read, and redis-rs, which follows
                    // redirections, reads this time.
                    Err(e)
                        if reader.managed.is_cluster()
                            && (e.is_cluster_redirect() || conn.resting()) => {}
                    other => return other,
                },
                None => {}
            }
            let cmd = xreadgroup(&r, r.count, Some(r.block));
            reply::read_group(cmd.query_async(&mut reader.managed).await?)
        })
        .await
    }

    async fn read_ahead_rest(
        &self,
        reader: &mut StreamsReader,
    ) -> Result<Vec<Entry>, TransportError> {
        if let (Some(hub), Some(key)) = (&reader.hub, &reader.key) {
            // The hub's read in flight for the key is what was sent ahead.
            return hub.release(key).await;
        }
        match &mut reader.fast {
            Some(conn) => conn.read_ahead_rest().await,
            None => Ok(Vec::new()),
        }
    }

    async fn read_own_pending(
        &self,
        reader: &mut StreamsReader,
        r: ReadRequest<'_>,
        after: &str,
    ) -> Result<(Vec<Entry>, Option<String>), TransportError> {
        let (mut entries, deleted) = match &reader.hub {
            // With the other keys of the hub's group read meanwhile.
            Some(hub) => hub.read_pending(r.key, r.count, after).await?,
            None => {
                let mut cmd = redis::cmd("XREADGROUP");
                cmd.arg("GROUP")
                    .arg(r.group)
                    .arg(r.consumer)
                    .arg("COUNT")
                    .arg(r.count.max(1))
                    .arg("STREAMS")
                    .arg(r.key)
                    .arg(after);
                reply::read_history(cmd.query_async(&mut reader.managed).await?)?
            }
        };
        let last = match (entries.last(), deleted.last()) {
            (Some(e), Some(d)) => Some(if crate::id::order_entry_ids(&e.id, d).is_gt() {
                e.id.clone()
            } else {
                d.clone()
            }),
            (Some(e), None) => Some(e.id.clone()),
            (None, Some(d)) => Some(d.clone()),
            (None, None) => None,
        };
        if !deleted.is_empty() {
            tracing::debug!(stream = %r.key, group = r.group, count = deleted.len(),
                "own pending entries were deleted from the stream; forgotten");
            self.ack(r.key, r.group, &deleted).await?;
        }
        self.delivery_counts(reader, &r, &mut entries).await?;
        Ok((entries, last))
    }

    async fn claim_idle(
        &self,
        reader: &mut StreamsReader,
        r: ReadRequest<'_>,
        min_idle: Duration,
        start: &str,
    ) -> Result<(Vec<Entry>, String), TransportError> {
        let value: Value = redis::cmd("XAUTOCLAIM")
            .arg(r.key)
            .arg(r.group)
            .arg(r.consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(start)
            .arg("COUNT")
            .arg(r.count.max(1))
            .query_async(&mut reader.managed)
            .await?;
        let (mut entries, deleted, next) = reply::auto_claim(value)?;
        if !deleted.is_empty() {
            // Redis 7 already dropped them from the group; an older server
            // keeps them pending, and there is nothing left to handle.
            tracing::debug!(stream = %r.key, group = r.group, count = deleted.len(),
                "pending entries were deleted from the stream; forgotten");
            self.ack(r.key, r.group, &deleted).await?;
        }
        self.delivery_counts(reader, &r, &mut entries).await?;
        Ok((entries, next))
    }

    async fn trim(
        &self,
        key: &str,
        retention: &crate::stats::Retention,
        dry_run: bool,
    ) -> Result<crate::stats::TrimReport, TransportError> {
        static TRIM: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(TRIM_SCRIPT));
        let by_age = retention
            .max_age
            .map(|age| {
                let now = crate::envelope::now_millis();
                let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
                format!("{}-0", now.saturating_sub(age).max(0))
            })
            .unwrap_or_default();
        let max_len = retention.max_len.map(|n| n.to_string()).unwrap_or_default();
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = TRIM
            .key(key)
            .arg(by_age)
            .arg(max_len)
            .arg(if retention.exact { "=" } else { "~" })
            .arg(if dry_run { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await?;
        reply::trim_report(reply)
    }

    async fn delete_group(&self, key: &str, group: &str) -> Result<bool, TransportError> {
        let mut conn = self.conn.clone();
        let res: Result<i64, _> = redis::cmd("XGROUP")
            .arg("DESTROY")
            .arg(key)
            .arg(group)
            .query_async(&mut conn)
            .await;
        match res {
            Ok(n) => Ok(n == 1),
            // No stream: no group either.
            Err(e) if e.code() == Some("ERR") && e.to_string().contains("no such key") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn move_group(
        &self,
        key: &str,
        group: &str,
        to: &StartFrom,
    ) -> Result<(), TransportError> {
        let mut conn = self.conn.clone();
        let _: Value = redis::cmd("XGROUP")
            .arg("SETID")
            .arg(key)
            .arg(group)
            .arg(to.as_id())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn pending_entries(
        &self,
        key: &str,
        group: &str,
        count: usize,
    ) -> Result<Vec<crate::stats::PendingEntry>, TransportError> {
        let mut conn = self.conn.clone();
        let value: Value = redis::cmd("XPENDING")
            .arg(key)
            .arg(group)
            .arg("-")
            .arg("+")
            .arg(count.max(1))
            .query_async(&mut conn)
            .await?;
        reply::pending_entries(value)
    }

    async fn forget_consumer(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
    ) -> Result<bool, TransportError> {
        static FORGET: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                r"
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
",
            )
        });
        let mut conn = self.conn.clone();
        let removed: i64 = FORGET
            .key(key)
            .arg(group)
            .arg(consumer)
            .invoke_async(&mut conn)
            .await?;
        Ok(removed == 1)
    }

    async fn ack_as(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        ids: &[String],
    ) -> Result<(), TransportError> {
        match self.hubs.find(group, consumer) {
            Some(hub) if !ids.is_empty() => hub.ack(key, ids).await,
            _ => self.ack(key, group, ids).await,
        }
    }

    async fn ack(&self, key: &str, group: &str, ids: &[String]) -> Result<(), TransportError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.run(redis::cmd("XACK").arg(key).arg(group).arg(ids))
            .await
    }

    async fn ack_marking(
        &self,
        key: &str,
        group: &str,
        ids: &[String],
        marks: &[String],
        ttl: Duration,
    ) -> Result<(), TransportError> {
        let mut pipe = Pipeline::with_capacity(marks.len() + 1);
        for m in marks {
            pipe.cmd("SET")
                .arg(m)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .ignore();
        }
        if !ids.is_empty() {
            pipe.cmd("XACK").arg(key).arg(group).arg(ids).ignore();
        }
        let mut conn = self.conn.clone();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    async fn marked(&self, marks: &[String]) -> Result<Vec<bool>, TransportError> {
        if marks.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = Pipeline::with_capacity(marks.len());
        for m in marks {
            pipe.cmd("EXISTS").arg(m);
        }
        let mut conn = self.conn.clone();
        let found: Vec<i64> = pipe.query_async(&mut conn).await?;
        Ok(found.into_iter().map(|n| n > 0).collect())
    }

    async fn touch(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        ids: &[String],
    ) -> Result<(), TransportError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.run(xclaim(key, group, consumer).arg(ids).arg("JUSTID"))
            .await
    }

    async fn record_attempts(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        id: &str,
        attempts: u32,
    ) -> Result<(), TransportError> {
        let mut cmd = xclaim(key, group, consumer);
        cmd.arg(id).arg("RETRYCOUNT").arg(attempts).arg("JUSTID");
        self.run(&mut cmd).await
    }

    async fn dead_letter(
        &self,
        key: &str,
        dlq: &str,
        group: &str,
        id: &str,
        extra: &[(&'static str, String)],
    ) -> Result<DeadLettered, TransportError> {
        let mut invocation = script::DEAD_LETTER.prepare_invoke();
        invocation
            .key(key)
            .key(dlq)
            .key(dead_letter_index_key(dlq))
            .arg(group)
            .arg(id);
        for (name, value) in extra {
            invocation.arg(*name).arg(value);
        }
        let mut conn = self.conn.clone();
        let code: i64 = invocation.invoke_async(&mut conn).await?;
        match code {
            1 => Ok(DeadLettered::Written),
            2 => Ok(DeadLettered::Updated),
            0 => Ok(DeadLettered::Gone),
            -1 => Ok(DeadLettered::NotPending),
            -2 => Ok(DeadLettered::OtherGroup),
            other => Err(TransportError::Protocol {
                command: "EVAL (dead letter)",
                reason: format!("the script returned {other}, which is none of -2, -1, 0, 1, 2"),
            }),
        }
    }

    async fn dead_letters(
        &self,
        dlq: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<RawEntry>, TransportError> {
        let start = match after {
            Some(id) => format!("({id}"),
            None => "-".to_owned(),
        };
        self.range(dlq, &start, count).await
    }

    async fn dead_letter_count(&self, dlq: &str) -> Result<usize, TransportError> {
        let mut conn = self.conn.clone();
        let n: usize = redis::cmd("XLEN").arg(dlq).query_async(&mut conn).await?;
        Ok(n)
    }

    async fn requeue(
        &self,
        key: &str,
        dlq: &str,
        ids: &[String],
    ) -> Result<Vec<Option<String>>, TransportError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = script::REQUEUE.prepare_invoke();
        invocation.key(key).key(dlq).key(dead_letter_index_key(dlq));
        for id in ids {
            invocation.arg(id);
        }
        let mut conn = self.conn.clone();
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    async fn purge(&self, dlq: &str) -> Result<usize, TransportError> {
        let mut conn = self.conn.clone();
        Ok(script::PURGE
            .key(dlq)
            .key(dead_letter_index_key(dlq))
            .invoke_async(&mut conn)
            .await?)
    }

    async fn purge_ids(&self, dlq: &str, ids: &[String]) -> Result<usize, TransportError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut invocation = script::PURGE_IDS.prepare_invoke();
        invocation.key(dlq).key(dead_letter_index_key(dlq));
        for id in ids {
            invocation.arg(id);
        }
        let mut conn = self.conn.clone();
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    async fn stream_stats(&self, key: &str, dlq: &str) -> Result<StreamStats, TransportError> {
        let mut conn = self.conn.clone();
        let mut stats = StreamStats::new(key, dlq);
        // XINFO fails on a missing key, and a pipeline with a failing
        // command fails as a whole: look before asking.
        let (kind, dead): (String, u64) = redis::pipe()
            .cmd("TYPE")
            .arg(key)
            .cmd("XLEN")
            .arg(dlq)
            .query_async(&mut conn)
            .await?;
        stats.dead_letters = dead;
        match kind.as_str() {
            "none" => return Ok(stats),
            "stream" => {}
            other => {
                return Err(TransportError::Protocol {
                    command: "TYPE",
                    reason: format!("`{key}` holds a {other}, not a stream"),
                })
            }
        }
        let replies: Result<(Value, Value), redis::RedisError> = redis::pipe()
            .cmd("XINFO")
            .arg("STREAM")
            .arg(key)
            .cmd("XINFO")
            .arg("GROUPS")
            .arg(key)
            .query_async(&mut conn)
            .await;
        let (stream, groups) = match replies {
            Ok(r) => r,
            // Deleted between the two round trips.
            Err(e) if e.to_string().contains("no such key") => return Ok(stats),
            Err(e) => return Err(e.into()),
        };
        stats.exists = true;
        info::stream(&mut stats, stream)?;
        stats.groups = info::groups(groups)?;
        if !stats.groups.is_empty() {
            let mut pipe = Pipeline::with_capacity(stats.groups.len());
            for g in &stats.groups {
                pipe.cmd("XINFO").arg("CONSUMERS").arg(key).arg(&g.name);
            }
            let replies: Result<Vec<Value>, redis::RedisError> = pipe.query_async(&mut conn).await;
            match replies {
                Ok(replies) => {
                    for (g, reply) in stats.groups.iter_mut().zip(replies) {
                        g.consumers = info::consumers(reply)?;
                    }
                }
                // A group destroyed meanwhile: the groups read are still
                // worth reporting, without their consumers.
                Err(e) if e.code() == Some("NOGROUP") => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(stats)
    }

    async fn range(
        &self,
        key: &str,
        from: &str,
        count: usize,
    ) -> Result<Vec<RawEntry>, TransportError> {
        let mut conn = self.conn.clone();
        let value: Value = redis::cmd("XRANGE")
            .arg(key)
            .arg(from)
            .arg("+")
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut conn)
            .await?;
        reply::raw_entries(value)
    }

    async fn last_entries(&self, key: &str, count: usize) -> Result<Vec<RawEntry>, TransportError> {
        let mut conn = self.conn.clone();
        let value: Value = redis::cmd("XREVRANGE")
            .arg(key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut conn)
            .await?;
        let mut entries = reply::raw_entries(value)?;
        entries.reverse();
        Ok(entries)
    }

    async fn stream_keys(&self, pattern: &str) -> Result<Vec<String>, TransportError> {
        // On a cluster each master holds its slots' keys: each is scanned.
        let nodes = match self.conn.cluster_masters().await? {
            Some(masters) => masters.into_iter().map(Some).collect(),
            None => vec![None],
        };
        let mut keys = Vec::new();
        for node in nodes {
            let mut cursor = 0u64;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .arg("TYPE")
                    .arg("stream");
                let reply = match &node {
                    Some((host, port)) => self.conn.query_node(scan, host, *port).await?,
                    None => scan.query_async(&mut self.conn.clone()).await?,
                };
                let (next, batch): (u64, Vec<String>) =
                    redis::from_redis_value(reply).map_err(redis::RedisError::from)?;
                keys.extend(batch);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        // SCAN may return a key more than once.
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    async fn read_after(
        &self,
        reader: &mut StreamsReader,
        key: &str,
        after: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<RawEntry>, TransportError> {
        let value: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(key)
            .arg(after)
            .query_async(&mut reader.managed)
            .await?;
        reply::read_raw(value)
    }
}

/// `XCLAIM <key> <group> <consumer> 0`: the ids and options follow.
fn xclaim(key: &str, group: &str, consumer: &str) -> Cmd {
    let mut cmd = redis::cmd("XCLAIM");
    cmd.arg(key).arg(group).arg(consumer).arg(0);
    cmd
}

/// The Lua scripts of the steps that must be atomic. Each touches one stream,
/// its dead letters and their index, which share a hash slot (`ns:{stream}`,
/// `ns:{stream}:dlq`, `ns:{stream}:dlq:idx`), so they also run on Redis
/// Cluster. The field names they read are those of
/// [`dead_letter_field`](crate::transport::dead_letter_field) and
/// [`field::DLQGROUP`](crate::envelope::field::DLQGROUP).
mod script {
    use std::sync::LazyLock;

    use redis::Script;

    /// Two Lua functions the scripts that delete dead letters start with:
    /// `group_and_entry(fields)` reads `dlq_group` and `dlq_entry_id` (with
    /// `#<dlq_partition>` after it on a partitioned stream and
    /// `@<dlq_level>` on a priority level, whose streams give out the same
    /// entry ids), and
    /// `forget(index, fields, id)` deletes the index entry that maps
    /// `<entry id>:<group>` to the dead letter `id`, unless a newer dead
    /// letter of the same entry and group took its place.
    const FORGET: &str = r"
local function group_and_entry(f)
  local group, entry, part, level
  for j = 1, #f, 2 do
    if f[j] == 'dlq_group' then group = f[j + 1]
    elseif f[j] == 'dlq_entry_id' then entry = f[j + 1]
    elseif f[j] == 'dlq_partition' then part = f[j + 1]
    elseif f[j] == 'dlq_level' then level = f[j + 1] end
  end
  if entry and part then entry = entry .. '#' .. part end
  if entry and level then entry = entry .. '@' .. level end
  return group, entry
end
local function forget(index, f, id)
  local group, entry = group_and_entry(f)
  if group and entry then
    local slot = entry .. ':' .. group
    if redis.call('HGET', index, slot) == id then redis.call('HDEL', index, slot) end
  end
end
";

    /// KEYS: stream, dlq, index. ARGV: group, entry id, extra field/value
    /// pairs. Returns 1 (written and acked), 2 (an earlier dead letter of
    /// the entry in this group replaced, and acked), 0 (entry deleted: acked
    /// only), -1 (no longer pending: nothing done, another consumer finished
    /// it), -2 (a dead letter put back for another group: acked only).
    /// The entry's own `dlq_…` fields (a parked retry's) are left out, and
    /// the index names the entry by the extra `dlq_entry_id` (for a parked
    /// retry, its entry in the stream it was first read from), followed by
    /// `#<dlq_partition>` on a partitioned stream.
    pub(super) static DEAD_LETTER: LazyLock<Script> = LazyLock::new(|| {
        Script::new(
            r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #pending == 0 then return -1 end
local found = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #found == 0 then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  return 0
end
local fields = {}
local f = found[1][2]
for i = 1, #f, 2 do
  if f[i] == 'dlqgroup' and f[i + 1] ~= ARGV[1] then
    redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
    return -2
  end
  if string.sub(f[i], 1, 4) ~= 'dlq_' then
    fields[#fields + 1] = f[i]
    fields[#fields + 1] = f[i + 1]
  end
end
local entry, part, level = ARGV[2], nil, nil
for i = 3, #ARGV, 2 do
  if ARGV[i] == 'dlq_entry_id' then entry = ARGV[i + 1]
  elseif ARGV[i] == 'dlq_partition' then part = ARGV[i + 1]
  elseif ARGV[i] == 'dlq_level' then level = ARGV[i + 1] end
end
if part then entry = entry .. '#' .. part end
if level then entry = entry .. '@' .. level end
local slot = entry .. ':' .. ARGV[1]
local earlier = redis.call('HGET', KEYS[3], slot)
local attempts, first
if earlier then
  local old = redis.call('XRANGE', KEYS[2], earlier, earlier)
  if #old == 0 then
    earlier = false
  else
    local f = old[1][2]
    for j = 1, #f, 2 do
      if f[j] == 'dlq_attempts' then attempts = tonumber(f[j + 1])
      elseif f[j] == 'dlq_first_failure' then first = f[j + 1] end
    end
    redis.call('XDEL', KEYS[2], earlier)
  end
end
for i = 3, #ARGV, 2 do
  local value = ARGV[i + 1]
  if ARGV[i] == 'dlq_attempts' and attempts and tonumber(value) then
    value = string.format('%d', math.min(attempts + tonumber(value), 4294967295))
  elseif ARGV[i] == 'dlq_first_failure' and first then
    value = first
  end
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = value
end
local dead = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('HSET', KEYS[3], slot, dead)
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if earlier then return 2 end
return 1
",
        )
    });

    /// KEYS: stream, delayed set. ARGV: group, entry id, due ms, extra
    /// field/value pairs. Returns 1 (parked and acked), 0 (entry deleted:
    /// acked only), -1 (no longer pending: nothing done). The fields of an
    /// earlier park (`dlq_…`) are left out, so that the new ones stand alone.
    pub(super) static PARK: LazyLock<Script> = LazyLock::new(|| {
        Script::new(
            r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #pending == 0 then return -1 end
local found = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #found == 0 then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  return 0
end
local f = found[1][2]
local member = {}
for i = 1, #f, 2 do
  if string.sub(f[i], 1, 4) ~= 'dlq_' then
    member[#member + 1] = f[i]
    member[#member + 1] = f[i + 1]
  end
end
for i = 4, #ARGV, 2 do
  member[#member + 1] = ARGV[i]
  member[#member + 1] = ARGV[i + 1]
end
redis.call('ZADD', KEYS[2], ARGV[3], cjson.encode(member))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
",
        )
    });

    /// KEYS: stream, dlq, index. ARGV: dead-letter ids. Every field but the
    /// `dlq_…` ones and an earlier `dlqgroup` goes back (CloudEvents
    /// attribute names have no `_`, so no original field is dropped), then
    /// `dlqgroup` naming the group that gave up. Returns the new entry ids,
    /// nil for an id that is not in the dead letters.
    pub(super) static REQUEUE: LazyLock<Script> = LazyLock::new(|| {
        Script::new(&format!(
            r"{FORGET}
local out = {{}}
for i, id in ipairs(ARGV) do
  local found = redis.call('XRANGE', KEYS[2], id, id)
  if #found == 0 then
    out[i] = false
  else
    local f = found[1][2]
    local fields = {{}}
    for j = 1, #f, 2 do
      if string.sub(f[j], 1, 4) ~= 'dlq_' and f[j] ~= 'dlqgroup' then
        fields[#fields + 1] = f[j]
        fields[#fields + 1] = f[j + 1]
      end
    end
    local group = group_and_entry(f)
    if group and group ~= '' then
      fields[#fields + 1] = 'dlqgroup'
      fields[#fields + 1] = group
    end
    if #fields == 0 then
      out[i] = false
    else
      out[i] = redis.call('XADD', KEYS[1], '*', unpack(fields))
      redis.call('XDEL', KEYS[2], id)
      forget(KEYS[3], f, id)
    end
  end
end
return out
"
        ))
    });

    /// KEYS: dlq, index. ARGV: dead-letter ids. Returns how many of them
    /// were dead letters, now deleted.
    pub(super) static PURGE_IDS: LazyLock<Script> = LazyLock::new(|| {
        Script::new(&format!(
            r"{FORGET}
local n = 0
for _, id in ipairs(ARGV) do
  local found = redis.call('XRANGE', KEYS[1], id, id)
  if #found > 0 then
    redis.call('XDEL', KEYS[1], id)
    forget(KEYS[2], found[1][2], id)
    n = n + 1
  end
end
return n
"
        ))
    });

    /// KEYS: dlq, index. Returns how many dead letters were deleted.
    pub(super) static PURGE: LazyLock<Script> = LazyLock::new(|| {
        Script::new(
            r"
local n = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return n
",
        )
    });
}
