//! Delivery behaviour, written once and run against every transport: each
//! test below runs in `memory::` (in-process broker) and in `redis::` (a
//! private `redis-server` per test).

mod support;

use std::time::Duration;

use futures::StreamExt;
use support::events::*;
use support::{eventually, Harness, Probe, Recorder};
use tidings::{
    fatal, handler, ConsumerOptions, Context, HandlerResult, RetryPolicy, StartFrom, State,
};

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

#[handler(group = "ordered")]
async fn ordered(e: FileUploaded, ctx: Context, State(rec): State<Recorder>) -> HandlerResult {
    // Some handlers take a while: a later entry must still wait its turn.
    if e.file_id.ends_with('3') {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    rec.record("ordered", &e.file_id, None, &ctx);
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
    let key = h.bus.stream_key("contextual").unwrap();
    assert_eq!(
        h.pending(&key, "slow").await,
        0,
        "finished entries were not acknowledged"
    );
}

async fn unacked_event_is_redelivered_to_another_consumer(h: Harness) {
    let rec = Recorder::default();
    let key = h.bus.stream_key("contextual").unwrap();
    let a = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(fast().name("a"))
        .handler(flaky)
        // Long enough that `a` stops before its retry: the entry is left to `b`.
        .retry(RetryPolicy::default().backoff(Duration::from_secs(30)))
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

async fn decode_error_goes_to_dead_letters_and_the_worker_goes_on(h: Harness) {
    let rec = Recorder::default();
    let key = h.bus.stream_key("contextual").unwrap();
    let worker = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(fast())
        .handler(index)
        .start()
        .await
        .unwrap();
    let future = h
        .bus
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
    let dlq = h.bus.dead_letters("contextual").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while dlq.len().await.unwrap() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.bus.publish(&FileUploaded::new("after")).await.unwrap();
    rec.wait_for("index", 2).await;
    settle().await;
    let ids: Vec<_> = rec.seen().into_iter().map(|s| s.file_id).collect();
    assert_eq!(
        ids,
        ["fine", "after"],
        "the worker stopped after a decode error"
    );
    worker.shutdown().await.unwrap();
    assert_eq!(
        h.pending(&key, "indexer").await,
        0,
        "dead letters are acknowledged"
    );

    let letters = dlq.list(10).await.unwrap();
    assert_eq!(letters.len(), 2);
    // Entries are handled concurrently: find each by its original entry id.
    let (v9, broken) = match letters[0].entry_id == future.entry_id.clone().unwrap() {
        true => (&letters[0], &letters[1]),
        false => (&letters[1], &letters[0]),
    };
    assert_eq!(v9.group, "indexer");
    assert_eq!(v9.attempts, 1, "a decode error is not retried");
    assert!(v9.error.contains("v9"), "{}", v9.error);
    assert_eq!(Some(v9.entry_id.clone()), future.entry_id);
    let env = v9.envelope.as_ref().unwrap();
    assert_eq!(
        env.id,
        future.event_id.to_string(),
        "the original event id is kept"
    );
    assert_eq!(env.dataversion, 9);
    assert!(broken.error.contains("filename"), "{}", broken.error);
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

async fn no_name_or_pattern_reaches_another_tenant(h: Harness) {
    use tidings::{Error, Meta};
    let acme = h.bus.tenant("acme").unwrap();
    let globex = h.bus.tenant("globex").unwrap();

    // Names and patterns that would reach past their scope are refused.
    for (channel, pattern) in [
        ("*", "*"),
        ("acme:notifications", "*"),
        ("{acme}", "*"),
        ("{acme}:notifications", "*"),
        ("notif*", "*"),
        ("notifications", "*:*"),
        ("notifications", "*}:notifications:*"),
        ("notifications", "\\*"),
        ("notifications", "gate opened"),
        ("a b", "*"),
        ("", "*"),
        ("notifications", ""),
    ] {
        for bus in [&h.bus, &acme] {
            match bus.subscribe_pattern(channel, pattern).await {
                Err(Error::InvalidName(_)) => {}
                other => panic!("({channel:?}, {pattern:?}) was not refused: {other:?}"),
            }
        }
    }
    for stream in [
        "x*",
        "a b",
        "a}b{",
        "acme:contextual",
        "{acme:contextual}",
        "",
    ] {
        for bus in [&h.bus, &acme] {
            assert!(
                matches!(bus.stream_stats(stream).await, Err(Error::InvalidName(_))),
                "stream_stats({stream:?})"
            );
            assert!(
                bus.dead_letters(stream).is_err(),
                "dead_letters({stream:?})"
            );
            assert!(
                bus.range(stream, "-", 10).await.is_err(),
                "range({stream:?})"
            );
            assert!(
                bus.last_entries(stream, 10).await.is_err(),
                "last_entries({stream:?})"
            );
        }
    }
    assert!(matches!(
        h.bus.tenant(&"t".repeat(65)),
        Err(Error::InvalidName(_))
    ));
    assert!(h.bus.tenant(&"t".repeat(64)).is_ok());
    match acme
        .publish_with(
            &GateOpened { gate: "x".into() },
            Meta::default().tenant("globex"),
        )
        .await
    {
        Err(Error::OtherTenant { bus, requested }) => {
            assert_eq!((bus.as_str(), requested.as_str()), ("acme", "globex"));
        }
        other => panic!("a tenant bus published for another tenant: {other:?}"),
    }
    for name in ["a:b", "w*", "a b"] {
        let started = h
            .bus
            .consumer()
            .state(Recorder::default())
            .handler(index)
            .options(fast().name(name))
            .start()
            .await;
        assert!(
            matches!(started, Err(Error::InvalidName(_))),
            "consumer name {name:?} was accepted"
        );
    }

    // The widest patterns each scope may hold see only their own scope.
    let mut root_named_like_tenant = h.bus.subscribe_pattern("acme", "*").await.unwrap();
    let mut root_all = h.bus.subscribe_pattern("notifications", "*").await.unwrap();
    let mut globex_all = globex
        .subscribe_pattern("notifications", "*")
        .await
        .unwrap();
    let mut acme_all = acme.subscribe_pattern("notifications", "*").await.unwrap();
    acme.publish(&GateOpened {
        gate: "acme".into(),
    })
    .await
    .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), acme_all.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.channel(), "tidings:{acme}:notifications:gate.opened");
    for (who, sub) in [
        ("root `acme:*`", &mut root_named_like_tenant),
        ("root `notifications:*`", &mut root_all),
        ("globex `notifications:*`", &mut globex_all),
    ] {
        if let Ok(got) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
            panic!("{who} received acme's event: {got:?}");
        }
    }
}

#[derive(Clone, Default)]
struct Envelopes(std::sync::Arc<std::sync::Mutex<Vec<tidings::Envelope>>>);

#[handler(group = "envelopes")]
async fn keep_envelope(
    _e: FileUploaded,
    ctx: Context,
    State(seen): State<Envelopes>,
) -> HandlerResult {
    if let Some(env) = ctx.envelope() {
        seen.0.lock().unwrap().push(env.clone());
    }
    Ok(())
}

