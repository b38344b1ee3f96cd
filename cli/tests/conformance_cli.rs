//! `tidings schema diff --mode backward` on every one of Confluent Schema
//! Registry's JSON Schema diff examples: the exit status must be Confluent's
//! verdict (0 compatible, 1 not). The cases are read from
//! `shared/conformance/confluent-json-diff/` beside the repository (or
//! `TIDINGS_CONFORMANCE_DIR`), never copied into it.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const FILES: [&str; 4] = [
    "confluent-json-diff-examples.json",
    "confluent-json-diff-combined-examples.json",
    "confluent-json-diff-examples-2020-12.json",
    "confluent-json-diff-combined-examples-2020-12.json",
];

fn conformance_dir() -> PathBuf {
    let dir = std::env::var_os("TIDINGS_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/conformance/confluent-json-diff")
        });
    assert!(
        dir.is_dir(),
        "the Confluent conformance cases are not at {}: set TIDINGS_CONFORMANCE_DIR to the folder holding {}",
        dir.display(),
        FILES.join(", ")
    );
    dir
}

/// Drops a `,` that only whitespace separates from a closing `}` or `]`.
fn strip_trailing_commas(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, c) in chars.iter().enumerate() {
        if *c == ','
            && matches!(
                chars[i + 1..].iter().find(|c| !c.is_whitespace()),
                Some('}') | Some(']')
            )
        {
            continue;
        }
        out.push(*c);
    }
    out
}

#[test]
fn schema_diff_exit_status_is_confluents_verdict_on_every_case() {
    let dir = conformance_dir();
    let work = std::env::temp_dir().join(format!("tidings-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let (old_path, new_path) = (work.join("old.json"), work.join("new.json"));
    let mut total = 0;
    let mut wrong = Vec::new();
    for file in FILES {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let cases: Vec<Value> =
            serde_json::from_str(&strip_trailing_commas(&text)).expect("cases are JSON");
        for (i, case) in cases.iter().enumerate() {
            total += 1;
            std::fs::write(&old_path, case["original_schema"].to_string()).unwrap();
            std::fs::write(&new_path, case["update_schema"].to_string()).unwrap();
            let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
                .args(["schema", "diff", "--mode", "backward"])
                .arg(&old_path)
                .arg(&new_path)
                .output()
                .expect("the tidings binary runs");
            let expected = if case["compatible"].as_bool() == Some(true) {
                0
            } else {
                1
            };
            if out.status.code() != Some(expected) {
                wrong.push(format!(
                    "{file}[{i}] {}: exit {:?}, expected {expected}: {}",
                    case["description"],
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    assert_eq!(total, 263, "expected the 263 upstream cases");
    assert!(
        wrong.is_empty(),
        "{} of {total} verdicts differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
