//! Other languages on the same streams and channels.
//!
//! A Python client (redis-py, in a virtualenv under `target/interop-venv`,
//! created on first run) hand-writes a v1 event the Rust worker upcasts, and
//! checks every CloudEvents field of an event the Rust side published.
//!
//! The official CloudEvents SDKs of Rust (`cloudevents-sdk`), Python
//! (`cloudevents`, in the same virtualenv) and JavaScript (`cloudevents`,
//! with `@redis/client`, installed by `npm ci` in `tests/interop/js`) each
//! read a stream entry and a Pub/Sub message tidings wrote, and must see the
//! very event tidings published; and each writes events the way its users
//! do (a UUID id, no `dataschema`, `dataversion` as an extension), as a
//! stream entry (binary mode) that reaches a `#[handler]` and as a Pub/Sub
//! message (structured mode) that reaches a typed subscription.

mod support;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use cloudevents::event::{AttributeValue, ExtensionValue, SpecVersion};
use cloudevents::message::{BinaryDeserializer, BinarySerializer, MessageAttributeValue};
use cloudevents::{AttributesReader, Data, EventBuilder, EventBuilderV10};
use futures::StreamExt;
use serde_json::{json, Value};
use support::events::FileUploaded;
use support::Recorder;
use tidings::transport::RawEntry;
use tidings::{
    handler, Bus, ConsumerOptions, Context, Envelope, HandlerResult, Meta, Published, State,
};
use tidings_testkit::RedisServer;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How long a test waits for a message or a handler call.
const WITHIN: Duration = Duration::from_secs(5);
/// How long a script of another language may run (once installed): a
/// process start and a few Redis calls, with room for a loaded machine.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The virtualenv's python, with redis-py and the CloudEvents SDK
/// installed; created once and cached.
fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        support::tools::python_venv(
            "interop-venv",
            // 2.x: the scripts use the SDK's current API (`cloudevents.core`)
            // and the 1.x API it still ships (`cloudevents.v1`).
            &["redis", "cloudevents>=2.2,<3"],
            &[
                "redis",
                "cloudevents.core.bindings.kafka",
                "cloudevents.v1.http",
            ],
        )
    })
}

/// `tests/interop/js` with its locked npm packages; installed once.
fn js_dir() -> &'static Path {
    static JS: OnceLock<PathBuf> = OnceLock::new();
    JS.get_or_init(|| support::tools::node_packages_in("tests/interop/js"))
}