async fn meta_carries_extensions_a_chosen_id_and_batch_attributes(h: Harness) {
    use tidings::{Error, Meta, Ulid};
    let seen = Envelopes::default();
    let worker = h
        .bus
        .consumer()
        .state(seen.clone())
        .options(fast().inbox(Some(Duration::from_secs(60))))
        .handler(keep_envelope)
        .start()
        .await
        .unwrap();
    let mut gates = h.bus.subscribe_pattern("notifications", "*").await.unwrap();

    // Extension attributes, on a stream entry and a Pub/Sub message.
    let meta = Meta::default()
        .extension("region", "eu-west-1")
        .extension("attempt", "2");
    h.bus
        .publish_with(&FileUploaded::new("ext"), meta.clone())
        .await
        .unwrap();
    h.bus
        .publish_with(&GateOpened { gate: "g".into() }, meta)
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(5), gates.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let want = [
        ("region".to_owned(), "eu-west-1".to_owned()),
        ("attempt".to_owned(), "2".to_owned()),
    ];
    assert_eq!(message.envelope().extensions, want);
    assert!(
        eventually(Duration::from_secs(10), || seen.0.lock().unwrap().len()
            == 1)
        .await
    );
    assert_eq!(seen.0.lock().unwrap()[0].extensions, want);

    // Names outside CloudEvents' rule, or tidings' own, are refused.
    for bad in [
        "Region",
        "a_b",
        "dataversion",
        "id",
        "",
        "abcdefghijklmnopqrstu",
    ] {
        let refused = h
            .bus
            .publish_with(
                &FileUploaded::new("bad"),
                Meta::default().extension(bad, "x"),
            )
            .await;
        assert!(
            matches!(refused, Err(Error::InvalidName(_))),
            "{bad:?}: {refused:?}"
        );
    }

    // A chosen id, published twice as after an `Unavailable`: the inbox
    // drops the copy.
    let id = Ulid::new();
    let key = h.bus.stream_key("contextual").unwrap();
    for copy in 0..2 {
        let published = h
            .bus
            .publish_with(&FileUploaded::new("again"), Meta::default().event_id(id))
            .await
            .unwrap();
        assert_eq!(published.event_id, id);
        if copy == 0 {
            // The inbox mark is written with the acknowledgement.
            assert!(
                eventually(Duration::from_secs(10), || seen.0.lock().unwrap().len()
                    == 2)
                .await
            );
            assert!(
                h.all_acked(&key, "envelopes", Duration::from_secs(10))
                    .await
            );
        }
    }

    // A batch with attributes: each event has them, and an id of its own.
    let batch = [FileUploaded::new("b1"), FileUploaded::new("b2")];
    let published = h
        .bus
        .publish_batch_with(&batch, Meta::default().correlation_id("import-7"))
        .await
        .unwrap();
    assert_ne!(published[0].event_id, published[1].event_id);
    assert!(matches!(
        h.bus
            .publish_batch_with(&batch, Meta::default().event_id(Ulid::new()))
            .await,
        Err(Error::EventIdInBatch { events: 2 })
    ));

    assert!(
        eventually(Duration::from_secs(10), || seen.0.lock().unwrap().len()
            == 4)
        .await
    );
    settle().await;
    worker.shutdown().await.unwrap();
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        4,
        "the copy with the same id was handled again: {seen:?}"
    );
    assert_eq!(seen[1].id, id.to_string());
    for env in &seen[2..] {
        assert_eq!(env.correlation_id.as_deref(), Some("import-7"));
    }
}

async fn streams_lists_the_streams_of_its_own_scope_only(h: Harness) {
    assert!(h.bus.streams().await.unwrap().is_empty());
    h.bus.publish(&FileUploaded::new("s0")).await.unwrap();
    h.bus
        .group("audit", "reader")
        .unwrap()
        .create(StartFrom::Beginning)
        .await
        .unwrap();
    let acme = h.bus.tenant("acme").unwrap();
    acme.publish(&FileUploaded::new("a0")).await.unwrap();
    assert_eq!(h.bus.streams().await.unwrap(), ["audit", "contextual"]);
    assert_eq!(acme.streams().await.unwrap(), ["contextual"]);
    assert!(h
        .bus
        .tenant("globex")
        .unwrap()
        .streams()
        .await
        .unwrap()
        .is_empty());
}

async fn follow_yields_the_entries_added_after_its_start_in_order(h: Harness) {
    let before = h.bus.publish(&FileUploaded::new("f0")).await.unwrap();
    // From now on: the entry already there is not yielded.
    let mut now = h.bus.follow("contextual", None).await.unwrap();
    // From an entry id: what came after it, then what comes.
    let mut after = h
        .bus
        .follow("contextual", before.entry_id.as_deref())
        .await
        .unwrap();
    let mut added = Vec::new();
    for i in 1..4 {
        let p = h
            .bus
            .publish(&FileUploaded::new(format!("f{i}")))
            .await
            .unwrap();
        added.push(p.entry_id.unwrap());
    }
    for follow in [&mut now, &mut after] {
        for id in &added {
            let entry = tokio::time::timeout(Duration::from_secs(5), follow.next())
                .await
                .expect("an entry within 5 s")
                .unwrap()
                .unwrap();
            assert_eq!(&entry.id, id);
        }
    }
    // Another tenant's stream of the same name is not followed.
    let mut other = h
        .bus
        .tenant("acme")
        .unwrap()
        .follow("contextual", Some("0-0"))
        .await
        .unwrap();
    h.bus.publish(&FileUploaded::new("f4")).await.unwrap();
    let acme = h.bus.tenant("acme").unwrap();
    let own = acme.publish(&FileUploaded::new("a0")).await.unwrap();
    let entry = tokio::time::timeout(Duration::from_secs(5), other.next())
        .await
        .expect("an entry within 5 s")
        .unwrap()
        .unwrap();
    assert_eq!(Some(entry.id), own.entry_id);
}

async fn a_group_is_created_moved_listed_and_deleted_from_code(h: Harness) {
    use tidings::{Error, Position};
    let rec = Recorder::default();
    for i in 0..3 {
        h.bus
            .publish(&FileUploaded::new(format!("g{i}")))
            .await
            .unwrap();
    }
    let group = h.bus.group("contextual", "indexer").unwrap();
    group.create(StartFrom::Beginning).await.unwrap();
    let worker = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(fast().name("replayer"))
        .handler(index)
        .start()
        .await
        .unwrap();
    assert_eq!(rec.wait_for("index", 3).await.len(), 3);
    assert_eq!(
        group
            .consumers()
            .await
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["replayer"]
    );

    // Replay after a bad deploy: the group reads the whole stream again.
    group.set_position(Position::Start).await.unwrap();
    assert_eq!(rec.wait_for("index", 6).await.len(), 6);
    // From a time in the future on: nothing more.
    group
        .set_position(Position::Time(
            std::time::SystemTime::now() + Duration::from_secs(3600),
        ))
        .await
        .unwrap();
    h.bus
        .publish(&FileUploaded::new("before-the-time"))
        .await
        .unwrap();
    settle().await;
    assert_eq!(
        rec.seen_by("index").len(),
        6,
        "an entry before the position was read"
    );
    assert!(matches!(
        group
            .set_position(Position::After("contextual".into()))
            .await,
        Err(Error::InvalidEntryId { .. })
    ));
    assert!(matches!(
        h.bus.group("contextual", "a:b"),
        Err(Error::InvalidName(_))
    ));
    worker.shutdown().await.unwrap();
    assert!(group.pending(10).await.unwrap().is_empty());
    assert!(group.delete().await.unwrap());
    assert!(!group.delete().await.unwrap());

    // Pending entries, with their consumer and deliveries.
    let a = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(fast().name("holder"))
        .handler(flaky)
        .retry(RetryPolicy::default().backoff(Duration::from_secs(30)))
        .start()
        .await
        .unwrap();
    h.bus.publish(&FileUploaded::new("held")).await.unwrap();
    let flaky_group = h.bus.group("contextual", "flaky").unwrap();
    let mut pending = Vec::new();
    for _ in 0..200 {
        pending = flaky_group.pending(10).await.unwrap();
        if !pending.is_empty() && rec.first_time_taken("held") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].consumer, "holder");
    assert_eq!(pending[0].deliveries, 1);
    a.abort();
}

