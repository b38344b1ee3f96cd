//! Partitions: a stream declared with `P` partitions (`ns:{stream#<k>}`) is
//! read, in each consumer group, by one worker per partition at a time. A
//! worker holds a partition's lease (`ns:{stream#<k>}:lease:<group>`, a key
//! with an expiry) while it reads it, renews it every third of the lease,
//! and takes free partitions up to its share (`ceil(P / live workers)`,
//! the live workers counted in `ns:{stream}:workers:<group>`); a worker
//! with more than its share (others joined) hands the extra ones back, and
//! a partition whose owner died is free again when its lease expires.
//!
//! A worker stops handling a partition before its lease can have expired
//! in Redis: its own deadline is counted from before the call that took or
//! renewed the lease, less a margin, and a partition whose lease was not
//! renewed by then is aborted where it is (its entries stay pending). A new
//! owner first claims every entry still pending in the group on that
//! partition, whoever took it, and handles those before reading new ones,
//! so that a key's events keep their order across owners.
//!
//! Each partition held has a reading loop per priority level it reads (and
//! one for the group's retry stream of the partition, with parked
//! retries), each moving its own delayed events; they start, are taken
//! over and stop together, under the one lease.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::read::run_group;
use super::{stopped, GroupSpec};
use crate::envelope::now_millis;
use crate::transport::{Lease, StreamTransport};

/// A partition this worker holds: the task that keeps its lease and runs
/// its reading loop, and how to ask that task to hand it back. Dropped (the
/// worker aborted), the task is aborted too, as a crash would stop it.
struct Owned {
    k: u32,
    hand_back: watch::Sender<bool>,
    keeper: JoinHandle<usize>,
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// A reading loop's task, aborted when dropped.
struct Reading(JoinHandle<usize>);

impl Drop for Reading {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Builds the specs of a partition's reading loops, given the partition and
/// its stop signal.
pub(super) type SpecOf =
    Box<dyn Fn(u32, watch::Receiver<bool>) -> Vec<Arc<GroupSpec>> + Send + Sync>;

/// What the partition supervisor of one (stream, group) needs.
pub(super) struct Partitions<T> {
    pub(super) transport: T,
    /// Builds the specs of partition `k`'s reading loops (its levels and
    /// retry stream), with their stop signal.
    pub(super) spec_of: SpecOf,
    pub(super) count: u32,
    /// `ns:{stream}:workers:<group>`.
    pub(super) members_key: String,
    /// The lease key of each partition.
    pub(super) leases: Vec<String>,
    pub(super) consumer: String,
    pub(super) ttl: Duration,
    pub(super) stop: watch::Receiver<bool>,
}

/// A call to Redis bounded by `limit`, so that a server that stopped
/// answering cannot hold up a lease's deadline.
async fn bounded<V>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<V, crate::error::TransportError>>,
) -> Result<V, crate::error::TransportError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(crate::error::TransportError::timed_out(
            "no reply within a third of the lease",
        ))
    })
}

/// How much earlier than its lease a worker gives a partition up: room for
/// the clocks of Redis and the worker to run at slightly different rates,
/// and for an aborted handler to be gone before another worker may start.
fn margin(ttl: Duration) -> Duration {
    (ttl / 10).max(Duration::from_millis(20))
}

