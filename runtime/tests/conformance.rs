//! Confluent Schema Registry's own JSON Schema diff examples, read from
//! `shared/conformance/confluent-json-diff/` beside the repository (never
//! copied into it: they are under the Confluent Community License). Every
//! case's verdict under BACKWARD must match; the change lists are compared
//! as sets of `<CHANGE_TYPE> <pointer>` lines, since Confluent's order
//! comes from hash sets.

use std::path::PathBuf;

use serde_json::Value;
use tidings_runtime::schemas::diff::{check_pair, diff};
use tidings_runtime::schemas::Compat;

const FILES: [&str; 4] = [
    "confluent-json-diff-examples.json",
    "confluent-json-diff-combined-examples.json",
    "confluent-json-diff-examples-2020-12.json",
    "confluent-json-diff-combined-examples-2020-12.json",
];

/// Cases whose change list matches Confluent's exactly; it may only grow.
const EXACT_CHANGE_LISTS_AT_LEAST: usize = 260;

fn conformance_dir() -> PathBuf {
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
        FILES.join(", ")
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

struct Case {
    name: String,
    old: Value,
    new: Value,
    changes: Vec<String>,
    compatible: bool,
}

fn cases() -> Vec<Case> {
    let dir = conformance_dir();
    let mut all = Vec::new();
    for file in FILES {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let list: Vec<Value> = serde_json::from_str(&strip_trailing_commas(&text))
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        for (i, case) in list.into_iter().enumerate() {
            let changes = case["changes"]
                .as_array()
                .expect("changes is an array")
                .iter()
                .map(|c| c.as_str().expect("a change is a string").to_owned())
                .collect();
            all.push(Case {
                name: format!("{file}[{i}] {}", case["description"].as_str().unwrap_or("")),
                old: case["original_schema"].clone(),
                new: case["update_schema"].clone(),
                changes,
                compatible: case["compatible"]
                    .as_bool()
                    .expect("compatible is a boolean"),
            });
        }
    }
    all
}

#[test]
fn every_confluent_case_gets_confluents_verdict_under_backward() {
    let cases = cases();
    assert_eq!(cases.len(), 263, "expected the 263 upstream cases");
    let mut wrong = Vec::new();
    let mut exact = 0;
    for case in &cases {
        let report = check_pair(&case.old, &case.new, Compat::Backward);
        let mut ours: Vec<String> = diff(&case.old, &case.new)
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut theirs = case.changes.clone();
        ours.sort();
        theirs.sort();
        if ours == theirs {
            exact += 1;
        } else {
            println!(
                "change list differs: {}\n  ours:   {ours:?}\n  theirs: {theirs:?}",
                case.name
            );
        }
        if report.compatible != case.compatible {
            wrong.push(format!(
                "{}: expected compatible={}, got {} with {:?}",
                case.name,
                case.compatible,
                report.compatible,
                report
                    .changes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ));
        }
    }
    println!(
        "verdicts: {}/{} match; change lists: {exact}/{} match exactly",
        cases.len() - wrong.len(),
        cases.len(),
        cases.len()
    );
    assert!(
        wrong.is_empty(),
        "{} verdicts differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(
        exact >= EXACT_CHANGE_LISTS_AT_LEAST,
        "only {exact} change lists match exactly; at least {EXACT_CHANGE_LISTS_AT_LEAST} did before"
    );
}
