//! Attribute keys as constants, so a key is spelled once.

use std::fmt;

/// One attribute key, such as `stream` in `#[event(stream = "…")]`.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(crate) struct Symbol(&'static str);

pub(crate) const STREAM: Symbol = Symbol("stream");
pub(crate) const CHANNEL: Symbol = Symbol("channel");
pub(crate) const VERSION: Symbol = Symbol("version");
pub(crate) const NAME: Symbol = Symbol("name");
pub(crate) const UPCAST_FROM: Symbol = Symbol("upcast_from");
pub(crate) const COMPAT: Symbol = Symbol("compat");
pub(crate) const CRATE: Symbol = Symbol("crate");

/// Every key `#[event]` accepts, in the order the error messages list them.
pub(crate) const EVENT_KEYS: &[Symbol] =
    &[STREAM, CHANNEL, VERSION, NAME, UPCAST_FROM, COMPAT, CRATE];

impl Symbol {
    pub(crate) fn as_str(self) -> &'static str {
        self.0
    }
}

impl PartialEq<Symbol> for syn::Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl PartialEq<Symbol> for &syn::Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
