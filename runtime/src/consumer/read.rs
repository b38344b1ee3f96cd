//! The reading loop of one (stream, group): reads (and claims) entries,
//! admits them under the prefetch bound, skips those the inbox has seen,
//! and hands them to the handlers, reconnecting with a backoff when Redis
//! goes away.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::ack::{ack_loop, heartbeat_loop};
use super::delay::deliver_due_loop;
use super::held::{Held, HeldId};
use super::order::{run_lane, Lanes, Step, Waiting};
use super::priority::Turn;
use super::process::{process, Delivery, Slot};
use super::worker::AbortOnDrop;
use super::{pause, stopped, Done, GroupSpec};
use crate::backoff::Backoff;
use crate::id::order_entry_ids;
use crate::transport::{Entry, ReadRequest, StreamTransport, TransportError};

/// How much longer than its `block` a read may take before the server is
/// taken for gone; also the bound of each call made while stopping.
const READ_GRACE: Duration = Duration::from_secs(2);

/// Runs until the worker stops; returns how many handled entries it could
/// not acknowledge.
pub(super) async fn run_group<T: StreamTransport>(
    transport: T,
    mut reader: T::Reader,
    spec: Arc<GroupSpec>,
    mut stop: watch::Receiver<bool>,
) -> usize {
    let opts = &spec.options;
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Done>();
    let acker = AbortOnDrop(Some(tokio::spawn(ack_loop(
        transport.clone(),
        spec.clone(),
        ack_rx,
    ))));
    let _heartbeat = AbortOnDrop(Some(tokio::spawn(heartbeat_loop(
        transport.clone(),
        spec.clone(),
    ))));
    let _delayed = AbortOnDrop(match (spec.moves_delayed, opts.delayed_poll) {
        (true, Some(poll)) => Some(tokio::spawn(deliver_due_loop(
            transport.clone(),
            spec.clone(),
            poll,
        ))),
        _ => None,
    });
    // Bounds the entries read and not yet finished, so that a slow handler
    // slows reading down instead of piling deliveries up in memory.
    let prefetch = Arc::new(Semaphore::new(opts.prefetch_or_default()));
    let mut inflight = JoinSet::new();
    let lanes = Arc::new(Lanes::default());
    let backoff = Backoff::new(opts.min_backoff, opts.max_backoff);
    // Reads failed in a row: what the reconnect backoff grows with.
    let mut failed = 0u32;
    let mut next_claim = tokio::time::Instant::now() + spec.first_claim;
    let mut next_trim = tokio::time::Instant::now();
    // Where the next claim looks from: each claim goes on where the last
    // stopped, round the whole pending list.
    let mut claim_from = "0-0".to_owned();
    // Removing idle consumers, after a claim: done after the read, outside
    // its deadline.
    let mut upkeep_due = false;
    // Where the reading of this consumer's own pending entries goes on
    // from, while it does: at the start (a consumer name reused across
    // restarts takes its entries back at once) and after every failed read
    // (a read whose reply was lost delivered its entries to this consumer
    // all the same), instead of waiting for `claim_idle`.
    let mut own_from: Option<String> = Some("0".to_owned());
    // The newest entry id any read returned. Reads with `>` deliver ids past
    // every id the group delivered before, so what a lost read (or one cut
    // short by the stop) gave this consumer lies past it, while everything
    // up to it was seen here: handled, held, or acknowledged soon.
    let mut seen_up_to: Option<String> = None;
    // Entries read and not yet dispatched, each with its prefetch permit and
    // its place in the held set. Each turn of the loop reads the next batch
    // while it dispatches this one.
    let mut batch: Vec<(Entry, (OwnedSemaphorePermit, Held))> = Vec::new();
    // A full batch while the prefetch can take another one: the transport
    // may ask for it before this one is read out of the reply, so that Redis
    // prepares it meanwhile. Only this loop takes permits, so what is free
    // now is free when the next read returns that batch.
    let read_ahead = |got: usize, asked: usize| -> usize {
        if got >= asked && prefetch.available_permits() >= got + asked {
            asked
        } else {
            0
        }
    };

    // Whether the last read passed its deadline: the reader's connections
    // may look open while nothing comes back (a silent partition), so they
    // are made again rather than reused.
    let mut silent = false;
    while !stopped(&stop) {
        if std::mem::take(&mut silent) {
            // Boxed, as the calls of the stop below: rare, and as large as
            // the rest of the loop.
            let fresh = Box::pin(tokio::time::timeout(
                READ_GRACE,
                transport.reader_again(&reader),
            ))
            .await;
            match fresh {
                Ok(Ok(fresh)) => reader = fresh,
                Ok(Err(e)) => {
                    silent = true;
                    tracing::warn!(stream = %spec.key, group = spec.group, error = %e,
                        "connecting the reader again failed; trying again");
                }
                Err(_) => silent = true,
            }
        }
        while let Some(done) = inflight.try_join_next() {
            log_task_end(&spec, done);
        }
        let free = prefetch.available_permits();
        if free == 0 && batch.is_empty() {
            // Wait for one delivery to finish, or for the stop: busy, not
            // stuck, for a health check meanwhile.
            spec.life.set_busy(true);
            tokio::select! {
                permit = prefetch.clone().acquire_owned() => drop(permit),
                _ = stop.changed() => {}
            }
            spec.life.set_busy(false);
            spec.life.read();
            continue;
        }
        let count = opts.count.min(free);
        let request = ReadRequest::new(&spec.key, spec.group, &spec.consumer, count, opts.block)
            .read_ahead(&read_ahead);
        let entry_stop = stop.clone();
        let read = async {
            if count == 0 {
                return None;
            }
            let mut result: Result<Vec<Entry>, TransportError> = Ok(Vec::new());
            if let Some(after) = &own_from {
                result = match transport
                    .read_own_pending(&mut reader, request, after)
                    .await
                {
                    Ok((entries, last)) => {
                        own_from = last;
                        Ok(not_in_hand(&spec, entries))
                    }
                    Err(e) => Err(e),
                };
            }
            // Claims wait until this consumer's own pending list is read
            // out, which a claim could otherwise take from under it.
            if let (Some(min_idle), Ok(v), None) = (opts.claim_idle, &result, &own_from) {
                if v.is_empty() && tokio::time::Instant::now() >= next_claim {
                    // A claim can take this consumer's own entries back:
                    // those it holds or has handled are not handled again.
                    result = transport
                        .claim_idle(&mut reader, request, min_idle, &claim_from)
                        .await
                        .map(|(claimed, next)| {
                            claim_from = next;
                            not_in_hand(&spec, claimed)
                        });
                    // A claim that failed (a connection found broken) is
                    // tried again after the reconnect, not a whole
                    // interval later.
                    // Until the cursor is round the list, the next claim
                    // goes on at once; then after the interval.
                    if result.is_ok() && claim_from == "0-0" {
                        next_claim = tokio::time::Instant::now() + opts.claim_interval_or(min_idle);
                        upkeep_due = true;
                    }
                }
            }
            if own_from.is_none() && matches!(&result, Ok(v) if v.is_empty()) {
                result = transport.read_group(&mut reader, request).await;
            }
            Some(result)
        };
        // Every read has a deadline, so that a server that stopped answering
        // (frozen, or behind a partition that drops packets silently) is
        // taken for gone and the connection made again; and a read ends at
        // the stop. Either way, what the server delivered to this consumer
        // meanwhile is in its pending list, which is read again next (or
        // before the worker stops).
        let deadline = opts.block + READ_GRACE;
        let read = async {
            tokio::select! {
                r = tokio::time::timeout(deadline, read) => r.unwrap_or_else(|_| {
                    silent = true;
                    Some(Err(TransportError::timed_out(format!(
                        "no reply to a read within {deadline:?}"
                    ))))
                }),
                _ = stop.changed() => None,
            }
        };
        // On a backlog (a full batch) the next read goes out first, so that
        // Redis prepares it while this batch is handled. Caught up, the
        // batch is handled first: the read would mostly wait for new
        // entries, and sending it first put a write on the way of every
        // event to its handler (about 15 us of p50 at 1k-5k events/s in the
        // benchmark, `bench/README.md`).
        // A handler that waits (I/O) lets the read go out at its first await.
        let backlog = batch.len() >= opts.count;
        // Boxed: dispatching ends long before the read does, and its room
        // (about 4.5 KB, with the handler run of a one-at-a-time handler)
        // is freed then, rather than held in every loop that waits for
        // entries: a worker over 1,000 tenants waits in 1,000 loops.
        let dispatching = Box::pin(dispatch(
            &transport,
            &spec,
            std::mem::take(&mut batch),
            &ack_tx,
            &entry_stop,
            &mut inflight,
            &lanes,
        ));
        let result = if backlog {
            futures::future::join(read, dispatching).await.0
        } else {
            futures::future::join(dispatching, read).await.1
        };

        // Upkeep after the read, each step bounded on its own: a slow trim
        // must not pass for a server that stopped answering.
        if std::mem::take(&mut upkeep_due) {
            if let Some(after) = opts.forget_after {
                let forget = forget_idle_consumers(&transport, &spec, after);
                if tokio::time::timeout(READ_GRACE, forget).await.is_err() {
                    tracing::debug!(stream = %spec.key, group = spec.group,
                        "removing idle consumers took too long; left for next time");
                }
            }
        }
        if let (Some((retention, every)), Some(Ok(_))) = (&opts.retention, &result) {
            if tokio::time::Instant::now() >= next_trim {
                next_trim = tokio::time::Instant::now() + *every;
                trim(&transport, &spec, retention).await;
            }
        }
        match result {
            None => {}
            Some(Ok(entries)) => {
                spec.life.read();
                note_seen(&mut seen_up_to, &entries);
                if failed > 0 {
                    tracing::info!(stream = %spec.key, group = spec.group, "reading the stream again");
                }
                failed = 0;
                admit(&transport, &spec, &prefetch, entries, &ack_tx, &mut batch).await;
            }
            Some(Err(e)) => {
                if e.is_no_group() {
                    // A server restarted without persistence lost the group
                    // (and maybe the stream): make it again and go on.
                    tracing::warn!(stream = %spec.key, group = spec.group, error = %e,
                        "consumer group is gone; creating it again");
                    if let Err(e) = transport
                        .create_group(&spec.key, spec.group, &opts.start)
                        .await
                    {
                        tracing::warn!(stream = %spec.key, group = spec.group, error = %e,
                            "creating the consumer group failed");
                    }
                } else {
                    tracing::warn!(
                        stream = %spec.key, group = spec.group, error = %e,
                        retry_in = ?backoff.delay(failed + 1), "reading the stream failed; reconnecting"
                    );
                    crate::telemetry::reconnect("consumer");
                }
                failed = failed.saturating_add(1);
                // The reader is made again: a read it sent ahead would
                // otherwise return entries that the reading of the own
                // pending list below hands out too.
                silent = true;
                // From the newest entry seen, or from where the reading of
                // the own pending list had got to, if that is older.
                let from = seen_up_to.clone().unwrap_or_else(|| "0".to_owned());
                own_from = Some(match own_from.take() {
                    Some(at) if order_entry_ids(&at, &from).is_lt() => at,
                    _ => from,
                });
                if pause(backoff.delay(failed), &mut stop).await {
                    break;
                }
            }
        }
    }
    // What was read is handled, as if the stop had come before the read:
    // a read sent ahead too, as Redis delivered its entries to this consumer.
    let rest = tokio::time::timeout(READ_GRACE, transport.read_ahead_rest(&mut reader)).await;
    match rest.unwrap_or_else(|_| Err(TransportError::timed_out("no reply in time"))) {
        Ok(entries) => {
            note_seen(&mut seen_up_to, &entries);
            admit(&transport, &spec, &prefetch, entries, &ack_tx, &mut batch).await;
        }
        Err(e) => tracing::warn!(stream = %spec.key, group = spec.group, error = %e,
            "reading the last batch read ahead failed; its entries stay pending until claimed"),
    }
    let entry_stop = stop.clone();
    Box::pin(dispatch(
        &transport,
        &spec,
        batch,
        &ack_tx,
        &entry_stop,
        &mut inflight,
        &lanes,
    ))
    .await;
    // So is what a read cut short by the stop was given: the entries
    // pending to this consumer past the newest it saw.
    let mut after = seen_up_to.unwrap_or_else(|| "0".to_owned());
    loop {
        let request = ReadRequest::new(
            &spec.key,
            spec.group,
            &spec.consumer,
            opts.count.max(1),
            opts.block,
        );
        let page = tokio::time::timeout(
            READ_GRACE,
            transport.read_own_pending(&mut reader, request, &after),
        )
        .await
        .unwrap_or_else(|_| Err(TransportError::timed_out("no reply in time")));
        let entries = match page {
            Ok((entries, Some(last))) => {
                after = last;
                not_in_hand(&spec, entries)
            }
            Ok((_, None)) => break,
            Err(e) => {
                tracing::warn!(stream = %spec.key, group = spec.group, error = %e,
                    "reading this consumer's pending entries at the stop failed; they stay pending until claimed");
                break;
            }
        };
        let mut last = Vec::new();
        admit(&transport, &spec, &prefetch, entries, &ack_tx, &mut last).await;
        Box::pin(dispatch(
            &transport,
            &spec,
            last,
            &ack_tx,
            &entry_stop,
            &mut inflight,
            &lanes,
        ))
        .await;
    }

    while let Some(done) = inflight.join_next().await {
        log_task_end(&spec, done);
    }
    drop(ack_tx);
    let unacked = match acker.join().await {
        Ok(unacked) => unacked,
        Err(e) => {
            tracing::error!(stream = %spec.key, group = spec.group, error = %e, "acknowledging task failed");
            0
        }
    };
    spec.life.stop();
    // A worker that leaves nothing behind leaves the group too, so that it
    // lists the live consumers; one with pending entries stays, for them to
    // be claimed (or taken back by a worker of the same name).
    if unacked == 0 {
        let forget = transport.forget_consumer(&spec.key, spec.group, &spec.consumer);
        match tokio::time::timeout(READ_GRACE, forget).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(stream = %spec.key, group = spec.group, error = %e,
                "removing this consumer from the group failed"),
            Err(_) => tracing::debug!(stream = %spec.key, group = spec.group,
                "removing this consumer from the group got no reply in time"),
        }
    }
    unacked
}

