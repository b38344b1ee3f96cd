//! The Server-Sent Events bridge against a private Redis: events as
//! CloudEvents JSON, resume across a dropped connection, one Redis
//! subscription for every client, slow clients dropped, and tenants kept
//! apart whatever a client sends.

mod support;

use std::time::Duration;

use support::events::{DriftDetected, FileUploaded, GateOpened};
use support::{get, serve, WITHIN};
use tidings::{Bus, Published};
use tidings_testkit::RedisServer;
use tidings_web::BridgeOptions;

async fn bus(server: &RedisServer) -> Bus {
    Bus::connect(&server.url()).await.unwrap()
}

#[tokio::test]
async fn pattern_events_arrive_as_cloudevents_named_by_their_type() {
    let redis = RedisServer::start();
    let bus = bus(&redis).await;
    let server = serve(bus.clone(), BridgeOptions::default()).await;
    let mut sse = get(
        server.addr,
        "/live/sse/channel/notifications?pattern=gate.*",
        &[],
    )
    .await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.content_type.as_deref(), Some("text/event-stream"));

    bus.publish(&GateOpened { gate: 7 }).await.unwrap();
    bus.publish(&DriftDetected { drift: 1 }).await.unwrap();
    bus.publish(&GateOpened { gate: 8 }).await.unwrap();

    let first = sse.event().await;
    assert_eq!(sse.retry, Some(1000));
    assert_eq!(first.event.as_deref(), Some("gate.opened"));
    assert_eq!(
        first.id, None,
        "Pub/Sub events have no entry id to resume from"
    );
    let ce = first.json();
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["type"], "gate.opened");
    assert_eq!(ce["dataversion"], "1");
    assert_eq!(ce["data"]["gate"], 7);
    // `drift.detected` does not match `gate.*`: the next one is gate 8.
    assert_eq!(sse.event().await.json()["data"]["gate"], 8);
}

#[tokio::test]
async fn a_stream_resumes_after_last_event_id_with_nothing_missed_or_doubled() {
    let redis = RedisServer::start();
    let bus = bus(&redis).await;
    let server = serve(bus.clone(), BridgeOptions::default()).await;
    let path = "/live/sse/stream/contextual";
    let mut sse = get(server.addr, path, &[]).await;
    assert_eq!(sse.status, 200);

    let mut published: Vec<Published> = Vec::new();
    for n in 0..3 {
        published.push(bus.publish(&FileUploaded { n }).await.unwrap());
    }
    let mut last = None;
    for (n, p) in published.iter().enumerate().take(2) {
        let e = sse.event().await;
        assert_eq!(e.event.as_deref(), Some("file.uploaded"));
        assert_eq!(e.id, p.entry_id, "`id:` is the entry id");
        assert_eq!(e.json()["data"]["n"], n);
        assert_eq!(e.json()["id"], p.event_id.to_string());
        last = e.id;
    }
    // The browser's connection drops mid-flow, with the third event read
    // by nobody, and more are published while it is away.
    drop(sse);
    for n in 3..6 {
        published.push(bus.publish(&FileUploaded { n }).await.unwrap());
    }
    let last = last.unwrap();
    let mut sse = get(server.addr, path, &[("last-event-id", &last)]).await;
    assert_eq!(sse.status, 200);
    published.push(bus.publish(&FileUploaded { n: 6 }).await.unwrap());
    for (n, p) in published.iter().enumerate().skip(2) {
        let e = sse.event().await;
        assert_eq!(e.id, p.entry_id);
        assert_eq!(
            e.json()["data"]["n"],
            n,
            "in order, none missed, none twice"
        );
    }

    // A first connection, which cannot set the header, resumes with `after`.
    let first = published[4].entry_id.clone().unwrap();
    let mut sse = get(server.addr, &format!("{path}?after={first}"), &[]).await;
    assert_eq!(sse.event().await.json()["data"]["n"], 5);
    assert_eq!(sse.event().await.json()["data"]["n"], 6);
    // The header wins over `after`: it is where the browser really was.
    let mut sse = get(
        server.addr,
        &format!("{path}?after={first}"),
        &[("last-event-id", published[5].entry_id.as_deref().unwrap())],
    )
    .await;
    bus.publish(&FileUploaded { n: 7 }).await.unwrap();
    assert_eq!(sse.event().await.json()["data"]["n"], 6);
    assert_eq!(sse.event().await.json()["data"]["n"], 7);
}

#[tokio::test]
async fn idle_connections_get_keep_alive_comments() {
    let redis = RedisServer::start();
    let server = serve(
        bus(&redis).await,
        BridgeOptions::default().keep_alive(Duration::from_millis(50)),
    )
    .await;
    let mut sse = get(server.addr, "/live/sse/channel/notifications", &[]).await;
    sse.comment_within(WITHIN).await;
    sse.comment_within(WITHIN).await;
}

