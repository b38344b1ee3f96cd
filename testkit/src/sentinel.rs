//! A private Sentinel setup per test: a master, one replica of it, and
//! three Sentinels (quorum 2) watching them with short timeouts
//! (`down-after-milliseconds` 500, `failover-timeout` 3000), each from a
//! generated `sentinel.conf`, all on free loopback ports and killed on drop.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use tidings_testkit::SentinelSet;
//! let mut set = SentinelSet::start();
//! let url = set.url(); // redis+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/tidings-test
//! let old = set.master_port();
//! set.kill_master();
//! let new = set.wait_failover(Duration::from_secs(20)).unwrap();
//! assert_ne!(old, new);
//! ```
//!
//! [`SentinelSet::start_secured`] starts one that speaks TLS only (the
//! Sentinels, the master, the replica, and between them) and whose
//! Sentinels ask for a password.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{self, Program, StartError};
use crate::redis::{listening, ping, RedisOptions, RedisServer, ServerTls};
use crate::TestCa;

const SENTINEL: Program = Program {
    name: "redis-server",
    install: "Debian/Ubuntu: `apt-get install redis-server` (it runs Sentinels too)",
};

/// The master's name in the Sentinels' configuration.
pub const MASTER_NAME: &str = "tidings-test";

/// How long the Sentinels wait before they call a silent master down.
pub const DOWN_AFTER: Duration = Duration::from_millis(500);

/// A master, its replica, and three Sentinels watching them.
#[derive(Debug)]
pub struct SentinelSet {
    master: RedisServer,
    replica: RedisServer,
    sentinels: Vec<Sentinel>,
    /// The files of a set that speaks TLS.
    tls: Option<ServerTls>,
    /// The Sentinels' password, if they ask for one.
    password: Option<String>,
}

#[derive(Debug)]
struct Sentinel {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    tls: Option<ServerTls>,
    password: Option<String>,
}

impl SentinelSet {
    /// Starts the master, its replica and three Sentinels, and waits (up to
    /// 20 s) until the replica is in step with the master and every
    /// Sentinel sees the replica and the two other Sentinels, so that a
    /// failover can happen from then on.
    ///
    /// # Panics
    ///
    /// When a server cannot start (`redis-server` not on `PATH` first of
    /// all), or the Sentinels do not find each other in time.
    #[track_caller]
    pub fn start() -> SentinelSet {
        match Self::try_start() {
            Ok(set) => set,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts the set, or says why it could not.
    pub fn try_start() -> Result<SentinelSet, String> {
        Self::try_start_with(None, None)
    }

    /// [`SentinelSet::start`], speaking TLS only with certificates of
    /// `ca` (every server asks clients for one of its client
    /// certificates, and shows one to the others), the Sentinels asking
    /// for `password` (from clients and from each other).
    ///
    /// # Panics
    ///
    /// As [`SentinelSet::start`].
    #[track_caller]
    pub fn start_secured(ca: &TestCa, password: &str) -> SentinelSet {
        match Self::try_start_with(Some(ca), Some(password)) {
            Ok(set) => set,
            Err(e) => panic!("{e}"),
        }
    }

    fn try_start_with(ca: Option<&TestCa>, password: Option<&str>) -> Result<SentinelSet, String> {
        // Redis waits 5 s by default before a diskless full sync, in case
        // more replicas come: here the replica is in step at once.
        let mut options = RedisOptions::default().config("repl-diskless-sync-delay", "0");
        if let Some(ca) = ca {
            options = options
                .tls(ca)
                .config("tls-replication", "yes")
                .config(
                    "tls-client-cert-file",
                    ca.client_cert().display().to_string(),
                )
                .config("tls-client-key-file", ca.client_key().display().to_string());
        }
        let tls = options.tls.clone();
        let password = password.map(str::to_owned);
        let master = RedisServer::try_with_options(options.clone())?;
        let replica = RedisServer::try_with_options(options.replica_of(master.port()))?;
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(
                Sentinel::start(master.port(), tls.clone(), password.clone())
                    .map_err(StartError::message)?,
            );
        }
        let set = SentinelSet {
            master,
            replica,
            sentinels,
            tls,
            password,
        };
        set.wait_watching(Duration::from_secs(20))?;
        Ok(set)
    }

    /// `redis+sentinel://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>/tidings-test`;
    /// for [`SentinelSet::start_secured`], `rediss+sentinel://…` with the
    /// test CA, its client certificate and the Sentinels' password in the
    /// query.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let hosts = hosts.join(",");
        let mut query = Vec::new();
        if let Some(tls) = &self.tls {
            query.push(format!("tls_ca={}", tls.ca.display()));
            query.push(format!("tls_cert={}", tls.client_cert.display()));
            query.push(format!("tls_key={}", tls.client_key.display()));
        }
        if let Some(password) = &self.password {
            query.push(format!("sentinel_password={password}"));
        }
        let scheme = match self.tls {
            Some(_) => "rediss+sentinel",
            None => "redis+sentinel",
        };
        match query.is_empty() {
            true => format!("{scheme}://{hosts}/{MASTER_NAME}"),
            false => format!("{scheme}://{hosts}/{MASTER_NAME}?{}", query.join("&")),
        }
    }

