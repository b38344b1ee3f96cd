//! `$ref` resolution inside one schema document: JSON Pointers
//! (`#/$defs/Size`, `#/definitions/Size`, `#`), `$anchor`s, and references
//! that repeat the document's own `$id`.

use serde_json::Value;

/// Escapes one JSON Pointer segment (`~` and `/`).
pub(super) fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Appends `segment` to the pointer `base` (`""` is the root).
pub(super) fn child(base: &str, segment: &str) -> String {
    format!("{base}/{}", escape(segment))
}

/// The value at `pointer` (RFC 6901, `""` for the root) in `doc`.
pub(super) fn lookup<'a>(doc: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.is_empty() {
        return Some(doc);
    }
    doc.pointer(pointer)
}

/// Turns the text of a `$ref` into a pointer into this document, or says why
/// it cannot be followed.
pub(super) fn resolve(doc: &Value, reference: &str) -> Result<String, String> {
    // A reference may spell out the document's own `$id` before the fragment.
    let fragment = match reference.split_once('#') {
        Some((base, fragment)) => {
            if !base.is_empty() && Some(base) != root_id(doc) {
                return Err(external(reference));
            }
            fragment
        }
        None if Some(reference) == root_id(doc) => "",
        None => return Err(external(reference)),
    };
    let fragment = percent_decode(fragment)
        .ok_or_else(|| format!("`$ref` `{reference}` is not valid percent-encoding"))?;
    if fragment.is_empty() || fragment.starts_with('/') {
        if lookup(doc, &fragment).is_some() {
            Ok(fragment)
        } else {
            Err(format!(
                "`$ref` `{reference}` points at nothing in this document"
            ))
        }
    } else {
        find_anchor(doc, "", &fragment)
            .ok_or_else(|| format!("`$ref` `{reference}` names no `$anchor` in this document"))
    }
}

fn external(reference: &str) -> String {
    format!(
        "`$ref` `{reference}` points outside this document; only local references \
         (`#/$defs/…`, `#/definitions/…`, `#anchor`) are read"
    )
}

fn root_id(doc: &Value) -> Option<&str> {
    doc.get("$id")
        .and_then(Value::as_str)
        .map(|id| id.trim_end_matches('#'))
}

fn find_anchor(value: &Value, at: &str, anchor: &str) -> Option<String> {
    match value {
        Value::Object(map) => {
            if map.get("$anchor").and_then(Value::as_str) == Some(anchor) {
                return Some(at.to_owned());
            }
            map.iter()
                .find_map(|(key, v)| find_anchor(v, &child(at, key), anchor))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_anchor(v, &child(at, &i.to_string()), anchor)),
        _ => None,
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn local_pointers_anchors_and_own_id_resolve() {
        let doc = json!({
            "$id": "schemas/a/b/v1.json",
            "$defs": { "Size": { "$anchor": "size", "type": "integer" }, "a/b": {} }
        });
        assert_eq!(resolve(&doc, "#/$defs/Size").unwrap(), "/$defs/Size");
        assert_eq!(resolve(&doc, "#").unwrap(), "");
        assert_eq!(resolve(&doc, "#size").unwrap(), "/$defs/Size");
        assert_eq!(resolve(&doc, "#/$defs/a~1b").unwrap(), "/$defs/a~1b");
        assert_eq!(
            resolve(&doc, "schemas/a/b/v1.json#/$defs/Size").unwrap(),
            "/$defs/Size"
        );
    }

    #[test]
    fn missing_and_external_references_are_errors() {
        let doc = json!({ "$defs": {} });
        assert!(resolve(&doc, "#/$defs/Nope")
            .unwrap_err()
            .contains("nothing"));
        assert!(resolve(&doc, "other.json#/x")
            .unwrap_err()
            .contains("outside"));
        assert!(resolve(&doc, "#nope").unwrap_err().contains("$anchor"));
    }
}