async fn trimming_keeps_what_a_group_has_not_read_and_applies_the_bound_otherwise(h: Harness) {
    use tidings::Retention;
    let rec = Recorder::default();
    for i in 0..10 {
        h.bus
            .publish(&FileUploaded::new(format!("t{i}")))
            .await
            .unwrap();
    }
    // A group that has read nothing yet.
    let lagging = h.bus.group("contextual", "lagging").unwrap();
    lagging.create(StartFrom::Beginning).await.unwrap();
    let keep_two = Retention::max_len(2).exact();
    let dry = h.bus.trim_dry_run("contextual", &keep_two).await.unwrap();
    assert_eq!(
        (dry.trimmed, dry.held_back_by.clone()),
        (0, vec!["lagging".to_owned()])
    );
    let report = h.bus.trim("contextual", &keep_two).await.unwrap();
    assert_eq!(report.trimmed, 0, "{report:?}");
    assert_eq!(report.held_back_by, ["lagging"]);
    assert_eq!(h.bus.stream_stats("contextual").await.unwrap().length, 10);

    // Once it is gone, and another group read and acknowledged everything
    // while a worker trims in the background, the bound applies.
    assert!(lagging.delete().await.unwrap());
    let worker = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(
            fast()
                .start_from(StartFrom::Beginning)
                .retention(Retention::max_len(3).exact(), Duration::from_millis(50)),
        )
        .handler(index)
        .start()
        .await
        .unwrap();
    assert_eq!(rec.wait_for("index", 10).await.len(), 10);
    let mut length = 10;
    for _ in 0..200 {
        length = h.bus.stream_stats("contextual").await.unwrap().length;
        if length <= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(length, 3, "the worker's retention was not applied");
    worker.shutdown().await.unwrap();
    let report = h.bus.trim("contextual", &keep_two).await.unwrap();
    assert_eq!(
        (report.trimmed, report.held_back_by.len()),
        (1, 0),
        "{report:?}"
    );
    assert_eq!(h.bus.stream_stats("contextual").await.unwrap().length, 2);
    // By age: nothing is an hour old; everything is older than now.
    let hour = Retention::max_age(Duration::from_secs(3600)).exact();
    assert_eq!(h.bus.trim("contextual", &hour).await.unwrap().trimmed, 0);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let now = Retention::max_age(Duration::ZERO).exact();
    assert_eq!(h.bus.trim("contextual", &now).await.unwrap().trimmed, 2);
    // A name that breaks keys is refused before anything is sent.
    assert!(h.bus.trim("x*", &keep_two).await.is_err());
}

async fn replay_hands_a_range_to_handlers_without_touching_a_group(h: Harness) {
    let rec = Recorder::default();
    let first = h
        .bus
        .publish(&FileUploadedV1 {
            file_id: "r0".into(),
            filename: "old.pdf".into(),
        })
        .await
        .unwrap();
    h.bus.publish(&FileUploaded::new("r1")).await.unwrap();
    h.bus
        .publish(&FileUploadedV9 {
            file_id: "from-the-future".into(),
        })
        .await
        .unwrap();
    let report = h
        .bus
        .replay("contextual")
        .unwrap()
        .handler(index)
        .state(rec.clone())
        .run()
        .await
        .unwrap();
    assert_eq!((report.read, report.handled), (3, 2), "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].error.contains("v9"), "{report:?}");
    let seen: Vec<_> = rec
        .seen()
        .into_iter()
        .map(|s| (s.file_id, s.mime_type))
        .collect();
    assert_eq!(
        seen[0],
        ("r0".to_owned(), Some("application/pdf".to_owned())),
        "upcast"
    );
    assert_eq!(seen.len(), 2);
    // No group was made or moved.
    assert!(h
        .bus
        .stream_stats("contextual")
        .await
        .unwrap()
        .groups
        .is_empty());

    // A range, and returned events published only when asked.
    let only_first = h
        .bus
        .replay("contextual")
        .unwrap()
        .until_id(first.entry_id.clone().unwrap())
        .handler(announce)
        .run()
        .await
        .unwrap();
    assert_eq!((only_first.read, only_first.handled), (1, 1));
    assert_eq!(h.bus.stream_stats("indexing").await.unwrap().length, 0);
    h.bus
        .replay("contextual")
        .unwrap()
        .from_id(first.entry_id.unwrap())
        .handler(announce)
        .publish_returned(true)
        .run()
        .await
        .unwrap();
    assert_eq!(h.bus.stream_stats("indexing").await.unwrap().length, 2);
    let none = h
        .bus
        .replay("contextual")
        .unwrap()
        .since(std::time::SystemTime::now() + Duration::from_secs(60))
        .handler(index)
        .state(rec.clone())
        .run()
        .await
        .unwrap();
    assert_eq!(none.read, 0);
    // What is wrong is said before anything is read.
    assert!(matches!(
        h.bus
            .replay("contextual")
            .unwrap()
            .handler(index)
            .run()
            .await,
        Err(tidings::Error::MissingState { .. })
    ));
    assert!(matches!(
        h.bus
            .replay("contextual")
            .unwrap()
            .from_id("yesterday")
            .handler(announce)
            .run()
            .await,
        Err(tidings::Error::InvalidEntryId { .. })
    ));
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

async fn one_at_a_time_handler_sees_the_stream_in_order(h: Harness) {
    let rec = Recorder::default();
    let worker = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(fast().count(32))
        .handler(ordered)
        .start()
        .await
        .unwrap();
    let events: Vec<FileUploaded> = (0..250)
        .map(|i| FileUploaded::new(format!("f{i}")))
        .collect();
    for chunk in events.chunks(50) {
        h.bus.publish_batch(chunk).await.unwrap();
    }
    assert!(eventually(Duration::from_secs(10), || rec.seen().len() == 250).await);
    let seen: Vec<String> = rec.seen().into_iter().map(|s| s.file_id).collect();
    let sent: Vec<String> = events.into_iter().map(|e| e.file_id).collect();
    assert_eq!(seen, sent);
    worker.shutdown().await.unwrap();
    settle().await;
    assert_eq!(rec.seen().len(), 250);
}

async fn worker_stopped_in_a_backlog_handles_everything_it_read(h: Harness) {
    let events: Vec<FileUploaded> = (0..400)
        .map(|i| FileUploaded::new(format!("f{i}")))
        .collect();
    for chunk in events.chunks(100) {
        h.bus.publish_batch(chunk).await.unwrap();
    }
    let sent: Vec<String> = events.into_iter().map(|e| e.file_id).collect();
    let rec = Recorder::default();
    let start = |name: &'static str| {
        h.bus
            .consumer()
            .state(rec.clone())
            .options(
                fast()
                    .name(name)
                    .count(10)
                    .prefetch(100)
                    .start_from(StartFrom::Beginning),
            )
            .handler(ordered)
            .start()
    };
    // Small reads on a long backlog, with room in the prefetch: the next
    // read is on its way when the stop comes, and what it reads must be
    // handled too.
    let first = start("first").await.unwrap();
    assert!(eventually(Duration::from_secs(10), || rec.seen().len() >= 50).await);
    first.shutdown().await.unwrap();
    let handled: Vec<String> = rec.seen().into_iter().map(|s| s.file_id).collect();
    assert!(
        handled.len() < sent.len(),
        "stopped before the end of the backlog"
    );
    assert_eq!(handled, sent[..handled.len()], "in order, without a gap");
    let key = h.bus.stream_key("contextual").unwrap();
    assert_eq!(
        h.pending(&key, "ordered").await,
        0,
        "entries read by the stopped worker were left pending"
    );

    let second = start("second").await.unwrap();
    assert!(eventually(Duration::from_secs(10), || rec.seen().len() >= 400).await);
    second.shutdown().await.unwrap();
    let all: Vec<String> = rec.seen().into_iter().map(|s| s.file_id).collect();
    assert_eq!(all, sent, "each event once, in order");
}

/// The stream entry ids of what was published, in the order returned.
fn entry_ids(published: &[tidings::Published]) -> Vec<String> {
    published
        .iter()
        .map(|p| p.entry_id.clone().expect("published to a stream"))
        .collect()
}

/// An entry id (`<ms>-<seq>`) as the pair Redis orders entries by.
fn entry_order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap();
    (ms.parse().unwrap(), seq.parse().unwrap())
}

async fn large_batch_returns_every_entry_id_in_order(h: Harness) {
    // About 1 MiB of commands: sent in many pieces while the replies of
    // the first ones already come back.
    let events: Vec<_> = (0..3000)
        .map(|i| {
            let mut e = FileUploaded::new(format!("l{i}"));
            e.filename = "x".repeat(300);
            e
        })
        .collect();
    let published = h.bus.publish_batch(&events).await.unwrap();
    assert_eq!(published.len(), 3000);
    let entry_ids = entry_ids(&published);
    assert!(entry_ids
        .windows(2)
        .all(|w| entry_order(&w[0]) < entry_order(&w[1])));
    let stats = h.bus.stream_stats("contextual").await.unwrap();
    assert_eq!(stats.length, 3000);
    assert_eq!(stats.last_entry_id.as_ref(), entry_ids.last());
}

async fn batch_with_an_event_that_cannot_be_written_publishes_nothing(h: Harness) {
    let batch: Vec<FragileFileUploaded> = ["a", "b", "poison", "d"]
        .into_iter()
        .map(|id| FragileFileUploaded {
            file_id: id.to_owned(),
        })
        .collect();
    let err = h.bus.publish_batch(&batch).await.unwrap_err();
    assert!(
        matches!(
            &err,
            tidings::Error::Encode {
                type_name: "file.uploaded",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("poison cannot be written"),
        "{err}"
    );
    let stats = h.bus.stream_stats("contextual").await.unwrap();
    assert_eq!(stats.length, 0, "events before the bad one were published");

    // The batch goes through once the bad event is left out.
    let good: Vec<_> = batch
        .into_iter()
        .filter(|e| e.file_id != "poison")
        .collect();
    assert_eq!(h.bus.publish_batch(&good).await.unwrap().len(), 3);
    let stats = h.bus.stream_stats("contextual").await.unwrap();
    assert_eq!(stats.length, 3);

    // A bad event far into a large batch, after more than a hundred
    // kilobytes of the commands before it could have been sent.
    let mut large: Vec<FragileFileUploaded> = (0..400)
        .map(|i| FragileFileUploaded {
            file_id: format!("{i:0>300}"),
        })
        .collect();
    large[390].file_id = "poison".to_owned();
    let err = h.bus.publish_batch(&large).await.unwrap_err();
    assert!(matches!(&err, tidings::Error::Encode { .. }), "{err}");
    let stats = h.bus.stream_stats("contextual").await.unwrap();
    assert_eq!(
        stats.length, 3,
        "events of the large batch before the bad one were published"
    );
    large[390].file_id = "390".to_owned();
    assert_eq!(h.bus.publish_batch(&large).await.unwrap().len(), 400);
    let stats = h.bus.stream_stats("contextual").await.unwrap();
    assert_eq!(stats.length, 403);
}

async fn batch_returns_one_entry_id_per_event_in_order(h: Harness) {
    let events: Vec<_> = (0..10)
        .map(|i| FileUploaded::new(format!("b{i}")))
        .collect();
    let published = h.bus.publish_batch(&events).await.unwrap();
    assert_eq!(published.len(), 10);
    let ids = entry_ids(&published);
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| entry_order(id));
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

/// Records under the group it runs in, whichever the consumer chose.
#[handler(group = "attribute-group")]
async fn in_any_group(e: FileUploaded, ctx: Context, State(rec): State<Recorder>) -> HandlerResult {
    rec.record(ctx.group().unwrap_or("none"), &e.file_id, None, &ctx);
    Ok(())
}

async fn one_handler_in_two_groups_chosen_at_run_time_sees_each_event_once_per_group(h: Harness) {
    let rec = Recorder::default();
    let (eu, us) = (String::from("indexer-eu"), "indexer-us");
    let worker = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(fast())
        .handler(in_any_group)
        .group(eu)
        .handler(in_any_group)
        .group(us)
        .concurrency(2)
        .start()
        .await
        .unwrap();
    for i in 0..5 {
        h.bus
            .publish(&FileUploaded::new(format!("f{i}")))
            .await
            .unwrap();
    }
    for group in ["indexer-eu", "indexer-us"] {
        let mut ids: Vec<String> = rec
            .wait_for(group, 5)
            .await
            .into_iter()
            .map(|s| s.file_id)
            .collect();
        ids.sort();
        assert_eq!(ids, ["f0", "f1", "f2", "f3", "f4"], "{group}");
    }
    settle().await;
    assert_eq!(rec.seen().len(), 10, "each event once per group");
    let stats = h.bus.stream_stats("contextual").await.unwrap();
    let mut groups: Vec<&str> = stats.groups.iter().map(|g| g.name.as_str()).collect();
    groups.sort();
    assert_eq!(
        groups,
        ["indexer-eu", "indexer-us"],
        "the attribute's group is not created"
    );
    worker.shutdown().await.unwrap();
}

async fn group_set_before_any_handler_is_the_group_of_every_handler_without_one(h: Harness) {
    let rec = Recorder::default();
    let worker = h
        .bus
        .consumer()
        .state(rec.clone())
        .options(fast())
        .group("per-test")
        .handler(in_any_group)
        .handler(index)
        .group("indexer-of-this-test")
        .start()
        .await
        .unwrap();
    h.bus.publish(&FileUploaded::new("f0")).await.unwrap();
    assert_eq!(rec.wait_for("per-test", 1).await.len(), 1);
    assert_eq!(rec.wait_for("index", 1).await[0].file_id, "f0");
    let stats = h.bus.stream_stats("contextual").await.unwrap();
    let mut groups: Vec<&str> = stats.groups.iter().map(|g| g.name.as_str()).collect();
    groups.sort();
    assert_eq!(groups, ["indexer-of-this-test", "per-test"]);
    worker.shutdown().await.unwrap();
}

async fn invalid_group_chosen_at_run_time_fails_at_start(h: Harness) {
    let long = "g".repeat(129);
    for bad in [
        "",
        "eu:west",
        "eu west",
        "{eu}",
        "eu*",
        "eu\\west",
        long.as_str(),
    ] {
        let err = h
            .bus
            .consumer()
            .state(Recorder::default())
            .handler(in_any_group)
            .group(bad)
            .start()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, tidings::Error::InvalidName(e) if e.to_string().contains("group")),
            "{bad:?}: {err}"
        );
    }
    // Nothing was created for them.
    let stats = h.bus.stream_stats("contextual").await.unwrap();
    assert!(stats.groups.is_empty(), "{:?}", stats.groups);
}

#[handler(group = "retrying")]
async fn fails_twice(e: FileUploaded, ctx: Context, State(p): State<Probe>) -> HandlerResult {
    if p.attempt(&e.file_id) <= 2 {
        return Err(tidings::retry(format!("{} not ready yet", e.file_id)));
    }
    p.handle(&e.file_id, &ctx);
    Ok(())
}

#[handler(group = "doomed")]
async fn always_fails(e: FileUploaded, _ctx: Context, State(p): State<Probe>) -> HandlerResult {
    p.attempt(&e.file_id);
    Err("disk full".into())
}

#[handler(group = "rejecting")]
async fn rejects(e: FileUploaded, _ctx: Context, State(p): State<Probe>) -> HandlerResult {
    p.attempt(&e.file_id);
    Err(fatal(format!("{} is not a file we take", e.file_id)))
}

#[handler(group = "panicky")]
async fn panics_once(e: FileUploaded, ctx: Context, State(p): State<Probe>) -> HandlerResult {
    if p.attempt(&e.file_id) == 1 {
        panic!("boom on {}", e.file_id);
    }
    p.handle(&e.file_id, &ctx);
    Ok(())
}

#[handler(group = "picky")]
async fn picky(e: FileUploaded, ctx: Context, State(p): State<Probe>) -> HandlerResult {
    p.attempt(&e.file_id);
    if e.file_id == "bad" {
        return Err("bad stays bad".into());
    }
    p.handle(&e.file_id, &ctx);
    Ok(())
}

#[handler(group = "fixable")]
async fn until_fixed(e: FileUploaded, ctx: Context, State(p): State<Probe>) -> HandlerResult {
    p.attempt(&e.file_id);
    if !p.is_fixed() {
        return Err(fatal("not fixed yet"));
    }
    p.handle(&e.file_id, &ctx);
    Ok(())
}

#[handler(group = "deduped")]
async fn once_per_event(e: FileUploaded, ctx: Context, State(p): State<Probe>) -> HandlerResult {
    p.handle(&e.file_id, &ctx);
    Ok(())
}

#[handler(group = "sluggish", concurrency = 4)]
async fn sluggish(e: FileUploaded, ctx: Context, State(p): State<Probe>) -> HandlerResult {
    p.start();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    p.handle(&e.file_id, &ctx);
    Ok(())
}

#[handler(group = "blocked", concurrency = 64)]
async fn blocked(e: FileUploaded, ctx: Context, State(p): State<Probe>) -> HandlerResult {
    p.start();
    p.pass_gate().await;
    p.handle(&e.file_id, &ctx);
    Ok(())
}

fn quick_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .attempts(attempts)
        .backoff(Duration::from_millis(10))
        .max_delay(Duration::from_millis(50))
}

