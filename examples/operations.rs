//! Operating a stream from code: a readiness probe, a consumer group's
//! consumers and position, a replay of the last hour into a handler, and a
//! trim that keeps what a group has not read.
//!
//! In-memory by default; on Redis with `REDIS_URL=redis://127.0.0.1:6379`.
//!
//! ```text
//! cargo run --example operations
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use tidings::{event, handler, Bus, ConsumerOptions, Context, HandlerResult, Position, Retention};

/// v1, as an older service still publishes it.
#[event(stream = "contextual", version = 1)]
#[derive(Debug)]
pub struct FileUploadedV1 {
    /// The file.
    pub file_id: String,
    /// Its name.
    pub filename: String,
}

/// v2 adds the MIME type; v1 payloads are upcast through `From`.
#[event(stream = "contextual", version = 2, upcast_from = FileUploadedV1)]
#[derive(Debug)]
pub struct FileUploaded {
    /// The file.
    pub file_id: String,
    /// Its name.
    pub filename: String,
    /// Its MIME type, if known.
    pub mime_type: Option<String>,
}

impl From<FileUploadedV1> for FileUploaded {
    fn from(v1: FileUploadedV1) -> Self {
        FileUploaded {
            file_id: v1.file_id,
            filename: v1.filename,
            mime_type: None,
        }
    }
}

static INDEXED: AtomicUsize = AtomicUsize::new(0);
static AUDITED: AtomicUsize = AtomicUsize::new(0);

#[handler(group = "ops-indexer")]
async fn index(_e: FileUploaded, _ctx: Context) -> HandlerResult {
    INDEXED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[handler(group = "ops-audit")]
async fn audit(_e: FileUploaded, _ctx: Context) -> HandlerResult {
    AUDITED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

async fn until(what: &str, cond: impl Fn() -> bool) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..500 {
        if cond() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("timed out waiting for {what}").into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let bus = Bus::from_env().await?;
    let started = SystemTime::now();
    let worker = bus
        .consumer()
        .options(ConsumerOptions::default().block(Duration::from_millis(200)))
        .handler(index)
        .start()
        .await?;
    for i in 0..20 {
        bus.publish(&FileUploaded {
            file_id: format!("f-{i}"),
            filename: format!("report-{i}.txt"),
            mime_type: Some("text/plain".into()),
        })
        .await?;
    }
    until("20 indexed", || INDEXED.load(Ordering::SeqCst) >= 20).await?;

    // A readiness probe: Redis answers, the worker reads, no group lags.
    let health = bus.health().await;
    println!(
        "ready: {} ({} reading loop(s), problems: {:?})",
        health.ready,
        health.readers.len(),
        health.problems
    );

    // The group, as an operator sees it.
    let group = bus.group("contextual", "ops-indexer")?;
    for c in group.consumers().await? {
        println!("consumer {} has {} pending", c.name, c.pending);
    }
    println!("pending entries: {}", group.pending(100).await?.len());

    // Replay the last hour into another handler, touching no group.
    let report = bus
        .replay("contextual")?
        .since(started - Duration::from_secs(3600))
        .handler(audit)
        .run()
        .await?;
    println!(
        "replayed {} entries: {} handled, {} failed",
        report.read,
        report.handled,
        report.failed.len()
    );

    // Keep 5 entries: a group that has read nothing holds the trim back.
    let lagging = bus.group("contextual", "ops-late")?;
    lagging.create(tidings::StartFrom::Beginning).await?;
    let keep = Retention::max_len(5).exact();
    let held = bus.trim("contextual", &keep).await?;
    println!(
        "trim with a lagging group: {} trimmed, held back by {:?}",
        held.trimmed, held.held_back_by
    );
    lagging.set_position(Position::End).await?;
    let done = bus.trim("contextual", &keep).await?;
    println!("trim once it caught up: {} trimmed", done.trimmed);
    lagging.delete().await?;

    worker.shutdown().await?;
    Ok(())
}
