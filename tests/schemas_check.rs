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

/// v2 narrows `u64` to `u32`: v1 payloads above `u32::MAX` no longer decode.
#[event(stream = "test-check-narrow", version = 1)]
struct SizeMeasuredV1 {
    bytes: u64,
}

#[event(stream = "test-check-narrow", version = 2, upcast_from = SizeMeasuredV1)]
struct SizeMeasured {
    bytes: u32,
}

impl From<SizeMeasuredV1> for SizeMeasured {
    fn from(v1: SizeMeasuredV1) -> Self {
        SizeMeasured {
            bytes: v1.bytes.try_into().unwrap_or(u32::MAX),
        }
    }
}

/// v2 narrows `i64` to `i32`, at both ends.
#[event(stream = "test-check-narrow", version = 1)]
struct CounterMovedV1 {
    delta: i64,
}

#[event(stream = "test-check-narrow", version = 2, upcast_from = CounterMovedV1)]
struct CounterMoved {
    delta: i32,
}

impl From<CounterMovedV1> for CounterMoved {
    fn from(v1: CounterMovedV1) -> Self {
        CounterMoved {
            delta: v1.delta.clamp(i32::MIN.into(), i32::MAX.into()) as i32,
        }
    }
}

/// v2 widens `u8` to `u16` under `forward`: v1 readers reject 256 and up.
#[event(stream = "test-check-narrow", version = 1, compat = "forward")]
struct LevelReadV1 {
    level: u8,
}

#[event(stream = "test-check-narrow", version = 2, upcast_from = LevelReadV1, compat = "forward")]
struct LevelRead {
    level: u16,
}

impl From<LevelReadV1> for LevelRead {
    fn from(v1: LevelReadV1) -> Self {
        LevelRead {
            level: v1.level.into(),
        }
    }
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
fn a_stale_file_fails_even_when_overwriting_and_only_prune_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let stale = dir.path().join("test-check/order.cancelled/v1.json");
    fs::create_dir_all(stale.parent().unwrap()).unwrap();
    fs::write(&stale, "{}\n").unwrap();

    for overwrite in [false, true] {
        let err = orders_in(dir.path())
            .overwrite(overwrite)
            .run()
            .unwrap_err();
        assert_eq!(
            err.problems,
            [Problem::Stale {
                path: "test-check/order.cancelled/v1.json".into()
            }]
        );
        assert!(err.to_string().contains("TIDINGS_SCHEMAS=prune"), "{err}");
        assert!(stale.exists(), "overwrite = {overwrite} deleted it");
    }

    let summary = orders_in(dir.path()).remove_stale(true).run().unwrap();
    assert_eq!(summary.removed, ["test-check/order.cancelled/v1.json"]);
    assert!(!stale.exists());
}

/// Every file under `dir`, by relative path, with its text.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, fs::read_to_string(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn overwrite_never_rewrites_a_committed_version_or_sample() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    // A committed sample unlike what the code would write: kept.
    let sample = dir.path().join("test-check/order.placed/v2.sample.json");
    fs::write(&sample, "{\"order_id\": \"kept\"}\n").unwrap();
    // A committed version the struct no longer produces: frozen.
    let v1 = dir.path().join("test-check/order.placed/v1.json");
    let mut schema: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&v1).unwrap()).unwrap();
    schema["properties"]["note"] = serde_json::json!({ "type": "string" });
    fs::write(&v1, serde_json::to_string_pretty(&schema).unwrap() + "\n").unwrap();
    let before = snapshot(dir.path());

    for check in [
        orders_in(dir.path()).overwrite(true),
        orders_in(dir.path()).remove_stale(true),
        orders_in(dir.path()).upgrade(true),
    ] {
        let err = check.run().unwrap_err();
        assert!(
            err.problems
                .iter()
                .any(|p| matches!(p, Problem::Frozen { version: 1, .. })),
            "{err}"
        );
        assert_eq!(snapshot(dir.path()), before, "a frozen file was rewritten");
    }
}

