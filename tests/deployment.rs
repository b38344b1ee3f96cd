//! Redis as production runs it: over TLS (`rediss://`, with a CA the test
//! makes, a client certificate, and a wrong CA refused), as an ACL user
//! limited to the namespace by the very rule `docs/deployment.md` lists,
//! and behind Sentinel (over TLS with a Sentinel password too), with the
//! master killed under load.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

mod support;

use support::seen::Seen;

use support::events::{FileUploaded, GateOpened};
use tidings::{
    fatal, handler, Bus, ConsumerOptions, Context, Error, HandlerResult, RetryPolicy, State,
    TransportError,
};
use tidings_testkit::{RedisOptions, RedisServer, SentinelSet, TestCa};

#[handler(group = "deployment")]
async fn take(e: FileUploaded, _ctx: Context, State(seen): State<Seen>) -> HandlerResult {
    if e.file_id == "bad" && !seen.take_bad.load(Ordering::SeqCst) {
        return Err(fatal("bad is not taken yet"));
    }
    seen.handled.lock().unwrap().push(e.file_id);
    Ok(())
}

/// Fails the first attempt at each file, which the test parks in Redis.
#[handler(group = "deployment-parked")]
async fn fails_first(e: FileUploaded, _ctx: Context, State(seen): State<Seen>) -> HandlerResult {
    let mut handled = seen.handled.lock().unwrap();
    handled.push(e.file_id.clone());
    if handled.iter().filter(|f| **f == e.file_id).count() == 1 {
        return Err("the first attempt fails".into());
    }
    Ok(())
}

fn quick() -> ConsumerOptions {
    ConsumerOptions::default().block(Duration::from_millis(100))
}

