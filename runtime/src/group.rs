//! One consumer group of a stream, managed from code: create, delete, move
//! its position (replay after a bad deploy), list its consumers and pending
//! entries, and remove the consumers that stopped.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bus::{check_name, on_streams, Bus};
use crate::error::Error;
use crate::stats::{ConsumerStats, PendingEntry};
use crate::transport::{StartFrom, StreamTransport};

/// Where [`Group::set_position`] puts a group: its next read delivers the
/// entries after it, again if it read them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Position {
    /// Before the first entry: the whole stream again.
    Start,
    /// After the last entry: only what is published from now on.
    End,
    /// After the entry with this id (`<ms>-<seq>`).
    After(String),
    /// At this time: the entries published at or after it.
    Time(SystemTime),
}

impl Position {
    fn start_from(&self, key: &str) -> Result<StartFrom, Error> {
        Ok(match self {
            Position::Start => StartFrom::Beginning,
            Position::End => StartFrom::New,
            Position::After(id) => {
                crate::id::check_entry_id("group position", id, key, "")?;
                StartFrom::After(id.clone())
            }
            Position::Time(t) => {
                let ms = t
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                // The last id before `ms`: the next read starts at `ms-0`.
                match ms.checked_sub(1) {
                    Some(before) => StartFrom::After(format!("{before}-{}", u64::MAX)),
                    None => StartFrom::Beginning,
                }
            }
        })
    }
}

impl Bus {
    /// One consumer group of a stream (of this bus's tenant).
    ///
    /// Fails on a stream or group name that could reach another stream's or
    /// another tenant's keys (see [`Bus::tenant`] for the rule).
    ///
    /// ```
    /// # async fn run() -> Result<(), tidings::Error> {
    /// let bus = tidings::Bus::in_memory();
    /// let group = bus.group("contextual", "indexer")?;
    /// group.create(tidings::StartFrom::Beginning).await?;
    /// group.set_position(tidings::group::Position::Start).await?;
    /// assert!(group.pending(10).await?.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn group(&self, stream: &str, name: &str) -> Result<Group, Error> {
        check_name("group", name)?;
        Ok(Group {
            key: self.stream_key(stream)?,
            dlq: self.dead_letter_key(stream)?,
            name: name.to_owned(),
            bus: self.clone(),
        })
    }
}

/// A consumer group of one stream, from [`Bus::group`].
#[derive(Debug, Clone)]
pub struct Group {
    bus: Bus,
    key: String,
    dlq: String,
    name: String,
}

impl Group {
    /// The stream key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The group name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the group (and the stream, if missing); a group that exists
    /// keeps its position.
    ///
    /// ```text
    /// XGROUP CREATE <key> <group> <$|0|id> MKSTREAM      (BUSYGROUP ignored)
    /// ```
    pub async fn create(&self, start: StartFrom) -> Result<(), Error> {
        self.bus
            .patiently("XGROUP CREATE", || async {
                on_streams!(self.bus.backend(), t => t.create_group(&self.key, &self.name, &start))
            })
            .await
    }

    /// Deletes the group with its consumers and pending list; whether it
    /// existed. Entries stay in the stream.
    ///
    /// ```text
    /// XGROUP DESTROY <key> <group>
    /// ```
    pub async fn delete(&self) -> Result<bool, Error> {
        self.bus
            .patiently("XGROUP DESTROY", || async {
                on_streams!(self.bus.backend(), t => t.delete_group(&self.key, &self.name))
            })
            .await
    }

    /// Moves the group: its next read delivers the entries after `to`,
    /// again if it read them already (replay after a bad deploy), or skips
    /// ahead. Pending entries stay pending.
    ///
    /// ```text
    /// XGROUP SETID <key> <group> <$|0|id>
    /// ```
    pub async fn set_position(&self, to: Position) -> Result<(), Error> {
        let to = to.start_from(&self.key)?;
        self.bus
            .patiently("XGROUP SETID", || async {
                on_streams!(self.bus.backend(), t => t.move_group(&self.key, &self.name, &to))
            })
            .await
    }

    /// The consumers of the group, with their pending counts and idle times.
    ///
    /// ```text
    /// XINFO CONSUMERS <key> <group>       (through XINFO STREAM … FULL)
    /// ```
    pub async fn consumers(&self) -> Result<Vec<ConsumerStats>, Error> {
        let stats = self
            .bus
            .patiently("XINFO", || async {
                on_streams!(self.bus.backend(), t => t.stream_stats(&self.key, &self.dlq))
            })
            .await?;
        Ok(stats
            .group(&self.name)
            .map(|g| g.consumers.clone())
            .unwrap_or_default())
    }

    /// Up to `count` pending entries, oldest first: id, consumer, idle time
    /// and deliveries.
    ///
    /// ```text
    /// XPENDING <key> <group> - + <count>
    /// ```
    pub async fn pending(&self, count: usize) -> Result<Vec<PendingEntry>, Error> {
        self.bus
            .patiently("XPENDING", || async {
                on_streams!(self.bus.backend(), t => t.pending_entries(&self.key, &self.name, count))
            })
            .await
    }

    /// Removes the consumers that have nothing pending and have not read
    /// for `idle` (workers that stopped without removing themselves); a
    /// consumer with pending entries always stays, so that they can be
    /// claimed. Returns the names removed. Workers do this on their own
    /// ([`ConsumerOptions::forget_idle_consumers`](crate::ConsumerOptions::forget_idle_consumers)).
    pub async fn forget_idle_consumers(&self, idle: Duration) -> Result<Vec<String>, Error> {
        let mut removed = Vec::new();
        for c in self.consumers().await? {
            if c.pending > 0 || c.idle() < idle {
                continue;
            }
            let gone = self
                .bus
                .patiently("EVAL (forget consumer)", || async {
                    on_streams!(self.bus.backend(), t => t.forget_consumer(&self.key, &self.name, &c.name))
                })
                .await?;
            if gone {
                removed.push(c.name);
            }
        }
        Ok(removed)
    }
}
