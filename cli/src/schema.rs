//! `tidings schema diff` and `tidings schema check`.

use std::fs;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tidings_runtime::schemas::diff::{try_check_pair, Change, DiffError, Report, Side};
use tidings_runtime::schemas::portable::{normalize, LEGACY_COMPAT_KEYWORD};
use tidings_runtime::schemas::Compat;

use crate::ops::{Format, Output};
use crate::{Outcome, Unreadable};

mod tree;
mod validate;

pub(crate) use validate::{Validators, Verdict};

use tree::{Tree, VersionKey};

#[derive(Debug, Subcommand)]
pub(crate) enum SchemaCommand {
    /// Compare two schema files; one line per change, `<CHANGE_TYPE> <json-pointer>`.
    #[command(
        after_help = "Example:\n  tidings schema diff old/v1.json schemas/contextual/file.uploaded/v2.json"
    )]
    Diff(DiffArgs),
    /// Compare a `schemas/` tree with an older one (a directory or a git revision).
    #[command(
        after_help = "Example:\n  tidings schema check --schemas schemas --against origin/main"
    )]
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The older schema (the one data was written with).
    old: PathBuf,
    /// The newer schema.
    new: PathBuf,
    /// Compatibility mode: backward, forward, full, their `_transitive` forms, or none.
    #[arg(long, default_value = "backward", value_parser = parse_mode)]
    mode: Compat,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The older tree: a directory laid out `<topic>/<type>/v<N>.json`, or a
    /// git revision (`main`, `HEAD~1`, a tag) whose copy of `--schemas` is read.
    #[arg(long)]
    against: String,
    /// The tree being checked.
    #[arg(long, default_value = "schemas")]
    schemas: PathBuf,
    /// Compatibility mode for a version whose mode the tree does not name
    /// (in `asyncapi.json`, or in the version file as older releases wrote it).
    #[arg(long, default_value = "backward", value_parser = parse_mode)]
    mode: Compat,
    #[command(flatten)]
    output: Output,
}

fn parse_mode(text: &str) -> Result<Compat, String> {
    text.parse::<Compat>().map_err(|e| e.to_string())
}

pub(crate) fn run(command: SchemaCommand) -> Result<Outcome, Unreadable> {
    match command {
        SchemaCommand::Diff(args) => diff(args),
        SchemaCommand::Check(args) => check(args),
    }
}

fn read_json(path: &Path) -> Result<Value, Unreadable> {
    let text = fs::read_to_string(path)
        .map_err(|e| Unreadable(format!("cannot read {}: {e}", path.display())))?;
    parse_json(&path.display().to_string(), &text)
}

fn parse_json(name: &str, text: &str) -> Result<Value, Unreadable> {
    serde_json::from_str(text).map_err(|e| Unreadable(format!("{name} is not valid JSON: {e}")))
}

/// Names the file a schema error is in.
fn explain(error: DiffError, old: &str, new: &str) -> Unreadable {
    match &error {
        DiffError::Invalid {
            side,
            pointer,
            reason,
        } => {
            let file = if *side == Side::Old { old } else { new };
            Unreadable(format!(
                "{file} is not a readable JSON Schema: at `{pointer}`: {reason}"
            ))
        }
        _ => Unreadable(error.to_string()),
    }
}

fn change_json(change: &Change, mode: Compat) -> Value {
    json!({
        "type": change.kind.as_str(),
        "pointer": change.pointer,
        "compatible": !mode.checks_backward() || change.is_backward_compatible(),
    })
}

fn report_json(report: &Report, mode: Compat) -> Value {
    json!({
        "compatible": report.compatible,
        "mode": mode.as_str(),
        "changes": report.changes.iter().map(|c| change_json(c, mode)).collect::<Vec<_>>(),
        "breaking": report.breaking.iter().map(|c| json!({"type": c.kind.as_str(), "pointer": c.pointer})).collect::<Vec<_>>(),
    })
}

fn outcome(compatible: bool) -> Outcome {
    if compatible {
        Outcome::Compatible
    } else {
        Outcome::Breaking
    }
}