async fn wait_dead_letters(h: &Harness, n: usize) -> Vec<tidings::DeadLetter> {
    let dlq = h.bus.dead_letters("contextual").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let letters = dlq.list(100).await.unwrap();
        if letters.len() >= n || tokio::time::Instant::now() > deadline {
            return letters;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn failing_handler_is_retried_until_it_succeeds(h: Harness) {
    let p = Probe::default();
    let worker = h
        .bus
        .consumer()
        .state(p.clone())
        .options(fast())
        .handler(fails_twice)
        .retry(quick_retries(3))
        .start()
        .await
        .unwrap();
    h.bus.publish(&FileUploaded::new("r1")).await.unwrap();
    assert!(eventually(Duration::from_secs(10), || p.handled_count("r1") == 1).await);
    settle().await;
    worker.shutdown().await.unwrap();
    assert_eq!(p.attempts("r1"), 3);
    assert_eq!(p.handled_count("r1"), 1);
    assert_eq!(
        h.pending(&h.bus.stream_key("contextual").unwrap(), "retrying")
            .await,
        0
    );
    assert_eq!(
        h.bus
            .dead_letters("contextual")
            .unwrap()
            .len()
            .await
            .unwrap(),
        0
    );
}

async fn handler_that_keeps_failing_goes_to_dead_letters_after_the_last_attempt(h: Harness) {
    let p = Probe::default();
    let worker = h
        .bus
        .consumer()
        .state(p.clone())
        .options(fast())
        .handler(always_fails)
        .retry(quick_retries(3))
        .start()
        .await
        .unwrap();
    let published = h
        .bus
        .publish_with(
            &FileUploaded::new("d1"),
            tidings::Meta::default().correlation_id("order-9"),
        )
        .await
        .unwrap();
    let letters = wait_dead_letters(&h, 1).await;
    settle().await;
    worker.shutdown().await.unwrap();
    assert_eq!(p.attempts("d1"), 3, "one attempt and two retries");
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!(l.group, "doomed");
    assert_eq!(l.handler.as_deref(), Some("always_fails"));
    assert!(l.error.contains("disk full"), "{}", l.error);
    assert_eq!(l.attempts, 3);
    assert_eq!(Some(l.entry_id.clone()), published.entry_id);
    let (first, last) = (l.first_failure.unwrap(), l.last_failure.unwrap());
    assert!(first < last, "{first} !< {last}");
    let env = l.envelope.as_ref().unwrap();
    assert_eq!(env.id, published.event_id.to_string());
    assert_eq!(env.correlation_id.as_deref(), Some("order-9"));
    assert!(l.fields.iter().any(|(k, _)| k == "data"));
    assert_eq!(
        h.pending(&h.bus.stream_key("contextual").unwrap(), "doomed")
            .await,
        0
    );
}

async fn fatal_error_goes_to_dead_letters_without_a_retry(h: Harness) {
    let p = Probe::default();
    let worker = h
        .bus
        .consumer()
        .state(p.clone())
        .options(fast())
        .handler(rejects)
        .retry(quick_retries(5))
        .start()
        .await
        .unwrap();
    h.bus.publish(&FileUploaded::new("f1")).await.unwrap();
    let letters = wait_dead_letters(&h, 1).await;
    settle().await;
    worker.shutdown().await.unwrap();
    assert_eq!(p.attempts("f1"), 1);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, 1);
    assert!(letters[0].error.contains("not a file we take"));
}

async fn panicking_handler_counts_as_an_error_and_the_worker_survives(h: Harness) {
    let p = Probe::default();
    let worker = h
        .bus
        .consumer()
        .state(p.clone())
        .options(fast())
        .handler(panics_once)
        .retry(quick_retries(2))
        .start()
        .await
        .unwrap();
    h.bus.publish(&FileUploaded::new("p1")).await.unwrap();
    h.bus.publish(&FileUploaded::new("p2")).await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || p.handled_count("p1") == 1
            && p.handled_count("p2") == 1)
        .await,
        "handled: {:?}",
        p.handled()
    );
    worker.shutdown().await.unwrap();
    assert_eq!(p.attempts("p1"), 2);
    assert_eq!(
        h.pending(&h.bus.stream_key("contextual").unwrap(), "panicky")
            .await,
        0
    );
}

