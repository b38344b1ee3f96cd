//! The [`Event`] trait: what `#[event]` implements for a struct.

use crate::compat::Compat;
use crate::error::DecodeError;

/// The base of `dataschema` and of every schema's `$id` unless configured:
/// an absolute URI, as CloudEvents requires, in the `.invalid` domain that
/// never resolves, so that nothing is fetched from it by mistake. Set a base
/// of your own where the `schemas/` folder is published.
pub const DEFAULT_SCHEMA_BASE: &str = "https://tidings.invalid/schemas/";

/// The schema base as it is used: `base` checked to be an absolute URI
/// (`scheme:` then more, no whitespace, quotes, `#` or `?`) and ending in
/// `/` or `:` (a `/` is added otherwise), or why it cannot be one.
pub(crate) fn schema_base(base: &str) -> Result<String, String> {
    let scheme_end = base.find(':').ok_or_else(|| {
        "it is not an absolute URI: it has no scheme (such as `https:` or `urn:`)".to_owned()
    })?;
    let scheme = &base[..scheme_end];
    let valid_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid_scheme {
        return Err(format!(
            "`{scheme}` is not a URI scheme: it starts with a letter and holds letters, digits, `+`, `-` and `.`"
        ));
    }
    if base.len() == scheme_end + 1 {
        return Err("it has nothing after the scheme".to_owned());
    }
    if let Some(c) = base.chars().find(|&c| {
        c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>' | '\\' | '#' | '?')
    }) {
        return Err(format!(
            "it contains {c:?}; a base holds no whitespace, quotes, angle brackets, `\\`, `#` or `?`"
        ));
    }
    let mut out = base.to_owned();
    if !out.ends_with(['/', ':']) {
        out.push('/');
    }
    Ok(out)
}

/// A typed, versioned event: what `#[event(...)]` implements for a struct.
///
/// Implement it with the attribute, never by hand: the macro also derives
/// serde and schemars, registers the event and checks the `upcast_from` chain.
///
/// ```
/// use tidings::{event, Event};
///
/// #[event(stream = "contextual", version = 1)]
/// pub struct FileUploadedV1 {
///     pub filename: String,
/// }
///
/// assert_eq!(FileUploadedV1::TYPE, "file.uploaded");
/// assert_eq!(FileUploadedV1::STREAM, Some("contextual"));
/// let e = FileUploadedV1::decode(1, br#"{"filename":"a.pdf"}"#).unwrap();
/// assert_eq!(e.filename, "a.pdf");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tidings event",
    label = "not an event",
    note = "annotate the struct with `#[tidings::event(stream = \"…\", version = N)]`"
)]
pub trait Event:
    serde::Serialize + serde::de::DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static
{
    /// Redis stream (durable, consumer groups) the event is published to.
    const STREAM: Option<&'static str>;
    /// Pub/Sub channel (fan-out, at most once) the event is published to.
    const CHANNEL: Option<&'static str>;
    /// Type name on the wire, such as `file.uploaded`.
    const TYPE: &'static str;
    /// Schema version of this struct, 1 or more.
    const VERSION: u32;
    /// Compatibility mode a new version must keep with the older ones.
    const COMPAT: Compat;
    /// Where the payload schema of this version lives under a schema base:
    /// `<stream or channel>/<type>/v<N>.json`, also its path in `schemas/`.
    const SCHEMA_PATH: &'static str;
    /// The `dataschema` attribute and the schema's `$id` under the default
    /// base: [`DEFAULT_SCHEMA_BASE`] followed by [`Event::SCHEMA_PATH`]. A bus
    /// or a schema check with another base
    /// ([`BusBuilder::schema_base`](crate::BusBuilder::schema_base)) puts
    /// its own base in front of the path instead.
    const DATASCHEMA: &'static str;

    /// Reads a payload of any version this type knows: the current one
    /// directly, older ones through the `upcast_from` chain.
    fn decode(version: u32, data: &[u8]) -> Result<Self, DecodeError>;

    /// Every version [`Event::decode`] accepts, ascending.
    fn versions() -> Vec<u32>;

    /// The event's `partitionkey`: the value of the field named by
    /// `#[event(…, key = field)]`, `None` for an event declared without
    /// one. Events of one key are handled one after another, in stream
    /// order, by each consumer group (see `docs/order-delay-priority.md`).
    ///
    /// ```
    /// use tidings::{event, Event};
    ///
    /// #[event(stream = "contextual", version = 1, key = file_id)]
    /// pub struct FileUploaded { pub file_id: String, pub filename: String }
    ///
    /// let e = FileUploaded { file_id: "f-7".into(), filename: "a.pdf".into() };
    /// assert_eq!(e.partition_key().as_deref(), Some("f-7"));
    /// ```
    #[inline]
    fn partition_key(&self) -> Option<String> {
        None
    }
}

/// A field type that can be an event's key (`#[event(…, key = field)]`):
/// strings, integers and ULIDs, and an `Option` of one (`None` is no key).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an event's key",
    label = "the `key` field has this type",
    note = "an event's key is a string, an integer or a ULID (or an `Option` of one); name another field in `key = …`, or remove `key`"
)]
pub trait PartitionKey {
    /// The key as written in `partitionkey`, or `None` for no key.
    fn partition_key(&self) -> Option<String>;
}

impl PartitionKey for String {
    fn partition_key(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl PartitionKey for str {
    fn partition_key(&self) -> Option<String> {
        Some(self.to_owned())
    }
}

impl PartitionKey for std::borrow::Cow<'_, str> {
    fn partition_key(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl PartitionKey for crate::Ulid {
    fn partition_key(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl<T: PartitionKey + ?Sized> PartitionKey for &T {
    fn partition_key(&self) -> Option<String> {
        (**self).partition_key()
    }
}

impl<T: PartitionKey + ?Sized> PartitionKey for Box<T> {
    fn partition_key(&self) -> Option<String> {
        (**self).partition_key()
    }
}

impl<T: PartitionKey> PartitionKey for Option<T> {
    fn partition_key(&self) -> Option<String> {
        self.as_ref().and_then(PartitionKey::partition_key)
    }
}

macro_rules! integer_keys {
    ($($t:ty),*) => {$(
        impl PartitionKey for $t {
            fn partition_key(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}

integer_keys!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

/// An event that asks for a reply: what `#[event(…, reply = R)]`
/// implements, so that [`Bus::request`](crate::Bus::request) returns an `R`.
///
/// ```
/// use tidings::{event, Request};
///
/// #[event(stream = "embeddings", version = 1)]
/// pub struct EmbeddingGenerationCompleted { pub vector: Vec<f32> }
///
/// #[event(stream = "embeddings", version = 1, reply = EmbeddingGenerationCompleted)]
/// pub struct EmbeddingGenerationRequested { pub text_content: String }
///
/// fn reply_type<R: Request>() -> &'static str { <R::Reply as tidings::Event>::TYPE }
/// assert_eq!(reply_type::<EmbeddingGenerationRequested>(), "embedding.generation.completed");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a request: it names no reply type",
    label = "not a request",
    note = "give the event its reply type: `#[tidings::event(stream = \"…\", version = N, reply = TheReply)]`"
)]
pub trait Request: Event {
    /// The event a responder returns for this request.
    type Reply: Event;
}
