//! `tidings::schemas::check!`: the schema check of a package, callable from
//! an integration test under `tests/`.
//!
//! An integration test is a crate of its own. The library is linked into it
//! only when the test names something of it, and the library's `#[event]`
//! registrations (inventory statics) are linked with it; and `#[event]`
//! compiles an event's decoder only into the `cfg(test)` build of the crate
//! that declares it, which the library linked into a test is not. The macro
//! reads the package at expansion (`CARGO_MANIFEST_DIR`, `Cargo.toml`, the
//! library's sources) and emits what the test lacks: a `use` of the library,
//! which links it and so its registrations, and a decoder for each event the
//! library declares under a public path.

mod expand;
mod manifest;
mod scan;

use proc_macro2::TokenStream;

/// Expands `check!(arg)`.
pub(crate) fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let arg: syn::Expr = syn::parse2(input).map_err(|e| {
        syn::Error::new(
            e.span(),
            "`check!` takes the schemas folder (`check!(\"schemas\")`) or a `Check` (`check!(Check::new(\"schemas\").sample(&event))`)",
        )
    })?;
    let package = manifest::Package::from_env();
    let events = match &package.library {
        Some(lib) if !package.compiling_the_library(lib) => scan::events(&lib.root),
        _ => Vec::new(),
    };
    Ok(expand::check(&arg, &package, &events))
}