/// Trims the stream to the worker's retention; the outcome is logged.
async fn trim<T: StreamTransport>(
    transport: &T,
    spec: &GroupSpec,
    retention: &crate::stats::Retention,
) {
    match transport.trim(&spec.key, retention, false).await {
        Ok(report) if report.trimmed > 0 || !report.held_back_by.is_empty() => {
            tracing::info!(stream = %spec.key, trimmed = report.trimmed, min_id = ?report.min_id,
                held_back_by = ?report.held_back_by, "trimmed the stream to its retention");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(stream = %spec.key, error = %e, "trimming the stream failed"),
    }
}

/// Removes the other consumers of the group that have nothing pending and
/// have not read for `after`; a failure is logged and left for next time.
async fn forget_idle_consumers<T: StreamTransport>(
    transport: &T,
    spec: &GroupSpec,
    after: Duration,
) {
    let stats = match transport.stream_stats(&spec.key, &spec.dlq).await {
        Ok(stats) => stats,
        Err(e) => {
            tracing::debug!(stream = %spec.key, group = spec.group, error = %e,
                "listing the consumers of the group failed");
            return;
        }
    };
    let Some(group) = stats.group(spec.group) else {
        return;
    };
    for c in &group.consumers {
        if c.name == spec.consumer || c.pending > 0 || c.idle() < after {
            continue;
        }
        match transport
            .forget_consumer(&spec.key, spec.group, &c.name)
            .await
        {
            Ok(true) => tracing::info!(stream = %spec.key, group = spec.group, consumer = %c.name,
                idle = ?c.idle(), "removed a consumer that stopped reading and has nothing pending"),
            Ok(false) => {}
            Err(e) => tracing::debug!(stream = %spec.key, group = spec.group, error = %e,
                "removing an idle consumer failed"),
        }
    }
}

/// Moves `seen_up_to` to the newest id of `entries`, if it is newer.
fn note_seen(seen_up_to: &mut Option<String>, entries: &[Entry]) {
    if let Some(newest) = entries
        .iter()
        .map(|e| e.id.as_str())
        .max_by(|a, b| order_entry_ids(a, b))
    {
        if seen_up_to
            .as_deref()
            .is_none_or(|s| order_entry_ids(newest, s).is_gt())
        {
            *seen_up_to = Some(newest.to_owned());
        }
    }
}

/// The entries of a read of this consumer's own pending list that are not
/// in hand already: neither held (being handled, or waiting for a retry) nor
/// handled and waiting for their `XACK` to be tried again.
fn not_in_hand(spec: &GroupSpec, entries: Vec<Entry>) -> Vec<Entry> {
    if entries.is_empty() {
        return entries;
    }
    let held = spec.held();
    let unacked = spec.unacked();
    entries
        .into_iter()
        .filter(|e| !unacked.contains(&e.id) && !held.contains(&HeldId::of(&e.id)))
        .collect()
}

/// Takes read entries into `batch`, each with its prefetch permit and its
/// place in the held set; with an inbox, those already handled are
/// acknowledged instead.
pub(super) async fn admit<T: StreamTransport>(
    transport: &T,
    spec: &Arc<GroupSpec>,
    prefetch: &Arc<Semaphore>,
    entries: Vec<Entry>,
    ack: &mpsc::UnboundedSender<Done>,
    batch: &mut Vec<(Entry, (OwnedSemaphorePermit, Held))>,
) {
    let entries = skip_marked(transport, spec, entries, ack).await;
    for entry in entries {
        let permit = match prefetch.clone().try_acquire_owned() {
            Ok(p) => p,
            // Rare: reads never ask for more than the free permits and
            // only the reading loop takes them; waiting is still correct.
            Err(_) => match prefetch.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        // Held from now on: the heartbeat keeps an entry that waits for its
        // handler's slot from looking idle too.
        let id = HeldId::of(&entry.id);
        spec.held().insert(id.clone());
        let held = Held {
            spec: spec.clone(),
            id,
        };
        batch.push((entry, (permit, held)));
    }
}

/// Starts the handling of read entries, in stream order: takes each
/// entry's handler slots (so that a handler with concurrency 1 sees the
/// stream's order, and a busy handler slows reading down), then runs it.
pub(super) async fn dispatch<T: StreamTransport>(
    transport: &T,
    spec: &Arc<GroupSpec>,
    batch: Vec<(Entry, (OwnedSemaphorePermit, Held))>,
    ack: &mpsc::UnboundedSender<Done>,
    stop: &watch::Receiver<bool>,
    inflight: &mut JoinSet<()>,
    lanes: &Arc<Lanes<T>>,
) {
    if !batch.is_empty() {
        crate::telemetry::consumed(spec.system, spec.stream, spec.group, batch.len() as u64);
    }
    // With priority levels, the level's turn at the handler slots, kept
    // from one entry to the next while the round allows.
    let mut turn = None;
    let mut kept = Kept::default();
    let total = batch.len();
    for (n, (entry, held)) in batch.into_iter().enumerate() {
        let more = n + 1 < total;
        // An entry with a key goes through its key's lane; one without
        // (checked with no hashing: an event without extensions has no
        // key) is dispatched as it always was.
        let key = entry.envelope.as_ref().ok().and_then(|e| e.partition_key());
        if let Some(key) = key {
            let key: Box<str> = key.into();
            let delivery = Delivery {
                transport: transport.clone(),
                spec: spec.clone(),
                ack: ack.clone(),
                _held: held,
                stop: stop.clone(),
            };
            dispatch_keyed(
                spec,
                lanes,
                key,
                delivery,
                entry,
                inflight,
                (&mut turn, more, &mut kept),
            )
            .await;
            continue;
        }
        let type_name = entry.envelope.as_ref().ok().map(|e| e.type_name.as_str());
        // The handlers of the entry's type, by index: a walk of the list,
        // made again where it is needed rather than collected.
        let wanted = spec
            .handlers
            .iter()
            .enumerate()
            .filter(move |(_, slot)| type_name == Some(slot.handler.type_name()))
            .map(|(i, _)| i);
        // Handlers that take one entry at a time run here, in the reading
        // task: the loop would only wait for their slot before the next
        // entry anyway, and a task per entry (spawn, wake the reader, join)
        // would cost more than a short handler. A retry still waits in a
        // task of its own, so that it holds neither the loop nor the slot.
        let one_at_a_time = runs_inline(spec, wanted.clone());
        let delivery = Delivery {
            transport: transport.clone(),
            spec: spec.clone(),
            ack: ack.clone(),
            _held: held,
            stop: stop.clone(),
        };
        if one_at_a_time {
            kept.take(spec, wanted).await;
            let slots = kept.lent();
            if let Some(retry) = process(delivery, entry, slots).await {
                // The retry takes the slot when its backoff ends: the
                // other loops have it meanwhile.
                kept.give_back();
                inflight.spawn(async move {
                    retry.run().await;
                });
            }
            continue;
        }
        // Nothing is kept while waiting for other slots.
        kept.give_back();
        let mut slots = Vec::new();
        if type_name.is_some() {
            if turn.is_none() {
                turn = spec.turn().await;
            }
            for i in wanted {
                if let Ok(p) = spec.handlers[i].limit.clone().acquire_owned().await {
                    slots.push((i, Slot::Own(p)));
                }
            }
            turn = turn.and_then(|t| t.next(more));
        }
        // Boxed before it is spawned, so that the task is built around
        // a pointer rather than moved through `spawn` by value (about
        // 2,000 instructions per entry less); the cold paths inside
        // (retries, dead letters, publishing what a handler returns)
        // are boxed where they are taken, so that they do not size
        // every delivery's future.
        inflight.spawn(Box::pin(async move {
            if let Some(retry) = process(delivery, entry, slots).await {
                let _ = Box::pin(retry.run()).await;
            }
        }));
    }
}

/// Whether the reading task runs an entry for the handlers at the indices
/// `wanted` itself: some handler takes it, and each takes one entry at a
/// time. With priority levels, the loop must be back at the gate while the
/// handler runs, to compete for the next slot: never inline.
fn runs_inline(spec: &GroupSpec, mut wanted: impl Iterator<Item = usize>) -> bool {
    let Some(first) = wanted.next() else {
        return false;
    };
    spec.priority.is_none()
        && std::iter::once(first)
            .chain(wanted)
            .all(|i| spec.handlers[i].concurrency == 1)
}

/// The longest the reading task keeps the slots of the handlers it runs
/// from one entry of a batch to the next, before it gives them back and
/// queues for them again behind the loops that wait.
const KEEP_SLOTS: Duration = Duration::from_millis(5);

/// The concurrency slots of the handlers the reading task runs itself
/// (`concurrency = 1`), kept from one entry of a batch to the next while
/// the entries need the same handlers, for at most [`KEEP_SLOTS`]. The
/// loops of a group share their handlers' slots (a worker over 1,000
/// tenants has one slot per handler for all of them): taken and given
/// back for each entry, every entry of a batch waited for each other loop
/// to run one of its own, a wake-up per entry, and each loop's entries were
/// finished one per round of all the loops (so each was acknowledged with
/// an `XACK` of its own). The slots an entry needs are held from its start
/// to its end (a failure's dead letter or park included), where they were
/// given back once each handler had run; a retry gives them back at once,
/// and takes them again when it runs.
#[derive(Default)]
struct Kept {
    slots: Vec<(usize, OwnedSemaphorePermit)>,
    since: Option<tokio::time::Instant>,
}

impl Kept {
    /// Holds the slots of exactly the handlers of `spec` at the indices
    /// `wanted` (ascending), taken again if they are not those held, or
    /// held for [`KEEP_SLOTS`] already.
    async fn take(&mut self, spec: &GroupSpec, wanted: impl Iterator<Item = usize> + Clone) {
        let same = wanted.clone().eq(self.slots.iter().map(|(i, _)| *i));
        let fresh = self.since.is_some_and(|t| t.elapsed() < KEEP_SLOTS);
        if same && fresh {
            return;
        }
        self.give_back();
        for i in wanted {
            // The limits are never closed.
            if let Ok(p) = spec.handlers[i].limit.clone().acquire_owned().await {
                self.slots.push((i, p));
            }
        }
        self.since = Some(tokio::time::Instant::now());
    }

    /// The held slots, lent to one entry's attempt.
    fn lent(&self) -> Vec<(usize, Slot)> {
        self.slots.iter().map(|(i, _)| (*i, Slot::Lent)).collect()
    }

    fn give_back(&mut self) {
        self.slots.clear();
        self.since = None;
    }
}

/// Dispatches an entry with a key: queued behind the entries of its key in
/// hand, or started at once (in the reading loop for handlers that take one
/// entry at a time, on the slots it keeps as for an entry without a key;
/// else in its lane's task) when there are none.
async fn dispatch_keyed<T: StreamTransport>(
    spec: &Arc<GroupSpec>,
    lanes: &Arc<Lanes<T>>,
    key: Box<str>,
    delivery: Delivery<T>,
    entry: Entry,
    inflight: &mut JoinSet<()>,
    (turn, more, kept): (&mut Option<Turn>, bool, &mut Kept),
) {
    let handlers: Vec<usize> = match &entry.envelope {
        Ok(env) => spec
            .handlers
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.handler.type_name() == env.type_name)
            .map(|(i, _)| i)
            .collect(),
        Err(_) => Vec::new(),
    };
    let one_at_a_time = runs_inline(spec, handlers.iter().copied());
    let waiting = Waiting {
        delivery,
        entry,
        handlers,
    };
    let Some(Waiting {
        delivery,
        entry,
        handlers,
    }) = lanes.enter(&key, waiting)
    else {
        return;
    };
    if one_at_a_time {
        kept.take(spec, handlers.iter().copied()).await;
        // Nothing was queued behind it meanwhile: only this loop queues.
        match process(delivery, entry, kept.lent()).await {
            Some(retry) => {
                // The retry takes the slots when its backoff ends.
                kept.give_back();
                inflight.spawn(run_lane(lanes.clone(), key, Step::Retry(retry)));
            }
            None => {
                let _ = lanes.next(&key);
            }
        }
        return;
    }
    // Nothing is kept while waiting for other slots.
    kept.give_back();
    let mut slots = Vec::with_capacity(handlers.len());
    if turn.is_none() {
        *turn = spec.turn().await;
    }
    for i in handlers {
        if let Ok(p) = spec.handlers[i].limit.clone().acquire_owned().await {
            slots.push((i, Slot::Own(p)));
        }
    }
    *turn = turn.take().and_then(|t| t.next(more));
    inflight.spawn(Box::pin(run_lane(
        lanes.clone(),
        key,
        Step::Fresh(delivery, entry, slots),
    )));
}

pub(super) fn log_task_end(spec: &GroupSpec, done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if !e.is_cancelled() {
            tracing::error!(stream = %spec.key, group = spec.group, error = %e,
                "entry task failed; entry left pending");
        }
    }
}

