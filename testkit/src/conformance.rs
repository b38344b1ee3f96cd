//! Upstream conformance cases, read from `shared/conformance/` beside the
//! repository (or the folder `TIDINGS_CONFORMANCE_DIR` names), never copied
//! into it: they are under the Confluent Community License.

use std::path::PathBuf;

use serde_json::Value;

/// The files of Confluent Schema Registry's JSON Schema diff examples.
pub const CONFLUENT_JSON_DIFF_FILES: [&str; 4] = [
    "confluent-json-diff-examples.json",
    "confluent-json-diff-combined-examples.json",
    "confluent-json-diff-examples-2020-12.json",
    "confluent-json-diff-combined-examples-2020-12.json",
];

/// Each of [`CONFLUENT_JSON_DIFF_FILES`] with its cases, in order: objects
/// with `description`, `original_schema`, `update_schema`, `changes` and
/// `compatible`.
///
/// # Panics
///
/// When the folder or a file is missing (the message says where they were
/// looked for and how to point elsewhere) or a file is not JSON.
pub fn confluent_json_diff() -> Vec<(&'static str, Vec<Value>)> {
    let dir = confluent_json_diff_dir();
    CONFLUENT_JSON_DIFF_FILES
        .iter()
        .map(|&file| {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let cases = serde_json::from_str(&strip_trailing_commas(&text))
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            (file, cases)
        })
        .collect()
}

fn confluent_json_diff_dir() -> PathBuf {
    // Every crate of the workspace sits one level below the repository, so
    // `shared/` is two levels up from any of them, this one included.
    let dir = std::env::var_os("TIDINGS_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/conformance/confluent-json-diff")
        });
    assert!(
        dir.is_dir(),
        "the Confluent conformance cases are not at {}: set TIDINGS_CONFORMANCE_DIR to the folder \
         holding {}",
        dir.display(),
        CONFLUENT_JSON_DIFF_FILES.join(", ")
    );
    dir
}

/// Drops a `,` that only whitespace separates from a closing `}` or `]`
/// (one upstream file has trailing commas; none sits inside a string).
fn strip_trailing_commas(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, c) in chars.iter().enumerate() {
        if *c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        out.push(*c);
    }
    out
}
