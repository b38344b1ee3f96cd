//! Builds and runs `tests/standalone`, a crate whose only dependency is
//! `tidings`, to prove that the code `#[event]` generates reaches serde,
//! schemars and inventory through `tidings` alone. A trybuild pass case could
//! not prove it: trybuild gives its cases every dependency of this crate.

use std::path::{Path, PathBuf};
use std::process::Command;

fn target_dir() -> PathBuf {
    // <target>/debug/deps/standalone-<hash>
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .expect("test executable lives in <target>/<profile>/deps")
        .to_path_buf()
}

#[test]
fn crate_depending_only_on_tidings_builds_and_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = target_dir().join("tests").join("standalone");
    // Built from a copy, so the build writes no Cargo.lock into the source
    // tree; the workspace's lock pins the same versions as every other test.
    let project = target.join("project");
    std::fs::create_dir_all(project.join("src")).unwrap();
    let manifest = std::fs::read_to_string(root.join("tests/standalone/Cargo.toml"))
        .unwrap()
        .replace(
            "path = \"../..\"",
            &format!("path = {:?}", root.display().to_string()),
        );
    assert!(manifest.contains(&root.display().to_string()));
    std::fs::write(project.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(
        root.join("tests/standalone/src/main.rs"),
        project.join("src/main.rs"),
    )
    .unwrap();
    std::fs::copy(root.join("Cargo.lock"), project.join("Cargo.lock")).unwrap();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(["run", "--offline", "--quiet", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target.join("target"))
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(
        stdout,
        "decoded file.uploaded v[1, 2]: a.pdf\n\
         error cannot decode `file.uploaded` v3: this reader knows versions v1, v2\n\
         registered artifact.stored v1 \"https://tidings.invalid/schemas/artifacts/artifact.stored/v1.json\"\n\
         registered file.uploaded v1 \"https://tidings.invalid/schemas/contextual/file.uploaded/v1.json\"\n\
         registered file.uploaded v2 \"https://tidings.invalid/schemas/contextual/file.uploaded/v2.json\"\n\
         registered gate.opened v1 \"https://tidings.invalid/schemas/gates/gate.opened/v1.json\"\n\
         artifact sha256 ab Fetch\n\
         written 10 files\n\
         registry decoders 0\n\
         problem `artifact.stored` has committed samples \
         (artifacts/artifact.stored/v1.sample.json) but this binary has no decoder for \
         `tidings_standalone::ArtifactStored`: `#[event]` compiles decoders only into test \
         builds of the crate that declares the event, and `tidings::schemas::check!` adds those \
         of the library's events it can name (public, in public modules); add \
         `.decoder::<ArtifactStored>()` to the check where `ArtifactStored` can be named, or run \
         the check from that crate's own unit tests\n\
         problem `file.uploaded` has committed samples (contextual/file.uploaded/v1.sample.json, \
         contextual/file.uploaded/v2.sample.json) but this binary has no decoder for \
         `tidings_standalone::FileUploaded`: `#[event]` compiles decoders only into test builds \
         of the crate that declares the event, and `tidings::schemas::check!` adds those of the \
         library's events it can name (public, in public modules); add \
         `.decoder::<FileUploaded>()` to the check where `FileUploaded` can be named, or run the \
         check from that crate's own unit tests\n\
         problem `gate.opened` has committed samples (gates/gate.opened/v1.sample.json) but this \
         binary has no decoder for `tidings_standalone::GateOpened`: `#[event]` compiles \
         decoders only into test builds of the crate that declares the event, and \
         `tidings::schemas::check!` adds those of the library's events it can name (public, in \
         public modules); add `.decoder::<GateOpened>()` to the check where `GateOpened` can be \
         named, or run the check from that crate's own unit tests\n\
         checked 4 versions\n"
    );
}
