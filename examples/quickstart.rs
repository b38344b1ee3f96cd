//! Quickstart: a versioned event on a stream, a handler in a consumer group,
//! and an old v1 payload upcast to v2 on the way in.
//!
//! In-memory by default; on Redis with `REDIS_URL=redis://127.0.0.1:6379`.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidings::{event, handler, Bus, Context, HandlerResult, State};

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
        // v1 carried no MIME type: guess it from the extension.
        let mime_type = match v1.filename.rsplit('.').next() {
            Some("pdf") => Some("application/pdf".to_owned()),
            Some("png") => Some("image/png".to_owned()),
            _ => None,
        };
        FileUploaded {
            file_id: v1.file_id,
            filename: v1.filename,
            mime_type,
        }
    }
}

/// What the handler writes to: shared state, given to the consumer once with
/// `.state(index)` and taken by the handler as `State<SearchIndex>`.
#[derive(Debug, Clone, Default)]
struct SearchIndex {
    files: Arc<Mutex<Vec<String>>>,
}

impl SearchIndex {
    fn len(&self) -> usize {
        self.files.lock().map_or(0, |f| f.len())
    }
}

#[handler(group = "file-processor", retries = 5)]
async fn index_file(
    event: FileUploaded,
    ctx: Context,
    State(index): State<SearchIndex>,
) -> HandlerResult {
    let version = ctx.envelope().map_or(0, |e| e.dataversion);
    println!(
        "[file-processor] indexed {} `{}` ({}), sent as v{version}",
        event.file_id,
        event.filename,
        event.mime_type.as_deref().unwrap_or("unknown type"),
    );
    index
        .files
        .lock()
        .map_err(|_| "index lock poisoned")?
        .push(event.file_id);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let bus = Bus::builder().source("quickstart").from_env().await?;
    let index = SearchIndex::default();
    let worker = bus
        .consumer()
        .state(index.clone())
        .handler(index_file)
        .start()
        .await?;
    println!(
        "worker `{}` reads {}",
        worker.consumer_name(),
        bus.stream_key("contextual")?
    );

    let published = bus
        .publish(&FileUploaded {
            file_id: "f-1".into(),
            filename: "report.txt".into(),
            mime_type: Some("text/plain".into()),
        })
        .await?;
    println!(
        "published v2 {} as entry {:?}",
        published.event_id, published.entry_id
    );

    let published = bus
        .publish(&FileUploadedV1 {
            file_id: "f-2".into(),
            filename: "scan.pdf".into(),
        })
        .await?;
    println!(
        "published v1 {} as entry {:?} (an older service)",
        published.event_id, published.entry_id
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while index.len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown().await?;
    let handled = index.len();
    println!("handled {handled} events; worker stopped");
    if handled < 2 {
        return Err("the worker did not handle both events within 10 s".into());
    }
    Ok(())
}
