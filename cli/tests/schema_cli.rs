//! The built `tidings` binary: `schema diff` and `schema check`, their
//! output and their exit status (0 compatible, 1 breaking, 2 unreadable).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("tidings-cli-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, relative: &str, content: &str) -> PathBuf {
        let path = self.0.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }

    fn write_json(&self, relative: &str, value: &Value) -> PathBuf {
        self.write(relative, &serde_json::to_string_pretty(value).unwrap())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn tidings(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the tidings binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn v1() -> Value {
    json!({"type": "object", "additionalProperties": false,
           "properties": {"id": {"type": "string"}}, "required": ["id"]})
}

fn v2_optional_field() -> Value {
    json!({"type": "object", "additionalProperties": false,
           "properties": {"id": {"type": "string"}, "mime_type": {"type": ["string", "null"]}}, "required": ["id"]})
}

fn v2_required_field() -> Value {
    json!({"type": "object", "additionalProperties": false,
           "properties": {"id": {"type": "string"}, "size": {"type": "integer"}}, "required": ["id", "size"]})
}

#[test]
fn diff_of_compatible_schemas_prints_each_change_and_exits_0() {
    let dir = TempDir::new();
    dir.write_json("old.json", &v1());
    dir.write_json("new.json", &v2_optional_field());
    let out = tidings(&dir.0, &["schema", "diff", "old.json", "new.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/mime_type\n"
    );
}

#[test]
fn diff_of_breaking_schemas_exits_1_and_names_the_breaking_change() {
    let dir = TempDir::new();
    dir.write_json("old.json", &v1());
    dir.write_json("new.json", &v2_required_field());
    let out = tidings(&dir.0, &["schema", "diff", "old.json", "new.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/size\n"
    );
    assert!(stderr(&out).contains("breaks backward"), "{}", stderr(&out));
}

#[test]
fn diff_mode_decides_the_verdict() {
    let dir = TempDir::new();
    dir.write_json("old.json", &v1());
    dir.write_json("new.json", &v2_optional_field());
    let forward = tidings(
        &dir.0,
        &[
            "schema", "diff", "old.json", "new.json", "--mode", "forward",
        ],
    );
    assert_eq!(
        forward.status.code(),
        Some(1),
        "a closed reader rejects the new field"
    );
    let none = tidings(
        &dir.0,
        &["schema", "diff", "old.json", "new.json", "--mode", "none"],
    );
    assert_eq!(none.status.code(), Some(0));
}

#[test]
fn diff_json_format_is_one_document_with_verdict_mode_and_changes() {
    let dir = TempDir::new();
    dir.write_json("old.json", &v1());
    dir.write_json("new.json", &v2_required_field());
    let out = tidings(
        &dir.0,
        &["schema", "diff", "old.json", "new.json", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_str(&stdout(&out)).expect("stdout is JSON");
    assert_eq!(doc["compatible"], json!(false));
    assert_eq!(doc["mode"], json!("backward"));
    assert_eq!(
        doc["changes"],
        json!([{"type": "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", "pointer": "#/properties/size", "compatible": false}])
    );
}

#[test]
fn diff_of_a_missing_file_exits_2_naming_it() {
    let dir = TempDir::new();
    dir.write_json("old.json", &v1());
    let out = tidings(&dir.0, &["schema", "diff", "old.json", "nowhere.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nowhere.json"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[test]
fn diff_of_bad_json_exits_2_naming_file_and_problem() {
    let dir = TempDir::new();
    dir.write_json("old.json", &v1());
    dir.write("new.json", "{\"type\": ");
    let out = tidings(&dir.0, &["schema", "diff", "old.json", "new.json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("new.json") && err.contains("not valid JSON"),
        "{err}"
    );
}

#[test]
fn diff_of_an_unreadable_schema_exits_2_naming_the_place() {
    let dir = TempDir::new();
    dir.write_json(
        "old.json",
        &json!({"properties": {"a": {"$ref": "#/$defs/Gone"}}}),
    );
    dir.write_json("new.json", &v1());
    let out = tidings(&dir.0, &["schema", "diff", "old.json", "new.json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("old.json") && err.contains("#/properties/a/$ref"),
        "{err}"
    );
}

/// A tree with one committed type at v1, and non-versioned files beside it.
fn committed_tree(dir: &TempDir, root: &str) {
    dir.write_json(&format!("{root}/contextual/file.uploaded/v1.json"), &v1());
    dir.write_json(&format!("{root}/envelope.json"), &json!({"type": "object"}));
    // Written by hand or by another tool: names no mode.
    dir.write_json(
        &format!("{root}/asyncapi.json"),
        &json!({"asyncapi": "3.0.0", "components": {"messages": {"other": {"name": "file.uploaded"}}}}),
    );
    dir.write_json(
        &format!("{root}/contextual/file.uploaded/v1.sample.json"),
        &json!({"id": "x"}),
    );
}

#[test]
fn check_against_a_dir_accepts_a_compatible_new_version() {
    let dir = TempDir::new();
    committed_tree(&dir, "old");
    committed_tree(&dir, "schemas");
    dir.write_json(
        "schemas/contextual/file.uploaded/v2.json",
        &v2_optional_field(),
    );
    let out = tidings(&dir.0, &["schema", "check", "--against", "old"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        stdout(&out),
        "contextual/file.uploaded v1 -> v2: OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/mime_type\n"
    );
}

#[test]
fn check_against_a_dir_rejects_a_breaking_new_version() {
    let dir = TempDir::new();
    committed_tree(&dir, "old");
    committed_tree(&dir, "schemas");
    dir.write_json(
        "schemas/contextual/file.uploaded/v2.json",
        &v2_required_field(),
    );
    let out = tidings(
        &dir.0,
        &["schema", "check", "--against", "old", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_str(&stdout(&out)).expect("stdout is JSON");
    assert_eq!(doc["compatible"], json!(false));
    let check = &doc["checks"][0];
    assert_eq!(
        (
            check["subject"].as_str(),
            check["old_version"].as_u64(),
            check["new_version"].as_u64()
        ),
        (Some("contextual/file.uploaded"), Some(1), Some(2))
    );
    assert_eq!(
        check["breaking"][0]["type"],
        json!("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL")
    );
}

#[test]
fn check_flags_a_changed_published_version() {
    let dir = TempDir::new();
    committed_tree(&dir, "old");
    committed_tree(&dir, "schemas");
    // Even a compatible edit of a published version is refused.
    dir.write_json(
        "schemas/contextual/file.uploaded/v1.json",
        &v2_optional_field(),
    );
    let out = tidings(&dir.0, &["schema", "check", "--against", "old"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.starts_with("FROZEN_VERSION_CHANGED contextual/file.uploaded/v1.json"),
        "{text}"
    );
    assert!(text.contains("contextual/file.uploaded v1: OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/mime_type"), "{text}");
}

#[test]
fn check_flags_a_removed_version() {
    let dir = TempDir::new();
    committed_tree(&dir, "old");
    dir.write_json("old/contextual/file.uploaded/v2.json", &v2_optional_field());
    committed_tree(&dir, "schemas");
    let out = tidings(&dir.0, &["schema", "check", "--against", "old"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("VERSION_REMOVED contextual/file.uploaded/v2.json"),
        "{}",
        stdout(&out)
    );
}

/// `asyncapi.json` as tidings writes it, naming the mode of each version.
fn asyncapi_with_modes(modes: &[(u32, &str)]) -> Value {
    let messages: serde_json::Map<String, Value> = modes
        .iter()
        .map(|(version, mode)| {
            (
                format!("file.uploaded.v{version}"),
                json!({"name": "file.uploaded", "x-tidings-dataversion": version, "x-tidings-compat": mode}),
            )
        })
        .collect();
    json!({"asyncapi": "3.0.0", "components": {"messages": messages}})
}

#[test]
fn check_takes_the_mode_of_a_version_from_asyncapi() {
    let dir = TempDir::new();
    committed_tree(&dir, "old");
    committed_tree(&dir, "schemas");
    dir.write_json(
        "schemas/contextual/file.uploaded/v2.json",
        &v2_required_field(),
    );
    dir.write_json(
        "schemas/asyncapi.json",
        &asyncapi_with_modes(&[(1, "backward"), (2, "none")]),
    );
    let out = tidings(&dir.0, &["schema", "check", "--against", "old"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // The mode named there wins over `--mode` and over an older file's keyword.
    let mut v2 = v2_required_field();
    v2["x-tidings-compat"] = json!("none");
    dir.write_json("schemas/contextual/file.uploaded/v2.json", &v2);
    dir.write_json(
        "schemas/asyncapi.json",
        &asyncapi_with_modes(&[(2, "backward")]),
    );
    let out = tidings(
        &dir.0,
        &["schema", "check", "--against", "old", "--mode", "none"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

#[test]
fn check_with_an_unreadable_asyncapi_document_exits_2() {
    let dir = TempDir::new();
    committed_tree(&dir, "old");
    committed_tree(&dir, "schemas");
    dir.write("schemas/asyncapi.json", "not even JSON");
    let out = tidings(&dir.0, &["schema", "check", "--against", "old"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("asyncapi.json"), "{}", stderr(&out));
    dir.write_json(
        "schemas/asyncapi.json",
        &asyncapi_with_modes(&[(1, "sideways")]),
    );
    let out = tidings(&dir.0, &["schema", "check", "--against", "old"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("sideways"), "{}", stderr(&out));
}

#[test]
fn check_still_reads_the_mode_older_releases_wrote_in_the_version_file() {
    let dir = TempDir::new();
    committed_tree(&dir, "old");
    committed_tree(&dir, "schemas");
    let mut v2 = v2_required_field();
    v2["x-tidings-compat"] = json!("none");
    dir.write_json("schemas/contextual/file.uploaded/v2.json", &v2);
    let out = tidings(&dir.0, &["schema", "check", "--against", "old"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn check_transitive_mode_compares_with_every_older_version() {
    let dir = TempDir::new();
    committed_tree(&dir, "old");
    dir.write_json("old/contextual/file.uploaded/v2.json", &v2_optional_field());
    committed_tree(&dir, "schemas");
    dir.write_json(
        "schemas/contextual/file.uploaded/v2.json",
        &v2_optional_field(),
    );
    // v3 drops `mime_type`, which breaks v2 (closed) but not v1.
    dir.write_json("schemas/contextual/file.uploaded/v3.json", &v1());
    let plain = tidings(&dir.0, &["schema", "check", "--against", "old"]);
    assert_eq!(plain.status.code(), Some(1));
    let transitive = tidings(
        &dir.0,
        &[
            "schema",
            "check",
            "--against",
            "old",
            "--mode",
            "backward_transitive",
            "--format",
            "json",
        ],
    );
    let doc: Value = serde_json::from_str(&stdout(&transitive)).unwrap();
    let pairs: Vec<(u64, u64)> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["old_version"].as_u64().unwrap(),
                c["new_version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(pairs, [(1, 3), (2, 3)]);
}

#[test]
fn check_with_a_bad_schema_file_exits_2() {
    let dir = TempDir::new();
    committed_tree(&dir, "old");
    committed_tree(&dir, "schemas");
    dir.write("schemas/contextual/file.uploaded/v2.json", "{ nope");
    let out = tidings(&dir.0, &["schema", "check", "--against", "old"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("v2.json"), "{}", stderr(&out));
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("git is on PATH");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn repo_with_committed_v1() -> TempDir {
    let dir = TempDir::new();
    git(&dir.0, &["init", "-q"]);
    git(&dir.0, &["config", "user.email", "test@example.com"]);
    git(&dir.0, &["config", "user.name", "test"]);
    git(&dir.0, &["config", "commit.gpgsign", "false"]);
    committed_tree(&dir, "schemas");
    git(&dir.0, &["add", "."]);
    git(&dir.0, &["commit", "-q", "-m", "v1"]);
    dir
}

#[test]
fn check_against_a_git_revision_accepts_a_compatible_new_version() {
    let dir = repo_with_committed_v1();
    dir.write_json(
        "schemas/contextual/file.uploaded/v2.json",
        &v2_optional_field(),
    );
    let out = tidings(&dir.0, &["schema", "check", "--against", "HEAD"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("v1 -> v2: OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"));
}

#[test]
fn check_against_a_git_revision_catches_an_edited_published_version() {
    let dir = repo_with_committed_v1();
    dir.write_json(
        "schemas/contextual/file.uploaded/v1.json",
        &v2_required_field(),
    );
    let out = tidings(
        &dir.0,
        &[
            "schema",
            "check",
            "--against",
            "HEAD",
            "--schemas",
            "schemas",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("FROZEN_VERSION_CHANGED contextual/file.uploaded/v1.json"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_against_an_unknown_revision_exits_2() {
    let dir = repo_with_committed_v1();
    let out = tidings(&dir.0, &["schema", "check", "--against", "no-such-branch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no-such-branch"), "{}", stderr(&out));
}

/// A payload with one integer field, as this release writes `u64`/`u32`.
fn with_count(maximum: u64) -> Value {
    json!({"type": "object", "additionalProperties": false,
           "properties": {"count": {"type": "integer", "minimum": 0, "maximum": maximum}},
           "required": ["count"]})
}

#[test]
fn check_treats_a_version_in_an_older_form_as_unchanged() {
    let dir = TempDir::new();
    // As older releases wrote a `u64` field, and the mode as a keyword.
    let older = json!({"x-tidings-compat": "backward", "type": "object", "additionalProperties": false,
                       "properties": {"count": {"type": "integer", "format": "uint64", "minimum": 0}},
                       "required": ["count"]});
    dir.write_json("old/contextual/file.uploaded/v1.json", &older);
    dir.write_json(
        "schemas/contextual/file.uploaded/v1.json",
        &with_count(u64::MAX),
    );
    let out = tidings(&dir.0, &["schema", "check", "--against", "old"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = tidings(
        &dir.0,
        &[
            "schema",
            "diff",
            "old/contextual/file.uploaded/v1.json",
            "schemas/contextual/file.uploaded/v1.json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn check_reports_a_narrowed_integer_with_exact_bounds() {
    let dir = TempDir::new();
    dir.write_json(
        "old/contextual/file.uploaded/v1.json",
        &with_count(u64::MAX),
    );
    dir.write_json(
        "schemas/contextual/file.uploaded/v1.json",
        &with_count(u64::MAX),
    );
    // One below u64::MAX: the same f64, a different bound.
    dir.write_json(
        "schemas/contextual/file.uploaded/v2.json",
        &with_count(u64::MAX - 1),
    );
    let out = tidings(&dir.0, &["schema", "check", "--against", "old"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(
            "contextual/file.uploaded v1 -> v2: MAXIMUM_DECREASED #/properties/count/maximum (breaks backward)"
        ),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_changed_published_version_is_told_to_become_a_version_that_does_not_exist() {
    let dir = TempDir::new();
    committed_tree(&dir, "old");
    dir.write_json("old/contextual/file.uploaded/v2.json", &v2_optional_field());
    committed_tree(&dir, "schemas");
    dir.write_json(
        "schemas/contextual/file.uploaded/v2.json",
        &v2_optional_field(),
    );
    // v1 edited while v2 exists: the change is v3.
    dir.write_json(
        "schemas/contextual/file.uploaded/v1.json",
        &v2_required_field(),
    );
    let out = tidings(&dir.0, &["schema", "check", "--against", "old"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("publish the change as v3 instead"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_required_field_added_says_how_to_fix_it() {
    let dir = TempDir::new();
    dir.write_json("old.json", &v1());
    dir.write_json("new.json", &v2_required_field());
    let out = tidings(&dir.0, &["schema", "diff", "old.json", "new.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("make it `Option<…>` or give it `#[serde(default)]`"),
        "{}",
        stderr(&out)
    );
    committed_tree(&dir, "old");
    committed_tree(&dir, "schemas");
    dir.write_json(
        "schemas/contextual/file.uploaded/v2.json",
        &v2_required_field(),
    );
    let out = tidings(&dir.0, &["schema", "check", "--against", "old"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("make it `Option<…>` or give it `#[serde(default)]`"),
        "{}",
        stdout(&out)
    );
}
