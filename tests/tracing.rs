//! One trace from a publish to the handler it causes, across a Redis round
//! trip: the publish span's context travels as `traceparent`, and the
//! handler's span continues it; a `traceparent` another language wrote is
//! continued too. Spans are read back from OpenTelemetry's in-memory
//! exporter, through `tracing-opentelemetry`.

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use support::Harness;
use tidings::{event, handler, Context, HandlerResult};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

/// A file to scan.
#[event(stream = "tracing-files", version = 1)]
#[derive(Debug)]
pub struct ScanRequested {
    /// The file.
    pub file_id: String,
}

/// The scan's result, published by the handler.
#[event(stream = "tracing-results", version = 1)]
#[derive(Debug)]
pub struct ScanFinished {
    /// The file.
    pub file_id: String,
}

#[handler(group = "scanner")]
async fn scan(e: ScanRequested, _ctx: Context) -> HandlerResult<ScanFinished> {
    tracing::info!(file = %e.file_id, "scanning");
    Ok(ScanFinished { file_id: e.file_id })
}

/// The process's exporter, behind a `tracing-opentelemetry` layer.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    &EXPORTER
        .get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(exporter.clone())
                .build();
            let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("tests"));
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .unwrap();
            (exporter, provider)
        })
        .0
}

/// Tests of this file one at a time: they read one exporter.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Waits for a finished span that `pick` accepts.
async fn span(what: &str, pick: impl Fn(&SpanData) -> bool) -> SpanData {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = exporter()
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .find(|s| pick(s))
        {
            return s;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {what} span");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn attribute(s: &SpanData, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

async fn a_publish_and_its_handler_are_one_trace(h: Harness) {
    let _serial = serial().await;
    exporter().reset();
    let worker = h.bus.consumer().handler(scan).start().await.unwrap();
    let request = ScanRequested {
        file_id: "f-traced".into(),
    };
    h.bus
        .publish(&request)
        .instrument(tracing::info_span!("upload"))
        .await
        .unwrap();
    let upload = span("upload", |s| s.name == "upload").await;
    let publish = span("publish", |s| {
        s.name == "publish tracing-files"
            && s.span_context.trace_id() == upload.span_context.trace_id()
    })
    .await;
    assert_eq!(publish.parent_span_id, upload.span_context.span_id());
    assert_eq!(
        attribute(&publish, "messaging.destination.name").as_deref(),
        Some("tracing-files")
    );
    assert_eq!(
        attribute(&publish, "cloudevents.event_type").as_deref(),
        Some("scan.requested")
    );
    // The handler's span is the publish span's child, across Redis.
    let process = span("process", |s| {
        s.name == "process tracing-files"
            && s.span_context.trace_id() == upload.span_context.trace_id()
    })
    .await;
    assert_eq!(process.parent_span_id, publish.span_context.span_id());
    assert_eq!(
        attribute(&process, "messaging.consumer.group.name").as_deref(),
        Some("scanner")
    );
    assert_eq!(
        attribute(&process, "tidings.handler").as_deref(),
        Some("scan")
    );
    // And the event it returned is published in the same trace, under it.
    let result = span("publish of the result", |s| {
        s.name == "publish tracing-results"
            && s.span_context.trace_id() == upload.span_context.trace_id()
    })
    .await;
    assert_eq!(result.parent_span_id, process.span_context.span_id());
    worker.shutdown().await.unwrap();
}

tidings_testkit::transport_suite! {
    transports: {
        memory => Harness::memory(),
        redis => Harness::redis().await,
    },
    tests: [a_publish_and_its_handler_are_one_trace],
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_given_in_meta_outside_any_span_is_continued() {
    let _serial = serial().await;
    exporter().reset();
    let h = Harness::memory();
    let worker = h.bus.consumer().handler(scan).start().await.unwrap();
    // As a service passes on the traceparent of the HTTP request it serves.
    let meta = tidings::Meta::default()
        .traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    h.bus
        .publish_with(
            &ScanRequested {
                file_id: "f-http".into(),
            },
            meta,
        )
        .await
        .unwrap();
    let trace = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
    let publish = span("publish", |s| {
        s.name == "publish tracing-files" && s.span_context.trace_id() == trace
    })
    .await;
    assert_eq!(
        publish.parent_span_id,
        SpanId::from_hex("b7ad6b7169203331").unwrap()
    );
    assert!(attribute(&publish, "messaging.message.id").is_some_and(|id| id.len() == 26));
    let process = span("process", |s| {
        s.name == "process tracing-files" && s.span_context.trace_id() == trace
    })
    .await;
    assert_eq!(process.parent_span_id, publish.span_context.span_id());
    worker.shutdown().await.unwrap();
}

/// Appends `scan.requested` with `attributes` as a producer in another
/// language writes it: no tidings code.
async fn xadd_as_python(
    conn: &mut ::redis::aio::MultiplexedConnection,
    key: &str,
    id: &str,
    attributes: &[(&str, &str)],
    data: &str,
) {
    let mut cmd = ::redis::cmd("XADD");
    cmd.arg(key).arg("*");
    for (k, v) in [
        ("specversion", "1.0"),
        ("id", id),
        ("source", "python"),
        ("type", "scan.requested"),
    ]
    .iter()
    .chain(attributes)
    {
        cmd.arg(*k).arg(*v);
    }
    let _: String = cmd.arg("data").arg(data).query_async(conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_written_by_another_language_is_continued() {
    let _serial = serial().await;
    exporter().reset();
    let h = Harness::redis().await;
    let worker = h.bus.consumer().handler(scan).start().await.unwrap();
    let key = h.bus.stream_key("tracing-files").unwrap();
    let mut conn = h.server.as_ref().unwrap().connection().await;
    xadd_as_python(
        &mut conn,
        &key,
        "from-python-1",
        &[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("tracestate", "vendor=abc"),
        ],
        r#"{"file_id":"f-python"}"#,
    )
    .await;
    let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let process = span("process", |s| {
        s.name == "process tracing-files" && s.span_context.trace_id() == trace
    })
    .await;
    assert_eq!(
        process.parent_span_id,
        SpanId::from_hex("00f067aa0ba902b7").unwrap()
    );
    assert!(process.parent_span_is_remote);
    assert_eq!(process.span_context.trace_state().header(), "vendor=abc");
    // A malformed traceparent starts a trace of its own, and is handled.
    xadd_as_python(
        &mut conn,
        &key,
        "from-python-2",
        &[("traceparent", "not-a-traceparent")],
        r#"{"file_id":"f-bad-trace"}"#,
    )
    .await;
    assert!(h.all_acked(&key, "scanner", Duration::from_secs(10)).await);
    assert_eq!(
        h.bus
            .stream_stats("tracing-files")
            .await
            .unwrap()
            .dead_letters,
        0
    );
    worker.shutdown().await.unwrap();
}
