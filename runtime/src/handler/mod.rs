//! What `#[handler]` implements: the [`Handler`] trait, the [`Context`] of a
//! delivery, shared [`State`], and what a handler may return. `call` holds
//! what turns a `#[handler]` function into a [`Handler`].

mod call;
pub(crate) mod erase;

pub use call::{FnHandler, HandlerCall, HandlerSpec, HandlerValue, IntoHandler};

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::bus::{Bus, Draft, Meta, Published};
use crate::envelope::Envelope;
use crate::error::Error;
use crate::Event;

/// The error of a failed handler.
///
/// Inside a handler, every error converts into it: `?` on any
/// `std::error::Error + Send + Sync` (or on a `Box<dyn Error + Send + Sync>`),
/// `Err("text".into())`, `Err(format!(…).into())`, [`fatal`] and [`retry`].
/// It dereferences to `dyn Error + Send + Sync`, so `to_string()`, `source()`
/// and `downcast_ref()` work on it as on the error inside.
///
/// Out of a handler called directly (in a test, say), `?` carries it into a
/// function returning `Result<_, Box<dyn Error>>` or
/// `Result<_, Box<dyn Error + Send>>`:
///
/// ```
/// use tidings::{event, handler, Context, HandlerResult};
///
/// #[event(stream = "contextual", version = 1)]
/// pub struct FileUploaded { pub filename: String }
///
/// #[handler(group = "indexer")]
/// async fn index(e: FileUploaded, _ctx: Context) -> HandlerResult {
///     if e.filename.is_empty() {
///         return Err(format!("file without a name").into());
///     }
///     let ext = std::path::Path::new(&e.filename).extension().ok_or("no extension")?;
///     let _utf8: &str = std::str::from_utf8(ext.as_encoded_bytes())?; // any error type
///     Ok(())
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     index(FileUploaded { filename: "a.png".into() }, Context::detached()).await?;
///     Ok(())
/// }
/// ```
///
/// Into a `Result<_, Box<dyn Error + Send + Sync>>`, call
/// [`into_boxed`](HandlerError::into_boxed) first:
/// `index(e, ctx).await.map_err(HandlerError::into_boxed)?`. `?` cannot do
/// it alone: that would need `Box<dyn Error + Send + Sync>: From<HandlerError>`,
/// and with it `HandlerError: From<HandlerError>` twice over (the standard
/// library's `From<T> for T`, and the conversion from everything that
/// converts into that box, which is what lets `Err("text".into())` compile).
/// For the same reason `HandlerError` does not implement
/// `std::error::Error` itself, as `anyhow::Error` does not.
pub struct HandlerError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl HandlerError {
    /// The error inside, boxed: for a function that returns
    /// `Result<_, Box<dyn Error + Send + Sync>>` (see the type's docs).
    pub fn into_boxed(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self.0
    }
}

/// Everything that converts into a `Box<dyn Error + Send + Sync>`: any error
/// type that is `Send + Sync + 'static`, `&str`, `String`, `Cow<str>` and
/// such a box itself.
impl<E> From<E> for HandlerError
where
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    fn from(error: E) -> Self {
        HandlerError(error.into())
    }
}

impl From<HandlerError> for Box<dyn std::error::Error + 'static> {
    fn from(error: HandlerError) -> Self {
        error.0
    }
}

impl From<HandlerError> for Box<dyn std::error::Error + Send + 'static> {
    fn from(error: HandlerError) -> Self {
        error.0
    }
}

