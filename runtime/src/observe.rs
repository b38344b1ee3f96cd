//! What an operator reads of a stream: its length, its consumer groups with
//! their lag and pending entries, its dead letters (as [`StreamStats`]), and
//! read-only access to its entries, for dashboards, alerts and the `tidings`
//! command line.
//!
//! ```
//! # async fn run() -> Result<(), tidings::Error> {
//! let bus = tidings::Bus::in_memory();
//! let stats = bus.stream_stats("contextual").await?;
//! for group in &stats.groups {
//!     println!("{}: lag {:?}, pending {}", group.name, group.lag, group.pending);
//! }
//! # Ok(()) }
//! ```

use crate::bus::{on_streams, Bus};
use crate::error::Error;
use crate::stats::StreamStats;
use crate::transport::{RawEntry, StreamTransport};

impl Bus {
    /// A snapshot of a stream (of this bus's tenant): length, first and last
    /// entry, dead letters, and each consumer group with its consumers,
    /// pending entries and lag.
    ///
    /// ```text
    /// TYPE <key>
    /// XLEN <key>:dlq
    /// XINFO STREAM <key>
    /// XINFO GROUPS <key>
    /// XINFO CONSUMERS <key> <group>          (one per group)
    /// ```
    ///
    /// The commands run in three pipelined round trips, not in one
    /// transaction: under load the numbers may be a few milliseconds apart.
    /// A stream that does not exist gives `exists: false` (see
    /// [`StreamStats`]).
    ///
    /// ```
    /// # async fn run() -> Result<(), tidings::Error> {
    /// let bus = tidings::Bus::in_memory();
    /// let stats = bus.tenant("acme")?.stream_stats("contextual").await?;
    /// assert_eq!(stats.key, "tidings:{acme:contextual}");
    /// assert!(!stats.exists);
    /// # Ok(()) }
    /// ```
    pub async fn stream_stats(&self, stream: &str) -> Result<StreamStats, Error> {
        let key = self.stream_key(stream)?;
        let dlq = self.dead_letter_key(stream)?;
        let mut stats = self
            .patiently("XINFO", || async {
                on_streams!(self.backend(), t => t.stream_stats(&key, &dlq))
            })
            .await?;
        stats.stream = stream.to_owned();
        stats.tenant = self.tenant_name().map(str::to_owned);
        Ok(stats)
    }

    /// Up to `count` entries of a stream (of this bus's tenant), oldest
    /// first, from the entry id `from` on (`from` included; `-` for the
    /// oldest). Read-only: no consumer group is involved, nothing is
    /// acknowledged. The fields are raw, so an entry that is not an
    /// envelope is shown too; read one with
    /// [`Envelope::from_fields`](crate::Envelope::from_fields).
    ///
    /// ```text
    /// XRANGE <key> <from> + COUNT <count>
    /// ```
    ///
    /// An entry id for a point in time is `<unix-ms>-0`.
    pub async fn range(
        &self,
        stream: &str,
        from: &str,
        count: usize,
    ) -> Result<Vec<RawEntry>, Error> {
        let key = self.stream_key(stream)?;
        self.patiently("XRANGE", || async {
            on_streams!(self.backend(), t => t.range(&key, from, count))
        })
        .await
    }

    /// The names of the streams of this bus's scope (the root scope, or its
    /// tenant's), sorted: every key `ns:{<stream>}` (`ns:{<tenant>:<stream>}`)
    /// that holds a stream. Dead letters, reply streams and other tenants'
    /// streams are not listed. A stream is there once something was
    /// published to it or a group made it.
    ///
    /// ```text
    /// SCAN <cursor> MATCH ns:{*} COUNT 1000 TYPE stream     (ns:{tenant:*} for a tenant)
    /// ```
    ///
    /// ```
    /// # async fn run() -> Result<(), tidings::Error> {
    /// let bus = tidings::Bus::in_memory();
    /// assert!(bus.streams().await?.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn streams(&self) -> Result<Vec<String>, Error> {
        // The namespace and the tenant hold no glob character (their names
        // are checked), so the pattern matches this scope's keys only.
        let prefix = match self.tenant_name() {
            Some(t) => format!("{}:{{{t}:", self.namespace()),
            None => format!("{}:{{", self.namespace()),
        };
        let pattern = format!("{prefix}*}}");
        let keys = self
            .patiently("SCAN", || async {
                on_streams!(self.backend(), t => t.stream_keys(&pattern))
            })
            .await?;
        let mut names: Vec<String> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix)?.strip_suffix('}'))
            // A `:` inside the braces is a tenant's stream, or a reply
            // stream (`reply:<instance>`); neither is this scope's.
            .filter(|name| crate::bus::check_name("stream", name).is_ok())
            .map(str::to_owned)
            .collect();
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    /// The newest `count` entries of a stream (of this bus's tenant),
    /// oldest first. Read-only, like [`Bus::range`].
    ///
    /// ```text
    /// XREVRANGE <key> + - COUNT <count>
    /// ```
    pub async fn last_entries(&self, stream: &str, count: usize) -> Result<Vec<RawEntry>, Error> {
        let key = self.stream_key(stream)?;
        self.patiently("XREVRANGE", || async {
            on_streams!(self.backend(), t => t.last_entries(&key, count))
        })
        .await
    }
}

