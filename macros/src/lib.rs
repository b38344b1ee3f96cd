//! Procedural macros of tidings. Use them through the `tidings` crate.

use proc_macro::TokenStream;

mod handler;

/// Declares a typed, versioned event. See the `tidings` crate documentation.
#[proc_macro_attribute]
pub fn event(args: TokenStream, input: TokenStream) -> TokenStream {
    let _ = args;
    input
}

/// Declares an event handler: `#[handler(group = "…", retries = N, concurrency = N)]`
/// on an `async fn(event: E, ctx: Context) -> HandlerResult`, optionally taking
/// shared state as a third argument `State(s): State<T>`.
///
/// The function becomes a unit struct of the same name: pass it to
/// `bus.consumer().handler(name)`, or call it as before, `name(event, ctx).await`,
/// in a unit test (the struct dereferences to the function). It may return
/// `HandlerResult<E>` or `HandlerResult<Option<E>>` to publish an event caused by
/// the one it handled.
///
/// ```text
/// #[handler(group = "file-processor", retries = 5, concurrency = 8)]
/// async fn index_file(event: FileUploaded, ctx: Context) -> HandlerResult {
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn handler(args: TokenStream, input: TokenStream) -> TokenStream {
    handler::expand(args.into(), input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