#[test]
fn an_overwrite_that_fails_writes_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    // Something to write (the generated documents), something to delete
    // (a stale type), and a frozen version that fails the run.
    fs::remove_file(dir.path().join("asyncapi.json")).unwrap();
    fs::write(dir.path().join("envelope.json"), "{}\n").unwrap();
    let stale = dir.path().join("test-check/order.cancelled/v1.json");
    fs::create_dir_all(stale.parent().unwrap()).unwrap();
    fs::write(&stale, "{}\n").unwrap();
    let v1 = dir.path().join("test-check/order.placed/v1.json");
    fs::write(&v1, "{\"type\": \"object\"}\n").unwrap();
    let before = snapshot(dir.path());

    let err = orders_in(dir.path()).remove_stale(true).run().unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| matches!(p, Problem::Frozen { version: 1, .. })),
        "{err}"
    );
    assert_eq!(snapshot(dir.path()), before);

    // Without the frozen change, the same run writes and deletes.
    fs::remove_file(&v1).unwrap();
    let summary = orders_in(dir.path()).remove_stale(true).run().unwrap();
    assert_eq!(summary.removed, ["test-check/order.cancelled/v1.json"]);
    let mut written = summary.written.clone();
    written.sort();
    assert_eq!(
        written,
        [
            "asyncapi.json",
            "envelope.json",
            "test-check/order.placed/v1.json"
        ]
    );
}

#[test]
fn a_check_that_finds_no_events_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let err = Check::new(dir.path())
        .only(|_| false)
        .remove_stale(true)
        .run()
        .unwrap_err();
    assert!(
        matches!(err.problems[..], [Problem::NoEvents { registered }] if registered > 0),
        "{err}"
    );
    assert!(err.to_string().contains("`Check::only` kept none"), "{err}");
    assert!(snapshot(dir.path()).is_empty());
}

#[test]
fn a_version_written_in_an_older_form_passes_and_upgrade_rewrites_it() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let v2 = dir.path().join("test-check/order.placed/v2.json");
    let current = fs::read_to_string(&v2).unwrap();
    // As releases before the bounds wrote it: the mode as a keyword, the
    // width of `u64` as a format.
    let mut older: serde_json::Value = serde_json::from_str(&current).unwrap();
    let total = older["properties"]["total_cents"].as_object_mut().unwrap();
    assert_eq!(
        total.shift_remove("maximum"),
        Some(serde_json::json!(u64::MAX))
    );
    total.insert("format".into(), "uint64".into());
    older
        .as_object_mut()
        .unwrap()
        .insert("x-tidings-compat".into(), "backward".into());
    let older = serde_json::to_string_pretty(&older).unwrap() + "\n";
    fs::write(&v2, &older).unwrap();

    let summary = orders_in(dir.path()).run().unwrap();
    assert_eq!(summary.older_form, ["test-check/order.placed/v2.json"]);
    let summary = orders_in(dir.path()).overwrite(true).run().unwrap();
    assert!(summary.written.is_empty(), "{:?}", summary.written);
    assert_eq!(fs::read_to_string(&v2).unwrap(), older);

    let summary = orders_in(dir.path()).upgrade(true).run().unwrap();
    assert_eq!(summary.written, ["test-check/order.placed/v2.json"]);
    assert_eq!(fs::read_to_string(&v2).unwrap(), current);
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
    // The failed overwrite wrote nothing.
    assert!(snapshot(dir.path()).is_empty());
}

#[test]
fn a_required_field_added_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = Check::new(dir.path())
        .only(|i| i.topic() == "test-check-breaking")
        .overwrite(true)
        .run()
        .unwrap_err();
    let report = err.to_string();
    assert!(
        report.contains(
            "fix: v1 payloads lack `carrier`: make it `Option<…>` or give it `#[serde(default)]` \
             so that they still decode as v2"
        ),
        "{report}"
    );
}

#[test]
fn a_frozen_version_names_a_version_that_does_not_exist_yet() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    // v1 and v2 exist; editing v1 must be published as v3, not v2.
    let v1 = dir.path().join("test-check/order.placed/v1.json");
    let mut schema: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&v1).unwrap()).unwrap();
    schema["required"] = serde_json::json!([]);
    fs::write(&v1, serde_json::to_string_pretty(&schema).unwrap() + "\n").unwrap();
    let err = orders_in(dir.path()).run().unwrap_err();
    let frozen = err
        .problems
        .iter()
        .find_map(|p| match p {
            Problem::Frozen {
                version: 1, next, ..
            } => Some(*next),
            _ => None,
        })
        .expect("v1 is frozen");
    assert_eq!(frozen, 3);
    let report = err.to_string();
    assert!(
        report.contains("declare the change as v3 (`version = 3`"),
        "{report}"
    );
    assert!(!report.contains("v2 (`version = 2`"), "{report}");
}

