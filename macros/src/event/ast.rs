//! The typed model of an `#[event]` struct, built from syn's item and the
//! parsed arguments.

use proc_macro2::Span;
use syn::{Fields, FieldsNamed, Ident, Item, ItemStruct, Path};

use super::attr::Attrs;
use crate::ctxt::Ctxt;

/// The runtime's `DEFAULT_SCHEMA_BASE`, spelled out so that `DATASCHEMA` is a
/// literal; a test of the runtime checks that the two agree.
const DEFAULT_SCHEMA_BASE: &str = "https://tidings.invalid/schemas/";

/// An `#[event]` struct that has the shape an event needs.
pub(crate) struct Input<'a> {
    pub(crate) item: &'a ItemStruct,
    pub(crate) attrs: &'a Attrs,
    pub(crate) shape: Shape<'a>,
    /// The type name on the wire: `name = "…"` or derived from the ident.
    pub(crate) type_name: String,
    /// Where an error about the type name belongs.
    pub(crate) type_name_span: Span,
}

/// The payload shapes an event may have.
pub(crate) enum Shape<'a> {
    /// `struct E { a: A, … }`: a JSON object.
    Named(&'a FieldsNamed),
    /// `struct E;`: an empty JSON object.
    Unit,
}

impl<'a> Input<'a> {
    /// Builds the model, or `None` (with the reason recorded) when `item` is
    /// not a struct an event can be made of.
    pub(crate) fn from_syn(cx: &Ctxt, attrs: &'a Attrs, item: &'a Item) -> Option<Input<'a>> {
        let item = match item {
            Item::Struct(s) => s,
            Item::Enum(e) => {
                cx.error_spanned_by(
                    e.enum_token,
                    "#[event] goes on a struct with named fields, not on an enum: each version of an event is one struct",
                );
                return None;
            }
            Item::Union(u) => {
                cx.error_spanned_by(
                    u.union_token,
                    "#[event] goes on a struct with named fields, not on a union",
                );
                return None;
            }
            Item::Fn(f) => {
                cx.error_spanned_by(
                    f.sig.fn_token,
                    "#[event] goes on a struct with named fields, not on a function; a function that handles events takes #[handler]",
                );
                return None;
            }
            other => {
                cx.error_spanned_by(other, "#[event] goes on a struct with named fields");
                return None;
            }
        };
        let shape = match &item.fields {
            Fields::Named(named) => Some(Shape::Named(named)),
            Fields::Unit => Some(Shape::Unit),
            Fields::Unnamed(unnamed) => {
                cx.error_spanned_by(
                    unnamed,
                    "#[event] needs named fields: the payload is a JSON object, so write `struct Name { field: Type }`",
                );
                None
            }
        };
        if !item.generics.params.is_empty() {
            cx.error_spanned_by(
                &item.generics,
                "an event cannot be generic: its schema and type name must be fixed; declare one struct per payload",
            );
        }
        if let Some(where_clause) = &item.generics.where_clause {
            if item.generics.params.is_empty() {
                cx.error_spanned_by(where_clause, "an event cannot have a where clause");
            }
        }
        let (type_name, type_name_span) = match &attrs.name {
            Some(lit) => (lit.value(), lit.span()),
            None => (derive_type_name(&item.ident), item.ident.span()),
        };
        let shape = shape?;
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            return None;
        }
        Some(Input {
            item,
            attrs,
            shape,
            type_name,
            type_name_span,
        })
    }

    pub(crate) fn ident(&self) -> &'a Ident {
        &self.item.ident
    }

    /// The stream, else the channel: where the schema is published.
    pub(crate) fn topic(&self) -> Option<String> {
        self.attrs
            .stream
            .as_ref()
            .or(self.attrs.channel.as_ref())
            .map(|l| l.value())
    }

    /// Where the schema of this version lives under a schema base.
    pub(crate) fn schema_path(&self) -> String {
        let topic = self.topic().unwrap_or_default();
        format!("{topic}/{}/v{}.json", self.type_name, self.version())
    }

    /// The `dataschema` of this version under the default schema base.
    pub(crate) fn dataschema(&self) -> String {
        format!("{DEFAULT_SCHEMA_BASE}{}", self.schema_path())
    }

    /// Path the generated code reaches the facade by: `::tidings` unless
    /// `crate = "…"` says otherwise.
    pub(crate) fn krate(&self) -> Path {
        krate(self.attrs)
    }

    /// The version, 1 when missing (only a fallback expansion sees that).
    pub(crate) fn version(&self) -> u32 {
        self.attrs.version.as_ref().map_or(1, |v| v.value)
    }
}

