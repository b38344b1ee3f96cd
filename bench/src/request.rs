//! The request/response round trip: `bus.request` answered by a
//! `#[handler]`, beside the same round trip written by hand on redis-rs (the
//! requester `XADD`s the request with a reply key and waits on that key with
//! `XREAD BLOCK`; the responder reads the request with `XREADGROUP`,
//! `XADD`s the reply to the reply key and acknowledges).

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::Value;
use tidings::{handler, Bus, Context, HandlerResult};

use crate::events::{MeasureText, TextMeasured};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[handler(group = "measurer")]
async fn measure(req: MeasureText, _ctx: Context) -> HandlerResult<TextMeasured> {
    Ok(TextMeasured {
        length: req.text.len() as u64,
    })
}

/// Nanoseconds of `n` sequential `bus.request` round trips (after `warmup`
/// untimed ones), requester and responder on buses of their own.
pub async fn tidings_round_trips(url: &str, n: usize, warmup: usize) -> Result<Vec<u64>, BoxError> {
    let responder_bus = Bus::builder()
        .namespace("rr")
        .source("responder")
        .connect(url)
        .await?;
    let requester = Bus::builder()
        .namespace("rr")
        .source("requester")
        .connect(url)
        .await?;
    let worker = responder_bus.consumer().handler(measure).start().await?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n + warmup {
        let req = MeasureText {
            text: format!("text number {i}"),
        };
        let start = Instant::now();
        let reply = requester
            .request(&req)
            .timeout(Duration::from_secs(10))
            .await?;
        let took = start.elapsed().as_nanos() as u64;
        if reply.length != req.text.len() as u64 {
            return Err(format!("wrong reply {reply:?} to {req:?}").into());
        }
        if i >= warmup {
            out.push(took);
        }
    }
    worker.shutdown().await?;
    Ok(out)
}

/// The same round trips written by hand.
pub async fn raw_round_trips(
    client: &redis::Client,
    n: usize,
    warmup: usize,
) -> Result<Vec<u64>, BoxError> {
    const REQUESTS: &str = "rawrr:{requests}";
    const REPLIES: &str = "rawrr:{reply:bench}";
    let mut publish = client.get_multiplexed_async_connection().await?;
    let patient = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut wait = client
        .get_multiplexed_async_connection_with_config(&patient)
        .await?;
    let mut serve = client
        .get_multiplexed_async_connection_with_config(&patient)
        .await?;
    let _: Value = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(REQUESTS)
        .arg("measurer")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut publish)
        .await?;
    let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
    let responder = tokio::spawn(async move {
        loop {
            if stop.try_recv().is_ok() {
                return Ok::<(), redis::RedisError>(());
            }
            let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("measurer")
                .arg("c1")
                .arg("COUNT")
                .arg(10)
                .arg("BLOCK")
                .arg(200)
                .arg("STREAMS")
                .arg(REQUESTS)
                .arg(">")
                .query_async(&mut serve)
                .await?;
            for key in read.keys {
                for entry in key.ids {
                    let text: String = entry.get("data").unwrap_or_default();
                    let cid: String = entry.get("cid").unwrap_or_default();
                    let reply_to: String = entry.get("replyto").unwrap_or_default();
                    let _: String = redis::cmd("XADD")
                        .arg(&reply_to)
                        .arg("*")
                        .arg("cid")
                        .arg(&cid)
                        .arg("data")
                        .arg(text.len())
                        .query_async(&mut serve)
                        .await?;
                    let _: i64 = redis::cmd("XACK")
                        .arg(REQUESTS)
                        .arg("measurer")
                        .arg(&entry.id)
                        .query_async(&mut serve)
                        .await?;
                }
            }
        }
    });
    let mut last = "0-0".to_owned();
    let mut out = Vec::with_capacity(n);
    for i in 0..n + warmup {
        let text = format!("text number {i}");
        let cid = i.to_string();
        let start = Instant::now();
        let _: String = redis::cmd("XADD")
            .arg(REQUESTS)
            .arg("*")
            .arg("cid")
            .arg(&cid)
            .arg("replyto")
            .arg(REPLIES)
            .arg("data")
            .arg(&text)
            .query_async(&mut publish)
            .await?;
        let length = loop {
            let read: redis::streams::StreamReadReply = redis::cmd("XREAD")
                .arg("BLOCK")
                .arg(10_000)
                .arg("STREAMS")
                .arg(REPLIES)
                .arg(&last)
                .query_async(&mut wait)
                .await?;
            let entry = read
                .keys
                .into_iter()
                .flat_map(|k| k.ids)
                .last()
                .ok_or("no reply within 10 s")?;
            last = entry.id.clone();
            let got: String = entry.get("cid").unwrap_or_default();
            if got == cid {
                break entry.get::<u64>("data").unwrap_or_default();
            }
        };
        let took = start.elapsed().as_nanos() as u64;
        if length != text.len() as u64 {
            return Err(format!("wrong reply {length} to {text:?}").into());
        }
        if i >= warmup {
            out.push(took);
        }
    }
    let _ = stop_tx.send(());
    responder.await??;
    Ok(out)
}

/// Deletes what the round trips left.
pub async fn clean(conn: &mut MultiplexedConnection) -> Result<(), BoxError> {
    let _: Value = redis::cmd("DEL")
        .arg("rawrr:{requests}")
        .arg("rawrr:{reply:bench}")
        .arg("rr:{bench-requests}")
        .query_async(conn)
        .await?;
    Ok(())
}
