//! Typed and untyped Pub/Sub subscriptions of a bus.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures::Stream;

use super::keys::channel_key;
use super::{on_channels, Bus};
use crate::envelope::Envelope;
use crate::error::{Error, ReceiveError};
use crate::transport::{ChannelTransport, MessageStream, Target};
use crate::{DecodeError, Event};

/// A typed Pub/Sub subscription: every `E` published on its channel while
/// the subscription is alive, decoded from whatever version was sent.
///
/// Pub/Sub is at most once: what is published while nobody is subscribed,
/// or while the connection is down, is lost. A message that does not decode
/// is logged (`warn`) and yielded as an `Err`, so that the caller sees it and
/// the subscription goes on.
pub struct EventStream<E> {
    inner: MessageStream,
    _event: PhantomData<fn() -> E>,
}

impl<E> fmt::Debug for EventStream<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("event", &std::any::type_name::<E>())
            .finish_non_exhaustive()
    }
}

impl<E: Event> Stream for EventStream<E> {
    type Item = Result<E, ReceiveError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(msg)) => {
                let channel = msg.channel.clone();
                let item = msg.envelope().and_then(|env| {
                    E::decode(env.dataversion, &env.data).map_err(ReceiveError::from)
                });
                match &item {
                    Err(e @ ReceiveError::Gap { .. }) => {
                        tracing::warn!(channel = %channel, error = %e, "Pub/Sub subscription resumed");
                    }
                    Err(e) => {
                        tracing::warn!(channel = %channel, error = %e, "undecodable Pub/Sub message");
                    }
                    Ok(_) => {}
                }
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A message received through a pattern subscription: the envelope and its
/// raw data, decoded on demand.
#[derive(Debug, Clone)]
pub struct AnyEvent {
    channel: String,
    envelope: Arc<Envelope>,
}

impl AnyEvent {
    /// The channel the message was published on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Every attribute and the raw data.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The `type` attribute.
    pub fn type_name(&self) -> &str {
        &self.envelope.type_name
    }

    /// The raw payload (JSON).
    pub fn data(&self) -> &[u8] {
        &self.envelope.data
    }

    /// Whether the message is of `E`'s type (any version).
    pub fn is<E: Event>(&self) -> bool {
        self.envelope.type_name == E::TYPE
    }

    /// Decodes the data as `E`, from its `dataversion`. It does not check the
    /// type: call [`AnyEvent::is`] first when the pattern spans several types.
    pub fn decode<E: Event>(&self) -> Result<E, DecodeError> {
        E::decode(self.envelope.dataversion, &self.envelope.data)
    }
}

/// A pattern subscription: every message on a matching channel, untyped.
/// At most once, like every Pub/Sub subscription; a message that is not a
/// valid envelope is logged and yielded as an `Err`.
pub struct AnyEventStream {
    inner: MessageStream,
}

impl fmt::Debug for AnyEventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyEventStream").finish_non_exhaustive()
    }
}

impl Stream for AnyEventStream {
    type Item = Result<AnyEvent, ReceiveError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(msg)) => {
                let channel = msg.channel.clone();
                let item = match msg.envelope() {
                    Ok(envelope) => Ok(AnyEvent { channel, envelope }),
                    Err(e) => {
                        tracing::warn!(channel = %channel, error = %e, "Pub/Sub message is not an envelope");
                        Err(e)
                    }
                };
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Bus {
    async fn open(&self, target: Target) -> Result<MessageStream, Error> {
        Ok(on_channels!(self.backend(), t => t.subscribe(target))?)
    }

    /// Subscribes to `E`'s channel (`ns:channel:type`, scoped to the tenant
    /// if any). Returns once the subscription is in place.
    ///
    /// ```text
    /// SUBSCRIBE ns:channel:type
    /// ```
    ///
    /// At most once: see [`EventStream`].
    pub async fn subscribe<E: Event>(&self) -> Result<EventStream<E>, Error> {
        let channel = E::CHANNEL.ok_or(Error::NoChannel { type_name: E::TYPE })?;
        let key = channel_key(
            &self.shared.namespace,
            self.tenant.as_deref(),
            channel,
            E::TYPE,
        );
        Ok(EventStream {
            inner: self.open(Target::Channel(key)).await?,
            _event: PhantomData,
        })
    }

    /// Subscribes to every type of `channel` whose name matches the glob
    /// `pattern` (`gate.*`), scoped to the tenant if any.
    ///
    /// ```text
    /// PSUBSCRIBE ns:channel:pattern          (ns:{tenant}:channel:pattern)
    /// ```
    ///
    /// `channel` follows the rule of [`Bus::tenant`]; `pattern` may hold the
    /// glob characters `*`, `?`, `[`, `]` but not `:`, braces, `\` or
    /// whitespace. Together they match only the types of `channel` on this
    /// bus's own scope: never another tenant's channels, nor (from a
    /// tenant's bus) the root bus's.
    ///
    /// ```
    /// # async fn run() -> Result<(), tidings::Error> {
    /// let bus = tidings::Bus::in_memory();
    /// assert!(bus.subscribe_pattern("gates", "gate.*").await.is_ok());
    /// assert!(bus.subscribe_pattern("acme:gates", "*").await.is_err());
    /// assert!(bus.subscribe_pattern("gates", "*:*").await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn subscribe_pattern(
        &self,
        channel: &str,
        pattern: &str,
    ) -> Result<AnyEventStream, Error> {
        let key = self.channel_pattern(channel, pattern)?;
        Ok(AnyEventStream {
            inner: self.open(Target::Pattern(key)).await?,
        })
    }
}
