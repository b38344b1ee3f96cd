//! The function `check`, called from a test under `tests/` that names
//! nothing of the library: no event is linked, so it must fail, say why,
//! and leave the committed folder as it was, whatever the mode.

use std::collections::BTreeMap;
use std::path::Path;

use tidings::schemas::{Check, Problem};

fn snapshot(dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            snapshot(&path, out);
        } else {
            let text = std::fs::read_to_string(&path).unwrap();
            out.insert(path.display().to_string(), text);
        }
    }
}

#[test]
fn the_function_from_tests_finds_no_events_and_touches_nothing() {
    let mut before = BTreeMap::new();
    snapshot(Path::new("schemas"), &mut before);
    assert!(!before.is_empty());

    let err = Check::new("schemas")
        .remove_stale(true)
        .run()
        .unwrap_err();
    assert!(
        matches!(err.problems[..], [Problem::NoEvents { registered: 0 }]),
        "{err}"
    );
    assert!(err.to_string().contains("tidings::schemas::check!"), "{err}");

    let mut after = BTreeMap::new();
    snapshot(Path::new("schemas"), &mut after);
    assert_eq!(after, before);
}
