//! Deadlines, recovery and the worker's life, as a user can count on them:
//! connecting to a server that is not there, refuses the credentials or
//! does not answer fails within the connect timeout, naming the address and
//! the user; after a restart, the first call of every kind finds the
//! connection back, a worker takes back what it was given meanwhile, and a
//! subscription subscribes again; reads have deadlines, shutdown ends them,
//! handlers see it; and a group lists the consumers that are alive.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use support::events::FileUploaded;
use support::Recorder;
use tidings::{
    handler, Bus, ConsumerOptions, Context, Error, HandlerResult, State, TransportError,
};
use tidings_testkit::RedisServer;

const LIMIT: Duration = Duration::from_millis(500);

async fn connect(url: &str) -> (Result<Bus, Error>, Duration) {
    let started = Instant::now();
    let bus = Bus::builder().connect_timeout(LIMIT).connect(url).await;
    (bus, started.elapsed())
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

#[tokio::test]
async fn a_closed_port_fails_at_once_naming_the_address() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (bus, took) = connect(&format!("redis://127.0.0.1:{port}")).await;
    let (address, user, _) = connect_error(bus);
    assert_eq!(address, format!("127.0.0.1:{port}"));
    assert_eq!(user, None);
    assert!(took < LIMIT * 3, "took {took:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_fails_within_the_timeout() {
    // The kernel completes the handshake from the backlog; nothing answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (bus, took) = connect(&format!("redis://127.0.0.1:{port}")).await;
    let (address, _, reason) = connect_error(bus);
    assert_eq!(address, format!("127.0.0.1:{port}"));
    assert!(
        took >= LIMIT / 2 && took < LIMIT * 3,
        "took {took:?}: {reason}"
    );
    drop(listener);
}

#[tokio::test]
async fn a_wrong_password_fails_at_once_naming_the_user() {
    let server = RedisServer::start();
    let mut admin = server.connection().await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "reader", "on", ">right", "~*", "&*", "+@all"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = format!("redis://reader:s3cret-pw@127.0.0.1:{}", server.port());
    let (bus, took) = connect(&url).await;
    let (address, user, reason) = connect_error(bus);
    assert_eq!(address, format!("127.0.0.1:{}", server.port()));
    assert_eq!(user.as_deref(), Some("reader"));
    assert!(
        !reason.contains("s3cret-pw"),
        "the password is shown: {reason}"
    );
    assert!(took < LIMIT * 3, "took {took:?}");
    // The message names both, never the password.
    let shown = Error::from(TransportError::Connect {
        address,
        user,
        source: redis::RedisError::from((redis::ErrorKind::AuthenticationFailed, "WRONGPASS")),
    })
    .to_string();
    assert!(shown.contains("as user `reader`"), "{shown}");
}

#[handler(group = "after-restart")]
async fn record(e: FileUploaded, ctx: Context, State(rec): State<Recorder>) -> HandlerResult {
    rec.record("record", &e.file_id, None, &ctx);
    Ok(())
}

#[tokio::test]
async fn the_first_call_of_every_kind_after_a_restart_succeeds() {
    let mut server = RedisServer::start();
    let bus = Bus::connect(&server.url()).await.unwrap();
    // Every connection the bus keeps is in use before the restart.
    bus.publish(&FileUploaded::new("before")).await.unwrap();
    bus.stream_stats("contextual").await.unwrap();
    bus.dead_letters("contextual").unwrap().len().await.unwrap();
    server.restart();

    bus.stream_stats("contextual")
        .await
        .expect("stream_stats right after the restart");
    bus.dead_letters("contextual")
        .unwrap()
        .len()
        .await
        .expect("dead_letters().len() right after the restart");
    bus.last_entries("contextual", 1)
        .await
        .expect("last_entries right after the restart");
    let rec = Recorder::default();
    let worker = bus
        .consumer()
        .state(rec.clone())
        .options(ConsumerOptions::default().block(Duration::from_millis(100)))
        .handler(record)
        .start()
        .await
        .expect("consumer().start() right after the restart");
    bus.publish(&FileUploaded::new("after")).await.unwrap();
    let seen = rec.wait_for("record", 1).await;
    assert_eq!(seen[0].file_id, "after");
    worker.shutdown().await.unwrap();
}

#[handler(group = "resume")]
async fn resume(e: FileUploaded, ctx: Context, State(rec): State<Recorder>) -> HandlerResult {
    rec.record("resume", &e.file_id, None, &ctx);
    Ok(())
}

/// Delivers the next `n` entries of `key` to `consumer` of `group` and
/// drops the reply, as a read whose reply was lost in a restart does.
async fn lose_a_read(server: &RedisServer, key: &str, group: &str, consumer: &str, n: usize) {
    let mut conn = server.connection().await;
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(n)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_worker_takes_back_its_own_pending_entries_at_start_and_after_a_reconnect() {
    let mut server = RedisServer::durable();
    let bus = Bus::connect(&server.url()).await.unwrap();
    let key = bus.stream_key("contextual").unwrap();
    let options = || {
        // Default claim options (`claim_idle` 60 s): only taking back its
        // own entries at once handles them within the test.
        ConsumerOptions::default()
            .name("resumer")
            .block(Duration::from_millis(100))
            .backoff(Duration::from_secs(1), Duration::from_secs(1))
    };
    let rec = Recorder::default();
    let worker = bus
        .consumer()
        .state(rec.clone())
        .options(options())
        .handler(resume)
        .start()
        .await
        .unwrap();
    worker.shutdown().await.unwrap();

    // Given to this consumer name while no worker ran under it.
    for i in 0..3 {
        bus.publish(&FileUploaded::new(format!("lost-{i}")))
            .await
            .unwrap();
    }
    lose_a_read(&server, &key, "resume", "resumer", 3).await;
    let worker = bus
        .consumer()
        .state(rec.clone())
        .options(options())
        .handler(resume)
        .start()
        .await
        .unwrap();
    let seen = rec.wait_for("resume", 3).await;
    assert_eq!(
        seen.len(),
        3,
        "the entries pending to the consumer are handled at start"
    );
    let mut ids: Vec<_> = seen.iter().map(|s| s.file_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["lost-0", "lost-1", "lost-2"]);

    // Given to it across a restart, as a read whose reply the restart
    // lost: the worker's read fails, and while it waits out its reconnect
    // backoff the entries are delivered to its name.
    server.restart();
    for i in 0..3 {
        bus.publish(&FileUploaded::new(format!("gap-{i}")))
            .await
            .unwrap();
    }
    lose_a_read(&server, &key, "resume", "resumer", 3).await;
    assert_eq!(
        rec.wait_for("resume", 6).await.len(),
        6,
        "the entries delivered across the restart are handled after the reconnect"
    );
    worker.shutdown().await.unwrap();
    let mut names: Vec<_> = rec.seen().iter().map(|s| s.file_id.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        ["gap-0", "gap-1", "gap-2", "lost-0", "lost-1", "lost-2"],
        "each handled once"
    );
}

#[handler(group = "idle")]
async fn idle(_e: FileUploaded, _ctx: Context) -> HandlerResult {
    Ok(())
}

#[tokio::test]
async fn shutdown_does_not_wait_out_the_block_of_a_read() {
    let server = RedisServer::start();
    let bus = Bus::connect(&server.url()).await.unwrap();
    let worker = bus
        .consumer()
        .options(ConsumerOptions::default().block(Duration::from_secs(5)))
        .handler(idle)
        .start()
        .await
        .unwrap();
    // Let the blocking read go out.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    worker.shutdown().await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
}

/// Sends SIGSTOP or SIGCONT to the server.
fn signal(server: &RedisServer, sig: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn shutdown_returns_while_redis_is_frozen() {
    let server = RedisServer::start();
    let bus = Bus::builder()
        .publish_timeout(Duration::from_secs(1))
        .connect(&server.url())
        .await
        .unwrap();
    let rec = Recorder::default();
    let worker = bus
        .consumer()
        .state(rec.clone())
        .options(ConsumerOptions::default().block(Duration::from_millis(300)))
        .handler(record)
        .start()
        .await
        .unwrap();
    bus.publish(&FileUploaded::new("before")).await.unwrap();
    assert_eq!(rec.wait_for("record", 1).await.len(), 1);
    signal(&server, "STOP");
    let started = Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(20), worker.shutdown()).await;
    let took = started.elapsed();
    signal(&server, "CONT");
    assert!(stopped.is_ok(), "shutdown hung while Redis was frozen");
    // block + 2 s per call made while stopping + the publish timeout.
    assert!(took < Duration::from_secs(9), "shutdown took {took:?}");
}

/// A TCP proxy in front of a server whose connections can be cut silently,
/// as a partition that drops packets does: nothing more is forwarded on
/// them, and nothing closes them. Connections made afterwards work.
struct Partition {
    port: u16,
    cut: Arc<std::sync::Mutex<Vec<Arc<std::sync::atomic::AtomicBool>>>>,
}

impl Partition {
    async fn to(target: u16) -> Partition {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut: Arc<std::sync::Mutex<Vec<Arc<std::sync::atomic::AtomicBool>>>> = Arc::default();
        let all = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let dead = Arc::new(std::sync::atomic::AtomicBool::new(false));
                all.lock().unwrap().push(dead.clone());
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(forward(cr, sw, dead.clone()));
                tokio::spawn(forward(sr, cw, dead));
            }
        });
        Partition { port, cut }
    }

    fn cut_every_connection(&self) {
        for dead in self.cut.lock().unwrap().iter() {
            dead.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    dead: Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if dead.load(std::sync::atomic::Ordering::SeqCst) {
            // Silently dropped; the connection stays open, forever quiet.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

#[tokio::test]
async fn the_read_loop_reconnects_after_a_silent_partition() {
    let server = RedisServer::start();
    let partition = Partition::to(server.port()).await;
    let through = Bus::builder()
        .response_timeout(Some(Duration::from_millis(500)))
        .connect(&format!("redis://127.0.0.1:{}", partition.port))
        .await
        .unwrap();
    let direct = Bus::connect(&server.url()).await.unwrap();
    let rec = Recorder::default();
    let worker = through
        .consumer()
        .state(rec.clone())
        .options(ConsumerOptions::default().block(Duration::from_millis(200)))
        .handler(record)
        .start()
        .await
        .unwrap();
    direct.publish(&FileUploaded::new("before")).await.unwrap();
    assert_eq!(rec.wait_for("record", 1).await.len(), 1);

    partition.cut_every_connection();
    direct.publish(&FileUploaded::new("after")).await.unwrap();
    // The read's deadline (block + 2 s) passes, the worker connects again.
    let seen = rec.wait_for("record", 2).await;
    assert_eq!(
        seen.iter().map(|s| s.file_id.as_str()).collect::<Vec<_>>(),
        ["before", "after"],
        "the worker never noticed its connection was gone"
    );
    // Its acknowledgements go through the bus's shared connection, which
    // the cut left silent too: it is made again after the first timeout,
    // and they go through.
    worker
        .shutdown_within(Duration::from_secs(10))
        .await
        .expect("the worker stops, its acknowledgements written");
    let key = direct.stream_key("contextual").unwrap();
    let mut conn = server.connection().await;
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(&key)
        .arg("after-restart")
        .query_async(&mut conn)
        .await
        .unwrap();
    let redis::Value::Array(summary) = pending else {
        panic!("{pending:?}")
    };
    assert_eq!(summary[0], redis::Value::Int(0), "{summary:?}");
    // Publishing through the bus works again too.
    through.publish(&FileUploaded::new("later")).await.unwrap();
}

#[handler(group = "patient")]
async fn patient(_e: FileUploaded, ctx: Context, State(rec): State<Recorder>) -> HandlerResult {
    rec.start();
    ctx.stopping().await;
    Err("the worker is stopping".into())
}

#[handler(group = "stubborn")]
async fn stubborn(_e: FileUploaded, _ctx: Context, State(rec): State<Recorder>) -> HandlerResult {
    rec.start();
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}

#[tokio::test]
async fn handlers_see_the_stop_and_a_shutdown_with_a_limit_returns_by_it() {
    let server = RedisServer::start();
    let bus = Bus::connect(&server.url()).await.unwrap();
    let key = bus.stream_key("contextual").unwrap();
    for (handler, group) in [(0, "patient"), (1, "stubborn")] {
        let rec = Recorder::default();
        let builder = bus
            .consumer()
            .state(rec.clone())
            .options(ConsumerOptions::default().block(Duration::from_millis(100)));
        let worker = match handler {
            0 => builder.handler(patient),
            _ => builder.handler(stubborn),
        }
        .start()
        .await
        .unwrap();
        bus.publish(&FileUploaded::new(group)).await.unwrap();
        assert!(
            support::eventually(Duration::from_secs(5), || rec.started() == 1).await,
            "{group} never started"
        );
        let started = Instant::now();
        let stopped = worker.shutdown_within(Duration::from_millis(500)).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "{group}: shutdown took {took:?}"
        );
        match group {
            // It saw the stop and gave up the entry.
            "patient" => stopped.unwrap(),
            _ => assert!(
                matches!(stopped, Err(Error::ShutdownTimedOut { .. })),
                "{stopped:?}"
            ),
        }
        // Either way the entry is left pending for another worker.
        let mut conn = server.connection().await;
        let pending: redis::Value = redis::cmd("XPENDING")
            .arg(&key)
            .arg(group)
            .query_async(&mut conn)
            .await
            .unwrap();
        let redis::Value::Array(summary) = pending else {
            panic!("{pending:?}")
        };
        assert_eq!(summary[0], redis::Value::Int(1), "{group}: {summary:?}");
    }
}

#[tokio::test]
async fn a_subscription_resubscribes_after_a_restart_and_says_what_it_missed() {
    use futures::StreamExt;
    use support::events::GateOpened;
    use tidings::ReceiveError;

    let mut server = RedisServer::start();
    let bus = Bus::connect(&server.url()).await.unwrap();
    let mut typed = bus.subscribe::<GateOpened>().await.unwrap();
    let mut pattern = bus
        .subscribe_pattern("notifications", "gate.*")
        .await
        .unwrap();
    bus.publish(&GateOpened {
        gate: "before".into(),
    })
    .await
    .unwrap();
    let next = Duration::from_secs(10);
    assert_eq!(
        tokio::time::timeout(next, typed.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .gate,
        "before"
    );
    tokio::time::timeout(next, pattern.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    server.restart();
    // Each stream goes on, and first says that it was cut.
    match tokio::time::timeout(next, typed.next()).await.unwrap() {
        Some(Err(ReceiveError::Gap { target, .. })) => {
            assert_eq!(
                target,
                bus.channel_key("notifications", "gate.opened").unwrap()
            );
        }
        other => panic!("expected a gap, got {other:?}"),
    }
    match tokio::time::timeout(next, pattern.next()).await.unwrap() {
        Some(Err(ReceiveError::Gap { target, .. })) => {
            assert_eq!(
                target,
                bus.channel_pattern("notifications", "gate.*").unwrap()
            );
        }
        other => panic!("expected a gap, got {other:?}"),
    }
    bus.publish(&GateOpened {
        gate: "after".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        tokio::time::timeout(next, typed.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .gate,
        "after"
    );
    let any = tokio::time::timeout(next, pattern.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(any.decode::<GateOpened>().unwrap().gate, "after");
}

async fn consumers_of(bus: &Bus, group: &str) -> Vec<String> {
    let stats = bus.stream_stats("contextual").await.unwrap();
    let mut names: Vec<String> = stats
        .group(group)
        .map(|g| g.consumers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_group_lists_the_consumers_that_are_alive() {
    let server = RedisServer::start();
    let bus = Bus::connect(&server.url()).await.unwrap();
    let key = bus.stream_key("contextual").unwrap();
    let rec = Recorder::default();
    let options = |name: &str| {
        ConsumerOptions::default()
            .name(name)
            .block(Duration::from_millis(100))
            .claim_idle(Some(Duration::from_millis(100)))
            .claim_interval(Duration::from_millis(100))
            .forget_idle_consumers(Some(Duration::from_millis(300)))
    };
    let leaving = bus
        .consumer()
        .state(rec.clone())
        .options(options("leaving"))
        .handler(record)
        .start()
        .await
        .unwrap();
    bus.publish(&FileUploaded::new("one")).await.unwrap();
    assert_eq!(rec.wait_for("record", 1).await.len(), 1);
    assert_eq!(consumers_of(&bus, "after-restart").await, ["leaving"]);
    // Nothing pending: it leaves the group as it stops.
    leaving.shutdown().await.unwrap();
    assert!(consumers_of(&bus, "after-restart").await.is_empty());

    // A consumer that stopped without leaving, with nothing pending.
    let mut conn = server.connection().await;
    let _: i64 = redis::cmd("XGROUP")
        .arg(&["CREATECONSUMER", &key, "after-restart", "ghost"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let live = bus
        .consumer()
        .state(rec.clone())
        .options(options("live"))
        .handler(record)
        .start()
        .await
        .unwrap();
    let mut left = Vec::new();
    for _ in 0..100 {
        left = consumers_of(&bus, "after-restart").await;
        if left == ["live"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        left,
        ["live"],
        "the idle consumer with nothing pending was kept"
    );
    live.shutdown().await.unwrap();
}

#[handler(group = "gated")]
async fn gated(e: FileUploaded, ctx: Context, State(p): State<support::Probe>) -> HandlerResult {
    p.pass_gate().await;
    p.handle(&e.file_id, &ctx);
    Ok(())
}

#[tokio::test]
async fn health_says_whether_redis_answers_workers_read_and_groups_keep_up() {
    use tidings::HealthOptions;
    let server = RedisServer::start();
    let bus = Bus::connect(&server.url()).await.unwrap();
    let health = bus.health().await;
    assert!(
        health.ready && health.reachable && health.readers.is_empty(),
        "{health:?}"
    );
    assert!(health.latency_us.is_some());

    let probe = support::Probe::default();
    let worker = bus
        .consumer()
        .state(probe.clone())
        .options(
            ConsumerOptions::default()
                .name("health")
                .block(Duration::from_millis(100))
                .count(1)
                .prefetch(1),
        )
        .handler(gated)
        .start()
        .await
        .unwrap();
    let health = bus.health().await;
    assert!(health.ready, "{health:?}");
    assert_eq!(health.readers.len(), 1);
    assert_eq!(
        (
            health.readers[0].group.as_str(),
            health.readers[0].consumer.as_str()
        ),
        ("gated", "health")
    );

    // A handler holds the worker: the group falls behind.
    for i in 0..6 {
        bus.publish(&FileUploaded::new(format!("h{i}")))
            .await
            .unwrap();
    }
    let strict = HealthOptions::default().max_lag(2);
    let mut health = bus.health_with(strict).await;
    for _ in 0..100 {
        if !health.ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        health = bus.health_with(strict).await;
    }
    assert!(!health.ready, "{health:?}");
    assert!(
        health.problems.iter().any(|p| p.contains("entries behind")),
        "{health:?}"
    );
    probe.open_gate();
    assert!(
        support::eventually(Duration::from_secs(10), || probe.handled_len() == 6).await,
        "the gated events were handled"
    );

    // Redis frozen: not ready, within the timeout.
    signal(&server, "STOP");
    let started = Instant::now();
    let frozen = bus
        .health_with(HealthOptions::default().timeout(Duration::from_millis(300)))
        .await;
    let took = started.elapsed();
    signal(&server, "CONT");
    assert!(!frozen.ready && !frozen.reachable, "{frozen:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");

    worker.shutdown().await.unwrap();
    let after = bus.health().await;
    assert!(
        after.readers.is_empty(),
        "a stopped worker is still listed: {after:?}"
    );

    // In memory, the same verdicts.
    let memory = Bus::in_memory();
    assert!(memory.health().await.ready);
}