/// Everything a service does, on `bus`: publish one and a batch, consume,
/// dead letter, retry the dead letter, a delayed event, read stats, and
/// Pub/Sub.
async fn workout(bus: &Bus) {
    let seen = Seen::default();
    let worker = bus
        .consumer()
        .state(seen.clone())
        .options(quick())
        .retry(RetryPolicy::default().attempts(1))
        .handler(take)
        .start()
        .await
        .expect("a worker starts");
    let mut gates = bus.subscribe::<GateOpened>().await.expect("subscribe");

    bus.publish(&FileUploaded::new("one"))
        .await
        .expect("publish");
    bus.publish_batch(&[FileUploaded::new("two"), FileUploaded::new("bad")])
        .await
        .expect("publish_batch");
    let dlq = bus.dead_letters("contextual").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while dlq.len().await.expect("dead letters are counted") < 1 {
        assert!(Instant::now() < deadline, "`bad` was never dead-lettered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = seen.until(Duration::from_secs(10), |h| h.len() >= 2).await;
    assert_eq!(got, ["one", "two"]);

    seen.take_bad.store(true, Ordering::SeqCst);
    assert_eq!(dlq.retry_all().await.expect("retry_all"), 1);
    let got = seen.until(Duration::from_secs(10), |h| h.len() >= 3).await;
    assert_eq!(got, ["one", "two", "bad"]);
    assert!(dlq.is_empty().await.unwrap());

    // A delayed event: kept in the delayed set, moved in by the worker.
    bus.publish_with(
        &FileUploaded::new("later"),
        tidings::Meta::default().deliver_after(Duration::from_millis(50)),
    )
    .await
    .expect("publish a delayed event");
    let got = seen.until(Duration::from_secs(10), |h| h.len() >= 4).await;
    assert_eq!(got, ["one", "two", "bad", "later"]);

    let stats = bus.stream_stats("contextual").await.expect("stream_stats");
    // The retried dead letter is appended again, as a new entry.
    assert_eq!(stats.length, 5, "{stats:?}");

    bus.publish(&GateOpened { gate: "g".into() })
        .await
        .expect("publish to a channel");
    let gate = tokio::time::timeout(Duration::from_secs(5), gates.next())
        .await
        .expect("a Pub/Sub message in time")
        .expect("a message")
        .expect("a decoded message");
    assert_eq!(gate.gate, "g");
    worker.shutdown().await.unwrap();
}

fn connect_error(bus: Result<Bus, Error>) -> (String, Option<String>, String) {
    match bus {
        Err(Error::Transport(TransportError::Connect {
            address,
            user,
            source,
        })) => (address, user, source.to_string()),
        other => panic!("expected a connect error, got {other:?}"),
    }
}

const LIMIT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn every_connection_goes_over_tls_with_the_files_of_the_url() {
    let ca = TestCa::generate();
    // `--port 0`: the server speaks TLS only, so a connection of the bus
    // that did not would fail the workout.
    let server = RedisServer::with_options(RedisOptions::default().tls(&ca));
    let bus = Bus::builder()
        .connect_timeout(LIMIT)
        .connect(&server.url())
        .await
        .expect("connects over TLS");
    workout(&bus).await;
}

#[tokio::test]
async fn the_builder_gives_the_ca_and_the_client_certificate() {
    let ca = TestCa::generate();
    let server = RedisServer::with_options(RedisOptions::default().tls(&ca));
    let bus = Bus::builder()
        .connect_timeout(LIMIT)
        .tls_ca_file(ca.ca_cert())
        .tls_client_cert(ca.client_cert(), ca.client_key())
        .connect(&server.bare_url())
        .await
        .expect("connects over TLS");
    bus.publish(&FileUploaded::new("f")).await.unwrap();
    assert_eq!(bus.stream_stats("contextual").await.unwrap().length, 1);
}

#[tokio::test]
async fn a_server_signed_by_another_ca_is_refused_unless_insecure_is_asked() {
    let ca = TestCa::generate();
    let other = TestCa::generate();
    let server = RedisServer::with_options(RedisOptions::default().tls(&ca));
    let port = server.port();
    let client = format!(
        "tls_cert={}&tls_key={}",
        ca.client_cert().display(),
        ca.client_key().display()
    );

    let wrong = format!(
        "rediss://127.0.0.1:{port}/?tls_ca={}&{client}",
        other.ca_cert().display()
    );
    let started = Instant::now();
    let refused = Bus::builder().connect_timeout(LIMIT).connect(&wrong).await;
    let (address, _, reason) = connect_error(refused);
    assert!(
        started.elapsed() < LIMIT * 2,
        "took {:?}",
        started.elapsed()
    );
    assert!(address.contains(&port.to_string()), "{address}");
    assert!(
        reason.contains("invalid peer certificate: UnknownIssuer"),
        "the reason does not say the certificate is untrusted: {reason}"
    );

    // The system's roots do not know the test CA either.
    let system = format!("rediss://127.0.0.1:{port}/?{client}");
    let refused = Bus::builder().connect_timeout(LIMIT).connect(&system).await;
    let (_, _, reason) = connect_error(refused);
    assert!(reason.contains("certificate"), "{reason}");

    let insecure = format!("rediss://127.0.0.1:{port}/?{client}&insecure");
    let bus = Bus::builder()
        .connect_timeout(LIMIT)
        .connect(&insecure)
        .await
        .expect("?insecure accepts any certificate");
    bus.publish(&FileUploaded::new("f")).await.unwrap();
}

/// The rule `docs/deployment.md` shows, in the ACL file form.
fn documented_rule() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/deployment.md"))
        .expect("docs/deployment.md");
    let rule = tidings::streams::acl_rule("tidings");
    let line = format!("user orders on >change-me {rule}");
    assert!(
        doc.contains(&line),
        "docs/deployment.md does not show the rule tidings::streams::acl_rule gives:\n{line}"
    );
    rule
}

/// Makes (or remakes) the user `orders`, password `s3cret-pw`, with `rule`.
async fn set_user(server: &RedisServer, rule: &str) {
    let mut admin = server.connection().await;
    let mut setuser = redis::cmd("ACL");
    setuser
        .arg("SETUSER")
        .arg("orders")
        .arg("on")
        .arg(">s3cret-pw");
    for word in rule.split_whitespace() {
        setuser.arg(word);
    }
    let _: () = setuser.query_async(&mut admin).await.unwrap();
}

#[tokio::test]
async fn a_user_limited_to_the_namespace_does_all_tidings_does() {
    let rule = documented_rule();
    let server = RedisServer::start();
    set_user(&server, &rule).await;
    let url = format!("redis://orders:s3cret-pw@127.0.0.1:{}", server.port());
    let bus = Bus::builder()
        .connect_timeout(LIMIT)
        .connect(&url)
        .await
        .expect("the user logs in");
    workout(&bus).await;

    // A retry parked in Redis and run from the group's retry stream: its
    // script and keys are within the rule too.
    let seen = Seen::default();
    let worker = bus
        .consumer()
        .state(seen.clone())
        .options(
            quick()
                .delayed_poll(Some(Duration::from_millis(20)))
                .park_retries_after(Some(Duration::from_millis(10))),
        )
        .retry(
            RetryPolicy::default()
                .attempts(2)
                .backoff(Duration::from_millis(50))
                .jitter(false),
        )
        .handler(fails_first)
        .start()
        .await
        .expect("a worker that parks retries starts");
    bus.publish(&FileUploaded::new("parked")).await.unwrap();
    let got = seen.until(Duration::from_secs(10), |h| h.len() >= 2).await;
    worker.shutdown().await.unwrap();
    assert_eq!(got, ["parked", "parked"]);
    let mut admin = server.connection().await;
    let retried: usize = redis::cmd("XLEN")
        .arg("tidings:{contextual}:retry:deployment-parked")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(retried, 1, "the retry was not parked");

    // Redis compares a PSUBSCRIBE pattern with the `&` rules as strings:
    // `&tidings:*` does not allow `tidings:notifications:gate.*` ...
    match bus.subscribe_pattern("notifications", "gate.*").await {
        Err(Error::Transport(TransportError::Redis(e))) => {
            assert_eq!(e.code(), Some("NOPERM"), "{e}")
        }
        Err(e) => panic!("expected NOPERM, got {e}"),
        Ok(_) => panic!("the pattern is not in the rule, yet PSUBSCRIBE was allowed"),
    }
    // ... which the rule names with acl_rule_with_patterns.
    let pattern = bus.channel_pattern("notifications", "gate.*").unwrap();
    let with_pattern =
        tidings::streams::acl_rule_with_patterns("tidings", &[pattern.as_str()]).unwrap();
    set_user(&server, &with_pattern).await;
    let mut gates = bus
        .subscribe_pattern("notifications", "gate.*")
        .await
        .expect("the pattern of the rule is allowed");
    bus.publish(&GateOpened { gate: "p".into() }).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), gates.next())
        .await
        .expect("a message through the pattern in time")
        .expect("a message")
        .expect("a decoded message");
    assert_eq!(got.type_name(), "gate.opened");

    // Nothing outside the namespace, nothing dangerous.
    let mut own = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for cmd in [
        redis::cmd("GET").arg("elsewhere").clone(),
        redis::cmd("XLEN").arg("other:{contextual}").clone(),
        redis::cmd("PUBLISH").arg("other:channel").arg("x").clone(),
        redis::cmd("FLUSHALL").clone(),
        redis::cmd("KEYS").arg("*").clone(),
        redis::cmd("CONFIG").arg("GET").arg("*").clone(),
    ] {
        let denied = cmd.query_async::<redis::Value>(&mut own).await;
        let e = denied.expect_err("the user is limited");
        assert_eq!(e.code(), Some("NOPERM"), "{e}");
    }
}