fn diff(args: DiffArgs) -> Result<Outcome, Unreadable> {
    // Both in the form this release writes, so that a file written by an
    // older release (integer widths as `format`) compares as what it means.
    let old = normalize(&read_json(&args.old)?);
    let new = normalize(&read_json(&args.new)?);
    let (old_name, new_name) = (
        args.old.display().to_string(),
        args.new.display().to_string(),
    );
    let report =
        try_check_pair(&old, &new, args.mode).map_err(|e| explain(e, &old_name, &new_name))?;
    match args.output.format() {
        Format::Json => println!("{}", report_json(&report, args.mode)),
        Format::Text => {
            for change in &report.changes {
                println!("{change}");
            }
            if report.compatible {
                eprintln!("compatible under {}", args.mode);
            } else {
                eprintln!("breaks {}:", args.mode);
                for change in &report.breaking {
                    eprintln!("  {change}");
                    if let Some(fix) = change.fix() {
                        eprintln!("    {fix}");
                    }
                }
            }
        }
    }
    Ok(outcome(report.compatible))
}

/// One pair of versions of one type, checked under a mode.
struct PairCheck {
    subject: String,
    older: u32,
    newer: u32,
    mode: Compat,
    report: Report,
}

/// A published version that is no longer what it was.
enum Problem {
    Changed {
        key: VersionKey,
        /// The first version of the type that neither tree has.
        next: u32,
        changes: Vec<Change>,
    },
    Removed {
        key: VersionKey,
    },
}

/// The first version of `key`'s type that neither tree holds: the one a
/// change should be published as.
fn next_version(key: &VersionKey, old: &Tree, new: &Tree) -> u32 {
    old.versions
        .keys()
        .chain(new.versions.keys())
        .filter(|k| k.same_type(key))
        .map(|k| k.version)
        .max()
        .unwrap_or(key.version)
        .saturating_add(1)
}

/// The mode a version file names itself, as releases before the mode moved
/// to `asyncapi.json` wrote it (`"x-tidings-compat": "full"`).
fn legacy_mode(key: &VersionKey, schema: &Value) -> Result<Option<Compat>, Unreadable> {
    match schema.get(LEGACY_COMPAT_KEYWORD) {
        None => Ok(None),
        Some(Value::String(name)) => name
            .parse::<Compat>()
            .map(Some)
            .map_err(|e| Unreadable(format!("{}: `{LEGACY_COMPAT_KEYWORD}`: {e}", key.file()))),
        Some(other) => Err(Unreadable(format!(
            "{}: `{LEGACY_COMPAT_KEYWORD}` must be a string, found {other}",
            key.file()
        ))),
    }
}

fn check(args: CheckArgs) -> Result<Outcome, Unreadable> {
    let new = Tree::from_dir(&args.schemas)?;
    let old = if Path::new(&args.against).is_dir() {
        Tree::from_dir(Path::new(&args.against))?
    } else {
        Tree::from_git(&args.schemas, &args.against)?
    };

    let mut problems = Vec::new();
    for (key, old_schema) in &old.versions {
        match new.versions.get(key) {
            None => problems.push(Problem::Removed { key: key.clone() }),
            // Compared in the form this release writes: a file rewritten
            // from an older release's form says the same, and is unchanged.
            Some(new_schema) if normalize(new_schema) != normalize(old_schema) => {
                let changes = tidings_runtime::schemas::diff::diff(
                    &normalize(old_schema),
                    &normalize(new_schema),
                );
                problems.push(Problem::Changed {
                    key: key.clone(),
                    next: next_version(key, &old, &new),
                    changes,
                });
            }
            Some(_) => {}
        }
    }

    let mut checks = Vec::new();
    for (key, schema) in &new.versions {
        if old.versions.contains_key(key) {
            continue;
        }
        let mode = match new.modes.get(&(key.type_name.clone(), key.version)) {
            Some(mode) => *mode,
            None => legacy_mode(key, schema)?.unwrap_or(args.mode),
        };
        let mut older: Vec<&VersionKey> = new
            .versions
            .keys()
            .filter(|k| k.same_type(key) && k.version < key.version)
            .collect();
        older.sort_by_key(|k| k.version);
        if mode == Compat::None {
            older.clear();
        } else if !mode.is_transitive() {
            older = older.split_off(older.len().saturating_sub(1));
        }
        for previous in older {
            let report = try_check_pair(
                &normalize(&new.versions[previous]),
                &normalize(schema),
                mode,
            )
            .map_err(|e| explain(e, &previous.file(), &key.file()))?;
            checks.push(PairCheck {
                subject: key.subject(),
                older: previous.version,
                newer: key.version,
                mode,
                report,
            });
        }
    }

    let compatible = problems.is_empty() && checks.iter().all(|c| c.report.compatible);
    match args.output.format() {
        Format::Json => print_check_json(&args, compatible, &problems, &checks),
        Format::Text => print_check_text(&args, compatible, &problems, &checks),
    }
    Ok(outcome(compatible))
}

