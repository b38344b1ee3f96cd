//! `#[payload]`: serde and schemars derives through the facade for the types
//! an event's fields use (nested structs, enums), so that a crate depending
//! only on `tidings` can declare them.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Item;

use crate::args;
use crate::ctxt::Ctxt;
use crate::event::expand::derive_attrs;
use crate::symbol::{CRATE, PAYLOAD_KEYS};

/// Expands `#[payload]` / `#[payload(crate = "…")]` on a struct or an enum.
///
/// Every mistake is reported at once, and the item is emitted next to the
/// errors, with its derives when it is a struct or an enum: without it, each
/// use of the type (a field of an event, a `match`) would add a "cannot find
/// type" or "trait bound not satisfied" error and bury the real one.
pub(crate) fn expand(args: TokenStream, item: Item) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let mut krate = None;
    args::parse(&cx, args, "payload", PAYLOAD_KEYS, |key, expr| {
        if key == CRATE {
            krate = args::crate_value(&cx, &expr);
        }
    });
    let derives = match &item {
        Item::Struct(_) | Item::Enum(_) => {
            Some(derive_attrs(&args::crate_or_default(krate.as_ref())))
        }
        other => {
            cx.error_on_item_head(
                other,
                "#[payload] goes on a struct or an enum used inside an event",
            );
            None
        }
    };
    let errors = cx.check().err().map(syn::Error::into_compile_error);
    Ok(quote! { #errors #derives #item })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_derives_through_the_facade() {
        let out = expand(
            quote!(),
            syn::parse_quote!(
                struct Checksum {
                    hex: String,
                }
            ),
        )
        .unwrap();
        let out = out.to_string();
        assert!(
            out.contains(":: tidings :: __private :: serde :: Serialize"),
            "{out}"
        );
        assert!(
            out.contains("crate = \"::tidings::__private::schemars\""),
            "{out}"
        );
    }

    #[test]
    fn honours_crate() {
        let out = expand(
            quote!(crate = "::re::tidings"),
            syn::parse_quote!(
                enum Origin {
                    A,
                }
            ),
        )
        .unwrap();
        assert!(out
            .to_string()
            .contains(":: re :: tidings :: __private :: serde :: Serialize"));
    }

    #[test]
    fn reports_every_mistake_next_to_the_item() {
        let out = expand(
            quote!(version = 1, crate = "not a path", crat = "::t"),
            syn::parse_quote!(
                struct S;
            ),
        )
        .unwrap()
        .to_string();
        for needle in [
            "unknown payload attribute `version`",
            "belongs on `#[event]`",
            "`crate` is the path tidings is re-exported at",
            "unknown payload attribute `crat`",
            "did you mean `crate`?",
            // The struct and its derives are still there.
            "struct S ;",
            ":: tidings :: __private :: serde :: Serialize",
        ] {
            assert!(out.contains(needle), "missing `{needle}` in:\n{out}");
        }
        let out = expand(
            quote!(),
            syn::parse_quote!(
                fn f() {}
            ),
        )
        .unwrap()
        .to_string();
        assert!(out.contains("struct or an enum"), "{out}");
        assert!(out.contains("fn f () { }"), "{out}");
        assert!(!out.contains("Serialize"), "{out}");
    }
}
