//! The compile-time schema guard: when the schema of this (type, version) is
//! committed, the struct must still match it.
//!
//! A committed version is frozen, since other services decode it. Removing,
//! renaming, or adding a required field without a version bump would change
//! what `v<N>` means; the guard turns that into a compile error on the field,
//! long before the schema check in the test suite or CI would catch it.
//! Only what can be read from the struct's tokens is compared: serialized
//! field names (after `rename` and `rename_all`) and whether each field is
//! required. Flattened fields cannot be resolved here and are not checked.

use std::path::{Path, PathBuf};

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Attribute, Field, LitStr};

use super::ast::{Input, Shape};
use crate::args::skip_value;
use crate::ctxt::Ctxt;

/// Environment variable naming the schema directory (absolute), read before
/// `$CARGO_MANIFEST_DIR/schemas`.
pub(crate) const SCHEMA_DIR_ENV: &str = "TIDINGS_SCHEMA_DIR";

/// The committed schema file of `input`, if there is one, after comparing
/// the struct with it and recording every difference in `cx`.
pub(crate) fn check(cx: &Ctxt, input: &Input<'_>) -> Option<PathBuf> {
    let topic = input.topic()?;
    let version = input.attrs.version.as_ref()?.value;
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let dir = match std::env::var_os(SCHEMA_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => manifest_dir.as_ref()?.join("schemas"),
    };
    let file = dir
        .join(&topic)
        .join(&input.type_name)
        .join(format!("v{version}.json"));
    let shown = shown_path(&file, manifest_dir.as_deref());
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            cx.error_at(
                input.ident().span(),
                format!("cannot read the committed schema {shown}: {e}"),
            );
            return None;
        }
    };
    let committed = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(value) => Committed::from_json(&value),
        Err(e) => {
            cx.error_at(
                input.ident().span(),
                format!("the committed schema {shown} is not valid JSON: {e}"),
            );
            return Some(file);
        }
    };
    let fields = StructFields::from_input(input);
    let next = file
        .parent()
        .map_or(version, highest_committed)
        .max(version)
        .saturating_add(1);
    for change in compare(&committed, &fields) {
        report(cx, input, &fields, &shown, (version, next), change);
    }
    Some(file)
}

/// The highest `N` of the `v<N>.json` files in a type's folder: a change to
/// a committed version is published after every version already there.
fn highest_committed(dir: &Path) -> u32 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| version_of(&e.file_name().to_string_lossy()))
        .max()
        .unwrap_or(0)
}

/// `N` of a file named `v<N>.json`.
fn version_of(name: &str) -> Option<u32> {
    let digits = name.strip_prefix('v')?.strip_suffix(".json")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The file as the user knows it: relative to the crate when inside it.
fn shown_path(file: &Path, manifest_dir: Option<&Path>) -> String {
    let rel = manifest_dir.and_then(|m| file.strip_prefix(m).ok());
    format!("`{}`", rel.unwrap_or(file).display())
}

/// What the guard reads of a committed schema.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Committed {
    pub(crate) properties: Vec<String>,
    pub(crate) required: Vec<String>,
}

impl Committed {
    pub(crate) fn from_json(schema: &serde_json::Value) -> Committed {
        let properties = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let required = schema
            .get("required")
            .and_then(|r| r.as_array())
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Committed {
            properties,
            required,
        }
    }
}

/// The serialized fields of the struct.
#[derive(Debug, Default)]
pub(crate) struct StructFields {
    pub(crate) fields: Vec<StructField>,
    /// A `#[serde(flatten)]` field brings properties the guard cannot see.
    pub(crate) has_flatten: bool,
}

#[derive(Debug)]
pub(crate) struct StructField {
    /// Name on the wire.
    pub(crate) name: String,
    /// Whether a payload without it fails to decode.
    pub(crate) required: bool,
    pub(crate) span: Span,
}