async fn waiting_for_a_retry_does_not_hold_up_other_events(h: Harness) {
    let p = Probe::default();
    let backoff = Duration::from_secs(2);
    let worker = h
        .bus
        .consumer()
        .state(p.clone())
        .options(fast())
        .handler(picky)
        .retry(
            RetryPolicy::default()
                .attempts(2)
                .backoff(backoff)
                .jitter(false),
        )
        .start()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    h.bus.publish(&FileUploaded::new("bad")).await.unwrap();
    for i in 0..5 {
        h.bus
            .publish(&FileUploaded::new(format!("good{i}")))
            .await
            .unwrap();
    }
    // `picky` runs one delivery at a time; the good ones pass while `bad`
    // waits for its retry.
    assert!(
        eventually(Duration::from_secs(10), || (0..5)
            .all(|i| p.handled_count(&format!("good{i}")) == 1))
        .await
    );
    assert!(started.elapsed() < backoff, "{:?}", started.elapsed());
    assert_eq!(p.attempts("bad"), 1);
    let letters = wait_dead_letters(&h, 1).await;
    assert_eq!(p.attempts("bad"), 2);
    assert_eq!(letters[0].attempts, 2);
    worker.shutdown().await.unwrap();
}

async fn attempts_made_by_a_stopped_worker_count_toward_the_policy(h: Harness) {
    let p = Probe::default();
    let key = h.bus.stream_key("contextual").unwrap();
    let a = h
        .bus
        .consumer()
        .state(p.clone())
        .options(fast().name("a"))
        .handler(always_fails)
        .retry(
            RetryPolicy::default()
                .attempts(100)
                .backoff(Duration::from_millis(20))
                .jitter(false),
        )
        .start()
        .await
        .unwrap();
    h.bus.publish(&FileUploaded::new("c1")).await.unwrap();
    assert!(eventually(Duration::from_secs(10), || p.attempts("c1") >= 2).await);
    a.shutdown().await.unwrap();
    // Each failed attempt is in the entry's delivery counter.
    let made = p.attempts("c1");
    assert_eq!(h.deliveries(&key, "doomed").await, [made]);

    // `b` allows one attempt more than `a` made: it makes that one only.
    let b = h
        .bus
        .consumer()
        .state(p.clone())
        .options(
            fast()
                .name("b")
                .claim_idle(Some(Duration::from_millis(200)))
                .claim_interval(Duration::from_millis(50)),
        )
        .handler(always_fails)
        .retry(quick_retries(made + 1))
        .start()
        .await
        .unwrap();
    let letters = wait_dead_letters(&h, 1).await;
    settle().await;
    b.shutdown().await.unwrap();
    assert_eq!(p.attempts("c1"), made + 1, "b made the last attempt only");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, made + 1);
}