    /// The master started first.
    pub fn first_master(&self) -> &RedisServer {
        &self.master
    }

    /// The replica started first (the master after a failover).
    pub fn first_replica(&self) -> &RedisServer {
        &self.replica
    }

    /// The port of the master the Sentinels name now.
    ///
    /// # Panics
    ///
    /// When no Sentinel answers.
    pub fn master_port(&self) -> u16 {
        self.sentinels
            .iter()
            .find_map(|s| s.master_port().ok())
            .expect("no Sentinel answers")
    }

    /// Kills the first master (SIGKILL, as in a crash).
    pub fn kill_master(&mut self) {
        self.master.stop();
    }

    /// Waits until the Sentinels name a master other than the first one
    /// and that server says it is a master; its port.
    pub fn wait_failover(&self, timeout: Duration) -> Result<u16, String> {
        let first = self.master.port();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(port) = self.sentinels.iter().find_map(|s| s.master_port().ok()) {
                if port != first
                    && info_field(port, self.tls.as_ref(), "role").as_deref() == Ok("master")
                {
                    return Ok(port);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("no failover within {timeout:?}"))
    }

    /// A failover with the first master up: asks a Sentinel for one
    /// (`SENTINEL FAILOVER`), waits until the replica is the master the
    /// Sentinels name, then makes the old master its replica at once
    /// (`REPLICAOF`, what the Sentinels themselves do only some seconds
    /// later) and waits until it says so. From then on a write to the old
    /// master is refused with `READONLY`. The new master's port.
    pub fn failover_keeping_the_master(&self, timeout: Duration) -> Result<u16, String> {
        let deadline = Instant::now() + timeout;
        let sentinel = self.sentinels.first().ok_or("no Sentinel")?;
        let mut conn = sentinel.connection()?;
        ::redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(MASTER_NAME)
            .query::<()>(&mut conn)
            .map_err(|e| format!("SENTINEL FAILOVER: {e}"))?;
        let new = self.wait_failover(deadline.saturating_duration_since(Instant::now()))?;
        let old = self.master.port();
        let mut conn = connect(old, self.tls.as_ref(), None)?;
        ::redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(new)
            .query::<()>(&mut conn)
            .map_err(|e| format!("REPLICAOF on the old master: {e}"))?;
        while Instant::now() < deadline {
            if info_field(old, self.tls.as_ref(), "role").as_deref() == Ok("slave") {
                return Ok(new);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "the old master was not a replica within {timeout:?}"
        ))
    }

    fn wait_watching(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            let linked = info_field(self.replica.port(), self.tls.as_ref(), "master_link_status");
            if linked.as_deref() != Ok("up") {
                last = format!("the replica's link to the master: {linked:?}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let ready = self.sentinels.iter().all(|s| match s.watching() {
                Ok((replicas, others)) => {
                    last = format!(
                        "a Sentinel sees {replicas} replica(s), {others} other Sentinel(s)"
                    );
                    replicas >= 1 && others >= 2
                }
                Err(e) => {
                    last = e;
                    false
                }
            });
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "the Sentinels did not find the replica and each other within {timeout:?}: {last}"
        ))
    }
}

