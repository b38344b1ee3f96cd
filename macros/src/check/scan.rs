//! The events a library declares under public paths, read from its sources
//! the way rustc finds its modules.
//!
//! Only what the test crate can name is kept: a struct under `#[event]`
//! (`event`, `tidings::event` or any path ending in `tidings::event`) whose
//! modules and itself are all `pub`. Each keeps the `#[cfg]`s of its modules
//! and of itself, for the test to evaluate; `test` in them reads as false,
//! since the library linked into a test is not compiled under `cfg(test)`.
//! An event the scan cannot see (declared by a macro, in an `include!`d
//! file, or private) is still linked and checked; only its decoder is
//! missing, which the check reports by name.

use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, Item, Meta, Visibility};

/// A public event of the library.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// Module names from the crate root, then the struct's.
    pub(crate) path: Vec<syn::Ident>,
    /// The `#[cfg]` predicates on the way, `test` read as false.
    pub(crate) cfgs: Vec<TokenStream>,
}

/// Deep enough for any real module tree; it stops a `#[path]` loop.
const MAX_DEPTH: usize = 64;

/// Every public event of the library whose root file is `root`.
pub(crate) fn events(root: &Path) -> Vec<Found> {
    let mut out = Vec::new();
    let Some(file) = parse(root) else {
        return out;
    };
    let dirs = Dirs::of_mod_rs(root);
    let scope = Scope {
        path: Vec::new(),
        cfgs: Vec::new(),
    };
    walk(&file.items, &dirs, &scope, 0, &mut out);
    out
}

fn parse(file: &Path) -> Option<syn::File> {
    let text = std::fs::read_to_string(file).ok()?;
    syn::parse_file(&text).ok()
}

/// Where the modules declared in a file, or in an inline module, live.
#[derive(Debug, Clone)]
struct Dirs {
    /// Where `mod m;` looks for `m.rs` and `m/mod.rs`.
    children: PathBuf,
    /// What `#[path = "…"]` is relative to.
    path_base: PathBuf,
}

impl Dirs {
    /// A crate root, a `mod.rs`, or a file loaded through `#[path]`: its
    /// modules live beside it.
    fn of_mod_rs(file: &Path) -> Dirs {
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        Dirs {
            children: dir.clone(),
            path_base: dir,
        }
    }

    /// `a.rs`: its modules live in `a/`.
    fn of_file(file: &Path) -> Dirs {
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let stem = file.file_stem().map(PathBuf::from).unwrap_or_default();
        Dirs {
            children: dir.join(stem),
            path_base: dir,
        }
    }

    /// Inside `mod m { … }`.
    fn inline(&self, name: &str) -> Dirs {
        let dir = self.children.join(name);
        Dirs {
            children: dir.clone(),
            path_base: dir,
        }
    }
}

/// The public module path walked so far.
#[derive(Debug, Clone)]
struct Scope {
    path: Vec<syn::Ident>,
    cfgs: Vec<TokenStream>,
}

