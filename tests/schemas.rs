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

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/request_reply.rs"]
mod request_reply;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/task_queue.rs"]
mod task_queue;

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
        .sample(&notifications::DoorOpened { door: "lab".into() })
        .sample(&request_reply::EmbeddingGenerationRequested {
            file_id: "f-1".into(),
            text_content: "quarterly report".into(),
        })
        .sample(&request_reply::EmbeddingGenerationCompleted {
            file_id: "f-1".into(),
            embedding: vec![0.5, 0.5, 0.5, 0.5],
        })
        .sample(&task_queue::FileProcessingRequested {
            file_id: "f-4".into(),
            filename: "contract.pdf".into(),
            processing_type: task_queue::ProcessingType::TextExtraction,
        }))
    .unwrap();
}

#[test]
fn the_asyncapi_document_names_the_field_a_key_comes_from() {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("schemas/asyncapi.json").unwrap()).unwrap();
    let messages = &doc["components"]["messages"];
    let key = &messages["file.processing.requested.v1"]["x-tidings-partitionkey"];
    assert_eq!(key["attribute"], "partitionkey");
    assert_eq!(key["field"], "file_id");
    assert!(messages["file.uploaded.v2"]["x-tidings-partitionkey"].is_null());
}

#[test]
fn the_registry_of_the_examples_has_no_conflicts() {
    tidings::registry::check().unwrap();
}

#[test]
fn the_asyncapi_document_shows_each_request_and_its_reply() {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("schemas/asyncapi.json").unwrap()).unwrap();
    let op = &doc["operations"]["request.embedding.generation.requested"];
    assert_eq!(op["action"], "send");
    assert_eq!(op["channel"]["$ref"], "#/channels/stream.contextual");
    assert_eq!(
        op["messages"][0]["$ref"],
        "#/channels/stream.contextual/messages/embedding.generation.requested.v1"
    );
    let reply = &op["reply"];
    assert_eq!(reply["address"]["location"], "$message.header#/replyto");
    assert_eq!(reply["channel"]["$ref"], "#/channels/replies");
    assert_eq!(
        reply["messages"][0]["$ref"],
        "#/channels/replies/messages/embedding.generation.completed.v1"
    );
    // Every reference resolves inside the document.
    let replies = &doc["channels"]["replies"];
    assert!(replies["address"].is_null());
    assert_eq!(
        replies["messages"]["embedding.generation.completed.v1"]["$ref"],
        "#/components/messages/embedding.generation.completed.v1"
    );
    assert!(doc["components"]["messages"]["embedding.generation.completed.v1"].is_object());
    // An event without `reply` has no request operation.
    let requests = doc["operations"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("request."))
        .count();
    assert_eq!(requests, 1);
}
