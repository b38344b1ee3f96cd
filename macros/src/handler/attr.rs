//! Parsing of `#[handler(group = "…", retries = N, concurrency = N, crate = "…")]`.

use proc_macro2::{Span, TokenStream};
use syn::{Expr, Lit, LitInt, LitStr, Path};

use crate::args::{self, crate_value, lit, string_value};
use crate::ctxt::Ctxt;
use crate::names::topic_problem;
use crate::symbol::{Symbol, CONCURRENCY, CRATE, GROUP, HANDLER_KEYS, RETRIES};

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
        let seen = args::parse(cx, args, "handler", HANDLER_KEYS, |key, expr| {
            attrs.set(cx, key, &expr)
        });
        if !seen.written(GROUP) {
            cx.error_at(
                attrs.span,
                "missing handler attribute `group`: write `#[handler(group = \"my-group\")]`",
            );
        }
        attrs
    }

    /// Stores the value of the first occurrence of `key`.
    fn set(&mut self, cx: &Ctxt, key: Symbol, expr: &Expr) {
        match key {
            GROUP => {
                if let Some(s) = string_value(cx, expr, key) {
                    match topic_problem(&s.value()) {
                        Some(problem) => cx.error_spanned_by(
                            &s,
                            format!("invalid group name `{}`: {problem}", s.value()),
                        ),
                        None => self.group = Some(s),
                    }
                }
            }
            RETRIES => self.retries = count(cx, expr, key),
            CONCURRENCY => self.concurrency = count(cx, expr, key),
            CRATE => self.krate = crate_value(cx, expr),
            _ => {}
        }
    }
}

/// `retries = N` or `concurrency = N`: an unsuffixed integer literal.
/// `retries = 0` means one attempt and no retry; a concurrency of 0 would
/// never run the handler.
fn count(cx: &Ctxt, expr: &Expr, key: Symbol) -> Option<LitInt> {
    match lit(expr) {
        Some(Lit::Int(i))
            if i.suffix().is_empty()
                && i.base10_parse::<u32>()
                    .is_ok_and(|n| n >= 1 || key == RETRIES) =>
        {
            Some(i.clone())
        }
        _ if key == RETRIES => {
            cx.error_spanned_by(
                expr,
                "handler `retries` must be an integer literal, 0 or more, such as `retries = 3` (retries after the first attempt)",
            );
            None
        }
        _ => {
            cx.error_spanned_by(
                expr,
                format!("handler `{key}` must be a positive integer literal, such as `{key} = 3`"),
            );
            None
        }
    }
}