async fn dead_letters_are_listed_retried_with_the_same_event_id_and_purged(h: Harness) {
    let p = Probe::default();
    let worker = h
        .bus
        .consumer()
        .state(p.clone())
        .options(fast())
        .handler(until_fixed)
        .start()
        .await
        .unwrap();
    let mut published = Vec::new();
    for i in 0..4 {
        published.push(
            h.bus
                .publish(&FileUploaded::new(format!("x{i}")))
                .await
                .unwrap(),
        );
    }
    let dlq = h.bus.dead_letters("contextual").unwrap();
    let letters = wait_dead_letters(&h, 4).await;
    assert_eq!(letters.len(), 4);
    assert!(p.handled().is_empty());

    p.fix();
    // Dead letters are written in the order handlers give up, which for
    // concurrent deliveries need not be the stream's.
    let x0 = letters
        .iter()
        .find(|l| Some(&l.entry_id) == published[0].entry_id.as_ref())
        .unwrap();
    let new_entry = dlq.retry(&x0.id).await.unwrap();
    assert!(new_entry.is_some());
    assert_eq!(dlq.retry(&x0.id).await.unwrap(), None, "already retried");
    assert!(eventually(Duration::from_secs(10), || p.handled_count("x0") == 1).await);
    assert_eq!(p.handled()[0].1, published[0].event_id.to_string());

    let mut seen = Vec::new();
    let retried = dlq
        .retry_all_with(|progress| seen.push((progress.done, progress.total)))
        .await
        .unwrap();
    assert_eq!(retried, 3);
    assert_eq!(seen.first(), Some(&(0, 3)), "{seen:?}");
    assert_eq!(seen.last(), Some(&(3, 3)), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    assert!(eventually(Duration::from_secs(10), || p.handled().len() == 4).await);
    let mut handled_ids: Vec<_> = p.handled().into_iter().map(|(_, id)| id).collect();
    let mut published_ids: Vec<_> = published.iter().map(|p| p.event_id.to_string()).collect();
    handled_ids.sort();
    published_ids.sort();
    assert_eq!(handled_ids, published_ids);
    assert_eq!(dlq.len().await.unwrap(), 0);
    worker.shutdown().await.unwrap();

    // Purge: two new dead letters, gone in one call.
    let p2 = Probe::default();
    let worker = h
        .bus
        .consumer()
        .state(p2.clone())
        .options(fast())
        .handler(until_fixed)
        .start()
        .await
        .unwrap();
    h.bus.publish(&FileUploaded::new("y0")).await.unwrap();
    h.bus.publish(&FileUploaded::new("y1")).await.unwrap();
    assert_eq!(wait_dead_letters(&h, 2).await.len(), 2);
    worker.shutdown().await.unwrap();
    assert_eq!(dlq.purge().await.unwrap(), 2);
    assert!(dlq.is_empty().await.unwrap());
}

async fn retried_dead_letter_reaches_only_the_group_that_gave_up(h: Harness) {
    let p = Probe::default();
    let key = h.bus.stream_key("contextual").unwrap();
    // No inbox: nothing but the retry itself keeps `deduped` from the event.
    let worker = h
        .bus
        .consumer()
        .state(p.clone())
        .options(fast())
        .handler(once_per_event)
        .handler(until_fixed)
        .start()
        .await
        .unwrap();
    let published = h.bus.publish(&FileUploaded::new("g1")).await.unwrap();
    let letters = wait_dead_letters(&h, 1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].group, "fixable");
    assert!(eventually(Duration::from_secs(10), || p.handled_count("g1") == 1).await);
    assert!(h.all_acked(&key, "deduped", Duration::from_secs(10)).await);

    p.fix();
    let dlq = h.bus.dead_letters("contextual").unwrap();
    let entry = dlq.retry(&letters[0].id).await.unwrap().unwrap();
    // On the wire: the original fields, the same event id, and the group.
    let raw = h.bus.range("contextual", &entry, 1).await.unwrap();
    let field = |name: &str| {
        raw[0]
            .fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(field("dlqgroup").as_deref(), Some("fixable"));
    assert_eq!(field("id"), Some(published.event_id.to_string()));
    assert!(raw[0].fields.iter().all(|(k, _)| !k.starts_with("dlq_")));

    assert!(eventually(Duration::from_secs(10), || p.handled_count("g1") == 2).await);
    settle().await;
    // Both groups read it: `deduped` acknowledged it without handling it.
    assert!(h.all_acked(&key, "deduped", Duration::from_secs(10)).await);
    assert!(h.all_acked(&key, "fixable", Duration::from_secs(10)).await);
    worker.shutdown().await.unwrap();
    assert_eq!(
        p.handled_count("g1"),
        2,
        "deduped once, fixable once after the retry: {:?}",
        p.handled()
    );
    assert_eq!(p.attempts("g1"), 2, "fixable failed once, then succeeded");
    assert!(p
        .handled()
        .iter()
        .all(|(_, id)| *id == published.event_id.to_string()));
    assert!(dlq.is_empty().await.unwrap());
}

async fn group_that_fails_again_on_an_entry_updates_its_dead_letter(h: Harness) {
    let p = Probe::default();
    let key = h.bus.stream_key("contextual").unwrap();
    let start = || {
        h.bus
            .consumer()
            .state(p.clone())
            .options(fast())
            .handler(until_fixed)
            .handler(rejects)
            .start()
    };
    let worker = start().await.unwrap();
    let published = h.bus.publish(&FileUploaded::new("u1")).await.unwrap();
    let first = wait_dead_letters(&h, 2).await;
    assert_eq!(first.len(), 2, "one per group: {first:?}");
    worker.shutdown().await.unwrap();

    // Both groups read the stream again from its start, and fail again.
    h.rewind(&key, "fixable").await;
    h.rewind(&key, "rejecting").await;
    let worker = start().await.unwrap();
    assert!(eventually(Duration::from_secs(10), || p.attempts("u1") == 4).await);
    assert!(h.all_acked(&key, "fixable", Duration::from_secs(10)).await);
    assert!(
        h.all_acked(&key, "rejecting", Duration::from_secs(10))
            .await
    );
    settle().await;
    worker.shutdown().await.unwrap();

    let dlq = h.bus.dead_letters("contextual").unwrap();
    let letters = dlq.list(100).await.unwrap();
    assert_eq!(letters.len(), 2, "one per entry and group: {letters:#?}");
    for group in ["fixable", "rejecting"] {
        let before = first.iter().find(|l| l.group == group).unwrap();
        let after = letters.iter().find(|l| l.group == group).unwrap();
        assert_eq!(after.entry_id, before.entry_id);
        assert_eq!(Some(after.entry_id.clone()), published.entry_id);
        assert_eq!(after.attempts, 2, "the attempts of both runs");
        assert_eq!(after.first_failure, before.first_failure);
        assert!(after.last_failure >= before.last_failure);
    }

    // The index follows a retry: the letter that went back and failed
    // again is the group's one dead letter again.
    let rejected = letters.iter().find(|l| l.group == "rejecting").unwrap();
    assert!(dlq.retry(&rejected.id).await.unwrap().is_some());
    let worker = start().await.unwrap();
    assert!(eventually(Duration::from_secs(10), || p.attempts("u1") == 5).await);
    assert!(
        h.all_acked(&key, "rejecting", Duration::from_secs(10))
            .await
    );
    settle().await;
    worker.shutdown().await.unwrap();
    let letters = dlq.list(100).await.unwrap();
    assert_eq!(letters.len(), 2, "{letters:#?}");
    assert_eq!(
        p.attempts("u1"),
        5,
        "only `rejecting` ran the retried entry"
    );
}

async fn dead_letters_are_retried_and_purged_by_id_or_by_group(h: Harness) {
    let p = Probe::default();
    let start = || {
        h.bus
            .consumer()
            .state(p.clone())
            .options(fast())
            .handler(until_fixed)
            .handler(rejects)
            .start()
    };
    let worker = start().await.unwrap();
    for id in ["a", "b", "c"] {
        h.bus.publish(&FileUploaded::new(id)).await.unwrap();
    }
    let letters = wait_dead_letters(&h, 6).await;
    assert_eq!(letters.len(), 6);
    worker.shutdown().await.unwrap();
    let dlq = h.bus.dead_letters("contextual").unwrap();

    // What cannot be an id or a group is refused before anything is done.
    for bad in ["contextual", "1795490842886", "1-x", "-1", ""] {
        let err = dlq.purge_ids(&["1-0", bad]).await.unwrap_err();
        assert!(
            matches!(&err, tidings::Error::InvalidEntryId { id, .. } if id == bad),
            "{err}"
        );
        assert!(
            err.to_string().contains("tidings:{contextual}:dlq"),
            "{err}"
        );
        let err = dlq.retry(bad).await.unwrap_err();
        assert!(
            matches!(err, tidings::Error::InvalidEntryId { .. }),
            "{err}"
        );
    }
    for bad in ["a:b", "a b", "*", ""] {
        let err = dlq.purge_group(bad).await.unwrap_err();
        assert!(matches!(err, tidings::Error::InvalidName(_)), "{err}");
        let err = dlq.retry_group(bad).await.unwrap_err();
        assert!(matches!(err, tidings::Error::InvalidName(_)), "{err}");
    }
    assert_eq!(dlq.len().await.unwrap(), 6);

    // By id: one of each group, and an id that is no dead letter.
    let of = |group: &str| letters.iter().find(|l| l.group == group).unwrap();
    let ids = [
        of("fixable").id.as_str(),
        of("rejecting").id.as_str(),
        "1-0",
    ];
    assert_eq!(dlq.purge_ids(&ids).await.unwrap(), 2);
    assert_eq!(dlq.purge_ids(&ids).await.unwrap(), 0, "gone already");
    assert_eq!(dlq.len().await.unwrap(), 4);

    // By group.
    assert_eq!(dlq.purge_group("nobody").await.unwrap(), 0);
    assert_eq!(dlq.purge_group("rejecting").await.unwrap(), 2);
    let left = dlq.list(100).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|l| l.group == "fixable"), "{left:#?}");

    // Retry by group: only that group's dead letters go back, and only
    // that group handles them.
    p.fix();
    assert_eq!(dlq.retry_group("rejecting").await.unwrap(), 0);
    assert_eq!(dlq.len().await.unwrap(), 2);
    let attempts_before: u32 = ["a", "b", "c"].iter().map(|k| p.attempts(k)).sum();
    assert_eq!(dlq.retry_group("fixable").await.unwrap(), 2);
    assert!(dlq.is_empty().await.unwrap());
    let worker = start().await.unwrap();
    assert!(eventually(Duration::from_secs(10), || p.handled_len() == 2).await);
    let key = h.bus.stream_key("contextual").unwrap();
    assert!(
        h.all_acked(&key, "rejecting", Duration::from_secs(10))
            .await
    );
    settle().await;
    worker.shutdown().await.unwrap();
    let attempts_after: u32 = ["a", "b", "c"].iter().map(|k| p.attempts(k)).sum();
    assert_eq!(
        attempts_after,
        attempts_before + 2,
        "`fixable` ran each retried entry once, `rejecting` none"
    );
    assert!(dlq.is_empty().await.unwrap(), "nothing failed again");
}