fn print_check_text(
    args: &CheckArgs,
    compatible: bool,
    problems: &[Problem],
    checks: &[PairCheck],
) {
    for problem in problems {
        match problem {
            Problem::Removed { key } => println!(
                "VERSION_REMOVED {} (a published version cannot be removed)",
                key.file()
            ),
            Problem::Changed { key, next, changes } => {
                println!(
                    "FROZEN_VERSION_CHANGED {} (a published version is immutable; publish the change as v{next} instead)",
                    key.file()
                );
                for change in changes {
                    println!("{} v{}: {change}", key.subject(), key.version);
                }
            }
        }
    }
    for check in checks {
        for change in &check.report.changes {
            let breaks = check.mode.checks_backward() && !change.is_backward_compatible();
            let note = if breaks {
                format!(" (breaks {})", check.mode)
            } else {
                String::new()
            };
            println!(
                "{} v{} -> v{}: {change}{note}",
                check.subject, check.older, check.newer
            );
            if let Some(fix) = change.fix().filter(|_| breaks) {
                println!("    {fix}");
            }
        }
        if check.mode.checks_forward() {
            for change in check
                .report
                .breaking
                .iter()
                .filter(|c| !check.report.changes.contains(c))
            {
                println!(
                    "{} v{} -> v{}: {change} (read by v{}; breaks {})",
                    check.subject, check.older, check.newer, check.older, check.mode
                );
            }
        }
    }
    let broken = checks.iter().filter(|c| !c.report.compatible).count();
    if compatible {
        eprintln!(
            "schemas compatible with {}: {} new version pair(s) checked",
            args.against,
            checks.len()
        );
    } else {
        eprintln!(
            "schemas break {}: {} published version(s) changed or removed, {broken} of {} new version pair(s) incompatible",
            args.against,
            problems.len(),
            checks.len()
        );
    }
}

fn print_check_json(
    args: &CheckArgs,
    compatible: bool,
    problems: &[Problem],
    checks: &[PairCheck],
) {
    let problems: Vec<Value> = problems
        .iter()
        .map(|p| match p {
            Problem::Removed { key } => json!({"type": "VERSION_REMOVED", "file": key.file()}),
            Problem::Changed { key, next, changes } => json!({
                "type": "FROZEN_VERSION_CHANGED",
                "file": key.file(),
                "next_version": next,
                "changes": changes.iter().map(|c| json!({"type": c.kind.as_str(), "pointer": c.pointer})).collect::<Vec<_>>(),
            }),
        })
        .collect();
    let checks: Vec<Value> = checks
        .iter()
        .map(|c| {
            let mut entry = report_json(&c.report, c.mode);
            entry["subject"] = json!(c.subject);
            entry["old_version"] = json!(c.older);
            entry["new_version"] = json!(c.newer);
            entry
        })
        .collect();
    println!(
        "{}",
        json!({
            "compatible": compatible,
            "mode": args.mode.as_str(),
            "against": args.against,
            "problems": problems,
            "checks": checks,
        })
    );
}
