//! Compile errors of `#[handler]`: one program per mistake under
//! `tests/ui/handler/`, with the compiler's output in its `.stderr`.

#[test]
fn handler_ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/handler/*.rs");
    t.pass("tests/ui/handler/pass/*.rs");
}
