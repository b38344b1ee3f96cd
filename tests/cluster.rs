//! Redis Cluster (`redis+cluster://`): three masters and three replicas
//! that the test kit starts. Publishing (one event, a batch, a batch across
//! streams, each going out per slot), consumer groups on several streams,
//! dead letters and their retry, the inbox, stats, the list of streams
//! (scanned on every master) and Pub/Sub, then a master killed under load.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

mod support;

use support::seen::Seen;

use support::events::{FileIndexed, FileUploaded, GateOpened};
use tidings::{
    fatal, handler, streams::Durability, Bus, ConsumerOptions, Context, HandlerResult, RawEvent,
    RetryPolicy, State,
};
use tidings_testkit::{ClusterSet, TestCa};

#[handler(group = "cluster")]
async fn take(e: FileUploaded, _ctx: Context, State(seen): State<Seen>) -> HandlerResult {
    if e.file_id == "bad" && !seen.take_bad.load(Ordering::SeqCst) {
        return Err(fatal("bad is not taken yet"));
    }
    seen.handled.lock().unwrap().push(e.file_id);
    Ok(())
}

#[handler(group = "cluster")]
async fn indexed(e: FileIndexed, _ctx: Context, State(seen): State<Seen>) -> HandlerResult {
    seen.handled
        .lock()
        .unwrap()
        .push(format!("indexed:{}", e.file_id));
    Ok(())
}

fn quick() -> ConsumerOptions {
    ConsumerOptions::default().block(Duration::from_millis(100))
}

const LIMIT: Duration = Duration::from_secs(5);

async fn connect(cluster: &ClusterSet) -> Bus {
    Bus::builder()
        .connect_timeout(LIMIT)
        .connect(&cluster.url())
        .await
        .expect("connects to the cluster")
}