impl<T: StreamTransport> Partitions<T> {
    /// Runs until the worker stops; returns how many handled entries could
    /// not be acknowledged.
    pub(super) async fn run(mut self) -> usize {
        let mut owned: BTreeMap<u32, Owned> = BTreeMap::new();
        // Partitions being handed back: still this worker's until they are.
        let mut leaving: Vec<Owned> = Vec::new();
        let mut unacked = 0usize;
        let tick = self.ttl / 3;
        while !stopped(&self.stop) {
            // Partitions whose keeper ended (lease lost, or handed back).
            let ended: Vec<u32> = owned
                .iter()
                .filter(|(_, o)| o.keeper.is_finished())
                .map(|(k, _)| *k)
                .collect();
            for k in ended {
                if let Some(o) = owned.remove(&k) {
                    leaving.push(o);
                }
            }
            let mut still = Vec::with_capacity(leaving.len());
            for mut o in leaving {
                if o.keeper.is_finished() {
                    unacked += (&mut o.keeper).await.unwrap_or(0);
                } else {
                    still.push(o);
                }
            }
            leaving = still;
            let live = bounded(
                tick,
                self.transport.members(
                    &self.members_key,
                    &self.consumer,
                    now_millis(),
                    self.ttl,
                    false,
                ),
            )
            .await;
            if let Ok(live) = live {
                let share = self.count.div_ceil(live.max(1) as u32) as usize;
                // Scale-up: what is beyond the share goes back, highest
                // partitions first, each drained before its lease is freed.
                while owned.len() > share {
                    let Some((_, o)) = owned.pop_last() else {
                        break;
                    };
                    let _ = o.hand_back.send(true);
                    leaving.push(o);
                }
                for k in 0..self.count {
                    if owned.len() >= share || stopped(&self.stop) {
                        break;
                    }
                    if owned.contains_key(&k) || leaving.iter().any(|o| o.k == k) {
                        continue;
                    }
                    if let Some(o) = self.take(k).await {
                        owned.insert(k, o);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = self.stop.changed() => {}
            }
        }
        for (_, o) in std::mem::take(&mut owned) {
            let _ = o.hand_back.send(true);
            leaving.push(o);
        }
        for mut o in leaving {
            unacked += (&mut o.keeper).await.unwrap_or(0);
        }
        let leave = self.transport.members(
            &self.members_key,
            &self.consumer,
            now_millis(),
            self.ttl,
            true,
        );
        let _ = bounded(tick, leave).await;
        unacked
    }

    /// Takes partition `k` if its lease is free: claims what the group still
    /// has pending there (handled first), then starts its reading loop under
    /// a keeper task.
    async fn take(&self, k: u32) -> Option<Owned> {
        let lease = self.leases[k as usize].clone();
        let sent = Instant::now();
        let take = self
            .transport
            .lease(&lease, &self.consumer, self.ttl, Lease::Take);
        match bounded(self.ttl / 3, take).await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                tracing::debug!(partition = k, error = %e, "taking a partition's lease failed");
                return None;
            }
        }
        let until = sent + self.ttl - margin(self.ttl);
        let (stop_tx, stop_rx) = watch::channel(false);
        let specs = (self.spec_of)(k, stop_rx.clone());
        let Some(first) = specs.first().cloned() else {
            release(&self.transport, &lease, &self.consumer, self.ttl).await;
            return None;
        };
        // Bounded by a third of the lease, so that the leases this worker
        // holds are renewed in time.
        let by = until.min(Instant::now() + self.ttl / 3);
        let mut readers = Vec::with_capacity(specs.len());
        let mut failed = None;
        for spec in &specs {
            match self.start(spec, by).await {
                Ok(reader) => readers.push(reader),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => {
                tracing::info!(stream = %first.key, group = first.group, consumer = %self.consumer,
                    loops = specs.len(), "partition taken");
                // Every loop of the partition (its levels, its retry
                // stream) in one task, which ends when all of them have.
                let transport = self.transport.clone();
                let loops = specs.into_iter().zip(readers).map(move |(spec, reader)| {
                    run_group(transport.clone(), reader, spec, stop_rx.clone())
                });
                let reading = Reading(tokio::spawn(async move {
                    futures::future::join_all(loops).await.into_iter().sum()
                }));
                let (hand_back, hand_back_rx) = watch::channel(false);
                let keeper = tokio::spawn(keep(
                    self.transport.clone(),
                    lease,
                    self.consumer.clone(),
                    self.ttl,
                    until,
                    reading,
                    stop_tx,
                    hand_back_rx,
                ));
                Some(Owned {
                    k,
                    hand_back,
                    keeper,
                })
            }
            Some(e) => {
                tracing::warn!(stream = %first.key, group = first.group, error = %e,
                    "starting a partition failed; its lease is given back");
                release(&self.transport, &lease, &self.consumer, self.ttl).await;
                None
            }
        }
    }

    /// Creates the group on the partition, connects its reader, and takes
    /// over every entry pending in the group there (without counting a
    /// delivery: none of them is attempted by this), so that the reading
    /// loop, which reads this consumer's pending entries first, handles
    /// them before any new one.
    async fn start(
        &self,
        spec: &GroupSpec,
        by: Instant,
    ) -> Result<T::Reader, crate::error::TransportError> {
        let t = &self.transport;
        let late = |what: &'static str| {
            crate::error::TransportError::timed_out(format!(
                "{what} took more than a third of the lease"
            ))
        };
        tokio::time::timeout_at(
            by,
            t.create_group(&spec.key, spec.group, &spec.options.start),
        )
        .await
        .map_err(|_| late("creating the group"))??;
        let reader = tokio::time::timeout_at(by, t.reader())
            .await
            .map_err(|_| late("connecting"))??;
        let mut cursor = "0-0".to_owned();
        loop {
            let take = t.take_pending(&spec.key, spec.group, &spec.consumer, &cursor, CLAIM_PAGE);
            let next = tokio::time::timeout_at(by, take)
                .await
                .map_err(|_| late("taking the pending entries over"))??;
            if next == "0-0" {
                break;
            }
            cursor = next;
        }
        Ok(reader)
    }
}

