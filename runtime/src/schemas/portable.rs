//! What makes an emitted schema readable by other languages' validators as
//! they come: integer widths written as `minimum`/`maximum`, and only the
//! `format`s those validators know.
//!
//! schemars names the width and signedness of an integer in `format`
//! (`uint64`, `uint32`, `int8`, `uint`, …). Validators treat a format they
//! do not know as free text (python-jsonschema), or refuse the schema (Ajv
//! in its default, strict mode: `unknown format "uint64"`); the schema
//! checker compares no formats at all. So a `u64` field narrowed to `u32`
//! looked unchanged to every tool, while the Rust reader of the new version
//! rejects old payloads above `u32::MAX`. Written as bounds, the width is
//! what every validator enforces and what the checker compares
//! (`MAXIMUM_DECREASED`, `MINIMUM_INCREASED`, …).
//!
//! Bounds are written as exact JSON integers: `u64::MAX` is
//! `18446744073709551615`, not a rounded float. Widths past 64 bits (`u128`,
//! `i128`) keep only the bound that fits (`minimum: 0` for `u128`).

use serde_json::{Map, Number, Value};

/// The keyword of the compatibility mode in schemas written before the mode
/// moved to `asyncapi.json` (see [`crate::schemas::export::asyncapi`]).
///
/// Validators in strict mode refuse unknown keywords, so the payload schemas
/// no longer carry it; it is still read from committed files that do.
pub const LEGACY_COMPAT_KEYWORD: &str = "x-tidings-compat";

/// The formats that every emitted schema may use: those `ajv-formats` (the
/// usual format plugin of Ajv) defines. `int32`, `int64`, `float` and
/// `double` are among them; any other format is dropped from emitted
/// schemas, since a strict validator would refuse the whole schema for it.
pub const KNOWN_FORMATS: &[&str] = &[
    "date",
    "time",
    "date-time",
    "iso-time",
    "iso-date-time",
    "duration",
    "uri",
    "uri-reference",
    "uri-template",
    "url",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "regex",
    "uuid",
    "json-pointer",
    "json-pointer-uri-fragment",
    "relative-json-pointer",
    "byte",
    "int32",
    "int64",
    "float",
    "double",
    "password",
    "binary",
];

/// The range of an integer format written by schemars: lowest and highest
/// value, each when it fits a JSON integer that serde_json writes exactly.
fn integer_range(format: &str) -> Option<(Option<Number>, Option<Number>)> {
    fn n(v: impl Into<Number>) -> Option<Number> {
        Some(v.into())
    }
    Some(match format {
        "int8" => (n(i8::MIN), n(i8::MAX)),
        "int16" => (n(i16::MIN), n(i16::MAX)),
        "int32" => (n(i32::MIN), n(i32::MAX)),
        // `isize` is described as 64 bits wide whatever the platform that
        // writes the schema, so that the file does not depend on it.
        "int64" | "int" => (n(i64::MIN), n(i64::MAX)),
        "int128" => (None, None),
        "uint8" => (n(0u8), n(u8::MAX)),
        "uint16" => (n(0u8), n(u16::MAX)),
        "uint32" => (n(0u8), n(u32::MAX)),
        "uint64" | "uint" => (n(0u8), n(u64::MAX)),
        "uint128" => (n(0u8), None),
        _ => return None,
    })
}

/// Rewrites `schema` and every subschema in it for other languages'
/// validators: an integer `format` becomes `minimum`/`maximum` (the tighter
/// of those already there and the width's), and a `format` outside
/// [`KNOWN_FORMATS`] is dropped.
///
/// Idempotent: applied to its own output it changes nothing.
///
/// ```
/// use serde_json::json;
/// use tidings_runtime::schemas::portable::make_portable;
///
/// let mut schema = json!({"type": "object", "properties": {
///     "size": {"type": "integer", "format": "uint64", "minimum": 0},
///     "delta": {"type": ["integer", "null"], "format": "int32"}
/// }});
/// make_portable(&mut schema);
/// assert_eq!(schema["properties"]["size"],
///            json!({"type": "integer", "minimum": 0, "maximum": 18446744073709551615u64}));
/// assert_eq!(schema["properties"]["delta"],
///            json!({"type": ["integer", "null"], "format": "int32",
///                   "minimum": -2147483648, "maximum": 2147483647}));
/// ```
pub fn make_portable(schema: &mut Value) {
    walk(schema, 0);
}

