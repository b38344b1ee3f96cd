//! One worker over many tenants (`consumer().tenants(…)`): each event
//! handled as its tenant's, on every transport; on Redis, a fixed number of
//! connections whatever the number of tenants, a bounded stop, and nothing
//! acknowledged lost when the server restarts under the worker.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::events::*;
use support::{eventually, Harness, Probe, Recorder};
use tidings::{
    fatal, handler, ConsumerOptions, Context, Error, HandlerResult, Meta, StartFrom, State, Tenants,
};

/// Held by each test of this file for its whole run: the connection count
/// and the stop bound are measured on a machine that runs nothing else of
/// this file meanwhile.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

fn opts() -> ConsumerOptions {
    ConsumerOptions::default()
        .block(Duration::from_millis(200))
        .start_from(StartFrom::Beginning)
}

/// Records every event; an event whose id starts with `bad` fails for good.
#[handler(group = "tenanted", concurrency = 8)]
async fn tenanted(e: FileUploaded, ctx: Context, State(rec): State<Recorder>) -> HandlerResult {
    if e.file_id.starts_with("bad") {
        return Err(fatal(format!("{} is refused", e.file_id)));
    }
    rec.record("tenanted", &e.file_id, None, &ctx);
    Ok(())
}

#[handler(group = "counted", concurrency = 32)]
async fn counted(e: FileUploaded, ctx: Context, State(p): State<Probe>) -> HandlerResult {
    p.handle(&e.file_id, &ctx);
    Ok(())
}

