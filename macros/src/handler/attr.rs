//! Parsing of `#[handler(group = "…", retries = N, concurrency = N, crate = "…")]`.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::{LitInt, LitStr, Path};

use super::Ctxt;

const GROUP: &str = "group";
const RETRIES: &str = "retries";
const CONCURRENCY: &str = "concurrency";
const CRATE: &str = "crate";
const KEYS: [&str; 4] = [GROUP, RETRIES, CONCURRENCY, CRATE];

/// The attribute's arguments; each `None` when absent or invalid (the error
/// is in the `Ctxt`).
pub(super) struct Attrs {
    pub(super) group: Option<LitStr>,
    pub(super) retries: Option<LitInt>,
    pub(super) concurrency: Option<LitInt>,
    pub(super) krate: Option<Path>,
    /// Where to report a missing key: the arguments, or the attribute.
    pub(super) span: Span,
}

impl Attrs {
    pub(super) fn parse(cx: &Ctxt, args: TokenStream) -> Attrs {
        let span = if args.is_empty() {
            Span::call_site()
        } else {
            syn::spanned::Spanned::span(&args)
        };
        let mut attrs = Attrs {
            group: None,
            retries: None,
            concurrency: None,
            krate: None,
            span,
        };
        let mut seen: Vec<String> = Vec::new();
        let parser = syn::meta::parser(|meta| {
            attrs.parse_one(cx, &mut seen, meta);
            Ok(())
        });
        if let Err(e) = syn::parse::Parser::parse2(parser, args) {
            cx.push(e);
        }
        if attrs.group.is_none() && !seen.iter().any(|k| k == GROUP) {
            cx.push(syn::Error::new(
                attrs.span,
                "missing handler attribute `group`: write `#[handler(group = \"my-group\")]`",
            ));
        }
        attrs
    }

    fn parse_one(&mut self, cx: &Ctxt, seen: &mut Vec<String>, meta: ParseNestedMeta<'_>) {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        if !KEYS.contains(&key.as_str()) {
            let shown = if key.is_empty() {
                quote::ToTokens::to_token_stream(&meta.path).to_string()
            } else {
                key.clone()
            };
            let mut msg = format!(
                "unknown handler attribute `{shown}`; expected one of `group`, `retries`, `concurrency`, `crate`"
            );
            if let Some(near) = KEYS
                .iter()
                .filter(|k| strsim::jaro_winkler(k, &key) > 0.8)
                .max_by(|a, b| {
                    strsim::jaro_winkler(a, &key).total_cmp(&strsim::jaro_winkler(b, &key))
                })
            {
                msg.push_str(&format!(" (did you mean `{near}`?)"));
            }
            cx.error_spanned_by(&meta.path, msg);
            skip_value(&meta);
            return;
        }
        if seen.contains(&key) {
            cx.error_spanned_by(&meta.path, format!("duplicate handler attribute `{key}`"));
            skip_value(&meta);
            return;
        }
        seen.push(key.clone());
        let value = match meta.value() {
            Ok(v) => v,
            Err(_) => {
                cx.error_spanned_by(
                    &meta.path,
                    format!("handler attribute `{key}` needs a value: `{key} = …`"),
                );
                return;
            }
        };
        match key.as_str() {
            GROUP => match value.parse::<LitStr>() {
                Ok(s) if s.value().trim().is_empty() => {
                    cx.error_spanned_by(&s, "handler `group` cannot be empty")
                }
                Ok(s) => self.group = Some(s),
                Err(e) => cx.push(syn::Error::new(
                    e.span(),
                    "handler `group` must be a string literal: `group = \"my-group\"`",
                )),
            },
            RETRIES | CONCURRENCY => {
                let parsed = value.parse::<syn::Expr>();
                let lit = match &parsed {
                    Ok(syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Int(i),
                        ..
                    // `retries = 0` means one attempt and no retry; a
                    // concurrency of 0 would never run the handler.
                    })) if i.suffix().is_empty()
                        && i.base10_parse::<u32>().is_ok_and(|n| n >= 1 || key == RETRIES) =>
                    {
                        Some(i.clone())
                    }
                    _ => None,
                };
                match (lit, parsed) {
                    (Some(i), _) => {
                        if key == RETRIES {
                            self.retries = Some(i);
                        } else {
                            self.concurrency = Some(i);
                        }
                    }
                    (None, Ok(expr)) if key == RETRIES => cx.error_spanned_by(
                        expr,
                        "handler `retries` must be an integer literal, 0 or more, such as `retries = 3` (retries after the first attempt)",
                    ),
                    (None, Ok(expr)) => cx.error_spanned_by(
                        expr,
                        format!("handler `{key}` must be a positive integer literal, such as `{key} = 3`"),
                    ),
                    (None, Err(e)) => cx.push(e),
                }
            }
            CRATE => match value.parse::<LitStr>().and_then(|s| s.parse::<Path>()) {
                Ok(p) => self.krate = Some(p),
                Err(e) => cx.push(syn::Error::new(
                    e.span(),
                    "handler `crate` must be a path in a string: `crate = \"::my::tidings\"`",
                )),
            },
            _ => {}
        }
    }
}

/// Consumes `= value` after a rejected key, so that parsing goes on with the
/// next key and every mistake is reported in one pass.
fn skip_value(meta: &ParseNestedMeta<'_>) {
    if let Ok(v) = meta.value() {
        let _ = v.parse::<syn::Expr>();
    }
}
