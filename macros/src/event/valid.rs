//! Checks of an [`Input`] that the parser alone cannot make: required keys,
//! value ranges, and names that must be safe on the wire and in Redis keys.

use proc_macro2::Span;
use syn::{Ident, LitStr};

use super::ast::{is_valid_type_name, Input, Shape};
use super::attr::Attrs;
use super::expand::PROVIDED_TRAITS;
use crate::ctxt::Ctxt;
use crate::names::topic_problem;
use crate::symbol::{CHANNEL, REPLY, STREAM, VERSION};

/// Records every problem of the arguments in `cx`; runs whatever the item
/// is, so that a misplaced attribute still has its arguments checked.
pub(crate) fn check_attrs(cx: &Ctxt, attrs: &Attrs, ident: Option<&Ident>) {
    check_version(cx, attrs, ident);
    check_topics(cx, attrs);
    check_reply(cx, attrs);
    if let Some(name) = &attrs.name {
        if !is_valid_type_name(&name.value()) {
            cx.error_spanned_by(
                name,
                format!(
                    "invalid event name `{}`: expected {NAME_RULE}",
                    name.value()
                ),
            );
        }
    }
}

/// Records the problems of the struct itself in `cx`.
pub(crate) fn check(cx: &Ctxt, input: &Input<'_>) {
    check_derives(cx, input);
    check_key(cx, input);
    if input.attrs.name.is_none() && !is_valid_type_name(&input.type_name) {
        cx.error_at(
            input.type_name_span,
            format!(
                "cannot derive an event name from `{}` (got `{}`): expected {NAME_RULE}; set it with `name = \"…\"`",
                input.ident(),
                input.type_name
            ),
        );
    }
}

/// `key = field` names a field of the struct. Its type (a string, an
/// integer or a ULID) is checked by the compiler, through the
/// `PartitionKey` bound the expansion puts under the field's type.
fn check_key(cx: &Ctxt, input: &Input<'_>) {
    let Some(key) = &input.attrs.key else {
        return;
    };
    let names: Vec<String> = match &input.shape {
        Shape::Named(named) => named
            .named
            .iter()
            .filter_map(|f| f.ident.as_ref().map(|i| i.to_string()))
            .collect(),
        Shape::Unit => Vec::new(),
    };
    let wanted = key.to_string();
    if names.contains(&wanted) {
        return;
    }
    let mut msg = if names.is_empty() {
        format!(
            "`key = {wanted}` names a field, but `{}` has no fields; give it the field the events are ordered by, or remove `key`",
            input.ident()
        )
    } else {
        let list: Vec<&str> = names.iter().map(String::as_str).collect();
        format!(
            "`{}` has no field `{wanted}`; `key` names {}",
            input.ident(),
            crate::args::one_of(&list)
        )
    };
    let list: Vec<&str> = names.iter().map(String::as_str).collect();
    if let Some(hint) = crate::args::near_miss(&wanted, &list) {
        msg.push_str(&format!("\nhelp: did you mean `{hint}`?"));
    }
    cx.error_spanned_by(key, msg);
}

/// A derive of a trait `#[event]` implements would conflict with it; say so
/// on the derive instead of leaving the user a "conflicting implementations"
/// error that points at the attribute.
fn check_derives(cx: &Ctxt, input: &Input<'_>) {
    for attr in input
        .item
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("derive"))
    {
        let Ok(paths) = attr.parse_args_with(
            syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
        ) else {
            continue;
        };
        for path in paths {
            let Some(last) = path.segments.last() else {
                continue;
            };
            let name = last.ident.to_string();
            if PROVIDED_TRAITS.contains(&name.as_str()) {
                cx.error_spanned_by(
                    &path,
                    format!("#[event] already implements `{name}`; remove it from the derive"),
                );
            }
        }
    }
}

const NAME_RULE: &str = "lowercase words of `a`-`z`, `0`-`9` and `_`, each starting with a letter, joined by `.`, like `file.uploaded`";

fn check_version(cx: &Ctxt, attrs: &Attrs, ident: Option<&Ident>) {
    match &attrs.version {
        None if attrs.mentions(VERSION) => {}
        None => cx.error_at(
            Span::call_site(),
            match ident {
                Some(ident) => format!(
                    "missing `version` in #[event]: the first version of `{ident}` is `version = 1`"
                ),
                None => {
                    "missing `version` in #[event]: the first version of an event is `version = 1`"
                        .to_owned()
                }
            },
        ),
        Some(v) if v.value == 0 => cx.error_spanned_by(
            &v.lit,
            "`version` starts at 1: the first version of an event is `version = 1`",
        ),
        Some(_) => {}
    }
}

/// A request is answered by a consumer group's handler, which reads a
/// stream: `reply` without `stream` could never be answered.
fn check_reply(cx: &Ctxt, attrs: &Attrs) {
    if let Some(reply) = &attrs.reply {
        if attrs.stream.is_none() && !attrs.mentions(STREAM) {
            cx.error_spanned_by(
                reply,
                format!(
                    "`{REPLY}` needs `stream = \"…\"`: a request is answered by a consumer group's handler, which reads it from a stream"
                ),
            );
        }
    }
}

