//! Metrics and health for Prometheus and a readiness probe: tidings counts
//! through the `metrics` facade; this program installs
//! `metrics-exporter-prometheus` as the recorder and serves
//!
//! - `GET /metrics`: every series in the Prometheus text format (published,
//!   consumed and handled events by outcome, handler and publish durations,
//!   and the gauges read from Redis: stream length, lag, pending entries,
//!   the oldest pending entry's age, dead letters);
//! - `GET /healthz`: `bus.health()` as JSON, 200 when ready, 503 when not.
//!
//! It publishes a few events, has a worker handle them (one fails once and
//! is retried), scrapes itself and prints the tidings series, then exits.
//! Run it with `cargo run --example prometheus` (in memory), or on Redis with
//! `REDIS_URL=redis://127.0.0.1:6379 cargo run --example prometheus`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tidings::{event, handler, Bus, Context, HandlerResult, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A file that was uploaded.
#[event(stream = "prometheus-demo", version = 1)]
#[derive(Debug)]
pub struct DocumentStored {
    /// The document.
    pub document_id: String,
}

/// Fails the first event it sees, so that a retry shows in the metrics.
#[handler(group = "indexer", retries = 3)]
pub async fn index(
    e: DocumentStored,
    _ctx: Context,
    State(failed): State<Arc<AtomicBool>>,
) -> HandlerResult {
    if !failed.swap(true, Ordering::SeqCst) {
        return Err(format!("the index is warming up; {} is tried again", e.document_id).into());
    }
    Ok(())
}

/// The two routes: `/metrics` and `/healthz`.
pub fn router(bus: Bus, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .route("/healthz", get(healthz))
        .with_state(bus)
}

async fn healthz(AxumState(bus): AxumState<Bus>) -> (StatusCode, Json<tidings::Health>) {
    let health = bus.health().await;
    let status = if health.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health))
}

/// `GET <path>` on `addr`: the status code and the body (a client of a few
/// lines, enough for a server that answers with a length).
pub async fn fetch(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    conn.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();
    // The recorder first: series are registered with whatever recorder is
    // installed when a bus or a worker is made.
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let bus = Bus::builder().source("prometheus-demo").from_env().await?;
    let _gauges = bus.report_gauges(&["prometheus-demo"], Duration::from_millis(100))?;
    let worker = bus
        .consumer()
        .options(
            tidings::ConsumerOptions::default()
                .backoff(Duration::from_millis(10), Duration::from_millis(50)),
        )
        .handler(index)
        .state(Arc::new(AtomicBool::new(false)))
        .start()
        .await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = router(bus.clone(), metrics);
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("serving http://{addr}/metrics and http://{addr}/healthz");

    for n in 0..5 {
        bus.publish(&DocumentStored {
            document_id: format!("doc-{n}"),
        })
        .await?;
    }
    // Let the worker handle them (and retry the first), and the gauges tick.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (status, body) = fetch(addr, "/healthz").await?;
    println!("/healthz: {status} {body}");
    let (_, body) = fetch(addr, "/metrics").await?;
    println!("/metrics, the messaging series:");
    for line in body.lines().filter(|l| l.starts_with("messaging_")) {
        println!("  {line}");
    }
    worker.shutdown().await?;
    Ok(())
}