/// Entries of a stream as they are added, from [`Bus::follow`]: read with
/// `XREAD BLOCK` on a connection of its own, no consumer group involved.
///
/// Each item is an entry, oldest first, with its raw fields (read one with
/// [`Envelope::from_fields`](crate::Envelope::from_fields)), or an error
/// of a read that failed; after an error the stream goes on, reading again
/// from the last entry it yielded once Redis answers. It ends only when
/// dropped.
pub struct Follow {
    rx: tokio::sync::mpsc::Receiver<Result<RawEntry, Error>>,
}

impl std::fmt::Debug for Follow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follow").finish_non_exhaustive()
    }
}

impl futures::Stream for Follow {
    type Item = Result<RawEntry, Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// How long one `XREAD` of [`Bus::follow`] blocks before it is sent again.
const FOLLOW_BLOCK: std::time::Duration = std::time::Duration::from_secs(5);

/// Entries [`Bus::follow`] reads at most per `XREAD`, and keeps for a reader
/// that has not taken them yet (past it, reading waits for the reader).
const FOLLOW_BATCH: usize = 256;

impl Bus {
    /// Follows a stream (of this bus's tenant): every entry added after the
    /// entry id `after`, or, with `None`, after the last entry at the time
    /// of the call. Read-only, like [`Bus::range`]; for live views.
    ///
    /// ```text
    /// XREVRANGE <key> + - COUNT 1                 (only with `after: None`)
    /// XREAD COUNT 256 BLOCK 5000 STREAMS <key> <after>   (again and again)
    /// ```
    ///
    /// Fails before anything is sent on a stream name that breaks the rule
    /// of [`Bus::tenant`], or an `after` that is not an entry id
    /// ([`Error::InvalidEntryId`]).
    ///
    /// ```
    /// # async fn run() -> Result<(), tidings::Error> {
    /// let bus = tidings::Bus::in_memory();
    /// assert!(bus.follow("contextual", Some("1732442400123-0")).await.is_ok());
    /// assert!(bus.follow("contextual", Some("$")).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn follow(&self, stream: &str, after: Option<&str>) -> Result<Follow, Error> {
        let key = self.stream_key(stream)?;
        let after = match after {
            Some(id) => {
                crate::id::check_entry_id("entry id", id, &key, "")?;
                id.to_owned()
            }
            None => self
                .last_entries(stream, 1)
                .await?
                .pop()
                .map_or_else(|| "0-0".to_owned(), |e| e.id),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(FOLLOW_BATCH);
        match self.backend() {
            crate::bus::Backend::Redis { streams, .. } => {
                tokio::spawn(follow(streams.clone(), key, after, tx));
            }
            crate::bus::Backend::Memory(m) => {
                tokio::spawn(follow(m.clone(), key, after, tx));
            }
        }
        Ok(Follow { rx })
    }
}

/// The reading loop of [`Bus::follow`]: ends when the [`Follow`] is dropped.
async fn follow<T: StreamTransport>(
    transport: T,
    key: String,
    mut after: String,
    tx: tokio::sync::mpsc::Sender<Result<RawEntry, Error>>,
) {
    let backoff = crate::backoff::Backoff::new(
        std::time::Duration::from_millis(50),
        std::time::Duration::from_secs(2),
    );
    let mut failed = 0u32;
    let mut reader = None;
    loop {
        let read = async {
            let r = match &mut reader {
                Some(r) => r,
                None => reader.insert(transport.reader().await?),
            };
            transport
                .read_after(r, &key, &after, FOLLOW_BATCH, FOLLOW_BLOCK)
                .await
        };
        let result = tokio::select! {
            r = read => r,
            () = tx.closed() => return,
        };
        match result {
            Ok(entries) => {
                failed = 0;
                for entry in entries {
                    after.clone_from(&entry.id);
                    if tx.send(Ok(entry)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                failed = failed.saturating_add(1);
                tracing::debug!(key = %key, error = %e, "following a stream: XREAD failed");
                if tx.send(Err(Error::from(e))).await.is_err() {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff.delay(failed)) => {}
                    () = tx.closed() => return,
                }
            }
        }
    }
}