/// Path the generated code reaches the facade by.
pub(crate) fn krate(attrs: &Attrs) -> Path {
    crate::args::crate_or_default(attrs.krate.as_ref())
}

/// The type name of a struct: drop a trailing `V<digits>`, split CamelCase,
/// lower-case, join with `.`.
///
/// `FileUploadedV1` is `file.uploaded`; an uppercase run followed by an
/// uppercase then lowercase letter splits before the last uppercase one
/// (`HTTPRequestSent` is `http.request.sent`); digits stay with the word
/// before them (`Http2Upgrade` is `http2.upgrade`); `_` separates words too.
pub(crate) fn derive_type_name(ident: &Ident) -> String {
    type_name_of(&ident.to_string())
}

pub(crate) fn type_name_of(ident: &str) -> String {
    let ident = ident.strip_prefix("r#").unwrap_or(ident);
    let base = strip_version_suffix(ident);
    let chars: Vec<char> = base.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            continue;
        }
        if c.is_uppercase() && !word.is_empty() {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let starts_word = prev.is_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_uppercase() && next_is_lower);
            if starts_word {
                words.push(std::mem::take(&mut word));
            }
        }
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words.join(".")
}

/// `FileUploadedV12` without `V12`; the name itself when nothing would be left.
fn strip_version_suffix(ident: &str) -> &str {
    let digits = ident.len() - ident.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return ident;
    }
    let rest = &ident[..ident.len() - digits];
    match rest.strip_suffix('V') {
        Some(base) if !base.is_empty() => base,
        _ => ident,
    }
}

/// Whether `name` matches `^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`.
pub(crate) fn is_valid_type_name(name: &str) -> bool {
    name.split('.').all(|segment| {
        let mut chars = segment.chars();
        matches!(chars.next(), Some('a'..='z'))
            && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_name_drops_the_version_suffix_and_splits_camel_case() {
        assert_eq!(type_name_of("FileUploadedV1"), "file.uploaded");
        assert_eq!(type_name_of("FileUploadedV12"), "file.uploaded");
        assert_eq!(type_name_of("FileUploaded"), "file.uploaded");
        assert_eq!(type_name_of("Ping"), "ping");
    }

    #[test]
    fn type_name_keeps_acronyms_together() {
        assert_eq!(type_name_of("HTTPRequestSent"), "http.request.sent");
        assert_eq!(type_name_of("UserSignedUpViaSSO"), "user.signed.up.via.sso");
        assert_eq!(type_name_of("IOError"), "io.error");
    }

    #[test]
    fn type_name_keeps_digits_with_the_word_before() {
        assert_eq!(type_name_of("Http2Upgraded"), "http2.upgraded");
        assert_eq!(type_name_of("Sha256Computed"), "sha256.computed");
        assert_eq!(type_name_of("Upload2FAEnabledV3"), "upload2.fa.enabled");
    }

    #[test]
    fn type_name_of_a_lone_version_is_kept_whole() {
        // Nothing is left after dropping `V2`, so the suffix stays.
        assert_eq!(type_name_of("V2"), "v2");
        // `V` without digits is a word, not a version.
        assert_eq!(type_name_of("GotV"), "got.v");
    }

    #[test]
    fn type_name_treats_underscores_and_raw_idents() {
        assert_eq!(type_name_of("Order_Placed"), "order.placed");
        assert_eq!(type_name_of("r#Match"), "match");
    }

    #[test]
    fn valid_type_names_follow_the_pattern() {
        for ok in ["file.uploaded", "a", "gate.opened_2", "x1.y_z"] {
            assert!(is_valid_type_name(ok), "{ok}");
        }
        for bad in [
            "",
            "File.uploaded",
            "file..uploaded",
            ".file",
            "file.",
            "1file",
            "file-uploaded",
            "fïle",
            "file._x",
        ] {
            assert!(!is_valid_type_name(bad), "{bad}");
        }
    }
}
