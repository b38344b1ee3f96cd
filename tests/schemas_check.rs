//! `tidings::schemas::check`: what it writes, and each way it fails.
//!
//! Every test checks its own temporary folder and only its own events
//! (filtered by topic), so the tests do not see each other.

use std::fs;
use std::path::Path;

use tidings::schemas::{Check, Problem};
use tidings::{event, Event};

/// An order was placed (first version).
#[event(stream = "test-check", version = 1)]
#[derive(Debug)]
struct OrderPlacedV1 {
    /// Order id.
    order_id: String,
}

/// An order was placed.
#[event(stream = "test-check", version = 2, upcast_from = OrderPlacedV1)]
#[derive(Debug)]
struct OrderPlaced {
    /// Order id.
    order_id: String,
    /// Total in cents, when known.
    #[serde(default)]
    total_cents: Option<u64>,
}

impl From<OrderPlacedV1> for OrderPlaced {
    fn from(v1: OrderPlacedV1) -> Self {
        OrderPlaced {
            order_id: v1.order_id,
            total_cents: None,
        }
    }
}

#[event(stream = "test-check-breaking", version = 1)]
#[derive(Debug)]
struct ShipmentSentV1 {
    shipment_id: String,
}

/// v2 adds a required field: readers of v2 cannot read v1 data.
#[event(stream = "test-check-breaking", version = 2, upcast_from = ShipmentSentV1)]
#[derive(Debug)]
struct ShipmentSent {
    shipment_id: String,
    carrier: String,
}

impl From<ShipmentSentV1> for ShipmentSent {
    fn from(v1: ShipmentSentV1) -> Self {
        ShipmentSent {
            shipment_id: v1.shipment_id,
            carrier: String::new(),
        }
    }
}

#[event(stream = "test-check-breaking", version = 1, compat = "none")]
#[derive(Debug)]
struct ParcelLost {
    parcel_id: u32,
}

fn orders() -> Check {
    Check::new(".").only(|i| i.topic() == "test-check")
}

fn written(dir: &Path) -> Check {
    let summary = orders_in(dir)
        .overwrite(true)
        .run()
        .expect("overwrite succeeds");
    assert!(!summary.written.is_empty());
    orders_in(dir).overwrite(false)
}

fn orders_in(dir: &Path) -> Check {
    Check::new(dir).only(|i| i.topic() == "test-check")
}

