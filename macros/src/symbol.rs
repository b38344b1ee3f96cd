//! Attribute keys of every macro as constants, so a key is spelled once, and
//! the list of keys each macro accepts.

use std::fmt;

/// One attribute key, such as `stream` in `#[event(stream = "…")]`.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) struct Symbol(&'static str);

// `#[event]`
pub(crate) const STREAM: Symbol = Symbol("stream");
pub(crate) const CHANNEL: Symbol = Symbol("channel");
pub(crate) const VERSION: Symbol = Symbol("version");
pub(crate) const NAME: Symbol = Symbol("name");
pub(crate) const UPCAST_FROM: Symbol = Symbol("upcast_from");
pub(crate) const COMPAT: Symbol = Symbol("compat");
pub(crate) const REPLY: Symbol = Symbol("reply");
pub(crate) const KEY: Symbol = Symbol("key");

// `#[handler]`
pub(crate) const GROUP: Symbol = Symbol("group");
pub(crate) const RETRIES: Symbol = Symbol("retries");
pub(crate) const CONCURRENCY: Symbol = Symbol("concurrency");

// Every macro
pub(crate) const CRATE: Symbol = Symbol("crate");

/// Every key `#[event]` accepts, in the order the error messages list them.
pub(crate) const EVENT_KEYS: &[Symbol] = &[
    STREAM,
    CHANNEL,
    VERSION,
    NAME,
    UPCAST_FROM,
    REPLY,
    COMPAT,
    KEY,
    CRATE,
];

/// Every key `#[handler]` accepts, in the order the error messages list them.
pub(crate) const HANDLER_KEYS: &[Symbol] = &[GROUP, RETRIES, CONCURRENCY, CRATE];

/// Every key `#[payload]` accepts.
pub(crate) const PAYLOAD_KEYS: &[Symbol] = &[CRATE];

/// Each macro with its keys: an unknown key that belongs to another macro is
/// told where it goes.
pub(crate) const MACROS: &[(&str, &[Symbol])] = &[
    ("event", EVENT_KEYS),
    ("handler", HANDLER_KEYS),
    ("payload", PAYLOAD_KEYS),
];

impl Symbol {
    /// A value to show in a message that says how to write the key.
    pub(crate) fn example(self) -> &'static str {
        match self {
            STREAM => "\"orders\"",
            CHANNEL => "\"notifications\"",
            VERSION => "1",
            NAME => "\"order.placed\"",
            UPCAST_FROM => "OrderPlacedV1",
            REPLY => "OrderConfirmed",
            COMPAT => "\"backward\"",
            KEY => "file_id",
            GROUP => "\"my-group\"",
            RETRIES | CONCURRENCY => "3",
            _ => "\"::my_crate::tidings\"",
        }
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
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
