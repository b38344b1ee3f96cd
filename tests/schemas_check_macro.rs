//! Builds `tests/check_macro`, a package whose events live in its library
//! and whose schema check is an integration test holding only
//! `tidings::schemas::check!("schemas")`, and runs its tests: the macro finds
//! the library's events and decodes their committed samples, and an
//! overwrite leaves the committed files as they are. Its other test proves
//! that the function `check`, called from there, finds no events and fails
//! without touching the folder.
//!
//! A package of its own, built by cargo: an integration test of this crate
//! could not show it, since this crate's library (the facade) declares no
//! events.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The package, copied under the target directory, so that its build
/// writes no `Cargo.lock` or `target/` into the source tree.
fn project() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // <target>/debug/deps/schemas_check_macro-<hash>
    let exe = std::env::current_exe().expect("test executable path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("test executable lives in <target>/<profile>/deps")
        .join("tests");
    let project = target.join("check_macro").join("project");
    let _ = std::fs::remove_dir_all(&project);
    copy_dir(&root.join("tests/check_macro"), &project);
    let manifest = std::fs::read_to_string(project.join("Cargo.toml"))
        .unwrap()
        .replace(
            "path = \"../..\"",
            &format!("path = {:?}", root.display().to_string()),
        );
    std::fs::write(project.join("Cargo.toml"), manifest).unwrap();
    // The workspace's lock pins the versions every other test builds with.
    std::fs::copy(root.join("Cargo.lock"), project.join("Cargo.lock")).unwrap();
    project
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// `cargo test` in the package, with `TIDINGS_SCHEMAS` set to `mode`.
fn cargo_test(project: &Path, mode: Option<&str>) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.args(["test", "--offline", "--quiet", "--tests"])
        .current_dir(project)
        // Shared with `tests/standalone.rs`: both build tidings and its
        // dependencies once, outside the workspace's own target directory,
        // which this cargo holds locked while the tests run.
        .env("CARGO_TARGET_DIR", project.join("../../standalone/target"))
        .env_remove("TIDINGS_SCHEMAS");
    if let Some(mode) = mode {
        cmd.env("TIDINGS_SCHEMAS", mode);
    }
    cmd.output().expect("cargo runs")
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file of the folder, by path relative to it, with its text.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn check_macro_in_tests_finds_the_library_events_and_overwrite_keeps_committed_files() {
    let project = project();
    let schemas = project.join("schemas");
    let committed = snapshot(&schemas);
    assert_eq!(
        committed
            .keys()
            .filter(|k| k.ends_with(".sample.json"))
            .count(),
        4,
        "the package commits a sample of each of its four event versions"
    );

    assert_success(&cargo_test(&project, None), "the check");
    assert_success(&cargo_test(&project, Some("overwrite")), "the overwrite");
    assert_eq!(snapshot(&schemas), committed);

    // A version that is not committed yet is written, and nothing else.
    let gate = schemas.join("gates/gate.opened/v1.json");
    std::fs::remove_file(&gate).unwrap();
    assert_success(&cargo_test(&project, Some("overwrite")), "the overwrite");
    assert_eq!(snapshot(&schemas), committed);
}
