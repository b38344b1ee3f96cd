//! Stream metrics and read-only ranges, written once and run against every
//! transport: each test below runs in `memory::` and in `redis::` (a private
//! `redis-server` per test).

mod support;

use std::time::Duration;

use support::events::*;
use support::{eventually, Harness};
use tidings::transport::{ReadRequest, StreamTransport};
use tidings::{fatal, handler, ConsumerOptions, Context, HandlerResult, Published, StartFrom};

#[handler(group = "doomed", retries = 0)]
async fn doomed(_e: FileUploaded, _ctx: Context) -> HandlerResult {
    Err(fatal("this handler never succeeds"))
}

async fn publish(h: &Harness, n: usize) -> Vec<Published> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            h.bus
                .publish(&FileUploaded::new(format!("f{i}")))
                .await
                .unwrap(),
        );
    }
    out
}

fn entry_id(p: &Published) -> String {
    p.entry_id.clone().expect("file.uploaded has a stream")
}

/// Creates `group` at the start of the stream and reads `n` entries as
/// `consumer`, acknowledging none.
async fn read_without_ack(h: &Harness, group: &str, consumer: &str, n: usize) {
    let key = h.bus.stream_key("contextual").unwrap();
    match &h.server {
        None => {
            let m = h.bus.memory().unwrap();
            m.create_group(&key, group, &StartFrom::Beginning)
                .await
                .unwrap();
            let got = m
                .read_group(
                    &mut (),
                    ReadRequest::new(&key, group, consumer, n, Duration::from_millis(10)),
                )
                .await
                .unwrap();
            assert_eq!(got.len(), n);
        }
        Some(server) => {
            let mut conn = server.connection().await;
            let _: () = ::redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&key)
                .arg(group)
                .arg("0")
                .query_async(&mut conn)
                .await
                .unwrap();
            let _: ::redis::Value = ::redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(group)
                .arg(consumer)
                .arg("COUNT")
                .arg(n)
                .arg("STREAMS")
                .arg(&key)
                .arg(">")
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

async fn length_and_first_and_last_ids_match_what_was_published(h: Harness) {
    let published = publish(&h, 3).await;
    let stats = h.bus.stream_stats("contextual").await.unwrap();
    assert!(stats.exists);
    assert_eq!(stats.stream, "contextual");
    assert_eq!(stats.key, "tidings:{contextual}");
    assert_eq!(stats.length, 3);
    assert_eq!(stats.first_entry_id, Some(entry_id(&published[0])));
    assert_eq!(stats.last_entry_id, Some(entry_id(&published[2])));
    assert_eq!(stats.entries_added, Some(3));
    assert_eq!(stats.dead_letters, 0);
    assert!(stats.groups.is_empty());
}

async fn missing_stream_is_reported_as_not_existing(h: Harness) {
    let stats = h.bus.stream_stats("nowhere").await.unwrap();
    assert!(!stats.exists);
    assert_eq!(stats.length, 0);
    assert_eq!(stats.first_entry_id, None);
    assert!(stats.groups.is_empty());
    assert_eq!(stats.dead_letter_key, "tidings:{nowhere}:dlq");
}

async fn lag_counts_entries_the_group_has_not_read_yet(h: Harness) {
    let published = publish(&h, 5).await;
    read_without_ack(&h, "reader", "c1", 2).await;
    let stats = h.bus.stream_stats("contextual").await.unwrap();
    let group = stats.group("reader").expect("the group is listed");
    assert_eq!(group.lag, Some(3));
    assert_eq!(group.entries_read, Some(2));
    assert_eq!(group.last_delivered_id, entry_id(&published[1]));

    publish(&h, 4).await;
    let stats = h.bus.stream_stats("contextual").await.unwrap();
    assert_eq!(stats.group("reader").unwrap().lag, Some(7));
}

async fn entries_read_and_not_acked_are_pending_for_group_and_consumer(h: Harness) {
    let published = publish(&h, 4).await;
    read_without_ack(&h, "reader", "c1", 3).await;
    let stats = h.bus.stream_stats("contextual").await.unwrap();
    let group = stats.group("reader").unwrap();
    assert_eq!(group.pending, 3);
    assert_eq!(group.consumers.len(), 1);
    let c1 = group.consumer("c1").expect("the consumer is listed");
    assert_eq!(c1.pending, 3);
    assert!(c1.idle() < Duration::from_secs(10), "idle {:?}", c1.idle());

    let key = h.bus.stream_key("contextual").unwrap();
    let acked = [entry_id(&published[0])];
    match &h.server {
        None => h.bus.memory().unwrap().ack(&key, "reader", &acked).await,
        Some(server) => {
            let mut conn = server.connection().await;
            let _: i64 = ::redis::cmd("XACK")
                .arg(&key)
                .arg("reader")
                .arg(&acked[0])
                .query_async(&mut conn)
                .await
                .unwrap();
            Ok(())
        }
    }
    .unwrap();
    let stats = h.bus.stream_stats("contextual").await.unwrap();
    assert_eq!(stats.group("reader").unwrap().pending, 2);
    assert_eq!(
        stats
            .group("reader")
            .unwrap()
            .consumer("c1")
            .unwrap()
            .pending,
        2
    );
}

async fn dead_letters_are_counted_and_the_group_is_caught_up(h: Harness) {
    let worker = h
        .bus
        .consumer()
        .options(
            ConsumerOptions::default()
                .block(Duration::from_millis(100))
                .claim_idle(None),
        )
        .handler(doomed)
        .start()
        .await
        .unwrap();
    publish(&h, 2).await;
    let dlq = h.bus.dead_letters("contextual").unwrap();
    let mut count = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while count < 2 && tokio::time::Instant::now() < deadline {
        count = dlq.len().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.shutdown().await.unwrap();
    let stats = h.bus.stream_stats("contextual").await.unwrap();
    assert_eq!(stats.dead_letters, 2);
    assert_eq!(stats.length, 2, "dead letters stay in the stream too");
    let group = stats.group("doomed").unwrap();
    assert_eq!(group.pending, 0, "a dead letter is acknowledged");
    assert_eq!(group.lag, Some(0));
    assert!(
        group.consumers.is_empty(),
        "a worker that stops with nothing pending leaves the group: {:?}",
        group.consumers
    );
}

async fn tenant_stats_read_the_tenant_key_only(h: Harness) {
    let acme = h.bus.tenant("acme").unwrap();
    acme.publish(&FileUploaded::new("a")).await.unwrap();
    acme.publish(&FileUploaded::new("b")).await.unwrap();
    let stats = acme.stream_stats("contextual").await.unwrap();
    assert_eq!(stats.key, "tidings:{acme:contextual}");
    assert_eq!(stats.tenant.as_deref(), Some("acme"));
    assert_eq!(stats.length, 2);
    assert!(!h.bus.stream_stats("contextual").await.unwrap().exists);
}

async fn range_and_last_entries_read_without_a_group(h: Harness) {
    let published = publish(&h, 5).await;
    let from = entry_id(&published[2]);
    let got = h.bus.range("contextual", &from, 10).await.unwrap();
    let ids: Vec<String> = got.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, published[2..].iter().map(entry_id).collect::<Vec<_>>());
    let env = tidings::Envelope::from_fields(
        &got[0].id,
        got[0].fields.iter().map(|(k, v)| (k.as_bytes(), &v[..])),
    )
    .unwrap();
    assert_eq!(env.id, published[2].event_id.to_string());
    assert_eq!(env.type_name, "file.uploaded");

    let all = h.bus.range("contextual", "-", 2).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, entry_id(&published[0]));

    let last = h.bus.last_entries("contextual", 2).await.unwrap();
    let ids: Vec<String> = last.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, published[3..].iter().map(entry_id).collect::<Vec<_>>());

    let stats = h.bus.stream_stats("contextual").await.unwrap();
    assert!(stats.groups.is_empty(), "reading a range makes no group");
    assert!(h.bus.range("nowhere", "-", 10).await.unwrap().is_empty());
}

