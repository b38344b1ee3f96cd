//! A `schemas/` tree, `<topic>/<type>/v<N>.json`, read from a directory or
//! from a git revision, with the compatibility mode of each version that
//! `asyncapi.json` names. Every other file (`envelope.json`,
//! `*.sample.json`, files at other depths) is not a versioned schema and is
//! left out.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tidings_runtime::schemas::Compat;

use super::parse_json;
use crate::Unreadable;

/// Which version of which type a file holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct VersionKey {
    pub(super) topic: String,
    pub(super) type_name: String,
    pub(super) version: u32,
}

impl VersionKey {
    /// Reads `<topic>/<type>/v<N>.json`.
    fn parse(relative: &str) -> Option<Self> {
        let parts: Vec<&str> = relative.split('/').collect();
        let [topic, type_name, file] = parts[..] else {
            return None;
        };
        let digits = file.strip_prefix('v')?.strip_suffix(".json")?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(VersionKey {
            topic: topic.to_owned(),
            type_name: type_name.to_owned(),
            version: digits.parse().ok()?,
        })
    }

    pub(super) fn subject(&self) -> String {
        format!("{}/{}", self.topic, self.type_name)
    }

    pub(super) fn file(&self) -> String {
        format!("{}/v{}.json", self.subject(), self.version)
    }

    pub(super) fn same_type(&self, other: &VersionKey) -> bool {
        self.topic == other.topic && self.type_name == other.type_name
    }
}

#[derive(Debug, Default)]
pub(super) struct Tree {
    pub(super) versions: BTreeMap<VersionKey, Value>,
    /// The mode of each (type, version) that `asyncapi.json` names.
    pub(super) modes: BTreeMap<(String, u32), Compat>,
}

/// The file of the tree that names each version's mode.
const ASYNCAPI: &str = "asyncapi.json";

impl Tree {
    pub(super) fn from_dir(root: &Path) -> Result<Self, Unreadable> {
        if !root.is_dir() {
            return Err(Unreadable(format!(
                "{} is not a directory of schemas",
                root.display()
            )));
        }
        let mut tree = Tree::default();
        tree.walk(root, root)?;
        let asyncapi = root.join(ASYNCAPI);
        if asyncapi.is_file() {
            let text = fs::read_to_string(&asyncapi)
                .map_err(|e| Unreadable(format!("cannot read {}: {e}", asyncapi.display())))?;
            tree.modes = modes(&asyncapi.display().to_string(), &text)?;
        }
        Ok(tree)
    }

    fn walk(&mut self, root: &Path, dir: &Path) -> Result<(), Unreadable> {
        let entries = fs::read_dir(dir)
            .map_err(|e| Unreadable(format!("cannot read {}: {e}", dir.display())))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| Unreadable(format!("cannot read {}: {e}", dir.display())))?;
            let path = entry.path();
            if path.is_dir() {
                self.walk(root, &path)?;
                continue;
            }
            let Ok(relative) = path.strip_prefix(root) else {
                continue;
            };
            let relative: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if let Some(key) = VersionKey::parse(&relative.join("/")) {
                let text = fs::read_to_string(&path)
                    .map_err(|e| Unreadable(format!("cannot read {}: {e}", path.display())))?;
                let value = parse_json(&path.display().to_string(), &text)?;
                self.versions.insert(key, value);
            }
        }
        Ok(())
    }

    /// The tree as it is at `revision`, read with
    /// `git ls-tree -r --name-only <revision> -- .` and
    /// `git show <revision>:./<path>` inside `schemas`.
    pub(super) fn from_git(schemas: &Path, revision: &str) -> Result<Self, Unreadable> {
        if !schemas.is_dir() {
            return Err(Unreadable(format!(
                "{} is not a directory of schemas (needed to find the git repository for `{revision}`)",
                schemas.display()
            )));
        }
        git(schemas, &["rev-parse", "--verify", "--quiet", &format!("{revision}^{{commit}}")]).map_err(|_| {
            Unreadable(format!("`{revision}` is neither a directory nor a git revision of the repository holding {}", schemas.display()))
        })?;
        let listing = git(
            schemas,
            &["ls-tree", "-r", "--name-only", revision, "--", "."],
        )?;
        let mut tree = Tree::default();
        for relative in listing.lines() {
            if relative == ASYNCAPI {
                let text = git(schemas, &["show", &format!("{revision}:./{relative}")])?;
                tree.modes = modes(&format!("{revision}:{relative}"), &text)?;
                continue;
            }
            let Some(key) = VersionKey::parse(relative) else {
                continue;
            };
            let text = git(schemas, &["show", &format!("{revision}:./{relative}")])?;
            let value = parse_json(&format!("{revision}:{relative}"), &text)?;
            tree.versions.insert(key, value);
        }
        Ok(tree)
    }
}

/// The `x-tidings-compat` of each message of an AsyncAPI document written
/// by tidings, by the message's type (`name`) and `x-tidings-dataversion`.
/// Messages without them (written by hand, or by another tool) name no mode.
fn modes(name: &str, text: &str) -> Result<BTreeMap<(String, u32), Compat>, Unreadable> {
    let doc = parse_json(name, text)?;
    let mut out = BTreeMap::new();
    let Some(messages) = doc
        .pointer("/components/messages")
        .and_then(Value::as_object)
    else {
        return Ok(out);
    };
    for (id, message) in messages {
        let (Some(type_name), Some(version), Some(mode)) = (
            message.get("name").and_then(Value::as_str),
            message.get("x-tidings-dataversion").and_then(Value::as_u64),
            message.get("x-tidings-compat"),
        ) else {
            continue;
        };
        let mode = mode
            .as_str()
            .ok_or_else(|| format!("must be a string, found {mode}"))
            .and_then(|m| m.parse::<Compat>().map_err(|e| e.to_string()))
            .map_err(|e| {
                Unreadable(format!("{name}: `x-tidings-compat` of message `{id}`: {e}"))
            })?;
        let Ok(version) = u32::try_from(version) else {
            continue;
        };
        out.insert((type_name.to_owned(), version), mode);
    }
    Ok(out)
}

fn git(dir: &Path, args: &[&str]) -> Result<String, Unreadable> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| Unreadable(format!("cannot run git: {e}")))?;
    if !output.status.success() {
        return Err(Unreadable(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    String::from_utf8(output.stdout).map_err(|_| {
        Unreadable(format!(
            "git {} printed something that is not UTF-8",
            args.join(" ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::VersionKey;

    #[test]
    fn only_versioned_files_at_depth_three_are_schemas() {
        let key = VersionKey::parse("contextual/file.uploaded/v12.json").unwrap();
        assert_eq!(
            (key.topic.as_str(), key.type_name.as_str(), key.version),
            ("contextual", "file.uploaded", 12)
        );
        for other in [
            "envelope.json",
            "asyncapi.json",
            "contextual/file.uploaded/v1.sample.json",
            "contextual/file.uploaded/v.json",
            "contextual/file.uploaded/vx.json",
            "a/b/c/v1.json",
            "contextual/v1.json",
        ] {
            assert!(VersionKey::parse(other).is_none(), "{other}");
        }
    }
}
