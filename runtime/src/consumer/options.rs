//! How a worker reads: batch size, block time, start position, claims,
//! prefetch, inbox, consumer name.

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
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) inbox: Option<Duration>,
    pub(crate) forget_after: Option<Duration>,
    pub(crate) retention: Option<(crate::stats::Retention, Duration)>,
    pub(crate) delayed_poll: Option<Duration>,
    pub(crate) priorities: bool,
    pub(crate) partition_lease: Duration,
    pub(crate) park_after: Option<Duration>,
}

/// How often a worker looks for delayed events that fell due, when none is
/// due sooner: four calls a second per stream while idle, and a delayed
/// event appended at most this late.
pub(crate) const DEFAULT_DELAYED_POLL: Duration = Duration::from_millis(250);

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
            heartbeat: None,
            inbox: None,
            forget_after: Some(Duration::from_secs(600)),
            retention: None,
            delayed_poll: Some(DEFAULT_DELAYED_POLL),
            priorities: false,
            partition_lease: Duration::from_secs(10),
            park_after: None,
        }
    }
}

impl ConsumerOptions {
    /// Most entries per read (`XREADGROUP … COUNT n`, default 100).
    pub fn count(mut self, count: usize) -> Self {
        self.count = count.max(1);
        self
    }

    /// Longest wait of one read (`BLOCK ms`, default 1 s). A read that gets
    /// no reply within this and 2 s more takes the server for gone and
    /// connects again; shutdown ends a read at once.
    pub fn block(mut self, block: Duration) -> Self {
        // `BLOCK 0` would wait for ever: at least a millisecond.
        self.block = block.max(Duration::from_millis(1));
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

    /// How often the worker resets the idle time of the entries it holds
    /// (being handled or waiting for a retry), so that other workers, which
    /// claim entries idle for `claim_idle`, leave them alone (default: a
    /// third of `claim_idle`, or 20 s without it). Keep it well under the
    /// `claim_idle` of every worker of the group.
    ///
    /// ```text
    /// XCLAIM <key> <group> <consumer> 0 <id> … JUSTID
    /// ```
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = Some(every.max(Duration::from_millis(1)));
        self
    }

    /// Keeps an inbox per group: the id of each event the group handled is
    /// remembered for `ttl`, and a redelivery of it within that time is
    /// acknowledged without running the handlers again (default: none).
    ///
    /// The mark is `<stream key>:inbox:<group>:<event id>` (in the stream's
    /// Redis Cluster slot), set with `SET … 1 NX PX <ttl>` after the handlers
    /// succeeded, in the same round trip as the `XACK`; each batch read is
    /// checked with one pipeline of `EXISTS`. A copy of the event read
    /// before that round trip (by another worker, or from a retry sent the
    /// moment the handler returned) is handled again: the inbox narrows
    /// redeliveries to that window, and handlers stay idempotent.
    pub fn inbox(mut self, ttl: Option<Duration>) -> Self {
        self.inbox = ttl;
        self
    }

    /// Removes from the group, when it looks for idle entries, every other
    /// consumer that has nothing pending and has not read for this long
    /// (default 10 min; `None` keeps them): workers that stopped without
    /// removing themselves, so that the group lists the live ones. A live
    /// worker reads at least every `block`, and one removed by mistake is
    /// made again by its next read. A worker that shuts down with nothing
    /// pending removes itself in any case.
    ///
    /// ```text
    /// XINFO CONSUMERS <key> <group>
    /// EVAL "if XPENDING … <consumer> is empty then XGROUP DELCONSUMER …" 1 <key> <group> <consumer>
    /// ```
    pub fn forget_idle_consumers(mut self, after: Option<Duration>) -> Self {
        self.forget_after = after;
        self
    }

    /// Trims each stream the worker reads to `retention`, every `every`
    /// (as [`Bus::trim`](crate::Bus::trim): never an entry a group has not
    /// read or acknowledged), logging what went and which group held a
    /// trim back. Default: no trim.
    pub fn retention(mut self, retention: crate::stats::Retention, every: Duration) -> Self {
        self.retention = Some((retention, every.max(Duration::from_millis(1))));
        self
    }