/// With an inbox, acknowledges the entries whose event the group already
/// handled and returns the others; one pipelined round trip per batch.
pub(super) async fn skip_marked<T: StreamTransport>(
    transport: &T,
    spec: &GroupSpec,
    entries: Vec<Entry>,
    ack: &mpsc::UnboundedSender<Done>,
) -> Vec<Entry> {
    if spec.options.inbox.is_none() || entries.is_empty() {
        return entries;
    }
    let marks: Vec<String> = entries
        .iter()
        .filter_map(|e| e.envelope.as_ref().ok().map(|env| spec.mark(&env.id)))
        .collect();
    let found = match transport.marked(&marks).await {
        Ok(found) => found,
        Err(e) => {
            // At least once: without the inbox's answer, handle them.
            tracing::warn!(stream = %spec.key, group = spec.group, error = %e,
                "reading the inbox failed; handling the batch anyway");
            return entries;
        }
    };
    let mut found = found.into_iter();
    entries
        .into_iter()
        .filter(|e| {
            let seen = e.envelope.is_ok() && found.next().unwrap_or(false);
            if seen {
                tracing::debug!(stream = %spec.key, group = spec.group, entry = %e.id,
                    "event already handled by this group (inbox); acknowledged");
                let _ = ack.send(Done {
                    id: e.id.clone(),
                    mark: None,
                });
            }
            !seen
        })
        .collect()
}
