//! npm packages of the tests that drive other languages' tools (Ajv, the
//! CloudEvents SDK, playwright-core), installed from their lock files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Tests of one binary run on threads: one installs, the others wait.
static INSTALL: Mutex<()> = Mutex::new(());

/// `dir` (a folder with its own `package.json` and `package-lock.json`)
/// with its locked npm packages installed (`npm ci`), again only when the
/// lock is newer than the installed tree. Fails loudly, naming what is
/// missing, when `npm` is not there or cannot reach the registry.
pub fn packages(dir: &Path) -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let stamp = dir.join("node_modules").join(".package-lock.json");
    let lock = dir.join("package-lock.json");
    let fresh = match (std::fs::metadata(&stamp), std::fs::metadata(&lock)) {
        (Ok(s), Ok(l)) => s.modified().ok() >= l.modified().ok(),
        _ => false,
    };
    if !fresh {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir)
            .status()
            .unwrap_or_else(|e| panic!("this test needs `npm` (Node.js) on PATH: {e}"));
        assert!(
            status.success(),
            "`npm ci` failed in {}; npm must reach the registry",
            dir.display()
        );
    }
    dir.to_owned()
}
