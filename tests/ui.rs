//! Compile-fail and compile-pass tests of the macros: one `#[test]` per
//! macro, each over `tests/ui/<macro>/*.rs` (must fail, with the `.stderr`
//! beside it) and `tests/ui/<macro>/pass/*.rs` (must compile and run).

fn ui(dir: &str) {
    let t = trybuild::TestCases::new();
    t.compile_fail(format!("tests/ui/{dir}/*.rs"));
    t.pass(format!("tests/ui/{dir}/pass/*.rs"));
}

#[test]
fn event() {
    ui("event");
}

#[test]
fn payload() {
    ui("payload");
}
