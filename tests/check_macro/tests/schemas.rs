//! The check as the README writes it: one call, nothing of the library named.

#[test]
fn schemas_are_committed_and_compatible() {
    tidings::schemas::check!("schemas").unwrap();
}
