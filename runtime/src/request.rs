//! Request and response over events: [`Bus::request`] publishes a request
//! and waits for the typed reply its responder (an ordinary `#[handler]`)
//! returns; [`Bus::wait_for`] waits for any event of a type with a
//! correlation id. Both are served by the one reply reader of the bus
//! instance (see the `replies` module of the bus).

use std::future::IntoFuture;
use std::marker::PhantomData;
use std::time::Duration;

use crate::bus::{Bus, Meta};
use crate::error::Error;
use crate::event::{Event, Request};
use crate::handler::BoxFuture;
use crate::stats::RequestStats;
use crate::Ulid;

/// How long [`Bus::request`] and [`Bus::wait_for`] wait unless told.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Bus {
    /// Publishes a request and waits for its reply: the event of type
    /// `R::Reply` (the `reply = …` of the request's `#[event]`) with the
    /// request's correlation id, which the responder's handler returns.
    ///
    /// The request carries `correlationid` (its own id, unless the
    /// [`RequestCall::meta`] sets one) and `replyto`, this bus instance's
    /// reply stream `ns:{reply:<instance>}`. The responder publishes the
    /// reply where its own `#[event]` says, so other groups see it too, and
    /// appends it to `replyto`, where the one reply reader of this bus
    /// instance hands it over. A request costs its publish and nothing
    /// more: no task, connection or Redis call of its own. With several
    /// instances of requester and responder, each reply reaches the
    /// instance that asked.
    ///
    /// Waits [`DEFAULT_REQUEST_TIMEOUT`] unless told otherwise
    /// ([`RequestCall::timeout`]); then fails with
    /// [`Error::RequestTimedOut`], naming the request type, the correlation
    /// id and the time waited. A reply that comes later is dropped and
    /// counted ([`Bus::request_stats`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidings::{event, handler, Bus, Context, HandlerResult};
    ///
    /// #[event(stream = "embedding-docs", version = 1)]
    /// pub struct EmbeddingGenerationCompleted { pub dimensions: u32 }
    ///
    /// #[event(stream = "embedding-docs", version = 1, reply = EmbeddingGenerationCompleted)]
    /// pub struct EmbeddingGenerationRequested { pub text_content: String }
    ///
    /// #[handler(group = "embedder")]
    /// async fn embed(req: EmbeddingGenerationRequested, _ctx: Context)
    ///     -> HandlerResult<EmbeddingGenerationCompleted> {
    ///     Ok(EmbeddingGenerationCompleted { dimensions: req.text_content.len() as u32 })
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = Bus::in_memory();
    /// let responder = bus.consumer().handler(embed).start().await?;
    /// let done = bus
    ///     .request(&EmbeddingGenerationRequested { text_content: "hello".into() })
    ///     .timeout(Duration::from_secs(5))
    ///     .await?;
    /// assert_eq!(done.dimensions, 5);
    /// responder.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub fn request<'a, R: Request>(&'a self, request: &'a R) -> RequestCall<'a, R> {
        RequestCall {
            bus: self,
            request,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            meta: Meta::default(),
        }
    }

    /// Waits for an event of type `E` with `correlationid` equal to
    /// `correlation_id` on `E`'s stream (on this bus's tenant, if it has
    /// one), and returns it decoded.
    ///
    /// It sees the events appended from a few seconds (5) before the wait
    /// began on, so that an event published just before the wait (the
    /// usual race: publish a request, then wait for its outcome) is not
    /// missed. Served by the same reader as [`Bus::request`]: the first
    /// wait on a stream adds it to what that reader reads, and a wait costs
    /// no Redis call of its own. Waits [`DEFAULT_REQUEST_TIMEOUT`] unless
    /// told otherwise ([`WaitFor::timeout`]); then fails with
    /// [`Error::WaitTimedOut`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tidings::{event, Bus, Meta};
    /// #[event(stream = "embedding-wait-docs", version = 1)]
    /// pub struct EmbeddingGenerationCompleted { pub dimensions: u32 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tidings::Error> {
    /// let bus = Bus::in_memory();
    /// let done = EmbeddingGenerationCompleted { dimensions: 384 };
    /// bus.publish_with(&done, Meta::default().correlation_id("file-7")).await?;
    /// let seen = bus
    ///     .wait_for::<EmbeddingGenerationCompleted>("file-7")
    ///     .timeout(Duration::from_secs(5))
    ///     .await?;
    /// assert_eq!(seen.dimensions, 384);
    /// # Ok(()) }
    /// ```
    pub fn wait_for<E: Event>(&self, correlation_id: impl Into<String>) -> WaitFor<'_, E> {
        WaitFor {
            bus: self,
            correlation_id: correlation_id.into(),
            timeout: DEFAULT_REQUEST_TIMEOUT,
            _event: PhantomData,
        }
    }

    /// What the reply reader of this bus instance has seen: open requests
    /// and waits, replies handed over, and late replies dropped.
    pub fn request_stats(&self) -> RequestStats {
        self.replies().stats()
    }

    /// The reply stream of this bus instance, `ns:{reply:<instance>}`: the
    /// `replyto` of its requests.
    pub fn reply_stream(&self) -> &str {
        self.replies().key()
    }
}

