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
///
/// Its values, which may be combined with commas (`upgrade,prune`):
///
/// - `overwrite` ([`Check::overwrite`]): write what is missing (new
///   versions, their samples) and refresh `envelope.json` and
///   `asyncapi.json`. Committed versions and samples are never rewritten nor
///   deleted.
/// - `prune` ([`Check::remove_stale`]): `overwrite`, and delete the stale
///   files of types no event of the binary declares any more.
/// - `upgrade` ([`Check::upgrade`]): `overwrite`, and rewrite the committed
///   versions that an older release of tidings wrote in another form but
///   that describe the same payloads.
pub const ENV: &str = "TIDINGS_SCHEMAS";

/// Checks (or, with `TIDINGS_SCHEMAS=overwrite`, writes) the `schemas/`
/// folder for every event linked into this binary.
///
/// It sees the events of the crate it is compiled in: put it in the unit
/// tests of the crate that declares the events (a `#[cfg(test)]` module
/// under `src/`), or in a test that declares them itself:
///
/// ```no_run
/// #[test]
/// fn schemas_are_committed_and_compatible() {
///     tidings::schemas::check("schemas").unwrap();
/// }
/// ```
///
/// From an integration test under `tests/`, use the macro
/// `tidings::schemas::check!("schemas")` instead: a test there is a crate of
/// its own, into which the library, and so its events, is linked only when
/// the test names something of it, and where the library's event decoders
/// are not compiled. The macro does both; this function, called there, finds
/// no events and fails saying so.
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
    /// Files removed as stale ([`Check::remove_stale`] only), relative to
    /// the folder.
    pub removed: Vec<String>,
    /// Committed versions written by an older release of tidings in another
    /// form that describes the same payloads, left as they are;
    /// [`Check::upgrade`] rewrites them.
    pub older_form: Vec<String>,
}

/// The check of a `schemas/` folder against the events of this binary.
///
/// It fails, naming each problem, when:
///
/// - the binary has no events (see [`check`] for why that happens);
/// - a committed `(type, version)` schema differs from what the code produces
///   (a published version is frozen: change the struct under a new version);
/// - a new version breaks compatibility with the older ones under the
///   event's `compat` mode (backward by default);
/// - a committed version has no decode path to the current type (its struct
///   left the `upcast_from` chain);
/// - a golden sample (`v<N>.sample.json`) does not decode into the current type;
/// - a file is missing, or stale (no event produces it any more).
///
/// A committed version (`v<N>.json`) or sample (`v<N>.sample.json`) is what
/// other services read and what old writers sent: no mode rewrites or
/// deletes it behind the user's back.
///
/// - With `TIDINGS_SCHEMAS=overwrite` (or [`Check::overwrite`]) it writes
///   the missing files (new versions and their samples) and refreshes the
///   generated `envelope.json` and `asyncapi.json`; everything else still
///   fails, stale files included, which it names without deleting.
/// - Deleting the history of a type that is gone is a separate act:
///   `TIDINGS_SCHEMAS=prune` (or [`Check::remove_stale`]).
/// - Rewriting committed versions that an older release of tidings wrote in
///   another form (the compatibility mode as a schema keyword, integer widths
///   as `format`) is another: `TIDINGS_SCHEMAS=upgrade` (or
///   [`Check::upgrade`]); it rewrites only a version whose payloads stay
///   exactly the same. Until then such a version passes, and is listed in
///   [`Summary::older_form`].
///
/// A run decides everything before it writes: when it fails, it has written
/// and deleted nothing. To rewrite a version that was never released, delete
/// its file and run the overwrite.
#[derive(Debug)]
pub struct Check {
    dir: PathBuf,
    namespace: String,
    schema_base: String,
    overwrite: bool,
    remove_stale: bool,
    upgrade: bool,
    /// A `TIDINGS_SCHEMAS` value that names no mode.
    bad_env: Option<String>,
    samples: BTreeMap<(&'static str, u32), Value>,
    decoders: BTreeMap<(&'static str, u32), DecodeFn>,
    filter: Option<fn(&EventInfo) -> bool>,
}

/// The modes `TIDINGS_SCHEMAS` names: (overwrite, prune, upgrade), or the
/// word it does not know.
fn env_modes(value: &str) -> Result<(bool, bool, bool), String> {
    let mut modes = (false, false, false);
    for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match word {
            "overwrite" => modes.0 = true,
            "prune" => (modes.0, modes.1) = (true, true),
            "upgrade" => (modes.0, modes.2) = (true, true),
            other => return Err(other.to_owned()),
        }
    }
    Ok(modes)
}

impl Check {
    /// A check of `dir` (relative paths are relative to the crate root when
    /// run by `cargo test`). The mode follows `TIDINGS_SCHEMAS` (see [`ENV`]).
    pub fn new(dir: impl AsRef<Path>) -> Self {
        let env = std::env::var(ENV).unwrap_or_default();
        let (modes, bad_env) = match env_modes(&env) {
            Ok(modes) => (modes, None),
            Err(word) => ((false, false, false), Some(word)),
        };
        Check {
            dir: dir.as_ref().to_path_buf(),
            namespace: export::DEFAULT_NAMESPACE.to_owned(),
            schema_base: crate::event::DEFAULT_SCHEMA_BASE.to_owned(),
            overwrite: modes.0,
            remove_stale: modes.1,
            upgrade: modes.2,
            bad_env,
            samples: BTreeMap::new(),
            decoders: BTreeMap::new(),
            filter: None,
        }
    }

