//! The check that keeps `schemas/` honest, run from the user's own tests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::diff::{self, Change};
use super::export;
use crate::compat::Compat;
use crate::error::DecodeError;
use crate::event::Event;
use crate::registry::{self, DecodeFn, EventInfo, RegistryError};

/// Environment variable that turns the check into a writer:
/// `TIDINGS_SCHEMAS=overwrite cargo test`.
pub const ENV: &str = "TIDINGS_SCHEMAS";

/// Checks (or, with `TIDINGS_SCHEMAS=overwrite`, writes) the `schemas/`
/// folder for every event registered in this binary.
///
/// Put it in a test of the crate that declares the events:
///
/// ```no_run
/// #[test]
/// fn schemas_are_committed_and_compatible() {
///     tidings::schemas::check("schemas").unwrap();
/// }
/// ```
///
/// See [`Check`] for what it verifies, and to give golden samples or to
/// restrict it to some events.
pub fn check(dir: impl AsRef<Path>) -> Result<Summary, CheckError> {
    Check::new(dir).run()
}

/// What [`Check::run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Event versions checked.
    pub versions: usize,
    /// Files written (overwrite mode only), relative to the folder.
    pub written: Vec<String>,
    /// Files removed as stale (overwrite mode only), relative to the folder.
    pub removed: Vec<String>,
}

/// The check of a `schemas/` folder against the events of this binary.
///
/// It fails, naming each problem, when:
///
/// - a committed `(type, version)` schema differs from what the code produces
///   (a published version is frozen: change the struct under a new version);
/// - a new version breaks compatibility with the older ones under the
///   event's `compat` mode (backward by default);
/// - a committed version has no decode path to the current type (its struct
///   left the `upcast_from` chain);
/// - a golden sample (`v<N>.sample.json`) does not decode into the current type;
/// - a file is missing, or stale (no event produces it any more).
///
/// With `TIDINGS_SCHEMAS=overwrite` (or [`Check::overwrite`]) it writes the
/// missing and changed files, and removes stale ones, instead of failing on
/// them; incompatible versions, lost decode paths and samples that no longer
/// decode still fail. Rewriting a version that other services already read
/// is caught where it matters, in review and by
/// `tidings schema check --against <main>` in CI, which compares the trees.
#[derive(Debug)]
pub struct Check {
    dir: PathBuf,
    namespace: String,
    overwrite: bool,
    samples: BTreeMap<(&'static str, u32), Value>,
    decoders: BTreeMap<(&'static str, u32), DecodeFn>,
    filter: Option<fn(&EventInfo) -> bool>,
}

impl Check {
    /// A check of `dir` (relative paths are relative to the crate root when
    /// run by `cargo test`). Overwrite mode follows `TIDINGS_SCHEMAS`.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Check {
            dir: dir.as_ref().to_path_buf(),
            namespace: export::DEFAULT_NAMESPACE.to_owned(),
            overwrite: std::env::var(ENV)
                .map(|v| v == "overwrite")
                .unwrap_or(false),
            samples: BTreeMap::new(),
            decoders: BTreeMap::new(),
            filter: None,
        }
    }

