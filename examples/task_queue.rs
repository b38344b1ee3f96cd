//! A background task queue with priorities: files to process (text
//! extraction, embedding generation, thumbnails), each task queued with the
//! priority the records give it (`priority: 'normal'`), handled highest
//! first by an ordinary `#[handler]` with retries, the tasks of one file in
//! the order they were queued (`key = file_id`), a task that keeps failing
//! moved to dead letters, and one task delayed until later.
//!
//! In-memory by default; on Redis with `REDIS_URL=redis://127.0.0.1:6379`.
//!
//! ```text
//! cargo run --example task_queue
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidings::{
    event, handler, Bus, ConsumerOptions, Context, HandlerResult, Meta, Priority, RetryPolicy,
    State,
};

/// What to do with a file.
#[tidings::payload]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingType {
    /// Read the text out of it.
    TextExtraction,
    /// Compute its embedding for the search index.
    EmbeddingGeneration,
    /// Render a small preview.
    Thumbnail,
}

/// A file to process in the background. The tasks of one file are handled
/// in the order they were queued: its key is the file.
#[event(stream = "file-tasks", version = 1, key = file_id)]
#[derive(Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct FileProcessingRequested {
    /// The file.
    pub file_id: String,
    /// Its name.
    pub filename: String,
    /// What to do with it.
    pub processing_type: ProcessingType,
}

/// The tasks handled, in order, as `level file type`.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

#[handler(group = "file-worker", concurrency = 2)]
async fn process_file(
    task: FileProcessingRequested,
    ctx: Context,
    State(log): State<Log>,
) -> HandlerResult {
    if task.filename.ends_with(".corrupt") {
        return Err(format!("{} cannot be read", task.filename).into());
    }
    // The work itself: a few milliseconds here, seconds in a real service.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let line = format!(
        "{} {:?} (key {})",
        task.filename,
        task.processing_type,
        ctx.partition_key().unwrap_or("-"),
    );
    println!("[file-worker] {line}");
    log.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    Ok(())
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
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
        .namespace("task-queue-example")
        .source("task_queue")
        .from_env()
        .await?;
    let dead_letters = bus.dead_letters("file-tasks")?;
    dead_letters.purge().await?;

    // Queued before any worker runs, as a backlog: (file, name, type, priority).
    use ProcessingType::*;
    let tasks = [
        ("f-1", "holiday.jpg", Thumbnail, "low"),
        ("f-2", "team.jpg", Thumbnail, "low"),
        ("f-3", "report.pdf", TextExtraction, "normal"),
        ("f-3", "report.pdf", EmbeddingGeneration, "normal"),
        ("f-4", "contract.pdf", TextExtraction, "high"),
        ("f-4", "contract.pdf", EmbeddingGeneration, "high"),
        ("f-5", "scan.corrupt", TextExtraction, "normal"),
        ("f-6", "invoice.pdf", TextExtraction, "high"),
    ];
    for (file_id, filename, processing_type, priority) in tasks {
        let priority: Priority = priority.parse()?;
        bus.publish_with(
            &FileProcessingRequested {
                file_id: file_id.into(),
                filename: filename.into(),
                processing_type,
            },
            Meta::default().priority(priority),
        )
        .await?;
        println!(
            "queued {filename} {processing_type:?} at {}",
            priority.as_str()
        );
    }
    bus.publish_with(
        &FileProcessingRequested {
            file_id: "f-7".into(),
            filename: "nightly.pdf".into(),
            processing_type: TextExtraction,
        },
        Meta::default().deliver_after(Duration::from_millis(500)),
    )
    .await?;
    println!("queued nightly.pdf TextExtraction, delayed by 500 ms");

    let log = Log::default();
    let worker = bus
        .consumer()
        .state(log.clone())
        .options(
            ConsumerOptions::default()
                .start_from(tidings::StartFrom::Beginning)
                .priorities(true),
        )
        .handler(process_file)
        .retry(
            RetryPolicy::default()
                .attempts(3)
                .backoff(Duration::from_millis(20)),
        )
        .start()
        .await?;

    wait_until("every good task is handled", async || {
        log.0.lock().map(|l| l.len()).unwrap_or(0) >= 8
    })
    .await?;
    wait_until("the corrupt file is in dead letters", async || {
        dead_letters.len().await.unwrap_or(0) >= 1
    })
    .await?;
    worker.shutdown().await?;
    for letter in dead_letters.list(10).await? {
        println!(
            "dead letter after {} attempts: {}",
            letter.attempts, letter.error
        );
    }
    println!("handled in this order:");
    for line in log.0.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        println!("  {line}");
    }
    Ok(())
}