    /// How often the worker moves the delayed events that fell due
    /// ([`Meta::deliver_at`](crate::Meta::deliver_at)) from
    /// `ns:{stream}:delayed` into each stream it reads (default 250 ms;
    /// `None`: never, for a worker that leaves it to others). One script
    /// call per stream each time, so an idle worker makes four calls a
    /// second per stream at the default; when the next delayed event is due
    /// sooner, it looks then instead, so an event is appended within a few
    /// milliseconds of its time once known, and at most `every` late when it
    /// was delayed while the worker waited. One worker per stream is enough;
    /// several share the work safely (each move is atomic).
    ///
    /// ```text
    /// EVALSHA <deliver-due> 2 ns:{stream}:delayed ns:{stream} <now ms> 1000
    /// ```
    pub fn delayed_poll(mut self, every: Option<Duration>) -> Self {
        self.delayed_poll = every.map(|d| d.max(Duration::from_millis(1)));
        self
    }

    /// Reads every priority level of each stream (default: the stream
    /// only): `ns:{stream}:high`, the stream itself (normal) and
    /// `ns:{stream}:low`, where [`Meta::priority`](crate::Meta::priority)
    /// publishes. Each level has a reading loop of its own (one more
    /// `XREADGROUP` connection each, same group); they share the handlers'
    /// concurrency, whose free slots go to the levels with entries waiting in
    /// the weighted round of [`Priority`](crate::Priority): high first, low
    /// never starved. Retries, dead letters and order per key work as on any
    /// stream, within each level. On a stream declared with partitions,
    /// these are the levels of each partition the worker holds
    /// (`ns:{stream#<k>}:high`, …), read under the partition's lease.
    ///
    /// ```
    /// let opts = tidings::ConsumerOptions::default().priorities(true);
    /// ```
    pub fn priorities(mut self, on: bool) -> Self {
        self.priorities = on;
        self
    }

    /// How long a worker's lease on a partition lasts (default 10 s), on
    /// streams declared with partitions
    /// ([`BusBuilder::partitions`](crate::BusBuilder::partitions)): renewed
    /// every third of it while the worker runs; a partition whose worker
    /// died is taken over by another within about this long. A worker
    /// stops handling a partition a tenth of it (at least 20 ms) before its
    /// lease could run out. At least 150 ms.
    pub fn partition_lease(mut self, lease: Duration) -> Self {
        self.partition_lease = lease.max(Duration::from_millis(150));
        self
    }

    /// Parks a retry whose backoff is at least `threshold` in Redis instead
    /// of waiting for it in the worker (default `None`: every retry waits
    /// in the worker, as it always did). A parked entry is acknowledged and,
    /// in the same atomic step, kept with its attempts in the group's
    /// delayed set `<stream key>:retry:<group>:delayed` until due; it is
    /// then appended to the group's retry stream `<stream key>:retry:<group>`,
    /// which the workers of that group read (one more reading connection
    /// and one more delayed poll per stream and group) with the same
    /// handlers, going on with the attempt count: the attempts, the
    /// backoff and the dead letter (in `ns:{stream}:dlq`, naming the
    /// original entry id) are those of a retry that waited in the worker.
    /// No other group sees it, and the stream itself is not written to.
    ///
    /// A parked retry holds no memory, no prefetch permit and no pending
    /// entry while it waits, and survives the worker: any worker of the
    /// group runs it when due (within [`delayed_poll`](Self::delayed_poll)
    /// of its time). An event with a key is never parked: the later events
    /// of its key wait behind its retry, which parking would let pass.
    ///
    /// Off by default because it costs the group a reading connection and
    /// a poll of the delayed set while idle, which a retry of a few seconds
    /// (the default [`RetryPolicy`](crate::RetryPolicy) waits 30 s at most)
    /// does not need; turn it on for backoffs of minutes.
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = tidings::ConsumerOptions::default().park_retries_after(Some(Duration::from_secs(30)));
    /// ```
    ///
    /// ```text
    /// EVAL <park> 2 ns:{stream} ns:{stream}:retry:<group>:delayed <group> <id> <due ms> dlq_attempts <n> …
    /// EVALSHA <deliver-due> 2 ns:{stream}:retry:<group>:delayed ns:{stream}:retry:<group> <now ms> 1000
    /// ```
    pub fn park_retries_after(mut self, threshold: Option<Duration>) -> Self {
        self.park_after = threshold;
        self
    }

    pub(crate) fn heartbeat_or_default(&self) -> Duration {
        self.heartbeat.unwrap_or(match self.claim_idle {
            Some(idle) => (idle / 3).max(Duration::from_millis(1)),
            None => Duration::from_secs(20),
        })
    }

    pub(crate) fn prefetch_or_default(&self) -> usize {
        self.prefetch.unwrap_or(self.count.saturating_mul(2)).max(1)
    }

    pub(crate) fn claim_interval_or(&self, min_idle: Duration) -> Duration {
        self.claim_interval.unwrap_or(min_idle)
    }
}