    /// Writes instead of failing on missing, changed and stale files.
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// Key namespace named in `asyncapi.json` (default `tidings`).
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = ns.into();
        self
    }

    /// The golden sample of `E`'s version, written as `v<N>.sample.json` when
    /// the file does not exist yet. Without one, a sample is built from the
    /// schema. A committed sample is never rewritten: like the schema, it is
    /// what old writers sent, and every later reader must still decode it.
    ///
    /// It also supplies `E`'s decoder, as [`Check::decoder`] does.
    pub fn sample<E: Event>(mut self, event: &E) -> Self {
        let value = serde_json::to_value(event).unwrap_or(Value::Null);
        self.samples.insert((E::TYPE, E::VERSION), value);
        self.decoder::<E>()
    }

    /// Supplies `E`'s decoder, to decode the committed samples of its type.
    ///
    /// `#[event]` registers decoders only in test builds of the crate that
    /// declares the event (see [`EventInfo::decode`]). A check run from that
    /// crate's own tests, or of events declared in the test itself, needs no
    /// call; a check in another crate (an integration test under `tests/`,
    /// say) names the current version of each type that has samples,
    /// through this or [`Check::sample`]. The check fails on a committed
    /// sample it has no decoder for, rather than skip it.
    ///
    /// ```
    /// # #[tidings::event(stream = "contextual", version = 1)]
    /// # struct FileUploaded { file_id: String }
    /// let check = tidings::schemas::Check::new("schemas").decoder::<FileUploaded>();
    /// ```
    pub fn decoder<E: Event>(mut self) -> Self {
        self.decoders
            .insert((E::TYPE, E::VERSION), crate::registry::decode_erased::<E>);
        self
    }

    /// Checks only the events for which `keep` is true (by default, every
    /// event registered in the binary).
    pub fn only(mut self, keep: fn(&EventInfo) -> bool) -> Self {
        self.filter = Some(keep);
        self
    }

    /// Runs the check.
    pub fn run(self) -> Result<Summary, CheckError> {
        let infos: Vec<&'static EventInfo> = registry::sorted()
            .into_iter()
            .filter(|i| self.filter.is_none_or(|f| f(i)))
            .collect();
        let mut problems = Vec::new();
        if let Err(errs) = registry::check_infos(&infos) {
            problems.extend(errs.into_iter().map(Problem::Registry));
        }
        let mut summary = Summary {
            versions: infos.len(),
            ..Summary::default()
        };

        let produced = export::files(&infos, &self.namespace);
        let committed = match read_tree(&self.dir) {
            Ok(c) => c,
            Err(p) => {
                return Err(CheckError {
                    dir: self.dir,
                    problems: vec![p],
                })
            }
        };

        // Every produced file: present and equal, or written.
        for (rel, value) in &produced {
            let text = export::to_file_text(value);
            let versioned = infos.iter().find(|i| &export::schema_path(i) == rel);
            match committed.get(rel) {
                Some(old) if *old == text => {}
                Some(_) if self.overwrite => {
                    self.write(rel, &text, &mut problems);
                    summary.written.push(rel.clone());
                }
                Some(old) => match versioned {
                    Some(info) => problems.push(changed(info, rel, old, value)),
                    None => problems.push(Problem::Outdated { path: rel.clone() }),
                },
                None if self.overwrite => {
                    self.write(rel, &text, &mut problems);
                    summary.written.push(rel.clone());
                }
                None => problems.push(Problem::Missing { path: rel.clone() }),
            }
        }

        // Golden samples: one per version, kept once written.
        for info in &infos {
            let rel = export::sample_path(info);
            if committed.contains_key(&rel) {
                continue;
            }
            if self.overwrite {
                let value = self
                    .samples
                    .get(&(info.type_name, info.version))
                    .cloned()
                    .unwrap_or_else(|| export::synthesize_sample(&(info.schema)()));
                self.write(&rel, &export::to_file_text(&value), &mut problems);
                summary.written.push(rel);
            } else {
                problems.push(Problem::Missing { path: rel });
            }
        }

        // Committed versions: each still decodes into the current type.
        let current: BTreeMap<&str, &EventInfo> = infos
            .iter()
            .filter(|i| {
                !infos
                    .iter()
                    .any(|o| o.type_name == i.type_name && o.upcast_from == Some(i.version))
            })
            .map(|i| (i.type_name, *i))
            .collect();
        let topics: BTreeSet<&str> = infos.iter().map(|i| i.topic()).collect();
        let mut undecoded: BTreeMap<(&'static str, &'static str), Vec<String>> = BTreeMap::new();
        for (rel, text) in &committed {
            let Some((topic, type_name, version, is_sample)) = parse_versioned(rel) else {
                if !produced.contains_key(rel) && (rel == "envelope.json" || rel == "asyncapi.json")
                {
                    problems.push(Problem::Stale { path: rel.clone() });
                }
                continue;
            };
            let Some(cur) = current.get(type_name) else {
                if topics.contains(topic) || self.filter.is_none() {
                    self.stale(rel, &mut problems, &mut summary);
                }
                continue;
            };
            if cur.topic() != topic {
                self.stale(rel, &mut problems, &mut summary);
                continue;
            }
            let known = cur.versions();
            if !known.contains(&version) {
                problems.push(Problem::NoDecodePath {
                    type_name: cur.type_name,
                    version,
                    current: cur.rust_name,
                    known,
                });
                continue;
            }
            if is_sample {
                let decoder = cur
                    .decode
                    .or_else(|| self.decoders.get(&(cur.type_name, cur.version)).copied());
                match decoder {
                    Some(decode) => {
                        if let Err(error) = decode(version, text.as_bytes()) {
                            problems.push(Problem::SampleDoesNotDecode {
                                path: rel.clone(),
                                current: cur.rust_name,
                                error,
                            });
                        }
                    }
                    None => undecoded
                        .entry((cur.type_name, cur.rust_name))
                        .or_default()
                        .push(rel.clone()),
                }
            }
        }
        for ((type_name, current), samples) in undecoded {
            problems.push(Problem::NoDecoder {
                type_name,
                current,
                samples,
            });
        }

        // Compatibility of each type's versions under its mode.
        for cur in current.values() {
            let mut history = cur.history();
            history.reverse();
            let schemas: Vec<Value> = history.iter().map(|i| (i.schema)()).collect();
            let refs: Vec<&Value> = schemas.iter().collect();
            for (old, new, report) in diff::check_history(&refs, cur.compat) {
                if !report.compatible {
                    problems.push(Problem::Incompatible {
                        type_name: cur.type_name,
                        old: history[old].version,
                        new: history[new].version,
                        mode: cur.compat,
                        changes: report.breaking,
                    });
                }
            }
        }

        if problems.is_empty() {
            Ok(summary)
        } else {
            Err(CheckError {
                dir: self.dir,
                problems,
            })
        }
    }

    fn write(&self, rel: &str, text: &str, problems: &mut Vec<Problem>) {
        let path = self.dir.join(rel);
        let res = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        if let Err(e) = res {
            problems.push(Problem::Io {
                path: path.display().to_string(),
                error: e.to_string(),
            });
        }
    }

    fn stale(&self, rel: &str, problems: &mut Vec<Problem>, summary: &mut Summary) {
        if self.overwrite {
            match std::fs::remove_file(self.dir.join(rel)) {
                Ok(()) => summary.removed.push(rel.to_owned()),
                Err(e) => problems.push(Problem::Io {
                    path: rel.to_owned(),
                    error: e.to_string(),
                }),
            }
        } else {
            problems.push(Problem::Stale {
                path: rel.to_owned(),
            });
        }
    }
}