/// A difference that changes a committed version.
#[derive(Debug, PartialEq)]
pub(crate) enum Change {
    /// A committed property is in no field.
    Removed(String),
    /// A field is not in the schema, which has these properties the struct lost.
    Renamed { field: usize, from: Vec<String> },
    /// A field is not in the schema and payloads without it do not decode.
    AddedRequired(usize),
    /// A field the schema has as optional is now required.
    BecameRequired(usize),
}

/// Every change from `committed` to `fields`.
pub(crate) fn compare(committed: &Committed, fields: &StructFields) -> Vec<Change> {
    let mut changes = Vec::new();
    let missing: Vec<String> = if fields.has_flatten {
        Vec::new()
    } else {
        committed
            .properties
            .iter()
            .filter(|p| !fields.fields.iter().any(|f| &f.name == *p))
            .cloned()
            .collect()
    };
    let mut renamed = false;
    for (i, field) in fields.fields.iter().enumerate() {
        if committed.properties.contains(&field.name) {
            if field.required && !committed.required.contains(&field.name) {
                changes.push(Change::BecameRequired(i));
            }
        } else if !missing.is_empty() {
            renamed = true;
            changes.push(Change::Renamed {
                field: i,
                from: missing.clone(),
            });
        } else if field.required {
            changes.push(Change::AddedRequired(i));
        }
    }
    if !renamed {
        changes.extend(missing.into_iter().map(Change::Removed));
    }
    changes
}

fn report(
    cx: &Ctxt,
    input: &Input<'_>,
    fields: &StructFields,
    file: &str,
    (version, next): (u32, u32),
    change: Change,
) {
    let ident = input.ident();
    let bump = format!(
        "or publish the change as a new version: bump `version` to {next} and add `upcast_from` with the struct of v{}",
        next - 1
    );
    match change {
        Change::Removed(name) => cx.error_at(
            ident.span(),
            format!(
                "field `{name}` of `{}` v{version} is in the committed schema {file} but not in `{ident}`: v{version} is frozen; restore the field, {bump}",
                input.type_name
            ),
        ),
        Change::Renamed { field, from } => {
            let f = &fields.fields[field];
            let from = from
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            cx.error_at(
                f.span,
                format!(
                    "field `{}` is not in the committed schema {file}, which has {from} instead: renaming a field changes v{version}, which is frozen; restore the name (`#[serde(rename = \"…\")]` keeps the Rust name), {bump}",
                    f.name
                ),
            );
        }
        Change::AddedRequired(field) => {
            let f = &fields.fields[field];
            cx.error_at(
                f.span,
                format!(
                    "field `{}` is not in the committed schema {file} and is required, so payloads written as v{version} do not decode; make it optional (`Option<…>` or `#[serde(default)]`), {bump}",
                    f.name
                ),
            );
        }
        Change::BecameRequired(field) => {
            let f = &fields.fields[field];
            cx.error_at(
                f.span,
                format!(
                    "field `{}` is optional in the committed schema {file} but required here, so payloads written as v{version} without it do not decode; make it optional again, {bump}",
                    f.name
                ),
            );
        }
    }
}

impl StructFields {
    pub(crate) fn from_input(input: &Input<'_>) -> StructFields {
        let container = SerdeAttrs::parse(&input.item.attrs);
        let mut out = StructFields::default();
        let Shape::Named(named) = input.shape else {
            return out;
        };
        for field in &named.named {
            let attrs = SerdeAttrs::parse(&field.attrs);
            if attrs.skip {
                continue;
            }
            if attrs.flatten {
                out.has_flatten = true;
                continue;
            }
            let Some(ident) = &field.ident else { continue };
            let rust_name = ident.to_string();
            let rust_name = rust_name.strip_prefix("r#").unwrap_or(&rust_name);
            let name = match attrs.rename {
                Some(name) => name,
                None => match &container.rename_all {
                    Some(rule) => apply_rename_rule(rule, rust_name),
                    None => rust_name.to_owned(),
                },
            };
            out.fields.push(StructField {
                name,
                required: !(attrs.default || container.default || is_option(field)),
                span: field_span(field),
            });
        }
        out
    }
}

