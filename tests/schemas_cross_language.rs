//! Other languages really read the schemas tidings emits.
//!
//! Python (`jsonschema`, Draft202012Validator) and JavaScript (ajv's 2020
//! class with its default, strict options and `ajv-formats`, nothing else;
//! `@asyncapi/parser`, `json-schema-to-typescript`) read the
//! committed `schemas/` of this repository and the schemas of a richer event
//! written to a temporary folder: each schema passes the meta-schema, each
//! sample serialized by Rust validates, broken samples are rejected, the
//! AsyncAPI document parses and every payload compiles to a TypeScript type.
//! The tools are installed from their registries on first run (see
//! `support::tools`).

mod support;

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};
use tidings::schemas::Check;
use tidings::{event, Ulid};

/// Where a file came from.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Origin {
    /// Uploaded by a person.
    Upload,
    /// Fetched from a URL.
    Fetch,
}

/// A checksum.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Checksum {
    algorithm: String,
    hex: String,
}

/// Common fields, flattened into the payload.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Audit {
    actor: String,
}

/// A file landed in storage, with every kind of field a payload has.
#[event(stream = "test-xlang", version = 1, name = "artifact.stored")]
#[derive(Debug, Clone)]
struct ArtifactStored {
    /// The artifact.
    artifact_id: Ulid,
    /// Size in bytes.
    size: u64,
    /// Number of parts.
    parts: u32,
    /// Ratio of compression.
    ratio: f64,
    origin: Origin,
    #[serde(rename = "contentType")]
    content_type: Option<String>,
    checksums: Vec<Checksum>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(flatten)]
    audit: Audit,
}

/// Pub/Sub too.
#[event(channel = "test-xlang", version = 1)]
#[derive(Debug, Clone)]
struct ArtifactPinged;

fn rich_schemas(dir: &Path) {
    Check::new(dir)
        .only(|i| i.topic() == "test-xlang")
        .sample(&ArtifactStored {
            artifact_id: Ulid::new(),
            size: 1 << 40,
            parts: 3,
            ratio: 0.5,
            origin: Origin::Fetch,
            content_type: None,
            checksums: vec![Checksum {
                algorithm: "sha256".into(),
                hex: "ab".into(),
            }],
            tags: vec!["x".into()],
            audit: Audit { actor: "ci".into() },
        })
        .overwrite(true)
        .run()
        .expect("write the schemas of the rich events");
}

fn committed() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas"))
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn python_reads(dir: &Path) -> String {
    let py = support::tools::python_venv("schemas-venv", &["jsonschema"], &["jsonschema"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/check_schemas.py");
    run(Command::new(py).arg(script).arg(dir), "python jsonschema")
}

fn node_reads(dir: &Path) -> String {
    let js = support::tools::node_packages();
    run(
        Command::new("node")
            .arg(js.join("check-schemas.mjs"))
            .arg(dir),
        "node ajv / @asyncapi/parser / json-schema-to-typescript",
    )
}

#[test]
fn python_validates_every_committed_schema_and_sample() {
    let out = python_reads(committed());
    assert!(out.contains("\"failures\": []"), "{out}");
    assert!(out.contains("\"schemas\": 8"), "{out}");
}

#[test]
fn javascript_reads_every_committed_schema_sample_and_the_asyncapi_document() {
    let out = node_reads(committed());
    assert!(out.contains("\"failures\":[]"), "{out}");
    assert!(out.contains("\"typescript\":8"), "{out}");
    assert!(
        out.contains("\"asyncapi\":\"6 channels, 8 messages\""),
        "{out}"
    );
}

#[test]
fn other_languages_read_nested_enum_ulid_integer_and_flattened_fields() {
    let dir = tempfile::tempdir().unwrap();
    rich_schemas(dir.path());
    let out = python_reads(dir.path());
    assert!(
        out.contains("\"failures\": []") && out.contains("\"schemas\": 2"),
        "{out}"
    );
    let out = node_reads(dir.path());
    assert!(
        out.contains("\"failures\":[]") && out.contains("\"typescript\":2"),
        "{out}"
    );
}

#[test]
fn a_sample_that_breaks_its_schema_is_rejected_by_both_languages() {
    rejected_by_both_languages("parts", serde_json::json!("three"));
}

#[test]
fn both_languages_enforce_the_width_and_sign_of_integers() {
    // `parts` is a `u32`, `size` a `u64`: what the Rust reader refuses.
    rejected_by_both_languages("parts", serde_json::json!(4_294_967_296u64));
    rejected_by_both_languages("size", serde_json::json!(-1));
}

/// Writes the rich schemas with `field` of the sample set to `value`, and
/// asserts that Python and JavaScript both reject the sample.
fn rejected_by_both_languages(field: &str, bad: serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    rich_schemas(dir.path());
    let sample = dir.path().join("test-xlang/artifact.stored/v1.sample.json");
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sample).unwrap()).unwrap();
    value[field] = bad;
    std::fs::write(&sample, serde_json::to_vec_pretty(&value).unwrap()).unwrap();

    let py = support::tools::python_venv("schemas-venv", &["jsonschema"], &["jsonschema"]);
    let out = Command::new(py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/check_schemas.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "python accepted a broken sample"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("its sample is rejected"));

    let js = support::tools::node_packages();
    let out = Command::new("node")
        .arg(js.join("check-schemas.mjs"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "ajv accepted a broken sample");
    assert!(String::from_utf8_lossy(&out.stdout).contains("its sample is rejected"));
}
