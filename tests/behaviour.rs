//! Delivery behaviour, written once and run against every transport: each
//! test below runs in `memory::` (in-process broker) and in `redis::` (a
//! private `redis-server` per test).

mod support;

use std::time::Duration;

use futures::StreamExt;
use support::events::*;
use support::{Harness, Recorder};
use tidings::{handler, ConsumerOptions, Context, HandlerResult, StartFrom, State};

#[handler(group = "indexer", concurrency = 4)]
async fn index(e: FileUploaded, ctx: Context, State(rec): State<Recorder>) -> HandlerResult {
    rec.record("index", &e.file_id, e.mime_type.clone(), &ctx);
    Ok(())
}

#[handler(group = "thumbnailer")]
async fn thumbnail(e: FileUploaded, ctx: Context, State(rec): State<Recorder>) -> HandlerResult {
    rec.record("thumbnail", &e.file_id, e.mime_type.clone(), &ctx);
    Ok(())
}

#[handler(group = "late")]
async fn late(e: FileUploaded, ctx: Context, State(rec): State<Recorder>) -> HandlerResult {
    rec.record("late", &e.file_id, None, &ctx);
    Ok(())
}

#[handler(group = "replay")]
async fn replay(e: FileUploaded, ctx: Context, State(rec): State<Recorder>) -> HandlerResult {
    rec.record("replay", &e.file_id, None, &ctx);
    Ok(())
}

#[handler(group = "slow", concurrency = 8)]
async fn slow(e: FileUploaded, ctx: Context, State(rec): State<Recorder>) -> HandlerResult {
    rec.start();
    tokio::time::sleep(Duration::from_millis(300)).await;
    rec.record("slow", &e.file_id, None, &ctx);
    Ok(())
}

#[handler(group = "flaky")]
async fn flaky(e: FileUploaded, ctx: Context, State(rec): State<Recorder>) -> HandlerResult {
    if rec.first_time(&e.file_id) {
        return Err(format!("first attempt at {} fails", e.file_id).into());
    }
    rec.record("flaky", &e.file_id, None, &ctx);
    Ok(())
}

#[handler(group = "announcer")]
async fn announce(e: FileUploaded, _ctx: Context) -> HandlerResult<FileIndexed> {
    Ok(FileIndexed { file_id: e.file_id })
}

#[handler(group = "audit")]
async fn audit_indexed(e: FileIndexed, ctx: Context, State(rec): State<Recorder>) -> HandlerResult {
    rec.record("audit", &e.file_id, None, &ctx);
    Ok(())
}

fn fast() -> ConsumerOptions {
    ConsumerOptions::default()
        .block(Duration::from_millis(100))
        .claim_idle(None)
}

/// Waits a little to let a wrong extra delivery show up before asserting
/// that there was none.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn fan_out_to_two_groups_each_sees_every_event(h: Harness) {
    let rec = Recorder::default();
    let worker = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(fast())
        .handler(index)
        .handler(thumbnail)
        .start()
        .await
        .unwrap();
    for i in 0..5 {
        h.bus
            .publish(&FileUploaded::new(format!("f{i}")))
            .await
            .unwrap();
    }
    assert_eq!(rec.wait_for("index", 5).await.len(), 5);
    assert_eq!(rec.wait_for("thumbnail", 5).await.len(), 5);
    settle().await;
    assert_eq!(rec.seen().len(), 10);
    worker.shutdown().await.unwrap();
}

