//! In-memory transport: the semantics of Redis Streams and Pub/Sub inside one
//! process, so that user code is tested without a Redis server.
//!
//! Streams keep every entry; groups have a last-delivered id and a pending
//! list per consumer; an entry stays pending until it is acknowledged and can
//! be claimed by another consumer once idle. Pub/Sub fans out to the
//! subscriptions present at publish time, at most once: a subscriber whose
//! buffer is full misses the message, as a slow Redis subscriber would.

mod glob;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use tokio::sync::Notify;

use crate::envelope::Envelope;
use crate::stats::{ConsumerStats, GroupStats, StreamStats};
use crate::transport::{
    dead_letter_field, ChannelTransport, DeadLettered, DueDelivery, Entry, Lease, Message,
    MessageBody, MessageStream, Outgoing, RawEntry, ReadRequest, StartFrom, StreamTransport,
    Target, TransportError,
};

/// Messages a subscription buffers before it starts missing them.
const SUBSCRIPTION_BUFFER: usize = 1024;

/// An in-process broker with the semantics of Redis Streams and Pub/Sub.
///
/// Clones share the same broker; two `MemoryTransport::new()` are independent.
#[derive(Clone, Default)]
pub struct MemoryTransport {
    inner: Arc<Mutex<Broker>>,
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let broker = self.lock();
        f.debug_struct("MemoryTransport")
            .field("streams", &broker.streams.len())
            .field("subscriptions", &broker.subscribers.len())
            .finish()
    }
}

#[derive(Default)]
struct Broker {
    streams: HashMap<String, MemStream>,
    subscribers: Vec<Subscriber>,
    /// Dead-letter streams: raw fields, as on Redis, so that every original
    /// attribute and the `dlq_…` fields sit side by side.
    dead: HashMap<String, DeadStream>,
    /// Inbox marks and when they expire.
    marks: HashMap<String, Instant>,
    /// Delayed events (`ns:{stream}:delayed`): (due ms, member), ordered
    /// as Redis orders a sorted set, by score and then member.
    delayed: HashMap<String, std::collections::BTreeSet<(i64, String)>>,
    /// Leases: owner and expiry.
    leases: HashMap<String, (String, Instant)>,
    /// Member sets: each member and when it was last seen (ms).
    members: HashMap<String, HashMap<String, i64>>,
    /// Streams with an expiry (`PEXPIRE`), and when they expire.
    expiry: HashMap<String, Instant>,
    /// Woken when a stream is made, for reads waiting on streams that do
    /// not exist yet.
    created: Arc<Notify>,
}

impl Broker {
    /// The stream at `key`, made empty if it does not exist.
    fn stream(&mut self, key: &str) -> &mut MemStream {
        if !self.streams.contains_key(key) {
            self.streams.insert(key.to_owned(), MemStream::default());
            self.created.notify_waiters();
        }
        // Present: inserted just above if it was not.
        self.streams.entry(key.to_owned()).or_default()
    }

    /// Drops the streams whose expiry has passed, as Redis does with keys.
    fn expire(&mut self) {
        if self.expiry.is_empty() {
            return;
        }
        let now = Instant::now();
        let streams = &mut self.streams;
        self.expiry.retain(|key, at| {
            let keep = *at > now;
            if !keep {
                streams.remove(key);
            }
            keep
        });
    }

    /// The group `group` of the stream at `key`, if both exist.
    fn group_mut(&mut self, key: &str, group: &str) -> Option<&mut Group> {
        self.streams.get_mut(key)?.groups.get_mut(group)
    }
}

#[derive(Default)]
struct DeadStream {
    entries: BTreeMap<Id, Vec<(String, Vec<u8>)>>,
    last: Id,
    /// `<entry id>:<group>` to the dead letter of that entry in that group,
    /// as the hash `ns:{stream}:dlq:idx` on Redis.
    index: HashMap<String, Id>,
}

impl DeadStream {
    /// Deletes a dead letter and its index entry; returns its fields.
    fn remove(&mut self, id: Id) -> Option<Vec<(String, Vec<u8>)>> {
        let fields = self.entries.remove(&id)?;
        if let Some(slot) = index_slot(&fields) {
            if self.index.get(&slot) == Some(&id) {
                self.index.remove(&slot);
            }
        }
        Some(fields)
    }
}

/// The envelope a delayed member stands for, as the script's `XADD` and a
/// read of the entry would make it; `None` when it is not a JSON array of
/// field and value strings or not an envelope.
fn delayed_envelope(member: &str) -> Option<Envelope> {
    let parts: Vec<String> = serde_json::from_str(member).ok()?;
    if parts.len() < 2 || !parts.len().is_multiple_of(2) {
        return None;
    }
    let fields = parts
        .chunks(2)
        .map(|pair| (pair[0].as_bytes(), pair[1].as_bytes()));
    Envelope::from_fields("0-0", fields).ok()
}

/// The value of the field `name` of a dead letter, as text.
fn field_text<'f>(fields: &'f [(String, Vec<u8>)], name: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// The index entry of a dead letter: `<entry id>:<group>`, with
/// `#<partition>` after the entry id on a partitioned stream and
/// `@<level>` on a priority level, whose streams give out the same entry
/// ids.
fn index_slot(fields: &[(String, Vec<u8>)]) -> Option<String> {
    let entry = field_text(fields, dead_letter_field::ENTRY_ID)?;
    let group = field_text(fields, dead_letter_field::GROUP)?;
    Some(slot_of(
        entry,
        field_text(fields, dead_letter_field::PARTITION),
        field_text(fields, dead_letter_field::LEVEL),
        group,
    ))
}

