//! UI tests of the compile-time schema guard of `#[event]`: each case in
//! `tests/ui/schema-guard/` is compared with the committed schemas in
//! `tests/ui/schema-guard/schemas/`, which `TIDINGS_SCHEMA_DIR` points the
//! macro at (trybuild builds each case in a crate of its own, far from them).
//!
//! A test binary of its own: the variable is set for the whole process, and
//! must not reach the other UI tests.

#[test]
fn schema_guard() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/schema-guard/schemas");
    assert!(dir.is_dir(), "{} is missing", dir.display());
    // Set before any case is built; trybuild's cargo and rustc inherit it.
    std::env::set_var("TIDINGS_SCHEMA_DIR", &dir);
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/schema-guard/*.rs");
    t.pass("tests/ui/schema-guard/pass/*.rs");
}