async fn inbox_skips_an_event_the_group_already_handled(h: Harness) {
    let p = Probe::default();
    let worker = h
        .bus
        .consumer()
        .state(p.clone())
        .options(fast().inbox(Some(Duration::from_secs(60))))
        .handler(once_per_event)
        .handler(until_fixed)
        .start()
        .await
        .unwrap();
    let published = h.bus.publish(&FileUploaded::new("i1")).await.unwrap();
    // `deduped` handles it; `fixable` sends it to dead letters.
    assert_eq!(wait_dead_letters(&h, 1).await.len(), 1);
    assert!(eventually(Duration::from_secs(10), || p.handled_count("i1") == 1).await);
    // The mark is written with the acknowledgement, after the handler
    // returned: a copy read before that would be handled again.
    let key = h.bus.stream_key("contextual").unwrap();
    assert!(h.all_acked(&key, "deduped", Duration::from_secs(10)).await);
    p.fix();
    // The retried event goes back to the stream for `fixable` only.
    assert_eq!(
        h.bus
            .dead_letters("contextual")
            .unwrap()
            .retry_all()
            .await
            .unwrap(),
        1
    );
    assert!(eventually(Duration::from_secs(10), || p.handled_count("i1") >= 2).await);
    settle().await;
    worker.shutdown().await.unwrap();
    let handled = p.handled();
    assert_eq!(
        handled.len(),
        2,
        "deduped handled it once, fixable once: {handled:?}"
    );
    assert!(handled
        .iter()
        .all(|(_, id)| *id == published.event_id.to_string()));
    assert_eq!(
        h.pending(&key, "deduped").await,
        0,
        "skipped entries are acked"
    );
}

async fn live_slow_handler_keeps_its_entry_from_other_workers(h: Harness) {
    let p = Probe::default();
    let claiming = |name: &str| {
        fast()
            .name(name)
            .claim_idle(Some(Duration::from_millis(300)))
            .claim_interval(Duration::from_millis(50))
            .heartbeat(Duration::from_millis(50))
    };
    let a = h
        .bus
        .consumer()
        .state(p.clone())
        .options(claiming("a"))
        .handler(sluggish)
        .start()
        .await
        .unwrap();
    h.bus.publish(&FileUploaded::new("s1")).await.unwrap();
    assert!(eventually(Duration::from_secs(10), || p.started() == 1).await);
    let b = h
        .bus
        .consumer()
        .state(p.clone())
        .options(claiming("b"))
        .handler(sluggish)
        .start()
        .await
        .unwrap();
    // The handler runs 1.2 s, four times the idle time.
    assert!(eventually(Duration::from_secs(10), || p.handled_count("s1") == 1).await);
    settle().await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    assert_eq!(
        p.started(),
        1,
        "another worker claimed an entry being handled"
    );
    assert_eq!(p.handled_count("s1"), 1);
}

async fn slow_handler_bounds_the_entries_read_to_the_prefetch(h: Harness) {
    const PREFETCH: usize = 5;
    let p = Probe::default();
    let key = h.bus.stream_key("contextual").unwrap();
    let worker = h
        .bus
        .consumer()
        .state(p.clone())
        .options(fast().count(2).prefetch(PREFETCH))
        .handler(blocked)
        .start()
        .await
        .unwrap();
    let events: Vec<_> = (0..40)
        .map(|i| FileUploaded::new(format!("b{i}")))
        .collect();
    h.bus.publish_batch(&events).await.unwrap();
    assert!(eventually(Duration::from_secs(10), || p.started() == PREFETCH).await);
    // Give the worker time to read more if it would.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(p.started(), PREFETCH);
    assert_eq!(
        h.pending(&key, "blocked").await,
        PREFETCH,
        "entries read from the stream and not finished"
    );
    p.open_gate();
    assert!(eventually(Duration::from_secs(10), || p.handled().len() == 40).await);
    worker.shutdown().await.unwrap();
    assert_eq!(h.pending(&key, "blocked").await, 0);
}

async fn concurrency_set_at_registration_bounds_the_handler(h: Harness) {
    let p = Probe::default();
    let worker = h
        .bus
        .consumer()
        .state(p.clone())
        .options(fast())
        .handler(blocked)
        .concurrency(3)
        .start()
        .await
        .unwrap();
    let events: Vec<_> = (0..10)
        .map(|i| FileUploaded::new(format!("c{i}")))
        .collect();
    h.bus.publish_batch(&events).await.unwrap();
    assert!(eventually(Duration::from_secs(10), || p.started() == 3).await);
    // Give the worker time to start more if it would (its attribute says 64).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(p.started(), 3);
    p.open_gate();
    assert!(eventually(Duration::from_secs(10), || p.handled().len() == 10).await);
    worker.shutdown().await.unwrap();
}

