//! Redis Pub/Sub transport: fire-and-forget fan-out, at most once.
//!
//! A message reaches the subscribers connected at the moment it is published
//! and nobody else: a subscriber that is slow, disconnected or not yet
//! subscribed misses it, and nothing is retried. Use a stream when every
//! event must be handled.

use std::time::Duration;

use futures::StreamExt;
use redis::Pipeline;

use crate::backoff::Backoff;
use crate::streams::{Endpoint, SharedConnection};
use crate::transport::{
    ChannelTransport, Message, MessageBody, MessageStream, Outgoing, Target, TransportError,
};

/// Redis Pub/Sub: `PUBLISH` over the shared connection, each subscription
/// on a dedicated connection of its own (a subscribed connection can run no
/// other command).
#[derive(Clone)]
pub struct PubSubTransport {
    endpoint: Endpoint,
    conn: SharedConnection,
}

impl std::fmt::Debug for PubSubTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubTransport")
            .field("server", &self.endpoint.describe())
            .finish_non_exhaustive()
    }
}

impl PubSubTransport {
    /// A transport that publishes over `conn` and subscribes on
    /// connections of its own to the server `endpoint` names (behind
    /// Sentinel, the master at the time of each subscription).
    pub fn new(endpoint: Endpoint, conn: SharedConnection) -> Self {
        PubSubTransport { endpoint, conn }
    }
}

impl ChannelTransport for PubSubTransport {
    fn name(&self) -> &'static str {
        "redis-pubsub"
    }

    async fn broadcast(&self, batch: &[(&str, Outgoing<'_>)]) -> Result<(), TransportError> {
        let mut conn = self.conn.clone();
        match batch {
            [] => Ok(()),
            [(channel, o)] => {
                let _: i64 = redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(o.to_json())
                    .query_async(&mut conn)
                    .await?;
                Ok(())
            }
            _ => {
                let mut pipe = Pipeline::with_capacity(batch.len());
                for (channel, o) in batch {
                    pipe.cmd("PUBLISH").arg(channel).arg(o.to_json()).ignore();
                }
                let _: () = pipe.query_async(&mut conn).await?;
                Ok(())
            }
        }
    }

    /// Subscribes on a connection of its own; when that connection drops,
    /// subscribes again on a new one (with a backoff while Redis is away)
    /// and yields a [`MessageBody::Gap`] before the messages that follow.
    /// Ends only when the stream is dropped.
    async fn subscribe(&self, target: Target) -> Result<MessageStream, TransportError> {
        let first = subscribed(&self.endpoint, &target).await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Message>(BUFFERED);
        let endpoint = self.endpoint.clone();
        tokio::spawn(async move {
            let name = match &target {
                Target::Channel(c) | Target::Pattern(c) => c.clone(),
            };
            let backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
            let mut messages = first;
            loop {
                loop {
                    tokio::select! {
                        msg = messages.next() => match msg {
                            Some(m) => if tx.send(m).await.is_err() { return },
                            None => break,
                        },
                        () = tx.closed() => return,
                    }
                }
                let lost = tokio::time::Instant::now();
                tracing::warn!(target = %name, "Pub/Sub connection lost; subscribing again");
                crate::telemetry::reconnect("pubsub");
                let mut failed = 0u32;
                messages = loop {
                    match subscribed(&endpoint, &target).await {
                        Ok(m) => break m,
                        Err(e) => {
                            failed = failed.saturating_add(1);
                            tracing::debug!(target = %name, error = %e, "subscribing again failed");
                            tokio::select! {
                                () = tokio::time::sleep(backoff.delay(failed)) => {}
                                () = tx.closed() => return,
                            }
                        }
                    }
                };
                let gap = Message {
                    channel: name.clone(),
                    body: MessageBody::Gap {
                        down: lost.elapsed(),
                    },
                };
                if tx.send(gap).await.is_err() {
                    return;
                }
            }
        });
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|m| (m, rx))
        })))
    }
}

/// Messages a subscriber has not taken yet, at most: past it, reading from
/// Redis waits for the subscriber (Redis then buffers, up to its
/// `client-output-buffer-limit pubsub`).
const BUFFERED: usize = 4096;

/// A new connection subscribed to `target`, as a stream of its messages.
async fn subscribed(
    endpoint: &Endpoint,
    target: &Target,
) -> Result<impl futures::Stream<Item = Message> + Send + Unpin + 'static, TransportError> {
    let mut pubsub = endpoint.client().await?.get_async_pubsub().await?;
    match target {
        Target::Channel(c) => pubsub.subscribe(c).await?,
        Target::Pattern(p) => pubsub.psubscribe(p).await?,
    }
    Ok(pubsub.into_on_message().map(|msg| Message {
        channel: msg.get_channel_name().to_owned(),
        body: MessageBody::Json(msg.get_payload_bytes().to_vec()),
    }))
}
