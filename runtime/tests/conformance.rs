//! Confluent Schema Registry's own JSON Schema diff examples, read from
//! `shared/conformance/confluent-json-diff/` beside the repository (never
//! copied into it: they are under the Confluent Community License). Every
//! case's verdict under BACKWARD must match; the change lists are compared
//! as sets of `<CHANGE_TYPE> <pointer>` lines, since Confluent's order
//! comes from hash sets.

use serde_json::Value;
use tidings_runtime::schemas::diff::{check_pair, diff};
use tidings_runtime::schemas::Compat;

/// Cases whose change list matches Confluent's exactly; it may only grow.
const EXACT_CHANGE_LISTS_AT_LEAST: usize = 260;

struct Case {
    name: String,
    old: Value,
    new: Value,
    changes: Vec<String>,
    compatible: bool,
}

fn cases() -> Vec<Case> {
    let mut all = Vec::new();
    for (file, list) in tidings_testkit::conformance::confluent_json_diff() {
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
