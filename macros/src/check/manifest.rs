//! The package the macro expands in: its library (name and root file) from
//! `Cargo.toml`, and which of the package's crates is being compiled.

use std::path::{Path, PathBuf};

/// The library target of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Library {
    /// Crate name, as other crates of the package name it (`my_service`).
    pub(crate) name: String,
    /// Its root source file.
    pub(crate) root: PathBuf,
}

/// What the macro knows of the package being compiled.
#[derive(Debug, Clone, Default)]
pub(crate) struct Package {
    /// The library, when the package has one.
    pub(crate) library: Option<Library>,
    /// `CARGO_CRATE_NAME`: the crate being compiled.
    pub(crate) crate_name: Option<String>,
    /// Whether a binary is being compiled (`CARGO_BIN_NAME` is set).
    pub(crate) binary: bool,
    /// Whether an integration test or a benchmark is being compiled
    /// (`CARGO_TARGET_TMPDIR` is set only for those).
    pub(crate) integration: bool,
}

impl Package {
    /// The package from the variables Cargo sets for the compiler, which a
    /// procedural macro, running inside it, reads.
    pub(crate) fn from_env() -> Package {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        let library = match (var("CARGO_MANIFEST_DIR"), var("CARGO_PKG_NAME")) {
            (Some(dir), Some(package)) => {
                let dir = PathBuf::from(dir);
                let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
                library(&dir, &package, &manifest)
            }
            _ => None,
        };
        Package {
            library,
            crate_name: var("CARGO_CRATE_NAME"),
            binary: var("CARGO_BIN_NAME").is_some(),
            integration: var("CARGO_TARGET_TMPDIR").is_some(),
        }
    }

    /// Whether the crate being compiled is `lib` itself (its unit tests),
    /// where it cannot name itself and has its events and decoders already.
    pub(crate) fn compiling_the_library(&self, lib: &Library) -> bool {
        !self.integration && !self.binary && self.crate_name.as_deref() == Some(lib.name.as_str())
    }
}

/// The library of the package at `dir` named `package`, whose manifest is
/// `manifest`: `[lib] name` and `[lib] path` when given, else the package
/// name (`-` as `_`) and `src/lib.rs`; `None` when that file does not exist.
pub(crate) fn library(dir: &Path, package: &str, manifest: &str) -> Option<Library> {
    let table = lib_table(manifest);
    let name = table
        .iter()
        .find_map(|(k, v)| (k == "name").then(|| v.clone()))
        .unwrap_or_else(|| package.to_owned())
        .replace('-', "_");
    let root = table
        .iter()
        .find_map(|(k, v)| (k == "path").then(|| dir.join(v)))
        .unwrap_or_else(|| dir.join("src").join("lib.rs"));
    root.is_file().then_some(Library { name, root })
}

/// The string keys of the `[lib]` table of a manifest, read line by line:
/// enough for `name = "…"` and `path = "…"`, which is all the macro needs.
fn lib_table(manifest: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            inside = line.trim_start_matches('[').trim_end_matches(']').trim() == "lib";
            continue;
        }
        if !inside {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let unquoted = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')));
        if let Some(value) = unquoted {
            out.push((key.trim().trim_matches('"').to_owned(), value.to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tidings-macros-manifest-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(dir.join("src/lib.rs"), "").unwrap();
        std::fs::write(dir.join("lib/root.rs"), "").unwrap();
        dir
    }

    #[test]
    fn library_defaults_to_the_package_name_and_src_lib() {
        let dir = package_dir();
        let lib = library(&dir, "my-service", "[package]\nname = \"my-service\"\n").unwrap();
        assert_eq!(lib.name, "my_service");
        assert_eq!(lib.root, dir.join("src/lib.rs"));
    }

    #[test]
    fn lib_table_names_the_crate_and_its_root() {
        let dir = package_dir();
        let manifest = "[package]\nname = \"svc\" # the package\n\n[lib]\nname = \"events\"\npath = 'lib/root.rs'\n\n[dependencies]\nname = \"no\"\n";
        let lib = library(&dir, "svc", manifest).unwrap();
        assert_eq!(lib.name, "events");
        assert_eq!(lib.root, dir.join("lib/root.rs"));
    }

    #[test]
    fn a_package_without_a_library_file_has_no_library() {
        let dir = package_dir();
        assert_eq!(library(&dir, "svc", "[lib]\npath = \"nowhere.rs\"\n"), None);
    }

    #[test]
    fn the_library_itself_is_told_from_its_tests_and_binaries() {
        let lib = Library {
            name: "svc".into(),
            root: PathBuf::from("src/lib.rs"),
        };
        let unit = Package {
            crate_name: Some("svc".into()),
            ..Package::default()
        };
        assert!(unit.compiling_the_library(&lib));
        let integration = Package {
            integration: true,
            ..unit.clone()
        };
        assert!(!integration.compiling_the_library(&lib));
        let binary = Package {
            binary: true,
            ..unit
        };
        assert!(!binary.compiling_the_library(&lib));
    }
}