/// A committed payload schema as this release writes it: without the legacy
/// [`LEGACY_COMPAT_KEYWORD`] and after [`make_portable`].
///
/// Two schemas with equal normal forms describe the same payloads, so a
/// committed version written by an older release is not a changed version.
pub fn normalize(schema: &Value) -> Value {
    let mut out = schema.clone();
    if let Some(root) = out.as_object_mut() {
        root.shift_remove(LEGACY_COMPAT_KEYWORD);
    }
    make_portable(&mut out);
    out
}

/// Deep enough for any schema schemars writes; past it, a schema is left as
/// it is rather than risk the stack.
const MAX_DEPTH: usize = 128;

fn walk(schema: &mut Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    fix_format(obj);
    for (key, child) in obj.iter_mut() {
        match key.as_str() {
            // One subschema.
            "items"
            | "additionalItems"
            | "additionalProperties"
            | "unevaluatedItems"
            | "unevaluatedProperties"
            | "contains"
            | "propertyNames"
            | "not"
            | "if"
            | "then"
            | "else" => match child {
                // Draft-07's array form of `items`.
                Value::Array(list) => list.iter_mut().for_each(|s| walk(s, depth + 1)),
                other => walk(other, depth + 1),
            },
            // A list of subschemas.
            "prefixItems" | "allOf" | "anyOf" | "oneOf" => {
                if let Value::Array(list) = child {
                    list.iter_mut().for_each(|s| walk(s, depth + 1));
                }
            }
            // Subschemas by name.
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                if let Value::Object(map) = child {
                    map.values_mut().for_each(|s| walk(s, depth + 1));
                }
            }
            // Draft-07 `dependencies`: a schema or a list of names per key.
            "dependencies" => {
                if let Value::Object(map) = child {
                    map.values_mut()
                        .filter(|s| s.is_object())
                        .for_each(|s| walk(s, depth + 1));
                }
            }
            // `const`, `enum`, `default`, `examples`: data, not schemas.
            _ => {}
        }
    }
}

/// Whether the schema constrains integers (or says nothing of its type).
fn admits_integers(obj: &Map<String, Value>) -> bool {
    match obj.get("type") {
        None => true,
        Some(Value::String(t)) => t == "integer" || t == "number",
        Some(Value::Array(ts)) => ts
            .iter()
            .any(|t| t.as_str() == Some("integer") || t.as_str() == Some("number")),
        Some(_) => false,
    }
}

fn fix_format(obj: &mut Map<String, Value>) {
    let Some(format) = obj.get("format").and_then(Value::as_str).map(str::to_owned) else {
        return;
    };
    let range = integer_range(&format).filter(|_| admits_integers(obj));
    let keep = KNOWN_FORMATS.contains(&format.as_str());
    let Some((low, high)) = range else {
        if !keep {
            obj.shift_remove("format");
        }
        return;
    };
    let minimum = tighter(obj.get("minimum"), low, true);
    let maximum = tighter(obj.get("maximum"), high, false);
    // The bounds take the place of the format, so that the keys still read
    // in schemars' order: type, (format,) bounds, then the rest.
    let old = std::mem::take(obj);
    for (key, value) in old {
        match key.as_str() {
            "minimum" | "maximum" => {}
            "format" => {
                if keep {
                    obj.insert(key, value);
                }
                if let Some(m) = minimum.clone() {
                    obj.insert("minimum".to_owned(), m);
                }
                if let Some(m) = maximum.clone() {
                    obj.insert("maximum".to_owned(), m);
                }
            }
            _ => {
                obj.insert(key, value);
            }
        }
    }
}

