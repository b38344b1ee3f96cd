//! How a `#[handler]` function becomes what a worker runs. The function
//! returns a [`HandlerCall`], whose type names a marker of the handler that
//! implements [`HandlerSpec`]; [`IntoHandler`] reads the settings from there
//! and wraps the function in a [`FnHandler`], a [`Handler`].

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::Poll;

use super::glue::{state, IsHandlerResult, IsState};
use super::{BoxFuture, Context, Handler, HandlerError, HandlerOptions, Outcome, StateType};

pin_project_lite::pin_project! {
    /// What calling a `#[handler]` function returns: a future that gives
    /// what the `async fn` returns, so `name(event, ctx).await` works as
    /// before. Its type also names the handler's settings (`M`, a hidden
    /// type of the handler that implements [`HandlerSpec`]), which is how
    /// `bus.consumer().handler(name)` finds them from the function alone.
    ///
    /// ```
    /// use tidings::{event, handler, Context, HandlerResult};
    ///
    /// #[event(stream = "contextual", version = 1)]
    /// pub struct FileUploaded { pub filename: String }
    ///
    /// #[handler(group = "indexer")]
    /// async fn index(e: FileUploaded, _ctx: Context) -> HandlerResult<Option<FileUploaded>> {
    ///     Ok(Some(e))
    /// }
    ///
    /// # #[tokio::main]
    /// # async fn main() {
    /// let e = FileUploaded { filename: "a.png".into() };
    /// let again = index(e, Context::detached()).await.unwrap();
    /// assert_eq!(again.unwrap().filename, "a.png");
    /// # }
    /// ```
    #[must_use = "a handler does nothing unless it is awaited"]
    pub struct HandlerCall<M, F> {
        #[pin]
        future: F,
        spec: PhantomData<fn() -> M>,
    }
}

impl<M, F> HandlerCall<M, F> {
    /// The future of a handler with the settings of `M`: what a function
    /// written without `#[handler]` returns to be a handler.
    pub fn new(future: F) -> Self {
        HandlerCall {
            future,
            spec: PhantomData,
        }
    }
}

impl<M, F: Future> Future for HandlerCall<M, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        self.project().future.poll(cx)
    }
}

impl<M: HandlerSpec, F> fmt::Debug for HandlerCall<M, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerCall")
            .field("handler", &M::name())
            .finish_non_exhaustive()
    }
}

/// The settings of a handler. `#[handler(group = "…", retries = N,
/// concurrency = N)]` implements it on a hidden type of its own, which the
/// function's return type, [`HandlerCall`], names.
pub trait HandlerSpec: 'static {
    /// Name for logs and errors: the function's name.
    fn name() -> &'static str;

    /// Group, retries, concurrency, as the attribute gives them.
    /// [`ConsumerBuilder`](crate::ConsumerBuilder) can override each where
    /// it adds the handler.
    fn options() -> HandlerOptions;
}

/// What [`ConsumerBuilder::handler`](crate::ConsumerBuilder::handler)
/// takes: the name of a `#[handler]` function, or a value that implements
/// [`Handler`] itself.
///
/// `Args` tells the two apart and is always inferred: the argument types of
/// the function (`(E, Context)` or `(E, Context, State<T>)`), or
/// [`HandlerValue`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tidings handler",
    label = "not a handler",
    note = "annotate an `async fn(event: E, ctx: Context) -> HandlerResult` with `#[tidings::handler(group = \"…\")]` and pass its name"
)]
pub trait IntoHandler<Args>: Sized {
    /// What the worker runs.
    type Handler: Handler;

    /// Makes the handler.
    fn into_handler(self) -> Self::Handler;
}

/// The `Args` of [`IntoHandler`] for a value that implements [`Handler`].
#[derive(Debug)]
pub enum HandlerValue {}

impl<H: Handler> IntoHandler<HandlerValue> for H {
    type Handler = H;

    fn into_handler(self) -> H {
        self
    }
}

/// A `#[handler]` function as a [`Handler`], as [`IntoHandler`] makes it.
/// `Args` is the function's argument types.
pub struct FnHandler<F, M, Args> {
    f: F,
    spec: PhantomData<fn() -> (M, Args)>,
}

impl<F, M: HandlerSpec, Args> fmt::Debug for FnHandler<F, M, Args> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnHandler")
            .field("name", &M::name())
            .field("options", &M::options())
            .finish()
    }
}

impl<F, M, Fut, E> IntoHandler<(E, Context)> for F
where
    F: Fn(E, Context) -> HandlerCall<M, Fut> + Send + Sync + 'static,
    M: HandlerSpec,
    Fut: Future + Send + 'static,
    Fut::Output: IsHandlerResult,
    E: 'static,
{
    type Handler = FnHandler<F, M, (E, Context)>;

    fn into_handler(self) -> Self::Handler {
        FnHandler {
            f: self,
            spec: PhantomData,
        }
    }
}

impl<F, M, Fut, E> Handler for FnHandler<F, M, (E, Context)>
where
    F: Fn(E, Context) -> HandlerCall<M, Fut> + Send + Sync + 'static,
    M: HandlerSpec,
    Fut: Future + Send + 'static,
    Fut::Output: IsHandlerResult,
    E: 'static,
{
    type Event = E;

    fn name(&self) -> &'static str {
        M::name()
    }

    fn options(&self) -> HandlerOptions {
        M::options()
    }

    fn call(&self, event: E, ctx: Context) -> BoxFuture<'static, Result<Outcome, HandlerError>> {
        let call = (self.f)(event, ctx);
        Box::pin(async move { call.await.into_result() })
    }
}

impl<F, M, Fut, E, S> IntoHandler<(E, Context, S)> for F
where
    F: Fn(E, Context, S) -> HandlerCall<M, Fut> + Send + Sync + 'static,
    M: HandlerSpec,
    Fut: Future + Send + 'static,
    Fut::Output: IsHandlerResult,
    E: 'static,
    S: IsState + 'static,
{
    type Handler = FnHandler<F, M, (E, Context, S)>;

    fn into_handler(self) -> Self::Handler {
        FnHandler {
            f: self,
            spec: PhantomData,
        }
    }
}

impl<F, M, Fut, E, S> Handler for FnHandler<F, M, (E, Context, S)>
where
    F: Fn(E, Context, S) -> HandlerCall<M, Fut> + Send + Sync + 'static,
    M: HandlerSpec,
    Fut: Future + Send + 'static,
    Fut::Output: IsHandlerResult,
    E: 'static,
    S: IsState + 'static,
{
    type Event = E;

    fn name(&self) -> &'static str {
        M::name()
    }

    fn options(&self) -> HandlerOptions {
        M::options()
    }

    fn states(&self) -> Vec<StateType> {
        vec![StateType::of::<S::Inner>()]
    }

    fn call(&self, event: E, ctx: Context) -> BoxFuture<'static, Result<Outcome, HandlerError>> {
        // `start()` checked that the consumer has the state, so this finds
        // it; a handler called some other way gets `MissingState`.
        let call = state::<S>(&ctx, M::name()).map(|s| (self.f)(event, ctx, s));
        Box::pin(async move { call?.await.into_result() })
    }
}
