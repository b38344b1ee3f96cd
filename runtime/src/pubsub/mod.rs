//! Redis Pub/Sub transport: fire-and-forget fan-out, at most once.
//!
//! A message reaches the subscribers connected at the moment it is published
//! and nobody else: a subscriber that is slow, disconnected or not yet
//! subscribed misses it, and nothing is retried. Use a stream when every
//! event must be handled.

use futures::StreamExt;
use redis::aio::ConnectionManager;
use redis::{Client, Pipeline};

use crate::transport::{
    ChannelTransport, Message, MessageBody, MessageStream, Outgoing, Target, TransportError,
};

/// Redis Pub/Sub: `PUBLISH` over the shared connection, each subscription
/// on a dedicated connection of its own (a subscribed connection can run no
/// other command).
#[derive(Clone)]
pub struct PubSubTransport {
    client: Client,
    conn: ConnectionManager,
}

impl std::fmt::Debug for PubSubTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubTransport")
            .field("server", &self.client.get_connection_info().addr())
            .finish_non_exhaustive()
    }
}

impl PubSubTransport {
    /// A transport that publishes over `conn` and subscribes through `client`.
    pub fn new(client: Client, conn: ConnectionManager) -> Self {
        PubSubTransport { client, conn }
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

    async fn subscribe(&self, target: Target) -> Result<MessageStream, TransportError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        match &target {
            Target::Channel(c) => pubsub.subscribe(c).await?,
            Target::Pattern(p) => pubsub.psubscribe(p).await?,
        }
        let stream = pubsub.into_on_message().map(|msg| Message {
            channel: msg.get_channel_name().to_owned(),
            body: MessageBody::Json(msg.get_payload_bytes().to_vec()),
        });
        Ok(Box::pin(stream))
    }
}
