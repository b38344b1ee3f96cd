//! The WebSocket bridge: the same sources, scopes and slow-client rule as
//! Server-Sent Events, one JSON text message per event.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::response::Response;
use futures::SinkExt;
use serde::Deserialize;

use crate::bridge::{check_entry_id, Admitted, Bridge, Source};
use crate::client::{Client, Next};
use crate::error::WebError;

/// How long a stream client has to send its first message (the resume
/// position) after the upgrade.
const FIRST_MESSAGE_WITHIN: Duration = Duration::from_secs(10);

/// Close code for a client that broke the protocol (RFC 6455 1008).
const POLICY: u16 = 1008;
/// Close code for a client dropped for falling behind (RFC 6455 1013,
/// "try again later").
const TRY_AGAIN: u16 = 1013;

/// The first message of a stream client: where to resume.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Resume {
    /// The last entry id the client has; `null` for "from now on".
    after: Option<String>,
}

impl Bridge {
    /// A WebSocket response for `source`, as the request may see it
    /// (`tenant` as in [`Bridge::sse`]). The hook and every name are checked
    /// before the upgrade, so a refused request gets its HTTP status (401,
    /// 403, 400) instead of a socket.
    ///
    /// Each event is one text message, `{"event": <CloudEvents JSON>}`, with
    /// `"entry_id"` beside `"event"` from a stream; `{"gap": {"down_ms": n}}`
    /// when the Pub/Sub connection dropped and was subscribed again. On a
    /// stream, the client's first message says where to resume:
    /// `{"after": "<entry id>"}`, or `{"after": null}` for from now on; a
    /// first message that is anything else closes the socket with 1008. A
    /// client that falls [`BridgeOptions::buffer`](crate::BridgeOptions)
    /// events behind is closed with 1013 and the reason `overflow: missed
    /// <n>`; on a stream, it reconnects with its last entry id and misses
    /// nothing.
    pub async fn websocket(
        &self,
        request: &Parts,
        upgrade: WebSocketUpgrade,
        source: &Source,
        tenant: Option<&str>,
    ) -> Result<Response, WebError> {
        let admitted = self.admit(request, tenant)?;
        match source {
            Source::Pattern { .. } => {
                // Subscribed before the upgrade answers, so an event
                // published once the socket is open reaches the client.
                let client = self.client(admitted, source, None).await?;
                Ok(upgrade.on_upgrade(move |socket| serve(socket, client)))
            }
            Source::Stream { stream } => {
                admitted
                    .bus
                    .stream_key(stream)
                    .map_err(WebError::from_bus)?;
                let bridge = self.clone();
                let source = source.clone();
                Ok(upgrade.on_upgrade(move |socket| resume(bridge, socket, admitted, source)))
            }
        }
    }
}

/// Reads the resume position, then serves the stream client.
async fn resume(bridge: Bridge, mut socket: WebSocket, admitted: Admitted, source: Source) {
    let after = match tokio::time::timeout(FIRST_MESSAGE_WITHIN, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<Resume>(&text) {
            Ok(r) => r.after,
            Err(e) => return close(socket, POLICY, &format!("bad first message: {e}")).await,
        },
        Ok(Some(Ok(_))) => {
            return close(
                socket,
                POLICY,
                "the first message must be text: {\"after\": <entry id or null>}",
            )
            .await
        }
        Ok(_) => return,
        Err(_) => {
            return close(
                socket,
                POLICY,
                "no first message: send {\"after\": <entry id or null>}",
            )
            .await
        }
    };
    if let Some(id) = &after {
        if let Err(e) = check_entry_id(id) {
            return close(socket, POLICY, &e.to_string()).await;
        }
    }
    match bridge.client(admitted, &source, after.as_deref()).await {
        Ok(client) => {
            // Tells the client the subscription is in place.
            let ready = serde_json::json!({ "ready": true }).to_string();
            if socket.send(Message::Text(ready.into())).await.is_ok() {
                serve(socket, client).await;
            }
        }
        Err(e) => close(socket, POLICY, &e.to_string()).await,
    }
}

/// Sends the client's frames until it leaves, falls behind, or the source
/// ends; answers its pings, ignores what else it sends.
async fn serve(mut socket: WebSocket, mut client: Client) {
    loop {
        tokio::select! {
            next = client.next() => match next {
                // A batch is queued whole, then flushed once.
                Next::Frames(frames) => {
                    for frame in frames {
                        if socket.feed(Message::Text(frame.ws().into())).await.is_err() {
                            return;
                        }
                    }
                    if socket.flush().await.is_err() {
                        return;
                    }
                }
                Next::Overflow { missed } => {
                    return close(socket, TRY_AGAIN, &format!("overflow: missed {missed}")).await;
                }
                Next::Failed(reason) => return close(socket, TRY_AGAIN, &reason).await,
                Next::End => return close(socket, 1000, "the source ended").await,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    // A close reason is at most 123 bytes (RFC 6455 5.5).
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(&reason[..end]),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}