#[test]
fn overwrite_writes_every_version_sample_envelope_and_asyncapi() {
    let dir = tempfile::tempdir().unwrap();
    let summary = orders_in(dir.path())
        .sample(&OrderPlaced {
            order_id: "o-1".into(),
            total_cents: Some(1250),
        })
        .overwrite(true)
        .run()
        .unwrap();
    let mut files = summary.written.clone();
    files.sort();
    assert_eq!(
        files,
        [
            "asyncapi.json",
            "envelope.json",
            "test-check/order.placed/v1.json",
            "test-check/order.placed/v1.sample.json",
            "test-check/order.placed/v2.json",
            "test-check/order.placed/v2.sample.json",
        ]
    );
    let v2: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(dir.path().join("test-check/order.placed/v2.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(v2["$id"], OrderPlaced::DATASCHEMA);
    assert_eq!(
        v2["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(v2["additionalProperties"], false);
    assert_eq!(v2["description"], "An order was placed.");
    let text = fs::read_to_string(dir.path().join("test-check/order.placed/v2.json")).unwrap();
    assert!(text.ends_with("}\n"), "pretty JSON with a trailing newline");
    let sample =
        fs::read_to_string(dir.path().join("test-check/order.placed/v2.sample.json")).unwrap();
    assert_eq!(
        sample,
        "{\n  \"order_id\": \"o-1\",\n  \"total_cents\": 1250\n}\n"
    );

    // A second run in check mode finds everything in order.
    let again = orders_in(dir.path()).overwrite(false).run().unwrap();
    assert_eq!(again.versions, 2);
    assert!(again.written.is_empty());
}

#[test]
fn a_missing_file_fails_and_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let err = orders_in(dir.path()).overwrite(false).run().unwrap_err();
    assert!(err.problems.contains(&Problem::Missing {
        path: "test-check/order.placed/v1.json".into()
    }));
    let report = format!("{err:?}");
    assert!(
        report.contains("TIDINGS_SCHEMAS=overwrite cargo test"),
        "{report}"
    );
}

#[test]
fn a_committed_version_that_differs_from_the_code_is_frozen() {
    let dir = tempfile::tempdir().unwrap();
    let check = written(dir.path());
    let path = dir.path().join("test-check/order.placed/v1.json");
    let mut committed: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    committed["properties"]["note"] = serde_json::json!({ "type": "string" });
    fs::write(
        &path,
        serde_json::to_string_pretty(&committed).unwrap() + "\n",
    )
    .unwrap();

    let err = check.run().unwrap_err();
    let frozen = err
        .problems
        .iter()
        .find_map(|p| match p {
            Problem::Frozen {
                type_name,
                version,
                changes,
                ..
            } => Some((*type_name, *version, changes.clone())),
            _ => None,
        })
        .expect("a frozen-version problem");
    assert_eq!((frozen.0, frozen.1), ("order.placed", 1));
    assert_eq!(
        frozen.2.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL #/properties/note"]
    );
    assert!(
        err.to_string()
            .contains("`order.placed` v1 is published and frozen"),
        "{err}"
    );
}

#[test]
fn a_stale_file_fails_and_overwrite_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let stale = dir.path().join("test-check/order.cancelled/v1.json");
    fs::create_dir_all(stale.parent().unwrap()).unwrap();
    fs::write(&stale, "{}\n").unwrap();

    let err = orders_in(dir.path()).overwrite(false).run().unwrap_err();
    assert_eq!(
        err.problems,
        [Problem::Stale {
            path: "test-check/order.cancelled/v1.json".into()
        }]
    );

    let summary = orders_in(dir.path()).overwrite(true).run().unwrap();
    assert_eq!(summary.removed, ["test-check/order.cancelled/v1.json"]);
    assert!(!stale.exists());
}

#[test]
fn a_committed_version_without_a_decode_path_fails_even_when_overwriting() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    fs::write(dir.path().join("test-check/order.placed/v0.json"), "{}\n").unwrap();
    for overwrite in [false, true] {
        let err = orders_in(dir.path())
            .overwrite(overwrite)
            .run()
            .unwrap_err();
        assert!(
            err.problems.iter().any(|p| matches!(
                p,
                Problem::NoDecodePath { type_name: "order.placed", version: 0, known, .. } if known == &[1, 2]
            )),
            "{err}"
        );
    }
}

#[test]
fn a_golden_sample_that_no_longer_decodes_fails() {
    let dir = tempfile::tempdir().unwrap();
    let check = written(dir.path());
    fs::write(
        dir.path().join("test-check/order.placed/v1.sample.json"),
        "{\"order_id\": 7}\n",
    )
    .unwrap();
    let err = check.run().unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    match &err.problems[0] {
        Problem::SampleDoesNotDecode { path, error, .. } => {
            assert_eq!(path, "test-check/order.placed/v1.sample.json");
            assert_eq!(error.version(), 1);
            assert!(error.to_string().contains("order_id"), "{error}");
        }
        other => panic!("unexpected problem: {other}"),
    }
}

#[test]
fn a_version_that_breaks_backward_compatibility_fails_with_its_changes() {
    let dir = tempfile::tempdir().unwrap();
    let check = || Check::new(dir.path()).only(|i| i.topic() == "test-check-breaking");
    let err = check().overwrite(true).run().unwrap_err();
    let incompatible: Vec<_> = err
        .problems
        .iter()
        .filter_map(|p| match p {
            Problem::Incompatible {
                type_name,
                old,
                new,
                changes,
                ..
            } => Some((*type_name, *old, *new, changes.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(incompatible.len(), 1, "{err}");
    let (type_name, old, new, changes) = &incompatible[0];
    assert_eq!((*type_name, *old, *new), ("shipment.sent", 1, 2));
    assert_eq!(
        changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/carrier"]
    );
    let report = err.to_string();
    assert!(
        report.contains("`shipment.sent` v2 breaks backward compatibility with v1"),
        "{report}"
    );
    // `ParcelLost` (compat = "none") and the files themselves are fine.
    assert_eq!(err.problems.len(), 1, "{report}");
}

#[test]
fn the_asyncapi_document_names_every_stream_message_and_key() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let doc: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("asyncapi.json")).unwrap())
            .unwrap();
    assert_eq!(doc["asyncapi"], "3.0.0");
    let channel = &doc["channels"]["stream.test-check"];
    assert_eq!(channel["address"], "tidings:{test-check}");
    assert!(channel["messages"]["order.placed.v1"].is_object());
    assert!(channel["messages"]["order.placed.v2"].is_object());
    let message = &doc["components"]["messages"]["order.placed.v2"];
    assert_eq!(
        message["payload"]["$ref"],
        "#/components/schemas/order.placed.v2"
    );
    assert_eq!(
        message["headers"]["$ref"],
        "#/components/schemas/CloudEventsAttributes"
    );
    assert_eq!(
        doc["components"]["schemas"]["order.placed.v2"]["properties"]["order_id"]["type"],
        "string"
    );
}

#[test]
fn check_relative_to_the_crate_root_reads_an_empty_folder_as_missing_files() {
    // `Check::new(".")` is the crate root under `cargo test`; nothing for
    // `test-check` is committed there, so every file is reported missing.
    let err = orders().overwrite(false).run().unwrap_err();
    assert!(
        err.problems
            .iter()
            .all(|p| matches!(p, Problem::Missing { .. })),
        "{err}"
    );
}
