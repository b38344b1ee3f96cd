//! Compile-fail and compile-pass tests of the macros, in one runner so that
//! trybuild builds the dependencies once for all of them:
//! `tests/ui/<macro>/*.rs` must fail with the `.stderr` beside it, and
//! `tests/ui/<macro>/pass/*.rs` must compile and run.
//!
//! The schema guard's cases are not here but in `tests/schema_guard.rs`: they
//! need `TIDINGS_SCHEMA_DIR` set for the whole process, which must not reach
//! these cases.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    for dir in ["event", "handler", "payload"] {
        t.compile_fail(format!("tests/ui/{dir}/*.rs"));
        t.pass(format!("tests/ui/{dir}/pass/*.rs"));
    }
}
