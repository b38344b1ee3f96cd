//! Code generation for `#[event]`: the serde and schemars derives, the
//! `Event` impl, the registry entry and the compile-time checks of
//! `upcast_from`.

use std::path::Path as FsPath;

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Item, ItemStruct, LitStr, Path};

use super::ast::{krate, Input, Shape};
use super::attr::Attrs;
use super::guard::SCHEMA_DIR_ENV;
use crate::args::path_to_string;

/// The full expansion of a valid event.
pub(crate) fn event(input: &Input<'_>, schema_file: Option<&FsPath>) -> TokenStream {
    let krate = input.krate();
    let payload = payload(input, &krate);
    let event_impl = event_impl(input, &krate, true);
    let registry = registry_entry(input, &krate);
    let checks = upcast_checks(input, &krate);
    let request = request_impl(input, &krate);
    let rebuild = rebuild_triggers(schema_file);
    quote! {
        #payload
        const _: () = {
            #event_impl
            #request
            #registry
            #checks
            #rebuild
        };
    }
}

/// `impl Request` for `reply = R`, spanned at the user's `R`, so that an
/// `R` that is not an event is underlined there (`Request::Reply: Event`).
fn request_impl(input: &Input<'_>, krate: &Path) -> TokenStream {
    let Some(reply) = &input.attrs.reply else {
        return TokenStream::new();
    };
    let ident = input.ident();
    let reply_ty = quote_spanned!(reply.span()=> #reply);
    quote! {
        #[automatically_derived]
        impl #krate::Request for #ident {
            type Reply = #reply_ty;
        }
    }
}

