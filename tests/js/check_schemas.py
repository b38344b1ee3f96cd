"""Reads every schema tidings emitted the way a Python service would.

python-jsonschema's Draft202012Validator checks each payload schema against
the meta-schema, validates its golden sample, and rejects broken samples.
Usage: python check_schemas.py <schemas dir>; prints one JSON line, exits 1 on any failure.
"""
import json
import pathlib
import re
import sys

from jsonschema import Draft202012Validator


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