#[test]
fn a_narrowed_integer_breaks_backward_compatibility() {
    let dir = tempfile::tempdir().unwrap();
    let err = Check::new(dir.path())
        .only(|i| i.topic() == "test-check-narrow")
        .overwrite(true)
        .run()
        .unwrap_err();
    let incompatible: Vec<String> = err
        .problems
        .iter()
        .filter_map(|p| match p {
            Problem::Incompatible {
                type_name, changes, ..
            } => Some(format!(
                "{type_name}: {}",
                changes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        incompatible,
        [
            "counter.moved: MAXIMUM_DECREASED #/properties/delta/maximum, MINIMUM_INCREASED #/properties/delta/minimum",
            // Named from the forward side: v1 reads what v2 writes.
            "level.read: MAXIMUM_DECREASED #/properties/level/maximum",
            "size.measured: MAXIMUM_DECREASED #/properties/bytes/maximum",
        ],
        "{err}"
    );
    // Widening under `forward` breaks too: v1 readers reject what v2 writes.
    assert!(
        err.problems.iter().any(|p| matches!(
            p,
            Problem::Incompatible {
                type_name: "level.read",
                mode: tidings::Compat::Forward,
                ..
            }
        )),
        "{err}"
    );
}

#[test]
fn integer_widths_are_written_as_exact_bounds_without_unknown_formats() {
    let schema = |type_name: &str| (tidings::registry::find(type_name, 1).unwrap().schema)();
    let size = schema("size.measured");
    assert_eq!(
        size["properties"]["bytes"],
        serde_json::json!({"type": "integer", "minimum": 0, "maximum": 18446744073709551615u64})
    );
    let text = tidings::schemas::export::to_file_text(&size);
    assert!(
        text.contains("\"maximum\": 18446744073709551615\n"),
        "{text}"
    );
    let moved = schema("counter.moved");
    assert_eq!(
        moved["properties"]["delta"],
        serde_json::json!({"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX})
    );
    for schema in [size, moved, schema("level.read")] {
        assert!(schema.get("x-tidings-compat").is_none(), "{schema}");
        assert!(!schema.to_string().contains("uint"), "{schema}");
    }
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

#[test]
fn every_id_and_dataschema_follows_the_schema_base() {
    let dir = tempfile::tempdir().unwrap();
    let base = "https://schemas.example.com/events";
    orders_in(dir.path())
        .schema_base(base)
        .overwrite(true)
        .run()
        .unwrap();
    let read = |rel: &str| -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(dir.path().join(rel)).unwrap()).unwrap()
    };
    assert_eq!(
        read("test-check/order.placed/v2.json")["$id"],
        "https://schemas.example.com/events/test-check/order.placed/v2.json"
    );
    assert_eq!(
        read("envelope.json")["$id"],
        "https://schemas.example.com/events/envelope.json"
    );
    let asyncapi = read("asyncapi.json").to_string();
    assert!(asyncapi.contains("https://schemas.example.com/events/test-check/order.placed/v2.json"));
    assert!(
        !asyncapi.contains("tidings.invalid"),
        "the default base is left in asyncapi.json"
    );

    // The same tree checked under the default base: every version's `$id`
    // differs, so each is a changed version, not silently accepted.
    let err = orders_in(dir.path()).run().unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| matches!(p, Problem::Frozen { .. })),
        "{err}"
    );

    // `upgrade` moves them to the new base, and only the `$id` changes.
    let before = read("test-check/order.placed/v2.json");
    orders_in(dir.path()).upgrade(true).run().unwrap();
    let mut after = read("test-check/order.placed/v2.json");
    assert_eq!(
        after["$id"],
        "https://tidings.invalid/schemas/test-check/order.placed/v2.json"
    );
    after["$id"] = before["$id"].clone();
    assert_eq!(after, before);
    orders_in(dir.path()).run().unwrap();

    let err = orders_in(dir.path())
        .schema_base("schemas/")
        .run()
        .unwrap_err();
    assert!(
        matches!(&err.problems[..], [Problem::InvalidSchemaBase { .. }]),
        "{err}"
    );
}
