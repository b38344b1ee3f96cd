//! Dead letters: entries no handler could process, kept in `ns:{stream}:dlq`
//! with every original field and why they failed, to be listed, retried or
//! purged.

mod fields;

use std::fmt;

pub(crate) use fields::Burial;
pub use fields::{field, DeadLetter};

use crate::bus::{on_streams, Bus};
use crate::error::Error;
use crate::transport::{RawEntry, StreamTransport};

/// The dead letters of one stream, from [`Bus::dead_letters`].
///
/// ```
/// # async fn run() -> Result<(), tidings::Error> {
/// let bus = tidings::Bus::in_memory();
/// let dlq = bus.dead_letters("contextual")?;
/// for letter in dlq.list(10).await? {
///     println!("{} failed in {}: {}", letter.entry_id, letter.group, letter.error);
/// }
/// dlq.retry_all().await?;       // back into the stream, same event ids
/// assert_eq!(dlq.len().await?, 0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DeadLetters {
    bus: Bus,
    stream_key: String,
    dlq_key: String,
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters")
            .field("stream", &self.stream_key)
            .field("key", &self.dlq_key)
            .finish()
    }
}

/// Dead letters moved back per script call by [`DeadLetters::retry_all`].
const RETRY_PAGE: usize = 100;

impl DeadLetters {
    fn new(bus: Bus, stream: &str) -> Result<Self, Error> {
        Ok(DeadLetters {
            stream_key: bus.stream_key(stream)?,
            dlq_key: bus.dead_letter_key(stream)?,
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

    /// The oldest `n` dead letters.
    ///
    /// ```text
    /// XRANGE ns:{stream}:dlq - + COUNT <n>
    /// ```
    pub async fn list(&self, n: usize) -> Result<Vec<DeadLetter>, Error> {
        let raw: Vec<RawEntry> = self
            .bus
            .patiently("XRANGE", || async {
                on_streams!(self.bus.backend(), t => t.dead_letters(&self.dlq_key, None, n))
            })
            .await?;
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

    /// Puts one dead letter back into its stream, with its original fields
    /// (the same event id; an older version is upcast by the reader as
    /// usual) and `dlqgroup` naming the group that gave up on it, and
    /// deletes it from dead letters, in one atomic step. Only that group
    /// handles it again; every other group acknowledges it without handling
    /// it. Returns the new entry id, or `None` when `id` is not a dead letter.
    ///
    /// ```text
    /// EVAL <script> 2 ns:{stream} ns:{stream}:dlq <id>
    ///   -- XRANGE the dead letter, XADD its original fields, XDEL it
    /// ```
    pub async fn retry(&self, id: &str) -> Result<Option<String>, Error> {
        let ids = [id.to_owned()];
        let mut out = self.requeue(&ids).await?;
        Ok(out.pop().flatten())
    }

    /// Puts back every dead letter that is there when the call starts
    /// (oldest first, a page at a time); one that fails again while this
    /// runs is not picked up twice. Returns how many went back.
    pub async fn retry_all(&self) -> Result<usize, Error> {
        let mut left = self.len().await?;
        let mut moved = 0;
        while left > 0 {
            let page: Vec<RawEntry> = self
                .bus
                .patiently("XRANGE", || async {
                    on_streams!(self.bus.backend(), t =>
                        t.dead_letters(&self.dlq_key, None, left.min(RETRY_PAGE)))
                })
                .await?;
            if page.is_empty() {
                break;
            }
            left -= page.len();
            let ids: Vec<String> = page.into_iter().map(|e| e.id).collect();
            let out = self.requeue(&ids).await?;
            moved += out.iter().filter(|o| o.is_some()).count();
        }
        Ok(moved)
    }

    /// Deletes every dead letter; returns how many there were.
    ///
    /// ```text
    /// EVAL "local n = XLEN KEYS[1]; DEL KEYS[1]; return n" 1 ns:{stream}:dlq
    /// ```
    pub async fn purge(&self) -> Result<usize, Error> {
        self.bus
            .patiently("EVAL (purge)", || async {
                on_streams!(self.bus.backend(), t => t.purge(&self.dlq_key))
            })
            .await
    }

    /// Moves dead letters back; one whose reply was lost and is moved again
    /// is no longer a dead letter, and comes back as `None`.
    async fn requeue(&self, ids: &[String]) -> Result<Vec<Option<String>>, Error> {
        self.bus
            .patiently("EVAL (retry)", || async {
                on_streams!(self.bus.backend(), t => t.requeue(&self.stream_key, &self.dlq_key, ids))
            })
            .await
    }
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
