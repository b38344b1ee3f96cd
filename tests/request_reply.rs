//! Request and response over events (`bus.request`, `bus.wait_for`),
//! written once and run against every transport, then the Redis-only
//! claims: one reader and no Redis call per request, a hostile `replyto`,
//! a restart.

mod support;

use std::future::IntoFuture;
use std::time::Duration;

use support::{eventually, Harness};
use tidings::{event, handler, Bus, Context, Error, HandlerResult, Meta, StreamTransport};

/// Asks for the length of a text.
#[event(stream = "rr-texts", version = 1, reply = TextMeasured)]
#[derive(Debug, Clone)]
pub struct MeasureText {
    /// Who asks: the reply names it back.
    pub requester: String,
    /// The text.
    pub text: String,
}

/// The reply: the text and requester echoed, and the length.
#[event(stream = "rr-texts", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct TextMeasured {
    /// Who asked.
    pub requester: String,
    /// The text measured.
    pub text: String,
    /// Its length in bytes.
    pub length: usize,
}

#[handler(group = "measurer", concurrency = 8)]
async fn measure(req: MeasureText, _ctx: Context) -> HandlerResult<TextMeasured> {
    Ok(TextMeasured {
        length: req.text.len(),
        requester: req.requester,
        text: req.text,
    })
}

/// Another group that sees every reply on its own stream.
#[handler(group = "audit")]
async fn audit(
    e: TextMeasured,
    ctx: Context,
    tidings::State(seen): tidings::State<support::Recorder>,
) -> HandlerResult {
    seen.record("audit", &e.text, None, &ctx);
    Ok(())
}

/// A responder that handles the requests already in the stream too.
async fn responder_from_the_start(h: &Harness) -> tidings::Worker {
    h.bus
        .consumer()
        .options(tidings::ConsumerOptions::default().start_from(tidings::StartFrom::Beginning))
        .handler(measure)
        .start()
        .await
        .unwrap()
}

fn text(requester: &str, text: &str) -> MeasureText {
    MeasureText {
        requester: requester.to_owned(),
        text: text.to_owned(),
    }
}

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(10);

async fn request_returns_the_typed_reply_of_an_ordinary_handler(h: Harness) {
    let seen = support::Recorder::default();
    let responder = h.bus.consumer().handler(measure).start().await.unwrap();
    let auditor = h
        .bus
        .consumer()
        .handler(audit)
        .state(seen.clone())
        .start()
        .await
        .unwrap();
    let reply = h
        .bus
        .request(&text("a", "hello"))
        .timeout(LONG)
        .await
        .unwrap();
    assert_eq!(
        reply,
        TextMeasured {
            requester: "a".into(),
            text: "hello".into(),
            length: 5
        }
    );
    // The reply is published on its own stream too, for every other group,
    // with the request's correlation id.
    let audited = seen.wait_for("audit", 1).await;
    assert_eq!(audited[0].file_id, "hello");
    let stats = h.bus.request_stats();
    assert_eq!((stats.open, stats.delivered, stats.late_replies), (0, 1, 0));
    responder.shutdown().await.unwrap();
    auditor.shutdown().await.unwrap();
}

async fn the_correlation_id_is_the_request_id_unless_given(h: Harness) {
    let responder = h.bus.consumer().handler(measure).start().await.unwrap();
    let reply = h
        .bus
        .request(&text("a", "given"))
        .meta(Meta::default().correlation_id("upload-42"))
        .timeout(LONG)
        .await
        .unwrap();
    assert_eq!(reply.length, 5);
    // The reply on its stream carries the given correlation id.
    let key = h.bus.stream_key("rr-texts").unwrap();
    let entries = on_stream(&h, &key).await;
    let reply_entry = entries
        .iter()
        .find(|e| e.type_name == "text.measured")
        .expect("the reply on its own stream");
    assert_eq!(reply_entry.correlation_id.as_deref(), Some("upload-42"));
    let request_entry = entries
        .iter()
        .find(|e| e.type_name == "measure.text")
        .unwrap();
    assert_eq!(
        request_entry.reply_to.as_deref(),
        Some(h.bus.reply_stream())
    );
    responder.shutdown().await.unwrap();
}

