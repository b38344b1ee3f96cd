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
    /// TLS only (`--port 0 --tls-port <port>`), with the server
    /// certificate of this CA; clients must show a certificate it signed.
    pub tls: Option<ServerTls>,
    /// The port of a master on 127.0.0.1 to replicate (`--replicaof`).
    pub replica_of: Option<u16>,
    /// A cluster node (`--cluster-enabled yes`), on a port below 55,536
    /// whose cluster bus port (+10,000) is free too.
    pub cluster: bool,
}

/// The files of a TLS server, from a [`TestCa`](crate::TestCa).
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The CA certificate, for clients and for the server's check of them.
    pub ca: PathBuf,
    /// The server certificate.
    pub cert: PathBuf,
    /// The server key.
    pub key: PathBuf,
    /// A client certificate signed by the CA.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

impl RedisOptions {
    /// Turns on the append-only file, synced by `policy` (`always`,
    /// `everysec` or `no`).
    pub fn appendonly(mut self, policy: &'static str) -> Self {
        self.appendfsync = Some(policy);
        self
    }

    /// Speaks TLS only, with a server certificate of `ca`, and asks
    /// clients for a certificate it signed (Redis's default).
    pub fn tls(mut self, ca: &crate::TestCa) -> Self {
        self.tls = Some(ServerTls {
            ca: ca.ca_cert(),
            cert: ca.server_cert(),
            key: ca.server_key(),
            client_cert: ca.client_cert(),
            client_key: ca.client_key(),
        });
        self
    }

    /// Replicates the master listening on `port` of 127.0.0.1.
    pub fn replica_of(mut self, port: u16) -> Self {
        self.replica_of = Some(port);
        self
    }

    /// A Redis Cluster node: `--cluster-enabled yes`, its `nodes.conf` in
    /// its own directory, a port below 55,536 with the port 10,000 above
    /// it (the cluster bus) free too.
    pub fn cluster_node(mut self) -> Self {
        self.cluster = true;
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
            let port = match options.cluster {
                true => process::free_cluster_port().map_err(StartError::Failed)?,
                false => port,
            };
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
        let port = self.port.to_string();
        match &self.options.tls {
            None => cmd.args(["--port", &port]),
            Some(tls) => cmd
                .args(["--port", "0", "--tls-port", &port])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca),
        };
        if self.options.cluster {
            cmd.args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "1000"]);
        }
        if let Some(master) = self.options.replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &master.to_string()]);
        }
        cmd.args(["--bind", "127.0.0.1"])
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
        let ready = match self.options.tls {
            None => ping,
            // The port opens once the server is ready; speaking TLS here
            // would need a TLS client in the kit for nothing more.
            Some(_) => listening,
        };
        self.child = Some(process::spawn_ready(
            REDIS_SERVER,
            &mut cmd,
            self.port,
            ready,
        )?);
        Ok(())
    }

    /// `redis://127.0.0.1:<port>`; for a TLS server,
    /// `rediss://127.0.0.1:<port>/?tls_ca=…&tls_cert=…&tls_key=…`, with
    /// the test CA and its client certificate.
    pub fn url(&self) -> String {
        match &self.options.tls {
            None => format!("redis://127.0.0.1:{}", self.port),
            Some(tls) => format!(
                "rediss://127.0.0.1:{}/?tls_ca={}&tls_cert={}&tls_key={}",
                self.port,
                tls.ca.display(),
                tls.client_cert.display(),
                tls.client_key.display()
            ),
        }
    }

    /// `rediss://127.0.0.1:<port>` with no files named, for a TLS server.
    pub fn bare_url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The TLS files of the server, if it speaks TLS.
    pub fn tls(&self) -> Option<&ServerTls> {
        self.options.tls.as_ref()
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
        let client = match &self.options.tls {
            None => ::redis::Client::open(self.url()),
            Some(tls) => {
                let read = |p: &PathBuf| {
                    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                };
                ::redis::Client::build_with_tls(
                    self.bare_url(),
                    ::redis::TlsCertificates {
                        client_tls: Some(::redis::ClientTlsConfig {
                            client_cert: read(&tls.client_cert),
                            client_key: read(&tls.client_key),
                        }),
                        root_cert: Some(read(&tls.ca)),
                    },
                )
            }
        };
        client
            .expect("a valid redis URL")
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connecting to the test redis-server: {e}"))
    }

    /// Whether the server runs (not stopped by [`RedisServer::stop`]).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
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

/// Whether something accepts connections on `port`.
pub(crate) fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Whether a server on `port` answers `PING` with `+PONG`.
pub(crate) fn ping(port: u16) -> bool {
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
