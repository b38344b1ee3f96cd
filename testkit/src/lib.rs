//! The private test kit of tidings: servers that each test starts for itself,
//! and the macro that runs one behaviour suite on every transport.
//!
//! Every crate's tests and the benchmark use it, so there is one harness to
//! fix and to trust:
//!
//! - [`redis`]: a private `redis-server` per test on a free port, killed on
//!   drop, restartable on the same port for fault tests.
//! - [`transport_suite!`]: each test written once as
//!   `async fn name(h: Harness)`, instantiated in one module per transport.
//! - [`postgres`]: a private PostgreSQL per test on a free port, as the
//!   `postgres` system user when the tests run as root, restartable for
//!   fault tests.
//! - [`conformance`]: the upstream conformance cases kept beside the
//!   repository.
//! - [`node`]: the npm packages of tests that drive JavaScript tools.
//! - [`tls`]: a private CA per test (made with `openssl`), for a
//!   `redis-server` that speaks TLS only ([`RedisOptions::tls`]).
//! - [`sentinel`]: a master, a replica and three Sentinels watching them,
//!   for failover tests.
//!
//! Servers are found on `PATH`; when one is missing, the test that needs it
//! fails and names it (tests never skip silently).
//!
//! - [`cluster`]: a Redis Cluster of three masters and three replicas.

pub mod cluster;
pub mod conformance;
pub mod node;
pub mod postgres;
mod process;
pub mod redis;
pub mod sentinel;
mod suite;
pub mod tls;

pub use cluster::ClusterSet;
pub use postgres::PostgresServer;
pub use redis::{RedisOptions, RedisServer, ServerTls};
pub use sentinel::SentinelSet;
pub use tls::TestCa;