fn changed(info: &EventInfo, rel: &str, old: &str, new: &Value) -> Problem {
    let changes = match serde_json::from_str::<Value>(old) {
        Ok(old) => diff::diff(&old, new),
        Err(_) => Vec::new(),
    };
    Problem::Frozen {
        type_name: info.type_name,
        version: info.version,
        path: rel.to_owned(),
        changes,
    }
}

/// `<topic>/<type>/v<N>.json` or `<topic>/<type>/v<N>.sample.json`.
fn parse_versioned(rel: &str) -> Option<(&str, &str, u32, bool)> {
    let mut parts = rel.split('/');
    let (topic, type_name, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (stem, sample) = match file.strip_suffix(".sample.json") {
        Some(s) => (s, true),
        None => (file.strip_suffix(".json")?, false),
    };
    let version = stem.strip_prefix('v')?.parse().ok()?;
    Some((topic, type_name, version, sample))
}

fn read_tree(dir: &Path) -> Result<BTreeMap<String, String>, Problem> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Problem::Io {
            path: d.display().to_string(),
            error: e.to_string(),
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| Problem::Io {
                path: d.display().to_string(),
                error: e.to_string(),
            })?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                let text = std::fs::read_to_string(&path).map_err(|e| Problem::Io {
                    path: path.display().to_string(),
                    error: e.to_string(),
                })?;
                out.insert(rel, text);
            }
        }
    }
    Ok(out)
}

