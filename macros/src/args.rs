//! Reading of the `key = value` arguments that every macro takes.
//!
//! One reader for `#[event]`, `#[handler]` and `#[payload]`, so that all three
//! treat a mistake alike: an unknown key lists the keys that are allowed and
//! suggests the near miss, a duplicate is reported on its second occurrence, a
//! key without a value shows how to write it, and reading goes on after each
//! mistake so the user sees all of them in one build.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, Lit, LitStr, Path, Token};

use crate::ctxt::Ctxt;
use crate::symbol::{Symbol, CRATE, MACROS};

/// The keys the user wrote, whatever their values.
#[derive(Default)]
pub(crate) struct Seen {
    written: Vec<Symbol>,
    near_misses: Vec<Symbol>,
}

impl Seen {
    /// Whether `key` was written, even with a value that was rejected.
    pub(crate) fn written(&self, key: Symbol) -> bool {
        self.written.contains(&key)
    }

    /// Whether `key` was written, or is the near miss of an unknown key: a
    /// missing key is not reported on top of the error that already explains
    /// it.
    pub(crate) fn mentioned(&self, key: Symbol) -> bool {
        self.written(key) || self.near_misses.contains(&key)
    }
}

/// Reads the arguments of `#[<name>(…)]`, which accepts `keys`, and hands the
/// value of each known key's first occurrence to `value`. Every mistake is
/// recorded in `cx`.
pub(crate) fn parse(
    cx: &Ctxt,
    args: TokenStream,
    name: &str,
    keys: &[Symbol],
    mut value: impl FnMut(Symbol, Expr),
) -> Seen {
    let mut seen = Seen::default();
    let parser = syn::meta::parser(|meta| {
        let Some(key) = keys.iter().copied().find(|k| meta.path == *k) else {
            seen.near_misses
                .extend(unknown_key(cx, name, keys, &meta.path));
            return skip_value(&meta);
        };
        if seen.written(key) {
            // Reported on the second occurrence: the first one is the one kept.
            cx.error_spanned_by(&meta.path, format!("duplicate {name} attribute `{key}`"));
            return skip_value(&meta);
        }
        seen.written.push(key);
        if !meta.input.peek(Token![=]) {
            cx.error_spanned_by(
                &meta.path,
                format!(
                    "{name} attribute `{key}` needs a value: `{key} = {}`",
                    key.example()
                ),
            );
            return skip_value(&meta);
        }
        value(key, meta.value()?.parse()?);
        Ok(())
    });
    // A syntax error (a missing comma, say) stops the parser; what was read
    // before it is kept, so the checks that follow still run.
    if let Err(err) = parser.parse2(args) {
        cx.syn_error(err);
    }
    seen
}

/// Records an unknown key on its tokens, with the keys `name` accepts and,
/// when there is one, the near miss or the macro the key belongs to. Returns
/// the near miss.
fn unknown_key(cx: &Ctxt, name: &str, keys: &[Symbol], path: &Path) -> Option<Symbol> {
    let word = path_to_string(path);
    let mut msg = format!(
        "unknown {name} attribute `{word}`; expected {}",
        one_of(keys)
    );
    let elsewhere = MACROS
        .iter()
        .find(|(other, other_keys)| *other != name && other_keys.iter().any(|k| path == *k));
    let hint = near_miss(&word, keys);
    if let Some((other, _)) = elsewhere {
        msg.push_str(&format!("\nhelp: `{word}` belongs on `#[{other}]`"));
    } else if let Some(hint) = hint {
        msg.push_str(&format!("\nhelp: did you mean `{hint}`?"));
    }
    cx.error_spanned_by(path, msg);
    hint
}

/// The candidate closest to `word`, if it is close enough to be a typo.
pub(crate) fn near_miss<T: Copy + AsRef<str>>(word: &str, candidates: &[T]) -> Option<T> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c.as_ref()), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// "one of `a`, `b`", or "`a`" when there is only one.
pub(crate) fn one_of<T: AsRef<str>>(candidates: &[T]) -> String {
    let listed = candidates
        .iter()
        .map(|c| format!("`{}`", c.as_ref()))
        .collect::<Vec<_>>()
        .join(", ");
    if candidates.len() == 1 {
        listed
    } else {
        format!("one of {listed}")
    }
}

/// Consumes the value of a key that is reported anyway (`key = …` or
/// `key(…)`), so the keys after it are still read.
pub(crate) fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip_value(&inner))?;
    }
    Ok(())
}

/// A path as written, without the spaces of its token stream.
pub(crate) fn path_to_string(path: &Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

/// The literal `expr` is, seen through parentheses and the invisible groups
/// of a `macro_rules!` fragment.
pub(crate) fn lit(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(e) => Some(&e.lit),
        Expr::Group(g) => lit(&g.expr),
        Expr::Paren(p) => lit(&p.expr),
        _ => None,
    }
}