impl std::ops::Deref for HandlerError {
    type Target = dyn std::error::Error + Send + Sync + 'static;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl AsRef<dyn std::error::Error + Send + Sync + 'static> for HandlerError {
    fn as_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl AsRef<dyn std::error::Error + 'static> for HandlerError {
    fn as_ref(&self) -> &(dyn std::error::Error + 'static) {
        &*self.0
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A handler error that trying again cannot fix (a payload the handler
/// rejects, a record that does not exist): the entry goes to dead letters at
/// once instead of being retried. Build it with [`fatal`].
#[derive(Debug)]
pub struct Fatal(pub HandlerError);

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Fatal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Marks a handler error as not worth retrying: the entry goes straight to
/// dead letters.
///
/// ```
/// use tidings::{fatal, HandlerResult};
///
/// fn check(size: u64) -> HandlerResult {
///     if size == 0 {
///         return Err(fatal("empty file: retrying will not fill it"));
///     }
///     Ok(())
/// }
/// assert!(tidings::is_fatal(&check(0).unwrap_err()));
/// ```
pub fn fatal(error: impl Into<HandlerError>) -> HandlerError {
    HandlerError::from(Fatal(error.into()))
}

/// Marks a handler error as worth retrying, which every error is unless made
/// with [`fatal`]: the entry is tried again after the backoff of the
/// handler's [`RetryPolicy`](crate::RetryPolicy), and goes to dead letters
/// after the last attempt.
///
/// ```
/// let e = tidings::retry("database busy");
/// assert!(!tidings::is_fatal(&e));
/// ```
pub fn retry(error: impl Into<HandlerError>) -> HandlerError {
    error.into()
}

/// Whether a handler error was made with [`fatal`].
pub fn is_fatal(error: &HandlerError) -> bool {
    error.downcast_ref::<Fatal>().is_some()
}

/// What a handler returns: `Ok(())`, or `Ok(event)` / `Ok(Some(event))` to
/// publish a consequence (see [`IntoOutcome`]).
pub type HandlerResult<T = ()> = Result<T, HandlerError>;

/// A boxed, sendable future, as handlers return through the [`Handler`] trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Events a handler asks to publish once it succeeded, already serialized.
#[derive(Debug, Default)]
pub struct Outcome {
    pub(crate) events: Vec<Draft>,
}

impl Outcome {
    /// Nothing to publish.
    pub fn none() -> Self {
        Outcome::default()
    }

    /// One event to publish.
    pub fn event<E: Event>(e: &E) -> Result<Self, HandlerError> {
        Ok(Outcome {
            events: vec![Draft::of(e)?],
        })
    }

    /// Number of events to publish.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there is nothing to publish.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// The success value of a handler: `()`, an event, `Option` of an event, or a
/// `Vec` of events. Returned events are published after the handler succeeds
/// and before the handled entry is acknowledged, with `causationid` set to the
/// handled event's id and `correlationid` carried over (see [`Context::meta`]).
/// When the handled event is a request ([`Bus::request`](crate::Bus::request)
/// sent it with `replyto`), they are also appended to the requester's reply
/// stream: that is how a handler answers a request.
#[diagnostic::on_unimplemented(
    message = "a handler cannot return `{Self}`",
    note = "return `HandlerResult` (nothing to publish), `HandlerResult<E>`, `HandlerResult<Option<E>>` or `HandlerResult<Vec<E>>` where `E` is an `#[event]`"
)]
pub trait IntoOutcome {
    /// The events to publish.
    fn into_outcome(self) -> Result<Outcome, HandlerError>;
}

impl IntoOutcome for () {
    fn into_outcome(self) -> Result<Outcome, HandlerError> {
        Ok(Outcome::none())
    }
}

impl IntoOutcome for Outcome {
    fn into_outcome(self) -> Result<Outcome, HandlerError> {
        Ok(self)
    }
}

impl<E: Event> IntoOutcome for E {
    fn into_outcome(self) -> Result<Outcome, HandlerError> {
        Outcome::event(&self)
    }
}

impl<E: Event> IntoOutcome for Option<E> {
    fn into_outcome(self) -> Result<Outcome, HandlerError> {
        match self {
            Some(e) => Outcome::event(&e),
            None => Ok(Outcome::none()),
        }
    }
}

impl<E: Event> IntoOutcome for Vec<E> {
    fn into_outcome(self) -> Result<Outcome, HandlerError> {
        let events = Draft::all(&self)?;
        Ok(Outcome { events })
    }
}

/// Settings of one handler, from `#[handler(group = "…", retries = N, concurrency = N)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandlerOptions {
    /// Consumer group: handlers of different groups each see every event.
    pub group: &'static str,
    /// Attempts after the first before the entry becomes a dead letter.
    pub retries: u32,
    /// Deliveries this handler runs at once, per worker.
    pub concurrency: usize,
}

impl HandlerOptions {
    /// Defaults for `group`: 3 retries, concurrency 1.
    pub const fn new(group: &'static str) -> Self {
        HandlerOptions {
            group,
            retries: 3,
            concurrency: 1,
        }
    }

    /// Sets the number of retries.
    pub const fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets the concurrency (at least 1).
    pub const fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = if concurrency == 0 { 1 } else { concurrency };
        self
    }
}

/// The type of a state a handler takes as `State<T>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateType {
    pub(crate) id: TypeId,
    pub(crate) name: &'static str,
}

