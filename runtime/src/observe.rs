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
