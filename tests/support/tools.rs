//! Other languages' tools for the cross-language tests, installed on first
//! use from their package registries and cached under `target/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Tests of one binary run on threads: one installs, the others wait.
static INSTALL: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The python of a virtualenv `target/<name>` with `packages` installed
/// (pip names; `modules` are what to import to check them).
///
/// Fails loudly, naming the missing tool, when python3, venv or pip are not
/// usable: these tests must not skip.
pub fn python_venv(name: &str, packages: &[&str], modules: &[&str]) -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let venv = root().join("target").join(name);
    let py = venv.join("bin").join("python");
    let importable = |py: &Path| {
        modules.iter().all(|m| {
            Command::new(py)
                .args(["-c", &format!("import {m}")])
                .status()
                .is_ok_and(|s| s.success())
        })
    };
    if py.exists() && importable(&py) {
        return py;
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .unwrap_or_else(|e| panic!("this test needs `python3` on PATH: {e}"));
    assert!(
        status.success(),
        "`python3 -m venv {}` failed; install python3 with the venv module (Debian: python3-venv)",
        venv.display()
    );
    let status = Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages)
        .status()
        .unwrap_or_else(|e| panic!("running pip in {} failed: {e}", venv.display()));
    assert!(
        status.success(),
        "`pip install {}` failed in {}; pip must reach the package index",
        packages.join(" "),
        venv.display()
    );
    assert!(
        importable(&py),
        "{modules:?} not importable after pip install"
    );
    py
}

/// `tests/js` with its locked npm packages installed (`npm ci`), once.
pub fn node_packages() -> PathBuf {
    node_packages_in("tests/js")
}

/// `dir` (a folder of the package, with its own `package.json` and
/// `package-lock.json`) with its locked npm packages installed (`npm ci`),
/// again only when the lock is newer than the installed tree.
pub fn node_packages_in(dir: &str) -> PathBuf {
    tidings_testkit::node::packages(&root().join(dir))
}