impl StateType {
    /// The state type `T`.
    pub fn of<T: 'static>() -> Self {
        StateType {
            id: TypeId::of::<T>(),
            name: std::any::type_name::<T>(),
        }
    }
}

/// An event handler, as a worker runs it: what [`IntoHandler`] makes of a
/// `#[handler]` function ([`FnHandler`]).
///
/// Implement it by hand for a handler that is a value rather than a
/// function; `.handler(value)` takes it as it is.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tidings handler",
    label = "not a handler",
    note = "annotate an `async fn(event: E, ctx: Context) -> HandlerResult` with `#[tidings::handler(group = \"…\")]` and pass its name"
)]
pub trait Handler: Send + Sync + 'static {
    /// The event the handler takes (any version of its type decodes to it);
    /// it must implement [`Event`]. The bound is on the consumer's
    /// `handler()` rather than here, so that a wrong type is reported once,
    /// on the handler's argument.
    type Event;

    /// Name for logs and errors: the function's name.
    fn name(&self) -> &'static str;

    /// Group, retries, concurrency.
    fn options(&self) -> HandlerOptions;

    /// The `State<T>` types the handler takes, checked when the consumer starts.
    fn states(&self) -> Vec<StateType> {
        Vec::new()
    }

    /// Runs the handler on one delivery.
    fn call(
        &self,
        event: Self::Event,
        ctx: Context,
    ) -> BoxFuture<'static, Result<Outcome, HandlerError>>;
}

/// Shared state given to a handler: declare an argument `State(pool): State<Pool>`
/// after the context, and give the value to the consumer with `.state(pool)`.
///
/// `T` is cloned for each delivery, so make it cheap to clone (an `Arc`, a
/// pool handle). Starting a consumer whose handler takes a state it was not
/// given fails with [`Error::MissingState`].
///
/// ```text
/// #[handler(group = "indexer")]
/// async fn index(e: FileUploaded, ctx: Context, State(db): State<Db>) -> HandlerResult {
///     db.insert(&e).await?;
///     Ok(())
/// }
/// bus.consumer().state(db).handler(index).start().await?;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State<T>(pub T);

#[derive(Default, Clone)]
pub(crate) struct States(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl States {
    pub(crate) fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Arc::new(value));
    }
    pub(crate) fn contains(&self, t: &StateType) -> bool {
        self.0.contains_key(&t.id)
    }
    fn get<T: Clone + 'static>(&self) -> Option<T> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
            .cloned()
    }
}