#[tokio::test]
async fn a_wrong_password_fails_fast_naming_the_user_never_the_password() {
    let server = RedisServer::start();
    let mut admin = server.connection().await;
    let mut setuser = redis::cmd("ACL");
    setuser.arg("SETUSER").arg("orders").arg("on").arg(">right");
    for word in tidings::streams::acl_rule("tidings").split_whitespace() {
        setuser.arg(word);
    }
    let _: () = setuser.query_async(&mut admin).await.unwrap();
    let url = format!("redis://orders:wr0ng-pw@127.0.0.1:{}", server.port());
    let started = Instant::now();
    let bus = Bus::builder().connect_timeout(LIMIT).connect(&url).await;
    let took = started.elapsed();
    let shown = format!("{}", bus.as_ref().map(|_| ()).unwrap_err());
    let (_, user, _) = connect_error(bus);
    assert_eq!(user.as_deref(), Some("orders"));
    assert!(shown.contains("as user `orders`"), "{shown}");
    assert!(
        !shown.contains("wr0ng-pw"),
        "the password is shown: {shown}"
    );
    assert!(took < LIMIT, "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_user_works_through_sentinel() {
    let rule = documented_rule();
    let set = SentinelSet::start();
    // ACL users are not replicated: the master and its replica both get it.
    set_user(set.first_master(), &rule).await;
    set_user(set.first_replica(), &rule).await;
    let url = set
        .url()
        .replacen("redis+sentinel://", "redis+sentinel://orders:s3cret-pw@", 1);
    let bus = Bus::builder()
        .connect_timeout(LIMIT)
        .connect(&url)
        .await
        .expect("the user logs in to the master the Sentinels name");
    workout(&bus).await;
}

/// `rediss+sentinel://` with a Sentinel password: the Sentinels, the
/// master and the replica speak TLS only (so every connection of the bus,
/// the hand-written ones included, must), the Sentinels ask for a
/// password, and the bus follows a failover over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_over_tls_with_a_password_are_followed_through_a_failover() {
    let ca = TestCa::generate();
    let mut set = SentinelSet::start_secured(&ca, "watch-pw");
    let url = set.url();
    assert!(url.starts_with("rediss+sentinel://"), "{url}");
    let bus = Bus::builder()
        .connect_timeout(LIMIT)
        .publish_timeout(Duration::from_secs(20))
        .connect(&url)
        .await
        .expect("connects through the Sentinels over TLS");
    workout(&bus).await;

    set.kill_master();
    let port = tokio::task::block_in_place(|| set.wait_failover(Duration::from_secs(20)))
        .expect("the Sentinels promote the replica");
    assert_eq!(port, set.first_replica().port());
    let published = bus
        .publish(&FileUploaded::new("after"))
        .await
        .expect("a publish after the failover reaches the new master");
    assert!(published.entry_id.is_some());
    let mut check = set.first_replica().connection().await;
    let length: usize = redis::cmd("XLEN")
        .arg("tidings:{contextual}")
        .query_async(&mut check)
        .await
        .unwrap();
    assert!(length >= 6, "{length} entries on the new master");

    // A wrong Sentinel password, none, and plain TCP are refused in time.
    for bad in [
        url.replace("sentinel_password=watch-pw", "sentinel_password=wrong-pw"),
        url.replace("&sentinel_password=watch-pw", ""),
        url.replacen("rediss+sentinel://", "redis+sentinel://", 1)
            .split('?')
            .next()
            .unwrap()
            .to_owned(),
    ] {
        let started = Instant::now();
        let refused = Bus::builder().connect_timeout(LIMIT).connect(&bad).await;
        let shown = format!("{}", refused.as_ref().map(|_| ()).unwrap_err());
        assert!(
            !shown.contains("wrong-pw"),
            "the password is shown: {shown}"
        );
        assert!(
            started.elapsed() < LIMIT * 3,
            "{bad}: {:?}",
            started.elapsed()
        );
    }
}

