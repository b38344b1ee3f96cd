//! Retries parked in Redis, run against every transport: with
//! `ConsumerOptions::park_retries_after`, a retry whose backoff is long
//! enough leaves the worker (the entry is acknowledged and kept with its
//! attempts in the group's delayed set), comes back through the group's
//! retry stream when due, and goes on with the same attempts, handlers and
//! dead letter as a retry that waited in the worker; other groups never
//! see it, and a worker that dies meanwhile loses nothing.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{eventually, Harness};
use tidings::{
    event, handler, Bus, ConsumerOptions, Context, HandlerResult, RetryPolicy, StartFrom, State,
    Worker,
};

const STREAM: &str = "parked";
const GROUP: &str = "parker";

/// A task; `fail` is how many attempts fail before one succeeds.
#[event(stream = "parked", version = 1)]
#[derive(Debug, Clone)]
pub struct Task {
    /// Which task.
    pub n: u32,
    /// Attempts that fail first (`u32::MAX`: every one).
    pub fail: u32,
}

/// The same task with a key: its retries never leave the worker.
#[event(stream = "parked", version = 1, key = account)]
#[derive(Debug, Clone)]
pub struct KeyedTask {
    /// The key.
    pub account: String,
    /// Attempts that fail first.
    pub fail: u32,
}

/// A handler and the task it was called with.
type Call = (&'static str, String);

/// Calls per (handler, task), and the entry ids each call saw.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<Call, Vec<String>>>>);

impl Calls {
    /// Counts a call; returns its number (1 for the first).
    fn call(&self, handler: &'static str, task: String, ctx: &Context) -> u32 {
        let mut calls = self.0.lock().unwrap();
        let seen = calls.entry((handler, task)).or_default();
        seen.push(ctx.entry_id().unwrap_or_default().to_owned());
        seen.len() as u32
    }
    fn count(&self, handler: &'static str, task: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .get(&(handler, task.to_owned()))
            .map_or(0, Vec::len)
    }
    fn entries(&self, handler: &'static str, task: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .get(&(handler, task.to_owned()))
            .cloned()
            .unwrap_or_default()
    }
}

#[handler(group = "parker")]
async fn flaky(e: Task, ctx: Context, State(calls): State<Calls>) -> HandlerResult {
    let n = calls.call("flaky", e.n.to_string(), &ctx);
    if n <= e.fail {
        return Err(format!("attempt {n} of task {} fails", e.n).into());
    }
    Ok(())
}

/// A second handler of the same group and type, which never fails: a
/// parked retry runs the failed handler only.
#[handler(group = "parker")]
async fn steady(e: Task, ctx: Context, State(calls): State<Calls>) -> HandlerResult {
    calls.call("steady", e.n.to_string(), &ctx);
    Ok(())
}

/// Another group of the stream: it handles each event once, whatever the
/// retries of `parker`.
#[handler(group = "auditor")]
async fn audit(e: Task, ctx: Context, State(calls): State<Calls>) -> HandlerResult {
    calls.call("audit", e.n.to_string(), &ctx);
    Ok(())
}

#[handler(group = "parker")]
async fn keyed(e: KeyedTask, ctx: Context, State(calls): State<Calls>) -> HandlerResult {
    let n = calls.call("keyed", e.account.clone(), &ctx);
    if n <= e.fail {
        return Err(format!("attempt {n} of {} fails", e.account).into());
    }
    Ok(())
}

/// Backoff 300 ms doubling, no jitter, parked from 200 ms on: every retry
/// of these tests is parked.
fn policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .attempts(attempts)
        .backoff(Duration::from_millis(300))
        .max_delay(Duration::from_millis(600))
        .jitter(false)
}

fn options() -> ConsumerOptions {
    ConsumerOptions::default()
        .block(Duration::from_millis(50))
        .claim_idle(None)
        .start_from(StartFrom::Beginning)
        .delayed_poll(Some(Duration::from_millis(20)))
        .park_retries_after(Some(Duration::from_millis(200)))
}

async fn start(bus: &Bus, calls: &Calls, attempts: u32) -> Worker {
    bus.consumer()
        .state(calls.clone())
        .options(options())
        .handler(flaky)
        .retry(policy(attempts))
        .handler(steady)
        .handler(keyed)
        .retry(policy(attempts))
        .start()
        .await
        .unwrap()
}