fn slot_of(entry: &str, partition: Option<&str>, level: Option<&str>, group: &str) -> String {
    let mut slot = entry.to_owned();
    if let Some(k) = partition {
        slot.push('#');
        slot.push_str(k);
    }
    if let Some(level) = level {
        slot.push('@');
        slot.push_str(level);
    }
    slot.push(':');
    slot.push_str(group);
    slot
}

/// The id `XADD *` would give after `last`.
fn next_id(last: Id) -> Id {
    let now = crate::envelope::now_millis().max(0) as u64;
    if now > last.0 {
        (now, 0)
    } else {
        (last.0, last.1 + 1)
    }
}

type Id = (u64, u64);

#[derive(Default)]
struct MemStream {
    entries: BTreeMap<Id, Arc<Envelope>>,
    last: Id,
    groups: HashMap<String, Group>,
    notify: Arc<Notify>,
}

struct Group {
    last_delivered: Id,
    pending: BTreeMap<Id, Pending>,
    /// Every consumer that read or claimed, and when it last did, as
    /// `XINFO CONSUMERS` reports them.
    consumers: BTreeMap<String, Instant>,
}

impl Group {
    fn seen(&mut self, consumer: &str, now: Instant) {
        match self.consumers.get_mut(consumer) {
            Some(t) => *t = now,
            None => {
                self.consumers.insert(consumer.to_owned(), now);
            }
        }
    }
}

struct Pending {
    consumer: String,
    since: Instant,
    deliveries: u32,
}

struct Subscriber {
    target: Target,
    tx: mpsc::Sender<Message>,
}

impl MemStream {
    fn push(&mut self, envelope: Arc<Envelope>) -> Id {
        let id = next_id(self.last);
        self.last = id;
        self.entries.insert(id, envelope);
        self.notify.notify_waiters();
        id
    }
}

/// The id right after `id`.
fn after((ms, seq): Id) -> Id {
    match seq.checked_add(1) {
        Some(seq) => (ms, seq),
        None => (ms.saturating_add(1), 0),
    }
}

fn format_id((ms, seq): Id) -> String {
    format!("{ms}-{seq}")
}

fn parse_id(s: &str) -> Option<Id> {
    match s.split_once('-') {
        Some((ms, seq)) => Some((ms.parse().ok()?, seq.parse().ok()?)),
        None => Some((s.parse().ok()?, 0)),
    }
}

/// The group a consumer reads or claims in, which now sees the consumer as
/// active, with the time it did.
fn reading<'g>(
    groups: &'g mut HashMap<String, Group>,
    command: &'static str,
    r: &ReadRequest<'_>,
) -> Result<(&'g mut Group, Instant), TransportError> {
    let group = groups
        .get_mut(r.group)
        .ok_or_else(|| no_group(command, r.key, r.group))?;
    let now = Instant::now();
    group.seen(r.consumer, now);
    Ok((group, now))
}

fn no_group(command: &'static str, key: &str, group: &str) -> TransportError {
    TransportError::Protocol {
        command,
        reason: format!("NOGROUP no consumer group `{group}` on stream `{key}`"),
    }
}

impl MemoryTransport {
    /// A new, empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// The broker of this process: every call returns the same one, so
    /// that the services of one process meet on it as they would on one
    /// Redis. [`Bus::from_env`](crate::Bus::from_env) uses it when
    /// `REDIS_URL` is not set.
    ///
    /// ```
    /// use tidings::memory::MemoryTransport;
    /// assert!(MemoryTransport::process().same_broker(&MemoryTransport::process()));
    /// assert!(!MemoryTransport::new().same_broker(&MemoryTransport::new()));
    /// ```
    pub fn process() -> Self {
        static PROCESS: std::sync::OnceLock<MemoryTransport> = std::sync::OnceLock::new();
        PROCESS.get_or_init(MemoryTransport::new).clone()
    }