/// One delivery at a time (the default concurrency): every tenant shares
/// the one slot. Notes each event's tenant in the order handled, and how
/// many ran at once at most; yields once while it runs, so that the other
/// loops reach the slot meanwhile.
#[handler(group = "one-at-a-time")]
async fn one_at_a_time(
    e: FileUploaded,
    ctx: Context,
    State(order): State<Arc<Order>>,
) -> HandlerResult {
    let now = order
        .running
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + 1;
    order
        .most
        .fetch_max(now, std::sync::atomic::Ordering::SeqCst);
    tokio::task::yield_now().await;
    order
        .tenants
        .lock()
        .unwrap()
        .push(ctx.tenant().unwrap_or_default().to_owned());
    if ctx.partition_key().is_some() {
        order
            .keyed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    std::hint::black_box(&e);
    order
        .running
        .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

#[derive(Default)]
struct Order {
    tenants: std::sync::Mutex<Vec<String>>,
    running: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    /// Events handled with a partition key.
    keyed: std::sync::atomic::AtomicUsize,
}

async fn a_one_at_a_time_handler_over_tenants_runs_each_batch_back_to_back(h: Harness) {
    one_at_a_time_over_tenants(h, false).await;
}

/// As above, with a partition key on every event: an entry with a key
/// that nothing of its key holds back runs on the slot the reading task
/// keeps too.
async fn keyed_events_of_a_one_at_a_time_handler_over_tenants_run_back_to_back(h: Harness) {
    one_at_a_time_over_tenants(h, true).await;
}

async fn one_at_a_time_over_tenants(h: Harness, keyed: bool) {
    const TENANTS: usize = 20;
    const EACH: usize = 20;
    let names: Vec<String> = (0..TENANTS).map(|i| format!("b{i}")).collect();
    let events: Vec<FileUploaded> = (0..EACH)
        .map(|i| FileUploaded::new(format!("f{i}")))
        .collect();
    for name in &names {
        let bus = h.bus.tenant(name).unwrap();
        if keyed {
            for (i, e) in events.iter().enumerate() {
                let key = format!("k{}", i % 3);
                bus.publish_with(e, Meta::default().partition_key(&key))
                    .await
                    .unwrap();
            }
        } else {
            bus.publish_batch(&events).await.unwrap();
        }
    }
    let order = Arc::new(Order::default());
    let worker = h
        .bus
        .consumer()
        .state(order.clone())
        .options(opts())
        .handler(one_at_a_time)
        .tenants(Tenants::list(names.clone()))
        .start()
        .await
        .unwrap();
    let all = TENANTS * EACH;
    assert!(
        eventually(Duration::from_secs(10), || order
            .tenants
            .lock()
            .unwrap()
            .len()
            == all)
        .await
    );
    worker.shutdown().await.unwrap();
    let seen = order.tenants.lock().unwrap().clone();
    for name in &names {
        assert_eq!(seen.iter().filter(|t| *t == name).count(), EACH, "{name}");
    }
    // Still one at a time over all the tenants.
    assert_eq!(order.most.load(std::sync::atomic::Ordering::SeqCst), 1);
    let with_key = order.keyed.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(with_key, if keyed { all } else { 0 });
    // Each loop keeps the slot through its batch: the handler goes from
    // one tenant to another about once per tenant, not once per event (as
    // when the slot was taken for each entry, and passed to the next loop
    // waiting for it after each).
    let switches = seen.windows(2).filter(|w| w[0] != w[1]).count();
    println!("{switches} switches between tenants over {all} events");
    assert!(switches < all / 4, "{switches} switches: {seen:?}");
}

async fn three_tenants_on_one_worker_are_each_handled_as_their_own(h: Harness) {
    let rec = Recorder::default();
    let worker = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(opts())
        .handler(tenanted)
        .tenants(Tenants::list(["acme", "globex", "initech"]))
        .start()
        .await
        .unwrap();
    for t in ["acme", "globex", "initech"] {
        let bus = h.bus.tenant(t).unwrap();
        for i in 0..3 {
            bus.publish(&FileUploaded::new(format!("{t}-{i}")))
                .await
                .unwrap();
        }
    }
    h.bus
        .tenant("globex")
        .unwrap()
        .publish(&FileUploaded::new("bad-globex"))
        .await
        .unwrap();
    // Not a tenant of the worker: never read.
    h.bus
        .tenant("umbrella")
        .unwrap()
        .publish(&FileUploaded::new("umbrella-0"))
        .await
        .unwrap();

    let seen = rec.wait_for("tenanted", 9).await;
    assert_eq!(seen.len(), 9, "{seen:?}");
    for s in &seen {
        let tenant = s.file_id.split('-').next().unwrap();
        assert_eq!(s.tenant.as_deref(), Some(tenant), "{s:?}");
    }
    let dlq = h
        .bus
        .tenant("globex")
        .unwrap()
        .dead_letters("contextual")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while dlq.len().await.unwrap() < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        dlq.len().await.unwrap(),
        1,
        "the failed event is in globex's dead letters"
    );
    for t in ["acme", "initech"] {
        let other = h.bus.tenant(t).unwrap().dead_letters("contextual").unwrap();
        assert_eq!(other.len().await.unwrap(), 0, "{t} has no dead letter");
    }
    assert_eq!(
        h.bus
            .dead_letters("contextual")
            .unwrap()
            .len()
            .await
            .unwrap(),
        0
    );
    worker.shutdown().await.unwrap();
    assert!(rec
        .seen()
        .iter()
        .all(|s| !s.file_id.starts_with("umbrella")));
}

async fn discover_reads_a_tenant_created_after_the_start_within_the_rescan(h: Harness) {
    let rec = Recorder::default();
    h.bus
        .tenant("acme")
        .unwrap()
        .publish(&FileUploaded::new("acme-0"))
        .await
        .unwrap();
    let worker = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(opts())
        .handler(tenanted)
        .tenants(Tenants::discover().rescan(Duration::from_millis(100)))
        .start()
        .await
        .unwrap();
    assert_eq!(rec.wait_for("tenanted", 1).await.len(), 1);

    // A tenant whose stream appears after the start: its first event was
    // published before any worker could read it, and is handled all the same.
    let created = Instant::now();
    h.bus
        .tenant("newco")
        .unwrap()
        .publish(&FileUploaded::new("newco-0"))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(3), || rec
            .seen()
            .iter()
            .any(
                |s| s.file_id == "newco-0" && s.tenant.as_deref() == Some("newco")
            ))
        .await,
        "{:?}",
        rec.seen()
    );
    let found_after = created.elapsed();
    println!("a new tenant was read {found_after:?} after its first event");
    assert!(found_after < Duration::from_secs(1), "{found_after:?}");
    worker.shutdown().await.unwrap();
}