/// Pending entries claimed per call when a partition is taken over.
const CLAIM_PAGE: usize = 1000;

/// Frees a lease if `owner` still holds it; a failure leaves it to expire.
async fn release<T: StreamTransport>(transport: &T, lease: &str, owner: &str, ttl: Duration) {
    let call = transport.lease(lease, owner, ttl, Lease::Release);
    if let Err(e) = bounded(ttl / 3, call).await {
        tracing::debug!(lease, error = %e,
            "freeing a partition's lease failed; it is free once it expires");
    }
}

/// Keeps one partition's lease while its reading loop runs: renews it every
/// third of the lease; when asked to hand the partition back, stops the
/// loop and frees the lease once the loop has finished; aborts the loop,
/// leaving the lease to expire, when the lease was lost or could not be
/// renewed before its deadline.
#[allow(clippy::too_many_arguments)]
async fn keep<T: StreamTransport>(
    transport: T,
    lease: String,
    owner: String,
    ttl: Duration,
    mut until: Instant,
    mut reading: Reading,
    stop: watch::Sender<bool>,
    mut hand_back: watch::Receiver<bool>,
) -> usize {
    let tick = ttl / 3;
    let mut next_renew = Instant::now() + tick;
    let mut listening = true;
    loop {
        tokio::select! {
            done = &mut reading.0 => {
                release(&transport, &lease, &owner, ttl).await;
                return done.unwrap_or(0);
            }
            _ = tokio::time::sleep_until(until) => {
                tracing::warn!(lease = %lease, consumer = %owner,
                    "a partition's lease was not renewed in time; its handling is stopped where it is");
                reading.0.abort();
                let _ = (&mut reading.0).await;
                return 0;
            }
            _ = tokio::time::sleep_until(next_renew) => {
                next_renew = Instant::now() + tick;
                let sent = Instant::now();
                let renew = transport.lease(&lease, &owner, ttl, Lease::Renew);
                match bounded(tick, renew).await {
                    Ok(true) => until = sent + ttl - margin(ttl),
                    // Lost: another worker holds it now. Stop at once.
                    Ok(false) => until = Instant::now(),
                    Err(e) => tracing::debug!(lease = %lease, error = %e,
                        "renewing a partition's lease failed; trying again until it runs out"),
                }
            }
            changed = hand_back.changed(), if listening => {
                // Asked to hand it back, or the supervisor is gone: the
                // loop stops, and its end frees the lease.
                if changed.is_err() || *hand_back.borrow() {
                    let _ = stop.send(true);
                    listening = false;
                }
            }
        }
    }
}
