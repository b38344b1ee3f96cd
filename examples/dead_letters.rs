//! Dead letters: a handler that fails while a service it needs is down, its
//! events moved to dead letters after the last retry, then put back into the
//! stream once the fix is deployed, and handled with their original ids.
//!
//! In-memory by default; on Redis with `REDIS_URL=redis://127.0.0.1:6379`.
//!
//! ```text
//! cargo run --example dead_letters
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tidings::{event, handler, Bus, Context, HandlerResult, RetryPolicy};

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

/// Whether the thumbnail service is back.
static FIXED: AtomicBool = AtomicBool::new(false);
static HANDLED: AtomicUsize = AtomicUsize::new(0);

#[handler(group = "thumbnailer")]
async fn make_thumbnail(event: FileUploaded, ctx: Context) -> HandlerResult {
    if !FIXED.load(Ordering::SeqCst) {
        return Err(tidings::retry(format!(
            "thumbnail service unreachable for {}",
            event.file_id
        )));
    }
    println!(
        "[thumbnailer] thumbnail of {} `{}` made (event {})",
        event.file_id,
        event.filename,
        ctx.event_id().map(|i| i.to_string()).unwrap_or_default()
    );
    HANDLED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done().await {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("timed out waiting until {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,tidings_runtime=off".into()),
        )
        .init();

    // A namespace of its own, so a run on a shared Redis starts clean.
    let bus = Bus::builder()
        .namespace("dead-letters-example")
        .source("dead_letters")
        .from_env()
        .await?;
    let dlq = bus.dead_letters("contextual")?;
    dlq.purge().await?;

    let worker = bus
        .consumer()
        .handler(make_thumbnail)
        .retry(
            RetryPolicy::default()
                .attempts(3)
                .backoff(Duration::from_millis(50)),
        )
        .start()
        .await?;

    for (id, name) in [("f-1", "cat.png"), ("f-2", "dog.png"), ("f-3", "eel.png")] {
        let published = bus
            .publish(&FileUploaded {
                file_id: id.into(),
                filename: name.into(),
                mime_type: Some("image/png".into()),
            })
            .await?;
        println!("published {id} as event {}", published.event_id);
    }

    println!("the thumbnail service is down: each event is tried 3 times…");
    wait_until("3 dead letters", async || dlq.len().await.unwrap_or(0) >= 3).await?;
    for letter in dlq.list(10).await? {
        let event = letter.envelope.as_ref().map(|e| e.id.to_string());
        println!(
            "dead letter {}: entry {} of group `{}`, {} attempts, event {}: {}",
            letter.id,
            letter.entry_id,
            letter.group,
            letter.attempts,
            event.unwrap_or_else(|e| e.to_string()),
            letter.error,
        );
    }

    println!("the fix is deployed; retrying every dead letter");
    FIXED.store(true, Ordering::SeqCst);
    let moved = dlq.retry_all().await?;
    println!(
        "{moved} events put back into {}",
        bus.stream_key("contextual")?
    );
    wait_until("3 thumbnails", async || HANDLED.load(Ordering::SeqCst) >= 3).await?;

    worker.shutdown().await?;
    println!(
        "handled {} events, {} dead letters left; worker stopped",
        HANDLED.load(Ordering::SeqCst),
        dlq.len().await?
    );
    Ok(())
}
