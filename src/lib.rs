#![doc = include_str!("../README.md")]

pub use tidings_macros::{event, handler, payload};
pub use tidings_runtime::*;
