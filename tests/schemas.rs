//! This repository's own `schemas/`, produced from the examples' events:
//! `TIDINGS_SCHEMAS=overwrite cargo test --test schemas` writes it, plain
//! `cargo test` checks it, as a user's crate would.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/notifications.rs"]
mod notifications;

use quickstart::{FileUploaded, FileUploadedV1};

#[test]
fn committed_schemas_are_what_the_examples_declare() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");
    tidings::schemas::Check::new(dir)
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
        .sample(&notifications::DoorOpened { door: "lab".into() })
        .run()
        .unwrap();
}

#[test]
fn the_registry_of_the_examples_has_no_conflicts() {
    tidings::registry::check().unwrap();
}
