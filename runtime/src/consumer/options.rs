use std::time::Duration;

use crate::transport::StartFrom;

/// How a worker reads its streams.
///
/// ```
/// use std::time::Duration;
/// use tidings::{ConsumerOptions, StartFrom};
///
/// let opts = ConsumerOptions::default()
///     .count(100)
///     .block(Duration::from_millis(500))
///     .start_from(StartFrom::Beginning)
///     .claim_idle(Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use]
pub struct ConsumerOptions {
    pub(crate) count: usize,
    pub(crate) block: Duration,
    pub(crate) start: StartFrom,
    pub(crate) name: Option<String>,
    pub(crate) claim_idle: Option<Duration>,
    pub(crate) claim_interval: Option<Duration>,
    pub(crate) prefetch: Option<usize>,
    pub(crate) min_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            count: 100,
            block: Duration::from_secs(1),
            start: StartFrom::New,
            name: None,
            claim_idle: Some(Duration::from_secs(60)),
            claim_interval: None,
            prefetch: None,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl ConsumerOptions {
    /// Most entries per read (`XREADGROUP … COUNT n`, default 100).
    pub fn count(mut self, count: usize) -> Self {
        self.count = count.max(1);
        self
    }

    /// Longest wait of one read (`BLOCK ms`, default 1 s). Shutdown waits
    /// for a read in progress, so this also bounds how long it takes.
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }

    /// Where a group created by this worker starts (default: new entries only, `$`).
    /// An existing group keeps its position.
    pub fn start_from(mut self, start: StartFrom) -> Self {
        self.start = start;
        self
    }

    /// Consumer name within the groups (default: `<source>-<ulid>`, unique per
    /// worker). Reuse a name across restarts to take back the same pending list.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Entries pending longer than this (their consumer died, or the handler
    /// failed) are claimed by this worker with `XAUTOCLAIM` and handled again
    /// (default 60 s; `None` never claims).
    pub fn claim_idle(mut self, min_idle: Option<Duration>) -> Self {
        self.claim_idle = min_idle;
        self
    }

    /// How often to look for idle entries (default: the `claim_idle` time).
    pub fn claim_interval(mut self, every: Duration) -> Self {
        self.claim_interval = Some(every);
        self
    }

    /// Most entries read and not yet finished per group (default: twice
    /// `count`). Reading waits when it is reached.
    pub fn prefetch(mut self, prefetch: usize) -> Self {
        self.prefetch = Some(prefetch.max(1));
        self
    }

    /// Wait after a failed read, doubled on each failure up to `max`
    /// (defaults 100 ms and 5 s): a restarting Redis is retried, not hammered.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    pub(crate) fn prefetch_or_default(&self) -> usize {
        self.prefetch.unwrap_or(self.count.saturating_mul(2)).max(1)
    }

    pub(crate) fn claim_interval_or(&self, min_idle: Duration) -> Duration {
        self.claim_interval.unwrap_or(min_idle)
    }
}
