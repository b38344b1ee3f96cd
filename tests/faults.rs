//! Delivery under faults: workers killed mid-batch, Redis restarted while
//! publishing, poison entries, many workers and groups, consumers cancelled
//! as soon as they start, entries deleted while pending. Each test counts
//! what was published, handled, handled twice and dead-lettered, and runs on
//! in-memory too wherever the fault exists there.
//!
//! Both load tests run at their full size by default: the restart test
//! publishes 10,000 events from 100 tasks across two restarts (about 3 s),
//! the exactly-once test runs 4 workers × 2 groups × 100,000 events (about
//! 20 s per transport on two cores). `TIDINGS_FAULT_SCALE` scales both
//! (`0.2` is a fifth, for a quick local run).
//!
//! The tests of this file run one at a time ([`serial`]): each drives a
//! durable redis-server (`appendfsync always`) as hard as it can, and
//! side by side on two cores they would measure each other's fsyncs rather
//! than the guarantees.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use support::events::*;
use support::{eventually, Harness, Probe};
use tidings::{handler, ConsumerOptions, Context, HandlerResult, RetryPolicy, StartFrom, State};

/// Held by each test of this file for its whole run.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// Publish timeout of the tests that are not about timeouts: long enough
/// that a slow fsync on a loaded machine is not mistaken for an outage.
const PATIENT: Duration = Duration::from_secs(30);

/// `full` times `TIDINGS_FAULT_SCALE`, or `default` when the variable is
/// not set.
fn scaled(full: usize, default: usize) -> usize {
    match std::env::var("TIDINGS_FAULT_SCALE") {
        Ok(v) => {
            let factor: f64 = v
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("TIDINGS_FAULT_SCALE={v:?} is not a number"));
            ((full as f64 * factor).round() as usize).max(1)
        }
        Err(_) => default,
    }
}

fn opts() -> ConsumerOptions {
    ConsumerOptions::default()
        .block(Duration::from_millis(100))
        .start_from(StartFrom::Beginning)
        .claim_idle(None)
}

/// Reclaims idle entries quickly, as the worker that outlives a crash.
fn reclaiming() -> ConsumerOptions {
    opts()
        .claim_idle(Some(Duration::from_millis(300)))
        .claim_interval(Duration::from_millis(50))
        .heartbeat(Duration::from_millis(50))
}

#[handler(group = "crashy", concurrency = 64)]
async fn stuck(e: FileUploaded, ctx: Context, State(p): State<Probe>) -> HandlerResult {
    p.start();
    p.pass_gate().await;
    p.handle(&e.file_id, &ctx);
    Ok(())
}

#[handler(group = "crashy", concurrency = 8)]
async fn survivor(e: FileUploaded, ctx: Context, State(p): State<Probe>) -> HandlerResult {
    p.handle(&e.file_id, &ctx);
    Ok(())
}

#[handler(group = "tolerant", concurrency = 4)]
async fn tolerant(e: FileUploaded, ctx: Context, State(p): State<Probe>) -> HandlerResult {
    if e.file_id.starts_with("panic") {
        panic!("handler bug on {}", e.file_id);
    }
    p.handle(&e.file_id, &ctx);
    Ok(())
}

#[handler(group = "a", concurrency = 16)]
async fn tally_a(e: FileUploaded, ctx: Context, State(p): State<Probe>) -> HandlerResult {
    p.handle(&format!("a:{}", e.file_id), &ctx);
    Ok(())
}

#[handler(group = "b", concurrency = 16)]
async fn tally_b(e: FileUploaded, ctx: Context, State(p): State<Probe>) -> HandlerResult {
    p.handle(&format!("b:{}", e.file_id), &ctx);
    Ok(())
}

#[handler(group = "steady", concurrency = 32)]
async fn steady(e: FileUploaded, ctx: Context, State(p): State<Probe>) -> HandlerResult {
    p.handle(&e.file_id, &ctx);
    Ok(())
}

/// Counts of a run, printed by every test so a failure explains itself.
#[derive(Debug, Default)]
struct Tally {
    published: usize,
    handled: usize,
    duplicated: usize,
    missing: usize,
    dead_lettered: usize,
}

fn tally(published: &HashSet<String>, p: &Probe, dead_lettered: usize) -> Tally {
    let handled = p.handled();
    let unique: HashSet<&str> = handled.iter().map(|(k, _)| k.as_str()).collect();
    Tally {
        published: published.len(),
        handled: unique.len(),
        duplicated: handled.len() - unique.len(),
        missing: published
            .iter()
            .filter(|k| !unique.contains(k.as_str()))
            .count(),
        dead_lettered,
    }
}

