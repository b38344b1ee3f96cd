//! Plain data of a stream snapshot: the stream, its consumer groups and
//! their consumers, as the transports read them and
//! [`Bus::stream_stats`](crate::Bus::stream_stats) returns them.

use serde::Serialize;

/// A snapshot of one stream, from [`Bus::stream_stats`](crate::Bus::stream_stats).
///
/// A stream that does not exist (nothing was ever published to it and no
/// group created it) is not an error: the snapshot says `exists: false`,
/// with no entries and no groups, and still counts its dead letters. A
/// dashboard can then show a service that has not published yet without a
/// special case, and a misspelt name is visible as `exists: false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StreamStats {
    /// The stream name as asked (`contextual`).
    pub stream: String,
    /// The tenant of the bus that asked, if any.
    pub tenant: Option<String>,
    /// The stream's key (`tidings:{contextual}`).
    pub key: String,
    /// Whether the key exists.
    pub exists: bool,
    /// Entries in the stream (`XLEN`).
    pub length: u64,
    /// Id of the oldest entry, if any.
    pub first_entry_id: Option<String>,
    /// Id of the newest entry, if any.
    pub last_entry_id: Option<String>,
    /// The last id the stream generated (an entry deleted since keeps it).
    pub last_generated_id: Option<String>,
    /// Entries ever added, deleted ones included (Redis 7 and later;
    /// `None` on an older server).
    pub entries_added: Option<u64>,
    /// Key of the dead letters (`tidings:{contextual}:dlq`).
    pub dead_letter_key: String,
    /// Entries in the dead letters.
    pub dead_letters: u64,
    /// The consumer groups, by name.
    pub groups: Vec<GroupStats>,
}

impl StreamStats {
    /// The snapshot of a stream that does not exist: no entries, no groups,
    /// no dead letters. Transports fill in what they find.
    pub fn new(key: impl Into<String>, dead_letter_key: impl Into<String>) -> Self {
        StreamStats {
            stream: String::new(),
            tenant: None,
            key: key.into(),
            exists: false,
            length: 0,
            first_entry_id: None,
            last_entry_id: None,
            last_generated_id: None,
            entries_added: None,
            dead_letter_key: dead_letter_key.into(),
            dead_letters: 0,
            groups: Vec::new(),
        }
    }

    /// The group named `name`, if the stream has it.
    pub fn group(&self, name: &str) -> Option<&GroupStats> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// One consumer group of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct GroupStats {
    /// Group name (a handler's `group`).
    pub name: String,
    /// Its consumers, by name.
    pub consumers: Vec<ConsumerStats>,
    /// Entries delivered to the group and not acknowledged yet: being
    /// handled, waiting for a retry, or held by a consumer that died (until
    /// another worker claims them).
    pub pending: u64,
    /// Id of the last entry delivered to the group.
    pub last_delivered_id: String,
    /// Entries the group has read, as Redis counts them (Redis 7 and later;
    /// `None` when Redis cannot tell).
    pub entries_read: Option<u64>,
    /// Entries in the stream not delivered to the group yet. `None` when
    /// Redis cannot tell (before Redis 7, or after entries were deleted in
    /// a way that makes the count unknown): it is never guessed.
    pub lag: Option<u64>,
}

impl GroupStats {
    /// A group with no consumers, nothing pending and nothing read.
    pub fn new(name: impl Into<String>) -> Self {
        GroupStats {
            name: name.into(),
            consumers: Vec::new(),
            pending: 0,
            last_delivered_id: "0-0".to_owned(),
            entries_read: None,
            lag: None,
        }
    }

    /// The consumer named `name`, if the group has it.
    pub fn consumer(&self, name: &str) -> Option<&ConsumerStats> {
        self.consumers.iter().find(|c| c.name == name)
    }
}

/// One consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// Consumer name (unique within its group).
    pub name: String,
    /// Entries delivered to this consumer and not acknowledged.
    pub pending: u64,
    /// Milliseconds since the consumer last read or claimed.
    pub idle_ms: u64,
}

impl ConsumerStats {
    /// A consumer.
    pub fn new(name: impl Into<String>, pending: u64, idle_ms: u64) -> Self {
        ConsumerStats {
            name: name.into(),
            pending,
            idle_ms,
        }
    }

    /// Time since the consumer last read or claimed.
    pub fn idle(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.idle_ms)
    }
}

/// One entry pending in a group: delivered to a consumer, not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PendingEntry {
    /// The stream entry id.
    pub id: String,
    /// The consumer it was delivered to.
    pub consumer: String,
    /// Milliseconds since it was last delivered.
    pub idle_ms: u64,
    /// How many times it was delivered.
    pub deliveries: u32,
}

impl PendingEntry {
    /// A pending entry.
    pub fn new(
        id: impl Into<String>,
        consumer: impl Into<String>,
        idle_ms: u64,
        deliveries: u32,
    ) -> Self {
        PendingEntry {
            id: id.into(),
            consumer: consumer.into(),
            idle_ms,
            deliveries,
        }
    }
}

/// How much of a stream to keep: entries younger than `max_age`, and/or the
/// newest `max_len`. Trimming never removes an entry that a group has not
/// read, or has read and not acknowledged: those bound it, and the
/// [`TrimReport`] names the groups that held it back.
///
/// ```
/// use std::time::Duration;
/// let keep = tidings::Retention::max_age(Duration::from_secs(90 * 24 * 3600)).and_max_len(1_000_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Entries older than this may go.
    pub max_age: Option<std::time::Duration>,
    /// Past this many entries, the oldest may go. The newest `max_len` are
    /// found by reading them inside Redis, which takes time in proportion:
    /// prefer `max_age` for long streams.
    pub max_len: Option<u64>,
    /// Whether to trim exactly (`XTRIM … =`) rather than whole internal
    /// nodes only (`~`, the default: cheaper, keeps a few more entries).
    pub exact: bool,
}

impl Retention {
    /// Keep entries younger than `age`.
    pub fn max_age(age: std::time::Duration) -> Self {
        Retention {
            max_age: Some(age),
            max_len: None,
            exact: false,
        }
    }

    /// Keep the newest `n` entries.
    pub fn max_len(n: u64) -> Self {
        Retention {
            max_age: None,
            max_len: Some(n),
            exact: false,
        }
    }

    /// Also keep at most the newest `n` entries.
    pub fn and_max_len(mut self, n: u64) -> Self {
        self.max_len = Some(n);
        self
    }

    /// Trims exactly (`XTRIM … MINID = id`) instead of approximately.
    pub fn exact(mut self) -> Self {
        self.exact = true;
        self
    }
}

/// What a trim did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TrimReport {
    /// Entries removed (or that would be).
    pub trimmed: u64,
    /// Entries older than this id were the ones to go; `None` when nothing
    /// was to go.
    pub min_id: Option<String>,
    /// Groups whose unread or unacknowledged entries held the trim back
    /// (the retention asked for more).
    pub held_back_by: Vec<String>,
}

/// What the reply reader of a bus has seen
/// ([`Bus::request_stats`](crate::Bus::request_stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestStats {
    /// Requests and waits open now.
    pub open: usize,
    /// Replies and awaited events handed to a waiting caller.
    pub delivered: u64,
    /// Replies that came when no request waited for them (after its
    /// timeout, or a second reply to one request): dropped.
    pub late_replies: u64,
}

/// How far a long operation has come: `done` of the `total` items there were
/// when it started (as [`DeadLetters::retry_all_with`](crate::DeadLetters::retry_all_with)
/// reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Items looked at so far.
    pub done: usize,
    /// Items there were at the start.
    pub total: usize,
}