async fn two_hundred_tenants_stop_together_within_two_seconds(h: Harness) {
    let p = Probe::default();
    let names: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
    let started = Instant::now();
    let worker = counted_worker(&h.bus, &p, &names, opts()).await;
    println!("started over 200 tenants in {:?}", started.elapsed());
    for name in names.iter().step_by(20) {
        h.bus
            .tenant(name)
            .unwrap()
            .publish(&FileUploaded::new(name.clone()))
            .await
            .unwrap();
    }
    assert!(eventually(Duration::from_secs(5), || p.handled_len() == 10).await);
    // Every loop is waiting in its read now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    worker.shutdown().await.unwrap();
    let took = stopping.elapsed();
    println!("200 tenants stopped in {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

async fn delayed_events_of_every_tenant_are_moved_by_the_worker(h: Harness) {
    let rec = Recorder::default();
    let names: Vec<String> = (0..50).map(|i| format!("d{i}")).collect();
    let worker = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(opts().delayed_poll(Some(Duration::from_millis(50))))
        .handler(tenanted)
        .tenants(Tenants::list(names.clone()))
        .start()
        .await
        .unwrap();
    for name in names.iter().step_by(10) {
        h.bus
            .tenant(name)
            .unwrap()
            .publish_with(
                &FileUploaded::new(format!("{name}-later")),
                Meta::default().deliver_after(Duration::from_millis(200)),
            )
            .await
            .unwrap();
    }
    let seen = rec.wait_for("tenanted", 5).await;
    assert_eq!(seen.len(), 5, "{seen:?}");
    for s in &seen {
        let tenant = s.file_id.split('-').next().unwrap();
        assert_eq!(s.tenant.as_deref(), Some(tenant), "{s:?}");
    }
    worker.shutdown().await.unwrap();
}

async fn a_hostile_tenant_name_or_a_tenant_bus_is_refused(h: Harness) {
    let rec = Recorder::default();
    for bad in ["acme}:x", "a*", "", "reply", "with space"] {
        let result = h
            .bus
            .consumer()
            .state(rec.clone())
            .handler(tenanted)
            .tenants(Tenants::list(["acme", bad]))
            .start()
            .await;
        match result {
            Err(Error::InvalidName(e)) => assert_eq!(e.what, "tenant", "{bad:?}"),
            other => panic!("tenant {bad:?} should be refused, got {other:?}"),
        }
    }
    let result = h
        .bus
        .tenant("acme")
        .unwrap()
        .consumer()
        .state(rec)
        .handler(tenanted)
        .tenants(Tenants::list(["globex"]))
        .start()
        .await;
    match result {
        Err(e @ Error::TenantsOnTenantBus { .. }) => {
            assert!(e.to_string().contains("`acme`"), "{e}")
        }
        other => panic!("a tenant's bus should be refused, got {other:?}"),
    }
}

tidings_testkit::transport_suite! {
    hold: serial().await,
    transports: {
        memory => Harness::memory(),
        redis => Harness::redis().await,
    },
    tests: [
        three_tenants_on_one_worker_are_each_handled_as_their_own,
        a_one_at_a_time_handler_over_tenants_runs_each_batch_back_to_back,
        keyed_events_of_a_one_at_a_time_handler_over_tenants_run_back_to_back,
        discover_reads_a_tenant_created_after_the_start_within_the_rescan,
        two_hundred_tenants_stop_together_within_two_seconds,
        delayed_events_of_every_tenant_are_moved_by_the_worker,
        a_hostile_tenant_name_or_a_tenant_bus_is_refused,
    ],
}

/// The clients connected to the server, from `CLIENT LIST`.
async fn clients(server: &tidings_testkit::RedisServer) -> usize {
    let mut conn = server.connection().await;
    let list: String = ::redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    list.lines().filter(|l| !l.trim().is_empty()).count()
}

/// Redis only: the in-memory transport has no connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_over_200_tenant_streams_holds_at_most_three_connections() {
    let _serial = serial().await;
    let h = Harness::redis().await;
    let server = h.server.as_ref().unwrap();
    // The bus's own connections (the shared one, and the publishing one,
    // made at the first publish) are open before the worker starts.
    h.bus.health().await;
    h.bus.publish(&FileUploaded::new("before")).await.unwrap();
    let before = clients(server).await;
    let p = Probe::default();
    let names: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
    let worker = counted_worker(&h.bus, &p, &names, opts()).await;
    for name in names.iter().step_by(10) {
        h.bus
            .tenant(name)
            .unwrap()
            .publish(&FileUploaded::new(name.clone()))
            .await
            .unwrap();
    }
    assert!(eventually(Duration::from_secs(5), || p.handled_len() == 20).await);
    // Every loop has waited in a blocking read by now.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = clients(server).await;
    println!("clients before the worker: {before}, with it: {after}");
    // The hub's blocking reader and its two lanes.
    assert!(
        after.saturating_sub(before) <= 3,
        "the worker opened {} connections",
        after - before
    );
    // Acknowledged together for all tenants: nothing stays pending.
    assert_nothing_pending(server, &h.bus, &names).await;
    worker.shutdown().await.unwrap();
}

/// A worker of `counted` over `names`, recording in `p`.
async fn counted_worker(
    bus: &tidings::Bus,
    p: &Probe,
    names: &[String],
    options: ConsumerOptions,
) -> tidings::Worker {
    bus.consumer()
        .state(p.clone())
        .options(options)
        .handler(counted)
        .tenants(Tenants::list(names.to_vec()))
        .start()
        .await
        .unwrap()
}

/// The `contextual` stream of each tenant of `names`.
fn stream_keys(bus: &tidings::Bus, names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|t| bus.tenant(t).unwrap().stream_key("contextual").unwrap())
        .collect()
}