async fn worker_killed_mid_batch_leaves_every_taken_event_to_another_worker(h: Harness) {
    const EVENTS: usize = 50;
    let key = h.bus.stream_key("contextual").unwrap();
    let victim = Probe::default();
    let a = h
        .bus
        .consumer()
        .state(victim.clone())
        .options(opts().name("victim").count(10).prefetch(20))
        .handler(stuck)
        .start()
        .await
        .unwrap();
    let events: Vec<_> = (0..EVENTS)
        .map(|i| FileUploaded::new(format!("k{i}")))
        .collect();
    h.bus.publish_batch(&events).await.unwrap();
    assert!(eventually(Duration::from_secs(10), || victim.started() == 20).await);
    let taken = h.pending(&key, "crashy").await;
    assert_eq!(taken, 20, "the victim holds a full prefetch");
    a.abort();

    let rescuer = Probe::default();
    let b = h
        .bus
        .consumer()
        .state(rescuer.clone())
        .options(reclaiming().name("rescuer"))
        .handler(survivor)
        .start()
        .await
        .unwrap();
    let published: HashSet<String> = events.iter().map(|e| e.file_id.clone()).collect();
    eventually(Duration::from_secs(20), || {
        tally(&published, &rescuer, 0).missing == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.shutdown().await.unwrap();
    let t = tally(&published, &rescuer, 0);
    println!("{t:?}");
    assert_eq!(victim.handled_len(), 0, "the victim finished nothing");
    assert_eq!(t.missing, 0, "{t:?}");
    assert_eq!(t.duplicated, 0, "{t:?}");
    assert_eq!(h.pending(&key, "crashy").await, 0);
}

async fn poison_unknown_version_and_panics_go_to_dead_letters_and_the_worker_goes_on(h: Harness) {
    const GOOD: usize = 20;
    let key = h.bus.stream_key("contextual").unwrap();
    let p = Probe::default();
    let worker = h
        .bus
        .consumer()
        .state(p.clone())
        .options(opts())
        .handler(tolerant)
        .retry(
            RetryPolicy::default()
                .attempts(2)
                .backoff(Duration::from_millis(10)),
        )
        .start()
        .await
        .unwrap();
    let mut published = HashSet::new();
    let mut bad = 0;
    for i in 0..GOOD {
        if i == 5 {
            h.bus
                .publish(&FileUploadedV9 {
                    file_id: "future".into(),
                })
                .await
                .unwrap();
            h.bus.publish(&FileUploaded::new("panic-1")).await.unwrap();
            bad += 2;
            if let Some(server) = &h.server {
                // Written by something that is not tidings: no envelope.
                let mut conn = server.connection().await;
                let _: String = ::redis::cmd("XADD")
                    .arg(&key)
                    .arg("*")
                    .arg("hello")
                    .arg("world")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                bad += 1;
            }
        }
        let id = format!("g{i}");
        h.bus.publish(&FileUploaded::new(id.clone())).await.unwrap();
        published.insert(id);
    }
    let dlq = h.bus.dead_letters("contextual").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while dlq.len().await.unwrap() < bad && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eventually(Duration::from_secs(10), || p.handled_len() >= GOOD).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.shutdown().await.unwrap();
    let letters = dlq.list(100).await.unwrap();
    let t = tally(&published, &p, letters.len());
    println!("{t:?}");
    assert_eq!(t.missing, 0, "{t:?}");
    assert_eq!(t.duplicated, 0, "{t:?}");
    assert_eq!(t.dead_lettered, bad, "{letters:#?}");
    assert!(letters.iter().any(|l| l.error.contains("v9")));
    assert!(letters
        .iter()
        .any(|l| l.error.contains("panicked") && l.attempts == 2));
    if h.server.is_some() {
        let poison = letters.iter().find(|l| l.envelope.is_err()).unwrap();
        assert!(poison.error.contains("not a CloudEvents envelope"));
        assert_eq!(poison.fields, [("hello".to_owned(), b"world".to_vec())]);
    }
    assert_eq!(h.pending(&key, "tolerant").await, 0);
}

async fn four_workers_two_groups_handle_each_event_exactly_once(h: Harness) {
    let events = scaled(100_000, 100_000);
    let p = Probe::default();
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(
            h.bus
                .consumer()
                .state(p.clone())
                .options(opts().count(100))
                .handler(tally_a)
                .handler(tally_b)
                .start()
                .await
                .unwrap(),
        );
    }
    let mut published = HashSet::new();
    for chunk in (0..events).collect::<Vec<_>>().chunks(100) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|i| FileUploaded::new(format!("e{i}")))
            .collect();
        h.bus.publish_batch(&batch).await.unwrap();
        for i in chunk {
            published.insert(format!("a:e{i}"));
            published.insert(format!("b:e{i}"));
        }
    }
    let within = Duration::from_secs(30 + events as u64 / 500);
    eventually(within, || p.handled_len() >= 2 * events).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for w in workers {
        w.shutdown().await.unwrap();
    }
    let t = tally(&published, &p, 0);
    println!("{t:?}");
    assert_eq!(t.missing, 0, "{t:?}");
    assert_eq!(t.duplicated, 0, "{t:?}");
    assert_eq!(t.handled, 2 * events);
}