fn walk(items: &[Item], dirs: &Dirs, scope: &Scope, depth: usize, out: &mut Vec<Found>) {
    if depth > MAX_DEPTH {
        return;
    }
    for item in items {
        match item {
            Item::Struct(s) if is_pub(&s.vis) && s.attrs.iter().any(is_event) => {
                let mut path = scope.path.clone();
                path.push(s.ident.clone());
                let mut cfgs = scope.cfgs.clone();
                cfgs.extend(cfgs_of(&s.attrs));
                out.push(Found { path, cfgs });
            }
            Item::Mod(m) if is_pub(&m.vis) => {
                let name = m.ident.to_string();
                let name = name.strip_prefix("r#").unwrap_or(&name);
                let mut inner = scope.clone();
                inner.path.push(m.ident.clone());
                inner.cfgs.extend(cfgs_of(&m.attrs));
                let explicit = path_attr(&m.attrs);
                match &m.content {
                    Some((_, items)) => {
                        let dirs = match explicit {
                            Some(p) => {
                                let dir = dirs.path_base.join(p);
                                Dirs {
                                    children: dir.clone(),
                                    path_base: dir,
                                }
                            }
                            None => dirs.inline(name),
                        };
                        walk(items, &dirs, &inner, depth + 1, out);
                    }
                    None => {
                        let (file, child_dirs) = match explicit {
                            Some(p) => {
                                let file = dirs.path_base.join(p);
                                let d = Dirs::of_mod_rs(&file);
                                (file, d)
                            }
                            None => {
                                let flat = dirs.children.join(format!("{name}.rs"));
                                if flat.is_file() {
                                    let d = Dirs::of_file(&flat);
                                    (flat, d)
                                } else {
                                    let nested = dirs.children.join(name).join("mod.rs");
                                    let d = Dirs::of_mod_rs(&nested);
                                    (nested, d)
                                }
                            }
                        };
                        if let Some(parsed) = parse(&file) {
                            walk(&parsed.items, &child_dirs, &inner, depth + 1, out);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// `pub`, not `pub(crate)` nor `pub(in …)`: reachable from another crate.
fn is_pub(vis: &Visibility) -> bool {
    matches!(vis, Visibility::Public(_))
}

/// `#[event(…)]`, `#[tidings::event(…)]`, `#[::re::tidings::event(…)]`.
fn is_event(attr: &Attribute) -> bool {
    let segments: Vec<String> = attr
        .path()
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    match segments.as_slice() {
        [one] => one == "event",
        [.., krate, last] => krate == "tidings" && last == "event",
        [] => false,
    }
}

fn path_attr(attrs: &[Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// The predicates of the `#[cfg(…)]`s among `attrs`, `test` read as false.
fn cfgs_of(attrs: &[Attribute]) -> Vec<TokenStream> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .filter_map(|a| a.parse_args::<Meta>().ok())
        .map(|m| without_test(&m))
        .collect()
}

/// A cfg predicate with every bare `test` replaced by `any()` (false): the
/// library an integration test links was compiled without `cfg(test)`,
/// while the test itself is compiled with it.
fn without_test(meta: &Meta) -> TokenStream {
    match meta {
        Meta::Path(p) if p.is_ident("test") => quote!(any()),
        Meta::List(list) => {
            let nested = list.parse_args_with(
                syn::punctuated::Punctuated::<Meta, syn::Token![,]>::parse_terminated,
            );
            match nested {
                Ok(nested) => {
                    let path = &list.path;
                    let inner = nested.iter().map(without_test);
                    quote!(#path(#(#inner),*))
                }
                Err(_) => quote!(#meta),
            }
        }
        other => quote!(#other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tree(PathBuf);

    impl Tree {
        fn new(name: &str, files: &[(&str, &str)]) -> Tree {
            let root = std::env::temp_dir()
                .join(format!("tidings-macros-scan-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            for (path, text) in files {
                let path = root.join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
            Tree(root)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn found(tree: &Tree) -> Vec<(String, Vec<String>)> {
        events(&tree.0.join("src/lib.rs"))
            .into_iter()
            .map(|f| {
                let path = f
                    .path
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("::");
                (path, f.cfgs.iter().map(ToString::to_string).collect())
            })
            .collect()
    }

    #[test]
    fn public_events_are_found_in_every_kind_of_module() {
        let tree = Tree::new(
            "kinds",
            &[
                (
                    "src/lib.rs",
                    "#[tidings::event(stream = \"s\", version = 1)] pub struct Root;\n\
                     pub mod flat; pub mod nested;\n\
                     pub mod inline { #[event(stream = \"s\", version = 1)] pub struct Inline; pub mod deeper; }\n\
                     #[path = \"elsewhere/x.rs\"] pub mod moved;\n",
                ),
                ("src/flat.rs", "pub mod sub;\n#[::tidings::event(stream = \"s\", version = 1)] pub struct Flat;"),
                ("src/flat/sub.rs", "#[event(stream = \"s\", version = 1)] pub struct Sub;"),
                ("src/nested/mod.rs", "#[event(stream = \"s\", version = 1)] pub struct Nested;"),
                ("src/inline/deeper.rs", "#[event(stream = \"s\", version = 1)] pub struct Deeper;"),
                ("src/elsewhere/x.rs", "#[event(stream = \"s\", version = 1)] pub struct Moved;"),
            ],
        );
        let mut paths: Vec<String> = found(&tree).into_iter().map(|(p, _)| p).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "Root",
                "flat::Flat",
                "flat::sub::Sub",
                "inline::Inline",
                "inline::deeper::Deeper",
                "moved::Moved",
                "nested::Nested"
            ]
        );
    }

    #[test]
    fn private_items_and_other_attributes_are_left_out() {
        let tree = Tree::new(
            "private",
            &[(
                "src/lib.rs",
                "mod hidden { #[event(stream = \"s\", version = 1)] pub struct InPrivateMod; }\n\
                 #[event(stream = \"s\", version = 1)] pub(crate) struct CrateOnly;\n\
                 #[event(stream = \"s\", version = 1)] struct Private;\n\
                 #[other::event] pub struct OtherCrates;\n\
                 #[tidings::payload] pub struct NotAnEvent;\n\
                 pub mod missing_file;\n",
            )],
        );
        assert_eq!(found(&tree), Vec::<(String, Vec<String>)>::new());
    }

    #[test]
    fn cfgs_on_the_way_are_kept_with_test_read_as_false() {
        let tree = Tree::new(
            "cfg",
            &[(
                "src/lib.rs",
                "#[cfg(feature = \"extra\")] pub mod extra {\n\
                   #[cfg(not(test))] #[event(stream = \"s\", version = 1)] pub struct E;\n\
                 }\n",
            )],
        );
        assert_eq!(
            found(&tree),
            [(
                "extra::E".to_owned(),
                vec!["feature = \"extra\"".to_owned(), "not (any ())".to_owned()]
            )]
        );
    }
}
