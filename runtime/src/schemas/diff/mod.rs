//! Compatibility of two JSON Schemas, with no Rust types involved.
//!
//! [`diff`] lists every difference from an older schema to a newer one,
//! named as Confluent Schema Registry names them (`REQUIRED_ATTRIBUTE_ADDED
//! #/required/size`); [`check_pair`] turns the list into a verdict under a
//! [`Compat`] mode, and [`check_history`] applies a mode to a whole line of
//! versions. Draft-07 and 2020-12 are read: properties and `required`, open,
//! closed and partially open content models, type widening, enums, bounds,
//! tuples, local `$ref`s (recursive ones included) and `allOf`/`anyOf`/`oneOf`.
//!
//! ```
//! use serde_json::json;
//! use tidings_runtime::schemas::{diff, Compat};
//!
//! let v1 = json!({"type": "object", "additionalProperties": false,
//!                 "properties": {"id": {"type": "string"}}, "required": ["id"]});
//! let v2 = json!({"type": "object", "additionalProperties": false,
//!                 "properties": {"id": {"type": "string"}, "size": {"type": "integer"}},
//!                 "required": ["id"]});
//! let report = diff::check_pair(&v1, &v2, Compat::Backward);
//! assert!(report.compatible);
//! assert_eq!(report.changes[0].to_string(),
//!            "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/size");
//! ```

mod change;
mod model;
mod refs;
mod walk;

use std::fmt;

use serde_json::Value;

pub use change::{Change, ChangeType, UnknownChangeType};

use super::Compat;

/// Which of the two schemas a [`DiffError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Side {
    /// The older schema (first argument).
    Old,
    /// The newer schema (second argument).
    New,
}

impl Side {
    fn flip(self) -> Side {
        match self {
            Side::Old => Side::New,
            Side::New => Side::Old,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Old => "old",
            Side::New => "new",
        })
    }
}

/// A schema that cannot be read as JSON Schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// A keyword has the wrong shape, or a `$ref` cannot be followed.
    #[error("{side} schema, at `{pointer}`: {reason}")]
    Invalid {
        /// Which schema.
        side: Side,
        /// Where in it, as `#/properties/size`.
        pointer: String,
        /// What is wrong.
        reason: String,
    },
}

impl DiffError {
    fn flip(self) -> Self {
        match self {
            DiffError::Invalid {
                side,
                pointer,
                reason,
            } => DiffError::Invalid {
                side: side.flip(),
                pointer,
                reason,
            },
        }
    }
}

/// Every difference from `old` to `new` (Confluent's direction: a change is
/// backward compatible when readers using `new` still read data written with
/// `old`).
///
/// Never fails: a part of either schema that cannot be read is compared by
/// its JSON text, and reported as `TYPE_CHANGED` if it differs. Use
/// [`try_diff`] to be told instead.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let (arena, a, b, _) = model::load(old, new);
    run(&arena, a, b)
}

/// [`diff`], or the first part of either schema that cannot be read.
///
/// ```
/// use serde_json::json;
/// use tidings_runtime::schemas::diff::try_diff;
/// let err = try_diff(&json!({"$ref": "#/$defs/Missing"}), &json!({})).unwrap_err();
/// assert!(err.to_string().starts_with("old schema, at `#/$ref`"));
/// ```
pub fn try_diff(old: &Value, new: &Value) -> Result<Vec<Change>, DiffError> {
    let (arena, a, b, mut errors) = model::load(old, new);
    if !errors.is_empty() {
        return Err(errors.swap_remove(0));
    }
    Ok(run(&arena, a, b))
}

fn run(arena: &model::Arena, a: model::Id, b: model::Id) -> Vec<Change> {
    walk::Walker::new(arena)
        .compare(a, b)
        .into_iter()
        .map(|(kind, path)| {
            let segments: Vec<String> = path.iter().map(|s| refs::escape(s)).collect();
            Change::new(kind, format!("#/{}", segments.join("/")))
        })
        .collect()
}

/// The verdict on one (older, newer) pair of schemas under a mode.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Whether the pair satisfies the mode.
    pub compatible: bool,
    /// Every difference from the older schema to the newer one.
    pub changes: Vec<Change>,
    /// The changes that break the mode. For the backward direction they are
    /// among `changes`; for the forward direction they come from comparing
    /// the schemas the other way round (newer as the writer, older as the
    /// reader), so they are named from that side.
    pub breaking: Vec<Change>,
}

/// The verdict on one (older, newer) pair under `mode`: backward means every
/// change of `diff(old, new)` is compatible, forward every change of
/// `diff(new, old)`, full both. The transitive forms check the pair as their
/// plain form does (which pairs to check is [`check_history`]'s business);
/// [`Compat::None`] accepts everything.
pub fn check_pair(old: &Value, new: &Value, mode: Compat) -> Report {
    verdict(diff(old, new), || diff(new, old), mode)
}

/// [`check_pair`], or the first part of either schema that cannot be read.
pub fn try_check_pair(old: &Value, new: &Value, mode: Compat) -> Result<Report, DiffError> {
    let changes = try_diff(old, new)?;
    let mut reverse = None;
    let report = verdict(
        changes,
        || {
            let r = try_diff(new, old).map_err(DiffError::flip);
            let ok = r.clone().unwrap_or_default();
            reverse = Some(r);
            ok
        },
        mode,
    );
    match reverse {
        Some(Err(e)) => Err(e),
        _ => Ok(report),
    }
}