    /// Whether both handles reach the same broker.
    pub fn same_broker(&self, other: &MemoryTransport) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn lock(&self) -> MutexGuard<'_, Broker> {
        // A panic while holding the lock cannot leave the broker half
        // updated in a way later calls would misread, so poisoning is ignored.
        let mut broker = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        broker.expire();
        broker
    }

    /// Number of entries in the stream `key` (0 if it does not exist).
    pub fn stream_len(&self, key: &str) -> usize {
        self.lock().streams.get(key).map_or(0, |s| s.entries.len())
    }

    /// Number of entries of `group` on `key` delivered and not yet acknowledged.
    pub fn pending_len(&self, key: &str, group: &str) -> usize {
        self.lock()
            .streams
            .get(key)
            .and_then(|s| s.groups.get(group))
            .map_or(0, |g| g.pending.len())
    }

    /// `(entry id, delivery count)` of every entry of `group` on `key`
    /// delivered and not yet acknowledged, as `XPENDING` lists them.
    pub fn pending_deliveries(&self, key: &str, group: &str) -> Vec<(String, u32)> {
        self.lock()
            .streams
            .get(key)
            .and_then(|s| s.groups.get(group))
            .map_or_else(Vec::new, |g| {
                g.pending
                    .iter()
                    .map(|(id, p)| (format_id(*id), p.deliveries))
                    .collect()
            })
    }

    /// Moves the group `group` of the stream `key` to `start`, as
    /// `XGROUP SETID <key> <group> <$|0|id>` does on Redis: its next read
    /// delivers the entries after that position again (to re-run a group
    /// over a stream). Entries pending in the group stay pending.
    pub fn set_group_position(
        &self,
        key: &str,
        group: &str,
        start: &StartFrom,
    ) -> Result<(), TransportError> {
        let mut broker = self.lock();
        let stream = broker
            .streams
            .get_mut(key)
            .ok_or_else(|| no_group("XGROUP", key, group))?;
        let position = match start {
            StartFrom::New => stream.last,
            StartFrom::Beginning => (0, 0),
            StartFrom::After(id) => parse_id(id).ok_or_else(|| TransportError::Protocol {
                command: "XGROUP",
                reason: format!("invalid stream id `{id}`"),
            })?,
        };
        let g = stream
            .groups
            .get_mut(group)
            .ok_or_else(|| no_group("XGROUP", key, group))?;
        g.last_delivered = position;
        Ok(())
    }

    /// `XCLAIM … 0 <ids> …`: the pending entries among `ids` go to
    /// `consumer`, idle from now, with `also` applied to each.
    fn claim<'i>(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        ids: impl IntoIterator<Item = &'i str>,
        also: impl Fn(&mut Pending),
    ) -> Result<(), TransportError> {
        let mut broker = self.lock();
        let Some(g) = broker.group_mut(key, group) else {
            return Err(no_group("XCLAIM", key, group));
        };
        let now = Instant::now();
        g.seen(consumer, now);
        for id in ids.into_iter().filter_map(parse_id) {
            if let Some(p) = g.pending.get_mut(&id) {
                p.consumer = consumer.to_owned();
                p.since = now;
                also(p);
            }
        }
        Ok(())
    }

    fn take_new(stream: &mut MemStream, r: &ReadRequest<'_>) -> Result<Vec<Entry>, TransportError> {
        let (group, now) = reading(&mut stream.groups, "XREADGROUP", r)?;
        let mut out = Vec::new();
        let after = (
            std::ops::Bound::Excluded(group.last_delivered),
            std::ops::Bound::Unbounded,
        );
        for (id, env) in stream.entries.range(after).take(r.count.max(1)) {
            group.pending.insert(
                *id,
                Pending {
                    consumer: r.consumer.to_owned(),
                    since: now,
                    deliveries: 1,
                },
            );
            group.last_delivered = *id;
            out.push(Entry::new(format_id(*id), Ok(env.clone())));
        }
        Ok(out)
    }
}

impl StreamTransport for MemoryTransport {
    type Reader = ();

    fn name(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), TransportError> {
        Ok(())
    }