fn field_span(field: &Field) -> Span {
    field
        .ident
        .as_ref()
        .map_or_else(|| field.span(), |i| i.span())
}

fn is_option(field: &Field) -> bool {
    match &field.ty {
        syn::Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Option"),
        _ => false,
    }
}

/// The serde attributes the guard needs, read leniently: serde itself
/// reports malformed ones.
#[derive(Debug, Default)]
struct SerdeAttrs {
    rename: Option<String>,
    rename_all: Option<String>,
    skip: bool,
    default: bool,
    flatten: bool,
}

impl SerdeAttrs {
    fn parse(attrs: &[Attribute]) -> SerdeAttrs {
        let mut out = SerdeAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
            let _ = attr.parse_nested_meta(|meta| {
                let key = meta.path.get_ident().map(|i| i.to_string());
                match key.as_deref() {
                    // Schemas describe what is read: the deserialize side wins.
                    Some("rename") => out.rename = deserialize_name(&meta)?.or(out.rename.take()),
                    Some("rename_all") => {
                        out.rename_all = deserialize_name(&meta)?.or(out.rename_all.take())
                    }
                    Some("skip") | Some("skip_deserializing") => out.skip = true,
                    Some("flatten") => out.flatten = true,
                    Some("default") => {
                        out.default = true;
                        skip_value(&meta)?;
                    }
                    _ => skip_value(&meta)?,
                }
                Ok(())
            });
        }
        out
    }
}

/// `key = "x"` or `key(deserialize = "x", serialize = "y")`: the name read.
fn deserialize_name(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Option<String>> {
    if meta.input.peek(syn::Token![=]) {
        let lit: LitStr = meta.value()?.parse()?;
        return Ok(Some(lit.value()));
    }
    let mut name = None;
    if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| {
            if inner.path.is_ident("deserialize") {
                let lit: LitStr = inner.value()?.parse()?;
                name = Some(lit.value());
            } else {
                skip_value(&inner)?;
            }
            Ok(())
        })?;
    }
    Ok(name)
}

