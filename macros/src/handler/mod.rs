//! `#[handler]`: parse the attribute and the function into a typed model
//! (`attr`, `ast`), check it (`valid`), and generate the handler (`expand`).

mod ast;
mod attr;
mod expand;
mod valid;

use std::cell::RefCell;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// Expands `#[handler(args)] input`.
///
/// When the attribute or the signature is wrong, the function is emitted
/// unchanged next to the errors, so that the user sees the real mistakes and
/// not a cascade of "cannot find function" errors where it is called.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> syn::Result<TokenStream> {
    let item: syn::ItemFn = syn::parse2(input)?;
    let cx = Ctxt::default();
    let attrs = attr::Attrs::parse(&cx, args);
    let model = ast::HandlerFn::from_syn(&cx, attrs, &item);
    model.validate(&cx);
    match cx.check() {
        Ok(()) => Ok(expand::expand(&model)),
        Err(errors) => {
            let mut out = errors.to_compile_error();
            item.to_tokens(&mut out);
            Ok(out)
        }
    }
}

/// Collects every error of one expansion, so that all are reported at once.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: RefCell<Vec<syn::Error>>,
}

impl Ctxt {
    /// Records an error on the given tokens.
    pub(crate) fn error_spanned_by<T: ToTokens, M: std::fmt::Display>(&self, tokens: T, msg: M) {
        self.errors
            .borrow_mut()
            .push(syn::Error::new_spanned(tokens.into_token_stream(), msg));
    }

    /// Records an error.
    pub(crate) fn push(&self, err: syn::Error) {
        self.errors.borrow_mut().push(err);
    }

    /// All errors combined into one, if any.
    pub(crate) fn check(self) -> syn::Result<()> {
        let mut errors = self.errors.into_inner().into_iter();
        let Some(mut first) = errors.next() else {
            return Ok(());
        };
        for e in errors {
            first.combine(e);
        }
        Err(first)
    }
}
