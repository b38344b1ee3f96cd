//! Readiness for probes: whether Redis answers, whether each worker's
//! reading loop still reads, and whether a group lags too far behind.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bus::{on_streams, Bus};
use crate::transport::StreamTransport;

/// What [`Bus::health_with`] checks against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct HealthOptions {
    /// Longest wait for Redis to answer (default 1 s).
    pub timeout: Duration,
    /// Most entries a group read by a worker of this bus may be behind
    /// (default 1,000).
    pub max_lag: u64,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            timeout: Duration::from_secs(1),
            max_lag: 1_000,
        }
    }
}

impl HealthOptions {
    /// Sets the longest wait for Redis.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the most entries a group may be behind.
    pub fn max_lag(mut self, max_lag: u64) -> Self {
        self.max_lag = max_lag;
        self
    }
}

/// The health of a bus and of the workers reading through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// The verdict: Redis answers, every reading loop reads, no group lags
    /// past the limit.
    pub ready: bool,
    /// Whether Redis answered `PING` in time.
    pub reachable: bool,
    /// How long it took, when it answered.
    pub latency_us: Option<u64>,
    /// Each reading loop of the bus's workers.
    pub readers: Vec<ReaderHealth>,
    /// What makes it not ready, one line each.
    pub problems: Vec<String>,
}

/// One reading loop of a worker: a (stream, group) it reads as a consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReaderHealth {
    /// Stream key.
    pub key: String,
    /// Group.
    pub group: String,
    /// Consumer name.
    pub consumer: String,
    /// Milliseconds since its last read returned.
    pub since_last_read_ms: u64,
    /// Whether it read recently enough (within its `block` and 3 s), or
    /// waits for its handlers to take more entries.
    pub reading: bool,
    /// Entries of the stream not yet delivered to the group, when known.
    pub lag: Option<u64>,
}

impl Bus {
    /// [`Bus::health_with`] the default options.
    ///
    /// ```
    /// # async fn run() -> Result<(), tidings::Error> {
    /// let health = tidings::Bus::in_memory().health().await;
    /// assert!(health.ready, "{:?}", health.problems);
    /// # Ok(()) }
    /// ```
    pub async fn health(&self) -> Health {
        self.health_with(HealthOptions::default()).await
    }

    /// Checks that Redis answers `PING` within `timeout`, that every
    /// reading loop of the workers started from this bus (or its clones)
    /// has read within its `block` and 3 s more, and that none of their
    /// groups is more than `max_lag` entries behind; the verdict is `ready`
    /// when all hold, and `problems` says what does not. It never fails:
    /// what cannot be checked is a problem.
    ///
    /// ```text
    /// PING
    /// XINFO STREAM / XINFO GROUPS <key>        (one per stream read)
    /// ```
    pub async fn health_with(&self, options: HealthOptions) -> Health {
        let mut problems = Vec::new();
        let started = Instant::now();
        let ping = tokio::time::timeout(options.timeout, async {
            on_streams!(self.backend(), t => t.ping())
        })
        .await;
        let reachable = match ping {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                problems.push(format!("Redis does not answer: {e}"));
                false
            }
            Err(_) => {
                problems.push(format!("Redis did not answer within {:?}", options.timeout));
                false
            }
        };
        let latency_us =
            reachable.then(|| u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        let mut readers = Vec::new();
        for life in self.readers().running() {
            let since = life.since_last_read();
            let reading = life.is_busy() || since <= life.block + Duration::from_secs(3);
            if !reading {
                problems.push(format!(
                    "the worker `{}` has not read `{}` for group `{}` for {since:?}",
                    life.consumer, life.key, life.group
                ));
            }
            let mut lag = None;
            if reachable {
                let stats = tokio::time::timeout(options.timeout, async {
                    on_streams!(self.backend(), t => t.stream_stats(&life.key, &format!("{}:dlq", life.key)))
                })
                .await;
                match stats {
                    Ok(Ok(stats)) => {
                        lag = stats.group(&life.group).and_then(|g| g.lag);
                        if let Some(n) = lag.filter(|n| *n > options.max_lag) {
                            problems.push(format!(
                                "group `{}` is {n} entries behind on `{}` (limit {})",
                                life.group, life.key, options.max_lag
                            ));
                        }
                    }
                    Ok(Err(e)) => {
                        problems.push(format!("reading the stats of `{}` failed: {e}", life.key))
                    }
                    Err(_) => problems.push(format!(
                        "reading the stats of `{}` took over {:?}",
                        life.key, options.timeout
                    )),
                }
            }
            readers.push(ReaderHealth {
                key: life.key.clone(),
                group: life.group.clone(),
                consumer: life.consumer.clone(),
                since_last_read_ms: u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
                reading,
                lag,
            });
        }
        readers
            .sort_by(|a, b| (&a.key, &a.group, &a.consumer).cmp(&(&b.key, &b.group, &b.consumer)));
        Health {
            ready: problems.is_empty(),
            reachable,
            latency_us,
            readers,
            problems,
        }
    }
}
