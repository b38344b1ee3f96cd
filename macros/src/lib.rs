//! Procedural macros of tidings. Use them through the `tidings` crate.

use proc_macro::TokenStream;

mod ctxt;
mod event;
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

/// Declares an event handler. See the `tidings` crate documentation.
#[proc_macro_attribute]
pub fn handler(args: TokenStream, input: TokenStream) -> TokenStream {
    let _ = args;
    input
}