async fn one_group_shared_by_two_workers_handles_each_event_once(h: Harness) {
    let rec = Recorder::default();
    let opts = fast().count(2);
    let a = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(opts.clone())
        .handler(index)
        .start()
        .await
        .unwrap();
    let b = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(opts)
        .handler(index)
        .start()
        .await
        .unwrap();
    assert_ne!(a.consumer_name(), b.consumer_name());
    let events: Vec<_> = (0..20)
        .map(|i| FileUploaded::new(format!("f{i}")))
        .collect();
    h.bus.publish_batch(&events).await.unwrap();
    let seen = rec.wait_for("index", 20).await;
    settle().await;
    let mut ids: Vec<_> = rec.seen().into_iter().map(|s| s.file_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(seen.len(), 20);
    assert_eq!(rec.seen().len(), 20, "an event was handled twice");
    assert_eq!(ids.len(), 20);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

async fn new_group_starts_at_new_events_unless_told_to_start_from_the_beginning(h: Harness) {
    let rec = Recorder::default();
    h.bus.publish(&FileUploaded::new("before")).await.unwrap();
    let w1 = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(fast())
        .handler(late)
        .start()
        .await
        .unwrap();
    let w2 = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(fast().start_from(StartFrom::Beginning))
        .handler(replay)
        .start()
        .await
        .unwrap();
    h.bus.publish(&FileUploaded::new("after")).await.unwrap();
    let replayed = rec.wait_for("replay", 2).await;
    rec.wait_for("late", 1).await;
    settle().await;
    let late_ids: Vec<_> = rec.seen_by("late").into_iter().map(|s| s.file_id).collect();
    assert_eq!(late_ids, ["after"]);
    let replay_ids: Vec<_> = replayed.into_iter().map(|s| s.file_id).collect();
    assert_eq!(replay_ids, ["before", "after"]);
    w1.shutdown().await.unwrap();
    w2.shutdown().await.unwrap();
}

async fn shutdown_waits_for_in_flight_handlers_and_acks_them(h: Harness) {
    let rec = Recorder::default();
    let worker = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(fast())
        .handler(slow)
        .start()
        .await
        .unwrap();
    for i in 0..3 {
        h.bus
            .publish(&FileUploaded::new(format!("s{i}")))
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rec.started() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(rec.started(), 3);
    assert!(
        rec.seen_by("slow").is_empty(),
        "handlers should still be running"
    );
    worker.shutdown().await.unwrap();
    assert_eq!(
        rec.seen_by("slow").len(),
        3,
        "shutdown returned before handlers finished"
    );
    let key = h.bus.stream_key("contextual");
    assert_eq!(
        h.pending(&key, "slow").await,
        0,
        "finished entries were not acknowledged"
    );
}

async fn unacked_event_is_redelivered_to_another_consumer(h: Harness) {
    let rec = Recorder::default();
    let key = h.bus.stream_key("contextual");
    let a = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(fast().name("a"))
        .handler(flaky)
        .start()
        .await
        .unwrap();
    h.bus.publish(&FileUploaded::new("x")).await.unwrap();
    // The first attempt fails: the entry stays pending to `a`.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !rec.first_time_taken("x") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.shutdown().await.unwrap();
    assert_eq!(h.pending(&key, "flaky").await, 1);
    assert!(rec.seen_by("flaky").is_empty());

    let b = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(
            fast()
                .name("b")
                .claim_idle(Some(Duration::from_millis(200)))
                .claim_interval(Duration::from_millis(50)),
        )
        .handler(flaky)
        .start()
        .await
        .unwrap();
    assert_eq!(rec.wait_for("flaky", 1).await.len(), 1);
    b.shutdown().await.unwrap();
    assert_eq!(h.pending(&key, "flaky").await, 0);
}

async fn decode_error_is_never_acked(h: Harness) {
    let rec = Recorder::default();
    let key = h.bus.stream_key("contextual");
    let worker = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(fast())
        .handler(index)
        .start()
        .await
        .unwrap();
    h.bus
        .publish(&FileUploadedV9 {
            file_id: "future".into(),
        })
        .await
        .unwrap();
    h.bus
        .publish(&BrokenFileUploaded {
            file_id: "broken".into(),
            filename: 7,
        })
        .await
        .unwrap();
    h.bus.publish(&FileUploaded::new("fine")).await.unwrap();
    rec.wait_for("index", 1).await;
    settle().await;
    let ids: Vec<_> = rec.seen().into_iter().map(|s| s.file_id).collect();
    assert_eq!(ids, ["fine"]);
    worker.shutdown().await.unwrap();
    assert_eq!(
        h.pending(&key, "indexer").await,
        2,
        "undecodable entries must stay pending"
    );
}

async fn old_version_is_upcast_before_the_handler_sees_it(h: Harness) {
    let rec = Recorder::default();
    let worker = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(fast())
        .handler(index)
        .start()
        .await
        .unwrap();
    h.bus
        .publish(&FileUploadedV1 {
            file_id: "old".into(),
            filename: "a.pdf".into(),
        })
        .await
        .unwrap();
    let seen = rec.wait_for("index", 1).await;
    assert_eq!(seen[0].file_id, "old");
    assert_eq!(seen[0].mime_type.as_deref(), Some("application/pdf"));
    worker.shutdown().await.unwrap();
}

async fn returned_event_is_published_with_causation_and_correlation(h: Harness) {
    let rec = Recorder::default();
    let worker = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(fast())
        .handler(announce)
        .handler(audit_indexed)
        .start()
        .await
        .unwrap();
    let published = h
        .bus
        .publish_with(
            &FileUploaded::new("c1"),
            tidings::Meta::default().correlation_id("order-7"),
        )
        .await
        .unwrap();
    let seen = rec.wait_for("audit", 1).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].file_id, "c1");
    assert_eq!(
        seen[0].causation_id.as_deref(),
        Some(published.event_id.to_string().as_str())
    );
    assert_eq!(seen[0].correlation_id.as_deref(), Some("order-7"));
    worker.shutdown().await.unwrap();
}

async fn tenants_are_isolated_on_streams_and_channels(h: Harness) {
    let rec = Recorder::default();
    let acme = h.bus.tenant("acme").unwrap();
    let globex = h.bus.tenant("globex").unwrap();
    let worker = acme
        .consumer()
        .state(rec.clone())
        .options(fast())
        .handler(index)
        .start()
        .await
        .unwrap();
    let mut acme_gates = acme.subscribe::<GateOpened>().await.unwrap();
    let mut plain_gates = h.bus.subscribe::<GateOpened>().await.unwrap();

    globex
        .publish(&FileUploaded::new("globex-file"))
        .await
        .unwrap();
    h.bus
        .publish(&FileUploaded::new("untenanted-file"))
        .await
        .unwrap();
    acme.publish(&FileUploaded::new("acme-file")).await.unwrap();
    globex
        .publish(&GateOpened {
            gate: "globex".into(),
        })
        .await
        .unwrap();
    acme.publish(&GateOpened {
        gate: "acme".into(),
    })
    .await
    .unwrap();
    h.bus
        .publish(&GateOpened {
            gate: "plain".into(),
        })
        .await
        .unwrap();

    let seen = rec.wait_for("index", 1).await;
    let got = tokio::time::timeout(Duration::from_secs(5), acme_gates.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.gate, "acme");
    let got = tokio::time::timeout(Duration::from_secs(5), plain_gates.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.gate, "plain");
    settle().await;
    assert_eq!(seen[0].file_id, "acme-file");
    assert_eq!(seen[0].tenant.as_deref(), Some("acme"));
    assert_eq!(rec.seen().len(), 1);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), acme_gates.next())
            .await
            .is_err()
    );
    worker.shutdown().await.unwrap();
}