/// One thing wrong with a `schemas/` folder.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Problem {
    /// Conflicting `#[event]` declarations.
    Registry(RegistryError),
    /// A file the code produces is not committed.
    Missing {
        /// Path relative to the folder.
        path: String,
    },
    /// A file that no event produces any more.
    Stale {
        /// Path relative to the folder.
        path: String,
    },
    /// `envelope.json` or `asyncapi.json` differs from what the code produces.
    Outdated {
        /// Path relative to the folder.
        path: String,
    },
    /// A committed version's schema differs from what its struct produces.
    Frozen {
        /// Type name.
        type_name: &'static str,
        /// The version.
        version: u32,
        /// Path relative to the folder.
        path: String,
        /// What changed, committed → code.
        changes: Vec<Change>,
    },
    /// A new version breaks the type's compatibility mode.
    Incompatible {
        /// Type name.
        type_name: &'static str,
        /// The older version.
        old: u32,
        /// The newer version.
        new: u32,
        /// The mode that was broken.
        mode: Compat,
        /// The breaking changes.
        changes: Vec<Change>,
    },
    /// A committed version that the current struct cannot decode.
    NoDecodePath {
        /// Type name.
        type_name: &'static str,
        /// The committed version.
        version: u32,
        /// The current struct.
        current: &'static str,
        /// The versions it decodes.
        known: Vec<u32>,
    },
    /// A golden sample that the current struct fails to decode.
    SampleDoesNotDecode {
        /// Path relative to the folder.
        path: String,
        /// The current struct.
        current: &'static str,
        /// Why.
        error: DecodeError,
    },
    /// Committed samples of a type whose decoder this binary lacks (see
    /// [`Check::decoder`]).
    NoDecoder {
        /// Type name.
        type_name: &'static str,
        /// The current struct.
        current: &'static str,
        /// The samples left undecoded, relative to the folder.
        samples: Vec<String>,
    },
    /// A file that could not be read or written.
    Io {
        /// The path.
        path: String,
        /// What the system said.
        error: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Registry(e) => write!(f, "{e}"),
            Problem::Missing { path } => write!(f, "{path} is missing: the code produces it but it is not committed"),
            Problem::Stale { path } => write!(f, "{path} is stale: no event of this binary produces it"),
            Problem::Outdated { path } => write!(f, "{path} is out of date"),
            Problem::Frozen { type_name, version, path, changes } => {
                write!(
                    f,
                    "`{type_name}` v{version} is published and frozen, but the struct now produces another schema than {path}; \
                     declare the change as v{next} (`version = {next}`, `upcast_from` the old struct) or restore the struct \
                     (if v{version} was never released, `{ENV}=overwrite cargo test` rewrites it)",
                    next = version + 1,
                )?;
                for c in changes {
                    write!(f, "\n      {c}")?;
                }
                Ok(())
            }
            Problem::Incompatible { type_name, old, new, mode, changes } => {
                write!(f, "`{type_name}` v{new} breaks {mode} compatibility with v{old}:")?;
                for c in changes {
                    write!(f, "\n      {c}")?;
                }
                Ok(())
            }
            Problem::NoDecodePath { type_name, version, current, known } => write!(
                f,
                "`{type_name}` v{version} is committed, but `{current}` cannot decode it (it decodes {known:?}); \
                 keep the v{version} struct in the `upcast_from` chain so that old entries stay readable"
            ),
            Problem::SampleDoesNotDecode { path, current, error } => {
                write!(f, "{path} no longer decodes into `{current}`: {error}")
            }
            Problem::NoDecoder { type_name, current, samples } => {
                let short = current.rsplit("::").next().unwrap_or(current);
                write!(
                    f,
                    "`{type_name}` has committed samples ({}) but this binary has no decoder for `{current}`: \
                     `#[event]` compiles decoders only into test builds of the crate that declares the event; \
                     add `.decoder::<{short}>()` to the check, or run it from that crate's own tests",
                    samples.join(", ")
                )
            }
            Problem::Io { path, error } => write!(f, "{path}: {error}"),
        }
    }
}

/// Everything [`Check::run`] found wrong, printed as a readable report (also
/// by `{:?}`, so that `.unwrap()` in a test shows the report).
#[derive(Clone, PartialEq)]
pub struct CheckError {
    /// The folder checked.
    pub dir: PathBuf,
    /// Each problem found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} problem(s) in {}:",
            self.problems.len(),
            self.dir.display()
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        let fixable = self.problems.iter().any(|p| {
            matches!(
                p,
                Problem::Missing { .. } | Problem::Stale { .. } | Problem::Outdated { .. }
            )
        });
        if fixable {
            writeln!(f, "Run `{ENV}=overwrite cargo test` to write the files the code produces, then review and commit them.")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for CheckError {}