/// What a handler knows about the delivery it runs on, and how it publishes
/// follow-up events. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    envelope: Option<Arc<Envelope>>,
    entry_id: Option<String>,
    group: Option<&'static str>,
    bus: Option<Bus>,
    states: Arc<States>,
    /// The worker's stop signal, for a delivery.
    stop: Option<tokio::sync::watch::Receiver<bool>>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("event_id", &self.event_id())
            .field("entry_id", &self.inner.entry_id)
            .field("group", &self.inner.group)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub(crate) fn delivery(
        envelope: Arc<Envelope>,
        entry_id: String,
        group: &'static str,
        bus: Bus,
        states: Arc<States>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Context {
            inner: Arc::new(ContextInner {
                envelope: Some(envelope),
                entry_id: Some(entry_id),
                group: Some(group),
                bus: Some(bus),
                states,
                stop: Some(stop),
            }),
        }
    }

    /// Whether the worker running this handler is shutting down: a long
    /// handler may stop early and return an error, which leaves the entry
    /// to be tried again (by this worker if it still runs, or by another).
    /// Always `false` for a context made outside a worker.
    pub fn is_stopping(&self) -> bool {
        self.inner
            .stop
            .as_ref()
            .is_some_and(|s| *s.borrow() || s.has_changed().is_err())
    }

    /// Resolves when the worker running this handler starts shutting down
    /// (never, for a context made outside a worker). Race it against the
    /// handler's own work:
    ///
    /// ```
    /// # use std::time::Duration;
    /// # async fn run(ctx: tidings::Context) -> tidings::HandlerResult {
    /// tokio::select! {
    ///     () = tokio::time::sleep(Duration::from_secs(60)) => Ok(()),
    ///     () = ctx.stopping() => Err("the worker is stopping; this entry is tried again".into()),
    /// }
    /// # }
    /// ```
    pub async fn stopping(&self) {
        let Some(stop) = &self.inner.stop else {
            return std::future::pending().await;
        };
        let mut stop = stop.clone();
        // An error: the worker is gone, which is a stop too.
        let _ = stop.wait_for(|stopped| *stopped).await;
    }

    /// A context tied to no delivery, for calling a handler directly in a
    /// unit test. [`Context::publish`] on it fails; a handler's returned
    /// events are simply its return value.
    ///
    /// ```
    /// let ctx = tidings::Context::detached();
    /// assert!(ctx.event_id().is_none());
    /// ```
    pub fn detached() -> Self {
        Context {
            inner: Arc::new(ContextInner {
                envelope: None,
                entry_id: None,
                group: None,
                bus: None,
                states: Arc::default(),
                stop: None,
            }),
        }
    }

    /// A context for calling a handler directly with an envelope of your own
    /// (its id, correlation id, tenant…) and, optionally, a bus to publish on.
    pub fn for_envelope(envelope: Envelope, bus: Option<Bus>) -> Self {
        Context {
            inner: Arc::new(ContextInner {
                envelope: Some(Arc::new(envelope)),
                entry_id: None,
                group: None,
                bus,
                states: Arc::default(),
                stop: None,
            }),
        }
    }

    /// The envelope of the event being handled.
    pub fn envelope(&self) -> Option<&Envelope> {
        self.inner.envelope.as_deref()
    }

    /// Id of the event being handled: a ULID for every event tidings
    /// wrote, any non-empty string from another producer.
    pub fn event_id(&self) -> Option<&str> {
        self.envelope().map(|e| e.id.as_str())
    }

    /// `partitionkey` of the event being handled: the key it is ordered
    /// by within the group (see [`Envelope::partition_key`]).
    pub fn partition_key(&self) -> Option<&str> {
        self.envelope().and_then(Envelope::partition_key)
    }

    /// Stream entry id of the delivery.
    pub fn entry_id(&self) -> Option<&str> {
        self.inner.entry_id.as_deref()
    }

    /// Consumer group the handler runs in.
    pub fn group(&self) -> Option<&'static str> {
        self.inner.group
    }

    /// `correlationid` of the event being handled.
    pub fn correlation_id(&self) -> Option<&str> {
        self.envelope().and_then(|e| e.correlation_id.as_deref())
    }

    /// The tenant of the event being handled: that of the stream it was
    /// read from, when a tenant's bus (or a worker over tenants,
    /// [`ConsumerBuilder::tenants`](crate::ConsumerBuilder::tenants)) read
    /// it, whatever its `tenantid` says; else its `tenantid`.
    pub fn tenant(&self) -> Option<&str> {
        match self.inner.bus.as_ref().and_then(Bus::tenant_name) {
            Some(tenant) => Some(tenant),
            None => self.envelope().and_then(|e| e.tenant_id.as_deref()),
        }
    }

    /// Delivery-related state of type `T`, if the consumer was given one.
    pub fn state<T: Clone + 'static>(&self) -> Option<T> {
        self.inner.states.get::<T>()
    }

    /// Metadata for events caused by this one: `causationid` is the handled
    /// event's id, `correlationid` is carried over (or, when the handled event
    /// has none, set to its id, so that a chain of events stays correlated),
    /// and `traceparent` is carried over.
    pub fn meta(&self) -> Meta {
        let mut meta = Meta::default();
        if let Some(env) = self.envelope() {
            let id = env.id.clone();
            meta = meta.correlation_id(env.correlation_id.clone().unwrap_or_else(|| id.clone()));
            meta = meta.causation_id(id);
            if let Some(t) = &env.traceparent {
                meta = meta.traceparent(t.clone());
            }
        }
        meta
    }

    /// Publishes an event caused by the one being handled (see [`Context::meta`]),
    /// on the bus (and tenant) the event was consumed from.
    pub async fn publish<E: Event>(&self, event: &E) -> Result<Published, Error> {
        match &self.inner.bus {
            Some(bus) => bus.publish_with(event, self.meta()).await,
            None => Err(Error::Detached),
        }
    }

    pub(crate) async fn publish_outcome(&self, outcome: &Outcome) -> Result<(), Error> {
        if outcome.events.is_empty() {
            return Ok(());
        }
        let Some(bus) = &self.inner.bus else {
            return Err(Error::Detached);
        };
        // Boxed: the publishing future is large, and would otherwise be
        // part of every delivery's future, events to publish or not.
        Box::pin(async {
            let meta = self.meta();
            let published = bus.send_drafts(&outcome.events, &meta).await?;
            if let Some(reply_to) = self.envelope().and_then(|e| e.reply_to.as_deref()) {
                // The events are published: failing here would run the
                // handler again and publish them twice. A reply that cannot
                // be appended is a request that times out, as one whose
                // requester is gone.
                if let Err(e) = bus
                    .send_replies(reply_to, &outcome.events, &published, &meta)
                    .await
                {
                    tracing::warn!(reply_to, error = %e,
                        "appending the reply to the requester's reply stream failed; the request will time out");
                }
            }
            Ok(())
        })
        .await
    }
}