/// Waits (up to 5 s) until no entry of `counted` is pending over the
/// streams of `names`, and fails if one stays.
async fn assert_nothing_pending(
    server: &tidings_testkit::RedisServer,
    bus: &tidings::Bus,
    names: &[String],
) {
    let keys = stream_keys(bus, names);
    assert!(
        eventually(Duration::from_secs(5), || pending(server, &keys, "counted")
            == 0)
        .await
    );
}

/// Entries pending in `group` over every key of `keys`.
fn pending(server: &tidings_testkit::RedisServer, keys: &[String], group: &str) -> i64 {
    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    keys.iter()
        .map(|k| {
            let reply: ::redis::Value = ::redis::cmd("XPENDING")
                .arg(k)
                .arg(group)
                .query(&mut conn)
                .unwrap();
            match reply {
                ::redis::Value::Array(items) => match items.first() {
                    Some(::redis::Value::Int(n)) => *n,
                    _ => 0,
                },
                _ => 0,
            }
        })
        .sum()
}

/// Redis only: one tenant's group removed under the worker fails only
/// that tenant's reads, which make the group again; the other tenants,
/// read and acknowledged in the same commands, go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_group_removed_under_the_worker_is_made_again_and_the_others_go_on() {
    let _serial = serial().await;
    let h = Harness::redis().await;
    let server = h.server.as_ref().unwrap();
    let p = Probe::default();
    let names: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let worker = counted_worker(&h.bus, &p, &names, opts()).await;
    let publish_all = |round: usize| {
        let (bus, names) = (h.bus.clone(), names.clone());
        async move {
            for t in &names {
                let e = FileUploaded::new(format!("{t}-{round}"));
                bus.tenant(t).unwrap().publish(&e).await.unwrap();
            }
        }
    };
    publish_all(0).await;
    assert!(eventually(Duration::from_secs(5), || p.handled_len() >= 20).await);
    let gone = h
        .bus
        .tenant("t3")
        .unwrap()
        .stream_key("contextual")
        .unwrap();
    let mut conn = server.connection().await;
    let removed: i64 = ::redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&gone)
        .arg("counted")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    publish_all(1).await;
    let all = |p: &Probe| {
        let handled: HashSet<String> = p.handled().into_iter().map(|(k, _)| k).collect();
        names
            .iter()
            .all(|t| (0..2).all(|r| handled.contains(&format!("{t}-{r}"))))
    };
    assert!(
        eventually(Duration::from_secs(10), || all(&p)).await,
        "handled: {:?}",
        p.handled()
    );
    assert_nothing_pending(server, &h.bus, &names).await;
    worker.shutdown().await.unwrap();
}

