//! The relay: a task that publishes committed outbox rows to their streams,
//! many rows per round trip, and marks them, woken by `LISTEN/NOTIFY` and
//! by a poll as a fallback.
//!
//! One round, in one transaction:
//!
//! ```text
//! SELECT position, partition_key FROM outbox WHERE <pending>
//!     ORDER BY position LIMIT <4 batches>                         -- the window
//! SELECT … FROM outbox WHERE position = ANY(<each key's first row in the window,
//!     and rows with no key>) ORDER BY position LIMIT <batch>
//!     FOR UPDATE SKIP LOCKED                                      -- the heads
//! SELECT … FROM outbox WHERE position = ANY(<the window's next rows of the
//!     keys whose heads were taken>) FOR UPDATE                    -- their followers
//! XADD … (one pipeline)                                          -- Bus::publish_raw
//! DELETE FROM outbox WHERE position = ANY(…)                      -- or mark them published
//! COMMIT
//! ```
//!
//! Why this keeps the order of a key with several relays: a relay takes a
//! keyed row only as the oldest pending row of its key (the head), and
//! SKIP LOCKED leaves a head another relay holds, so no two relays hold rows
//! of one key at once; the relay that holds the head may take the key's
//! following rows too. A relay that dies before `COMMIT` leaves its rows
//! pending, to be published again with the same ids.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgRow};
use sqlx::Row;
use tidings_runtime::{Bus, Meta, RawEvent, Ulid};
use time::OffsetDateTime;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::outbox::Outbox;

/// Settings of a relay.
///
/// ```
/// use std::time::Duration;
/// let options = tidings_postgres::RelayOptions::default()
///     .batch(500)
///     .poll_interval(Duration::from_millis(250))
///     .keep_published(Some(Duration::from_secs(3600)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct RelayOptions {
    /// Rows taken and published per round (default 1000).
    pub batch: usize,
    /// How often the relay looks for rows when no notification came
    /// (default 1 s): notifications are lost while the listening connection
    /// is down, and the poll finds what they would have announced.
    pub poll_interval: Duration,
    /// How long published rows are kept, marked with `published_at`
    /// (default `None`: deleted when published).
    pub keep_published: Option<Duration>,
    /// The largest payload published (default 1 MiB); a larger row is
    /// marked failed.
    pub max_event_bytes: usize,
    /// Attempts at a row that Redis refuses before it is marked failed
    /// (default 5). A Redis that cannot be reached is no fault of the row
    /// and counts no attempt.
    pub max_attempts: u32,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            batch: 1000,
            poll_interval: Duration::from_secs(1),
            keep_published: None,
            max_event_bytes: 1 << 20,
            max_attempts: 5,
        }
    }
}

impl RelayOptions {
    /// Sets the rows per round (at least 1).
    pub fn batch(mut self, rows: usize) -> Self {
        self.batch = rows.max(1);
        self
    }

    /// Sets the poll interval.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Keeps published rows for this long (`None`: deletes them at once).
    pub fn keep_published(mut self, keep: Option<Duration>) -> Self {
        self.keep_published = keep;
        self
    }

    /// Sets the largest payload published.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// Sets the attempts at a row Redis refuses (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }
}

/// A relay about to start: [`Outbox::relay`].
#[derive(Debug)]
#[must_use]
pub struct RelayBuilder {
    outbox: Outbox,
    bus: Bus,
    options: RelayOptions,
}

impl Outbox {
    /// A relay from this outbox to `bus`: start it with
    /// [`RelayBuilder::start`]. Several relays may run on one outbox, in one
    /// process or many.
    pub fn relay(&self, bus: &Bus) -> RelayBuilder {
        RelayBuilder {
            outbox: self.clone(),
            bus: bus.clone(),
            options: RelayOptions::default(),
        }
    }
}

impl RelayBuilder {
    /// Replaces the options.
    pub fn options(mut self, options: RelayOptions) -> Self {
        self.options = options;
        self
    }