/// A request being made: set its timeout or attributes, then `.await` it
/// for the reply (see [`Bus::request`]).
#[must_use = "a request does nothing until it is awaited"]
pub struct RequestCall<'a, R> {
    bus: &'a Bus,
    request: &'a R,
    timeout: Duration,
    meta: Meta,
}

impl<R> std::fmt::Debug for RequestCall<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestCall")
            .field("timeout", &self.timeout)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl<R: Request> RequestCall<'_, R> {
    /// How long to wait for the reply, the publish included (default
    /// [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Attributes of the request: its correlation id (the request's own id
    /// otherwise), tenant, subject, trace, extensions, event id.
    pub fn meta(mut self, meta: Meta) -> Self {
        self.meta = meta;
        self
    }

    async fn call(self) -> Result<R::Reply, Error> {
        let RequestCall {
            bus,
            request,
            timeout,
            mut meta,
        } = self;
        if R::STREAM.is_none() {
            return Err(Error::NoStreamToWait { type_name: R::TYPE });
        }
        let started = tokio::time::Instant::now();
        let deadline = started + timeout;
        let id = *meta.event_id.get_or_insert_with(Ulid::new);
        let correlation_id = meta
            .correlation_id
            .get_or_insert_with(|| id.to_string())
            .clone();
        let timed_out = |correlation_id: String| Error::RequestTimedOut {
            request_type: R::TYPE,
            reply_type: <R::Reply as Event>::TYPE,
            correlation_id,
            waited: started.elapsed(),
        };
        let replies = bus.replies();
        match tokio::time::timeout_at(deadline, replies.open(bus.backend())).await {
            Ok(opened) => opened?,
            Err(_) => return Err(timed_out(correlation_id)),
        }
        meta.reply_to = Some(replies.key().to_owned());
        // Waiting before the request goes out: a reply cannot beat it.
        let mut waiter = replies.wait(
            bus.backend(),
            replies.key(),
            <R::Reply as Event>::TYPE,
            &correlation_id,
        );
        match tokio::time::timeout_at(deadline, bus.publish_with(request, meta)).await {
            Ok(published) => published?,
            Err(_) => return Err(timed_out(correlation_id)),
        };
        match tokio::time::timeout_at(deadline, waiter.recv()).await {
            Ok(Some(envelope)) => Ok(<R::Reply as Event>::decode(
                envelope.dataversion,
                &envelope.data,
            )?),
            // The reader is gone with its bus, or the time is up.
            Ok(None) | Err(_) => Err(timed_out(correlation_id)),
        }
    }
}

impl<'a, R: Request> IntoFuture for RequestCall<'a, R> {
    type Output = Result<R::Reply, Error>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.call())
    }
}

/// A wait for an event with a correlation id: set its timeout, then
/// `.await` it (see [`Bus::wait_for`]).
#[must_use = "a wait does nothing until it is awaited"]
pub struct WaitFor<'a, E> {
    bus: &'a Bus,
    correlation_id: String,
    timeout: Duration,
    _event: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for WaitFor<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitFor")
            .field("correlation_id", &self.correlation_id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<E: Event> WaitFor<'_, E> {
    /// How long to wait (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn call(self) -> Result<E, Error> {
        let started = tokio::time::Instant::now();
        let stream = E::STREAM.ok_or(Error::NoStreamToWait { type_name: E::TYPE })?;
        let key = self.bus.stream_key(stream)?;
        let mut waiter =
            self.bus
                .replies()
                .wait(self.bus.backend(), &key, E::TYPE, &self.correlation_id);
        match tokio::time::timeout(self.timeout, waiter.recv()).await {
            Ok(Some(envelope)) => Ok(E::decode(envelope.dataversion, &envelope.data)?),
            Ok(None) | Err(_) => Err(Error::WaitTimedOut {
                type_name: E::TYPE,
                stream: key,
                correlation_id: self.correlation_id,
                waited: started.elapsed(),
            }),
        }
    }
}

impl<'a, E: Event> IntoFuture for WaitFor<'a, E> {
    type Output = Result<E, Error>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.call())
    }
}