fn verdict(changes: Vec<Change>, reverse: impl FnOnce() -> Vec<Change>, mode: Compat) -> Report {
    let mut breaking = Vec::new();
    if mode.checks_backward() {
        breaking.extend(
            changes
                .iter()
                .filter(|c| !c.is_backward_compatible())
                .cloned(),
        );
    }
    if mode.checks_forward() {
        for change in reverse() {
            // A change that breaks both ways (a type change) is listed once.
            if !change.is_backward_compatible() && !breaking.contains(&change) {
                breaking.push(change);
            }
        }
    }
    Report {
        compatible: breaking.is_empty(),
        changes,
        breaking,
    }
}

/// Applies `mode` to a line of versions, oldest first: the plain modes check
/// the newest against the one before it, the transitive ones the newest
/// against every older one, and [`Compat::None`] nothing. Each entry is
/// `(older index, newer index, report)`.
///
/// ```
/// use serde_json::json;
/// use tidings_runtime::schemas::{diff::check_history, Compat};
/// let v1 = json!({"type": "integer"});
/// let v2 = json!({"type": "number"});
/// let v3 = json!({"type": "number", "maximum": 10});
/// let checks = check_history(&[&v1, &v2, &v3], Compat::BackwardTransitive);
/// assert_eq!(checks.iter().map(|(a, b, _)| (*a, *b)).collect::<Vec<_>>(), [(0, 2), (1, 2)]);
/// assert!(checks.iter().all(|(_, _, r)| !r.compatible));
/// ```
pub fn check_history(versions: &[&Value], mode: Compat) -> Vec<(usize, usize, Report)> {
    pairs(versions.len(), mode)
        .map(|(i, j)| (i, j, check_pair(versions[i], versions[j], mode)))
        .collect()
}

/// [`check_history`], or the first schema part that cannot be read.
pub fn try_check_history(
    versions: &[&Value],
    mode: Compat,
) -> Result<Vec<(usize, usize, Report)>, DiffError> {
    pairs(versions.len(), mode)
        .map(|(i, j)| try_check_pair(versions[i], versions[j], mode).map(|r| (i, j, r)))
        .collect()
}

fn pairs(len: usize, mode: Compat) -> impl Iterator<Item = (usize, usize)> {
    let newest = len.checked_sub(1);
    let first = match newest {
        Some(n) if n > 0 && mode != Compat::None => {
            if mode.is_transitive() {
                0
            } else {
                n - 1
            }
        }
        _ => 0,
    };
    let end = match newest {
        Some(n) if n > 0 && mode != Compat::None => n,
        _ => 0,
    };
    (first..end).map(move |i| (i, end))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::{check_pair, diff, Compat};
    use crate::schemas::portable::make_portable;

    /// The payload schema of one integer field of type `T`, as emitted.
    fn field<T: schemars::JsonSchema>() -> Value {
        #[derive(schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Payload<T> {
            n: T,
        }
        let mut schema = schemars::schema_for!(Payload<T>).to_value();
        make_portable(&mut schema);
        schema
    }

    fn breaking(old: &Value, new: &Value, mode: Compat) -> Vec<String> {
        check_pair(old, new, mode)
            .breaking
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn narrowing_an_integer_breaks_backward_and_widening_breaks_forward() {
        let (u64_, u32_, i64_, i32_) = (
            field::<u64>(),
            field::<u32>(),
            field::<i64>(),
            field::<i32>(),
        );
        // u64 -> u32: the new reader rejects old values above u32::MAX.
        assert_eq!(
            breaking(&u64_, &u32_, Compat::Backward),
            ["MAXIMUM_DECREASED #/properties/n/maximum"]
        );
        assert!(check_pair(&u64_, &u32_, Compat::Forward).compatible);
        // u32 -> u64: old readers reject new values above u32::MAX.
        assert!(check_pair(&u32_, &u64_, Compat::Backward).compatible);
        assert_eq!(
            breaking(&u32_, &u64_, Compat::Forward),
            ["MAXIMUM_DECREASED #/properties/n/maximum"]
        );
        // i64 -> i32 narrows both ends.
        assert_eq!(
            breaking(&i64_, &i32_, Compat::Backward),
            [
                "MAXIMUM_DECREASED #/properties/n/maximum",
                "MINIMUM_INCREASED #/properties/n/minimum"
            ]
        );
        // u32 -> i32: the top half of u32 is gone; i32 -> u32: the negatives.
        assert_eq!(
            breaking(&u32_, &i32_, Compat::Backward),
            ["MAXIMUM_DECREASED #/properties/n/maximum"]
        );
        assert_eq!(
            breaking(&i32_, &u32_, Compat::Backward),
            ["MINIMUM_INCREASED #/properties/n/minimum"]
        );
        assert_eq!(
            breaking(&u32_, &i32_, Compat::Full).len(),
            2,
            "{:?}",
            breaking(&u32_, &i32_, Compat::Full)
        );
        assert!(diff(&u64_, &field::<u64>()).is_empty());
    }

    #[test]
    fn bounds_past_2_pow_53_compare_exactly() {
        let at = |max: Value| json!({"type": "integer", "maximum": max});
        // As f64 both are 2^64: the change would vanish.
        let changes = diff(&at(json!(u64::MAX)), &at(json!(u64::MAX - 1)));
        assert_eq!(changes[0].to_string(), "MAXIMUM_DECREASED #/maximum");
        let changes = diff(&at(json!(i64::MIN + 1)), &at(json!(i64::MIN)));
        assert_eq!(changes[0].to_string(), "MAXIMUM_DECREASED #/maximum");
        assert!(diff(
            &at(json!(9007199254740993u64)),
            &at(json!(9007199254740993u64))
        )
        .is_empty());
        // An integer and the float of the same value are the same bound.
        assert!(diff(&at(json!(10)), &at(json!(10.0))).is_empty());
    }
}