    async fn append(&self, batch: &[(&str, Outgoing<'_>)]) -> Result<Vec<String>, TransportError> {
        let mut ids = Vec::with_capacity(batch.len());
        let mut broker = self.lock();
        for (key, o) in batch {
            let stream = broker.stream(key);
            ids.push(format_id(stream.push(Arc::new(o.to_envelope()))));
        }
        Ok(ids)
    }

    async fn reader(&self) -> Result<(), TransportError> {
        Ok(())
    }

    async fn append_if_exists(
        &self,
        key: &str,
        event: Outgoing<'_>,
        max_len: usize,
    ) -> Result<Option<String>, TransportError> {
        let mut broker = self.lock();
        let Some(stream) = broker.streams.get_mut(key) else {
            return Ok(None);
        };
        let id = stream.push(Arc::new(event.to_envelope()));
        while stream.entries.len() > max_len.max(1) {
            stream.entries.pop_first();
        }
        Ok(Some(format_id(id)))
    }

    async fn delay(
        &self,
        delayed: &str,
        due: i64,
        event: Outgoing<'_>,
    ) -> Result<(), TransportError> {
        let member = event.delayed_member();
        let mut broker = self.lock();
        let set = broker.delayed.entry(delayed.to_owned()).or_default();
        // ZADD updates the score of a member already there.
        set.retain(|(_, m)| *m != member);
        set.insert((due, member));
        Ok(())
    }

    async fn deliver_due(
        &self,
        delayed: &str,
        key: &str,
        now: i64,
        limit: usize,
    ) -> Result<DueDelivery, TransportError> {
        let mut broker = self.lock();
        let Some(set) = broker.delayed.get_mut(delayed) else {
            return Ok(DueDelivery::default());
        };
        let mut due = Vec::new();
        while due.len() < limit.max(1) {
            match set.first() {
                Some((at, _)) if *at <= now => {
                    if let Some(first) = set.pop_first() {
                        due.push(first.1);
                    }
                }
                _ => break,
            }
        }
        let next_due = set.first().map(|(at, _)| *at);
        if set.is_empty() {
            broker.delayed.remove(delayed);
        }
        let (mut moved, mut malformed) = (0, 0);
        for member in due {
            match delayed_envelope(&member) {
                Some(envelope) => {
                    broker.stream(key).push(Arc::new(envelope));
                    moved += 1;
                }
                None => malformed += 1,
            }
        }
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
        let mut broker = self.lock();
        let parsed = parse_id(id).ok_or_else(|| TransportError::Protocol {
            command: "EVAL",
            reason: format!("invalid stream id `{id}`"),
        })?;
        let stream = broker
            .streams
            .get_mut(key)
            .ok_or_else(|| no_group("EVAL", key, group))?;
        let envelope = stream.entries.get(&parsed).cloned();
        let g = stream
            .groups
            .get_mut(group)
            .ok_or_else(|| no_group("EVAL", key, group))?;
        if g.pending.remove(&parsed).is_none() {
            return Ok(false);
        }
        let Some(envelope) = envelope else {
            return Ok(true);
        };
        // The entry's fields as `XRANGE` gives them (an earlier park's are
        // not among them: they live apart, in `Envelope::parked`), then the
        // new ones.
        let mut parts: Vec<String> = Vec::new();
        for (name, value) in envelope.to_all_fields() {
            parts.push(name);
            parts.push(String::from_utf8_lossy(&value).into_owned());
        }
        for (name, value) in extra {
            parts.push((*name).to_owned());
            parts.push(value.clone());
        }
        let member = serde_json::to_string(&parts).unwrap_or_default();
        let set = broker.delayed.entry(delayed.to_owned()).or_default();
        set.retain(|(_, m)| *m != member);
        set.insert((due, member));
        Ok(true)
    }

    async fn lease(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        op: Lease,
    ) -> Result<bool, TransportError> {
        let mut broker = self.lock();
        let now = Instant::now();
        let current = broker
            .leases
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(o, _)| o.clone());
        let mine = current.as_deref() == Some(owner);
        let done = match op {
            Lease::Take if current.is_none() || mine => {
                broker
                    .leases
                    .insert(key.to_owned(), (owner.to_owned(), now + ttl));
                true
            }
            Lease::Renew if mine => {
                broker
                    .leases
                    .insert(key.to_owned(), (owner.to_owned(), now + ttl));
                true
            }
            Lease::Release if mine => {
                broker.leases.remove(key);
                true
            }
            _ => false,
        };
        Ok(done)
    }

    async fn take_pending(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        start: &str,
        count: usize,
    ) -> Result<String, TransportError> {
        let mut broker = self.lock();
        let Some(g) = broker.group_mut(key, group) else {
            return Err(no_group("XAUTOCLAIM", key, group));
        };
        let from = parse_id(start).unwrap_or((0, 0));
        let mut next = "0-0".to_owned();
        for (taken, (id, p)) in g.pending.range_mut(from..).enumerate() {
            if taken >= count.max(1) {
                next = format_id(*id);
                break;
            }
            p.consumer = consumer.to_owned();
        }
        Ok(next)
    }

    async fn members(
        &self,
        key: &str,
        member: &str,
        now: i64,
        ttl: Duration,
        leave: bool,
    ) -> Result<usize, TransportError> {
        let mut broker = self.lock();
        let set = broker.members.entry(key.to_owned()).or_default();
        if leave {
            set.remove(member);
        } else {
            set.insert(member.to_owned(), now);
        }
        let oldest = now.saturating_sub(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        set.retain(|_, seen| *seen > oldest);
        Ok(set.len())
    }

    async fn keep_alive(&self, key: &str, ttl: Duration) -> Result<(), TransportError> {
        let mut broker = self.lock();
        broker.stream(key);
        broker.expiry.insert(key.to_owned(), Instant::now() + ttl);
        Ok(())
    }

    async fn read_streams(
        &self,
        _reader: &mut (),
        streams: &[(&str, &str)],
        count: usize,
        block: Duration,
    ) -> Result<Vec<(usize, Entry)>, TransportError> {
        let mut after = Vec::with_capacity(streams.len());
        for (_, id) in streams {
            after.push(parse_id(id).ok_or_else(|| TransportError::Protocol {
                command: "XREAD",
                reason: format!("invalid stream id `{id}`"),
            })?);
        }
        let take = |broker: &Broker| {
            let mut out = Vec::new();
            for (i, ((key, _), from)) in streams.iter().zip(&after).enumerate() {
                if let Some(stream) = broker.streams.get(*key) {
                    let range = (std::ops::Bound::Excluded(*from), std::ops::Bound::Unbounded);
                    out.extend(
                        stream
                            .entries
                            .range(range)
                            .take(count.max(1))
                            .map(|(id, env)| (i, Entry::new(format_id(*id), Ok(env.clone())))),
                    );
                }
            }
            out
        };
        let deadline = tokio::time::Instant::now() + block;
        loop {
            // Every stream's signal and the one for new streams, registered
            // before looking, so that an append between the look and the
            // wait is not missed.
            let notifies: Vec<Arc<Notify>> = {
                let broker = self.lock();
                let out = take(&broker);
                if !out.is_empty() {
                    return Ok(out);
                }
                streams
                    .iter()
                    .filter_map(|(key, _)| broker.streams.get(*key).map(|s| s.notify.clone()))
                    .chain([broker.created.clone()])
                    .collect()
            };
            let mut waits: Vec<_> = notifies.iter().map(|n| Box::pin(n.notified())).collect();
            for w in &mut waits {
                w.as_mut().enable();
            }
            {
                let out = take(&self.lock());
                if !out.is_empty() {
                    return Ok(out);
                }
            }
            let any = futures::future::select_all(waits);
            if tokio::time::timeout_at(deadline, any).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn create_group(
        &self,
        key: &str,
        group: &str,
        start: &StartFrom,
    ) -> Result<(), TransportError> {
        let mut broker = self.lock();
        let stream = broker.stream(key);
        let last_delivered = match start {
            StartFrom::New => stream.last,
            StartFrom::Beginning => (0, 0),
            StartFrom::After(id) => parse_id(id).ok_or_else(|| TransportError::Protocol {
                command: "XGROUP",
                reason: format!("invalid stream id `{id}`"),
            })?,
        };
        stream
            .groups
            .entry(group.to_owned())
            .or_insert_with(|| Group {
                last_delivered,
                pending: BTreeMap::new(),
                consumers: BTreeMap::new(),
            });
        Ok(())
    }

    async fn read_group(
        &self,
        _reader: &mut (),
        r: ReadRequest<'_>,
    ) -> Result<Vec<Entry>, TransportError> {
        let deadline = tokio::time::Instant::now() + r.block;
        loop {
            let notify = {
                let mut broker = self.lock();
                let stream = broker
                    .streams
                    .get_mut(r.key)
                    .ok_or_else(|| no_group("XREADGROUP", r.key, r.group))?;
                let out = Self::take_new(stream, &r)?;
                if !out.is_empty() {
                    return Ok(out);
                }
                stream.notify.clone()
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            // Registered before looking again, so an append between the look
            // and the wait is not missed.
            notified.as_mut().enable();
            {
                let mut broker = self.lock();
                if let Some(stream) = broker.streams.get_mut(r.key) {
                    let out = Self::take_new(stream, &r)?;
                    if !out.is_empty() {
                        return Ok(out);
                    }
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn read_own_pending(
        &self,
        _reader: &mut (),
        r: ReadRequest<'_>,
        after: &str,
    ) -> Result<(Vec<Entry>, Option<String>), TransportError> {
        let after = parse_id(after).ok_or_else(|| TransportError::Protocol {
            command: "XREADGROUP",
            reason: format!("`{after}` is not an entry id"),
        })?;
        let mut broker = self.lock();
        let stream = broker
            .streams
            .get_mut(r.key)
            .ok_or_else(|| no_group("XREADGROUP", r.key, r.group))?;
        let (group, _) = reading(&mut stream.groups, "XREADGROUP", &r)?;
        let mut out = Vec::new();
        let mut last = None;
        let range = (std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded);
        for (id, p) in group.pending.range(range) {
            if out.len() >= r.count.max(1) {
                break;
            }
            if p.consumer != r.consumer {
                continue;
            }
            last = Some(*id);
            if let Some(env) = stream.entries.get(id) {
                out.push(Entry::new(format_id(*id), Ok(env.clone())).with_deliveries(p.deliveries));
            }
        }
        group
            .pending
            .retain(|id, _| stream.entries.contains_key(id));
        Ok((out, last.map(format_id)))
    }

    async fn claim_idle(
        &self,
        _reader: &mut (),
        r: ReadRequest<'_>,
        min_idle: Duration,
        start: &str,
    ) -> Result<(Vec<Entry>, String), TransportError> {
        let mut broker = self.lock();
        let stream = broker
            .streams
            .get_mut(r.key)
            .ok_or_else(|| no_group("XAUTOCLAIM", r.key, r.group))?;
        let (group, now) = reading(&mut stream.groups, "XAUTOCLAIM", &r)?;
        let mut out = Vec::new();
        // As XAUTOCLAIM: from the cursor on, and the next cursor is the
        // first pending entry not looked at (`0-0` past the last).
        let from = parse_id(start).unwrap_or((0, 0));
        let mut next = "0-0".to_owned();
        for (id, p) in group.pending.range_mut(from..) {
            if out.len() >= r.count.max(1) {
                next = format_id(*id);
                break;
            }
            if now.duration_since(p.since) < min_idle {
                continue;
            }
            if let Some(env) = stream.entries.get(id) {
                p.consumer = r.consumer.to_owned();
                p.since = now;
                p.deliveries = p.deliveries.saturating_add(1);
                out.push(Entry::new(format_id(*id), Ok(env.clone())).with_deliveries(p.deliveries));
            }
        }
        // As XAUTOCLAIM does since Redis 7: entries deleted while pending
        // leave the group.
        group
            .pending
            .retain(|id, _| stream.entries.contains_key(id));
        Ok((out, next))
    }

    async fn trim(
        &self,
        key: &str,
        retention: &crate::stats::Retention,
        dry_run: bool,
    ) -> Result<crate::stats::TrimReport, TransportError> {
        let mut report = crate::stats::TrimReport::default();
        let mut broker = self.lock();
        let Some(stream) = broker.streams.get_mut(key) else {
            return Ok(report);
        };
        // The same rule as the Redis script: the oldest id to keep by age
        // and by length, then bounded by every group.
        let mut target: Option<Id> = retention.max_age.map(|age| {
            let now = u64::try_from(crate::envelope::now_millis()).unwrap_or(0);
            let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            (now.saturating_sub(age), 0)
        });
        if let Some(n) = retention.max_len {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if stream.entries.len() > n {
                let keep = match n {
                    0 => stream
                        .entries
                        .keys()
                        .next_back()
                        .map(|&(ms, seq)| after((ms, seq))),
                    _ => stream.entries.keys().rev().nth(n - 1).copied(),
                };
                target = target.max(keep);
            }
        }
        let Some(mut target) = target else {
            return Ok(report);
        };
        let mut bound: Option<Id> = None;
        let mut names: Vec<&String> = stream.groups.keys().collect();
        names.sort();
        for name in names {
            let g = &stream.groups[name];
            let mut gbound = after(g.last_delivered);
            if let Some((&oldest, _)) = g.pending.iter().next() {
                gbound = gbound.min(oldest);
            }
            if gbound < target {
                report.held_back_by.push(name.clone());
                bound = Some(bound.map_or(gbound, |b: Id| b.min(gbound)));
            }
        }
        if let Some(b) = bound {
            target = b;
        }
        let old: Vec<Id> = stream.entries.range(..target).map(|(id, _)| *id).collect();
        report.trimmed = old.len() as u64;
        report.min_id = Some(format_id(target));
        if !dry_run {
            for id in old {
                stream.entries.remove(&id);
            }
        }
        Ok(report)
    }

    async fn delete_group(&self, key: &str, group: &str) -> Result<bool, TransportError> {
        let mut broker = self.lock();
        Ok(broker
            .streams
            .get_mut(key)
            .is_some_and(|s| s.groups.remove(group).is_some()))
    }

    async fn move_group(
        &self,
        key: &str,
        group: &str,
        to: &StartFrom,
    ) -> Result<(), TransportError> {
        self.set_group_position(key, group, to)
    }

    async fn pending_entries(
        &self,
        key: &str,
        group: &str,
        count: usize,
    ) -> Result<Vec<crate::stats::PendingEntry>, TransportError> {
        let mut broker = self.lock();
        let Some(g) = broker.group_mut(key, group) else {
            return Err(no_group("XPENDING", key, group));
        };
        let now = Instant::now();
        Ok(g.pending
            .iter()
            .take(count.max(1))
            .map(|(id, p)| {
                crate::stats::PendingEntry::new(
                    format_id(*id),
                    p.consumer.clone(),
                    u64::try_from(now.duration_since(p.since).as_millis()).unwrap_or(u64::MAX),
                    p.deliveries,
                )
            })
            .collect())
    }

    async fn forget_consumer(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
    ) -> Result<bool, TransportError> {
        let mut broker = self.lock();
        let Some(g) = broker.group_mut(key, group) else {
            return Ok(false);
        };
        if g.pending.values().any(|p| p.consumer == consumer) {
            return Ok(false);
        }
        Ok(g.consumers.remove(consumer).is_some())
    }

    async fn ack(&self, key: &str, group: &str, ids: &[String]) -> Result<(), TransportError> {
        let mut broker = self.lock();
        let Some(g) = broker.group_mut(key, group) else {
            return Ok(());
        };
        for id in ids {
            if let Some(id) = parse_id(id) {
                g.pending.remove(&id);
            }
        }
        Ok(())
    }

    async fn ack_marking(
        &self,
        key: &str,
        group: &str,
        ids: &[String],
        marks: &[String],
        ttl: Duration,
    ) -> Result<(), TransportError> {
        {
            let mut broker = self.lock();
            let now = Instant::now();
            for m in marks {
                match broker.marks.get(m) {
                    Some(expiry) if *expiry > now => {}
                    _ => {
                        broker.marks.insert(m.clone(), now + ttl);
                    }
                }
            }
        }
        self.ack(key, group, ids).await
    }

    async fn marked(&self, marks: &[String]) -> Result<Vec<bool>, TransportError> {
        let mut broker = self.lock();
        let now = Instant::now();
        broker.marks.retain(|_, expiry| *expiry > now);
        Ok(marks.iter().map(|m| broker.marks.contains_key(m)).collect())
    }

    async fn touch(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        ids: &[String],
    ) -> Result<(), TransportError> {
        self.claim(key, group, consumer, ids.iter().map(String::as_str), |_| {})
    }

    async fn record_attempts(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        id: &str,
        attempts: u32,
    ) -> Result<(), TransportError> {
        self.claim(key, group, consumer, [id], |p| p.deliveries = attempts)
    }

    async fn dead_letter(
        &self,
        key: &str,
        dlq: &str,
        group: &str,
        id: &str,
        extra: &[(&'static str, String)],
    ) -> Result<DeadLettered, TransportError> {
        let mut broker = self.lock();
        let parsed = parse_id(id).ok_or_else(|| TransportError::Protocol {
            command: "EVAL",
            reason: format!("invalid stream id `{id}`"),
        })?;
        let stream = broker
            .streams
            .get_mut(key)
            .ok_or_else(|| no_group("EVAL", key, group))?;
        let envelope = stream.entries.get(&parsed).cloned();
        let g = stream
            .groups
            .get_mut(group)
            .ok_or_else(|| no_group("EVAL", key, group))?;
        if g.pending.remove(&parsed).is_none() {
            return Ok(DeadLettered::NotPending);
        }
        let Some(envelope) = envelope else {
            return Ok(DeadLettered::Gone);
        };
        if envelope.retry_group.as_deref().is_some_and(|g| g != group) {
            return Ok(DeadLettered::OtherGroup);
        }
        // Every field, extension attributes (`partitionkey`) included, as
        // the script on Redis copies them.
        let mut fields: Vec<(String, Vec<u8>)> = envelope.to_all_fields();
        let dead = broker.dead.entry(dlq.to_owned()).or_default();
        // The entry as the dead letter names it: a parked retry's entry in
        // the stream it was first read from.
        let extra_field = |field: &str| {
            extra
                .iter()
                .find(|(name, _)| *name == field)
                .map(|(_, v)| v.as_str())
        };
        let entry = extra_field(dead_letter_field::ENTRY_ID).unwrap_or(id);
        let slot = slot_of(
            entry,
            extra_field(dead_letter_field::PARTITION),
            extra_field(dead_letter_field::LEVEL),
            group,
        );
        let earlier = dead
            .index
            .get(&slot)
            .copied()
            .and_then(|earlier| dead.remove(earlier));
        let earlier_attempts = earlier
            .as_deref()
            .and_then(|f| field_text(f, dead_letter_field::ATTEMPTS))
            .and_then(|a| a.parse::<u64>().ok());
        let earlier_first = earlier
            .as_deref()
            .and_then(|f| field_text(f, dead_letter_field::FIRST_FAILURE))
            .map(str::to_owned);
        for (name, value) in extra {
            let value = match (*name, &earlier_attempts, &earlier_first) {
                (dead_letter_field::ATTEMPTS, Some(before), _) => match value.parse::<u64>() {
                    Ok(now) => before
                        .saturating_add(now)
                        .min(u64::from(u32::MAX))
                        .to_string(),
                    Err(_) => value.clone(),
                },
                (dead_letter_field::FIRST_FAILURE, _, Some(first)) => first.clone(),
                _ => value.clone(),
            };
            fields.push(((*name).to_owned(), value.into_bytes()));
        }
        let dead_id = next_id(dead.last);
        dead.last = dead_id;
        dead.entries.insert(dead_id, fields);
        dead.index.insert(slot, dead_id);
        Ok(if earlier.is_some() {
            DeadLettered::Updated
        } else {
            DeadLettered::Written
        })
    }

    async fn dead_letters(
        &self,
        dlq: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<RawEntry>, TransportError> {
        let broker = self.lock();
        let Some(dead) = broker.dead.get(dlq) else {
            return Ok(Vec::new());
        };
        let start = match after.and_then(parse_id) {
            Some(id) => std::ops::Bound::Excluded(id),
            None => std::ops::Bound::Unbounded,
        };
        Ok(dead
            .entries
            .range((start, std::ops::Bound::Unbounded))
            .take(count.max(1))
            .map(|(id, fields)| RawEntry::new(format_id(*id), fields.clone()))
            .collect())
    }

    async fn dead_letter_count(&self, dlq: &str) -> Result<usize, TransportError> {
        Ok(self.lock().dead.get(dlq).map_or(0, |d| d.entries.len()))
    }

    async fn requeue(
        &self,
        key: &str,
        dlq: &str,
        ids: &[String],
    ) -> Result<Vec<Option<String>>, TransportError> {
        let mut broker = self.lock();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let parsed = parse_id(id);
            let fields = parsed.and_then(|parsed| {
                broker
                    .dead
                    .get(dlq)
                    .and_then(|d| d.entries.get(&parsed).cloned())
            });
            let (Some(parsed), Some(fields)) = (parsed, fields) else {
                out.push(None);
                continue;
            };
            let mut envelope = Envelope::from_fields(
                id,
                fields
                    .iter()
                    .filter(|(k, _)| {
                        !k.starts_with("dlq_") && k != crate::envelope::field::DLQGROUP
                    })
                    .map(|(k, v)| (k.as_bytes(), &v[..])),
            )
            .map_err(|e| TransportError::Protocol {
                command: "EVAL",
                reason: format!("dead letter `{id}` is not an envelope: {e}"),
            })?;
            envelope.retry_group = field_text(&fields, dead_letter_field::GROUP)
                .filter(|g| !g.is_empty())
                .map(str::to_owned);
            if let Some(d) = broker.dead.get_mut(dlq) {
                d.remove(parsed);
            }
            let stream = broker.stream(key);
            out.push(Some(format_id(stream.push(Arc::new(envelope)))));
        }
        Ok(out)
    }

    async fn purge(&self, dlq: &str) -> Result<usize, TransportError> {
        Ok(self.lock().dead.remove(dlq).map_or(0, |d| d.entries.len()))
    }

    async fn purge_ids(&self, dlq: &str, ids: &[String]) -> Result<usize, TransportError> {
        let mut broker = self.lock();
        let Some(dead) = broker.dead.get_mut(dlq) else {
            return Ok(0);
        };
        Ok(ids
            .iter()
            .filter_map(|id| parse_id(id))
            .filter(|id| dead.remove(*id).is_some())
            .count())
    }

    async fn stream_stats(&self, key: &str, dlq: &str) -> Result<StreamStats, TransportError> {
        let broker = self.lock();
        let mut stats = StreamStats::new(key, dlq);
        stats.dead_letters = broker.dead.get(dlq).map_or(0, |d| d.entries.len() as u64);
        let Some(stream) = broker.streams.get(key) else {
            return Ok(stats);
        };
        let now = Instant::now();
        stats.exists = true;
        stats.length = stream.entries.len() as u64;
        stats.first_entry_id = stream.entries.keys().next().copied().map(format_id);
        stats.last_entry_id = stream.entries.keys().next_back().copied().map(format_id);
        stats.last_generated_id = Some(format_id(stream.last));
        // Entries are never deleted here, so every count is exact.
        stats.entries_added = Some(stream.entries.len() as u64);
        let mut names: Vec<&String> = stream.groups.keys().collect();
        names.sort();
        for name in names {
            let g = &stream.groups[name];
            let mut group = GroupStats::new(name.clone());
            group.pending = g.pending.len() as u64;
            group.last_delivered_id = format_id(g.last_delivered);
            let lag = stream
                .entries
                .range((
                    std::ops::Bound::Excluded(g.last_delivered),
                    std::ops::Bound::Unbounded,
                ))
                .count() as u64;
            group.lag = Some(lag);
            group.entries_read = Some(stats.length - lag);
            group.consumers = g
                .consumers
                .iter()
                .map(|(c, seen)| {
                    let pending = g.pending.values().filter(|p| &p.consumer == c).count();
                    let idle = now.duration_since(*seen).as_millis();
                    ConsumerStats::new(
                        c.clone(),
                        pending as u64,
                        u64::try_from(idle).unwrap_or(u64::MAX),
                    )
                })
                .collect();
            stats.groups.push(group);
        }
        Ok(stats)
    }

    async fn range(
        &self,
        key: &str,
        from: &str,
        count: usize,
    ) -> Result<Vec<RawEntry>, TransportError> {
        let invalid = || TransportError::Protocol {
            command: "XRANGE",
            reason: format!("invalid stream id `{from}`"),
        };
        let start = match from {
            "-" => std::ops::Bound::Unbounded,
            _ => match from.strip_prefix('(') {
                Some(id) => std::ops::Bound::Excluded(parse_id(id).ok_or_else(invalid)?),
                None => std::ops::Bound::Included(parse_id(from).ok_or_else(invalid)?),
            },
        };
        let broker = self.lock();
        let Some(stream) = broker.streams.get(key) else {
            return Ok(Vec::new());
        };
        Ok(stream
            .entries
            .range((start, std::ops::Bound::Unbounded))
            .take(count.max(1))
            .map(|(id, env)| raw_entry(*id, env))
            .collect())
    }

    async fn last_entries(&self, key: &str, count: usize) -> Result<Vec<RawEntry>, TransportError> {
        let broker = self.lock();
        let Some(stream) = broker.streams.get(key) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<RawEntry> = stream
            .entries
            .iter()
            .rev()
            .take(count.max(1))
            .map(|(id, env)| raw_entry(*id, env))
            .collect();
        out.reverse();
        Ok(out)
    }

    async fn stream_keys(&self, pattern: &str) -> Result<Vec<String>, TransportError> {
        let broker = self.lock();
        let mut keys: Vec<String> = broker
            .streams
            .keys()
            .chain(broker.dead.keys())
            .filter(|k| glob::matches(pattern.as_bytes(), k.as_bytes()))
            .cloned()
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    async fn read_after(
        &self,
        _reader: &mut (),
        key: &str,
        after: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<RawEntry>, TransportError> {
        let after = parse_id(after).ok_or_else(|| TransportError::Protocol {
            command: "XREAD",
            reason: format!("invalid stream id `{after}`"),
        })?;
        let deadline = tokio::time::Instant::now() + block;
        let newer = |stream: &MemStream| -> Vec<RawEntry> {
            stream
                .entries
                .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .take(count.max(1))
                .map(|(id, env)| raw_entry(*id, env))
                .collect()
        };
        loop {
            let notify = {
                let broker = self.lock();
                match broker.streams.get(key) {
                    Some(stream) => {
                        let out = newer(stream);
                        if !out.is_empty() {
                            return Ok(out);
                        }
                        Some(stream.notify.clone())
                    }
                    None => None,
                }
            };
            let Some(notify) = notify else {
                // A stream that does not exist has nothing to wait on yet:
                // look again shortly, as a blocked `XREAD` would see it come.
                let again = (tokio::time::Instant::now() + MISSING_STREAM_POLL).min(deadline);
                tokio::time::sleep_until(again).await;
                if again >= deadline {
                    return Ok(Vec::new());
                }
                continue;
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            // Registered before looking again, so an append between the look
            // and the wait is not missed.
            notified.as_mut().enable();
            if let Some(stream) = self.lock().streams.get(key) {
                let out = newer(stream);
                if !out.is_empty() {
                    return Ok(out);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }
}

/// How often a read waiting on a stream that does not exist yet looks again.
const MISSING_STREAM_POLL: Duration = Duration::from_millis(20);

impl ChannelTransport for MemoryTransport {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn broadcast(&self, batch: &[(&str, Outgoing<'_>)]) -> Result<(), TransportError> {
        let mut broker = self.lock();
        broker.subscribers.retain(|s| !s.tx.is_closed());
        for (channel, o) in batch {
            let mut envelope = None;
            for sub in broker.subscribers.iter_mut() {
                let hit = match &sub.target {
                    Target::Channel(c) => c == channel,
                    Target::Pattern(p) => glob::matches(p.as_bytes(), channel.as_bytes()),
                };
                if !hit {
                    continue;
                }
                let env = envelope.get_or_insert_with(|| Arc::new(o.to_envelope()));
                let msg = Message {
                    channel: (*channel).to_owned(),
                    body: MessageBody::Envelope(env.clone()),
                };
                if sub.tx.try_send(msg).is_err() {
                    tracing::warn!(channel = %channel, "in-memory subscriber is full; message dropped (Pub/Sub is at most once)");
                }
            }
        }
        Ok(())
    }

    async fn subscribe(&self, target: Target) -> Result<MessageStream, TransportError> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        self.lock().subscribers.push(Subscriber { target, tx });
        Ok(Box::pin(rx))
    }
}

/// An entry as `XRANGE` shows it: the envelope's wire fields.
fn raw_entry(id: Id, envelope: &Envelope) -> RawEntry {
    // Every field, extension attributes included, as `XRANGE` on Redis.
    RawEntry::new(format_id(id), envelope.to_all_fields())
}