/// The fields of a stream entry.
type Fields = Vec<(String, Vec<u8>)>;

/// The envelopes of a stream, oldest first.
async fn on_stream(h: &Harness, key: &str) -> Vec<tidings::Envelope> {
    let raw = match h.bus.memory() {
        Some(m) => m.range(key, "-", 1000).await.unwrap(),
        None => {
            let mut conn = h.server.as_ref().unwrap().connection().await;
            let reply: Vec<(String, Fields)> = ::redis::cmd("XRANGE")
                .arg(key)
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await
                .unwrap();
            return reply
                .into_iter()
                .map(|(id, fields)| {
                    tidings::Envelope::from_fields(
                        &id,
                        fields.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())),
                    )
                    .unwrap()
                })
                .collect();
        }
    };
    raw.into_iter()
        .map(|e| {
            tidings::Envelope::from_fields(
                &e.id,
                e.fields.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())),
            )
            .unwrap()
        })
        .collect()
}

async fn replies_reach_the_instance_that_asked(h: Harness) {
    // Four responder instances share the group; four requester instances
    // each have their own reply stream.
    let mut responders = Vec::new();
    for i in 0..4 {
        let bus = h
            .another_bus(Bus::builder().source(format!("responder-{i}")))
            .await;
        responders.push(bus.consumer().handler(measure).start().await.unwrap());
    }
    let mut requesters = Vec::new();
    for i in 0..4 {
        requesters.push(
            h.another_bus(Bus::builder().source(format!("requester-{i}")))
                .await,
        );
    }
    let asks: Vec<(usize, MeasureText)> = (0..4)
        .flat_map(|r| (0..12).map(move |n| (r, text(&format!("r{r}"), &"x".repeat(n + 1)))))
        .collect();
    let replies = futures::future::join_all(
        asks.iter()
            .map(|(r, ask)| requesters[*r].request(ask).timeout(LONG).into_future()),
    )
    .await;
    for ((r, ask), reply) in asks.iter().zip(replies) {
        let reply = reply.unwrap_or_else(|e| panic!("request {ask:?} of requester {r}: {e}"));
        assert_eq!(reply.requester, ask.requester);
        assert_eq!(reply.text, ask.text);
        assert_eq!(reply.length, ask.text.len());
    }
    for (i, bus) in requesters.iter().enumerate() {
        let stats = bus.request_stats();
        assert_eq!(stats.delivered, 12, "requester {i}: {stats:?}");
        assert_eq!(stats.late_replies, 0, "requester {i}: {stats:?}");
        assert_eq!(stats.open, 0, "requester {i}: {stats:?}");
    }
    for w in responders {
        w.shutdown().await.unwrap();
    }
}

async fn timeout_names_the_request_the_correlation_id_and_the_time(h: Harness) {
    let err = h
        .bus
        .request(&text("a", "nobody answers"))
        .meta(Meta::default().correlation_id("corr-7"))
        .timeout(SHORT)
        .await
        .unwrap_err();
    match &err {
        Error::RequestTimedOut {
            request_type,
            reply_type,
            correlation_id,
            waited,
        } => {
            assert_eq!(*request_type, "measure.text");
            assert_eq!(*reply_type, "text.measured");
            assert_eq!(correlation_id, "corr-7");
            assert!(*waited >= SHORT, "{waited:?}");
        }
        other => panic!("expected RequestTimedOut, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("measure.text") && message.contains("corr-7"),
        "{message}"
    );
    assert_eq!(h.bus.request_stats().open, 0);
}

async fn late_reply_is_dropped_and_counted(h: Harness) {
    let err = h
        .bus
        .request(&text("a", "too late"))
        .timeout(Duration::from_millis(1000))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RequestTimedOut { .. }), "{err}");
    // The responder starts only now: its reply finds no one waiting.
    let responder = responder_from_the_start(&h).await;
    assert!(
        eventually(LONG, || h.bus.request_stats().late_replies == 1).await,
        "{:?}",
        h.bus.request_stats()
    );
    assert_eq!(h.bus.request_stats().delivered, 0);
    // A request made now is answered as usual.
    let reply = h
        .bus
        .request(&text("a", "on time"))
        .timeout(LONG)
        .await
        .unwrap();
    assert_eq!(reply.text, "on time");
    responder.shutdown().await.unwrap();
}

