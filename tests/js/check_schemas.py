"""Reads every schema tidings emitted the way a Python service would.

python-jsonschema's Draft202012Validator checks each payload schema against
the meta-schema, validates its golden sample, and rejects broken samples.
Like Ajv's strict mode, it also refuses a keyword that JSON Schema 2020-12
does not define, which the meta-schema lets through.
Usage: python check_schemas.py <schemas dir>; prints one JSON line, exits 1 on any failure.
"""
import json
import pathlib
import re
import sys

from jsonschema import Draft202012Validator


# Every keyword of JSON Schema 2020-12 (core, applicator, unevaluated,
# validation, meta-data, format-annotation, content), as Ajv's strict mode knows them.
KEYWORDS = {
    "$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary",
    "$comment", "$defs", "definitions",
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas",
    "prefixItems", "items", "contains", "properties", "patternProperties",
    "additionalProperties", "propertyNames", "unevaluatedItems", "unevaluatedProperties",
    "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
    "uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties",
    "required", "dependentRequired",
    "title", "description", "default", "deprecated", "readOnly", "writeOnly", "examples",
    "format", "contentEncoding", "contentMediaType", "contentSchema",
}
ONE = {"not", "if", "then", "else", "items", "contains", "additionalProperties",
       "propertyNames", "unevaluatedItems", "unevaluatedProperties", "contentSchema"}
MANY = {"allOf", "anyOf", "oneOf", "prefixItems"}
NAMED = {"$defs", "definitions", "properties", "patternProperties", "dependentSchemas"}


def unknown_keywords(schema, at="#"):
    """Every keyword 2020-12 does not define, with where it is."""
    if not isinstance(schema, dict):
        return []
    found = [f"{at}/{k}" for k in schema if k not in KEYWORDS]
    for key, value in schema.items():
        if key in ONE:
            found += unknown_keywords(value, f"{at}/{key}")
        elif key in MANY and isinstance(value, list):
            for i, sub in enumerate(value):
                found += unknown_keywords(sub, f"{at}/{key}/{i}")
        elif key in NAMED and isinstance(value, dict):
            for name, sub in value.items():
                found += unknown_keywords(sub, f"{at}/{key}/{name}")
    return found


def main(root: pathlib.Path) -> int:
    failures = []
    schemas = samples = 0
    for path in sorted(root.rglob("v*.json")):
        if not re.fullmatch(r"v\d+\.json", path.name):
            continue
        rel = path.relative_to(root)
        schemas += 1
        schema = json.loads(path.read_text())
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as e:  # the library's SchemaError
            failures.append(f"{rel}: not a valid 2020-12 schema: {e}")
            continue
        unknown = unknown_keywords(schema)
        if unknown:
            failures.append(f"{rel}: keywords JSON Schema 2020-12 does not define: {unknown}")
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        sample_path = path.with_name(path.stem + ".sample.json")
        if not sample_path.exists():
            failures.append(f"{rel}: no sample beside it")
            continue
        sample = json.loads(sample_path.read_text())
        samples += 1
        errors = [e.message for e in validator.iter_errors(sample)]
        if errors:
            failures.append(f"{rel}: its sample is rejected: {errors}")
        if validator.is_valid({**sample, "__not_a_field__": 1}):
            failures.append(f"{rel}: a sample with an unknown field is accepted (schema not closed)")
        for field in schema.get("required", [])[:1]:
            broken = {k: v for k, v in sample.items() if k != field}
            if validator.is_valid(broken):
                failures.append(f"{rel}: a sample without required `{field}` is accepted")
    envelope = root / "envelope.json"
    if envelope.exists():
        try:
            Draft202012Validator.check_schema(json.loads(envelope.read_text()))
        except Exception as e:
            failures.append(f"envelope.json: {e}")
    print(json.dumps({"schemas": schemas, "samples": samples, "failures": failures}))
    return 0 if not failures else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: check_schemas.py <schemas dir>", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(pathlib.Path(sys.argv[1])))
