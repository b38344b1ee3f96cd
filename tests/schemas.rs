//! This repository's own `schemas/`, produced from the examples' events:
//! `TIDINGS_SCHEMAS=overwrite cargo test --test schemas` writes what is
//! missing, plain `cargo test` checks it, as a user's crate would, with the
//! macro a test under `tests/` calls.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/notifications.rs"]
mod notifications;

use quickstart::{FileUploaded, FileUploadedV1};

#[test]
fn committed_schemas_are_what_the_examples_declare() {
    tidings::schemas::check!(tidings::schemas::Check::new("schemas")
        .sample(&FileUploadedV1 {
            file_id: "01JDQ8Z6W0Q0VYV3T9M8S7R6QF".into(),
            filename: "scan.pdf".into(),
        })
        .sample(&FileUploaded {
            file_id: "01JDQ8Z6W0Q0VYV3T9M8S7R6QG".into(),
            filename: "report.txt".into(),
            mime_type: Some("text/plain".into()),
        })
        .sample(&notifications::GateOpened {
            gate: "north".into(),
        })
        .sample(&notifications::GateClosed {
            gate: "north".into(),
        })
        .sample(&notifications::DoorOpened { door: "lab".into() }))
    .unwrap();
}

#[test]
fn the_registry_of_the_examples_has_no_conflicts() {
    tidings::registry::check().unwrap();
}
