//! The typed model of a `#[handler]` function.

use syn::{FnArg, Ident, ItemFn, LitInt, LitStr, PatType, Path, ReturnType, Type};

use super::attr::Attrs;
use crate::ctxt::Ctxt;

/// A handler: its settings and the parts of its signature the expansion uses.
pub(super) struct HandlerFn<'a> {
    pub(super) item: &'a ItemFn,
    pub(super) ident: &'a Ident,
    /// `None` when missing, which `Attrs::parse` reported.
    pub(super) group: Option<LitStr>,
    pub(super) retries: Option<LitInt>,
    pub(super) concurrency: Option<LitInt>,
    pub(super) krate: Path,
    /// Arguments in order: event, context, then an optional state.
    pub(super) args: Vec<&'a PatType>,
    /// `None` for a function without `->`, which `validate` reports.
    pub(super) output: Option<&'a Type>,
}

impl<'a> HandlerFn<'a> {
    /// Builds the model; what is missing or wrong is recorded in `cx` and
    /// the model still built, so that `validate` reports its own findings too.
    pub(super) fn from_syn(cx: &Ctxt, attrs: Attrs, item: &'a ItemFn) -> Self {
        let args = item
            .sig
            .inputs
            .iter()
            .filter_map(|a| match a {
                FnArg::Typed(t) => Some(t),
                FnArg::Receiver(r) => {
                    cx.error_spanned_by(
                        r,
                        "a handler is a free `async fn`, not a method; take shared state as `State<T>` instead of `self`",
                    );
                    None
                }
            })
            .collect();
        let output = match &item.sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some(&**ty),
        };
        HandlerFn {
            item,
            ident: &item.sig.ident,
            group: attrs.group,
            retries: attrs.retries,
            concurrency: attrs.concurrency,
            krate: crate::args::crate_or_default(attrs.krate.as_ref()),
            args,
            output,
        }
    }

    pub(super) fn event_type(&self) -> &'a Type {
        &self.args[0].ty
    }

    pub(super) fn context_type(&self) -> &'a Type {
        &self.args[1].ty
    }

    pub(super) fn state_type(&self) -> Option<&'a Type> {
        self.args.get(2).map(|a| &*a.ty)
    }
}