async fn pattern_subscription_receives_matching_types_only(h: Harness) {
    let mut gates = h
        .bus
        .subscribe_pattern("notifications", "gate.*")
        .await
        .unwrap();
    h.bus
        .publish(&GateOpened {
            gate: "north".into(),
        })
        .await
        .unwrap();
    h.bus
        .publish(&DoorOpened {
            door: "back".into(),
        })
        .await
        .unwrap();
    h.bus
        .publish(&GateClosed {
            gate: "north".into(),
        })
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), gates.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), gates.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.is::<GateOpened>());
    assert_eq!(first.decode::<GateOpened>().unwrap().gate, "north");
    assert_eq!(first.channel(), "tidings:notifications:gate.opened");
    assert!(second.is::<GateClosed>());
    assert!(
        tokio::time::timeout(Duration::from_millis(200), gates.next())
            .await
            .is_err()
    );
}

async fn event_with_stream_and_channel_goes_to_both(h: Harness) {
    let mut sub = h.bus.subscribe::<AuditLogged>().await.unwrap();
    let published = h
        .bus
        .publish(&AuditLogged {
            line: "hello".into(),
        })
        .await
        .unwrap();
    assert!(published.entry_id.is_some());
    let got = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.line, "hello");
    let channel_only = h
        .bus
        .publish(&GateOpened { gate: "g".into() })
        .await
        .unwrap();
    assert!(channel_only.entry_id.is_none());
}

