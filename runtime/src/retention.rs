//! Keeping streams from growing without bound: trims by age and length
//! that never remove what a group has not read or acknowledged.

use crate::bus::{on_streams, Bus};
use crate::error::Error;
use crate::stats::{Retention, TrimReport};
use crate::transport::StreamTransport;

impl Bus {
    /// Trims a stream (of this bus's tenant) to `retention`: removes the
    /// entries older than `max_age` and past the newest `max_len`, but never
    /// one that a consumer group has not read, or read and not acknowledged;
    /// the report names the groups that held the trim back. One atomic step
    /// on Redis.
    ///
    /// ```text
    /// EVAL <script> 1 ns:{stream} …   -- XINFO GROUPS, XPENDING, XTRIM MINID ~ <id>
    /// ```
    ///
    /// ```
    /// # async fn run() -> Result<(), tidings::Error> {
    /// use std::time::Duration;
    /// let bus = tidings::Bus::in_memory();
    /// let report = bus.trim("contextual", &tidings::Retention::max_age(Duration::from_secs(7 * 86_400))).await?;
    /// assert_eq!(report.trimmed, 0);
    /// # Ok(()) }
    /// ```
    ///
    /// Workers trim the streams they read in the background with
    /// [`ConsumerOptions::retention`](crate::ConsumerOptions::retention).
    pub async fn trim(&self, stream: &str, retention: &Retention) -> Result<TrimReport, Error> {
        self.trimmed(stream, retention, false).await
    }

    /// What [`Bus::trim`] would remove, removing nothing.
    pub async fn trim_dry_run(
        &self,
        stream: &str,
        retention: &Retention,
    ) -> Result<TrimReport, Error> {
        self.trimmed(stream, retention, true).await
    }

    async fn trimmed(
        &self,
        stream: &str,
        retention: &Retention,
        dry_run: bool,
    ) -> Result<TrimReport, Error> {
        let key = self.stream_key(stream)?;
        self.patiently("EVAL (trim)", || async {
            on_streams!(self.backend(), t => t.trim(&key, retention, dry_run))
        })
        .await
    }
}
