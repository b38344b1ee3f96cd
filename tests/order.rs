//! Order per key, run against every transport: events of one
//! `partitionkey` are handled one after another in stream order, while
//! other keys run concurrently, and a retry holds back its own key only.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{eventually, Harness};
use tidings::{event, handler, ConsumerOptions, Context, HandlerResult, Meta, RetryPolicy, State};

/// A change to an account; `seq` counts up per account as published.
#[event(stream = "ledger", version = 1, key = account)]
#[derive(Debug, Clone)]
pub struct AccountChanged {
    /// The account changed.
    pub account: String,
    /// Counts up per account.
    pub seq: u32,
}

/// A note with no key of its own: published with one through `Meta`.
#[event(stream = "ledger", version = 1)]
#[derive(Debug, Clone)]
pub struct NoteAdded {
    /// The note.
    pub text: String,
}

/// What the handlers saw, and how many entries of each key ran at once.
#[derive(Clone, Default)]
struct Ledger {
    inner: Arc<Mutex<LedgerInner>>,
}

#[derive(Default)]
struct LedgerInner {
    /// (key, seq) in the order their handling finished.
    handled: Vec<(String, u32)>,
    /// Entries of each key being handled now.
    running: HashMap<String, u32>,
    /// More than one entry of one key at once: the order was broken.
    overlaps: u32,
    /// Entries being handled now, over all keys, and the most there were.
    now: u32,
    most: u32,
    /// (key, seq) whose first attempt fails.
    fail_once: Vec<(String, u32)>,
    attempts: HashMap<(String, u32), u32>,
    /// Partition keys the handlers read from their context.
    keys_seen: Vec<Option<String>>,
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerInner> {
        self.inner.lock().unwrap()
    }
    fn failing_once(self, fail: &[(&str, u32)]) -> Self {
        self.lock().fail_once = fail.iter().map(|(k, s)| (k.to_string(), *s)).collect();
        self
    }
    fn handled(&self) -> Vec<(String, u32)> {
        self.lock().handled.clone()
    }
    fn of(&self, key: &str) -> Vec<u32> {
        self.handled()
            .into_iter()
            .filter(|(k, _)| k == key)
            .map(|(_, s)| s)
            .collect()
    }
    fn position(&self, key: &str, seq: u32) -> Option<usize> {
        self.handled()
            .iter()
            .position(|(k, s)| k == key && *s == seq)
    }
}

async fn handle(ledger: &Ledger, e: &AccountChanged, ctx: &Context) -> HandlerResult {
    let fails = {
        let mut l = ledger.lock();
        l.keys_seen.push(ctx.partition_key().map(str::to_owned));
        let id = (e.account.clone(), e.seq);
        let attempt = {
            let a = l.attempts.entry(id.clone()).or_default();
            *a += 1;
            *a
        };
        let running = l.running.entry(e.account.clone()).or_default();
        *running += 1;
        if *running > 1 {
            l.overlaps += 1;
        }
        l.now += 1;
        l.most = l.most.max(l.now);
        attempt == 1 && l.fail_once.contains(&id)
    };
    // Handlers of different lengths, so that a later entry of a key would
    // overtake an earlier one if nothing kept them in order.
    tokio::time::sleep(Duration::from_millis(u64::from((e.seq * 7) % 5))).await;
    let mut l = ledger.lock();
    l.now -= 1;
    if let Some(r) = l.running.get_mut(&e.account) {
        *r -= 1;
    }
    if fails {
        return Err(format!("first attempt at {}#{} fails", e.account, e.seq).into());
    }
    l.handled.push((e.account.clone(), e.seq));
    Ok(())
}

#[handler(group = "ledger-concurrent", concurrency = 8)]
async fn concurrent(e: AccountChanged, ctx: Context, State(l): State<Ledger>) -> HandlerResult {
    handle(&l, &e, &ctx).await
}

#[handler(group = "ledger-single")]
async fn single(e: AccountChanged, ctx: Context, State(l): State<Ledger>) -> HandlerResult {
    handle(&l, &e, &ctx).await
}

#[handler(group = "notes")]
async fn note(e: NoteAdded, ctx: Context, State(l): State<Ledger>) -> HandlerResult {
    l.lock()
        .keys_seen
        .push(ctx.partition_key().map(str::to_owned));
    l.lock().handled.push((e.text, 0));
    Ok(())
}

fn fast() -> ConsumerOptions {
    ConsumerOptions::default()
        .block(Duration::from_millis(100))
        .claim_idle(None)
}

fn retry_after(ms: u64) -> RetryPolicy {
    RetryPolicy::new()
        .attempts(3)
        .backoff(Duration::from_millis(ms))
        .jitter(false)
}

/// `keys` accounts, `per_key` changes each, interleaved round the keys.
fn interleaved(keys: u32, per_key: u32) -> Vec<AccountChanged> {
    (0..per_key)
        .flat_map(|seq| {
            (0..keys).map(move |k| AccountChanged {
                account: format!("acct-{k}"),
                seq,
            })
        })
        .collect()
}