/// Behind Sentinel, a master turned replica while it stays up answers
/// writes with `READONLY` over connections that are still open: the shared
/// and the hand-written connections are made again to the new master, and
/// publishes retried meanwhile go there, well within the publish timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_turned_replica_sends_publishes_to_the_new_master() {
    let set = SentinelSet::start();
    let publish_timeout = Duration::from_secs(15);
    let bus = Bus::builder()
        .connect_timeout(LIMIT)
        .publish_timeout(publish_timeout)
        .connect(&set.url())
        .await
        .expect("connects through the Sentinels");
    // Both the hand-written connection (publish) and the shared one
    // (XGROUP CREATE) are open on the first master.
    bus.publish(&FileUploaded::new("before")).await.unwrap();
    bus.group("contextual", "before")
        .unwrap()
        .create(tidings::StartFrom::New)
        .await
        .unwrap();

    let new =
        tokio::task::block_in_place(|| set.failover_keeping_the_master(Duration::from_secs(20)))
            .expect("the replica is promoted and the old master follows it");
    assert_eq!(new, set.first_replica().port());
    let demoted = Instant::now();

    // Within a bound far below the publish timeout: one publish, one
    // batch, and a command of the shared connection.
    let bound = Duration::from_secs(5);
    let published = tokio::time::timeout(bound, bus.publish(&FileUploaded::new("after")))
        .await
        .expect("the publish did not move to the new master in time")
        .expect("the publish went to the new master");
    let batch = [FileUploaded::new("a1"), FileUploaded::new("a2")];
    tokio::time::timeout(bound, bus.publish_batch(&batch))
        .await
        .expect("the batch did not move to the new master in time")
        .expect("the batch went to the new master");
    tokio::time::timeout(
        bound,
        bus.group("contextual", "after")
            .unwrap()
            .create(tidings::StartFrom::New),
    )
    .await
    .expect("XGROUP CREATE did not move to the new master in time")
    .expect("XGROUP CREATE went to the new master");
    let moved = demoted.elapsed();

    // On the new master: the entries and both groups.
    let mut conn = set.first_replica().connection().await;
    let key = bus.stream_key("contextual").unwrap();
    let ids: Vec<String> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async::<Vec<(String, redis::Value)>>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(ids.contains(&published.entry_id.unwrap()), "{ids:?}");
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(groups.len(), 2);
    eprintln!("a master turned replica: writes moved to the new master in {moved:?}");
}

