//! The live-view figures' two sides: browsers on the SSE bridge (many
//! HTTP/1.1 connections reading `text/event-stream`, as `EventSource` does)
//! and the baseline, one direct Redis Pub/Sub subscriber. Both read the
//! sender's clock out of each event and keep the delay.

use std::net::SocketAddr;

use futures::StreamExt;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The key of the sender's clock in an event's JSON.
const KEY: &str = "\"sent_ns\":";

/// `"sent_ns":<digits>` out of an event's JSON: found by its key, so the
/// reading side costs next to nothing beside what it measures.
pub fn sent_ns(event: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(event).ok()?;
    clock(&event[text.find(KEY)? + KEY.len()..])
}

/// The number `digits` starts with.
fn clock(digits: &[u8]) -> Option<u64> {
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&digits[..n]).ok()?.parse().ok()
}

/// One browser: a connection to `path`, reading events until the one with
/// `sent_ns` 0; calls `now` on each event and keeps `now - sent_ns` of those
/// sent at or after `from_ns`. Returns once the response headers are in (the
/// subscription is then in place), with the task that reads.
pub async fn browser(
    addr: SocketAddr,
    path: &str,
    from_ns: std::sync::Arc<std::sync::atomic::AtomicU64>,
    now: fn() -> u64,
) -> Result<tokio::task::JoinHandle<Vec<u64>>, BoxError> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", addr.to_string())
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())?;
    let res = sender.send_request(req).await?;
    if !res.status().is_success() {
        return Err(format!("GET {path}: {}", res.status()).into());
    }
    let mut body = res.into_body();
    Ok(tokio::spawn(async move {
        let mut delays = Vec::new();
        let mut buf = String::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let at = now();
            match std::str::from_utf8(&data) {
                Ok(text) => buf.push_str(text),
                // A character cut between two frames, never in this JSON.
                Err(_) => buf.push_str(&String::from_utf8_lossy(&data)),
            }
            // Only whole events: what follows the last blank line waits for
            // the rest of its event.
            let Some(end) = buf.rfind("\n\n") else {
                continue;
            };
            for (i, _) in buf[..end].match_indices(KEY) {
                match clock(&buf.as_bytes()[i + KEY.len()..]) {
                    Some(0) => return delays,
                    Some(sent) if sent >= from_ns.load(std::sync::atomic::Ordering::Relaxed) => {
                        delays.push(at.saturating_sub(sent));
                    }
                    _ => {}
                }
            }
            buf.drain(..end + 2);
        }
        delays
    }))
}

/// The baseline: one `PSUBSCRIBE` of its own, reading messages until the
/// one with `sent_ns` 0. Returns once subscribed, with the task that reads.
pub async fn direct(
    client: &redis::Client,
    pattern: &str,
    from_ns: std::sync::Arc<std::sync::atomic::AtomicU64>,
    now: fn() -> u64,
) -> Result<tokio::task::JoinHandle<Vec<u64>>, BoxError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(pattern).await?;
    Ok(tokio::spawn(async move {
        let mut delays = Vec::new();
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let at = now();
            match sent_ns(msg.get_payload_bytes()) {
                Some(0) => break,
                Some(sent) if sent >= from_ns.load(std::sync::atomic::Ordering::Relaxed) => {
                    delays.push(at.saturating_sub(sent));
                }
                _ => {}
            }
        }
        delays
    }))
}

#[cfg(test)]
mod tests {
    use super::sent_ns;

    #[test]
    fn the_clock_is_read_out_of_the_json() {
        assert_eq!(
            sent_ns(br#"data: {"data":{"sent_ns":1234},"x":1}"#),
            Some(1234)
        );
        assert_eq!(sent_ns(br#"{"sent_ns":0}"#), Some(0));
        assert_eq!(sent_ns(b"nothing"), None);
    }
}
