//! Code generation for `#[handler]`.
//!
//! The function stays a function of the same name, so that a `let`, a
//! parameter or a closure argument of that name shadows it as it would any
//! function (a unit struct or a const of that name would make each of them a
//! pattern that must match it), and `name(event, ctx).await` still calls it
//! directly, as in a unit test. What changes is its return type:
//!
//! ```text
//! fn name(event: E, ctx: Context) -> HandlerCall<__tidings_handler_name, impl Future<Output = R> + Send>
//! ```
//!
//! `HandlerCall` is a future that gives `R`, as the `async fn` did, and its
//! first parameter is a hidden marker type of this handler that implements
//! `HandlerSpec` (name, group, retries, concurrency). So the function item
//! alone carries the settings, and `bus.consumer().handler(name)` reads them
//! from its type through `IntoHandler`, with no value to store and nothing
//! more per delivery than the one boxed future `Handler::call` returns. The
//! `async fn` itself, untouched (name, attributes, body), sits inside the
//! function that returns its future.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Attribute, Pat};

use super::ast::HandlerFn;

pub(super) fn expand(h: &HandlerFn<'_>) -> TokenStream {
    let krate = &h.krate;
    let ident = h.ident;
    let name = ident.to_string();
    let vis = &h.item.vis;
    let marker = format_ident!("__tidings_handler_{}", ident, span = ident.span());
    let group = h
        .group
        .as_ref()
        .expect("validated: the handler has a group");
    let event_ty = h.event_type();
    let ctx_ty = h.context_type();
    let output = h.output.expect("validated: the handler has a return type");

    // Docs and `#[deprecated]` describe the function a user sees, the
    // outer one; `#[cfg]` decides whether any of the output exists. Every
    // other attribute (`#[tracing::instrument]`, lints) stays on the
    // `async fn` that has the body.
    let outer = |a: &&Attribute| {
        let p = a.path();
        p.is_ident("doc") || p.is_ident("cfg") || p.is_ident("deprecated")
    };
    let outer_attrs: Vec<&Attribute> = h.item.attrs.iter().filter(outer).collect();
    let cfgs: Vec<&Attribute> = h
        .item
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .collect();
    let mut inner_fn = h.item.clone();
    inner_fn.attrs.retain(|a| !outer(&a));
    inner_fn.vis = syn::Visibility::Inherited;

    // The outer function's parameters keep the user's names where they are
    // plain names (they show in its documentation); a pattern, or a name
    // that would shadow the inner `async fn` it calls, gets one of its own.
    let params: Vec<_> = h
        .args
        .iter()
        .enumerate()
        .map(|(i, a)| match &*a.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() && p.ident != *ident => {
                p.ident.clone()
            }
            _ => format_ident!("__tidings_arg{}", i),
        })
        .collect();
    let types = h.args.iter().map(|a| &a.ty);

    // Each type is checked once, by an expression spanned at the user's
    // tokens, so that a wrong type is underlined where it is written: a
    // call for the event (a `where` clause on a concrete type would be
    // reported on the whole item), and the trait paths for the context,
    // the state and the return type.
    let check_event = quote_spanned! {event_ty.span()=>
        #krate::__private::assert_event::<#event_ty>();
    };
    let check_ctx = quote_spanned! {ctx_ty.span()=>
        let _ = <#ctx_ty as #krate::__private::IsContext>::from_context;
    };
    let check_state = h.state_type().map(|s| {
        quote_spanned! {s.span()=>
            let _ = <#s as #krate::__private::IsState>::wrap;
        }
    });
    let check_output = quote_spanned! {output.span()=>
        let _ = <#output as #krate::__private::IsHandlerResult>::into_result;
    };
    // A worker runs handlers on any thread, so the future must be `Send`.
    // The compiler reports one that is not on the span of the return type,
    // which runs from its first token, the crate path: the path is spanned
    // at the function's name so that the error underlines the name (with
    // the compiler's note on what is held across which `.await`), not the
    // whole attribute. The user's own output type keeps its span.
    let krate_at_name = respan(krate.to_token_stream(), ident.span());
    let returns = quote_spanned! {ident.span()=>
        #krate_at_name::HandlerCall<#marker, impl ::core::future::Future<Output = #output> + ::core::marker::Send>
    };

    let retries = h.retries.as_ref().map(|r| quote!(.retries(#r)));
    let concurrency = h.concurrency.as_ref().map(|c| quote!(.concurrency(#c)));

    quote! {
        #(#outer_attrs)*
        #vis fn #ident(#(#params: #types),*) -> #returns {
            #inner_fn
            #krate::HandlerCall::new(#ident(#(#params),*))
        }

        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[derive(::core::fmt::Debug)]
        #vis enum #marker {}

        #(#cfgs)*
        const _: () = {
            #[allow(dead_code)]
            fn __tidings_check() {
                #check_event
                #check_ctx
                #check_state
                #check_output
            }

            #[automatically_derived]
            impl #krate::HandlerSpec for #marker {
                fn name() -> &'static str {
                    #name
                }

                fn options() -> #krate::HandlerOptions {
                    #krate::HandlerOptions::new(#group) #retries #concurrency
                }
            }
        };
    }
}

/// `tokens`, every token spanned at `span`.
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut t| {
            if let proc_macro2::TokenTree::Group(g) = &t {
                let mut inner = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                inner.set_span(span);
                t = inner.into();
            } else {
                t.set_span(span);
            }
            t
        })
        .collect()
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
        // Still a function of that name, which a binding may shadow, with
        // the `async fn` inside and the settings on a marker type.
        assert!(text.contains("fn index"), "{text}");
        assert!(text.contains("async fn index"), "{text}");
        assert!(!text.contains("struct index"), "{text}");
        assert!(text.contains("enum __tidings_handler_index"), "{text}");
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