/// Makes cargo rebuild the crate, and so rerun the schema guard, when the
/// committed schema file or `TIDINGS_SCHEMA_DIR` changes: rustc records both
/// as dependencies of the crate.
fn rebuild_triggers(schema_file: Option<&FsPath>) -> TokenStream {
    let include = schema_file.and_then(|f| f.to_str()).map(|f| {
        quote!(
            const _: &[u8] = ::core::include_bytes!(#f);
        )
    });
    quote! {
        const _: ::core::option::Option<&str> = ::core::option_env!(#SCHEMA_DIR_ENV);
        #include
    }
}

/// What is emitted when the attribute has errors: the errors, and next to
/// them the item with its derives and, for a struct of the right shape, an
/// `Event` impl with no upcast chain. Without these, every later use of the
/// struct (`impl From<…>`, `Type::TYPE`, another event's `upcast_from`)
/// would add an error of its own and bury the real one.
pub(crate) fn fallback(
    item: &Item,
    attrs: &Attrs,
    input: Option<&Input<'_>>,
    schema_file: Option<&FsPath>,
    errors: syn::Error,
) -> TokenStream {
    let errors = errors.into_compile_error();
    if let Some(input) = input {
        let krate = input.krate();
        let payload = payload(input, &krate);
        let event_impl = event_impl(input, &krate, false);
        let rebuild = rebuild_triggers(schema_file);
        return quote! {
            #errors
            #payload
            const _: () = { #event_impl #rebuild };
        };
    }
    let krate = krate(attrs);
    match item {
        // serde and schemars derive these shapes too; deriving keeps the
        // user's `#[serde(...)]` attributes from being errors of their own.
        Item::Struct(_) | Item::Enum(_) => {
            let derives = derive_attrs(&krate);
            quote! { #errors #derives #item }
        }
        _ => quote! { #errors #item },
    }
}

/// `#[derive(Serialize, Deserialize, JsonSchema)]` through the facade, and a
/// closed schema.
pub(crate) fn derive_attrs(krate: &Path) -> TokenStream {
    let serde_crate = LitStr::new(
        &format!("{}::__private::serde", path_to_string(krate)),
        Span::call_site(),
    );
    let schemars_crate = LitStr::new(
        &format!("{}::__private::schemars", path_to_string(krate)),
        Span::call_site(),
    );
    quote! {
        #[derive(
            #krate::__private::serde::Serialize,
            #krate::__private::serde::Deserialize,
            #krate::__private::schemars::JsonSchema
        )]
        #[serde(crate = #serde_crate)]
        #[schemars(crate = #schemars_crate)]
        // Closed through schemars, not `#[serde(deny_unknown_fields)]`: the
        // schema forbids unknown fields, the decoder still ignores them.
        #[schemars(transform = #krate::__private::close_schema)]
    }
}

fn is_serde_attr(attr: &Attribute) -> bool {
    attr.path().is_ident("serde") || attr.path().is_ident("schemars")
}

/// Traits `#[event]` implements itself.
pub(crate) const PROVIDED_TRAITS: [&str; 3] = ["Serialize", "Deserialize", "JsonSchema"];

/// `item` without the derives of [`PROVIDED_TRAITS`]: they are reported by
/// `valid`, and left in they would add a "conflicting implementations" error.
fn without_provided_derives(item: &ItemStruct) -> ItemStruct {
    let mut item = item.clone();
    item.attrs.retain_mut(|attr| {
        if !attr.path().is_ident("derive") {
            return true;
        }
        let Ok(paths) = attr
            .parse_args_with(syn::punctuated::Punctuated::<Path, syn::Token![,]>::parse_terminated)
        else {
            return true;
        };
        let kept: Vec<&Path> = paths
            .iter()
            .filter(|p| {
                p.segments
                    .last()
                    .is_none_or(|s| !PROVIDED_TRAITS.contains(&s.ident.to_string().as_str()))
            })
            .collect();
        if kept.len() == paths.len() {
            return true;
        }
        if kept.is_empty() {
            return false;
        }
        *attr = syn::parse_quote!(#[derive(#(#kept),*)]);
        true
    });
    item
}

/// The struct with its serde and schemars impls.
fn payload(input: &Input<'_>, krate: &Path) -> TokenStream {
    let item = &without_provided_derives(input.item);
    match input.shape {
        Shape::Named(_) => {
            let derives = derive_attrs(krate);
            quote! { #derives #item }
        }
        Shape::Unit => unit_payload(item, krate),
    }
}

/// A unit struct is the empty JSON object `{}` (not serde's `null`), as a
/// payload with no field is in every other language. Its impls delegate to a
/// hidden braced struct that carries the docs and the serde attributes.
fn unit_payload(item: &ItemStruct, krate: &Path) -> TokenStream {
    let ident = &item.ident;
    let mut unit = item.clone();
    unit.attrs.retain(|a| !is_serde_attr(a));
    let shadow_attrs = item
        .attrs
        .iter()
        .filter(|a| is_serde_attr(a) || a.path().is_ident("doc"));
    let derives = derive_attrs(krate);
    let name = LitStr::new(&ident.to_string(), ident.span());
    let shadow = format_ident!("__TidingsPayloadOf{}", ident);
    let p = quote!(#krate::__private);
    quote! {
        #unit
        const _: () = {
            #derives
            #[schemars(rename = #name)]
            #(#shadow_attrs)*
            struct #shadow {}

            #[automatically_derived]
            impl #p::serde::Serialize for #ident {
                fn serialize<__S>(&self, serializer: __S) -> ::core::result::Result<__S::Ok, __S::Error>
                where
                    __S: #p::serde::Serializer,
                {
                    #p::serde::Serialize::serialize(&#shadow {}, serializer)
                }
            }

            #[automatically_derived]
            impl<'de> #p::serde::Deserialize<'de> for #ident {
                fn deserialize<__D>(deserializer: __D) -> ::core::result::Result<Self, __D::Error>
                where
                    __D: #p::serde::Deserializer<'de>,
                {
                    <#shadow as #p::serde::Deserialize<'de>>::deserialize(deserializer).map(|_| #ident)
                }
            }

            #[automatically_derived]
            impl #p::schemars::JsonSchema for #ident {
                fn schema_name() -> ::std::borrow::Cow<'static, str> {
                    <#shadow as #p::schemars::JsonSchema>::schema_name()
                }
                fn json_schema(generator: &mut #p::schemars::SchemaGenerator) -> #p::schemars::Schema {
                    <#shadow as #p::schemars::JsonSchema>::json_schema(generator)
                }
            }
        };
    }
}

fn opt_str(lit: &Option<LitStr>) -> TokenStream {
    match lit {
        Some(lit) => quote!(::core::option::Option::Some(#lit)),
        None => quote!(::core::option::Option::None),
    }
}

fn compat_tokens(input: &Input<'_>, krate: &Path) -> TokenStream {
    let variant = input
        .attrs
        .compat
        .as_ref()
        .map_or("Backward", |c| c.variant);
    let variant = syn::Ident::new(variant, Span::call_site());
    quote!(#krate::Compat::#variant)
}

/// `impl Event`; `with_chain: false` leaves the `upcast_from` chain out, for
/// the fallback expansion.
fn event_impl(input: &Input<'_>, krate: &Path, with_chain: bool) -> TokenStream {
    let ident = input.ident();
    let stream = opt_str(&input.attrs.stream);
    let channel = opt_str(&input.attrs.channel);
    let type_name = LitStr::new(&input.type_name, input.type_name_span);
    let version = Literal::u32_unsuffixed(input.version());
    let compat = compat_tokens(input, krate);
    let dataschema = LitStr::new(&input.dataschema(), Span::call_site());
    let schema_path = LitStr::new(&input.schema_path(), Span::call_site());
    let p = quote!(#krate::__private);
    let prev = input.attrs.upcast_from.as_ref().filter(|_| with_chain);
    // Every use of `Prev` is spanned at the user's tokens, and is a
    // projection (`<Prev as Event>::…`, `<Self as UpcastFrom<Prev>>::…`), so
    // that a wrong `upcast_from` gives one error under it, not one per use.
    let older = prev.map(|prev| {
        quote_spanned! {prev.span()=>
            if version < #version {
                return match <#prev as #krate::Event>::decode(version, data) {
                    ::core::result::Result::Ok(prev) => ::core::result::Result::Ok(
                        <Self as #p::UpcastFrom<#prev>>::upcast(prev),
                    ),
                    ::core::result::Result::Err(err) => ::core::result::Result::Err(
                        #p::older_version_error::<Self>(err),
                    ),
                };
            }
        }
    });
    let versions = match prev {
        Some(prev) => quote_spanned!(prev.span()=> <#prev as #krate::Event>::versions()),
        None => quote!(::std::vec::Vec::with_capacity(1)),
    };
    let key = partition_key_fn(input, krate);
    quote! {
        #[automatically_derived]
        impl #krate::Event for #ident {
            const STREAM: ::core::option::Option<&'static str> = #stream;
            const CHANNEL: ::core::option::Option<&'static str> = #channel;
            const TYPE: &'static str = #type_name;
            const VERSION: u32 = #version;
            const COMPAT: #krate::Compat = #compat;
            const SCHEMA_PATH: &'static str = #schema_path;
            const DATASCHEMA: &'static str = #dataschema;

            // Inline, like serde's generic code: the deserializer is compiled
            // in the crates that decode this event, not in every crate that
            // declares events whether it reads them or not.
            #[inline]
            fn decode(version: u32, data: &[u8]) -> ::core::result::Result<Self, #krate::DecodeError> {
                if version == #version {
                    return #p::decode_json::<Self>(version, data);
                }
                #older
                ::core::result::Result::Err(#p::unknown_version::<Self>(version))
            }

            #[inline]
            fn versions() -> ::std::vec::Vec<u32> {
                let mut versions = #versions;
                versions.push(#version);
                versions
            }

            #key
        }
    }
}

/// `Event::partition_key` for `key = field`: the field's value through
/// `PartitionKey`, spanned at the field's type so that a type that cannot
/// be a key is underlined where it is declared. Nothing when the event has
/// no key (or names a field it does not have, reported elsewhere).
fn partition_key_fn(input: &Input<'_>, krate: &Path) -> TokenStream {
    let Some(key) = &input.attrs.key else {
        return TokenStream::new();
    };
    let Shape::Named(named) = &input.shape else {
        return TokenStream::new();
    };
    let Some(field) = named.named.iter().find(|f| f.ident.as_ref() == Some(key)) else {
        return TokenStream::new();
    };
    let ty = &field.ty;
    let access = quote_spanned!(ty.span()=>
        <#ty as #krate::PartitionKey>::partition_key(&self.#key)
    );
    quote! {
        #[inline]
        fn partition_key(&self) -> ::core::option::Option<::std::string::String> {
            #access
        }
    }
}

fn registry_entry(input: &Input<'_>, krate: &Path) -> TokenStream {
    let ident = input.ident();
    let name = LitStr::new(&ident.to_string(), ident.span());
    let p = quote!(#krate::__private);
    let upcast_from = match &input.attrs.upcast_from {
        Some(prev) => quote_spanned! {prev.span()=>
            ::core::option::Option::Some(<#prev as #krate::Event>::VERSION)
        },
        None => quote!(::core::option::Option::None),
    };
    let reply = match &input.attrs.reply {
        Some(_) => quote!(::core::option::Option::Some(#p::reply_type::<#ident>())),
        None => quote!(::core::option::Option::None),
    };
    let partition_key = match &input.attrs.key {
        Some(key) => {
            let name = LitStr::new(&key.to_string(), key.span());
            quote!(::core::option::Option::Some(#name))
        }
        None => quote!(::core::option::Option::None),
    };
    quote! {
        #p::inventory::submit! {
            #p::EventInfo {
                rust_name: ::core::concat!(::core::module_path!(), "::", #name),
                type_name: <#ident as #krate::Event>::TYPE,
                version: <#ident as #krate::Event>::VERSION,
                stream: <#ident as #krate::Event>::STREAM,
                channel: <#ident as #krate::Event>::CHANNEL,
                compat: <#ident as #krate::Event>::COMPAT,
                dataschema: <#ident as #krate::Event>::DATASCHEMA,
                schema_path: <#ident as #krate::Event>::SCHEMA_PATH,
                upcast_from: #upcast_from,
                reply: #reply,
                partition_key: #partition_key,
                schema: #p::payload_schema::<#ident>,
                // A deserializer per event, compiled only where the schema
                // check runs; see `EventInfo::decode`.
                #[cfg(test)]
                decode: ::core::option::Option::Some(#p::decode_erased::<#ident>),
                #[cfg(not(test))]
                decode: ::core::option::Option::None,
            }
        }
    }
}

/// Compile-time checks of `upcast_from = Prev`, spanned at the user's
/// `Prev` so the compiler underlines it: same type name, lower version.
fn upcast_checks(input: &Input<'_>, krate: &Path) -> TokenStream {
    let Some(prev) = &input.attrs.upcast_from else {
        return TokenStream::new();
    };
    let ident = input.ident();
    let prev_name = path_to_string(prev);
    let type_name = &input.type_name;
    let version = input.version();
    let version_lit = Literal::u32_unsuffixed(version);
    let type_name_lit = LitStr::new(type_name, Span::call_site());
    let same_type = LitStr::new(
        &format!(
            "`upcast_from = {prev_name}` names an event of another type: `{ident}` is `{type_name}`, so `{prev_name}` must be an older version of `{type_name}`; give it `name = \"{type_name}\"` or upcast from a version of `{type_name}`"
        ),
        prev.span(),
    );
    let lower_version = LitStr::new(
        &format!(
            "`upcast_from = {prev_name}` must name an older version: `{ident}` is version {version}, so the version of `{prev_name}` must be lower than {version}; bump `version` of `{ident}`"
        ),
        prev.span(),
    );
    // `Prev: Event` and `Self: From<Prev>` are checked by their uses in
    // `decode`; separate where-clause checks would only repeat those errors.
    quote_spanned! {prev.span()=>
        const _: () = ::core::assert!(
            #krate::__private::str_eq(<#prev as #krate::Event>::TYPE, #type_name_lit),
            #same_type
        );
        const _: () = ::core::assert!(
            <#prev as #krate::Event>::VERSION < #version_lit,
            #lower_version
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctxt::Ctxt;
    use quote::quote;

    fn expand_ok(args: TokenStream, item: Item) -> String {
        let cx = Ctxt::new();
        let attrs = Attrs::from_args(&cx, args);
        let input = Input::from_syn(&cx, &attrs, &item).unwrap();
        cx.check().unwrap();
        event(&input, Some(FsPath::new("/abs/schemas/s/e/v2.json"))).to_string()
    }

    #[test]
    fn expansion_names_everything_through_the_facade() {
        let out = expand_ok(
            quote!(stream = "s", version = 2, upcast_from = EV1),
            syn::parse_quote!(
                struct E {
                    a: u8,
                }
            ),
        );
        assert!(out.contains("impl :: tidings :: Event for E"), "{out}");
        assert!(
            out.contains("serde (crate = \"::tidings::__private::serde\")"),
            "{out}"
        );
        assert!(
            out.contains("schemars (crate = \"::tidings::__private::schemars\")"),
            "{out}"
        );
        assert!(
            out.contains("transform = :: tidings :: __private :: close_schema"),
            "{out}"
        );
        assert!(
            out.contains("const DATASCHEMA : & 'static str = \"https://tidings.invalid/schemas/s/e/v2.json\""),
            "{out}"
        );
        assert!(
            out.contains("< EV1 as :: tidings :: Event > :: decode (version , data)"),
            "{out}"
        );
        assert!(!out.contains("deny_unknown_fields"), "{out}");
    }

    #[test]
    fn crate_key_replaces_the_facade_path() {
        let out = expand_ok(
            quote!(stream = "s", version = 1, crate = "::re::tidings"),
            syn::parse_quote!(
                struct E;
            ),
        );
        assert!(
            out.contains("impl :: re :: tidings :: Event for E"),
            "{out}"
        );
        assert!(
            out.contains("serde (crate = \"::re::tidings::__private::serde\")"),
            "{out}"
        );
        let rest = out.replace(":: re :: tidings ::", "RE");
        assert!(!rest.contains("tidings ::"), "{rest}");
    }

    #[test]
    fn committed_schema_file_is_a_rebuild_trigger() {
        let out = expand_ok(
            quote!(stream = "s", version = 1),
            syn::parse_quote!(
                struct E;
            ),
        );
        assert!(
            out.contains("include_bytes ! (\"/abs/schemas/s/e/v2.json\")"),
            "{out}"
        );
        assert!(
            out.contains("option_env ! (\"TIDINGS_SCHEMA_DIR\")"),
            "{out}"
        );
    }

    #[test]
    fn fallback_keeps_the_item_next_to_the_errors() {
        let item: Item = syn::parse_quote!(
            struct E {
                a: u8,
            }
        );
        let cx = Ctxt::new();
        let attrs = Attrs::from_args(&cx, quote!(stream = "s"));
        let input = Input::from_syn(&cx, &attrs, &item).unwrap();
        cx.error_at(Span::call_site(), "boom");
        let errors = cx.check().unwrap_err();
        let out = fallback(&item, &attrs, Some(&input), None, errors).to_string();
        assert!(out.contains("compile_error ! { \"boom\" }"), "{out}");
        assert!(out.contains("struct E { a : u8"), "{out}");
        assert!(out.contains("impl :: tidings :: Event for E"), "{out}");
        assert!(
            !out.contains("inventory"),
            "a stub must not register: {out}"
        );
    }
}
