//! `tidings schema diff --mode backward` on every one of Confluent Schema
//! Registry's JSON Schema diff examples: the exit status must be Confluent's
//! verdict (0 compatible, 1 not). The cases are read from
//! `shared/conformance/confluent-json-diff/` beside the repository (or
//! `TIDINGS_CONFORMANCE_DIR`), never copied into it.

use std::process::Command;

#[test]
fn schema_diff_exit_status_is_confluents_verdict_on_every_case() {
    let work = std::env::temp_dir().join(format!("tidings-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let (old_path, new_path) = (work.join("old.json"), work.join("new.json"));
    let mut total = 0;
    let mut wrong = Vec::new();
    for (file, cases) in tidings_testkit::conformance::confluent_json_diff() {
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
