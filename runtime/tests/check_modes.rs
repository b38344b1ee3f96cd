//! Modes, histories of versions, and unreadable schemas.

use serde_json::json;
use tidings_runtime::schemas::diff::{
    check_history, check_pair, try_check_pair, try_diff, ChangeType, DiffError, Side,
};
use tidings_runtime::schemas::Compat;

fn v1() -> serde_json::Value {
    json!({"type": "object", "additionalProperties": false, "properties": {"id": {"type": "string"}}, "required": ["id"]})
}

/// v1 plus an optional field: backward compatible, not forward.
fn v2() -> serde_json::Value {
    json!({"type": "object", "additionalProperties": false,
           "properties": {"id": {"type": "string"}, "size": {"type": "integer"}}, "required": ["id"]})
}

#[test]
fn optional_field_on_a_closed_schema_is_backward_but_not_forward_or_full() {
    assert!(check_pair(&v1(), &v2(), Compat::Backward).compatible);
    let forward = check_pair(&v1(), &v2(), Compat::Forward);
    assert!(!forward.compatible);
    assert_eq!(forward.breaking.len(), 1);
    assert_eq!(
        forward.breaking[0].kind,
        ChangeType::PropertyRemovedFromClosedContentModel
    );
    assert_eq!(forward.breaking[0].pointer, "#/properties/size");
    assert!(!check_pair(&v1(), &v2(), Compat::Full).compatible);
    assert!(check_pair(&v1(), &v2(), Compat::None).compatible);
}

#[test]
fn report_lists_changes_old_to_new_whatever_the_mode() {
    let report = check_pair(&v1(), &v2(), Compat::Forward);
    assert_eq!(report.changes.len(), 1);
    assert_eq!(
        report.changes[0].to_string(),
        "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/size"
    );
}

#[test]
fn plain_mode_checks_only_the_previous_version() {
    // v1 -> v3 drops the required `id` (breaking), v2 -> v3 only adds a field.
    let v3 = json!({"type": "object", "additionalProperties": false,
                    "properties": {"id": {"type": "string"}, "size": {"type": "integer"}}});
    let versions = [&v1(), &v2(), &v3];
    let plain = check_history(&versions, Compat::Backward);
    assert_eq!(plain.len(), 1);
    assert_eq!((plain[0].0, plain[0].1), (1, 2));
    assert!(plain[0].2.compatible);
}

#[test]
fn transitive_mode_checks_every_older_version() {
    let v0 = json!({"type": "object", "additionalProperties": false,
                    "properties": {"id": {"type": "integer"}}, "required": ["id"]});
    let versions = [&v0, &v1(), &v2()];
    let checks = check_history(&versions, Compat::BackwardTransitive);
    let pairs: Vec<(usize, usize, bool)> = checks
        .iter()
        .map(|(a, b, r)| (*a, *b, r.compatible))
        .collect();
    assert_eq!(pairs, [(0, 2, false), (1, 2, true)]);
}

#[test]
fn none_mode_and_single_versions_check_nothing() {
    assert!(check_history(&[&v1(), &v2()], Compat::None).is_empty());
    assert!(check_history(&[&v1()], Compat::FullTransitive).is_empty());
    assert!(check_history(&[], Compat::Backward).is_empty());
}

#[test]
fn unresolvable_ref_is_an_error_naming_side_and_place() {
    let bad = json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}});
    let err = try_diff(&v1(), &bad).unwrap_err();
    match &err {
        DiffError::Invalid { side, pointer, .. } => {
            assert_eq!(*side, Side::New);
            assert_eq!(pointer, "#/properties/a/$ref");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("#/$defs/Missing"), "{err}");
}

#[test]
fn wrongly_shaped_keywords_are_errors_not_panics() {
    for bad in [
        json!(42),
        json!({"type": 7}),
        json!({"type": "strin"}),
        json!({"properties": []}),
        json!({"required": "id"}),
        json!({"type": "string", "maxLength": -1}),
        json!({"type": "string", "maxLength": "ten"}),
        json!({"anyOf": {}}),
        json!({"$ref": "other.json#/x"}),
    ] {
        let err = try_diff(&bad, &v1()).expect_err(&bad.to_string());
        assert!(
            matches!(
                err,
                DiffError::Invalid {
                    side: Side::Old,
                    ..
                }
            ),
            "{bad}: {err}"
        );
        // The infallible form still answers, comparing unreadable parts by text.
        let _ = tidings_runtime::schemas::diff::diff(&bad, &v1());
    }
}

#[test]
fn forward_check_names_the_side_of_an_error_correctly() {
    let bad = json!({"properties": {"a": {"type": 3}}});
    let err = try_check_pair(&v1(), &bad, Compat::Full).unwrap_err();
    assert!(
        matches!(
            err,
            DiffError::Invalid {
                side: Side::New,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn self_referencing_ref_terminates() {
    let looped = json!({"$ref": "#"});
    assert!(try_diff(&looped, &looped).unwrap().is_empty());
    let chain = json!({"$ref": "#/$defs/A", "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}}});
    assert!(try_diff(&chain, &json!({"type": "string"})).is_ok());
}

#[test]
fn change_type_names_round_trip() {
    for kind in ChangeType::ALL {
        assert_eq!(kind.as_str().parse::<ChangeType>().unwrap(), *kind);
    }
    assert!("NOT_A_CHANGE".parse::<ChangeType>().is_err());
}
