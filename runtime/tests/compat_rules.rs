//! Every compatibility rule, each checked both ways: the change from `old` to
//! `new` and its reverse, with the exact changes reported and the BACKWARD
//! verdict of each direction.

use serde_json::{json, Value};
use tidings_runtime::schemas::diff::{check_pair, diff};
use tidings_runtime::schemas::Compat;

struct Rule {
    name: &'static str,
    old: Value,
    new: Value,
    /// `diff(old, new)`, and whether that is backward compatible.
    forward: (&'static [&'static str], bool),
    /// `diff(new, old)`, and whether that is backward compatible.
    reverse: (&'static [&'static str], bool),
}

fn closed(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": properties, "required": required})
}

fn open(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

fn modern(mut schema: Value) -> Value {
    schema["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    schema
}

fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "optional property added to a closed model",
            old: closed(json!({"id": {"type": "string"}}), &["id"]),
            new: closed(json!({"id": {"type": "string"}, "size": {"type": "integer"}}), &["id"]),
            forward: (&["OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/size"], true),
            reverse: (&["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL #/properties/size"], false),
        },
        Rule {
            name: "required property added to a closed model",
            old: closed(json!({"id": {"type": "string"}}), &["id"]),
            new: closed(json!({"id": {"type": "string"}, "size": {"type": "integer"}}), &["id", "size"]),
            forward: (&["REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/size"], false),
            reverse: (&["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL #/properties/size"], false),
        },
        Rule {
            name: "required property with a default added to a closed model",
            old: closed(json!({"id": {"type": "string"}}), &["id"]),
            new: closed(json!({"id": {"type": "string"}, "size": {"type": "integer", "default": 0}}), &["id", "size"]),
            forward: (&["REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/size"], true),
            reverse: (&["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL #/properties/size"], false),
        },
        Rule {
            name: "optional property added to an open model",
            old: open(json!({"id": {"type": "string"}}), &[]),
            new: open(json!({"id": {"type": "string"}, "size": {"type": "integer"}}), &[]),
            forward: (&["OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL #/properties/size"], false),
            reverse: (&["PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL #/properties/size"], true),
        },
        Rule {
            name: "required property added to an open model",
            old: open(json!({"id": {"type": "string"}}), &[]),
            new: open(json!({"id": {"type": "string"}, "size": {"type": "integer"}}), &["size"]),
            forward: (&["REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL #/properties/size"], false),
            reverse: (&["PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL #/properties/size"], true),
        },
        Rule {
            name: "property accepting anything added to an open model",
            old: open(json!({"id": {"type": "string"}}), &[]),
            new: open(json!({"id": {"type": "string"}, "extra": true}), &[]),
            forward: (&["PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL #/properties/extra"], true),
            reverse: (&["PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL #/properties/extra"], true),
        },
        Rule {
            name: "property declared false removed from a closed model",
            old: closed(json!({"id": {"type": "string"}, "gone": false}), &[]),
            new: closed(json!({"id": {"type": "string"}}), &[]),
            forward: (&["PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL #/properties/gone"], true),
            reverse: (&["OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/gone"], true),
        },
        Rule {
            name: "existing property becomes required",
            old: closed(json!({"id": {"type": "string"}}), &[]),
            new: closed(json!({"id": {"type": "string"}}), &["id"]),
            forward: (&["REQUIRED_ATTRIBUTE_ADDED #/required/id"], false),
            reverse: (&["REQUIRED_ATTRIBUTE_REMOVED #/required/id"], true),
        },
        Rule {
            name: "existing property with a default becomes required",
            old: closed(json!({"id": {"type": "string", "default": "x"}}), &[]),
            new: closed(json!({"id": {"type": "string", "default": "x"}}), &["id"]),
            forward: (&["REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED #/required/id"], true),
            reverse: (&["REQUIRED_ATTRIBUTE_REMOVED #/required/id"], true),
        },
        Rule {
            name: "property added under a matching patternProperties",
            old: json!({"type": "object", "additionalProperties": false, "patternProperties": {"^x_": {"type": "string"}}}),
            new: json!({"type": "object", "additionalProperties": false, "patternProperties": {"^x_": {"type": "string"}},
                        "properties": {"x_note": {"type": "string"}}}),
            forward: (&[
                "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/x_note",
                "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/x_note",
            ], true),
            reverse: (&["PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/x_note"], true),
        },
        Rule {
            name: "property added that additionalProperties' schema does not cover",
            old: json!({"type": "object", "additionalProperties": {"type": "string"}}),
            new: json!({"type": "object", "additionalProperties": {"type": "string"}, "properties": {"n": {"type": "integer"}}}),
            forward: (&[
                "TYPE_CHANGED #/properties/n",
                "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/n",
                "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/n",
            ], false),
            reverse: (&[
                "TYPE_CHANGED #/properties/n",
                "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/n",
            ], false),
        },
        Rule {
            name: "closed model opened",
            old: json!({"type": "object", "additionalProperties": false}),
            new: json!({"type": "object"}),
            forward: (&["ADDITIONAL_PROPERTIES_ADDED #/additionalProperties"], true),
            reverse: (&["ADDITIONAL_PROPERTIES_REMOVED #/additionalProperties"], false),
        },
        Rule {
            name: "additional properties constrained to a schema",
            old: json!({"type": "object"}),
            new: json!({"type": "object", "additionalProperties": {"type": "string"}}),
            forward: (&["ADDITIONAL_PROPERTIES_NARROWED #/additionalProperties"], false),
            reverse: (&["ADDITIONAL_PROPERTIES_EXTENDED #/additionalProperties"], true),
        },
        Rule {
            name: "unevaluatedProperties false lifted",
            old: modern(json!({"type": "object", "unevaluatedProperties": false})),
            new: modern(json!({"type": "object"})),
            forward: (&["UNEVALUATED_PROPERTIES_ADDED #/unevaluatedProperties"], true),
            reverse: (&["UNEVALUATED_PROPERTIES_REMOVED #/unevaluatedProperties"], false),
        },
        Rule {
            name: "integer widened to number",
            old: json!({"type": "integer"}),
            new: json!({"type": "number"}),
            forward: (&["TYPE_EXTENDED #/"], true),
            reverse: (&["TYPE_NARROWED #/"], false),
        },
        Rule {
            name: "string changed to integer",
            old: json!({"type": "string"}),
            new: json!({"type": "integer"}),
            forward: (&["TYPE_CHANGED #/"], false),
            reverse: (&["TYPE_CHANGED #/"], false),
        },
        Rule {
            name: "field made nullable",
            old: closed(json!({"name": {"type": "string"}}), &[]),
            new: closed(json!({"name": {"type": ["string", "null"]}}), &[]),
            forward: (&["SUM_TYPE_EXTENDED #/properties/name"], true),
            reverse: (&["TYPE_CHANGED #/properties/name"], false),
        },
        Rule {
            name: "anything may become the empty schema, not the reverse",
            old: json!({"type": "string", "maxLength": 3}),
            new: json!({}),
            forward: (&[], true),
            reverse: (&["TYPE_CHANGED #/"], false),
        },
        Rule {
            name: "a false schema may become anything",
            old: json!({"properties": {"a": false}}),
            new: json!({"properties": {"a": {"type": "string"}}}),
            forward: (&[], true),
            reverse: (&["TYPE_CHANGED #/properties/a"], false),
        },
        Rule {
            name: "enum beside a type gains a value",
            old: json!({"type": "string", "enum": ["red", "green"]}),
            new: json!({"type": "string", "enum": ["red", "green", "blue"]}),
            forward: (&["ENUM_ARRAY_EXTENDED #/enum"], true),
            reverse: (&["ENUM_ARRAY_NARROWED #/enum", "COMBINED_TYPE_SUBSCHEMAS_CHANGED #/"], false),
        },
        Rule {
            name: "enum alone changes a value",
            old: json!({"enum": ["red", "green"]}),
            new: json!({"enum": ["red", "blue"]}),
            forward: (&["ENUM_ARRAY_CHANGED #/enum"], false),
            reverse: (&["ENUM_ARRAY_CHANGED #/enum"], false),
        },
        Rule {
            name: "enum constraint dropped",
            old: json!({"type": "string", "enum": ["red"]}),
            new: json!({"type": "string"}),
            forward: (&["PRODUCT_TYPE_NARROWED #/"], true),
            reverse: (&["TYPE_CHANGED #/"], false),
        },
        Rule {
            name: "const changed",
            old: json!({"const": "v1"}),
            new: json!({"const": "v2"}),
            forward: (&["ENUM_ARRAY_CHANGED #/const"], false),
            reverse: (&["ENUM_ARRAY_CHANGED #/const"], false),
        },
        Rule {
            name: "maxLength raised",
            old: json!({"type": "string", "maxLength": 10}),
            new: json!({"type": "string", "maxLength": 20}),
            forward: (&["MAX_LENGTH_INCREASED #/maxLength"], true),
            reverse: (&["MAX_LENGTH_DECREASED #/maxLength"], false),
        },
        Rule {
            name: "minLength added",
            old: json!({"type": "string"}),
            new: json!({"type": "string", "minLength": 1}),
            forward: (&["MIN_LENGTH_ADDED #/minLength"], false),
            reverse: (&["MIN_LENGTH_REMOVED #/minLength"], true),
        },
        Rule {
            name: "pattern added",
            old: json!({"type": "string"}),
            new: json!({"type": "string", "pattern": "^[a-z]+$"}),
            forward: (&["PATTERN_ADDED #/pattern"], false),
            reverse: (&["PATTERN_REMOVED #/pattern"], true),
        },
        Rule {
            name: "pattern changed",
            old: json!({"type": "string", "pattern": "^[a-z]+$"}),
            new: json!({"type": "string", "pattern": "^[a-z0-9]+$"}),
            forward: (&["PATTERN_CHANGED #/pattern"], false),
            reverse: (&["PATTERN_CHANGED #/pattern"], false),
        },
        Rule {
            name: "maximum added",
            old: json!({"type": "number"}),
            new: json!({"type": "number", "maximum": 100}),
            forward: (&["MAXIMUM_ADDED #/maximum"], false),
            reverse: (&["MAXIMUM_REMOVED #/maximum"], true),
        },
        Rule {
            name: "minimum raised",
            old: json!({"type": "integer", "minimum": 0}),
            new: json!({"type": "integer", "minimum": 1}),
            forward: (&["MINIMUM_INCREASED #/minimum"], false),
            reverse: (&["MINIMUM_DECREASED #/minimum"], true),
        },
        Rule {
            name: "exclusiveMinimum added",
            old: json!({"type": "number"}),
            new: json!({"type": "number", "exclusiveMinimum": 0}),
            forward: (&["EXCLUSIVE_MINIMUM_ADDED #/exclusiveMinimum"], false),
            reverse: (&["EXCLUSIVE_MINIMUM_REMOVED #/exclusiveMinimum"], true),
        },
        Rule {
            name: "exclusiveMaximum raised",
            old: json!({"type": "number", "exclusiveMaximum": 1}),
            new: json!({"type": "number", "exclusiveMaximum": 2}),
            forward: (&["EXCLUSIVE_MAXIMUM_INCREASED #/exclusiveMaximum"], true),
            reverse: (&["EXCLUSIVE_MAXIMUM_DECREASED #/exclusiveMaximum"], false),
        },
        Rule {
            name: "draft-04 exclusive flag read as an exclusive bound",
            old: json!({"type": "number", "maximum": 10, "exclusiveMaximum": true}),
            new: json!({"type": "number", "maximum": 10}),
            forward: (&["MAXIMUM_ADDED #/maximum", "EXCLUSIVE_MAXIMUM_REMOVED #/exclusiveMaximum"], false),
            reverse: (&["MAXIMUM_REMOVED #/maximum", "EXCLUSIVE_MAXIMUM_ADDED #/exclusiveMaximum"], false),
        },
        Rule {
            name: "multipleOf made a multiple of itself",
            old: json!({"type": "number", "multipleOf": 0.1}),
            new: json!({"type": "number", "multipleOf": 0.3}),
            forward: (&["MULTIPLE_OF_EXPANDED #/multipleOf"], false),
            reverse: (&["MULTIPLE_OF_REDUCED #/multipleOf"], true),
        },
        Rule {
            name: "multipleOf changed to an unrelated value",
            old: json!({"type": "integer", "multipleOf": 3}),
            new: json!({"type": "integer", "multipleOf": 5}),
            forward: (&["MULTIPLE_OF_CHANGED #/multipleOf"], false),
            reverse: (&["MULTIPLE_OF_CHANGED #/multipleOf"], false),
        },
        Rule {
            name: "maxItems added",
            old: json!({"type": "array"}),
            new: json!({"type": "array", "maxItems": 5}),
            forward: (&["MAX_ITEMS_ADDED #/maxItems"], false),
            reverse: (&["MAX_ITEMS_REMOVED #/maxItems"], true),
        },
        Rule {
            name: "minItems raised",
            old: json!({"type": "array", "minItems": 1}),
            new: json!({"type": "array", "minItems": 2}),
            forward: (&["MIN_ITEMS_INCREASED #/minItems"], false),
            reverse: (&["MIN_ITEMS_DECREASED #/minItems"], true),
        },
        Rule {
            name: "uniqueItems added",
            old: json!({"type": "array"}),
            new: json!({"type": "array", "uniqueItems": true}),
            forward: (&["UNIQUE_ITEMS_ADDED #/uniqueItems"], false),
            reverse: (&["UNIQUE_ITEMS_REMOVED #/uniqueItems"], true),
        },
        Rule {
            name: "maxContains raised",
            old: modern(json!({"type": "array", "contains": {"type": "integer"}, "maxContains": 3})),
            new: modern(json!({"type": "array", "contains": {"type": "integer"}, "maxContains": 5})),
            forward: (&["MAX_CONTAINS_INCREASED #/maxContains"], true),
            reverse: (&["MAX_CONTAINS_DECREASED #/maxContains"], false),
        },
        Rule {
            name: "items schema added",
            old: json!({"type": "array"}),
            new: json!({"type": "array", "items": {"type": "string"}}),
            forward: (&["SCHEMA_ADDED #/items"], false),
            reverse: (&["SCHEMA_REMOVED #/items"], true),
        },
        Rule {
            name: "items type changed",
            old: json!({"type": "array", "items": {"type": "string"}}),
            new: json!({"type": "array", "items": {"type": "boolean"}}),
            forward: (&["TYPE_CHANGED #/items"], false),
            reverse: (&["TYPE_CHANGED #/items"], false),
        },
        Rule {
            name: "prefixItems position added to a closed tuple",
            old: modern(json!({"type": "array", "prefixItems": [{"type": "string"}], "items": false})),
            new: modern(json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false})),
            forward: (&["ITEM_ADDED_TO_CLOSED_CONTENT_MODEL #/items/1"], true),
            reverse: (&["ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL #/items/1"], false),
        },
        Rule {
            name: "draft-07 tuple position added to an open tuple",
            old: json!({"type": "array", "items": [{"type": "string"}]}),
            new: json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}),
            forward: (&["ITEM_ADDED_TO_OPEN_CONTENT_MODEL #/items/1"], false),
            reverse: (&["ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL #/items/1"], true),
        },
        Rule {
            name: "draft-07 tuple position covered by additionalItems",
            old: json!({"type": "array", "items": [{"type": "string"}], "additionalItems": {"type": "integer"}}),
            new: json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}], "additionalItems": {"type": "integer"}}),
            forward: (&["ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/1"], true),
            reverse: (&["ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/1"], true),
        },
        Rule {
            name: "items past a tuple forbidden",
            old: json!({"type": "array", "items": [{"type": "string"}]}),
            new: json!({"type": "array", "items": [{"type": "string"}], "additionalItems": false}),
            forward: (&["ADDITIONAL_ITEMS_REMOVED #/additionalItems"], false),
            reverse: (&["ADDITIONAL_ITEMS_ADDED #/additionalItems"], true),
        },
        Rule {
            name: "definition behind a $ref widened",
            old: modern(json!({"type": "object", "properties": {"size": {"$ref": "#/$defs/Size"}}, "$defs": {"Size": {"type": "integer"}}})),
            new: modern(json!({"type": "object", "properties": {"size": {"$ref": "#/$defs/Size"}}, "$defs": {"Size": {"type": "number"}}})),
            forward: (&["TYPE_EXTENDED #/properties/size"], true),
            reverse: (&["TYPE_NARROWED #/properties/size"], false),
        },
        Rule {
            name: "inline schema moved behind a draft-07 $ref",
            old: json!({"properties": {"a": {"type": "string"}}}),
            new: json!({"properties": {"a": {"$ref": "#/definitions/A"}}, "definitions": {"A": {"type": "string"}}}),
            forward: (&[], true),
            reverse: (&[], true),
        },
        Rule {
            name: "recursive definition changed deep inside",
            old: modern(json!({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {
                "value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}}})),
            new: modern(json!({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {
                "value": {"type": "number"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}}})),
            forward: (&["TYPE_EXTENDED #/properties/value"], true),
            reverse: (&["TYPE_NARROWED #/properties/value"], false),
        },
        Rule {
            name: "oneOf gains an alternative",
            old: json!({"oneOf": [{"type": "string"}]}),
            new: json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
            forward: (&["SUM_TYPE_EXTENDED #/"], true),
            reverse: (&["SUM_TYPE_NARROWED #/"], false),
        },
        Rule {
            name: "allOf gains a constraint",
            old: json!({"allOf": [{"type": "string"}]}),
            new: json!({"allOf": [{"type": "string"}, {"maxLength": 3}]}),
            forward: (&["PRODUCT_TYPE_EXTENDED #/"], false),
            reverse: (&["PRODUCT_TYPE_NARROWED #/"], true),
        },
        Rule {
            name: "anyOf turned into oneOf",
            old: json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
            new: json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
            forward: (&["COMBINED_TYPE_CHANGED #/"], false),
            reverse: (&["COMBINED_TYPE_EXTENDED #/"], true),
        },
        Rule {
            name: "changed alternative inside anyOf",
            old: json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
            new: json!({"anyOf": [{"type": "string"}, {"type": "boolean"}]}),
            forward: (&["COMBINED_TYPE_SUBSCHEMAS_CHANGED #/"], false),
            reverse: (&["COMBINED_TYPE_SUBSCHEMAS_CHANGED #/"], false),
        },
        Rule {
            name: "not rejects less",
            old: json!({"not": {"type": "string"}}),
            new: json!({"not": {"type": "string", "maxLength": 3}}),
            forward: (&["NOT_TYPE_NARROWED #/not"], true),
            reverse: (&["NOT_TYPE_EXTENDED #/not"], false),
        },
        Rule {
            name: "annotations changed",
            old: json!({"type": "string", "title": "Name", "description": "old", "default": "a"}),
            new: json!({"type": "string", "title": "Full name", "description": "new", "default": "b"}),
            forward: (&["TITLE_CHANGED #/", "DESCRIPTION_CHANGED #/", "DEFAULT_CHANGED #/"], true),
            reverse: (&["TITLE_CHANGED #/", "DESCRIPTION_CHANGED #/", "DEFAULT_CHANGED #/"], true),
        },
        Rule {
            name: "draft-07 $id changed, 2020-12 $id not reported",
            old: json!({"$id": "a", "type": "string"}),
            new: json!({"$id": "b", "type": "string"}),
            forward: (&["ID_CHANGED #/"], true),
            reverse: (&["ID_CHANGED #/"], true),
        },
        Rule {
            name: "dependentRequired list gains a name",
            old: modern(json!({"type": "object", "dependentRequired": {"card": ["billing"]}})),
            new: modern(json!({"type": "object", "dependentRequired": {"card": ["billing", "cvv"]}})),
            forward: (&["DEPENDENCY_ARRAY_EXTENDED #/dependencies/card"], false),
            reverse: (&["DEPENDENCY_ARRAY_NARROWED #/dependencies/card"], true),
        },
        Rule {
            name: "dependentSchemas entry removed",
            old: modern(json!({"type": "object", "dependentSchemas": {"card": {"required": ["billing"]}}})),
            new: modern(json!({"type": "object"})),
            forward: (&["DEPENDENCY_SCHEMA_REMOVED #/dependencies/card"], true),
            reverse: (&["DEPENDENCY_SCHEMA_ADDED #/dependencies/card"], false),
        },
        Rule {
            name: "minProperties raised",
            old: json!({"type": "object", "minProperties": 1}),
            new: json!({"type": "object", "minProperties": 2}),
            forward: (&["MIN_PROPERTIES_INCREASED #/minProperties"], false),
            reverse: (&["MIN_PROPERTIES_DECREASED #/minProperties"], true),
        },
        Rule {
            name: "maxProperties added",
            old: json!({"type": "object"}),
            new: json!({"type": "object", "maxProperties": 9}),
            forward: (&["MAX_PROPERTIES_ADDED #/maxProperties"], false),
            reverse: (&["MAX_PROPERTIES_REMOVED #/maxProperties"], true),
        },
        Rule {
            name: "then branch of a conditional tightened",
            old: json!({"if": {"required": ["a"]}, "then": {"required": ["b"]}}),
            new: json!({"if": {"required": ["a"]}, "then": {"required": ["b"], "maxProperties": 3}}),
            forward: (&["MAX_PROPERTIES_ADDED #/then/maxProperties"], false),
            reverse: (&["MAX_PROPERTIES_REMOVED #/then/maxProperties"], true),
        },
    ]
}

fn sorted(changes: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = changes.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

fn check(
    name: &str,
    direction: &str,
    old: &Value,
    new: &Value,
    (expected, compatible): (&[&str], bool),
) -> Option<String> {
    let mut got: Vec<String> = diff(old, new).iter().map(ToString::to_string).collect();
    got.sort();
    let verdict = check_pair(old, new, Compat::Backward).compatible;
    (got != sorted(expected) || verdict != compatible).then(|| {
        format!("{name} ({direction}): expected {expected:?} compatible={compatible}, got {got:?} compatible={verdict}")
    })
}

#[test]
fn every_rule_reports_its_change_and_verdict_in_both_directions() {
    let rules = rules();
    assert!(rules.len() * 2 >= 60, "at least 60 pairs");
    let failures: Vec<String> = rules
        .iter()
        .flat_map(|r| {
            [
                check(r.name, "old -> new", &r.old, &r.new, r.forward),
                check(r.name, "new -> old", &r.new, &r.old, r.reverse),
            ]
        })
        .flatten()
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} pairs differ:\n{}",
        failures.len(),
        rules.len() * 2,
        failures.join("\n")
    );
}

#[test]
fn modern_schemas_do_not_report_id_changes() {
    let old = modern(json!({"$id": "schemas/a/b/v1.json", "type": "string"}));
    let new = modern(json!({"$id": "schemas/a/b/v2.json", "type": "string"}));
    assert!(diff(&old, &new).is_empty());
}

#[test]
fn identical_schemas_have_no_changes() {
    for rule in rules() {
        assert!(
            diff(&rule.old, &rule.old).is_empty(),
            "{}: old vs itself",
            rule.name
        );
        assert!(
            diff(&rule.new, &rule.new).is_empty(),
            "{}: new vs itself",
            rule.name
        );
    }
}

#[test]
fn compatibility_guide_lists_every_change_type_with_its_verdict() {
    use tidings_runtime::schemas::diff::ChangeType;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/compatibility.md");
    let guide = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    for kind in ChangeType::ALL {
        let row = guide
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", kind.as_str())))
            .unwrap_or_else(|| panic!("{} has no row in docs/compatibility.md", kind.as_str()));
        let verdict = row.split('|').nth(3).unwrap_or("").trim();
        let expected = if kind.is_backward_compatible() {
            "yes"
        } else {
            "**no**"
        };
        assert_eq!(verdict, expected, "{}", kind.as_str());
    }
}