fn run_script(args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(root().join("tests/interop/interop.py"))
        .args(args)
        .output()
        .expect("run interop.py");
    assert!(
        out.status.success(),
        "interop.py {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Another language's SDK client: `tests/interop/sdk.py` or
/// `tests/interop/js/sdk.mjs`.
#[derive(Debug, Clone, Copy)]
enum Sdk {
    Python,
    Js,
}

impl Sdk {
    /// Runs the client with `args` (and `stdin`), under [`SCRIPT_TIMEOUT`];
    /// returns its output, parsed as JSON. Installs the SDK on first use,
    /// and fails the test, with the client's own error, if it exits non-zero.
    async fn run(self, args: &[&str], stdin: Option<&[u8]>) -> Value {
        let (program, script, needs) = match self {
            Sdk::Python => {
                let py = tokio::task::spawn_blocking(python).await.unwrap();
                let script = root().join("tests/interop/sdk.py");
                (py.to_owned(), script, "the virtualenv's python")
            }
            Sdk::Js => {
                let dir = tokio::task::spawn_blocking(js_dir).await.unwrap();
                (
                    PathBuf::from("node"),
                    dir.join("sdk.mjs"),
                    "`node` (Node.js) on PATH",
                )
            }
        };
        let mut child = tokio::process::Command::new(&program)
            .arg(&script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("this test needs {needs}: {e}"));
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(bytes).await.unwrap();
        }
        drop(input);
        let out = timeout(SCRIPT_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{} {args:?} ran past {SCRIPT_TIMEOUT:?}", script.display()))
            .unwrap();
        assert!(
            out.status.success(),
            "{} {args:?} failed (the SDK's error is below):\n{}{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{} printed no JSON ({e}):\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// The SDK APIs the client reads an event with, as named in its output.
    fn apis(self) -> &'static [&'static str] {
        match self {
            Sdk::Python => &["core", "v1"],
            Sdk::Js => &["cloudevents"],
        }
    }

    /// The `source` of the events the client writes, and the payloads it
    /// puts in them (see the scripts).
    fn writes(self) -> (&'static str, FileUploaded, ValveTurned) {
        let (source, file_id, filename, valve, degrees) = match self {
            Sdk::Python => (
                "python-sdk",
                "py-sdk-1",
                "from-python-sdk.txt",
                "py-sdk-valve",
                90,
            ),
            Sdk::Js => ("js-sdk", "js-sdk-1", "from-js-sdk.txt", "js-sdk-valve", 180),
        };
        let uploaded = FileUploaded {
            file_id: file_id.into(),
            filename: filename.into(),
            mime_type: Some("text/plain".into()),
        };
        let turned = ValveTurned {
            valve: valve.into(),
            degrees,
        };
        (source, uploaded, turned)
    }
}

/// `valve.turned` on the `notifications` channel. Only version 2 is known,
/// so a message read as any other version does not decode: it shows that
/// the reader took the version from `dataversion`.
#[tidings::event(channel = "notifications", version = 2)]
#[derive(Debug, Clone, PartialEq)]
struct ValveTurned {
    valve: String,
    degrees: u32,
}

const SOURCE: &str = "interop-test";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn connect(server: &RedisServer) -> Bus {
    Bus::builder()
        .source(SOURCE)
        .connect(&server.url())
        .await
        .unwrap()
}

fn tidings_meta(subject: &str) -> Meta {
    Meta::default()
        .subject(subject)
        .correlation_id("rust-corr")
        .causation_id("rust-cause")
        .traceparent(TRACEPARENT)
}

/// Publishes the `file.uploaded` every SDK reads, with every optional
/// attribute tidings writes; returns it and its stream entry.
async fn publish_entry(bus: &Bus) -> (Published, RawEntry) {
    let event = FileUploaded {
        file_id: "rust-1".into(),
        filename: "from-rust.txt".into(),
        mime_type: Some("text/plain".into()),
    };
    let published = bus
        .publish_with(&event, tidings_meta("files/rust-1"))
        .await
        .unwrap();
    let mut entries = bus.last_entries("contextual", 1).await.unwrap();
    assert_eq!(entries.len(), 1);
    let entry = entries.remove(0);
    assert_eq!(Some(&entry.id), published.entry_id.as_ref());
    (published, entry)
}

/// The entry of [`publish_entry`] as every SDK must see it: the attributes
/// tidings set, `time` as it wrote it, the payload as JSON.
fn expected_entry(published: &Published, time: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": published.event_id.to_string(),
        "source": SOURCE,
        "type": "file.uploaded",
        "time": time,
        "datacontenttype": "application/json",
        "dataschema": "https://tidings.invalid/schemas/contextual/file.uploaded/v2.json",
        "dataversion": "2",
        "subject": "files/rust-1",
        "correlationid": "rust-corr",
        "causationid": "rust-cause",
        "traceparent": TRACEPARENT,
        "data": {"file_id": "rust-1", "filename": "from-rust.txt", "mime_type": "text/plain"},
    })
}

fn field<'a>(entry: &'a RawEntry, name: &str) -> &'a str {
    let value = entry
        .fields
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("entry {} has no `{name}`", entry.id))
        .1
        .as_slice();
    std::str::from_utf8(value).unwrap()
}

