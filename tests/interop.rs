//! Another language on the same streams: a Python client (redis-py, in a
//! virtualenv under `target/interop-venv`, created on first run) publishes a
//! v1 event the Rust worker upcasts, and checks every CloudEvents field of an
//! event the Rust side published.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use support::events::FileUploaded;
use support::Recorder;
use tidings::{handler, Bus, ConsumerOptions, Context, HandlerResult, Meta, State};
use tidings_testkit::RedisServer;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The virtualenv's python, with redis-py installed; created once and cached.
fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| support::tools::python_venv("interop-venv", &["redis"], &["redis"]))
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
