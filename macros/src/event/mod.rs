//! `#[event]`: parse the arguments and the struct, check them, generate.

mod ast;
mod attr;
pub(crate) mod expand;
mod guard;
mod valid;

use proc_macro2::TokenStream;
use syn::Item;

use crate::ctxt::Ctxt;

/// Expands `#[event(args)] item`. Mistakes come back as `compile_error!`s
/// next to a best-effort expansion, all of them at once.
pub(crate) fn expand(args: TokenStream, item: Item) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let attrs = attr::Attrs::from_args(&cx, args);
    let ident = match &item {
        Item::Struct(s) => Some(&s.ident),
        _ => None,
    };
    valid::check_attrs(&cx, &attrs, ident);
    let input = ast::Input::from_syn(&cx, &attrs, &item);
    if let Some(input) = &input {
        valid::check(&cx, input);
    }
    let schema_file = input.as_ref().and_then(|input| guard::check(&cx, input));
    let schema_file = schema_file.as_deref();
    match cx.check() {
        Ok(()) => match &input {
            Some(input) => Ok(expand::event(input, schema_file)),
            // `from_syn` records why it returns `None`, so `check` failed.
            None => Err(syn::Error::new_spanned(&item, "#[event] goes on a struct")),
        },
        Err(errors) => Ok(expand::fallback(
            &item,
            &attrs,
            input.as_ref(),
            schema_file,
            errors,
        )),
    }
}
