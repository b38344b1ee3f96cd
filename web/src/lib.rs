#![doc = include_str!("../README.md")]

mod access;
mod bridge;
mod client;
mod dashboard;
mod error;
mod frame;
mod hub;
mod routes;
mod ws;

pub use access::{Authorize, Denied, Grant, Scope};
pub use bridge::{Bridge, BridgeOptions, Source};
pub use dashboard::Dashboard;
pub use error::WebError;