async fn wait_for_sees_events_published_just_before_and_after(h: Harness) {
    let done = |t: &str| TextMeasured {
        requester: "w".into(),
        text: t.into(),
        length: t.len(),
    };
    // Published before the wait begins (the usual race of publish, then wait).
    h.bus
        .publish_with(&done("before"), Meta::default().correlation_id("c-before"))
        .await
        .unwrap();
    let seen = h
        .bus
        .wait_for::<TextMeasured>("c-before")
        .timeout(LONG)
        .await
        .unwrap();
    assert_eq!(seen.text, "before");

    // Published while the wait runs; an event of another correlation id
    // before it is not taken.
    let wait = h.bus.wait_for::<TextMeasured>("c-after").timeout(LONG);
    let publisher = h.bus.clone();
    let publish = async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        publisher
            .publish_with(&done("other"), Meta::default().correlation_id("c-other"))
            .await
            .unwrap();
        publisher
            .publish_with(&done("after"), Meta::default().correlation_id("c-after"))
            .await
            .unwrap();
    };
    let (seen, ()) = tokio::join!(wait.into_future(), publish);
    assert_eq!(seen.unwrap().text, "after");

    // Nothing with this correlation id: a typed timeout.
    match h
        .bus
        .wait_for::<TextMeasured>("c-never")
        .timeout(Duration::from_millis(100))
        .await
    {
        Err(Error::WaitTimedOut {
            type_name,
            stream,
            correlation_id,
            ..
        }) => {
            assert_eq!(type_name, "text.measured");
            assert_eq!(stream, h.bus.stream_key("rr-texts").unwrap());
            assert_eq!(correlation_id, "c-never");
        }
        other => panic!("expected WaitTimedOut, got {other:?}"),
    }
}

async fn wait_for_sees_a_recent_event_of_a_type_not_waited_for_before(h: Harness) {
    // The stream is watched already, for another type.
    let first = h.bus.wait_for::<TextMeasured>("c-first").timeout(LONG);
    let publisher = h.bus.clone();
    let (seen, ()) = tokio::join!(first.into_future(), async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let done = TextMeasured {
            requester: "w".into(),
            text: "first".into(),
            length: 5,
        };
        publisher
            .publish_with(&done, Meta::default().correlation_id("c-first"))
            .await
            .unwrap();
    });
    assert_eq!(seen.unwrap().text, "first");
    // A request published, then waited for as an event of its own type.
    h.bus
        .publish_with(
            &text("w", "asked"),
            Meta::default().correlation_id("c-asked"),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = h
        .bus
        .wait_for::<MeasureText>("c-asked")
        .timeout(LONG)
        .await
        .unwrap();
    assert_eq!(asked.text, "asked");
}

async fn requests_on_a_tenant_bus_stay_in_the_tenant(h: Harness) {
    let acme = h.bus.tenant("acme").unwrap();
    let responder = acme.consumer().handler(measure).start().await.unwrap();
    let reply = acme
        .request(&text("t", "tenant"))
        .timeout(LONG)
        .await
        .unwrap();
    assert_eq!(reply.length, 6);
    // The request and the reply are on the tenant's stream, not the root's.
    let tenant_key = acme.stream_key("rr-texts").unwrap();
    let on_tenant = on_stream(&h, &tenant_key).await;
    assert_eq!(on_tenant.len(), 2, "{on_tenant:?}");
    assert!(on_tenant
        .iter()
        .all(|e| e.tenant_id.as_deref() == Some("acme")));
    assert!(!h.exists(&h.bus.stream_key("rr-texts").unwrap()).await);
    responder.shutdown().await.unwrap();
}