/// Redis only: a durable server restarted under a worker over tenants;
/// every event whose publish was acknowledged is handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_under_a_tenants_worker_loses_nothing_acknowledged() {
    let _serial = serial().await;
    let mut h = Harness::redis_durable(Duration::from_secs(10)).await;
    let server = Arc::new(std::sync::Mutex::new(h.server.take().unwrap()));
    let p = Probe::default();
    let names: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let options = opts()
        .claim_idle(Some(Duration::from_secs(1)))
        .backoff(Duration::from_millis(50), Duration::from_millis(500));
    let worker = counted_worker(&h.bus, &p, &names, options).await;
    let mut published = HashSet::new();
    let mut failed = 0;
    for i in 0..600 {
        if i == 300 {
            let server = server.clone();
            tokio::task::spawn_blocking(move || server.lock().unwrap().restart())
                .await
                .unwrap();
        }
        let tenant = &names[i % names.len()];
        let id = format!("{tenant}-{i}");
        match h
            .bus
            .tenant(tenant)
            .unwrap()
            .publish(&FileUploaded::new(id.clone()))
            .await
        {
            Ok(_) => {
                published.insert(id);
            }
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let missing = |p: &Probe| {
        let handled: HashSet<String> = p.handled().into_iter().map(|(k, _)| k).collect();
        published.iter().filter(|id| !handled.contains(*id)).count()
    };
    eventually(Duration::from_secs(30), || missing(&p) == 0).await;
    worker.shutdown().await.unwrap();
    println!(
        "published {}, failed {failed}, missing {}",
        published.len(),
        missing(&p)
    );
    assert_eq!(missing(&p), 0);
    assert!(published.len() >= 300, "{} published", published.len());
}

/// Over TLS with `?insecure`, where the hand-written connections give way
/// to redis-rs, the batched reads and acknowledgements of a worker over
/// many tenants go through the shared connection: every event is handled
/// and acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_worker_without_the_hand_written_path_reads_and_acknowledges_everything() {
    use tidings_testkit::{RedisOptions, RedisServer, TestCa};
    let _serial = serial().await;
    let ca = TestCa::generate();
    let server = RedisServer::with_options(RedisOptions::default().tls(&ca));
    let url = format!(
        "rediss://127.0.0.1:{}/?tls_cert={}&tls_key={}&insecure",
        server.port(),
        ca.client_cert().display(),
        ca.client_key().display()
    );
    let bus = tidings::Bus::builder().connect(&url).await.unwrap();
    let p = Probe::default();
    let names: Vec<String> = (0..50).map(|i| format!("t{i}")).collect();
    let worker = counted_worker(&bus, &p, &names, opts()).await;
    for round in 0..4 {
        for name in &names {
            bus.tenant(name)
                .unwrap()
                .publish(&FileUploaded::new(format!("{name}-{round}")))
                .await
                .unwrap();
        }
    }
    assert!(eventually(Duration::from_secs(10), || p.handled_len() == 200).await);
    let mut left = u64::MAX;
    let deadline = Instant::now() + Duration::from_secs(5);
    while left > 0 && Instant::now() < deadline {
        left = 0;
        for name in &names {
            let stats = bus
                .tenant(name)
                .unwrap()
                .stream_stats("contextual")
                .await
                .unwrap();
            left += stats.group("counted").map_or(0, |g| g.pending);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0, "entries left pending");
    worker.shutdown().await.unwrap();
}
