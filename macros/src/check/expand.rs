//! Code generation for `check!`: a block that links the library, adds the
//! decoder of each public event it declares, and runs the check.

use proc_macro2::{Span, TokenStream};
use quote::quote;

use super::manifest::Package;
use super::scan::Found;

/// `{ use ::lib as _; let check = …; [#[cfg(…)] let check = check + decoder;]* check.run() }`.
pub(crate) fn check(arg: &syn::Expr, package: &Package, events: &[Found]) -> TokenStream {
    let check = quote!(__tidings_check);
    let p = quote!(::tidings::__private);
    let library = package
        .library
        .as_ref()
        .filter(|lib| !package.compiling_the_library(lib))
        .map(|lib| syn::Ident::new(&lib.name, Span::call_site()));
    // Naming the library links it, and with it the inventory statics of its
    // `#[event]`s: an unnamed dependency of a test is not linked at all.
    let link = library.as_ref().map(|lib| {
        quote! {
            #[allow(unused_imports)]
            use ::#lib as _;
        }
    });
    let mut decoders = Vec::new();
    if let Some(lib) = &library {
        for event in events {
            let path = &event.path;
            let cfgs = &event.cfgs;
            decoders.push(quote! {
                #(#[cfg(#cfgs)])*
                let #check = (&#p::DecoderProbe::<::#lib::#(#path)::*>::new()).add_decoder(#check);
            });
        }
    }
    quote! {
        {
            #link
            #[allow(unused_imports)]
            use #p::{AddEventDecoder as _, AddNoDecoder as _};
            let #check = #p::check_in_package(#arg, ::core::env!("CARGO_MANIFEST_DIR"));
            #(#decoders)*
            #check.run()
        }
    }
}
