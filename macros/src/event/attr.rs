//! Parsing of the `#[event(...)]` arguments into [`Attrs`].
//!
//! Every key is read even after a mistake, so that all of them are reported
//! together; a value of the wrong kind is reported on the value itself.

use proc_macro2::TokenStream;
use syn::{Expr, Lit, LitInt, LitStr, Path};

use crate::args::{self, crate_value, lit, near_miss, one_of, path_to_string, string_value, Seen};
use crate::ctxt::Ctxt;
use crate::symbol::{
    Symbol, CHANNEL, COMPAT, CRATE, EVENT_KEYS, KEY, NAME, REPLY, STREAM, UPCAST_FROM, VERSION,
};

/// Compatibility modes as written in `compat = "…"`, with the variant of
/// `tidings::Compat` each one names. Mirrors `Compat::ALL` of the runtime,
/// which this crate cannot depend on.
pub(crate) const COMPAT_MODES: &[(&str, &str)] = &[
    ("backward", "Backward"),
    ("backward_transitive", "BackwardTransitive"),
    ("forward", "Forward"),
    ("forward_transitive", "ForwardTransitive"),
    ("full", "Full"),
    ("full_transitive", "FullTransitive"),
    ("none", "None"),
];

/// The arguments of one `#[event(...)]`, each as the user wrote it.
#[derive(Default)]
pub(crate) struct Attrs {
    pub(crate) stream: Option<LitStr>,
    pub(crate) channel: Option<LitStr>,
    pub(crate) version: Option<Version>,
    pub(crate) name: Option<LitStr>,
    pub(crate) upcast_from: Option<Path>,
    /// `reply = R`: the event that answers this one.
    pub(crate) reply: Option<Path>,
    pub(crate) compat: Option<CompatMode>,
    /// `key = field`: the field whose value is the event's `partitionkey`.
    pub(crate) key: Option<syn::Ident>,
    pub(crate) krate: Option<Path>,
    /// Keys written, even with a value that was rejected, and the keys an
    /// unknown key is a near miss of.
    pub(crate) seen: Seen,
}

/// `version = N`: the value and its literal, for spans.
pub(crate) struct Version {
    pub(crate) value: u32,
    pub(crate) lit: LitInt,
}

/// `compat = "…"`: the `tidings::Compat` variant it names.
pub(crate) struct CompatMode {
    pub(crate) variant: &'static str,
}

impl Attrs {
    /// Whether `key` was written (or nearly written) by the user: a missing
    /// key is not reported on top of the error that already explains it.
    pub(crate) fn mentions(&self, key: Symbol) -> bool {
        self.seen.mentioned(key)
    }

    /// Parses the arguments, recording every mistake in `cx`.
    pub(crate) fn from_args(cx: &Ctxt, args: TokenStream) -> Attrs {
        let mut attrs = Attrs::default();
        attrs.seen = args::parse(cx, args, "event", EVENT_KEYS, |key, expr| {
            attrs.set(cx, key, &expr)
        });
        attrs
    }

    /// Stores the value of the first occurrence of `key`.
    fn set(&mut self, cx: &Ctxt, key: Symbol, expr: &Expr) {
        match key {
            STREAM => self.stream = string_value(cx, expr, key),
            CHANNEL => self.channel = string_value(cx, expr, key),
            NAME => self.name = string_value(cx, expr, key),
            VERSION => self.version = version_value(cx, expr),
            UPCAST_FROM => self.upcast_from = type_value(cx, expr, key),
            REPLY => self.reply = type_value(cx, expr, key),
            COMPAT => self.compat = compat_value(cx, expr),
            KEY => self.key = key_value(cx, expr),
            CRATE => self.krate = crate_value(cx, expr),
            _ => {}
        }
    }
}

fn version_value(cx: &Ctxt, expr: &Expr) -> Option<Version> {
    match lit(expr) {
        Some(Lit::Int(int)) => match int.base10_parse::<u32>() {
            Ok(value) => Some(Version {
                value,
                lit: int.clone(),
            }),
            Err(_) => {
                cx.error_spanned_by(int, "`version` must be a whole number from 1 to 4294967295");
                None
            }
        },
        Some(Lit::Str(s)) => {
            let v = s.value();
            let fix = if v.trim().parse::<u32>().is_ok() {
                format!("`version = {}`", v.trim())
            } else {
                "`version = 1`".to_owned()
            };
            cx.error_spanned_by(
                s,
                format!("`version` is an integer, not a string: write {fix}"),
            );
            None
        }
        Some(Lit::Float(_)) => {
            cx.error_spanned_by(
                expr,
                "`version` is a whole number (1, 2, 3, …): a schema change that needs a new version gets the next integer",
            );
            None
        }
        _ => {
            cx.error_spanned_by(
                expr,
                "expected an integer literal for `version`, like `version = 1`",
            );
            None
        }
    }
}

/// A key whose value names a type (`upcast_from = FileUploadedV1`,
/// `reply = FileIndexed`).
fn type_value(cx: &Ctxt, expr: &Expr, key: Symbol) -> Option<Path> {
    let (what, example) = match key {
        REPLY => ("the reply event's struct", "FileIndexed"),
        _ => ("the struct of the previous version", "FileUploadedV1"),
    };
    match expr {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => Some(p.path.clone()),
        Expr::Group(g) => type_value(cx, &g.expr, key),
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            let fix = match s.parse::<Path>() {
                Ok(p) => path_to_string(&p),
                Err(_) => example.to_owned(),
            };
            cx.error_spanned_by(
                s,
                format!("`{key}` names a type, not a string: write `{key} = {fix}`"),
            );
            None
        }
        _ => {
            cx.error_spanned_by(
                expr,
                format!("expected {what} for `{key}`, like `{key} = {example}`"),
            );
            None
        }
    }
}

