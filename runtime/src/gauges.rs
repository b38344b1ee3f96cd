//! The gauges read from Redis ([`crate::telemetry`]): an opt-in task that
//! reads each stream's snapshot at an interval and sets the stream length,
//! the dead letters, and each group's lag, pending entries and oldest
//! pending entry's age.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::bus::Bus;
use crate::error::Error;
use crate::telemetry::{label, name};

/// The task of [`Bus::report_gauges`]; stops when dropped or
/// [`stop`](GaugeReporter::stop)ped.
#[derive(Debug)]
pub struct GaugeReporter {
    task: JoinHandle<()>,
}

impl GaugeReporter {
    /// Stops reporting.
    pub fn stop(self) {}
}

impl Drop for GaugeReporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Bus {
    /// Reads each stream of `streams` (of this bus's tenant) every `every`
    /// and sets the gauges of [`crate::telemetry`]: stream length, dead
    /// letters, and per group lag, pending entries and the age of the
    /// oldest pending entry. About `2 + 2 × groups` Redis commands per
    /// stream and interval. A read that fails is logged and tried again at
    /// the next interval.
    ///
    /// ```
    /// # async fn run(bus: tidings::Bus) -> Result<(), tidings::Error> {
    /// let gauges = bus.report_gauges(&["contextual"], std::time::Duration::from_secs(15))?;
    /// // … serve the metrics; the gauges stop with `gauges`.
    /// # drop(gauges); Ok(()) }
    /// ```
    pub fn report_gauges(&self, streams: &[&str], every: Duration) -> Result<GaugeReporter, Error> {
        for s in streams {
            self.stream_key(s)?;
        }
        crate::telemetry::describe();
        let streams: Vec<String> = streams.iter().map(|s| (*s).to_owned()).collect();
        let bus = self.clone();
        let every = every.max(Duration::from_millis(10));
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                for stream in &streams {
                    if let Err(e) = report(&bus, stream).await {
                        tracing::warn!(stream, error = %e, "reading the stream for its gauges failed");
                    }
                }
            }
        });
        Ok(GaugeReporter { task })
    }
}

/// Sets the gauges of one stream.
async fn report(bus: &Bus, stream: &str) -> Result<(), Error> {
    let stats = bus.stream_stats(stream).await?;
    let system = bus.backend().system();
    let dest = stream.to_owned();
    metrics::gauge!(name::STREAM_LENGTH, label::SYSTEM => system, label::DESTINATION => dest.clone())
        .set(stats.length as f64);
    metrics::gauge!(name::DEAD_LETTERS, label::SYSTEM => system, label::DESTINATION => dest.clone())
        .set(stats.dead_letters as f64);
    let now = crate::envelope::now_millis();
    for g in &stats.groups {
        let labels = [
            (label::SYSTEM, system.to_owned()),
            (label::DESTINATION, dest.clone()),
            (label::GROUP, g.name.clone()),
        ];
        if let Some(lag) = g.lag {
            metrics::gauge!(name::LAG, &labels).set(lag as f64);
        }
        metrics::gauge!(name::PENDING, &labels).set(g.pending as f64);
        let oldest = if g.pending == 0 {
            0.0
        } else {
            let first = bus.group(stream, &g.name)?.pending(1).await?;
            first
                .first()
                .and_then(|p| p.id.split('-').next()?.parse::<i64>().ok())
                .map_or(0.0, |ms| (now - ms).max(0) as f64 / 1000.0)
        };
        metrics::gauge!(name::OLDEST_PENDING_AGE, &labels).set(oldest);
    }
    Ok(())
}
