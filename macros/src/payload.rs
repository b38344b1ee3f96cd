//! `#[payload]`: serde and schemars derives through the facade for the types
//! an event's fields use (nested structs, enums), so that a crate depending
//! only on `tidings` can declare them.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::Parser;
use syn::{Item, LitStr, Path};

use crate::event::expand::derive_attrs;

/// Expands `#[payload]` / `#[payload(crate = "…")]` on a struct or an enum.
pub(crate) fn expand(args: TokenStream, item: Item) -> syn::Result<TokenStream> {
    let mut krate: Option<Path> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            if krate.is_some() {
                return Err(meta.error("duplicate payload attribute `crate`"));
            }
            let lit: LitStr = meta.value()?.parse()?;
            krate = Some(lit.parse().map_err(|_| {
                syn::Error::new(
                    lit.span(),
                    "`crate` is the path tidings is re-exported at, like `crate = \"::my_crate::tidings\"`",
                )
            })?);
            Ok(())
        } else {
            Err(meta.error(
                "unknown payload attribute; the only key is `crate` (versions, streams and channels belong on `#[event]`)",
            ))
        }
    });
    parser.parse2(args)?;
    let krate = krate.unwrap_or_else(|| syn::parse_quote!(::tidings));
    match &item {
        Item::Struct(_) | Item::Enum(_) => {}
        other => {
            return Err(syn::Error::new_spanned(
                item_keyword(other),
                "#[payload] goes on a struct or an enum used inside an event",
            ))
        }
    }
    let derives = derive_attrs(&krate);
    Ok(quote! { #derives #item })
}

/// The tokens to underline for an item of the wrong kind: its first tokens.
fn item_keyword(item: &Item) -> TokenStream {
    let tokens = quote!(#item);
    tokens.into_iter().take(2).collect()
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
    fn rejects_unknown_keys_and_other_items() {
        let err = expand(
            quote!(version = 1),
            syn::parse_quote!(
                struct S;
            ),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("unknown payload attribute"));
        let err = expand(
            quote!(),
            syn::parse_quote!(
                fn f() {}
            ),
        )
        .unwrap_err();
        assert!(err.to_string().contains("struct or an enum"));
    }
}