/// Pattern subscriptions of the server, as Redis counts them.
async fn numpat(redis: &RedisServer) -> i64 {
    let mut conn = redis.connection().await;
    redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Waits until `check` holds, looking again each time a short while has
/// passed, up to [`WITHIN`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn every_client_of_a_pattern_shares_one_redis_subscription() {
    let redis = RedisServer::start();
    let bus = bus(&redis).await;
    let server = serve(
        bus.clone(),
        // Short, so the server notices closed connections soon.
        BridgeOptions::default().keep_alive(Duration::from_millis(20)),
    )
    .await;
    let path = "/live/sse/channel/notifications?pattern=gate.*";
    let mut clients = futures::future::join_all((0..20).map(|_| get(server.addr, path, &[]))).await;
    assert_eq!(server.bridge.open_subscriptions(), 1);
    assert_eq!(numpat(&redis).await, 1, "one PSUBSCRIBE for 20 browsers");
    // Another tenant's clients of the same pattern are another subscription.
    let mut acme = get(server.addr, path, &[("x-tenant", "acme")]).await;
    assert_eq!(numpat(&redis).await, 2);

    bus.publish(&GateOpened { gate: 1 }).await.unwrap();
    for c in &mut clients {
        assert_eq!(c.event().await.json()["data"]["gate"], 1);
    }
    bus.tenant("acme")
        .unwrap()
        .publish(&GateOpened { gate: 2 })
        .await
        .unwrap();
    let e = acme.event().await.json();
    assert_eq!(
        (e["data"]["gate"].clone(), e["tenantid"].clone()),
        (2.into(), "acme".into())
    );

    // The last client to leave closes the subscription.
    drop(clients);
    drop(acme);
    eventually("the subscriptions close", || async {
        server.bridge.open_subscriptions() == 0 && numpat(&redis).await == 0
    })
    .await;
}

#[tokio::test]
async fn a_slow_client_is_dropped_and_never_stalls_the_others() {
    use support::events::Bulk;
    let redis = RedisServer::start();
    let bus = bus(&redis).await;
    let server = serve(bus.clone(), BridgeOptions::default().buffer(32)).await;
    let path = "/live/sse/channel/notifications?pattern=bulk";

    // The slow browser: a tiny receive window, and it reads nothing.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let slow_conn = socket.connect(server.addr).await.unwrap();
    let mut slow = support::get_on(slow_conn, server.addr, path, &[]).await;
    // The fast one reads every event as it comes.
    let mut fast = get(server.addr, path, &[]).await;
    let (read_tx, mut read_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < TOTAL {
            let e = fast.event().await;
            seen.push(e.json()["data"]["n"].as_u64().unwrap());
            read_tx.send(seen.len()).unwrap();
        }
        seen
    });

    // 12 MiB in all: more than the slow client's socket, the server's send
    // buffer and the ring can hold. Published in rounds the fast client
    // keeps up with, so only the slow one falls behind.
    const TOTAL: usize = 384;
    const ROUND: usize = 16;
    let pad = "x".repeat(32 * 1024);
    for round in 0..TOTAL / ROUND {
        for i in 0..ROUND {
            let n = (round * ROUND + i) as u32;
            bus.publish(&Bulk {
                n,
                pad: pad.clone(),
            })
            .await
            .unwrap();
        }
        let want = (round + 1) * ROUND;
        let mut have = 0;
        while have < want {
            have = tokio::time::timeout(WITHIN, read_rx.recv())
                .await
                .expect("the fast client keeps getting events while the slow one reads nothing")
                .unwrap();
        }
    }
    let seen = reader.await.unwrap();
    assert_eq!(seen, (0..TOTAL as u64).collect::<Vec<_>>());

    // The slow client got a run from the start, then `overflow`, then the end.
    let mut got = 0u64;
    let overflow = loop {
        let e = slow.next().await.expect("an overflow event before the end");
        match e.event.as_deref() {
            Some("bulk") => {
                assert_eq!(e.json()["data"]["n"], got, "no hole before the overflow");
                got += 1;
            }
            Some("overflow") => break e.json(),
            other => panic!("unexpected event {other:?}"),
        }
    };
    assert!(got < TOTAL as u64, "the slow client was dropped, not kept");
    assert!(overflow["missed"].as_u64().unwrap() > 0, "{overflow}");
    assert_eq!(slow.next().await, None, "its response ends");
}

#[tokio::test]
async fn a_redis_restart_is_told_as_a_gap_and_the_events_go_on() {
    let mut redis = RedisServer::start();
    let bus = bus(&redis).await;
    let server = serve(bus.clone(), BridgeOptions::default()).await;
    let mut sse = get(
        server.addr,
        "/live/sse/channel/notifications?pattern=gate.*",
        &[],
    )
    .await;
    bus.publish(&GateOpened { gate: 1 }).await.unwrap();
    assert_eq!(sse.event().await.json()["data"]["gate"], 1);

    redis.restart();
    // The shared subscription subscribes again by itself and says what
    // happened: what was published meanwhile is lost (at most once).
    let gap = sse.event().await;
    assert_eq!(gap.event.as_deref(), Some("gap"), "{gap:?}");
    assert!(gap.json()["down_ms"].is_u64());
    bus.publish(&GateOpened { gate: 2 }).await.unwrap();
    let e = sse.event().await;
    assert_eq!(e.event.as_deref(), Some("gate.opened"));
    assert_eq!(e.json()["data"]["gate"], 2);
    assert_eq!(server.bridge.open_subscriptions(), 1);
}
