//! Checks of a handler that are certain at macro time. Type checks (is the
//! first argument an event, the second a `Context`, the return a
//! `HandlerResult`) are left to the compiler through spanned `where` clauses
//! in `expand`, which know the types and underline the user's tokens.

use quote::ToTokens;

use super::ast::HandlerFn;
use crate::ctxt::Ctxt;

impl HandlerFn<'_> {
    pub(super) fn validate(&self, cx: &Ctxt) {
        let sig = &self.item.sig;
        if sig.asyncness.is_none() {
            cx.error_spanned_by(
                sig.fn_token,
                "a handler must be an `async fn`: write `async fn` here",
            );
        }
        if let Some(c) = &sig.constness {
            cx.error_spanned_by(c, "a handler cannot be a `const fn`");
        }
        if let Some(u) = &sig.unsafety {
            cx.error_spanned_by(u, "a handler cannot be `unsafe`");
        }
        if let Some(abi) = &sig.abi {
            cx.error_spanned_by(abi, "a handler cannot have an `extern` ABI");
        }
        if !sig.generics.params.is_empty() {
            cx.error_spanned_by(
                &sig.generics,
                "a handler cannot be generic: the worker must know the event type it decodes",
            );
        } else if let Some(w) = &sig.generics.where_clause {
            cx.error_spanned_by(w, "a handler cannot have a `where` clause");
        }
        if let Some(v) = &sig.variadic {
            cx.error_spanned_by(v, "a handler cannot be variadic");
        }
        let n = sig.inputs.len();
        if !(2..=3).contains(&n) {
            let msg = format!(
                "a handler takes `(event: E, ctx: Context)`, optionally followed by `State(s): State<T>`; this one takes {n} argument{}",
                if n == 1 { "" } else { "s" }
            );
            if n == 0 {
                cx.syn_error(syn::Error::new(sig.paren_token.span.join(), msg));
            } else {
                cx.error_spanned_by(&sig.inputs, msg);
            }
        }
        if self.output.is_none() {
            cx.syn_error(syn::Error::new(
                sig.paren_token.span.close(),
                format!(
                    "a handler must return `HandlerResult`: add `-> tidings::HandlerResult` to `{}`",
                    sig.ident.to_token_stream()
                ),
            ));
        }
    }
}