/// Whether the group has nothing pending on `key` at some point within
/// `within`.
async fn nothing_pending(h: &Harness, key: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if h.deliveries(key, GROUP).await.is_empty() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn retry_key(bus: &Bus) -> String {
    format!("{}:retry:{GROUP}", bus.stream_key(STREAM).unwrap())
}

async fn a_long_retry_is_parked_and_handled_from_the_groups_retry_stream(h: Harness) {
    let calls = Calls::default();
    let worker = start(&h.bus, &calls, 4).await;
    let auditor = h
        .bus
        .consumer()
        .state(calls.clone())
        .options(options())
        .handler(audit)
        .start()
        .await
        .unwrap();
    let published = h.bus.publish(&Task { n: 1, fail: 2 }).await.unwrap();
    let main = h.bus.stream_key(STREAM).unwrap();
    assert!(eventually(Duration::from_secs(5), || calls.count("flaky", "1") == 1).await);
    // Parked: nothing of it is pending on the stream while its retry waits
    // (a retry waiting in the worker keeps its entry pending there).
    assert!(
        nothing_pending(&h, &main, Duration::from_millis(250)).await,
        "the entry stays pending while its retry waits: it was not parked"
    );
    assert_eq!(calls.count("flaky", "1"), 1, "retried before its backoff");
    assert!(
        eventually(Duration::from_secs(5), || calls.count("flaky", "1") == 3).await,
        "the parked retry came back {} times",
        calls.count("flaky", "1") - 1
    );
    worker.shutdown().await.unwrap();
    auditor.shutdown().await.unwrap();
    // The first attempt from the stream, the others from the retry stream.
    let entries = calls.entries("flaky", "1");
    assert_eq!(entries[0], published.entry_id.clone().unwrap());
    assert!(entries[1..].iter().all(|e| *e != entries[0]));
    assert!(h.exists(&retry_key(&h.bus)).await);
    assert_eq!(
        calls.count("steady", "1"),
        1,
        "a parked retry runs only the handlers that failed"
    );
    assert_eq!(
        calls.count("audit", "1"),
        1,
        "another group saw the retries of `parker`"
    );
    assert_eq!(calls.count("flaky", "1"), 3);
    assert!(h.deliveries(&main, GROUP).await.is_empty());
    assert!(h.deliveries(&retry_key(&h.bus), GROUP).await.is_empty());
    assert_eq!(h.bus.dead_letters(STREAM).unwrap().len().await.unwrap(), 0);
}

async fn a_parked_retry_that_gives_up_is_the_same_dead_letter(h: Harness) {
    let calls = Calls::default();
    let worker = start(&h.bus, &calls, 3).await;
    let published = h
        .bus
        .publish(&Task {
            n: 2,
            fail: u32::MAX,
        })
        .await
        .unwrap();
    let dlq = h.bus.dead_letters(STREAM).unwrap();
    let mut letters = Vec::new();
    for _ in 0..500 {
        letters = dlq.list(10).await.unwrap();
        if !letters.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.shutdown().await.unwrap();
    assert_eq!(letters.len(), 1, "one dead letter");
    let letter = &letters[0];
    assert_eq!(calls.count("flaky", "2"), 3, "three attempts in all");
    assert_eq!(letter.attempts, 3);
    assert_eq!(letter.group, GROUP);
    assert_eq!(letter.handler.as_deref(), Some("flaky"));
    assert_eq!(
        Some(&letter.entry_id),
        published.entry_id.as_ref(),
        "the dead letter names the entry in the stream"
    );
    assert!(
        letter.fields.iter().all(|(k, _)| !k.starts_with("dlq_")),
        "{:?}",
        letter.fields
    );
    let first = letter.first_failure.unwrap();
    let last = letter.last_failure.unwrap();
    assert!(
        (last.unix_timestamp_nanos() - first.unix_timestamp_nanos()) / 1_000_000 >= 850,
        "first failure {first}, last {last}: the first one was not kept"
    );
    assert_eq!(
        letter.envelope.as_ref().unwrap().id,
        published.event_id.to_string()
    );
    // Put back, it goes to the stream itself, for `parker` only.
    assert!(dlq.retry(&letter.id).await.unwrap().is_some());
    assert_eq!(h.bus.range(STREAM, "-", 10).await.unwrap().len(), 2);
}

async fn a_parked_retry_outlives_its_worker(h: Harness) {
    let calls = Calls::default();
    let first = start(&h.bus, &calls, 4).await;
    h.bus.publish(&Task { n: 3, fail: 1 }).await.unwrap();
    let main = h.bus.stream_key(STREAM).unwrap();
    assert!(eventually(Duration::from_secs(5), || calls.count("flaky", "3") == 1).await);
    assert!(
        nothing_pending(&h, &main, Duration::from_millis(250)).await,
        "not parked"
    );
    // A crash while it is parked: nothing of it is in the worker.
    first.abort();
    let second = start(&h.bus, &calls, 4).await;
    assert!(
        eventually(Duration::from_secs(5), || calls.count("flaky", "3") == 2).await,
        "the parked retry was lost with its worker"
    );
    second.shutdown().await.unwrap();
    assert_eq!(calls.count("steady", "3"), 1);
    assert_eq!(h.bus.dead_letters(STREAM).unwrap().len().await.unwrap(), 0);
}

async fn a_retry_of_an_event_with_a_key_waits_in_the_worker(h: Harness) {
    let calls = Calls::default();
    let worker = start(&h.bus, &calls, 4).await;
    h.bus
        .publish(&KeyedTask {
            account: "a-1".into(),
            fail: 1,
        })
        .await
        .unwrap();
    let main = h.bus.stream_key(STREAM).unwrap();
    assert!(eventually(Duration::from_secs(5), || calls.count("keyed", "a-1") == 1).await);
    // Still pending on the stream while it waits: its key's later events
    // wait behind it.
    assert_eq!(h.deliveries(&main, GROUP).await.len(), 1);
    assert!(eventually(Duration::from_secs(5), || calls.count("keyed", "a-1") == 2).await);
    worker.shutdown().await.unwrap();
    let entries = calls.entries("keyed", "a-1");
    assert_eq!(entries[0], entries[1], "retried from the stream itself");
}

tidings_testkit::transport_suite! {
    transports: {
        memory => Harness::memory(),
        redis => Harness::redis().await,
    },
    tests: [
        a_long_retry_is_parked_and_handled_from_the_groups_retry_stream,
        a_parked_retry_that_gives_up_is_the_same_dead_letter,
        a_parked_retry_outlives_its_worker,
        a_retry_of_an_event_with_a_key_waits_in_the_worker,
    ],
}