impl Sentinel {
    fn start(
        master: u16,
        tls: Option<ServerTls>,
        password: Option<String>,
    ) -> Result<Sentinel, StartError> {
        process::on_free_port(SENTINEL, |port| {
            let dir = std::env::temp_dir()
                .join(format!("tidings-sentinel-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .map_err(|e| StartError::Failed(format!("{}: {e}", dir.display())))?;
            let down = DOWN_AFTER.as_millis();
            let listen = match &tls {
                None => format!("port {port}\n"),
                // TLS to clients, to the servers watched and to the
                // other Sentinels (`tls-replication`).
                Some(tls) => format!(
                    "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
                     tls-ca-cert-file {}\ntls-client-cert-file {}\ntls-client-key-file {}\n\
                     tls-replication yes\n",
                    tls.cert.display(),
                    tls.key.display(),
                    tls.ca.display(),
                    tls.client_cert.display(),
                    tls.client_key.display()
                ),
            };
            let auth = match &password {
                None => String::new(),
                Some(pw) => format!("requirepass {pw}\nsentinel sentinel-pass {pw}\n"),
            };
            let conf = format!(
                "{listen}{auth}bind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} {down}\n\
                 sentinel failover-timeout {MASTER_NAME} 3000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir = dir.display()
            );
            let path = dir.join("sentinel.conf");
            std::fs::write(&path, conf)
                .map_err(|e| StartError::Failed(format!("{}: {e}", path.display())))?;
            let mut cmd = Command::new(SENTINEL.name);
            cmd.arg(&path)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // A TLS port opens once the server is ready; a plain one
            // answers PING, even one that asks for a password.
            let ready = match tls {
                Some(_) => listening,
                None => ping_or_auth,
            };
            let child = process::spawn_ready(SENTINEL, &mut cmd, port, ready)?;
            Ok(Sentinel {
                port,
                dir,
                child: Some(child),
                tls: tls.clone(),
                password: password.clone(),
            })
        })
    }

    fn connection(&self) -> Result<::redis::Connection, String> {
        connect(self.port, self.tls.as_ref(), self.password.as_deref())
            .map_err(|e| format!("Sentinel on port {}: {e}", self.port))
    }

    fn master_port(&self) -> Result<u16, String> {
        let mut conn = self.connection()?;
        let (_, port): (String, u16) = ::redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER_NAME)
            .query(&mut conn)
            .map_err(|e| e.to_string())?;
        Ok(port)
    }

    /// How many replicas and other Sentinels this one knows.
    fn watching(&self) -> Result<(usize, usize), String> {
        let mut conn = self.connection()?;
        let count = |what: &str, conn: &mut ::redis::Connection| {
            ::redis::cmd("SENTINEL")
                .arg(what)
                .arg(MASTER_NAME)
                .query::<Vec<::redis::Value>>(conn)
                .map(|v| v.len())
                .map_err(|e| e.to_string())
        };
        Ok((
            count("REPLICAS", &mut conn)?,
            count("SENTINELS", &mut conn)?,
        ))
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a plain server on `port` answers `PING`, with `+PONG` or by
/// asking for a password.
fn ping_or_auth(port: u16) -> bool {
    use std::io::{Read, Write};
    if ping(port) {
        return true;
    }
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"-NOAUTH"))
}

/// A connection to the server on 127.0.0.1:`port`, over TLS with the
/// test CA's client certificate when `tls` is given, logging in with
/// `password` when given.
fn connect(
    port: u16,
    tls: Option<&ServerTls>,
    password: Option<&str>,
) -> Result<::redis::Connection, String> {
    let login = password.map(|p| format!(":{p}@")).unwrap_or_default();
    let client = match tls {
        None => ::redis::Client::open(format!("redis://{login}127.0.0.1:{port}")),
        Some(tls) => {
            let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
            ::redis::Client::build_with_tls(
                format!("rediss://{login}127.0.0.1:{port}"),
                ::redis::TlsCertificates {
                    client_tls: Some(::redis::ClientTlsConfig {
                        client_cert: read(&tls.client_cert)?,
                        client_key: read(&tls.client_key)?,
                    }),
                    root_cert: Some(read(&tls.ca)?),
                },
            )
        }
    };
    client
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
        .map_err(|e| e.to_string())
}

/// A field (`role`, `master_link_status`) of `INFO replication` of the
/// server on `port`.
fn info_field(port: u16, tls: Option<&ServerTls>, field: &str) -> Result<String, String> {
    let mut conn = connect(port, tls, None)?;
    let info: String = ::redis::cmd("INFO")
        .arg("replication")
        .query(&mut conn)
        .map_err(|e| e.to_string())?;
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|r| r.trim().to_owned())
        .ok_or_else(|| format!("no {field} in INFO replication"))
}