/// The ACL user `orders` (password `s3cret-pw`) with the documented rule
/// and the pattern the workout subscribes to, on every node: ACL users
/// are not shared between the nodes of a cluster.
async fn documented_user(cluster: &ClusterSet) -> String {
    let rule =
        tidings::streams::acl_rule_with_patterns("tidings", &["tidings:notifications:gate.*"])
            .unwrap();
    for node in cluster.nodes() {
        let mut admin = node.connection().await;
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
    cluster
        .url()
        .replacen("redis+cluster://", "redis+cluster://orders:s3cret-pw@", 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_a_service_does_works_on_a_cluster() {
    let cluster = ClusterSet::start();
    // The two streams of this test live on different masters, so that a
    // batch across them and a worker reading both cross slots and nodes.
    let contextual = cluster.master_of("tidings:{contextual}").unwrap();
    let indexing = cluster.master_of("tidings:{indexing}").unwrap();
    assert_ne!(contextual, indexing, "the test's streams share a master");
    workout(&connect(&cluster).await).await;
}

/// The documented ACL rule is all a service needs on a cluster, `WAIT`
/// of [`Durability::Replicated`] and the map of slots included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_user_works_on_a_cluster() {
    let cluster = ClusterSet::start();
    let url = documented_user(&cluster).await;
    let bus = Bus::builder()
        .connect_timeout(LIMIT)
        .durability(Durability::Replicated {
            replicas: 1,
            timeout: Duration::from_secs(5),
        })
        .connect(&url)
        .await
        .expect("the user logs in to the cluster");
    workout(&bus).await;
    // Nothing outside the namespace.
    let mut own = redis::cluster::ClusterClient::new(vec![url
        .replacen("redis+cluster://", "redis://", 1)
        .split(',')
        .next()
        .unwrap()
        .to_owned()])
    .unwrap()
    .get_async_connection()
    .await
    .unwrap();
    let denied = redis::cmd("GET")
        .arg("elsewhere")
        .query_async::<redis::Value>(&mut own)
        .await
        .expect_err("the user is limited");
    assert_eq!(denied.code(), Some("NOPERM"), "{denied}");
}

/// `rediss+cluster://`: every connection to every node speaks TLS, the
/// nodes' certificates are checked against the URL's CA, and the nodes ask
/// for the client certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_tls_does_a_services_work() {
    let ca = TestCa::generate();
    let cluster = ClusterSet::start_tls(&ca);
    assert!(cluster.url().starts_with("rediss+cluster://"));
    workout(&connect(&cluster).await).await;

    let port = cluster.nodes()[0].port();
    let other = TestCa::generate();
    let refused = |url: String| async move {
        match Bus::builder().connect_timeout(LIMIT).connect(&url).await {
            Ok(_) => panic!("{url} connected"),
            Err(e) => e.to_string(),
        }
    };
    // Another CA's certificate is not the nodes'.
    let e = refused(format!(
        "rediss+cluster://127.0.0.1:{port}/?tls_ca={}&tls_cert={}&tls_key={}",
        other.ca_cert().display(),
        ca.client_cert().display(),
        ca.client_key().display()
    ))
    .await;
    assert!(e.contains("certificate"), "{e}");
    // Without a client certificate the nodes hang up; over plain TCP they
    // do not answer.
    refused(format!(
        "rediss+cluster://127.0.0.1:{port}/?tls_ca={}",
        ca.ca_cert().display()
    ))
    .await;
    refused(format!("redis+cluster://127.0.0.1:{port}")).await;
}

/// Publishing (one, batches, across slots), a worker over two streams,
/// a dead letter and its retry, stats, the list of streams and Pub/Sub.
async fn workout(bus: &Bus) {
    let seen = Seen::default();
    let worker = bus
        .consumer()
        .state(seen.clone())
        .options(quick())
        .retry(RetryPolicy::default().attempts(1))
        .handler(take)
        .handler(indexed)
        .start()
        .await
        .expect("a worker starts");
    let mut gates = bus.subscribe::<GateOpened>().await.expect("subscribe");
    let mut pattern = bus
        .subscribe_pattern("notifications", "gate.*")
        .await
        .expect("subscribe to a pattern");

    bus.publish(&FileUploaded::new("one"))
        .await
        .expect("publish");
    bus.publish_batch(&[FileUploaded::new("two"), FileUploaded::new("bad")])
        .await
        .expect("publish_batch");
    // One call, two streams in two slots on two masters.
    let across = bus
        .publish_raw(&[
            RawEvent::new(
                "indexing",
                "file.indexed",
                1,
                br#"{"file_id":"x"}"#.to_vec(),
            ),
            RawEvent::new(
                "contextual",
                "file.uploaded",
                2,
                br#"{"file_id":"three","filename":"t.pdf"}"#.to_vec(),
            ),
            RawEvent::new(
                "indexing",
                "file.indexed",
                1,
                br#"{"file_id":"y"}"#.to_vec(),
            ),
        ])
        .await
        .expect("a batch across slots");
    assert_eq!(across.len(), 3);

    let dlq = bus.dead_letters("contextual").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while dlq.len().await.expect("dead letters are counted") < 1 {
        assert!(Instant::now() < deadline, "`bad` was never dead-lettered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = seen.until(Duration::from_secs(10), |h| h.len() >= 5).await;
    let got: HashSet<String> = got.into_iter().collect();
    let want: HashSet<String> = ["one", "two", "three", "indexed:x", "indexed:y"]
        .map(String::from)
        .into();
    assert_eq!(got, want);

    seen.take_bad.store(true, Ordering::SeqCst);
    assert_eq!(dlq.retry_all().await.expect("retry_all"), 1);
    seen.until(Duration::from_secs(10), |h| h.len() >= 6).await;
    assert!(seen.handled().contains(&"bad".to_string()));
    assert!(dlq.is_empty().await.unwrap());

    let stats = bus.stream_stats("contextual").await.expect("stream_stats");
    // The retried dead letter is appended again, as a new entry.
    assert_eq!(stats.length, 5, "{stats:?}");
    let streams = bus.streams().await.expect("the streams of every master");
    assert_eq!(streams, ["contextual", "indexing"]);

    bus.publish(&GateOpened { gate: "g".into() })
        .await
        .expect("publish to a channel");
    let gate = tokio::time::timeout(Duration::from_secs(5), gates.next())
        .await
        .expect("a Pub/Sub message in time")
        .expect("a message")
        .expect("a decoded message");
    assert_eq!(gate.gate, "g");
    let any = tokio::time::timeout(Duration::from_secs(5), pattern.next())
        .await
        .expect("a pattern message in time")
        .expect("a message")
        .expect("an envelope");
    assert_eq!(any.type_name(), "gate.opened");
    worker.shutdown().await.unwrap();
}

#[handler(group = "failover")]
async fn follow(e: FileUploaded, _ctx: Context, State(seen): State<Seen>) -> HandlerResult {
    seen.handled.lock().unwrap().push(e.file_id);
    Ok(())
}

/// What one publisher had acknowledged: (file id, entry id).
type Acked = Arc<Mutex<Vec<(String, String)>>>;

fn publisher(
    bus: Bus,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
    acked: Acked,
    failed: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut i = 0u32;
        while !stop.load(Ordering::SeqCst) {
            let file = format!("{prefix}{i}");
            i += 1;
            match bus.publish(&FileUploaded::new(&file)).await {
                Ok(p) => acked
                    .lock()
                    .unwrap()
                    .push((file, p.entry_id.unwrap_or_default())),
                Err(_) => {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
            tokio::task::yield_now().await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_load_loses_nothing_replicated() {
    let mut cluster = ClusterSet::start();
    let plain = Bus::builder()
        .connect_timeout(LIMIT)
        .publish_timeout(Duration::from_secs(20))
        .connect(&cluster.url())
        .await
        .unwrap();
    let replicated = Bus::builder()
        .connect_timeout(LIMIT)
        .publish_timeout(Duration::from_secs(20))
        .durability(Durability::Replicated {
            replicas: 1,
            timeout: Duration::from_millis(500),
        })
        .connect(&cluster.url())
        .await
        .unwrap();
    let seen = Seen::default();
    let worker = plain
        .consumer()
        .state(seen.clone())
        .options(quick())
        .handler(follow)
        .start()
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (fast, safe): (Acked, Acked) = Default::default();
    let (fast_failed, safe_failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let publishing = Instant::now();
    let publishers = [
        publisher(
            plain.clone(),
            "p",
            stop.clone(),
            fast.clone(),
            fast_failed.clone(),
        ),
        publisher(
            replicated.clone(),
            "r",
            stop.clone(),
            safe.clone(),
            safe_failed.clone(),
        ),
    ];
    seen.until(Duration::from_secs(20), |h| h.len() >= 2_000)
        .await;
    assert!(
        seen.handled().len() >= 2_000,
        "nothing flows before the kill"
    );

    let master = cluster.master_of("tidings:{contextual}").unwrap();
    cluster.kill(master);
    let killed = Instant::now();
    tokio::task::block_in_place(|| cluster.wait_ok(Duration::from_secs(30)))
        .expect("a replica takes the killed master's slots");
    let promoted = killed.elapsed();
    let new_master = cluster.master_of("tidings:{contextual}").unwrap();
    assert_ne!(new_master, master);

    // The new master has no replica until the old one comes back as its
    // replica: until then a publish that waits for one fails.
    let restarted = Instant::now();
    tokio::task::block_in_place(|| cluster.restart(master));

    // Both publishers go on after the failover.
    let after = |acked: &Acked| acked.lock().unwrap().len();
    let (fast_at_kill, safe_at_kill) = (after(&fast), after(&safe));
    let deadline = Instant::now() + Duration::from_secs(20);
    while (after(&fast) < fast_at_kill + 500 || after(&safe) < safe_at_kill + 500)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for p in publishers {
        p.await.unwrap();
    }
    let published_for = publishing.elapsed();
    assert!(
        after(&fast) >= fast_at_kill + 500 && after(&safe) >= safe_at_kill + 500,
        "publishing did not resume after the failover: {} plain, {} replicated acknowledged \
         after the kill; {} and {} failed",
        after(&fast) - fast_at_kill,
        after(&safe) - safe_at_kill,
        fast_failed.load(Ordering::SeqCst),
        safe_failed.load(Ordering::SeqCst),
    );
    let restarted = restarted.elapsed();

    let in_stream: HashSet<String> = plain
        .last_entries("contextual", 10_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let lost = |acked: &Acked| -> Vec<String> {
        acked
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, id)| !in_stream.contains(id))
            .map(|(file, _)| file.clone())
            .collect()
    };
    let (fast_lost, safe_lost) = (lost(&fast), lost(&safe));
    let surviving: Vec<String> = fast
        .lock()
        .unwrap()
        .iter()
        .chain(safe.lock().unwrap().iter())
        .filter(|(_, id)| in_stream.contains(id))
        .map(|(file, _)| file.clone())
        .collect();
    let handled = seen
        .until(Duration::from_secs(30), |h| {
            let h: HashSet<&String> = h.iter().collect();
            surviving.iter().all(|f| h.contains(f))
        })
        .await;
    let caught_up = killed.elapsed();
    worker.shutdown().await.unwrap();
    let handled: HashSet<String> = handled.into_iter().collect();
    let missing = surviving.iter().filter(|f| !handled.contains(*f)).count();
    eprintln!(
        "cluster failover: in {published_for:?}, acknowledged {} (plain) and {} (WAIT 1 replica, \
         500 ms); lost after the kill: {} plain {:?}, {} replicated; failed publishes: {} plain, \
         {} replicated; slots taken over {promoted:?} after the kill; old master back as a \
         replica and publishing resumed {restarted:?} after that; worker caught up \
         {caught_up:?} after the kill",
        after(&fast),
        after(&safe),
        fast_lost.len(),
        fast_lost.iter().take(5).collect::<Vec<_>>(),
        safe_lost.len(),
        fast_failed.load(Ordering::SeqCst),
        safe_failed.load(Ordering::SeqCst),
    );
    assert!(
        safe_lost.is_empty(),
        "events acknowledged with WAIT were lost: {safe_lost:?}"
    );
    assert_eq!(
        missing, 0,
        "surviving events never handled after the failover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_streams_slot_under_load_loses_and_fails_nothing() {
    let cluster = ClusterSet::start();
    // As the documented ACL user: following `ASK` needs `ASKING`.
    let bus = Bus::builder()
        .connect_timeout(LIMIT)
        .connect(&documented_user(&cluster).await)
        .await
        .expect("the user logs in to the cluster");
    let seen = Seen::default();
    let worker = bus
        .consumer()
        .state(seen.clone())
        .options(quick())
        .handler(follow)
        .start()
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acked = Default::default();
    let failed = Arc::new(AtomicUsize::new(0));
    let publishing = publisher(
        bus.clone(),
        "m",
        stop.clone(),
        acked.clone(),
        failed.clone(),
    );
    seen.until(Duration::from_secs(20), |h| h.len() >= 1_000)
        .await;
    assert!(
        seen.handled().len() >= 1_000,
        "nothing flows before the move"
    );

    let key = "tidings:{contextual}";
    let from = cluster.master_of(key).unwrap();
    let to = cluster
        .masters()
        .unwrap()
        .into_iter()
        .find(|m| *m != from)
        .unwrap();
    let moving = Instant::now();
    let moved_from =
        tokio::task::block_in_place(|| cluster.move_slot_of(key, to)).expect("the slot moves");
    let moved_in = moving.elapsed();
    assert_eq!(moved_from, from);
    assert_eq!(cluster.master_of(key).unwrap(), to);

    let at_move = acked.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < at_move + 1_000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    publishing.await.unwrap();
    let acked: Vec<(String, String)> = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= at_move + 1_000,
        "publishing did not go on after the move"
    );

    let in_stream: HashSet<String> = bus
        .last_entries("contextual", 10_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let lost = acked
        .iter()
        .filter(|(_, id)| !in_stream.contains(id))
        .count();
    let handled = seen
        .until(Duration::from_secs(20), |h| {
            let h: HashSet<&String> = h.iter().collect();
            acked.iter().all(|(f, _)| h.contains(f))
        })
        .await;
    worker.shutdown().await.unwrap();
    let handled: HashSet<String> = handled.into_iter().collect();
    let missing = acked.iter().filter(|(f, _)| !handled.contains(f)).count();
    eprintln!(
        "slot moved from {from} to {to} in {moved_in:?} under load: {} acknowledged, {lost} lost, \
         {} failed publishes, {missing} never handled",
        acked.len(),
        failed.load(Ordering::SeqCst)
    );
    assert_eq!(lost, 0);
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert_eq!(missing, 0);
}