/// The string of `key = "…"`, or `None` with the error recorded on the value.
pub(crate) fn string_value(cx: &Ctxt, expr: &Expr, key: Symbol) -> Option<LitStr> {
    match lit(expr) {
        Some(Lit::Str(s)) => Some(s.clone()),
        _ => {
            cx.error_spanned_by(
                expr,
                format!(
                    "expected a string literal for `{key}`, like `{key} = {}`",
                    key.example()
                ),
            );
            None
        }
    }
}

/// `crate = "…"`: the path `tidings` is reachable at, for crates that
/// re-export it; `None` with the error recorded on the value.
pub(crate) fn crate_value(cx: &Ctxt, expr: &Expr) -> Option<Path> {
    let lit = string_value(cx, expr, CRATE)?;
    match lit.parse::<Path>() {
        Ok(path) => Some(path),
        Err(_) => {
            cx.error_spanned_by(
                &lit,
                "`crate` is the path tidings is re-exported at, like `crate = \"::my_crate::tidings\"`",
            );
            None
        }
    }
}

/// The path generated code reaches the facade by: `crate = "…"`, else
/// `::tidings`.
pub(crate) fn crate_or_default(krate: Option<&Path>) -> Path {
    krate
        .cloned()
        .unwrap_or_else(|| syn::parse_quote!(::tidings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbol::{EVENT_KEYS, GROUP, HANDLER_KEYS, PAYLOAD_KEYS, STREAM, VERSION};
    use quote::quote;

    /// The keys handed over, with their values as text, and the errors.
    fn read(
        name: &str,
        keys: &[Symbol],
        args: TokenStream,
    ) -> (Vec<(Symbol, String)>, Seen, Vec<String>) {
        let cx = Ctxt::new();
        let mut values = Vec::new();
        let seen = parse(&cx, args, name, keys, |k, v| {
            values.push((k, v.to_token_stream().to_string()))
        });
        let errors = match cx.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        };
        (values, seen, errors)
    }

    #[test]
    fn near_miss_picks_the_closest_key_or_none() {
        assert_eq!(near_miss("steam", EVENT_KEYS), Some(STREAM));
        assert_eq!(near_miss("grup", HANDLER_KEYS), Some(GROUP));
        assert_eq!(near_miss("colour", EVENT_KEYS), None);
        assert_eq!(
            near_miss("backwards", &["backward", "forward"]),
            Some("backward")
        );
    }

    #[test]
    fn unknown_key_lists_the_keys_and_keeps_reading() {
        let (values, seen, errors) = read("event", EVENT_KEYS, quote!(steam = "x", version = 2));
        assert_eq!(
            errors,
            ["unknown event attribute `steam`; expected one of `stream`, `channel`, `version`, `name`, `upcast_from`, `reply`, `compat`, `key`, `crate`\nhelp: did you mean `stream`?"]
        );
        assert_eq!(values.len(), 1);
        assert!(values[0].0 == VERSION);
        assert!(seen.mentioned(STREAM) && !seen.written(STREAM));
    }

    #[test]
    fn unknown_key_of_another_macro_says_where_it_goes() {
        let (_, _, errors) = read("payload", PAYLOAD_KEYS, quote!(version = 1));
        assert_eq!(
            errors,
            ["unknown payload attribute `version`; expected `crate`\nhelp: `version` belongs on `#[event]`"]
        );
    }

    #[test]
    fn duplicate_is_reported_once_and_the_first_value_kept() {
        let (values, _, errors) = read(
            "handler",
            HANDLER_KEYS,
            quote!(group = "a", group = "b", group),
        );
        assert_eq!(
            errors,
            [
                "duplicate handler attribute `group`",
                "duplicate handler attribute `group`"
            ]
        );
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].1, "\"a\"");
    }

    #[test]
    fn key_without_value_shows_how_to_write_it() {
        let (values, seen, errors) = read("handler", HANDLER_KEYS, quote!(group, retries = 1));
        assert_eq!(
            errors,
            ["handler attribute `group` needs a value: `group = \"my-group\"`"]
        );
        assert_eq!(values.len(), 1);
        assert!(seen.written(GROUP));
    }

    #[test]
    fn crate_value_reads_a_path_in_a_string() {
        let cx = Ctxt::new();
        let path = crate_value(&cx, &syn::parse_quote!("::re::tidings")).unwrap();
        assert_eq!(path_to_string(&path), "::re::tidings");
        assert!(crate_value(&cx, &syn::parse_quote!("not a path")).is_none());
        assert!(crate_value(&cx, &syn::parse_quote!(::re::tidings)).is_none());
        let errors: Vec<String> = cx
            .check()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errors,
            [
                "`crate` is the path tidings is re-exported at, like `crate = \"::my_crate::tidings\"`",
                "expected a string literal for `crate`, like `crate = \"::my_crate::tidings\"`",
            ]
        );
    }

    #[test]
    fn crate_defaults_to_the_facade() {
        assert_eq!(path_to_string(&crate_or_default(None)), "::tidings");
        let re: Path = syn::parse_quote!(crate::re::tidings);
        assert_eq!(
            path_to_string(&crate_or_default(Some(&re))),
            "crate::re::tidings"
        );
    }
}