/// Publishes the `valve.turned` every SDK reads, while a plain Redis
/// connection is subscribed to its channel; returns it and the message's
/// bytes as they went over the wire.
async fn capture_message(server: &RedisServer, bus: &Bus) -> (Published, Vec<u8>) {
    let channel = bus.channel_key("notifications", "valve.turned").unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&channel).await.unwrap();
    let published = bus
        .publish_with(
            &ValveTurned {
                valve: "rust-valve".into(),
                degrees: 45,
            },
            tidings_meta("valves/rust-valve"),
        )
        .await
        .unwrap();
    let msg = timeout(WITHIN, pubsub.on_message().next())
        .await
        .unwrap_or_else(|_| panic!("no message on {channel} within {WITHIN:?}"))
        .unwrap();
    assert_eq!(msg.get_channel_name(), channel);
    (published, msg.get_payload_bytes().to_vec())
}

/// The message of [`capture_message`] as every SDK must see it.
fn expected_message(published: &Published, time: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": published.event_id.to_string(),
        "source": SOURCE,
        "type": "valve.turned",
        "time": time,
        "datacontenttype": "application/json",
        "dataschema": "https://tidings.invalid/schemas/notifications/valve.turned/v2.json",
        "dataversion": "2",
        "subject": "valves/rust-valve",
        "correlationid": "rust-corr",
        "causationid": "rust-cause",
        "traceparent": TRACEPARENT,
        "data": {"valve": "rust-valve", "degrees": 45},
    })
}

fn time_of_message(bytes: &[u8]) -> String {
    let value: Value = serde_json::from_slice(bytes).unwrap();
    value["time"]
        .as_str()
        .expect("tidings writes `time`")
        .to_owned()
}

/// Asserts that each API of `sdk` saw exactly `expected`.
fn assert_seen(sdk: Sdk, out: &Value, expected: &Value) {
    let views = out.as_object().expect("an object of views");
    let apis: Vec<&str> = views.keys().map(String::as_str).collect();
    assert_eq!(apis, sdk.apis(), "{sdk:?}: {out}");
    for (api, seen) in views {
        assert_eq!(seen, expected, "{sdk:?} `{api}` saw another event");
    }
}