fn assert_in_order(ledger: &Ledger, keys: u32, per_key: u32) {
    for k in 0..keys {
        let key = format!("acct-{k}");
        assert_eq!(
            ledger.of(&key),
            (0..per_key).collect::<Vec<_>>(),
            "the changes of {key} were handled out of order"
        );
    }
    assert_eq!(
        ledger.lock().overlaps,
        0,
        "two entries of one key ran at once"
    );
}

async fn events_of_one_key_are_handled_in_order_while_keys_run_concurrently(h: Harness) {
    let ledger = Ledger::default();
    let worker = h
        .bus
        .consumer()
        .state(ledger.clone())
        .options(fast().count(50))
        .handler(concurrent)
        .start()
        .await
        .unwrap();
    let events = interleaved(12, 25);
    for chunk in events.chunks(60) {
        h.bus.publish_batch(chunk).await.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(20), || ledger.handled().len()
            == events.len())
        .await
    );
    worker.shutdown().await.unwrap();
    assert_in_order(&ledger, 12, 25);
    assert!(
        ledger.lock().most > 1,
        "entries of different keys never ran at once"
    );
    let seen = ledger.lock().keys_seen.clone();
    assert!(seen
        .iter()
        .all(|k| k.as_deref().is_some_and(|k| k.starts_with("acct-"))));
}

async fn a_retry_holds_back_later_events_of_its_key_only(h: Harness) {
    let ledger = Ledger::default().failing_once(&[("acct-0", 1), ("acct-3", 4)]);
    let worker = h
        .bus
        .consumer()
        .state(ledger.clone())
        .options(fast().count(50))
        .handler(concurrent)
        .retry(retry_after(400))
        .start()
        .await
        .unwrap();
    let events = interleaved(6, 10);
    h.bus.publish_batch(&events).await.unwrap();
    assert!(
        eventually(Duration::from_secs(20), || ledger.handled().len()
            == events.len())
        .await
    );
    worker.shutdown().await.unwrap();
    assert_in_order(&ledger, 6, 10);
    // The other keys did not wait for the 400 ms retry: all of them were
    // done before the retried change of acct-0 was.
    let retried = ledger.position("acct-0", 1).unwrap();
    for k in [1, 2, 4, 5] {
        let last = ledger.position(&format!("acct-{k}"), 9).unwrap();
        assert!(
            last < retried,
            "acct-{k} waited for the retry of acct-0: {:?}",
            ledger.handled()
        );
    }
    assert_eq!(ledger.lock().attempts[&("acct-0".to_owned(), 1)], 2);
    assert_eq!(ledger.lock().attempts[&("acct-3".to_owned(), 4)], 2);
}

async fn one_at_a_time_handler_keeps_a_key_in_order_across_a_retry(h: Harness) {
    let ledger = Ledger::default().failing_once(&[("acct-1", 0), ("acct-2", 3)]);
    let worker = h
        .bus
        .consumer()
        .state(ledger.clone())
        .options(fast().count(20))
        .handler(single)
        .retry(retry_after(200))
        .start()
        .await
        .unwrap();
    let events = interleaved(4, 8);
    h.bus.publish_batch(&events).await.unwrap();
    assert!(
        eventually(Duration::from_secs(20), || ledger.handled().len()
            == events.len())
        .await
    );
    worker.shutdown().await.unwrap();
    assert_in_order(&ledger, 4, 8);
    // Keys 0 and 3 never failed and went on during the retries.
    let retried = ledger.position("acct-1", 0).unwrap();
    assert!(ledger.position("acct-0", 7).unwrap() < retried);
    // One at a time throughout: entries run in the reading task, on the
    // slot it keeps, and retries in their key's task.
    assert_eq!(ledger.lock().most, 1);
}

async fn meta_sets_the_key_of_an_event_without_one(h: Harness) {
    let ledger = Ledger::default();
    let worker = h
        .bus
        .consumer()
        .state(ledger.clone())
        .options(fast())
        .handler(note)
        .start()
        .await
        .unwrap();
    h.bus
        .publish_with(
            &NoteAdded { text: "a".into() },
            Meta::default().partition_key("desk-1"),
        )
        .await
        .unwrap();
    h.bus
        .publish(&NoteAdded { text: "b".into() })
        .await
        .unwrap();
    let bad = h
        .bus
        .publish_with(
            &NoteAdded { text: "c".into() },
            Meta::default().partition_key(""),
        )
        .await
        .unwrap_err();
    assert!(matches!(bad, tidings::Error::InvalidName(_)), "{bad}");
    assert!(eventually(Duration::from_secs(10), || ledger.handled().len() == 2).await);
    worker.shutdown().await.unwrap();
    assert_eq!(
        ledger.lock().keys_seen,
        vec![Some("desk-1".to_owned()), None]
    );
}

tidings_testkit::transport_suite! {
    transports: {
        memory => Harness::memory(),
        redis => Harness::redis().await,
    },
    tests: [
        events_of_one_key_are_handled_in_order_while_keys_run_concurrently,
        a_retry_holds_back_later_events_of_its_key_only,
        one_at_a_time_handler_keeps_a_key_in_order_across_a_retry,
        meta_sets_the_key_of_an_event_without_one,
    ],
}