tidings_testkit::transport_suite! {
    transports: {
        memory => Harness::memory(),
        redis => Harness::redis().await,
    },
    tests: [
        fan_out_to_two_groups_each_sees_every_event,
        one_group_shared_by_two_workers_handles_each_event_once,
        new_group_starts_at_new_events_unless_told_to_start_from_the_beginning,
        shutdown_waits_for_in_flight_handlers_and_acks_them,
        unacked_event_is_redelivered_to_another_consumer,
        decode_error_goes_to_dead_letters_and_the_worker_goes_on,
        failing_handler_is_retried_until_it_succeeds,
        handler_that_keeps_failing_goes_to_dead_letters_after_the_last_attempt,
        fatal_error_goes_to_dead_letters_without_a_retry,
        panicking_handler_counts_as_an_error_and_the_worker_survives,
        waiting_for_a_retry_does_not_hold_up_other_events,
        attempts_made_by_a_stopped_worker_count_toward_the_policy,
        dead_letters_are_listed_retried_with_the_same_event_id_and_purged,
        inbox_skips_an_event_the_group_already_handled,
        retried_dead_letter_reaches_only_the_group_that_gave_up,
        group_that_fails_again_on_an_entry_updates_its_dead_letter,
        dead_letters_are_retried_and_purged_by_id_or_by_group,
        live_slow_handler_keeps_its_entry_from_other_workers,
        slow_handler_bounds_the_entries_read_to_the_prefetch,
        old_version_is_upcast_before_the_handler_sees_it,
        returned_event_is_published_with_causation_and_correlation,
        tenants_are_isolated_on_streams_and_channels,
        no_name_or_pattern_reaches_another_tenant,
        meta_carries_extensions_a_chosen_id_and_batch_attributes,
        a_group_is_created_moved_listed_and_deleted_from_code,
        follow_yields_the_entries_added_after_its_start_in_order,
        streams_lists_the_streams_of_its_own_scope_only,
        trimming_keeps_what_a_group_has_not_read_and_applies_the_bound_otherwise,
        replay_hands_a_range_to_handlers_without_touching_a_group,
        pattern_subscription_receives_matching_types_only,
        event_with_stream_and_channel_goes_to_both,
        batch_returns_one_entry_id_per_event_in_order,
        batch_with_an_event_that_cannot_be_written_publishes_nothing,
        large_batch_returns_every_entry_id_in_order,
        one_at_a_time_handler_sees_the_stream_in_order,
        worker_stopped_in_a_backlog_handles_everything_it_read,
        missing_state_fails_at_start,
        one_handler_in_two_groups_chosen_at_run_time_sees_each_event_once_per_group,
        group_set_before_any_handler_is_the_group_of_every_handler_without_one,
        invalid_group_chosen_at_run_time_fails_at_start,
        concurrency_set_at_registration_bounds_the_handler,
    ],
}

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

/// A handler called directly hands its error to `?` in the functions tests
/// and `main` are written as, fatal or not.
#[tokio::test]
async fn handler_error_goes_through_question_mark_into_boxed_errors() {
    async fn boxed(p: Probe) -> Result<(), Box<dyn std::error::Error>> {
        always_fails(FileUploaded::new("b"), Context::detached(), State(p)).await?;
        Ok(())
    }
    async fn boxed_send(p: Probe) -> Result<(), Box<dyn std::error::Error + Send>> {
        rejects(FileUploaded::new("s"), Context::detached(), State(p)).await?;
        Ok(())
    }
    async fn boxed_send_sync(p: Probe) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        always_fails(FileUploaded::new("ss"), Context::detached(), State(p))
            .await
            .map_err(tidings::HandlerError::into_boxed)?;
        Ok(())
    }
    let p = Probe::default();
    assert_eq!(boxed(p.clone()).await.unwrap_err().to_string(), "disk full");
    let fatal = boxed_send(p.clone()).await.unwrap_err();
    assert_eq!(fatal.to_string(), "s is not a file we take");
    assert!(fatal.downcast_ref::<tidings::Fatal>().is_some());
    let err = boxed_send_sync(p.clone()).await.unwrap_err();
    assert_eq!(err.to_string(), "disk full");
    // A handler's error still derefs to the error inside.
    let err = rejects(FileUploaded::new("d"), Context::detached(), State(p))
        .await
        .unwrap_err();
    assert!(tidings::is_fatal(&err));
    assert!(err.downcast_ref::<tidings::Fatal>().is_some());
}

#[test]
fn redis_harness_restarts_on_the_same_port() {
    let mut server = tidings_testkit::RedisServer::start();
    let port = server.port();
    assert_ne!(port, 6379);
    server.restart();
    assert_eq!(server.port(), port);
    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let pong: String = ::redis::cmd("PING").query(&mut conn).unwrap();
    assert_eq!(pong, "PONG");
}

/// Waits until every group of the stream read up to `entry` and has nothing
/// pending: each handled, buried or skipped it.
async fn all_groups_done_with(h: &Harness, entry: &str) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = h.bus.stream_stats("contextual").await.unwrap();
        if stats
            .groups
            .iter()
            .all(|g| g.last_delivered_id == entry && g.pending == 0)
        {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Redis only (the in-memory broker holds envelopes only): an entry that is
/// not an event, dead-lettered by two groups and retried for one of them,
/// goes back to that group only; the burial step of the other acknowledges
/// it without a dead letter, though no envelope says whom it is for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_dead_poison_entry_goes_back_to_its_group_only() {
    let h = Harness::redis().await;
    let key = h.bus.stream_key("contextual").unwrap();
    let p = Probe::default();
    let worker = h
        .bus
        .consumer()
        .state(p.clone())
        .options(fast())
        .handler(once_per_event)
        .handler(until_fixed)
        .start()
        .await
        .unwrap();
    let mut conn = h.server.as_ref().unwrap().connection().await;
    let poison: String = ::redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("hello")
        .arg("world")
        .query_async(&mut conn)
        .await
        .unwrap();
    let letters = wait_dead_letters(&h, 2).await;
    assert_eq!(letters.len(), 2, "{letters:#?}");
    assert!(letters.iter().all(|l| l.entry_id == poison));

    let dlq = h.bus.dead_letters("contextual").unwrap();
    let fixable = letters.iter().find(|l| l.group == "fixable").unwrap();
    let entry = dlq.retry(&fixable.id).await.unwrap().unwrap();
    assert!(all_groups_done_with(&h, &entry).await);
    settle().await;
    worker.shutdown().await.unwrap();

    let letters = dlq.list(100).await.unwrap();
    assert_eq!(letters.len(), 2, "{letters:#?}");
    let again = letters.iter().find(|l| l.group == "fixable").unwrap();
    assert_eq!(again.entry_id, entry, "`fixable` buried the retried entry");
    assert!(again
        .fields
        .contains(&("hello".to_owned(), b"world".to_vec())));
    let kept = letters.iter().find(|l| l.group == "deduped").unwrap();
    assert_eq!(
        kept.entry_id, poison,
        "`deduped` left no second dead letter"
    );
    assert!(p.handled().is_empty());
}

/// Redis only: a key of another type is a server error, returned as it
/// came (not retried as an outage), for one event and for a batch; the
/// connections it came back on stay in step, so the next publishes work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_onto_a_key_that_is_not_a_stream_fails_and_the_bus_goes_on() {
    let h = Harness::redis().await;
    let key = h.bus.stream_key("contextual").unwrap();
    let mut conn = h.server.as_ref().unwrap().connection().await;
    let () = ::redis::cmd("SET")
        .arg(&key)
        .arg("not a stream")
        .query_async(&mut conn)
        .await
        .unwrap();

    let wrong_type = |e: &tidings::Error| matches!(e, tidings::Error::Transport(t) if t.to_string().contains("WRONGTYPE"));
    let one = h.bus.publish(&FileUploaded::new("w1")).await.unwrap_err();
    assert!(wrong_type(&one), "{one}");
    let batch = [FileUploaded::new("w2"), FileUploaded::new("w3")];
    let many = h.bus.publish_batch(&batch).await.unwrap_err();
    assert!(wrong_type(&many), "{many}");
    // Both at once: whichever finds the own connection busy takes the
    // shared one, and both report the same error.
    let w4 = FileUploaded::new("w4");
    let (a, b) = tokio::join!(h.bus.publish(&w4), h.bus.publish_batch(&batch));
    assert!(wrong_type(&a.unwrap_err()));
    assert!(wrong_type(&b.unwrap_err()));

    let () = ::redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let first = h.bus.publish(&FileUploaded::new("r1")).await.unwrap();
    let rest = h.bus.publish_batch(&batch).await.unwrap();
    let mut ids = entry_ids(std::slice::from_ref(&first));
    ids.extend(entry_ids(&rest));
    let stored: Vec<(String, Vec<(String, String)>)> = ::redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let stored: Vec<String> = stored.into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        stored, ids,
        "only the publishes after the DEL are in the stream"
    );
}