async fn reply_stream_of_a_dead_instance_expires_and_is_not_made_again(h: Harness) {
    let requester = h
        .another_bus(Bus::builder().reply_ttl(Duration::from_millis(1500)))
        .await;
    let key = requester.reply_stream().to_owned();
    assert!(key.starts_with("tidings:{reply:"), "{key}");
    let err = requester
        .request(&text("gone", "unanswered"))
        .timeout(Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RequestTimedOut { .. }), "{err}");
    // Renewed while the bus lives: still there after longer than its time to live.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        h.exists(&key).await,
        "the reply stream of a live bus expired"
    );
    drop(requester);
    let expired = tokio::time::timeout(LONG, async {
        while h.exists(&key).await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        expired.is_ok(),
        "the reply stream of a dropped bus is still there"
    );
    // The request is answered now: the reply goes to its own stream, and
    // not to the expired reply stream, which stays gone.
    let responder = responder_from_the_start(&h).await;
    let stream = h.bus.stream_key("rr-texts").unwrap();
    let replied = async {
        loop {
            if on_stream(&h, &stream)
                .await
                .iter()
                .any(|e| e.type_name == "text.measured")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(LONG, replied).await.unwrap();
    assert!(h.all_acked(&stream, "measurer", LONG).await);
    assert!(
        !h.exists(&key).await,
        "the reply made the expired stream again"
    );
    responder.shutdown().await.unwrap();
}

tidings_testkit::transport_suite! {
    transports: {
        memory => Harness::memory(),
        redis => Harness::redis().await,
    },
    tests: [
        request_returns_the_typed_reply_of_an_ordinary_handler,
        the_correlation_id_is_the_request_id_unless_given,
        replies_reach_the_instance_that_asked,
        timeout_names_the_request_the_correlation_id_and_the_time,
        late_reply_is_dropped_and_counted,
        wait_for_sees_events_published_just_before_and_after,
        wait_for_sees_a_recent_event_of_a_type_not_waited_for_before,
        requests_on_a_tenant_bus_stay_in_the_tenant,
        reply_stream_of_a_dead_instance_expires_and_is_not_made_again,
    ],
}

/// `INFO commandstats` as (command, calls).
async fn command_calls(server: &tidings_testkit::RedisServer) -> Vec<(String, u64)> {
    let mut conn = server.connection().await;
    let info: String = ::redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

async fn connections(server: &tidings_testkit::RedisServer) -> usize {
    let mut conn = server.connection().await;
    let list: String = ::redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    list.lines().count()
}

fn calls_of(stats: &[(String, u64)], name: &str) -> u64 {
    stats.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reader_serves_every_open_request_with_no_call_of_its_own() {
    let h = Harness::redis().await;
    let server = h.server.as_ref().unwrap();
    // The first request opens the reply stream and starts the reader.
    let first = text("a", "first");
    let first = h
        .bus
        .request(&first)
        .timeout(Duration::from_millis(1000))
        .await;
    assert!(first.is_err());
    let before_conns = connections(server).await;
    let before = command_calls(server).await;
    // 100 requests open at once, nobody answering, for a while.
    let asks: Vec<MeasureText> = (0..100).map(|i| text("a", &format!("t{i}"))).collect();
    let open = futures::future::join_all(asks.iter().map(|a| {
        h.bus
            .request(a)
            .timeout(Duration::from_millis(5000))
            .into_future()
    }));
    let watch = async {
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert_eq!(h.bus.request_stats().open, 100);
        connections(server).await
    };
    let (results, during_conns) = tokio::join!(open, watch);
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(Error::RequestTimedOut { .. }))));
    let after = command_calls(server).await;
    // One XADD per request, and nothing else per request: no connection,
    // no read, no script. (The test's own INFO and CLIENT calls, and the
    // reader's one pending XREAD, are all that may come besides.)
    assert_eq!(
        calls_of(&after, "xadd") - calls_of(&before, "xadd"),
        100,
        "{after:?}"
    );
    let others: u64 = after
        .iter()
        .filter(|(n, _)| {
            !matches!(
                n.as_str(),
                "xadd" | "info" | "client|list" | "client" | "hello" | "ping"
            )
        })
        .map(|(n, c)| c - calls_of(&before, n))
        .sum();
    assert!(
        others <= 2,
        "commands besides the publishes: {others}; {before:?} -> {after:?}"
    );
    assert!(
        during_conns <= before_conns + 1,
        "connections grew from {before_conns} to {during_conns} with 100 requests open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replyto_that_is_no_reply_stream_is_never_written() {
    let h = Harness::redis().await;
    let server = h.server.as_ref().unwrap();
    let responder = h.bus.consumer().handler(measure).start().await.unwrap();
    let victim = h.bus.stream_key("victim").unwrap();
    let stream = h.bus.stream_key("rr-texts").unwrap();
    let mut conn = server.connection().await;
    // A stream that exists, which a hostile request names as its `replyto`.
    let _: String = ::redis::cmd("XADD")
        .arg(&victim)
        .arg("*")
        .arg("k")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Streams under the names the hostile `replyto`s give, so that an
    // append to any of them would show.
    for key in ["tidings:{reply:a:b}", "other:{reply:x}"] {
        let _: String = ::redis::cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("k")
            .arg("v")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    for reply_to in [victim.as_str(), "tidings:{reply:a:b}", "other:{reply:x}"] {
        let _: String = ::redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("specversion")
            .arg("1.0")
            .arg("id")
            .arg(tidings::Ulid::new().to_string())
            .arg("source")
            .arg("hostile")
            .arg("type")
            .arg("measure.text")
            .arg("replyto")
            .arg(reply_to)
            .arg("data")
            .arg(r#"{"requester":"h","text":"x"}"#)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // Handled and acknowledged (the reply goes to its own stream only).
    assert!(h.all_acked(&stream, "measurer", LONG).await);
    let replies = on_stream(&h, &stream)
        .await
        .into_iter()
        .filter(|e| e.type_name == "text.measured")
        .count();
    assert_eq!(replies, 3);
    let len: usize = ::redis::cmd("XLEN")
        .arg(&victim)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 1, "a reply was written to the stream a replyto named");
    for key in ["tidings:{reply:a:b}", "other:{reply:x}"] {
        let len: usize = ::redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(len, 1, "a reply was written to {key}");
    }
    responder.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_again_after_redis_restarts() {
    let mut h = Harness::redis_durable(Duration::from_secs(10)).await;
    let responder = h.bus.consumer().handler(measure).start().await.unwrap();
    let reply = h
        .bus
        .request(&text("a", "before"))
        .timeout(LONG)
        .await
        .unwrap();
    assert_eq!(reply.text, "before");
    // The reply is written before the request is acknowledged: a restart
    // between the two redelivers the request, and its second reply finds no
    // one waiting (at-least-once, counted as late). Restart once it is acked.
    let stream = h.bus.stream_key("rr-texts").unwrap();
    assert!(h.all_acked(&stream, "measurer", LONG).await);
    h.server.as_mut().unwrap().restart();
    // The reader reconnects by itself; the next request is answered.
    let reply = h
        .bus
        .request(&text("a", "after"))
        .timeout(LONG)
        .await
        .unwrap();
    assert_eq!(reply.text, "after");
    assert_eq!(h.bus.request_stats().late_replies, 0);
    responder.shutdown().await.unwrap();
}