fn check_topics(cx: &Ctxt, attrs: &Attrs) {
    let mentioned = attrs.mentions(STREAM) || attrs.mentions(CHANNEL);
    if attrs.stream.is_none() && attrs.channel.is_none() && !mentioned {
        cx.error_at(
            Span::call_site(),
            "an event needs `stream = \"…\"` (durable, Redis Streams), `channel = \"…\"` (Pub/Sub fan-out), or both",
        );
    }
    for (key, lit) in [("stream", &attrs.stream), ("channel", &attrs.channel)] {
        if let Some(lit) = lit {
            if let Some(problem) = topic_problem(&lit.value()) {
                report_topic(cx, key, lit, &problem);
            }
        }
    }
}

fn report_topic(cx: &Ctxt, key: &str, lit: &LitStr, problem: &str) {
    cx.error_spanned_by(
        lit,
        format!("invalid {key} name `{}`: {problem}", lit.value()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::attr::Attrs;
    use quote::quote;

    fn errors_of(args: proc_macro2::TokenStream, item: syn::Item) -> Vec<String> {
        let cx = Ctxt::new();
        let attrs = Attrs::from_args(&cx, args);
        let ident = match &item {
            syn::Item::Struct(s) => Some(s.ident.clone()),
            _ => None,
        };
        check_attrs(&cx, &attrs, ident.as_ref());
        if let Some(input) = Input::from_syn(&cx, &attrs, &item) {
            check(&cx, &input);
        }
        match cx.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_complete_event_has_no_error() {
        let errors = errors_of(
            quote!(stream = "contextual", version = 1),
            syn::parse_quote!(
                struct FileUploadedV1 {
                    a: u8,
                }
            ),
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn missing_version_and_topic_are_reported_together() {
        let errors = errors_of(
            quote!(),
            syn::parse_quote!(
                struct Ping;
            ),
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("missing `version`"), "{}", errors[0]);
        assert!(
            errors[1].starts_with("an event needs `stream"),
            "{}",
            errors[1]
        );
    }

    #[test]
    fn version_zero_is_rejected() {
        let errors = errors_of(
            quote!(stream = "s", version = 0),
            syn::parse_quote!(
                struct Ping;
            ),
        );
        assert_eq!(
            errors,
            ["`version` starts at 1: the first version of an event is `version = 1`"]
        );
    }

    #[test]
    fn topics_with_redis_metacharacters_are_rejected() {
        for bad in ["a*", "a?", "a[b]", "{a}", "ns:a", "a b", "a\tb", ""] {
            assert!(topic_problem(bad).is_some(), "{bad:?}");
        }
        for ok in ["contextual", "gate-events", "a.b_c"] {
            assert_eq!(topic_problem(ok), None, "{ok:?}");
        }
        let errors = errors_of(
            quote!(stream = "orders:eu", channel = "gate *", version = 1),
            syn::parse_quote!(
                struct Ping;
            ),
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("invalid stream name `orders:eu`: it contains `:`"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].starts_with("invalid channel name `gate *`: it contains whitespace"),
            "{}",
            errors[1]
        );
    }

    #[test]
    fn derives_the_macro_provides_are_rejected() {
        let errors = errors_of(
            quote!(stream = "s", version = 1),
            syn::parse_quote! {
                #[derive(Debug, serde::Serialize, Deserialize, Clone)]
                struct E;
            },
        );
        assert_eq!(
            errors,
            [
                "#[event] already implements `Serialize`; remove it from the derive",
                "#[event] already implements `Deserialize`; remove it from the derive",
            ]
        );
    }

    #[test]
    fn invalid_name_override_is_rejected() {
        let errors = errors_of(
            quote!(stream = "s", version = 1, name = "File.Uploaded"),
            syn::parse_quote!(
                struct FileUploaded;
            ),
        );
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("invalid event name `File.Uploaded`"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn shape_errors_name_the_offending_construct() {
        let generic = errors_of(
            quote!(stream = "s", version = 1),
            syn::parse_quote!(
                struct E<T> {
                    t: T,
                }
            ),
        );
        assert!(
            generic[0].starts_with("an event cannot be generic"),
            "{generic:?}"
        );
        let tuple = errors_of(
            quote!(stream = "s", version = 1),
            syn::parse_quote!(
                struct E(u8);
            ),
        );
        assert!(
            tuple[0].starts_with("#[event] needs named fields"),
            "{tuple:?}"
        );
        let en = errors_of(
            quote!(stream = "s", version = 1),
            syn::parse_quote!(
                enum E {
                    A,
                }
            ),
        );
        assert!(en[0].contains("not on an enum"), "{en:?}");
        let f = errors_of(
            quote!(stream = "s", version = 1),
            syn::parse_quote!(
                fn e() {}
            ),
        );
        assert!(f[0].contains("not on a function"), "{f:?}");
    }
}