/// On a fixed address, `READONLY` is no failover: a publish to a replica
/// fails at once, not after the publish timeout.
#[tokio::test]
async fn a_replica_named_by_a_plain_url_refuses_publishes_at_once() {
    let master = RedisServer::start();
    let replica = RedisServer::with_options(RedisOptions::default().replica_of(master.port()));
    let bus = Bus::builder()
        .connect_timeout(LIMIT)
        .publish_timeout(Duration::from_secs(10))
        .connect(&replica.url())
        .await
        .expect("connects to the replica");
    let started = Instant::now();
    match bus.publish(&FileUploaded::new("f")).await {
        Err(Error::Transport(e)) => assert!(e.is_read_only(), "{e}"),
        Err(e) => panic!("expected READONLY, got {e}"),
        Ok(_) => panic!("a replica took a write"),
    }
    assert!(started.elapsed() < LIMIT, "took {:?}", started.elapsed());
}

#[handler(group = "failover")]
async fn follow(e: FileUploaded, _ctx: Context, State(seen): State<Seen>) -> HandlerResult {
    seen.handled.lock().unwrap().push(e.file_id);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_and_workers_follow_a_sentinel_failover() {
    let mut set = SentinelSet::start();
    let bus = Bus::builder()
        .connect_timeout(LIMIT)
        .publish_timeout(Duration::from_secs(20))
        .connect(&set.url())
        .await
        .expect("connects through the Sentinels");
    let seen = Seen::default();
    let worker = bus
        .consumer()
        .state(seen.clone())
        .options(quick())
        .handler(follow)
        .start()
        .await
        .unwrap();
    let mut gates = bus.subscribe::<GateOpened>().await.unwrap();

    // One publisher as fast as it goes, recording what was acknowledged.
    let acked: Arc<Mutex<Vec<(String, String, Instant)>>> = Arc::default();
    let failed = Arc::new(AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let publishing = Instant::now();
    let publisher = tokio::spawn({
        let (bus, acked, failed, stop) = (bus.clone(), acked.clone(), failed.clone(), stop.clone());
        let first_error = first_error.clone();
        async move {
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let file = format!("e{i}");
                i += 1;
                match bus.publish(&FileUploaded::new(&file)).await {
                    Ok(p) => acked.lock().unwrap().push((
                        file,
                        p.entry_id.unwrap_or_default(),
                        Instant::now(),
                    )),
                    Err(e) => {
                        failed.fetch_add(1, Ordering::SeqCst);
                        first_error.lock().unwrap().get_or_insert(e.to_string());
                    }
                }
                tokio::task::yield_now().await;
            }
        }
    });
    seen.until(Duration::from_secs(10), |h| h.len() >= 2_000)
        .await;
    assert!(
        seen.handled().len() >= 2_000,
        "nothing flows before the failover"
    );

    let before = acked.lock().unwrap().len();
    set.kill_master();
    let killed = Instant::now();
    let port = tokio::task::block_in_place(|| set.wait_failover(Duration::from_secs(20)))
        .expect("the Sentinels promote the replica");
    let promoted = killed.elapsed();
    assert_eq!(port, set.first_replica().port());

    // Publishing resumes: 2,000 more events acknowledged after the kill.
    let deadline = Instant::now() + Duration::from_secs(20);
    let resumed = loop {
        let after: Vec<Instant> = acked
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, at)| *at)
            .filter(|at| *at > killed)
            .collect();
        if after.len() >= 2_000 || Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.store(true, Ordering::SeqCst);
    publisher.await.unwrap();
    let published_for = publishing.elapsed();
    assert!(
        resumed.len() >= 2_000,
        "publishing did not resume: {} acknowledged after the kill",
        resumed.len()
    );
    let first_after = resumed.iter().min().map(|at| at.duration_since(killed));

    // The subscription subscribes again on the new master, saying that it
    // has a gap; a message published there then arrives. Until it is
    // subscribed again, a message published reaches nobody: each try is
    // published anew.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut gap = false;
    let mut tries = 0;
    let got = loop {
        assert!(
            Instant::now() < deadline,
            "no Pub/Sub message after the failover"
        );
        tries += 1;
        bus.publish(&GateOpened {
            gate: format!("after-{tries}"),
        })
        .await
        .unwrap();
        match tokio::time::timeout(Duration::from_millis(200), gates.next()).await {
            Ok(Some(Ok(g))) if g.gate.starts_with("after-") => break g,
            Ok(Some(Err(tidings::ReceiveError::Gap { .. }))) => gap = true,
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => panic!("the subscription ended"),
        }
    };
    assert!(gap, "the subscription did not say it had a gap");
    eprintln!(
        "Pub/Sub after the failover: {} on try {tries}, {:?} after the kill",
        got.gate,
        killed.elapsed()
    );

    // What survived is what the new master has; the worker handles all of it.
    let acked = acked.lock().unwrap().clone();
    let in_stream: HashSet<String> = bus
        .last_entries("contextual", 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let surviving: Vec<&String> = acked
        .iter()
        .filter(|(_, id, _)| in_stream.contains(id))
        .map(|(file, _, _)| file)
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|(_, id, _)| !in_stream.contains(id))
        .map(|(file, _, _)| file)
        .collect();
    let waited = Instant::now();
    let handled = seen
        .until(Duration::from_secs(20), |h| {
            let h: HashSet<&String> = h.iter().collect();
            surviving.iter().all(|f| h.contains(f))
        })
        .await;
    let caught_up = killed.elapsed();
    let waited = waited.elapsed();
    worker.shutdown().await.unwrap();
    let mut times: HashMap<&String, usize> = HashMap::new();
    for f in &handled {
        *times.entry(f).or_default() += 1;
    }
    let missing: Vec<&&String> = surviving
        .iter()
        .filter(|f| !times.contains_key(**f))
        .collect();
    let twice = times.values().filter(|n| **n > 1).count();
    eprintln!(
        "sentinel failover: {} acknowledged in {:?} ({} before the kill), {} lost (acknowledged by the \
         old master, not replicated in time: {:?}), {} failed publishes, promoted {:?} after \
         the kill, first publish acknowledged {:?} after it, worker caught up {:?} after it \
         ({:?} after publishing stopped), {} handled twice",
        acked.len(),
        published_for,
        before,
        lost.len(),
        lost.iter().take(10).collect::<Vec<_>>(),
        failed.load(Ordering::SeqCst),
        promoted,
        first_after,
        caught_up,
        waited,
        twice
    );
    assert!(
        missing.is_empty(),
        "{} surviving events were never handled after the failover, such as {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "a publish failed within its 20 s timeout: {:?}",
        first_error.lock().unwrap()
    );
}
