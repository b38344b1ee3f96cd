//! Dead letters: entries no handler could process, kept in `ns:{stream}:dlq`
//! with every original field and why they failed, to be listed, retried or
//! purged.

mod fields;

use std::fmt;

pub(crate) use fields::Burial;
pub use fields::{field, DeadLetter};

use crate::bus::{check_name, on_streams, Bus};
use crate::error::Error;
use crate::stats::Progress;
use crate::transport::{dead_letter_index_key, RawEntry, StreamTransport};

/// The dead letters of one stream, from [`Bus::dead_letters`].
///
/// One entry has at most one dead letter per consumer group: a group that
/// gives up on the same entry again (its position moved back, say) updates
/// its dead letter instead of adding one. A retry puts a dead letter back
/// for the group that gave up on it only.
///
/// ```
/// # async fn run() -> Result<(), tidings::Error> {
/// let bus = tidings::Bus::in_memory();
/// let dlq = bus.dead_letters("contextual")?;
/// for letter in dlq.list(10).await? {
///     println!("{} failed in {}: {}", letter.entry_id, letter.group, letter.error);
/// }
/// dlq.retry_group("indexer").await?; // back to `indexer` only, same event ids
/// dlq.purge_group("thumbnailer").await?;
/// dlq.retry_all().await?;            // each back to the group that gave up on it
/// assert_eq!(dlq.len().await?, 0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DeadLetters {
    bus: Bus,
    stream: String,
    stream_key: String,
    dlq_key: String,
    index_key: String,
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters")
            .field("stream", &self.stream_key)
            .field("key", &self.dlq_key)
            .finish()
    }
}

/// Dead letters read, then moved back or deleted, per call of
/// [`DeadLetters::retry_all`], [`DeadLetters::retry_group`] and
/// [`DeadLetters::purge_group`].
const PAGE: usize = 100;

/// What to do with the dead letters a sweep selects.
#[derive(Clone, Copy)]
enum Sweep {
    Retry,
    Purge,
}

impl DeadLetters {
    fn new(bus: Bus, stream: &str) -> Result<Self, Error> {
        let dlq_key = bus.dead_letter_key(stream)?;
        Ok(DeadLetters {
            stream: stream.to_owned(),
            stream_key: bus.stream_key(stream)?,
            index_key: dead_letter_index_key(&dlq_key),
            dlq_key,
            bus,
        })
    }

    /// The key of the stream whose dead letters these are: `ns:{stream}`.
    pub fn stream_key(&self) -> &str {
        &self.stream_key
    }

    /// The key of the dead-letter stream: `ns:{stream}:dlq`.
    pub fn key(&self) -> &str {
        &self.dlq_key
    }

    /// The key of the index that keeps one dead letter per entry and group:
    /// `ns:{stream}:dlq:idx`, a hash from `<entry id>:<group>` to the
    /// dead letter's id.
    pub fn index_key(&self) -> &str {
        &self.index_key
    }

    /// The oldest `n` dead letters.
    ///
    /// ```text
    /// XRANGE ns:{stream}:dlq - + COUNT <n>
    /// ```
    pub async fn list(&self, n: usize) -> Result<Vec<DeadLetter>, Error> {
        let raw = self.page(None, n).await?;
        Ok(raw.into_iter().map(DeadLetter::from_raw).collect())
    }

    /// Number of dead letters.
    ///
    /// ```text
    /// XLEN ns:{stream}:dlq
    /// ```
    pub async fn len(&self) -> Result<usize, Error> {
        self.bus
            .patiently("XLEN", || async {
                on_streams!(self.bus.backend(), t => t.dead_letter_count(&self.dlq_key))
            })
            .await
    }

