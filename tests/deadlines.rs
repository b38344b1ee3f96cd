//! Deadlines and recovery a user can count on: connecting to a server that
//! is not there, refuses the credentials or does not answer fails within the
//! connect timeout, naming the address and the user; after a restart, the
//! first call of every kind finds the connection back.

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
