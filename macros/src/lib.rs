//! Procedural macros of tidings. Use them through the `tidings` crate.

use proc_macro::TokenStream;

mod args;
mod check;
mod ctxt;
mod event;
mod handler;
mod names;
mod payload;
mod symbol;

/// Declares a typed, versioned event.
///
/// ```text
/// #[tidings::event(stream = "contextual", version = 2, upcast_from = FileUploadedV1)]
/// pub struct FileUploaded {
///     pub filename: String,
///     pub mime_type: Option<String>,
/// }
/// ```
///
/// Keys:
///
/// - `stream = "…"`: the Redis stream (durable, consumer groups) it is published to;
/// - `channel = "…"`: the Pub/Sub channel (fan-out, at most once); at least one of the two;
/// - `version = N`: the schema version, 1 or more (required);
/// - `name = "…"`: the type name on the wire, instead of the one derived from the
///   struct name (`FileUploadedV1` is `file.uploaded`);
/// - `upcast_from = Prev`: the struct of the previous version; `Self: From<Prev>`
///   is the upcaster, and older payloads decode through the chain;
/// - `compat = "…"`: `backward` (default), `backward_transitive`, `forward`,
///   `forward_transitive`, `full`, `full_transitive` or `none`;
/// - `key = field`: the field (a string, an integer or a ULID, or an `Option` of
///   one) whose value is the event's `partitionkey`; each consumer group handles
///   the events of one key one after another, in stream order;
/// - `crate = "…"`: the path `tidings` is reachable at, for crates that re-export it.
///
/// The struct gets serde's `Serialize`/`Deserialize` and schemars' `JsonSchema`
/// (through `tidings`, so the user crate needs neither), `tidings::Event`, and an
/// entry in `tidings::registry`. Field attributes `#[serde(...)]` keep working;
/// doc comments become schema descriptions; the schema is closed
/// (`additionalProperties: false`) while the decoder ignores unknown fields.
#[proc_macro_attribute]
pub fn event(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(input as syn::Item);
    event::expand(args.into(), item)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Declares an event handler: `#[handler(group = "…", retries = N, concurrency = N)]`
/// on an `async fn(event: E, ctx: Context) -> HandlerResult`, optionally taking
/// shared state as a third argument `State(s): State<T>`.
///
/// The function stays a function of the same name: pass it to
/// `bus.consumer().handler(name)`, or call it as before, `name(event, ctx).await`,
/// in a unit test. Only its return type changes, to a
/// `tidings::HandlerCall<…, impl Future<Output = …> + Send>`: a future that
/// gives what the `async fn` returns and whose type carries the settings, so
/// the name alone registers the handler. Like any function, it is shadowed by
/// a `let`, a parameter or a closure argument of the same name. It may return
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

/// Derives serde and schemars, through `tidings`, for a type used inside an
/// event: a nested struct or an enum. The crate still needs no serde or
/// schemars dependency of its own.
///
/// ```text
/// #[tidings::payload]
/// pub struct Checksum { pub algorithm: String, pub hex: String }
///
/// #[tidings::event(stream = "artifacts", version = 1)]
/// pub struct ArtifactStored { pub checksum: Checksum }
/// ```
///
/// Key: `crate = "…"`, the path `tidings` is reachable at, as on `#[event]`.
/// Object schemas are closed (`additionalProperties: false`) like an event's;
/// the decoder still ignores unknown fields.
#[proc_macro_attribute]
pub fn payload(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(input as syn::Item);
    payload::expand(args.into(), item)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Checks (or, with `TIDINGS_SCHEMAS=overwrite`, writes) the package's
/// `schemas/` folder, from an integration test under `tests/`.
///
/// ```text
/// #[test]
/// fn schemas_are_committed_and_compatible() {
///     tidings::schemas::check!("schemas").unwrap();
/// }
/// ```
///
/// It takes the folder (relative to the package root) or a
/// `tidings::schemas::Check` built with options, and returns what
/// `Check::run` returns. Unlike the function `tidings::schemas::check`, it
/// sees the events of the package's library from a test under `tests/`: it
/// names the library, which links its events into the test, and adds the
/// decoder of each event the library declares under a public path, which
/// `#[event]` compiles only into the library's own test build.
#[proc_macro]
pub fn check(input: TokenStream) -> TokenStream {
    check::expand(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