/// Glue for code generated by `#[handler]`.
#[doc(hidden)]
pub(crate) mod glue {
    use super::*;

    /// Implemented for what a handler may return: `Result<T, Err>` with
    /// `T: IntoOutcome` and `Err: Into<HandlerError>`.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not a handler return type",
        label = "return `HandlerResult` here",
        note = "a handler returns `HandlerResult` (or `HandlerResult<E>`, `HandlerResult<Option<E>>` to publish an event)"
    )]
    pub trait IsHandlerResult {
        /// The outcome, or the handler's error.
        fn into_result(self) -> Result<Outcome, HandlerError>;
    }

    impl<T: IntoOutcome, Err: Into<HandlerError>> IsHandlerResult for Result<T, Err> {
        fn into_result(self) -> Result<Outcome, HandlerError> {
            match self {
                Ok(t) => t.into_outcome(),
                Err(e) => Err(e.into()),
            }
        }
    }

    /// Implemented for [`Context`] only, to put a wrong second argument type
    /// under the user's tokens.
    #[diagnostic::on_unimplemented(
        message = "the second argument of a handler must be `tidings::Context`, not `{Self}`",
        label = "expected `Context`"
    )]
    pub trait IsContext {
        /// The context itself.
        fn from_context(ctx: Context) -> Self;
    }
    impl IsContext for Context {
        fn from_context(ctx: Context) -> Self {
            ctx
        }
    }

    /// Compile-time check that a handler's first argument is an event; called
    /// from generated code with the user's span, so the error underlines it.
    pub fn assert_event<T: Event>() {}

    /// Implemented for [`State<T>`] only: the third argument of a handler.
    #[diagnostic::on_unimplemented(
        message = "the third argument of a handler must be `tidings::State<T>`, not `{Self}`",
        label = "expected `State<T>`",
        note = "shared state is given to the consumer with `.state(value)` and taken as `State(value): State<T>`"
    )]
    pub trait IsState {
        /// The `T` of `State<T>`.
        type Inner: Clone + Send + Sync + 'static;
        /// Wraps a value.
        fn wrap(inner: Self::Inner) -> Self;
    }
    impl<T: Clone + Send + Sync + 'static> IsState for State<T> {
        type Inner = T;
        fn wrap(inner: T) -> Self {
            State(inner)
        }
    }

    /// Takes the state `S` from the context of a delivery.
    pub fn state<S: IsState>(ctx: &Context, handler: &'static str) -> Result<S, HandlerError> {
        match ctx.state::<S::Inner>() {
            Some(v) => Ok(S::wrap(v)),
            None => Err(HandlerError::from(Error::MissingState {
                handler,
                state: std::any::type_name::<S::Inner>(),
            })),
        }
    }
}