/// The Rust SDK's event as the other SDKs' views show theirs: every
/// attribute under its name (`time` in milliseconds), then `data`.
fn rust_view(event: &cloudevents::Event) -> Value {
    let mut view = serde_json::Map::new();
    for (name, value) in event.iter() {
        let value = match value {
            AttributeValue::Time(t) => json!(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
            AttributeValue::Integer(i) => json!(i),
            AttributeValue::Boolean(b) => json!(b),
            other => json!(other.to_string()),
        };
        view.insert(name.to_owned(), value);
    }
    let data = match event.data() {
        Some(Data::Json(v)) => v.clone(),
        Some(Data::String(s)) => json!({ "not JSON but a string": s }),
        Some(Data::Binary(b)) => json!({ "not JSON but bytes": b }),
        None => Value::Null,
    };
    view.insert("data".into(), data);
    Value::Object(view)
}

#[handler(group = "interop")]
async fn record(e: FileUploaded, ctx: Context, State(rec): State<Recorder>) -> HandlerResult {
    rec.record("record", &e.file_id, e.mime_type.clone(), &ctx);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_v1_event_is_decoded_and_upcast_by_the_rust_worker() {
    let server = RedisServer::start();
    let bus = Bus::builder()
        .source("interop-test")
        .connect(&server.url())
        .await
        .unwrap();
    let rec = Recorder::default();
    let worker = bus
        .consumer()
        .state(rec.clone())
        .options(ConsumerOptions::default().block(Duration::from_millis(100)))
        .handler(record)
        .start()
        .await
        .unwrap();
    let key = bus.stream_key("contextual").unwrap();
    let url = server.url();
    tokio::task::spawn_blocking(move || run_script(&["publish", &url, &key]))
        .await
        .unwrap();
    let seen = rec.wait_for("record", 1).await;
    assert_eq!(seen.len(), 1, "the Python event was not handled");
    assert_eq!(seen[0].file_id, "py-1");
    // v1 has no mime_type: the upcaster derived it from the file name.
    assert_eq!(seen[0].mime_type.as_deref(), Some("application/pdf"));
    assert_eq!(seen[0].correlation_id.as_deref(), Some("py-corr-1"));
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_reads_every_cloudevents_field_the_rust_side_wrote() {
    let server = RedisServer::start();
    let bus = Bus::builder()
        .source("interop-test")
        .connect(&server.url())
        .await
        .unwrap();
    let event = FileUploaded {
        file_id: "rust-1".into(),
        filename: "from-rust.txt".into(),
        mime_type: Some("text/plain".into()),
    };
    bus.publish_with(
        &event,
        Meta::default()
            .subject("files/rust-1")
            .correlation_id("rust-corr"),
    )
    .await
    .unwrap();
    let key = bus.stream_key("contextual").unwrap();
    let url = server.url();
    let out = tokio::task::spawn_blocking(move || run_script(&["check", &url, &key]))
        .await
        .unwrap();
    assert_eq!(out.trim(), "ok");
}

// ---------------------------------------------------------------------------
// Reading what tidings wrote.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_reads_a_pubsub_message_tidings_published() {
    let server = RedisServer::start();
    let bus = connect(&server).await;
    let (published, bytes) = capture_message(&server, &bus).await;

    let event: cloudevents::Event = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "the Rust SDK rejects the message: {e}\n{}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(event.specversion(), SpecVersion::V10);
    assert_eq!(event.id(), published.event_id.to_string());
    assert_eq!(event.source(), SOURCE);
    assert_eq!(event.ty(), "valve.turned");
    // The SDK holds `dataschema` as an absolute URL (it rejects anything else).
    let schema = event.dataschema().expect("dataschema");
    assert_eq!(schema.scheme(), "https");
    assert_eq!(
        schema.as_str(),
        "https://tidings.invalid/schemas/notifications/valve.turned/v2.json"
    );
    assert_eq!(
        event.extension("dataversion"),
        Some(&ExtensionValue::String("2".into()))
    );
    assert_eq!(
        event.data(),
        Some(&Data::Json(json!({"valve": "rust-valve", "degrees": 45})))
    );
    assert_eq!(
        rust_view(&event),
        expected_message(&published, &time_of_message(&bytes))
    );
}

/// A stream entry read the way a binary-mode binding of the SDK would:
/// each field through the builder, the attributes the SDK knows through
/// their setters, every other one as an extension.
fn sdk_event_from_entry(
    entry: &RawEntry,
) -> Result<cloudevents::Event, cloudevents::event::EventBuilderError> {
    let mut builder = EventBuilderV10::new();
    let (mut content_type, mut schema, mut data) = (None, None, None);
    for (name, value) in &entry.fields {
        let text = || String::from_utf8(value.clone()).expect("an attribute is text");
        builder = match name.as_str() {
            // The builder is the one of CloudEvents 1.0.
            "specversion" => {
                assert_eq!(text(), "1.0");
                builder
            }
            "id" => builder.id(text()),
            "source" => builder.source(text()),
            "type" => builder.ty(text()),
            "subject" => builder.subject(text()),
            "time" => builder.time(text()),
            // The builder takes these three in one call, below.
            "datacontenttype" => {
                content_type = Some(text());
                builder
            }
            "dataschema" => {
                schema = Some(text());
                builder
            }
            "data" => {
                let json: Value = serde_json::from_slice(value).expect("tidings writes JSON data");
                data = Some(json);
                builder
            }
            extension => builder.extension(extension, text()),
        };
    }
    let content_type = content_type.expect("tidings writes datacontenttype");
    let data = data.expect("tidings writes data");
    builder = match schema {
        Some(schema) => builder.data_with_schema(content_type, schema, data),
        None => builder.data(content_type, data),
    };
    builder.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_builds_an_event_from_every_field_of_a_stream_entry() {
    let server = RedisServer::start();
    let bus = connect(&server).await;
    let (published, entry) = publish_entry(&bus).await;

    let event = sdk_event_from_entry(&entry)
        .unwrap_or_else(|e| panic!("the Rust SDK rejects the entry: {e}\n{entry:?}"));
    assert_eq!(event.id(), published.event_id.to_string());
    assert_eq!(event.ty(), "file.uploaded");
    assert_eq!(
        event.dataschema().map(|u| u.as_str()),
        Some("https://tidings.invalid/schemas/contextual/file.uploaded/v2.json")
    );
    let mut extensions: Vec<&str> = event.iter_extensions().map(|(k, _)| k).collect();
    extensions.sort_unstable();
    assert_eq!(
        extensions,
        ["causationid", "correlationid", "dataversion", "traceparent"]
    );
    assert_eq!(
        rust_view(&event),
        expected_entry(&published, field(&entry, "time"))
    );
    // And the SDK's JSON of it is the same event to tidings.
    let json = serde_json::to_vec(&event).unwrap();
    let back = Envelope::from_json("sdk", &json).unwrap();
    let pairs = entry.fields.iter().map(|(k, v)| (k.as_bytes(), &v[..]));
    assert_eq!(back, Envelope::from_fields(&entry.id, pairs).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_reads_a_stream_entry_tidings_wrote() {
    sdk_reads_a_stream_entry(Sdk::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_reads_a_pubsub_message_tidings_published() {
    sdk_reads_a_pubsub_message(Sdk::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_sdk_reads_a_stream_entry_tidings_wrote() {
    sdk_reads_a_stream_entry(Sdk::Js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_sdk_reads_a_pubsub_message_tidings_published() {
    sdk_reads_a_pubsub_message(Sdk::Js).await;
}

async fn sdk_reads_a_stream_entry(sdk: Sdk) {
    let server = RedisServer::start();
    let bus = connect(&server).await;
    let (published, entry) = publish_entry(&bus).await;
    let key = bus.stream_key("contextual").unwrap();
    let out = sdk.run(&["read-entry", &server.url(), &key], None).await;
    assert_seen(
        sdk,
        &out,
        &expected_entry(&published, field(&entry, "time")),
    );
}

async fn sdk_reads_a_pubsub_message(sdk: Sdk) {
    let server = RedisServer::start();
    let bus = connect(&server).await;
    // The message is captured here and handed over on stdin, so that the
    // script needs no subscription of its own to be in place in time.
    let (published, bytes) = capture_message(&server, &bus).await;
    let out = sdk.run(&["read-message"], Some(&bytes)).await;
    assert_seen(
        sdk,
        &out,
        &expected_message(&published, &time_of_message(&bytes)),
    );
}

// ---------------------------------------------------------------------------
// Reading what the SDKs wrote.

/// Sends what `handled` got to the test.
#[derive(Clone)]
struct Handled(tokio::sync::mpsc::UnboundedSender<(FileUploaded, Envelope)>);

#[handler(group = "interop-sdk")]
async fn handled(e: FileUploaded, ctx: Context, State(to): State<Handled>) -> HandlerResult {
    let envelope = ctx
        .envelope()
        .expect("a stream event has its envelope")
        .clone();
    to.0.send((e, envelope)).expect("the test is waiting");
    Ok(())
}

/// Where a writer puts its events.
#[derive(Debug, Clone)]
struct Keys {
    url: String,
    stream: String,
    channel: String,
}

/// What a writer reports: the `id` (and `time`, RFC 3339 to the
/// millisecond, if any) it gave the stream entry's event, the `id` of the
/// Pub/Sub message's event, and how many subscribers got the message.
#[derive(Debug)]
struct Written {
    entry_event_id: String,
    entry_time: Option<String>,
    message_event_id: String,
    receivers: u64,
}

impl Written {
    fn from_script(out: &Value) -> Self {
        let text = |v: &Value| v.as_str().expect("a string").to_owned();
        Written {
            entry_event_id: text(&out["entry"]["id"]),
            entry_time: Some(text(&out["entry"]["time"])),
            message_event_id: text(&out["message"]["id"]),
            receivers: out["message"]["receivers"].as_u64().expect("a count"),
        }
    }
}

/// Runs `write` while a consumer with [`handled`] runs, and a typed and a
/// pattern subscription are in place; asserts that the entry it wrote
/// reached the handler as `uploaded` (not dead letters) and the message the
/// subscriptions as `turned`, with the writer's ids and `source`.
async fn sdk_writes_reach_tidings<F, Fut>(
    source: &str,
    uploaded: FileUploaded,
    turned: ValveTurned,
    write: F,
) where
    F: FnOnce(Keys) -> Fut,
    Fut: Future<Output = Written>,
{
    let server = RedisServer::start();
    let bus = connect(&server).await;
    let (to, mut got) = tokio::sync::mpsc::unbounded_channel();
    let worker = bus
        .consumer()
        .state(Handled(to))
        .options(ConsumerOptions::default().block(Duration::from_millis(100)))
        .handler(handled)
        .start()
        .await
        .unwrap();
    // Subscribed before anything is written: Pub/Sub keeps nothing.
    let mut typed = bus.subscribe::<ValveTurned>().await.unwrap();
    let mut any = bus
        .subscribe_pattern("notifications", "valve.*")
        .await
        .unwrap();

    let written = write(Keys {
        url: server.url(),
        stream: bus.stream_key("contextual").unwrap(),
        channel: bus.channel_key("notifications", "valve.turned").unwrap(),
    })
    .await;
    for id in [&written.entry_event_id, &written.message_event_id] {
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id} is not a UUID");
    }
    assert_eq!(written.receivers, 2, "both subscriptions were in place");

    let message = timeout(WITHIN, typed.next())
        .await
        .unwrap_or_else(|_| panic!("no valve.turned within {WITHIN:?}"))
        .expect("the subscription goes on")
        .unwrap_or_else(|e| panic!("the typed subscription cannot read the SDK's message: {e}"));
    assert_eq!(message, turned);
    let message = timeout(WITHIN, any.next())
        .await
        .unwrap_or_else(|_| panic!("no valve.* within {WITHIN:?}"))
        .expect("the subscription goes on")
        .unwrap_or_else(|e| panic!("the SDK's message is not an envelope: {e}"));
    let env = message.envelope();
    assert_eq!(env.id, written.message_event_id);
    assert_eq!(env.source, source);
    assert_eq!(env.dataversion, 2);
    assert_eq!(env.dataschema, None);
    assert_eq!(message.decode::<ValveTurned>().unwrap(), turned);

    let (event, env) = timeout(WITHIN, got.recv())
        .await
        .unwrap_or_else(|_| panic!("the handler got nothing within {WITHIN:?}"))
        .expect("the worker runs");
    // Read as v1, the payload would come out of the upcaster without this
    // `mime_type` (it derives one from a .pdf name only), if at all: the
    // version came from `dataversion`.
    assert_eq!(event, uploaded);
    assert_eq!(env.id, written.entry_event_id);
    assert_eq!(env.source, source);
    assert_eq!(env.type_name, "file.uploaded");
    assert_eq!(env.dataversion, 2);
    assert_eq!(env.dataschema, None);
    assert_eq!(env.time_rfc3339(), written.entry_time);
    worker.shutdown().await.unwrap();

    let mut conn = server.connection().await;
    let dead: u64 = redis::cmd("XLEN")
        .arg(bus.dead_letter_key("contextual").unwrap())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead, 0, "an SDK's event went to dead letters");
}

/// The SDK's binary mode into the fields of a stream entry: the SDK calls
/// one setter per attribute, each value as its text form.
#[derive(Default)]
struct EntryFields(Vec<(String, Vec<u8>)>);

impl BinarySerializer<Vec<(String, Vec<u8>)>> for EntryFields {
    fn set_spec_version(mut self, v: SpecVersion) -> cloudevents::message::Result<Self> {
        self.0
            .push(("specversion".into(), v.to_string().into_bytes()));
        Ok(self)
    }

    fn set_attribute(
        mut self,
        name: &str,
        value: MessageAttributeValue,
    ) -> cloudevents::message::Result<Self> {
        self.0.push((name.into(), value.to_string().into_bytes()));
        Ok(self)
    }

    fn set_extension(
        self,
        name: &str,
        value: MessageAttributeValue,
    ) -> cloudevents::message::Result<Self> {
        self.set_attribute(name, value)
    }

    fn end_with_data(
        mut self,
        bytes: Vec<u8>,
    ) -> cloudevents::message::Result<Vec<(String, Vec<u8>)>> {
        self.0.push(("data".into(), bytes));
        Ok(self.0)
    }

    fn end(self) -> cloudevents::message::Result<Vec<(String, Vec<u8>)>> {
        Ok(self.0)
    }
}

/// An event as a Rust SDK user builds it: the attributes the SDK requires,
/// a UUID id, `dataversion` as an extension, no `dataschema`, no `time`.
fn rust_sdk_event(ty: &str, data: Value) -> cloudevents::Event {
    EventBuilderV10::new()
        .id(uuid::Uuid::new_v4().to_string())
        .source("rust-sdk")
        .ty(ty)
        .extension("dataversion", 2i64)
        .data("application/json", data)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_events_reach_a_handler_and_a_typed_subscription() {
    let uploaded = FileUploaded {
        file_id: "rust-sdk-1".into(),
        filename: "from-rust-sdk.txt".into(),
        mime_type: Some("text/plain".into()),
    };
    let turned = ValveTurned {
        valve: "rust-sdk-valve".into(),
        degrees: 270,
    };
    let entry_event = rust_sdk_event("file.uploaded", serde_json::to_value(&uploaded).unwrap());
    let message_event = rust_sdk_event("valve.turned", serde_json::to_value(&turned).unwrap());
    sdk_writes_reach_tidings("rust-sdk", uploaded, turned, |keys| async move {
        let entry_event_id = entry_event.id().to_owned();
        let message_event_id = message_event.id().to_owned();
        let fields = entry_event
            .deserialize_binary(EntryFields::default())
            .unwrap();
        let message = serde_json::to_vec(&message_event).unwrap();
        let client = redis::Client::open(keys.url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut xadd = redis::cmd("XADD");
        xadd.arg(&keys.stream).arg("*");
        for (name, value) in &fields {
            xadd.arg(name).arg(value);
        }
        let _: String = xadd.query_async(&mut conn).await.unwrap();
        let receivers: u64 = redis::cmd("PUBLISH")
            .arg(&keys.channel)
            .arg(message)
            .query_async(&mut conn)
            .await
            .unwrap();
        Written {
            entry_event_id,
            entry_time: None,
            message_event_id,
            receivers,
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_events_reach_a_handler_and_a_typed_subscription() {
    sdk_events_reach_tidings(Sdk::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_sdk_events_reach_a_handler_and_a_typed_subscription() {
    sdk_events_reach_tidings(Sdk::Js).await;
}

async fn sdk_events_reach_tidings(sdk: Sdk) {
    let (source, uploaded, turned) = sdk.writes();
    sdk_writes_reach_tidings(source, uploaded, turned, |keys| async move {
        let out = sdk
            .run(&["write", &keys.url, &keys.stream, &keys.channel], None)
            .await;
        Written::from_script(&out)
    })
    .await;
}