    /// Whether there is no dead letter.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    /// Puts one dead letter back into its stream for the group that gave up
    /// on it, and deletes it from dead letters, in one atomic step. On a
    /// stream with partitions ([`BusBuilder::partitions`](crate::BusBuilder::partitions)),
    /// whose dead letters are all kept in `ns:{stream}:dlq`, it goes back to
    /// the partition it was read from (`ns:{stream#<k>}`, its
    /// `dlq_partition`), so that the group's worker for that partition
    /// handles it, whether this bus declares the partitions or not (the
    /// CLI's does not); one without that field goes to the partition of its
    /// `partitionkey` when this bus declares them. The
    /// entry has its original fields (the same event id, so an inbox still
    /// knows it; an older version is upcast by the reader as usual) and
    /// `dlqgroup` naming that group: the group handles it again, and every
    /// other group of the stream acknowledges it without handling it.
    /// Returns the new entry id, or `None` when `id` is not a dead letter.
    ///
    /// Fails with [`Error::InvalidEntryId`], before anything is sent, when
    /// `id` is not a stream entry id (`<milliseconds>-<sequence>`).
    ///
    /// ```text
    /// XRANGE ns:{stream}:dlq (<id - 1> + COUNT 1
    /// EVAL <script> 3 ns:{stream} ns:{stream}:dlq ns:{stream}:dlq:idx <id>
    ///   -- XRANGE the dead letter, XADD its original fields and dlqgroup,
    ///   -- XDEL it, HDEL its index entry
    /// ```
    pub async fn retry(&self, id: &str) -> Result<Option<String>, Error> {
        let ids = [self.checked(id)?];
        let mut out = match self.one(&ids[0]).await? {
            Some(letter) => self.requeue(&[letter]).await?,
            None => vec![None],
        };
        Ok(out.pop().flatten())
    }

    /// The dead letter `id` (a checked entry id), if it is there: the first
    /// one after the id just before it.
    async fn one(&self, id: &str) -> Result<Option<RawEntry>, Error> {
        let before = id
            .split_once('-')
            .and_then(|(ms, seq)| Some((ms.parse::<u64>().ok()?, seq.parse::<u64>().ok()?)))
            .and_then(|(ms, seq)| match (ms, seq) {
                (_, 1..) => Some(format!("{ms}-{}", seq - 1)),
                (1.., 0) => Some(format!("{}-{}", ms - 1, u64::MAX)),
                (0, 0) => None,
            });
        let found = self.page(before.as_deref(), 1).await?;
        Ok(found.into_iter().find(|e| e.id == id))
    }