async fn stats_serialize_to_json_with_unknown_lag_as_null(h: Harness) {
    publish(&h, 1).await;
    read_without_ack(&h, "reader", "c1", 1).await;
    let mut stats = h.bus.stream_stats("contextual").await.unwrap();
    stats.groups[0].lag = None;
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["exists"], true);
    assert_eq!(json["length"], 1);
    assert_eq!(json["groups"][0]["name"], "reader");
    assert_eq!(json["groups"][0]["lag"], serde_json::Value::Null);
    assert_eq!(json["groups"][0]["consumers"][0]["pending"], 1);
}

tidings_testkit::transport_suite! {
    transports: {
        memory => Harness::memory(),
        redis => Harness::redis().await,
    },
    tests: [
        length_and_first_and_last_ids_match_what_was_published,
        missing_stream_is_reported_as_not_existing,
        lag_counts_entries_the_group_has_not_read_yet,
        entries_read_and_not_acked_are_pending_for_group_and_consumer,
        dead_letters_are_counted_and_the_group_is_caught_up,
        tenant_stats_read_the_tenant_key_only,
        range_and_last_entries_read_without_a_group,
        stats_serialize_to_json_with_unknown_lag_as_null,
    ],
}

/// Redis 7 cannot count the lag of a group that starts at an arbitrary id
/// when entries after it were deleted; the snapshot says so instead of
/// guessing.
#[tokio::test]
async fn redis_lag_is_unknown_rather_than_guessed_after_deletions() {
    let h = Harness::redis().await;
    let published = publish(&h, 3).await;
    let key = h.bus.stream_key("contextual").unwrap();
    let mut conn = h.server.as_ref().unwrap().connection().await;
    let _: i64 = ::redis::cmd("XDEL")
        .arg(&key)
        .arg(entry_id(&published[1]))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = ::redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("late")
        .arg(entry_id(&published[0]))
        .query_async(&mut conn)
        .await
        .unwrap();
    let stats = h.bus.stream_stats("contextual").await.unwrap();
    assert_eq!(stats.length, 2);
    let late = stats.group("late").unwrap();
    assert_eq!(late.lag, None);
    assert_eq!(late.entries_read, None);
}

#[tokio::test]
async fn redis_key_of_another_type_is_a_clear_error() {
    let h = Harness::redis().await;
    let mut conn = h.server.as_ref().unwrap().connection().await;
    let _: () = ::redis::cmd("SET")
        .arg(h.bus.stream_key("contextual").unwrap())
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = h.bus.stream_stats("contextual").await.unwrap_err();
    assert!(err.to_string().contains("not a stream"), "{err}");
}

#[tokio::test]
async fn in_memory_consumer_idle_time_grows_until_it_reads_again() {
    let h = Harness::memory();
    publish(&h, 1).await;
    read_without_ack(&h, "reader", "c1", 1).await;
    let grew = eventually(Duration::from_secs(5), || {
        futures::executor::block_on(h.bus.stream_stats("contextual"))
            .unwrap()
            .groups[0]
            .consumers[0]
            .idle_ms
            >= 50
    })
    .await;
    assert!(grew);
}
