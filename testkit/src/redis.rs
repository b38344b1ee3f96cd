//! A private `redis-server` per test: a free port, no persistence unless
//! asked, killed on drop, restartable on the same port for fault tests.
//!
//! Each test owning its server means tests never share keys, run side by
//! side, and never touch a Redis on 127.0.0.1:6379.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{self, Program, StartError};

const REDIS_SERVER: Program = Program {
    name: "redis-server",
    install: "Debian/Ubuntu: `apt-get install redis-server`",
};

/// Options of a private server: persistence and any other configuration.
///
/// ```
/// # use tidings_testkit::RedisOptions;
/// let options = RedisOptions::default()
///     .appendonly("always")
///     .config("maxmemory", "64mb");
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RedisOptions {
    /// `--appendfsync <policy>` with `--appendonly yes`; `None` for
    /// `--appendonly no`.
    pub appendfsync: Option<&'static str>,
    /// Extra `--<name> <value>` arguments.
    pub extra: Vec<(String, String)>,
}

impl RedisOptions {
    /// Turns on the append-only file, synced by `policy` (`always`,
    /// `everysec` or `no`).
    pub fn appendonly(mut self, policy: &'static str) -> Self {
        self.appendfsync = Some(policy);
        self
    }

    /// Adds `--<name> <value>` to the command line.
    pub fn config(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }
}

/// A running `redis-server` owned by one test (or one benchmark run),
/// listening on 127.0.0.1 only, with its own data directory; killed and its
/// directory removed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    options: RedisOptions,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server with no persistence (`--save "" --appendonly no`).
    ///
    /// # Panics
    ///
    /// When the server cannot start, and first of all when `redis-server`
    /// is not on `PATH` (the message says so: a test must not skip).
    #[track_caller]
    pub fn start() -> Self {
        Self::with_options(RedisOptions::default())
    }

    /// Starts a server that loses no acknowledged write when killed:
    /// `--appendonly yes --appendfsync always`.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start`].
    #[track_caller]
    pub fn durable() -> Self {
        Self::with_options(RedisOptions::default().appendonly("always"))
    }

    /// Starts a server with the given options.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start`].
    #[track_caller]
    pub fn with_options(options: RedisOptions) -> Self {
        match Self::try_with_options(options) {
            Ok(server) => server,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts a server with no persistence, or says why it could not, for a
    /// caller that reports errors instead of panicking (the benchmark).
    pub fn try_start() -> Result<Self, String> {
        Self::try_with_options(RedisOptions::default())
    }

    /// Starts a server with the given options, or says why it could not.
    pub fn try_with_options(options: RedisOptions) -> Result<Self, String> {
        process::on_free_port(REDIS_SERVER, |port| {
            let dir =
                std::env::temp_dir().join(format!("tidings-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .map_err(|e| StartError::Failed(format!("{}: {e}", dir.display())))?;
            let mut server = RedisServer {
                port,
                dir,
                options: options.clone(),
                child: None,
            };
            server.spawn()?;
            Ok(server)
        })
        .map_err(StartError::message)
    }

    fn spawn(&mut self) -> Result<(), StartError> {
        let mut cmd = Command::new(REDIS_SERVER.name);
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match self.options.appendfsync {
            Some(policy) => cmd.args(["--appendonly", "yes", "--appendfsync", policy]),
            None => cmd.args(["--appendonly", "no"]),
        };
        for (name, value) in &self.options.extra {
            cmd.arg(format!("--{name}")).arg(value);
        }
        self.child = Some(process::spawn_ready(
            REDIS_SERVER,
            &mut cmd,
            self.port,
            ping,
        )?);
        Ok(())
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the running server.
    ///
    /// # Panics
    ///
    /// When the server is stopped.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("redis-server is stopped")
    }

    /// A new connection to the server, for a test's own commands beside
    /// the bus (`XPENDING`, `CONFIG SET`, …).
    ///
    /// # Panics
    ///
    /// When the server does not accept it.
    pub async fn connection(&self) -> ::redis::aio::MultiplexedConnection {
        ::redis::Client::open(self.url())
            .expect("a valid redis URL")
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connecting to the test redis-server: {e}"))
    }

    /// Kills the server (SIGKILL: no chance to save, as in a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again on the same port and directory,
    /// so clients reconnect to the same URL and find what was persisted.
    ///
    /// # Panics
    ///
    /// When the server does not come back.
    #[track_caller]
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("could not restart redis-server: {}", e.message());
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a server on `port` answers `PING` with `+PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}