/// `key = field`: one field name of the struct.
fn key_value(cx: &Ctxt, expr: &Expr) -> Option<syn::Ident> {
    match expr {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => match p.path.get_ident() {
            Some(ident) => Some(ident.clone()),
            None => {
                cx.error_spanned_by(
                    &p.path,
                    "`key` names one field of this struct, not a path: write `key = file_id`",
                );
                None
            }
        },
        Expr::Group(g) => key_value(cx, &g.expr),
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            let fix = match s.parse::<syn::Ident>() {
                Ok(ident) => ident.to_string(),
                Err(_) => "file_id".to_owned(),
            };
            cx.error_spanned_by(
                s,
                format!("`key` names a field, not a string: write `key = {fix}`"),
            );
            None
        }
        _ => {
            cx.error_spanned_by(
                expr,
                "expected the name of a field for `key`, like `key = file_id`",
            );
            None
        }
    }
}

fn compat_value(cx: &Ctxt, expr: &Expr) -> Option<CompatMode> {
    let lit = string_value(cx, expr, COMPAT)?;
    let value = lit.value();
    if let Some((_, variant)) = COMPAT_MODES.iter().find(|(name, _)| *name == value) {
        return Some(CompatMode { variant });
    }
    let names: Vec<&'static str> = COMPAT_MODES.iter().map(|(n, _)| *n).collect();
    let mut msg = format!("unknown compat mode `{value}`; expected {}", one_of(&names));
    if let Some(hint) = near_miss(&value.to_ascii_lowercase().replace('-', "_"), &names) {
        msg.push_str(&format!("\nhelp: did you mean `{hint}`?"));
    }
    cx.error_spanned_by(&lit, msg);
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse(args: TokenStream) -> (Attrs, Vec<String>) {
        let cx = Ctxt::new();
        let attrs = Attrs::from_args(&cx, args);
        let errors = match cx.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        };
        (attrs, errors)
    }

    #[test]
    fn every_key_is_read() {
        let (attrs, errors) = parse(quote! {
            stream = "contextual", channel = "notifications", version = 3,
            name = "file.uploaded", upcast_from = v2::FileUploadedV2,
            compat = "full_transitive", crate = "::re::tidings"
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(attrs.stream.unwrap().value(), "contextual");
        assert_eq!(attrs.channel.unwrap().value(), "notifications");
        assert_eq!(attrs.version.unwrap().value, 3);
        assert_eq!(attrs.name.unwrap().value(), "file.uploaded");
        assert_eq!(
            path_to_string(&attrs.upcast_from.unwrap()),
            "v2::FileUploadedV2"
        );
        assert_eq!(attrs.compat.unwrap().variant, "FullTransitive");
        assert_eq!(path_to_string(&attrs.krate.unwrap()), "::re::tidings");
    }

    #[test]
    fn unknown_key_suggests_the_near_miss_and_keeps_reading() {
        let (attrs, errors) = parse(quote!(steam = "x", version = 2));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("unknown event attribute `steam`; expected one of `stream`, `channel`, `version`, `name`, `upcast_from`, `reply`, `compat`, `key`, `crate`"), "{}", errors[0]);
        assert!(
            errors[0].ends_with("did you mean `stream`?"),
            "{}",
            errors[0]
        );
        assert_eq!(attrs.version.unwrap().value, 2);
    }

    #[test]
    fn unknown_key_far_from_every_key_gets_no_hint() {
        let (_, errors) = parse(quote!(colour = "red"));
        assert_eq!(errors.len(), 1);
        assert!(!errors[0].contains("did you mean"), "{}", errors[0]);
    }

    #[test]
    fn duplicate_key_keeps_the_first_value() {
        let (attrs, errors) = parse(quote!(version = 1, version = 2));
        assert_eq!(errors, ["duplicate event attribute `version`"]);
        assert_eq!(attrs.version.unwrap().value, 1);
    }

    #[test]
    fn wrong_value_kinds_are_all_reported() {
        let (_, errors) = parse(quote!(
            version = "2",
            stream = 5,
            upcast_from = "FooV1",
            compat = "sideways"
        ));
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert_eq!(
            errors[0],
            "`version` is an integer, not a string: write `version = 2`"
        );
        assert_eq!(
            errors[1],
            "expected a string literal for `stream`, like `stream = \"orders\"`"
        );
        assert_eq!(
            errors[2],
            "`upcast_from` names a type, not a string: write `upcast_from = FooV1`"
        );
        assert!(
            errors[3].starts_with("unknown compat mode `sideways`; expected one of `backward`"),
            "{}",
            errors[3]
        );
    }

    #[test]
    fn float_version_is_rejected() {
        let (attrs, errors) = parse(quote!(version = 2.5));
        assert!(attrs.version.is_none());
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("`version` is a whole number"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn key_without_value_is_reported() {
        let (_, errors) = parse(quote!(version, stream = "a"));
        assert_eq!(
            errors,
            ["event attribute `version` needs a value: `version = 1`"]
        );
    }

    #[test]
    fn compat_near_miss_is_suggested() {
        let (_, errors) = parse(quote!(compat = "backwards"));
        assert!(
            errors[0].ends_with("did you mean `backward`?"),
            "{}",
            errors[0]
        );
    }
}
