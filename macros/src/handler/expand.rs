//! Code generation for `#[handler]`.
//!
//! The function becomes a unit struct of the same name that implements
//! `Handler` (what `bus.consumer().handler(name)` takes) and dereferences to
//! a function pointer, so `name(event, ctx).await` still calls the handler
//! directly, as in a unit test. The body moves to a hidden
//! `__tidings_handler_<name>` function, unchanged.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::HandlerFn;

pub(super) fn expand(h: &HandlerFn<'_>) -> TokenStream {
    let krate = &h.krate;
    let ident = h.ident;
    let name = ident.to_string();
    let vis = &h.item.vis;
    let inner = format_ident!("__tidings_handler_{}", ident);
    let group = h
        .group
        .as_ref()
        .expect("validated: the handler has a group");
    let event_ty = h.event_type();
    let ctx_ty = h.context_type();
    let state_ty = h.state_type();
    let output = h.output.expect("validated: the handler has a return type");

    let docs = h.item.attrs.iter().filter(|a| a.path().is_ident("doc"));
    let mut inner_fn = h.item.clone();
    inner_fn.sig.ident = inner.clone();
    inner_fn.vis = syn::Visibility::Inherited;

    // Each type is checked once, by a call spanned at the user's tokens, so
    // that a wrong type is underlined where it is written: a check fn for the
    // event (a `where` clause on a concrete type would be reported on the
    // whole item), and the calls that use the context, the state and the
    // return value.
    let check_event = quote_spanned! {event_ty.span()=>
        #[allow(dead_code)]
        fn __tidings_check_event() {
            #krate::__private::assert_event::<#event_ty>();
        }
    };
    let into_result = quote_spanned! {output.span()=>
        <#output as #krate::__private::IsHandlerResult>::into_result
    };
    let pass_ctx = quote_spanned! {ctx_ty.span()=>
        <#ctx_ty as #krate::__private::IsContext>::from_context(ctx)
    };

    let retries = h.retries.as_ref().map(|r| quote!(.retries(#r)));
    let concurrency = h.concurrency.as_ref().map(|c| quote!(.concurrency(#c)));

    let (states, take_state, pass_state, state_param, state_arg) = match state_ty {
        Some(s) => (
            quote_spanned! {s.span()=>
                ::std::vec![#krate::StateType::of::<<#s as #krate::__private::IsState>::Inner>()]
            },
            quote_spanned! {s.span()=> let __tidings_state = #krate::__private::state::<#s>(&ctx, #name)?; },
            quote! { , __tidings_state },
            quote! { , #s },
            quote! { , __tidings_s },
        ),
        None => (
            quote! { ::std::vec::Vec::new() },
            quote! {},
            quote! {},
            quote! {},
            quote! {},
        ),
    };

    quote! {
        #(#docs)*
        #[allow(non_camel_case_types)]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy, ::core::default::Default)]
        #vis struct #ident;

        #[doc(hidden)]
        #inner_fn

        const _: () = {
            #check_event

            #[automatically_derived]
            impl #krate::Handler for #ident {
                type Event = #event_ty;

                fn name(&self) -> &'static str {
                    #name
                }

                fn options(&self) -> #krate::HandlerOptions {
                    #krate::HandlerOptions::new(#group) #retries #concurrency
                }

                fn states(&self) -> ::std::vec::Vec<#krate::StateType> {
                    #states
                }

                fn call(
                    &self,
                    event: Self::Event,
                    ctx: #krate::Context,
                ) -> #krate::BoxFuture<'static, ::core::result::Result<#krate::Outcome, #krate::HandlerError>> {
                    ::std::boxed::Box::pin(async move {
                        #take_state
                        #into_result(#inner(event, #pass_ctx #pass_state).await)
                    })
                }
            }

            #[automatically_derived]
            impl ::core::ops::Deref for #ident {
                type Target = fn(#event_ty, #ctx_ty #state_param) -> #krate::BoxFuture<'static, #output>;

                fn deref(&self) -> &Self::Target {
                    const __TIDINGS_CALL: fn(#event_ty, #ctx_ty #state_param) -> #krate::BoxFuture<'static, #output> =
                        |__tidings_e, __tidings_c #state_arg| ::std::boxed::Box::pin(#inner(__tidings_e, __tidings_c #state_arg));
                    &__TIDINGS_CALL
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ast::HandlerFn, attr::Attrs};
    use crate::ctxt::Ctxt;

    fn model_errors(args: proc_macro2::TokenStream, item: syn::ItemFn) -> Vec<String> {
        let cx = Ctxt::new();
        let attrs = Attrs::parse(&cx, args);
        HandlerFn::from_syn(&cx, attrs, &item).validate(&cx);
        match cx.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_valid_handler_has_no_error_and_expands() {
        let item: syn::ItemFn = syn::parse_quote! {
            async fn index(e: FileUploaded, ctx: Context) -> HandlerResult { Ok(()) }
        };
        assert!(model_errors(quote::quote!(group = "g", retries = 5), item.clone()).is_empty());
        let out = super::super::expand(quote::quote!(group = "g"), quote::quote!(#item)).unwrap();
        let text = out.to_string();
        assert!(text.contains("struct index"), "{text}");
        assert!(text.contains("__tidings_handler_index"), "{text}");
    }

    #[test]
    fn every_mistake_is_reported_in_one_pass() {
        let item: syn::ItemFn = syn::parse_quote! {
            fn index<T>(e: T) {}
        };
        let errors = model_errors(quote::quote!(grup = "g", retries = -1, retries = 1), item);
        let all = errors.join("\n");
        for needle in [
            "unknown handler attribute `grup`",
            "did you mean `group`",
            "`retries` must be an integer literal, 0 or more",
            "duplicate handler attribute `retries`",
            "missing handler attribute `group`",
            "must be an `async fn`",
            "cannot be generic",
            "takes 1 argument",
            "must return `HandlerResult`",
        ] {
            assert!(all.contains(needle), "missing `{needle}` in:\n{all}");
        }
    }
}
