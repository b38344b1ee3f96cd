//! The [`Event`] trait: what `#[event]` implements for a struct.

use crate::compat::Compat;
use crate::error::DecodeError;

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
    /// The `dataschema` attribute: `schemas/<stream or channel>/<type>/v<N>.json`.
    const DATASCHEMA: &'static str;

    /// Reads a payload of any version this type knows: the current one
    /// directly, older ones through the `upcast_from` chain.
    fn decode(version: u32, data: &[u8]) -> Result<Self, DecodeError>;

    /// Every version [`Event::decode`] accepts, ascending.
    fn versions() -> Vec<u32>;
}