    /// Starts listening for committed rows (`LISTEN "<schema>.outbox"`),
    /// then the task that publishes them; what was committed before is
    /// published in its first round.
    pub async fn start(self) -> Result<Relay, Error> {
        let channel = self.outbox.schema.channel();
        let mut listener = PgListener::connect_with(&self.outbox.pool)
            .await
            .map_err(Error::database("connecting the relay's listener"))?;
        listener
            .listen(&channel)
            .await
            .map_err(Error::database(format!("LISTEN \"{channel}\"")))?;
        let wake = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        let listening = tokio::spawn(listen(listener, wake.clone(), stopped.clone()));
        let counters = Arc::new(Counters::default());
        let rounds = Rounds::new(self.outbox, self.bus, self.options, counters.clone());
        let task = tokio::spawn(rounds.run(stopped, wake));
        Ok(Relay {
            stop,
            task,
            listening,
            counters,
        })
    }
}

/// A running relay. Stop it with [`Relay::shutdown`], which publishes what
/// is pending first; dropping it stops it after the round in flight,
/// without that.
#[derive(Debug)]
pub struct Relay {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), Error>>,
    listening: JoinHandle<()>,
    counters: Arc<Counters>,
}

/// What a relay did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Rows published and committed as such.
    pub published: u64,
    /// Rows marked failed.
    pub failed: u64,
    /// Rounds that took at least one row.
    pub rounds: u64,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    failed: AtomicU64,
    rounds: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> RelayStats {
        RelayStats {
            published: self.published.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            rounds: self.rounds.load(Ordering::Relaxed),
        }
    }
}

impl Relay {
    /// What the relay did so far.
    pub fn stats(&self) -> RelayStats {
        self.counters.snapshot()
    }

