//! The schema versions of a `schemas/` folder, `<stream>/<type>/v<N>.json`,
//! and the difference between two versions of one type.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use tidings_runtime::schemas::diff::try_check_pair;
use tidings_runtime::schemas::Compat;

/// One type's versions.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Subject {
    /// `<stream or channel>/<type>`.
    pub(crate) subject: String,
    pub(crate) versions: Vec<u32>,
}

/// Every versioned schema of `dir`, by subject. Other files
/// (`envelope.json`, `*.sample.json`, `asyncapi.json`) are left out.
pub(crate) fn subjects(dir: &Path) -> std::io::Result<Vec<Subject>> {
    let mut found: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for topic in std::fs::read_dir(dir)? {
        let topic = topic?;
        if !topic.file_type()?.is_dir() {
            continue;
        }
        for ty in std::fs::read_dir(topic.path())? {
            let ty = ty?;
            if !ty.file_type()?.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(ty.path())? {
                let name = file?.file_name();
                if let Some(v) = version_of(&name.to_string_lossy()) {
                    let subject = format!(
                        "{}/{}",
                        topic.file_name().to_string_lossy(),
                        ty.file_name().to_string_lossy()
                    );
                    found.entry(subject).or_default().push(v);
                }
            }
        }
    }
    Ok(found
        .into_iter()
        .map(|(subject, mut versions)| {
            versions.sort_unstable();
            Subject { subject, versions }
        })
        .collect())
}

/// `v<N>.json` to `N`.
fn version_of(file: &str) -> Option<u32> {
    let digits = file.strip_prefix('v')?.strip_suffix(".json")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Why a diff could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DiffFailure {
    #[error("no version {version} of `{subject}` in the schemas folder")]
    Unknown { subject: String, version: u32 },
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
}

/// The changes from `old` to `new` of `subject`, under BACKWARD (the
/// default mode), with both schemas. The subject and versions are looked
/// up among those listed, so no path from a request reaches the disk.
pub(crate) fn diff(dir: &Path, subject: &str, old: u32, new: u32) -> Result<Value, DiffFailure> {
    let listed = subjects(dir).map_err(|e| DiffFailure::Unreadable {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    let Some(found) = listed.iter().find(|s| s.subject == subject) else {
        return Err(DiffFailure::Unknown {
            subject: subject.to_owned(),
            version: old,
        });
    };
    let read = |v: u32| -> Result<Value, DiffFailure> {
        if !found.versions.contains(&v) {
            return Err(DiffFailure::Unknown {
                subject: subject.to_owned(),
                version: v,
            });
        }
        let path = dir.join(&found.subject).join(format!("v{v}.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| DiffFailure::Unreadable {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| DiffFailure::Unreadable {
            path,
            reason: e.to_string(),
        })
    };
    let (old_schema, new_schema) = (read(old)?, read(new)?);
    let mode = Compat::Backward;
    let report =
        try_check_pair(&old_schema, &new_schema, mode).map_err(|e| DiffFailure::Unreadable {
            path: dir.join(&found.subject),
            reason: e.to_string(),
        })?;
    let changes: Vec<Value> = report
        .changes
        .iter()
        .map(|c| {
            serde_json::json!({
                "change": c.kind.as_str(),
                "pointer": c.pointer,
                "breaking": report.breaking.contains(c),
            })
        })
        .collect();
    Ok(serde_json::json!({
        "subject": subject,
        "old": old,
        "new": new,
        "mode": mode.as_str(),
        "compatible": report.compatible,
        "changes": changes,
        "old_schema": old_schema,
        "new_schema": new_schema,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_schemas() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
    }

    #[test]
    fn lists_the_versions_of_each_type() {
        let listed = subjects(&repo_schemas()).unwrap();
        let file = listed
            .iter()
            .find(|s| s.subject == "contextual/file.uploaded")
            .unwrap();
        assert_eq!(file.versions, [1, 2]);
        assert!(listed.iter().all(|s| !s.subject.contains("envelope")));
    }

    #[test]
    fn diffs_two_versions_and_refuses_what_is_not_listed() {
        let d = diff(&repo_schemas(), "contextual/file.uploaded", 1, 2).unwrap();
        assert_eq!(d["compatible"], true);
        let changes = d["changes"].as_array().unwrap();
        assert!(
            changes
                .iter()
                .any(|c| c["pointer"].as_str().unwrap().contains("mime_type")),
            "{changes:?}"
        );
        assert!(diff(&repo_schemas(), "../../etc/passwd", 1, 2).is_err());
        assert!(diff(&repo_schemas(), "contextual/file.uploaded", 1, 9).is_err());
    }
}
