//! `#[handler]`: parse the attribute and the function into a typed model
//! (`attr`, `ast`), check it (`valid`), and generate the handler (`expand`).

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::ctxt::Ctxt;

/// Expands `#[handler(args)] input`.
///
/// When the attribute or the signature is wrong, the function is emitted
/// unchanged next to the errors, so that the user sees the real mistakes and
/// not a cascade of "cannot find function" errors where it is called.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let attrs = attr::Attrs::parse(&cx, args);
    let item = match syn::parse2::<syn::Item>(input)? {
        syn::Item::Fn(item) => item,
        other => {
            // Not a function: the arguments are still checked, and the item
            // is kept so that its uses do not fail too.
            cx.error_on_item_head(
                &other,
                "#[handler] goes on an `async fn(event: E, ctx: Context) -> HandlerResult`",
            );
            let mut out = cx.check().unwrap_err().to_compile_error();
            other.to_tokens(&mut out);
            return Ok(out);
        }
    };
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