/// The tighter of a bound already written and the width's: the larger
/// minimum (`lower`) or the smaller maximum. A bound that is not a number is
/// kept as it is, for the checker to report.
fn tighter(existing: Option<&Value>, width: Option<Number>, lower: bool) -> Option<Value> {
    match (existing, width) {
        (None, None) => None,
        (Some(e), None) => Some(e.clone()),
        (None, Some(w)) => Some(Value::Number(w)),
        (Some(Value::Number(e)), Some(w)) => {
            let e_is_tighter = match compare(e, &w) {
                Some(std::cmp::Ordering::Greater) => lower,
                Some(std::cmp::Ordering::Less) => !lower,
                _ => true,
            };
            Some(Value::Number(if e_is_tighter { e.clone() } else { w }))
        }
        (Some(e), Some(_)) => Some(e.clone()),
    }
}

/// Compares two JSON numbers exactly: integers as integers (so that
/// `18446744073709551615` and `18446744073709551614` differ, which they do
/// not as `f64`), a float against an integer without rounding the integer.
pub fn compare(a: &Number, b: &Number) -> Option<std::cmp::Ordering> {
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        (Some(x), None) => b.as_f64().and_then(|y| int_vs_float(x, y)),
        (None, Some(y)) => a
            .as_f64()
            .and_then(|x| int_vs_float(y, x))
            .map(std::cmp::Ordering::reverse),
        (None, None) => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn as_int(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// `x` (an integer) against `y` (a float), exactly.
fn int_vs_float(x: i128, y: f64) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    if y.is_nan() {
        return None;
    }
    // Every JSON integer serde_json holds lies within ±2^64, far inside
    // these limits, where `floor` converts to i128 exactly.
    if y >= 1e38 {
        return Some(Less);
    }
    if y <= -1e38 {
        return Some(Greater);
    }
    let floor = y.floor();
    let whole = floor as i128;
    Some(if x < whole {
        Less
    } else if x > whole {
        Greater
    } else if floor == y {
        Equal
    } else {
        Less
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_integer_width_becomes_exact_bounds() {
        for (format, min, max) in [
            ("int8", json!(-128), json!(127)),
            ("int16", json!(-32768), json!(32767)),
            ("int32", json!(-2147483648i64), json!(2147483647)),
            ("int64", json!(i64::MIN), json!(i64::MAX)),
            ("int", json!(i64::MIN), json!(i64::MAX)),
            ("uint8", json!(0), json!(255)),
            ("uint16", json!(0), json!(65535)),
            ("uint32", json!(0), json!(4294967295u64)),
            ("uint64", json!(0), json!(u64::MAX)),
            ("uint", json!(0), json!(u64::MAX)),
        ] {
            let mut s = json!({"type": "integer", "format": format});
            make_portable(&mut s);
            assert_eq!(s["minimum"], min, "{format}");
            assert_eq!(s["maximum"], max, "{format}");
            let kept = s.get("format").is_some();
            assert_eq!(kept, KNOWN_FORMATS.contains(&format), "{format}");
        }
        let text = serde_json::to_string(&{
            let mut s = json!({"type": "integer", "format": "uint64"});
            make_portable(&mut s);
            s
        })
        .unwrap();
        assert!(text.contains("\"maximum\":18446744073709551615}"), "{text}");
    }

    #[test]
    fn wider_than_64_bits_keeps_only_what_fits() {
        let mut s = json!({"type": "integer", "format": "uint128", "minimum": 0});
        make_portable(&mut s);
        assert_eq!(s, json!({"type": "integer", "minimum": 0}));
        let mut s = json!({"type": "integer", "format": "int128"});
        make_portable(&mut s);
        assert_eq!(s, json!({"type": "integer"}));
    }

    #[test]
    fn tighter_bounds_already_written_are_kept() {
        // NonZeroU32 (`minimum: 1`), and a user's `range(max = 10)`.
        let mut s = json!({"type": "integer", "format": "uint32", "minimum": 1, "maximum": 10});
        make_portable(&mut s);
        assert_eq!(s, json!({"type": "integer", "minimum": 1, "maximum": 10}));
        let mut s = json!({"type": "integer", "format": "uint8", "minimum": -5, "maximum": 900});
        make_portable(&mut s);
        assert_eq!(s, json!({"type": "integer", "minimum": 0, "maximum": 255}));
    }

    #[test]
    fn every_place_a_subschema_lives_is_walked() {
        let int = || json!({"type": "integer", "format": "uint16"});
        let mut s = json!({
            "properties": {"a": int(), "format": int()},
            "items": int(),
            "prefixItems": [int(), {"type": "string", "format": "ip"}],
            "additionalProperties": int(),
            "anyOf": [int(), {"type": "null"}],
            "oneOf": [{"$ref": "#/$defs/X"}, int()],
            "$defs": {"X": {"properties": {"deep": {"items": int()}}}},
            "const": {"format": "uint16"},
            "enum": [{"format": "uint8"}],
        });
        make_portable(&mut s);
        let text = serde_json::to_string(&s).unwrap();
        // The one `uint16` left is the `const`'s.
        assert_eq!(text.matches("\"uint16\"").count(), 1, "{text}");
        assert_eq!(text.matches("65535").count(), 8, "{text}");
        assert_eq!(s["prefixItems"][1], json!({"type": "string"}));
        // Data is data: `const` and `enum` are left alone.
        assert_eq!(s["const"], json!({"format": "uint16"}));
        assert_eq!(s["enum"], json!([{"format": "uint8"}]));
    }

    #[test]
    fn known_formats_stay_and_the_pass_is_idempotent() {
        let mut s = json!({"type": "object", "properties": {
            "at": {"type": "string", "format": "date-time"},
            "ratio": {"type": "number", "format": "double"},
            "n": {"type": "integer", "format": "int64", "description": "d"}
        }});
        make_portable(&mut s);
        let once = s.clone();
        make_portable(&mut s);
        assert_eq!(s, once);
        assert_eq!(s["properties"]["at"]["format"], "date-time");
        assert_eq!(s["properties"]["ratio"]["format"], "double");
        let keys: Vec<&String> = s["properties"]["n"].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["type", "format", "minimum", "maximum", "description"]
        );
    }

    #[test]
    fn normal_form_drops_the_legacy_mode_keyword() {
        let legacy = json!({"x-tidings-compat": "full", "type": "object",
                            "properties": {"n": {"type": "integer", "format": "uint32", "minimum": 0}}});
        let current = json!({"type": "object",
                             "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 4294967295u64}}});
        assert_eq!(normalize(&legacy), current);
        assert_eq!(normalize(&current), current);
    }

    #[test]
    fn numbers_compare_exactly() {
        use std::cmp::Ordering::*;
        let n = |v: Value| match v {
            Value::Number(n) => n,
            _ => unreachable!(),
        };
        assert_eq!(
            compare(&n(json!(u64::MAX)), &n(json!(u64::MAX - 1))),
            Some(Greater)
        );
        assert_eq!(
            compare(&n(json!(i64::MIN)), &n(json!(i64::MIN + 1))),
            Some(Less)
        );
        assert_eq!(compare(&n(json!(3)), &n(json!(3.0))), Some(Equal));
        assert_eq!(compare(&n(json!(3)), &n(json!(3.5))), Some(Less));
        assert_eq!(compare(&n(json!(-3)), &n(json!(-3.5))), Some(Greater));
        // 2^64 as a float is above u64::MAX, which rounds to it as an f64.
        assert_eq!(
            compare(&n(json!(u64::MAX)), &n(json!(18446744073709551616.0))),
            Some(Less)
        );
        assert_eq!(compare(&n(json!(1.5)), &n(json!(2.5))), Some(Less));
    }
}