    /// Stops the relay once it has published what is pending: the round in
    /// flight finishes, and rounds go on until one finds fewer rows than a
    /// batch. A round that fails while stopping (PostgreSQL or Redis down)
    /// ends the relay with its error; its rows stay pending for the next
    /// relay.
    pub async fn shutdown(self) -> Result<RelayStats, Error> {
        let _ = self.stop.send(true);
        let result = self.task.await;
        let _ = self.listening.await;
        match result {
            Ok(Ok(())) => Ok(self.counters.snapshot()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(Error::RelayTask {
                reason: e.to_string(),
            }),
        }
    }
}

/// Turns notifications into wake-ups, reconnecting (through sqlx) when the
/// connection drops; a dropped connection wakes the relay too, as
/// notifications may have been missed meanwhile.
async fn listen(mut listener: PgListener, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    loop {
        let received = tokio::select! {
            received = listener.try_recv() => received,
            // Stopping (the drain needs no notification) or dropped: the
            // listener is not used again, so cutting a read short is safe.
            _ = stop.changed() => return,
        };
        match received {
            Ok(Some(_)) => failures = 0,
            Ok(None) => tracing::debug!("the relay's listening connection dropped; reconnecting"),
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(error = %e, "the relay cannot listen for notifications; polling meanwhile");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff(failures)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
        wake.notify_one();
    }
}

/// Pause after the `n`th failure in a row: 50 ms, doubling, at most 2 s.
fn backoff(n: u32) -> Duration {
    Duration::from_millis(
        50u64
            .saturating_mul(1 << n.min(6).saturating_sub(1))
            .min(2000),
    )
}

/// The columns a round reads, in the order [`Pending::read`] takes them.
const COLUMNS: &str = "position, event_id, stream, type, version, schema_path, data::text, \
                       time, partition_key, correlation_id, causation_id, tenant_id, subject, \
                       traceparent, extensions::text, attempts";

/// How many batches of the oldest pending rows a round looks at. Looking at
/// every pending row makes a round's cost grow with the backlog when few
/// keys hold many rows (their heads are few and the batch never fills);
/// looking at one batch only would leave a second relay nothing but the
/// rows the first holds. Four relays at once each find a batch in the
/// window; more still work, taking what the window has left.
const WINDOW: usize = 4;

/// The statements of a round on one outbox table.
///
/// Each is a scan of one table by an index, with no join, so that
/// PostgreSQL's generic plan of it (prepared statements switch to one after
/// a few runs) stays the plan it must be even before the table has
/// statistics (a join planned for a table believed empty can scan the whole
/// table for each row it joins).
#[derive(Debug)]
struct Statements {
    window: String,
    heads: String,
    followers: String,
    delete: String,
    keep: String,
    fail: String,
    retry: String,
    clean: String,
}

impl Statements {
    fn new(table: &str) -> Self {
        let pending = "published_at is null and failed_at is null";
        Statements {
            window: format!(
                "select position, partition_key from {table} where {pending} \
                 order by position limit $1"
            ),
            heads: format!(
                "select {COLUMNS} from {table} where position = any($1) and {pending} \
                 order by position limit $2 for update skip locked"
            ),
            followers: format!(
                "select {COLUMNS} from {table} where position = any($1) and {pending} \
                 order by position for update"
            ),
            delete: format!("delete from {table} where position = any($1)"),
            keep: format!("update {table} set published_at = now() where position = any($1)"),
            fail: format!(
                "update {table} o set failed_at = now(), attempts = o.attempts + 1, \
                 last_error = f.reason \
                 from unnest($1::bigint[], $2::text[]) as f(position, reason) \
                 where o.position = f.position"
            ),
            retry: format!(
                "update {table} o set attempts = o.attempts + 1, last_error = f.reason \
                 from unnest($1::bigint[], $2::text[]) as f(position, reason) \
                 where o.position = f.position"
            ),
            clean: format!(
                "delete from {table} where published_at < now() - $1::float8 * interval '1 second'"
            ),
        }
    }
}

/// A row taken by a round.
#[derive(Debug)]
struct Pending {
    position: i64,
    key: Option<String>,
    attempts: i32,
    /// The event, or why the row can never be published.
    event: Result<RawEvent, String>,
}

impl Pending {
    /// Reads a row; a column that does not hold what the outbox writes
    /// makes the row fail with a reason, never the relay.
    fn read(row: &PgRow, max_bytes: usize) -> Result<Pending, sqlx::Error> {
        let position: i64 = row.try_get(0)?;
        let key: Option<String> = row.try_get(8)?;
        let attempts: i32 = row.try_get(15)?;
        let event = Pending::event(row, key.clone(), max_bytes);
        Ok(Pending {
            position,
            key,
            attempts,
            event,
        })
    }

    fn event(row: &PgRow, key: Option<String>, max_bytes: usize) -> Result<RawEvent, String> {
        let get_err = |e: sqlx::Error| format!("unreadable column: {e}");
        let id: String = row.try_get(1).map_err(get_err)?;
        let id = Ulid::from_string(&id).map_err(|e| format!("event id `{id}` is no ULID: {e}"))?;
        let stream: String = row.try_get(2).map_err(get_err)?;
        let type_name: String = row.try_get(3).map_err(get_err)?;
        let version: i64 = row.try_get(4).map_err(get_err)?;
        let version = u32::try_from(version)
            .map_err(|_| format!("version {version} is outside 1 to {}", u32::MAX))?;
        let schema_path: String = row.try_get(5).map_err(get_err)?;
        let data: String = row.try_get(6).map_err(get_err)?;
        if data.len() > max_bytes {
            return Err(format!(
                "its data has {} bytes, more than the relay's limit of {max_bytes}",
                data.len()
            ));
        }
        let time: OffsetDateTime = row.try_get(7).map_err(get_err)?;
        let mut meta = Meta::default();
        let text = |i: usize| row.try_get::<Option<String>, _>(i).map_err(get_err);
        if let Some(v) = text(9)? {
            meta = meta.correlation_id(v);
        }
        if let Some(v) = text(10)? {
            meta = meta.causation_id(v);
        }
        if let Some(v) = text(11)? {
            meta = meta.tenant(v);
        }
        if let Some(v) = text(12)? {
            meta = meta.subject(v);
        }
        if let Some(v) = text(13)? {
            meta = meta.traceparent(v);
        }
        if let Some(v) = text(14)? {
            let pairs: Vec<(String, String)> = serde_json::from_str(&v)
                .map_err(|e| format!("extensions are not a list of [name, value] pairs: {e}"))?;
            for (name, value) in pairs {
                meta = meta.extension(name, value);
            }
        }
        let mut event = RawEvent::new(stream, type_name, version, data.into_bytes())
            .id(id)
            .time(time)
            .schema_path(schema_path)
            .meta(meta);
        if let Some(key) = key {
            event = event.partition_key(key);
        }
        event.check().map_err(|e| e.to_string())?;
        Ok(event)
    }
}

/// Whether a publish failed for want of Redis (try again, no fault of the
/// rows) rather than because Redis refused them.
fn unreachable_redis(e: &tidings_runtime::Error) -> bool {
    match e {
        tidings_runtime::Error::Unavailable { .. } => true,
        tidings_runtime::Error::Transport(t) => t.is_transient(),
        _ => false,
    }
}

/// What a round decided for its rows.
#[derive(Debug, Default)]
struct Marks {
    published: Vec<i64>,
    failed: (Vec<i64>, Vec<String>),
    retry: (Vec<i64>, Vec<String>),
}

/// The relay's task.
struct Rounds {
    outbox: Outbox,
    bus: Bus,
    options: RelayOptions,
    sql: Statements,
    counters: Arc<Counters>,
    table: String,
}

impl Rounds {
    fn new(outbox: Outbox, bus: Bus, options: RelayOptions, counters: Arc<Counters>) -> Self {
        let table = outbox.schema.table("outbox");
        Rounds {
            sql: Statements::new(&table),
            outbox,
            bus,
            options,
            counters,
            table,
        }
    }

    async fn run(self, mut stop: watch::Receiver<bool>, wake: Arc<Notify>) -> Result<(), Error> {
        let mut failures = 0u32;
        // Published rows kept past their time are deleted when the relay
        // starts, then once per poll interval.
        let mut cleaned: Option<tokio::time::Instant> = None;
        loop {
            // An error: the relay's handle was dropped, which stops it
            // without draining.
            if stop.has_changed().is_err() {
                return Ok(());
            }
            let stopping = *stop.borrow_and_update();
            match self.round().await {
                Ok(taken) => {
                    if failures > 0 {
                        tracing::info!(failures, "the relay publishes again");
                    }
                    failures = 0;
                    if let Some(keep) = self.options.keep_published {
                        if cleaned.is_none_or(|at| at.elapsed() >= self.options.poll_interval) {
                            cleaned = Some(tokio::time::Instant::now());
                            if let Err(e) = self.clean(keep).await {
                                tracing::warn!(error = %e, "deleting the outbox's old published rows failed");
                            }
                        }
                    }
                    if taken >= self.options.batch {
                        continue;
                    }
                    if stopping {
                        return Ok(());
                    }
                }
                Err(e) => {
                    if stopping {
                        return Err(e);
                    }
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(error = %e, "a relay round failed; its rows stay pending and are tried again");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff(failures)) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(self.options.poll_interval) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One round; returns how many rows it took.
    async fn round(&self) -> Result<usize, Error> {
        let doing = |what: &str| format!("relaying from {}: {what}", self.table);
        let batch = self.options.batch;
        let max = self.options.max_event_bytes;
        let window = WINDOW.saturating_mul(batch) as i64;
        let mut tx = self
            .outbox
            .pool
            .begin()
            .await
            .map_err(Error::database(doing("begin")))?;
        // The window: the oldest pending rows, locked by other relays or
        // not. It holds every older pending row of each key it has a row
        // of, so its first row of a key is the key's head.
        let window: Vec<(i64, Option<String>)> = sqlx::query_as(&self.sql.window)
            .bind(window)
            .fetch_all(&mut *tx)
            .await
            .map_err(Error::database(doing("reading the oldest pending rows")))?;
        if window.is_empty() {
            return Ok(0);
        }
        let mut seen = BTreeSet::new();
        let heads: Vec<i64> = window
            .iter()
            .filter(|(_, key)| key.as_ref().is_none_or(|k| seen.insert(k.as_str())))
            .map(|(position, _)| *position)
            .collect();
        let mut rows = sqlx::query(&self.sql.heads)
            .bind(&heads)
            .bind(batch as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(Error::database(doing("taking the heads")))?
            .iter()
            .map(|r| Pending::read(r, max))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::database(doing("reading the heads")))?;
        // The keys whose heads this round holds: no other relay takes a row
        // of them, so their next rows in the window are this round's too.
        let held: BTreeSet<&str> = rows.iter().filter_map(|r| r.key.as_deref()).collect();
        let room = batch.saturating_sub(rows.len());
        let taken_heads: BTreeSet<i64> = rows.iter().map(|r| r.position).collect();
        let followers: Vec<i64> = window
            .iter()
            .filter(|(position, key)| {
                !taken_heads.contains(position) && key.as_deref().is_some_and(|k| held.contains(k))
            })
            .map(|(position, _)| *position)
            .take(room)
            .collect();
        if !followers.is_empty() {
            let more = sqlx::query(&self.sql.followers)
                .bind(&followers)
                .fetch_all(&mut *tx)
                .await
                .map_err(Error::database(doing("taking the next rows of held keys")))?;
            for r in &more {
                rows.push(Pending::read(r, max).map_err(Error::database(doing("reading rows")))?);
            }
            rows.sort_by_key(|r| r.position);
        }
        let taken = rows.len();
        let marks = self.publish(rows).await?;
        self.mark(&mut tx, &marks).await?;
        tx.commit()
            .await
            .map_err(Error::database(doing("commit")))?;
        self.counters
            .published
            .fetch_add(marks.published.len() as u64, Ordering::Relaxed);
        self.counters
            .failed
            .fetch_add(marks.failed.0.len() as u64, Ordering::Relaxed);
        self.counters.rounds.fetch_add(1, Ordering::Relaxed);
        Ok(taken)
    }

    /// Publishes the rows that can be, all in one call; when Redis refuses
    /// that call, row by row, to find the rows it refuses. An unreachable
    /// Redis fails the round, leaving every row pending.
    async fn publish(&self, rows: Vec<Pending>) -> Result<Marks, Error> {
        let mut marks = Marks::default();
        let mut ready = Vec::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            match row.event {
                Ok(event) => {
                    ready.push((row.position, row.key, row.attempts));
                    events.push(event);
                }
                Err(reason) => {
                    tracing::warn!(position = row.position, %reason, "an outbox row cannot be published; marked failed");
                    marks.failed.0.push(row.position);
                    marks.failed.1.push(reason);
                }
            }
        }
        if events.is_empty() {
            return Ok(marks);
        }
        match self.bus.publish_raw(&events).await {
            Ok(_) => {
                marks.published = ready.into_iter().map(|(p, _, _)| p).collect();
                return Ok(marks);
            }
            Err(e) if unreachable_redis(&e) => return Err(e.into()),
            Err(e) => {
                tracing::debug!(error = %e, "Redis refused a batch; publishing its rows one by one")
            }
        }
        // Keys with a row left pending: their later rows wait too, so that
        // the key's order holds.
        let mut held: BTreeSet<String> = BTreeSet::new();
        for ((position, key, attempts), event) in ready.into_iter().zip(events) {
            if key.as_ref().is_some_and(|k| held.contains(k)) {
                continue;
            }
            match self.bus.publish_raw(std::slice::from_ref(&event)).await {
                Ok(_) => marks.published.push(position),
                Err(e) if unreachable_redis(&e) => return Err(e.into()),
                Err(e) => {
                    let reason = e.to_string();
                    if attempts.saturating_add(1) as u32 >= self.options.max_attempts {
                        tracing::warn!(position, %reason, "Redis refused an outbox row too often; marked failed");
                        marks.failed.0.push(position);
                        marks.failed.1.push(reason);
                    } else {
                        if let Some(k) = key {
                            held.insert(k);
                        }
                        marks.retry.0.push(position);
                        marks.retry.1.push(reason);
                    }
                }
            }
        }
        Ok(marks)
    }

    async fn mark(&self, tx: &mut sqlx::PgConnection, marks: &Marks) -> Result<(), Error> {
        let doing = |what: &str| format!("relaying from {}: {what}", self.table);
        if !marks.published.is_empty() {
            let sql = match self.options.keep_published {
                None => &self.sql.delete,
                Some(_) => &self.sql.keep,
            };
            sqlx::query(sql)
                .bind(&marks.published)
                .execute(&mut *tx)
                .await
                .map_err(Error::database(doing("marking published rows")))?;
        }
        for ((positions, reasons), sql, what) in [
            (&marks.failed, &self.sql.fail, "marking failed rows"),
            (&marks.retry, &self.sql.retry, "counting refused attempts"),
        ] {
            if positions.is_empty() {
                continue;
            }
            sqlx::query(sql)
                .bind(positions)
                .bind(reasons)
                .execute(&mut *tx)
                .await
                .map_err(Error::database(doing(what)))?;
        }
        Ok(())
    }

    /// Deletes published rows older than `keep`.
    async fn clean(&self, keep: Duration) -> Result<u64, Error> {
        let done = sqlx::query(&self.sql.clean)
            .bind(keep.as_secs_f64())
            .execute(&self.outbox.pool)
            .await
            .map_err(Error::database(format!(
                "deleting old published rows of {}",
                self.table
            )))?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_ceiling() {
        assert_eq!(backoff(1), Duration::from_millis(50));
        assert_eq!(backoff(2), Duration::from_millis(100));
        assert_eq!(backoff(30), Duration::from_millis(1600));
        assert!(backoff(100) <= Duration::from_secs(2));
    }
}
