//! Request and response over events: a file processor asks the embedder
//! service for a text's embedding and waits for the reply with the same
//! correlation id, as the records' `waitForEvent` does, without a map of
//! waiters or a reply group of its own.
//!
//! - `#[event(…, reply = EmbeddingGenerationCompleted)]` ties the request
//!   to its reply type, so `bus.request(&req)` returns the typed reply.
//! - The embedder is an ordinary `#[handler]` whose return value is the
//!   reply: published on `contextual` for every other group, and appended
//!   to the requester's own reply stream.
//! - Several requests are open at once on one bus, served by its one reply
//!   reader; a request nobody answers fails after its timeout with an error
//!   that names it.
//! - `bus.wait_for::<E>(&correlation_id)` waits for any event of a type
//!   with a correlation id, for flows that publish first and wait after.
//!
//! Run it in memory with `cargo run --example request_reply`, or on Redis
//! with `REDIS_URL=redis://127.0.0.1:6379 cargo run --example request_reply`.

use std::future::IntoFuture;
use std::time::Duration;

use tidings::{event, handler, Bus, Context, Error, HandlerResult, Meta};

/// Asks for the embedding of a file's text.
#[event(stream = "contextual", version = 1, reply = EmbeddingGenerationCompleted)]
#[derive(Debug)]
pub struct EmbeddingGenerationRequested {
    /// The file the text comes from.
    pub file_id: String,
    /// The text to embed.
    pub text_content: String,
}

/// The embedding of a file's text.
#[event(stream = "contextual", version = 1)]
#[derive(Debug)]
pub struct EmbeddingGenerationCompleted {
    /// The file the text came from.
    pub file_id: String,
    /// The embedding.
    pub embedding: Vec<f32>,
}

/// A stand-in for a model: eight numbers from the bytes of the text.
fn embed_text(text: &str) -> Vec<f32> {
    let mut v = [0f32; 8];
    for (i, b) in text.bytes().enumerate() {
        v[i % 8] += f32::from(b) / 255.0;
    }
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    v.iter().map(|x| x / norm).collect()
}

/// The embedder service: its return value is the reply.
#[handler(group = "embedder", concurrency = 4)]
async fn embed(
    req: EmbeddingGenerationRequested,
    _ctx: Context,
) -> HandlerResult<EmbeddingGenerationCompleted> {
    Ok(EmbeddingGenerationCompleted {
        file_id: req.file_id,
        embedding: embed_text(&req.text_content),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();
    let bus = Bus::builder().source("file-processor").from_env().await?;
    let embedder = bus.consumer().handler(embed).start().await?;

    // Three requests open at once; each gets its own reply.
    let texts = [
        ("f-1", "quarterly report"),
        ("f-2", "lab results"),
        ("f-3", "meeting notes"),
    ];
    let requests: Vec<EmbeddingGenerationRequested> = texts
        .iter()
        .map(|(id, text)| EmbeddingGenerationRequested {
            file_id: (*id).to_owned(),
            text_content: (*text).to_owned(),
        })
        .collect();
    let replies = futures::future::join_all(requests.iter().map(|r| {
        bus.request(r)
            .timeout(Duration::from_secs(30))
            .into_future()
    }))
    .await;
    for reply in replies {
        let done = reply?;
        println!(
            "reply for {}: {} dimensions, first {:.3}",
            done.file_id,
            done.embedding.len(),
            done.embedding[0]
        );
    }

    // Publish first, wait after: `wait_for` also sees an event published
    // just before the wait began.
    let req = EmbeddingGenerationRequested {
        file_id: "f-4".into(),
        text_content: "invoice".into(),
    };
    bus.publish_with(&req, Meta::default().correlation_id("upload-4"))
        .await?;
    let done = bus
        .wait_for::<EmbeddingGenerationCompleted>("upload-4")
        .timeout(Duration::from_secs(30))
        .await?;
    println!("waited for upload-4: {} dimensions", done.embedding.len());

    // With the embedder stopped, a request times out with a typed error.
    embedder.shutdown().await?;
    let lonely = EmbeddingGenerationRequested {
        file_id: "f-5".into(),
        text_content: "nobody answers".into(),
    };
    match bus
        .request(&lonely)
        .timeout(Duration::from_millis(300))
        .await
    {
        Err(e @ Error::RequestTimedOut { .. }) => println!("as expected: {e}"),
        Err(e) => return Err(e.into()),
        Ok(done) => {
            return Err(format!("a reply for {} with nobody to answer", done.file_id).into())
        }
    }
    println!("reply reader: {:?}", bus.request_stats());
    Ok(())
}