async fn consumer_cancelled_right_after_starting_loses_nothing(h: Harness) {
    const ROUNDS: usize = 24;
    let p = Probe::default();
    let mut published = HashSet::new();
    for round in 0..ROUNDS {
        let batch: Vec<_> = (0..5)
            .map(|i| FileUploaded::new(format!("r{round}-{i}")))
            .collect();
        h.bus.publish_batch(&batch).await.unwrap();
        published.extend(batch.into_iter().map(|e| e.file_id));
        let start = h
            .bus
            .consumer()
            .state(p.clone())
            .options(opts().name(format!("fickle-{round}")))
            .handler(steady)
            .start();
        // Four ways to walk away at once.
        match round % 4 {
            0 => drop(tokio::time::timeout(Duration::ZERO, start).await),
            1 => start.await.unwrap().abort(),
            2 => drop(start.await.unwrap()),
            _ => start.await.unwrap().shutdown().await.unwrap(),
        }
    }
    let fresh = h
        .bus
        .consumer()
        .state(p.clone())
        .options(reclaiming().name("fresh"))
        .handler(steady)
        .start()
        .await
        .unwrap();
    eventually(Duration::from_secs(20), || {
        tally(&published, &p, 0).missing == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    fresh.shutdown().await.unwrap();
    let t = tally(&published, &p, 0);
    println!("{t:?}");
    assert_eq!(t.missing, 0, "{t:?}");
    assert_eq!(
        h.pending(&h.bus.stream_key("contextual").unwrap(), "steady")
            .await,
        0
    );
}

// One at a time (`serial`), each on a durable server on Redis.
tidings_testkit::transport_suite! {
    hold: serial().await,
    transports: {
        memory => Harness::memory(),
        redis => Harness::redis_durable(PATIENT).await,
    },
    tests: [
        worker_killed_mid_batch_leaves_every_taken_event_to_another_worker,
        poison_unknown_version_and_panics_go_to_dead_letters_and_the_worker_goes_on,
        four_workers_two_groups_handle_each_event_exactly_once,
        consumer_cancelled_right_after_starting_loses_nothing,
    ],
}

/// Publishes `total` events (ids `<prefix><i>`) from 100 tasks, restarting
/// the server after a third and after two thirds; returns the ids whose
/// publish succeeded and how many failed.
async fn publish_across_two_restarts(
    bus: &tidings::Bus,
    server: &Arc<std::sync::Mutex<tidings_testkit::RedisServer>>,
    total: usize,
    prefix: &'static str,
) -> (HashSet<String>, usize) {
    const TASKS: usize = 100;
    let ok = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut publishers = Vec::new();
    for t in 0..TASKS {
        let (bus, ok, failed, done) = (bus.clone(), ok.clone(), failed.clone(), done.clone());
        publishers.push(tokio::spawn(async move {
            for i in (t..total).step_by(TASKS) {
                let id = format!("{prefix}{i}");
                match bus.publish(&FileUploaded::new(id.clone())).await {
                    Ok(_) => {
                        ok.lock().unwrap().insert(id);
                    }
                    Err(_) => {
                        failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Spreads publishing over the restarts.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    for third in [1, 2] {
        let at = total * third / 3;
        assert!(
            eventually(Duration::from_secs(60), || done
                .load(std::sync::atomic::Ordering::SeqCst)
                >= at)
            .await
        );
        let server = server.clone();
        tokio::task::spawn_blocking(move || server.lock().unwrap().restart())
            .await
            .unwrap();
    }
    for task in publishers {
        task.await.unwrap();
    }
    let published = ok.lock().unwrap().clone();
    (published, failed.load(std::sync::atomic::Ordering::SeqCst))
}

/// Redis only: the in-memory transport has no outage to survive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_twice_while_publishing_every_acknowledged_event_is_handled() {
    let _serial = serial().await;
    let total = scaled(10_000, 10_000);
    let mut h = Harness::redis_durable(Duration::from_secs(10)).await;
    let server = Arc::new(std::sync::Mutex::new(h.server.take().unwrap()));
    let p = Probe::default();
    let worker = h
        .bus
        .consumer()
        .state(p.clone())
        .options(
            reclaiming()
                .claim_idle(Some(Duration::from_secs(1)))
                .backoff(Duration::from_millis(50), Duration::from_millis(500)),
        )
        .handler(steady)
        .start()
        .await
        .unwrap();

    let (published, failed) = publish_across_two_restarts(&h.bus, &server, total, "p").await;
    eventually(Duration::from_secs(60), || {
        tally(&published, &p, 0).missing == 0
    })
    .await;
    worker.shutdown().await.unwrap();
    let t = tally(&published, &p, 0);
    println!("{t:?}, publish errors: {failed}");
    assert_eq!(t.missing, 0, "{t:?}");
    assert_eq!(t.published + failed, total);
    assert!(
        t.published >= total / 2,
        "most publishes should ride out a restart: {t:?}, errors {failed}"
    );
}

/// Redis only. With the default options (`claim_idle` 60 s), a worker
/// takes back at once what it was given while the connection dropped, and
/// acknowledges what it handled when Redis is back: no event waits for a
/// claim, and nothing handled stays pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_two_restarts_a_worker_on_defaults_catches_up_within_seconds() {
    let _serial = serial().await;
    let total = scaled(10_000, 10_000);
    let mut h = Harness::redis_durable(Duration::from_secs(10)).await;
    let key = h.bus.stream_key("contextual").unwrap();
    let server = Arc::new(std::sync::Mutex::new(h.server.take().unwrap()));
    let p = Probe::default();
    let worker = h
        .bus
        .consumer()
        .state(p.clone())
        .handler(steady)
        .start()
        .await
        .unwrap();

    let (published, _) = publish_across_two_restarts(&h.bus, &server, total, "d").await;
    // Far below `claim_idle` (60 s): only taking back its own entries at
    // once gets a worker there.
    let caught_up = eventually(Duration::from_secs(15), || {
        tally(&published, &p, 0).missing == 0
    })
    .await;
    let t = tally(&published, &p, 0);
    println!("{t:?}");
    assert!(
        caught_up,
        "events still unhandled 15 s after the last publish: {t:?}"
    );
    worker.shutdown().await.unwrap();
    let h = Harness {
        bus: h.bus,
        server: Some(Arc::into_inner(server).unwrap().into_inner().unwrap()),
    };
    assert_eq!(
        h.pending(&key, "steady").await,
        0,
        "handled entries left pending after a graceful shutdown"
    );
}

/// Redis only: the in-memory transport offers no `XDEL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_deleted_while_pending_is_dropped_without_error() {
    let _serial = serial().await;
    let h = Harness::redis_durable(PATIENT).await;
    let key = h.bus.stream_key("contextual").unwrap();
    let victim = Probe::default();
    let a = h
        .bus
        .consumer()
        .state(victim.clone())
        .options(opts().name("victim"))
        .handler(stuck)
        .start()
        .await
        .unwrap();
    let events: Vec<_> = (0..6).map(|i| FileUploaded::new(format!("d{i}"))).collect();
    let published = h.bus.publish_batch(&events).await.unwrap();
    assert!(eventually(Duration::from_secs(10), || victim.started() == 6).await);
    a.abort();
    let mut conn = h.server.as_ref().unwrap().connection().await;
    let deleted: Vec<String> = published[..2]
        .iter()
        .map(|p| p.entry_id.clone().unwrap())
        .collect();
    let n: i64 = ::redis::cmd("XDEL")
        .arg(&key)
        .arg(&deleted)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 2);

    let rescuer = Probe::default();
    let b = h
        .bus
        .consumer()
        .state(rescuer.clone())
        .options(reclaiming().name("rescuer"))
        .handler(survivor)
        .start()
        .await
        .unwrap();
    let expected: HashSet<String> = (2..6).map(|i| format!("d{i}")).collect();
    eventually(Duration::from_secs(10), || {
        tally(&expected, &rescuer, 0).missing == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.shutdown().await.unwrap();
    let dead = h
        .bus
        .dead_letters("contextual")
        .unwrap()
        .len()
        .await
        .unwrap();
    let t = tally(&expected, &rescuer, dead);
    println!("{t:?}");
    assert_eq!(t.missing, 0, "{t:?}");
    assert_eq!(t.handled, 4, "deleted entries are not handled: {t:?}");
    assert_eq!(t.dead_lettered, 0, "deleted entries are not dead letters");
    assert_eq!(h.pending(&key, "crashy").await, 0, "nor left pending");
}

/// Redis only: `publish` gives up after the publish timeout instead of
/// hanging, and works again once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_fails_after_the_timeout_while_redis_is_down_and_recovers() {
    let _serial = serial().await;
    let mut h = Harness::redis_durable(Duration::from_millis(500)).await;
    h.bus.publish(&FileUploaded::new("before")).await.unwrap();
    h.server.as_mut().unwrap().stop();
    let started = std::time::Instant::now();
    let err = h.bus.publish(&FileUploaded::new("lost")).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, tidings::Error::Unavailable { .. }), "{err}");
    assert!(took < Duration::from_secs(3), "publish hung for {took:?}");
    // A batch too: it is tried again, with the same event ids, until the
    // timeout.
    let lost: Vec<_> = (0..3)
        .map(|i| FileUploaded::new(format!("lost-{i}")))
        .collect();
    let started = std::time::Instant::now();
    let err = h.bus.publish_batch(&lost).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, tidings::Error::Unavailable { .. }), "{err}");
    assert!(took < Duration::from_secs(3), "batch hung for {took:?}");
    let mut server = h.server.take().unwrap();
    tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .map(|s| h.server = Some(s))
    .unwrap();
    let mut published = None;
    for _ in 0..20 {
        if let Ok(p) = h.bus.publish(&FileUploaded::new("after")).await {
            published = Some(p);
            break;
        }
    }
    assert!(
        published.is_some(),
        "publish did not recover after the restart"
    );
    let after: Vec<_> = (0..3)
        .map(|i| FileUploaded::new(format!("after-{i}")))
        .collect();
    let published = h.bus.publish_batch(&after).await.unwrap();
    assert_eq!(published.len(), 3);
    assert!(published.iter().all(|p| p.entry_id.is_some()));
}

/// Redis only: a worker reads through a server that wants a password, in a
/// database other than 0 (the reader and the publishing connection
/// authenticate and select it on every connection they open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_on_a_password_protected_server_in_database_3_handles_every_event() {
    let server = tidings_testkit::RedisServer::start();
    // Set after the start: the harness checks the server with a bare PING.
    let mut admin = server.connection().await;
    let _: () = ::redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("secret")
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = format!("redis://:secret@127.0.0.1:{}/3", server.port());
    let bus = tidings::Bus::builder()
        .source("faults")
        .connect(&url)
        .await
        .unwrap();
    let p = Probe::default();
    let w = bus
        .consumer()
        .state(p.clone())
        .options(opts())
        .handler(steady)
        .start()
        .await
        .unwrap();
    let events: Vec<_> = (0..20)
        .map(|i| FileUploaded::new(format!("p{i}")))
        .collect();
    bus.publish_batch(&events).await.unwrap();
    // One alone too: an awaited publish takes the same own connection.
    bus.publish(&FileUploaded::new("p20")).await.unwrap();
    let expected: HashSet<String> = (0..21).map(|i| format!("p{i}")).collect();
    assert!(
        eventually(Duration::from_secs(10), || tally(&expected, &p, 0).missing
            == 0)
        .await
    );
    w.shutdown().await.unwrap();
    let t = tally(&expected, &p, 0);
    assert_eq!((t.missing, t.duplicated), (0, 0), "{t:?}");

    let client = ::redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = bus.stream_key("contextual").unwrap();
    let len: usize = ::redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 21, "the events are in database 3");
    let pending: (i64,) = ::redis::cmd("XPENDING")
        .arg(&key)
        .arg("steady")
        .query_async(&mut conn)
        .await
        .map(|v: ::redis::Value| match v {
            ::redis::Value::Array(a) => match a.first() {
                Some(::redis::Value::Int(n)) => (*n,),
                _ => (-1,),
            },
            _ => (-1,),
        })
        .unwrap();
    assert_eq!(pending, (0,), "every entry acknowledged");
}