async fn batch_returns_one_entry_id_per_event_in_order(h: Harness) {
    let events: Vec<_> = (0..10)
        .map(|i| FileUploaded::new(format!("b{i}")))
        .collect();
    let published = h.bus.publish_batch(&events).await.unwrap();
    assert_eq!(published.len(), 10);
    let ids: Vec<_> = published
        .iter()
        .map(|p| p.entry_id.clone().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| {
        let (ms, seq) = id.split_once('-').unwrap();
        (ms.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap())
    });
    assert_eq!(ids, sorted);
    let mut event_ids: Vec<_> = published.iter().map(|p| p.event_id).collect();
    event_ids.dedup();
    assert_eq!(event_ids.len(), 10);
}

async fn missing_state_fails_at_start(h: Harness) {
    let err = h.bus.consumer().handler(index).start().await.unwrap_err();
    assert!(
        matches!(
            err,
            tidings::Error::MissingState {
                handler: "index",
                ..
            }
        ),
        "{err}"
    );
}

macro_rules! behaviour_suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Harness::memory()).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Harness::redis().await).await
                }
            )*
        }
    };
}

behaviour_suite!(
    fan_out_to_two_groups_each_sees_every_event,
    one_group_shared_by_two_workers_handles_each_event_once,
    new_group_starts_at_new_events_unless_told_to_start_from_the_beginning,
    shutdown_waits_for_in_flight_handlers_and_acks_them,
    unacked_event_is_redelivered_to_another_consumer,
    decode_error_is_never_acked,
    old_version_is_upcast_before_the_handler_sees_it,
    returned_event_is_published_with_causation_and_correlation,
    tenants_are_isolated_on_streams_and_channels,
    pattern_subscription_receives_matching_types_only,
    event_with_stream_and_channel_goes_to_both,
    batch_returns_one_entry_id_per_event_in_order,
    missing_state_fails_at_start,
);

#[tokio::test]
async fn handler_is_callable_directly_in_a_unit_test() {
    let rec = Recorder::default();
    index(
        FileUploaded::new("direct"),
        Context::detached(),
        State(rec.clone()),
    )
    .await
    .unwrap();
    assert_eq!(rec.seen_by("index")[0].file_id, "direct");
    let indexed = announce(FileUploaded::new("direct"), Context::detached())
        .await
        .unwrap();
    assert_eq!(
        indexed,
        FileIndexed {
            file_id: "direct".into()
        }
    );
}

#[test]
fn redis_harness_restarts_on_the_same_port() {
    let mut server = support::redis::RedisServer::start();
    let port = server.port();
    assert_ne!(port, 6379);
    server.restart();
    assert_eq!(server.port(), port);
    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let pong: String = ::redis::cmd("PING").query(&mut conn).unwrap();
    assert_eq!(pong, "PONG");
}
