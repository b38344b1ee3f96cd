//! JSON Schemas of events: export to `schemas/`, the check that keeps that
//! folder honest, and the rules that say which changes are safe.

mod check;
pub mod diff;
pub mod export;
pub mod portable;

pub use crate::compat::{Compat, UnknownCompat};
pub use check::{check, Check, CheckError, Problem, Summary, ENV};
pub use diff::{check_history, check_pair, Change, ChangeType, Report};
