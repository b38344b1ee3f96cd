//! Support of the tidings benchmark (`cargo bench -p tidings-bench`): the
//! benchmark's events, the plain redis-rs baselines, Redis's own ceiling
//! (`redis-benchmark`), the macro build-cost crates, instruction counts by
//! callgrind, the live-view clients, and the report. Its private Redis server is the tests' own,
//! from `tidings-testkit`.

pub mod bare;
pub mod ceiling;
pub mod events;
pub mod instructions;
pub mod live;
pub mod macro_cost;
pub mod raw;
pub mod report;
pub mod request;
