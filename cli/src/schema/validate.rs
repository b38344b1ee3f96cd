//! The data of an event checked against the JSON Schema of its type and
//! version in a `schemas/` tree (`tidings tail --schemas`).

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::tree::Tree;
use crate::Unreadable;

/// What the schema of an entry's type and version says of its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The data is valid.
    Valid,
    /// The data breaks the schema: one line per error, `<json pointer>: <why>`.
    Invalid(Vec<String>),
    /// The tree has no schema for this stream, type and version.
    NoSchema,
}

/// Every versioned schema of a tree, compiled once.
pub(crate) struct Validators {
    by_key: HashMap<(String, String, u32), jsonschema::Validator>,
}

impl std::fmt::Debug for Validators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validators")
            .field("schemas", &self.by_key.len())
            .finish()
    }
}

impl Validators {
    /// Reads and compiles every `<stream>/<type>/v<N>.json` under `root`; a
    /// file that is not a valid JSON Schema is named in the error.
    pub(crate) fn from_dir(root: &Path) -> Result<Self, Unreadable> {
        let tree = Tree::from_dir(root)?;
        let mut by_key = HashMap::with_capacity(tree.versions.len());
        for (key, schema) in &tree.versions {
            let validator = jsonschema::validator_for(schema).map_err(|e| {
                Unreadable(format!(
                    "{} is not a valid JSON Schema: {e}",
                    root.join(key.file()).display()
                ))
            })?;
            by_key.insert(
                (key.topic.clone(), key.type_name.clone(), key.version),
                validator,
            );
        }
        Ok(Validators { by_key })
    }

    /// Checks `data` (the event's payload, as JSON) against the schema of
    /// `type_name` v`version` on `stream`.
    pub(crate) fn check(
        &self,
        stream: &str,
        type_name: &str,
        version: u32,
        data: &Value,
    ) -> Verdict {
        let key = (stream.to_owned(), type_name.to_owned(), version);
        let Some(validator) = self.by_key.get(&key) else {
            return Verdict::NoSchema;
        };
        let errors: Vec<String> = validator
            .iter_errors(data)
            .map(|e| {
                let path = e.instance_path().as_str();
                let at = if path.is_empty() { "/" } else { path };
                format!("{at}: {e}")
            })
            .collect();
        if errors.is_empty() {
            Verdict::Valid
        } else {
            Verdict::Invalid(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": { "file_id": { "type": "string" } },
            "required": ["file_id"],
            "additionalProperties": false
        });
        let path = dir.path().join("contextual/file.uploaded");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("v2.json"), schema.to_string()).unwrap();
        dir
    }

    #[test]
    fn data_is_checked_against_its_type_and_version() {
        let dir = tree();
        let v = Validators::from_dir(dir.path()).unwrap();
        assert_eq!(
            v.check("contextual", "file.uploaded", 2, &json!({"file_id": "f"})),
            Verdict::Valid
        );
        let Verdict::Invalid(errors) = v.check(
            "contextual",
            "file.uploaded",
            2,
            &json!({"file_id": 7, "x": 1}),
        ) else {
            panic!("invalid data passed");
        };
        assert!(
            errors.iter().any(|e| e.starts_with("/file_id: ")),
            "{errors:?}"
        );
        assert!(errors.iter().any(|e| e.contains("'x'")), "{errors:?}");
        assert_eq!(
            v.check("contextual", "file.uploaded", 3, &json!({})),
            Verdict::NoSchema
        );
        assert_eq!(
            v.check("other", "file.uploaded", 2, &json!({})),
            Verdict::NoSchema
        );
    }

    #[test]
    fn a_schema_that_does_not_compile_is_named() {
        let dir = tree();
        let path = dir.path().join("contextual/file.uploaded/v3.json");
        std::fs::write(&path, r#"{"type": 12}"#).unwrap();
        let error = Validators::from_dir(dir.path()).unwrap_err();
        assert!(error.0.contains("v3.json"), "{}", error.0);
    }
}