    /// Moves dead letters back, each to its stream (and to the priority
    /// level it was read from, its `dlq_level`): on a stream with
    /// partitions, the partition it was read from (its `dlq_partition`),
    /// or for one without that field the partition of its `partitionkey`
    /// when this bus declares the partitions (partition 0 without a key);
    /// one call per stream. A dead letter whose reply was lost and is moved
    /// again is no longer one, and comes back as `None`; the new entry ids
    /// come in the order given.
    async fn requeue(&self, letters: &[RawEntry]) -> Result<Vec<Option<String>>, Error> {
        let mut out = vec![None; letters.len()];
        // Each stream's key, with the dead letters (by place) that go there.
        let mut routes: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, letter) in letters.iter().enumerate() {
            let text = |name: &str| {
                letter
                    .fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .and_then(|(_, v)| std::str::from_utf8(v).ok())
            };
            // At most as many partitions as a stream may have.
            let read_from = text(field::PARTITION)
                .and_then(|k| k.parse::<u32>().ok())
                .filter(|k| *k < 1024);
            let to = match read_from {
                Some(k) => self.bus.partition_stream_key(&self.stream, k)?,
                None => self.bus.routed_key(
                    self.stream_key.clone(),
                    &self.stream,
                    text(crate::envelope::field::PARTITIONKEY),
                ),
            };
            // Back to the priority level it was read from.
            let level = text(field::LEVEL).and_then(crate::bus::Priority::from_name);
            let to = crate::bus::level_key(to, level);
            match routes.iter_mut().find(|(k, _)| *k == to) {
                Some((_, places)) => places.push(i),
                None => routes.push((to, vec![i])),
            }
        }
        for (to, places) in routes {
            let ids: Vec<String> = places.iter().map(|&i| letters[i].id.clone()).collect();
            let moved = self
                .bus
                .patiently("EVAL (retry)", || async {
                    on_streams!(self.bus.backend(), t => t.requeue(&to, &self.dlq_key, &ids))
                })
                .await?;
            for (i, id) in places.into_iter().zip(moved) {
                out[i] = id;
            }
        }
        Ok(out)
    }

    /// Puts back every dead letter that is there when the call starts
    /// (oldest first, a page at a time), each for the group that gave up on
    /// it (and to its partition), as [`DeadLetters::retry`] does; one that fails again while this
    /// runs is not picked up twice. Returns how many went back.
    pub async fn retry_all(&self) -> Result<usize, Error> {
        self.sweep(None, Sweep::Retry, &mut |_| {}).await
    }

    /// [`DeadLetters::retry_all`], telling `progress` after each page how
    /// many of the dead letters there were at the start have been looked at.
    ///
    /// ```
    /// # async fn run() -> Result<(), tidings::Error> {
    /// let bus = tidings::Bus::in_memory();
    /// let dlq = bus.dead_letters("contextual")?;
    /// let n = dlq
    ///     .retry_all_with(|p| eprintln!("{} of {} dead letters", p.done, p.total))
    ///     .await?;
    /// assert_eq!(n, 0);
    /// # Ok(()) }
    /// ```
    pub async fn retry_all_with(
        &self,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<usize, Error> {
        self.sweep(None, Sweep::Retry, &mut progress).await
    }

    /// Puts back every dead letter of `group` that is there when the call
    /// starts, as [`DeadLetters::retry_all`] does; the others stay. Returns
    /// how many went back.
    ///
    /// Fails on a group name that could not be a group's (see
    /// [`Bus::tenant`] for the rule).
    pub async fn retry_group(&self, group: &str) -> Result<usize, Error> {
        check_name("group", group)?;
        self.sweep(Some(group), Sweep::Retry, &mut |_| {}).await
    }

    /// [`DeadLetters::retry_group`], telling `progress` after each page how
    /// many of the dead letters there were at the start have been looked at.
    pub async fn retry_group_with(
        &self,
        group: &str,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<usize, Error> {
        check_name("group", group)?;
        self.sweep(Some(group), Sweep::Retry, &mut progress).await
    }

    /// Deletes every dead letter; returns how many there were.
    ///
    /// ```text
    /// EVAL "local n = XLEN KEYS[1]; DEL KEYS[1] KEYS[2]; return n" 2 ns:{stream}:dlq ns:{stream}:dlq:idx
    /// ```
    pub async fn purge(&self) -> Result<usize, Error> {
        self.bus
            .patiently("EVAL (purge)", || async {
                on_streams!(self.bus.backend(), t => t.purge(&self.dlq_key))
            })
            .await
    }

    /// Deletes the given dead letters, in one atomic step; returns how many
    /// of them were dead letters. An id that is not one is left out of the
    /// count.
    ///
    /// Fails with [`Error::InvalidEntryId`], before anything is deleted,
    /// when an id is not a stream entry id (`<milliseconds>-<sequence>`).
    ///
    /// ```text
    /// EVAL <script> 2 ns:{stream}:dlq ns:{stream}:dlq:idx <id> …
    ///   -- per id: XRANGE, XDEL, HDEL its index entry
    /// ```
    pub async fn purge_ids<S: AsRef<str>>(&self, ids: &[S]) -> Result<usize, Error> {
        let ids = ids
            .iter()
            .map(|id| self.checked(id.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        self.delete(&ids).await
    }

    /// Deletes every dead letter of `group` that is there when the call
    /// starts (a page at a time); the others stay. Returns how many went.
    ///
    /// Fails on a group name that could not be a group's (see
    /// [`Bus::tenant`] for the rule).
    pub async fn purge_group(&self, group: &str) -> Result<usize, Error> {
        check_name("group", group)?;
        self.sweep(Some(group), Sweep::Purge, &mut |_| {}).await
    }

    /// [`DeadLetters::purge_group`], telling `progress` after each page how
    /// many of the dead letters there were at the start have been looked at.
    pub async fn purge_group_with(
        &self,
        group: &str,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<usize, Error> {
        check_name("group", group)?;
        self.sweep(Some(group), Sweep::Purge, &mut progress).await
    }

    /// `id`, owned, if it is a stream entry id as the dead letters have:
    /// `<ms>-<seq>`. A bare `<ms>` is refused too: Redis reads it as every
    /// entry of that millisecond in a range.
    fn checked(&self, id: &str) -> Result<String, Error> {
        crate::id::check_entry_id(
            "dead-letter id",
            id,
            &self.dlq_key,
            ": the first column of `tidings dlq list`",
        )?;
        Ok(id.to_owned())
    }

    /// Up to `n` dead letters after `after` (from the oldest when `None`).
    async fn page(&self, after: Option<&str>, n: usize) -> Result<Vec<RawEntry>, Error> {
        self.bus
            .patiently("XRANGE", || async {
                on_streams!(self.bus.backend(), t => t.dead_letters(&self.dlq_key, after, n))
            })
            .await
    }

    /// Retries or deletes the dead letters that are there when the call
    /// starts (of `group`, or all), oldest first, a page at a time: as many
    /// as there were are looked at, so that one written meanwhile (a retry
    /// that failed again) is not taken.
    async fn sweep(
        &self,
        group: Option<&str>,
        sweep: Sweep,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<usize, Error> {
        let total = self.len().await?;
        let mut left = total;
        let mut after: Option<String> = None;
        let mut done = 0;
        progress(Progress { done: 0, total });
        while left > 0 {
            let page = self.page(after.as_deref(), left.min(PAGE)).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.id.clone());
            left = left.saturating_sub(page.len());
            let looked_at = total - left;
            let letters: Vec<RawEntry> = page
                .into_iter()
                .filter(|e| group.is_none_or(|g| group_of(e) == Some(g)))
                .collect();
            let ids: Vec<String> = letters.iter().map(|e| e.id.clone()).collect();
            done += match sweep {
                _ if ids.is_empty() => 0,
                Sweep::Retry => {
                    let out = self.requeue(&letters).await?;
                    out.iter().filter(|o| o.is_some()).count()
                }
                Sweep::Purge => self.delete(&ids).await?,
            };
            progress(Progress {
                done: looked_at,
                total,
            });
        }
        progress(Progress { done: total, total });
        Ok(done)
    }

    /// Deletes dead letters; returns how many were there.
    async fn delete(&self, ids: &[String]) -> Result<usize, Error> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.bus
            .patiently("EVAL (purge)", || async {
                on_streams!(self.bus.backend(), t => t.purge_ids(&self.dlq_key, ids))
            })
            .await
    }
}

/// The `dlq_group` of a raw dead letter.
fn group_of(entry: &RawEntry) -> Option<&str> {
    entry
        .fields
        .iter()
        .find(|(k, _)| k == field::GROUP)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

impl Bus {
    /// The dead letters of a stream (of this bus's tenant): list, retry, purge.
    ///
    /// Fails on a stream name that could reach another stream's or another
    /// tenant's keys (see [`Bus::tenant`] for the rule).
    ///
    /// ```
    /// let bus = tidings::Bus::in_memory();
    /// assert_eq!(bus.dead_letters("contextual")?.key(), "tidings:{contextual}:dlq");
    /// assert!(bus.dead_letters("acme:contextual").is_err());
    /// # Ok::<(), tidings::Error>(())
    /// ```
    pub fn dead_letters(&self, stream: &str) -> Result<DeadLetters, Error> {
        DeadLetters::new(self.clone(), stream)
    }
}
