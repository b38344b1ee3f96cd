//! Procedural macros of tidings. Use them through the `tidings` crate.

use proc_macro::TokenStream;

/// Declares a typed, versioned event. See the `tidings` crate documentation.
#[proc_macro_attribute]
pub fn event(args: TokenStream, input: TokenStream) -> TokenStream {
    let _ = args;
    input
}

/// Declares an event handler. See the `tidings` crate documentation.
#[proc_macro_attribute]
pub fn handler(args: TokenStream, input: TokenStream) -> TokenStream {
    let _ = args;
    input
}