    /// Writes the missing files (new versions, their samples) and refreshes
    /// `envelope.json` and `asyncapi.json`, instead of failing on them.
    /// Never rewrites nor deletes a committed version or sample.
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// Deletes stale files, those of a `(type, version)` that no event of
    /// the binary declares any more, instead of failing on them
    /// (`TIDINGS_SCHEMAS=prune`). Implies [`Check::overwrite`].
    ///
    /// It removes the published history of a type: do it only when no
    /// service reads that type any more.
    pub fn remove_stale(mut self, yes: bool) -> Self {
        self.remove_stale = yes;
        self.overwrite |= yes;
        self
    }

    /// Rewrites committed versions that an older release of tidings wrote in
    /// another form but that describe exactly the same payloads (the mode
    /// as an `x-tidings-compat` keyword, integer widths as `format`) in the
    /// form this release writes (`TIDINGS_SCHEMAS=upgrade`). Implies
    /// [`Check::overwrite`]. A version whose payloads differ is still
    /// frozen.
    pub fn upgrade(mut self, yes: bool) -> Self {
        self.upgrade = yes;
        self.overwrite |= yes;
        self
    }

    /// The absolute URI each schema's `$id` starts with (default
    /// [`DEFAULT_SCHEMA_BASE`](crate::DEFAULT_SCHEMA_BASE)): the same base
    /// as the services' bus ([`BusBuilder::schema_base`](crate::BusBuilder::schema_base)),
    /// so that every `dataschema` is the `$id` of its schema.
    ///
    /// ```no_run
    /// tidings::schemas::Check::new("schemas")
    ///     .schema_base("https://schemas.example.com/events/")
    ///     .run()
    ///     .unwrap();
    /// ```
    pub fn schema_base(mut self, base: impl Into<String>) -> Self {
        self.schema_base = base.into();
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
    /// call; `tidings::schemas::check!` supplies those of the library's
    /// public events to an integration test. Any other event with committed
    /// samples (one declared in another crate, or not reachable by a public
    /// path) is named through this or [`Check::sample`]. The check fails on a
    /// committed sample it has no decoder for, rather than skip it.
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

    /// The folder, made absolute against `root` when it is relative: what
    /// `tidings::schemas::check!` does with the crate's manifest directory,
    /// so that the test finds the folder whatever directory it runs in.
    pub(crate) fn rooted_at(mut self, root: &Path) -> Self {
        if self.dir.is_relative() {
            self.dir = root.join(&self.dir);
        }
        self
    }

    fn fail(self, problems: Vec<Problem>) -> Result<Summary, CheckError> {
        Err(CheckError {
            dir: self.dir,
            problems,
        })
    }

    /// Runs the check. When it finds a problem it writes nothing.
    pub fn run(self) -> Result<Summary, CheckError> {
        if let Some(value) = self.bad_env.clone() {
            return self.fail(vec![Problem::UnknownMode { value }]);
        }
        let registered = registry::sorted();
        let infos: Vec<&'static EventInfo> = registered
            .iter()
            .copied()
            .filter(|i| self.filter.is_none_or(|f| f(i)))
            .collect();
        // Nothing to check is never a pass: it is how a test that does not
        // link the events looks, and an overwrite would write a tree without
        // them.
        if infos.is_empty() {
            let problem = Problem::NoEvents {
                registered: registered.len(),
            };
            return self.fail(vec![problem]);
        }
        let mut problems = Vec::new();
        if let Err(errs) = registry::check_infos(&infos) {
            problems.extend(errs.into_iter().map(Problem::Registry));
        }
        let mut summary = Summary {
            versions: infos.len(),
            ..Summary::default()
        };

        let base = match crate::event::schema_base(&self.schema_base) {
            Ok(base) => base,
            Err(reason) => {
                let base = self.schema_base.clone();
                return self.fail(vec![Problem::InvalidSchemaBase { base, reason }]);
            }
        };
        let produced = export::files(&infos, &self.namespace, &base);
        let committed = match read_tree(&self.dir) {
            Ok(c) => c,
            Err(p) => return self.fail(vec![p]),
        };
        // What the run will write and delete, once it knows nothing fails.
        let mut writes: Vec<(String, String)> = Vec::new();
        let mut removals: Vec<String> = Vec::new();

        // Every produced file: present and equal, or written.
        for (rel, value) in &produced {
            let text = export::to_file_text(value);
            let versioned = infos.iter().find(|i| &export::schema_path(i) == rel);
            match (committed.get(rel), versioned) {
                (Some(old), _) if *old == text => {}
                // A published version: frozen, whatever the mode.
                (Some(old), Some(info)) => {
                    if same_in_older_form(old, value) {
                        if self.upgrade {
                            writes.push((rel.clone(), text));
                        } else {
                            summary.older_form.push(rel.clone());
                        }
                    } else if self.upgrade && same_under_another_base(old, value, rel) {
                        writes.push((rel.clone(), text));
                    } else {
                        let next = next_version(info.type_name, &committed, &infos);
                        problems.push(changed(info, rel, old, value, next));
                    }
                }
                // `envelope.json`, `asyncapi.json`: generated, refreshed.
                (Some(_), None) if self.overwrite => writes.push((rel.clone(), text)),
                (Some(_), None) => problems.push(Problem::Outdated { path: rel.clone() }),
                (None, _) if self.overwrite => writes.push((rel.clone(), text)),
                (None, _) => problems.push(Problem::Missing { path: rel.clone() }),
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
                writes.push((rel, export::to_file_text(&value)));
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
        let mut stale = |rel: &str, problems: &mut Vec<Problem>| {
            if self.remove_stale {
                removals.push(rel.to_owned());
            } else {
                problems.push(Problem::Stale {
                    path: rel.to_owned(),
                });
            }
        };
        for (rel, text) in &committed {
            let Some((topic, type_name, version, is_sample)) = parse_versioned(rel) else {
                continue;
            };
            let Some(cur) = current.get(type_name) else {
                if topics.contains(topic) || self.filter.is_none() {
                    stale(rel, &mut problems);
                }
                continue;
            };
            if cur.topic() != topic {
                stale(rel, &mut problems);
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

        if !problems.is_empty() {
            return self.fail(problems);
        }
        for rel in removals {
            match std::fs::remove_file(self.dir.join(&rel)) {
                Ok(()) => summary.removed.push(rel),
                Err(e) => problems.push(Problem::Io {
                    path: self.dir.join(&rel).display().to_string(),
                    error: e.to_string(),
                }),
            }
        }
        for (rel, text) in writes {
            let path = self.dir.join(&rel);
            let res = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&path, text));
            match res {
                Ok(()) => summary.written.push(rel),
                Err(e) => problems.push(Problem::Io {
                    path: path.display().to_string(),
                    error: e.to_string(),
                }),
            }
        }
        if problems.is_empty() {
            Ok(summary)
        } else {
            self.fail(problems)
        }
    }
}

/// Whether the committed text is `produced` as an older release of tidings
/// wrote it: the same payloads, described in another form.
fn same_in_older_form(committed: &str, produced: &Value) -> bool {
    serde_json::from_str::<Value>(committed).is_ok_and(|mut old| {
        // Older releases gave `$id` as the relative `schemas/<path>`; the
        // same path under the schema base is the same address.
        if let (Some(Value::String(old_id)), Some(Value::String(new_id))) =
            (old.get("$id"), produced.get("$id"))
        {
            if let Some(path) = old_id.strip_prefix("schemas/") {
                if new_id.ends_with(&format!("/{path}")) || new_id.ends_with(&format!(":{path}")) {
                    old["$id"] = Value::String(new_id.clone());
                }
            }
        }
        super::portable::normalize(&old) == *produced
    })
}

/// Whether the committed text is `produced` with another schema base: the
/// same payloads at the same path, which `upgrade` moves to the new base.
fn same_under_another_base(committed: &str, produced: &Value, rel: &str) -> bool {
    serde_json::from_str::<Value>(committed).is_ok_and(|mut old| {
        let (Some(Value::String(old_id)), Some(Value::String(new_id))) =
            (old.get("$id"), produced.get("$id"))
        else {
            return false;
        };
        let at_path = |id: &str| {
            id.strip_suffix(rel)
                .is_some_and(|base| base.ends_with(['/', ':']))
        };
        if !at_path(old_id) || !at_path(new_id) {
            return false;
        }
        old["$id"] = Value::String(new_id.clone());
        super::portable::normalize(&old) == *produced
    })
}

/// The first version of `type_name` that is neither committed nor declared:
/// the one a change should be published as.
fn next_version(
    type_name: &str,
    committed: &BTreeMap<String, String>,
    infos: &[&EventInfo],
) -> u32 {
    let committed = committed
        .keys()
        .filter_map(|rel| parse_versioned(rel))
        .filter(|(_, t, _, _)| *t == type_name)
        .map(|(_, _, v, _)| v);
    let declared = infos
        .iter()
        .filter(|i| i.type_name == type_name)
        .map(|i| i.version);
    committed
        .chain(declared)
        .max()
        .unwrap_or(0)
        .saturating_add(1)
}

fn changed(info: &EventInfo, rel: &str, old: &str, new: &Value, next: u32) -> Problem {
    let changes = match serde_json::from_str::<Value>(old) {
        Ok(old) => diff::diff(&super::portable::normalize(&old), new),
        Err(_) => Vec::new(),
    };
    Problem::Frozen {
        type_name: info.type_name,
        version: info.version,
        path: rel.to_owned(),
        next,
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
    /// No event to check: none is linked into the binary, or
    /// [`Check::only`] kept none of them.
    NoEvents {
        /// Events linked into the binary, before [`Check::only`].
        registered: usize,
    },
    /// `TIDINGS_SCHEMAS` holds a word that names no mode.
    UnknownMode {
        /// The word.
        value: String,
    },
    /// [`Check::schema_base`] is not an absolute URI.
    InvalidSchemaBase {
        /// The base as given.
        base: String,
        /// Why it is refused.
        reason: String,
    },
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
        /// The first version of the type that is neither committed nor
        /// declared: the one to publish the change as.
        next: u32,
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
            Problem::NoEvents { registered: 0 } => write!(
                f,
                "no `#[event]` is linked into this test binary, so there is nothing to check. \
                 A test under `tests/` is a crate of its own, and the library's events are linked \
                 into it only when it names something of the library. Call the macro \
                 `tidings::schemas::check!(\"schemas\")`, which links the library and compiles \
                 the decoders of its events, or call `tidings::schemas::check` from the \
                 library's own unit tests (a `#[cfg(test)]` module under `src/`)"
            ),
            Problem::NoEvents { registered } => write!(
                f,
                "`Check::only` kept none of the {registered} event version(s) of this binary, \
                 so there is nothing to check"
            ),
            Problem::UnknownMode { value } => write!(
                f,
                "`{ENV}={value}` names no mode; expected `overwrite`, `prune` or `upgrade` \
                 (several may be joined with commas)"
            ),
            Problem::InvalidSchemaBase { base, reason } => {
                write!(f, "invalid schema base `{base}`: {reason}")
            }
            Problem::Registry(e) => write!(f, "{e}"),
            Problem::Missing { path } => write!(f, "{path} is missing: the code produces it but it is not committed"),
            Problem::Stale { path } => write!(
                f,
                "{path} is stale: no event of this binary produces it (delete it with \
                 `{ENV}=prune cargo test` once no service reads that type any more)"
            ),
            Problem::Outdated { path } => write!(f, "{path} is out of date"),
            Problem::Frozen { type_name, version, path, next, changes } => {
                write!(
                    f,
                    "`{type_name}` v{version} is published and frozen, but the struct now produces another schema than {path}; \
                     declare the change as v{next} (`version = {next}`, `upcast_from` the old struct) or restore the struct \
                     (if v{version} was never released, delete {path} and run `{ENV}=overwrite cargo test` to write it anew)",
                )?;
                for c in changes {
                    write!(f, "\n      {c}")?;
                    if let Some(property) = required_added(c) {
                        write!(
                            f,
                            "\n        fix: v{version} payloads lack `{property}`: make it `Option<…>` or give it \
                             `#[serde(default)]`, and publish the change as v{next}"
                        )?;
                    }
                }
                Ok(())
            }
            Problem::Incompatible { type_name, old, new, mode, changes } => {
                write!(f, "`{type_name}` v{new} breaks {mode} compatibility with v{old}:")?;
                for c in changes {
                    write!(f, "\n      {c}")?;
                    if let Some(property) = required_added(c) {
                        write!(
                            f,
                            "\n        fix: v{old} payloads lack `{property}`: make it `Option<…>` or give it \
                             `#[serde(default)]` so that they still decode as v{new}"
                        )?;
                    } else if let Some(fix) = c.fix() {
                        write!(f, "\n        fix: {fix}")?;
                    }
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
                     `#[event]` compiles decoders only into test builds of the crate that declares the event, \
                     and `tidings::schemas::check!` adds those of the library's events it can name (public, \
                     in public modules); add `.decoder::<{short}>()` to the check where `{short}` can be named, \
                     or run the check from that crate's own unit tests",
                    samples.join(", ")
                )
            }
            Problem::Io { path, error } => write!(f, "{path}: {error}"),
        }
    }
}

/// The property a change adds as required, if it is such a change.
fn required_added(change: &Change) -> Option<String> {
    use diff::ChangeType as T;
    match change.kind {
        T::RequiredPropertyAddedToUnopenContentModel
        | T::RequiredPropertyAddedToOpenContentModel
        | T::RequiredAttributeAdded => change.property(),
        _ => None,
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
        let fixable = self
            .problems
            .iter()
            .any(|p| matches!(p, Problem::Missing { .. } | Problem::Outdated { .. }));
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

#[cfg(test)]
mod tests {
    use super::env_modes;

    #[test]
    fn tidings_schemas_names_the_modes_and_refuses_a_typo() {
        assert_eq!(env_modes(""), Ok((false, false, false)));
        assert_eq!(env_modes("overwrite"), Ok((true, false, false)));
        assert_eq!(env_modes("prune"), Ok((true, true, false)));
        assert_eq!(env_modes("upgrade"), Ok((true, false, true)));
        assert_eq!(env_modes("upgrade, prune"), Ok((true, true, true)));
        assert_eq!(env_modes("overwirte"), Err("overwirte".to_owned()));
    }
}