/// serde's `rename_all` applied to a snake_case field name.
pub(crate) fn apply_rename_rule(rule: &str, field: &str) -> String {
    let pascal = || {
        field
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                match c.next() {
                    Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                    None => String::new(),
                }
            })
            .collect::<String>()
    };
    match rule {
        "UPPERCASE" | "SCREAMING_SNAKE_CASE" => field.to_ascii_uppercase(),
        "PascalCase" => pascal(),
        "camelCase" => {
            let p = pascal();
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
                None => p,
            }
        }
        "kebab-case" => field.replace('_', "-"),
        "SCREAMING-KEBAB-CASE" => field.replace('_', "-").to_ascii_uppercase(),
        // "lowercase", "snake_case", and rules serde itself rejects.
        _ => field.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::attr::Attrs;
    use quote::quote;

    fn fields_of(item: syn::Item) -> StructFields {
        let cx = Ctxt::new();
        let attrs = Attrs::from_args(&cx, quote!(stream = "s", version = 1));
        let input = Input::from_syn(&cx, &attrs, &item).unwrap();
        let fields = StructFields::from_input(&input);
        cx.check().unwrap();
        fields
    }

    fn committed(properties: &[&str], required: &[&str]) -> Committed {
        Committed {
            properties: properties.iter().map(|s| s.to_string()).collect(),
            required: required.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn names(fields: &StructFields) -> Vec<(&str, bool)> {
        fields
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.required))
            .collect()
    }

    #[test]
    fn fields_use_serialized_names_and_requiredness() {
        let fields = fields_of(syn::parse_quote! {
            #[serde(rename_all = "camelCase")]
            struct E {
                user_id: String,
                #[serde(rename = "mail")]
                email_address: String,
                #[serde(default)]
                consent: bool,
                referral: Option<String>,
                #[serde(skip)]
                cache: u8,
                #[serde(rename(serialize = "s", deserialize = "d"))]
                both: u8,
                r#type: u8,
            }
        });
        assert_eq!(
            names(&fields),
            [
                ("userId", true),
                ("mail", true),
                ("consent", false),
                ("referral", false),
                ("d", true),
                ("type", true),
            ]
        );
        assert!(!fields.has_flatten);
    }

    #[test]
    fn container_default_makes_every_field_optional() {
        let fields = fields_of(syn::parse_quote! {
            #[serde(default)]
            struct E { a: u8 }
        });
        assert_eq!(names(&fields), [("a", false)]);
    }

    #[test]
    fn rename_rules_match_serde() {
        let cases = [
            ("lowercase", "user_id"),
            ("UPPERCASE", "USER_ID"),
            ("PascalCase", "UserId"),
            ("camelCase", "userId"),
            ("snake_case", "user_id"),
            ("SCREAMING_SNAKE_CASE", "USER_ID"),
            ("kebab-case", "user-id"),
            ("SCREAMING-KEBAB-CASE", "USER-ID"),
        ];
        for (rule, expected) in cases {
            assert_eq!(apply_rename_rule(rule, "user_id"), expected, "{rule}");
        }
    }

    #[test]
    fn unchanged_struct_and_new_optional_field_pass() {
        let fields = fields_of(syn::parse_quote!(
            struct E {
                a: u8,
                b: Option<u8>,
            }
        ));
        assert_eq!(compare(&committed(&["a", "b"], &["a"]), &fields), []);
        assert_eq!(compare(&committed(&["a"], &["a"]), &fields), []);
    }

    #[test]
    fn removed_field_is_reported() {
        let fields = fields_of(syn::parse_quote!(
            struct E {
                a: u8,
            }
        ));
        assert_eq!(
            compare(&committed(&["a", "gone"], &["a"]), &fields),
            [Change::Removed("gone".into())]
        );
    }

    #[test]
    fn renamed_field_is_reported_on_the_new_name() {
        let fields = fields_of(syn::parse_quote!(
            struct E {
                a: u8,
                new_name: Option<u8>,
            }
        ));
        assert_eq!(
            compare(&committed(&["a", "old_name"], &["a"]), &fields),
            [Change::Renamed {
                field: 1,
                from: vec!["old_name".into()]
            }]
        );
    }

    #[test]
    fn new_required_field_is_reported() {
        let fields = fields_of(syn::parse_quote!(
            struct E {
                a: u8,
                b: u8,
            }
        ));
        assert_eq!(
            compare(&committed(&["a"], &["a"]), &fields),
            [Change::AddedRequired(1)]
        );
    }

    #[test]
    fn optional_field_made_required_is_reported() {
        let fields = fields_of(syn::parse_quote!(
            struct E {
                a: u8,
            }
        ));
        assert_eq!(
            compare(&committed(&["a"], &[]), &fields),
            [Change::BecameRequired(0)]
        );
    }

    #[test]
    fn flattened_fields_are_not_checked() {
        let fields = fields_of(syn::parse_quote! {
            struct E { a: u8, #[serde(flatten)] rest: Other }
        });
        assert!(fields.has_flatten);
        assert_eq!(
            compare(&committed(&["a", "from_other"], &["a"]), &fields),
            []
        );
    }

    #[test]
    fn next_version_is_past_every_committed_one() {
        let dir = std::env::temp_dir().join(format!("tidings-guard-next-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "v1.json",
            "v2.json",
            "v1.sample.json",
            "v10.sample.json",
            "vx.json",
            "notes.md",
        ] {
            std::fs::write(dir.join(name), "{}").unwrap();
        }
        assert_eq!(highest_committed(&dir), 2);
        assert_eq!(highest_committed(&dir.join("absent")), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn committed_schema_is_read_from_json() {
        let value = serde_json::json!({
            "properties": {"a": {}, "b": {}},
            "required": ["a"]
        });
        assert_eq!(Committed::from_json(&value), committed(&["a", "b"], &["a"]));
        assert_eq!(
            Committed::from_json(&serde_json::json!({"type": "object"})),
            committed(&[], &[])
        );
    }
}
