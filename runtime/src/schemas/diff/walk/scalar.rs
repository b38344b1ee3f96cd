//! Strings, numbers and enumerations, compared bound by bound.

use serde_json::Value;

use super::{add, Rel};
use crate::schemas::diff::change::ChangeType;
use crate::schemas::diff::change::ChangeType as T;
use crate::schemas::diff::model::{NumberSchema, StringSchema};

pub(super) fn string(out: &mut Vec<Rel>, a: &StringSchema, b: &StringSchema) {
    bound(
        out,
        "maxLength",
        a.max_length.as_ref(),
        b.max_length.as_ref(),
        T::MaxLengthAdded,
        T::MaxLengthRemoved,
        T::MaxLengthIncreased,
        T::MaxLengthDecreased,
    );
    bound(
        out,
        "minLength",
        a.min_length.as_ref(),
        b.min_length.as_ref(),
        T::MinLengthAdded,
        T::MinLengthRemoved,
        T::MinLengthIncreased,
        T::MinLengthDecreased,
    );
    match (&a.pattern, &b.pattern) {
        (None, Some(_)) => add(out, &["pattern"], T::PatternAdded),
        (Some(_), None) => add(out, &["pattern"], T::PatternRemoved),
        (Some(x), Some(y)) if x != y => add(out, &["pattern"], T::PatternChanged),
        _ => {}
    }
}

pub(super) fn number(out: &mut Vec<Rel>, a: &NumberSchema, b: &NumberSchema) {
    bound(
        out,
        "maximum",
        a.maximum.as_ref(),
        b.maximum.as_ref(),
        T::MaximumAdded,
        T::MaximumRemoved,
        T::MaximumIncreased,
        T::MaximumDecreased,
    );
    bound(
        out,
        "minimum",
        a.minimum.as_ref(),
        b.minimum.as_ref(),
        T::MinimumAdded,
        T::MinimumRemoved,
        T::MinimumIncreased,
        T::MinimumDecreased,
    );
    bound(
        out,
        "exclusiveMaximum",
        a.exclusive_maximum.as_ref(),
        b.exclusive_maximum.as_ref(),
        T::ExclusiveMaximumAdded,
        T::ExclusiveMaximumRemoved,
        T::ExclusiveMaximumIncreased,
        T::ExclusiveMaximumDecreased,
    );
    bound(
        out,
        "exclusiveMinimum",
        a.exclusive_minimum.as_ref(),
        b.exclusive_minimum.as_ref(),
        T::ExclusiveMinimumAdded,
        T::ExclusiveMinimumRemoved,
        T::ExclusiveMinimumIncreased,
        T::ExclusiveMinimumDecreased,
    );
    match (a.multiple_of, b.multiple_of) {
        (None, Some(_)) => add(out, &["multipleOf"], T::MultipleOfAdded),
        (Some(_), None) => add(out, &["multipleOf"], T::MultipleOfRemoved),
        (Some(x), Some(y)) if x != y => {
            let kind = if divides(x, y) {
                T::MultipleOfExpanded
            } else if divides(y, x) {
                T::MultipleOfReduced
            } else {
                T::MultipleOfChanged
            };
            add(out, &["multipleOf"], kind);
        }
        _ => {}
    }
    if a.integer != b.integer {
        add(
            out,
            &[],
            if a.integer {
                T::TypeExtended
            } else {
                T::TypeNarrowed
            },
        );
    }
}

/// Whether `whole` is an integer multiple of `part` (both > 0), allowing for
/// the rounding of decimal fractions such as 0.1 in binary.
pub(super) fn divides(part: f64, whole: f64) -> bool {
    let ratio = whole / part;
    ratio >= 1.0 && (ratio - ratio.round()).abs() <= 1e-9 * ratio
}

pub(super) fn enumeration(out: &mut Vec<Rel>, a: &[Value], b: &[Value]) {
    let a_in_b = a.iter().all(|v| b.contains(v));
    let b_in_a = b.iter().all(|v| a.contains(v));
    let kind = match (a_in_b, b_in_a) {
        (true, true) => return,
        (true, false) => T::EnumArrayExtended,
        (false, true) => T::EnumArrayNarrowed,
        (false, false) => T::EnumArrayChanged,
    };
    add(out, &["enum"], kind);
}

/// A numeric keyword present on either side: the four change types say
/// which way it moved; whether that is safe is the type's business.
#[allow(clippy::too_many_arguments)]
pub(super) fn bound<N: PartialOrd + ?Sized>(
    out: &mut Vec<Rel>,
    key: &str,
    a: Option<&N>,
    b: Option<&N>,
    added: ChangeType,
    removed: ChangeType,
    increased: ChangeType,
    decreased: ChangeType,
) {
    let kind = match (a, b) {
        (None, Some(_)) => added,
        (Some(_), None) => removed,
        (Some(x), Some(y)) if x < y => increased,
        (Some(x), Some(y)) if x > y => decreased,
        _ => return,
    };
    add(out, &[key], kind);
}
