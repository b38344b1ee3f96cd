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

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{self, Program, StartError};
use crate::redis::{ping, RedisOptions, RedisServer};

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
}

#[derive(Debug)]
struct Sentinel {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
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
        // Redis waits 5 s by default before a diskless full sync, in case
        // more replicas come: here the replica is in step at once.
        let options = RedisOptions::default().config("repl-diskless-sync-delay", "0");
        let master = RedisServer::try_with_options(options.clone())?;
        let replica = RedisServer::try_with_options(options.replica_of(master.port()))?;
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(Sentinel::start(master.port()).map_err(StartError::message)?);
        }
        let set = SentinelSet {
            master,
            replica,
            sentinels,
        };
        set.wait_watching(Duration::from_secs(20))?;
        Ok(set)
    }

    /// `redis+sentinel://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>/tidings-test`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
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
                if port != first && info_field(port, "role").as_deref() == Ok("master") {
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
        let mut conn = ::redis::Client::open(format!("redis://127.0.0.1:{old}"))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;
        ::redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(new)
            .query::<()>(&mut conn)
            .map_err(|e| format!("REPLICAOF on the old master: {e}"))?;
        while Instant::now() < deadline {
            if info_field(old, "role").as_deref() == Ok("slave") {
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
            let linked = info_field(self.replica.port(), "master_link_status");
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
    fn start(master: u16) -> Result<Sentinel, StartError> {
        process::on_free_port(SENTINEL, |port| {
            let dir = std::env::temp_dir()
                .join(format!("tidings-sentinel-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .map_err(|e| StartError::Failed(format!("{}: {e}", dir.display())))?;
            let down = DOWN_AFTER.as_millis();
            let conf = format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
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
            let child = process::spawn_ready(SENTINEL, &mut cmd, port, ping)?;
            Ok(Sentinel {
                port,
                dir,
                child: Some(child),
            })
        })
    }

    fn connection(&self) -> Result<::redis::Connection, String> {
        ::redis::Client::open(format!("redis://127.0.0.1:{}", self.port))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
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

/// A field (`role`, `master_link_status`) of `INFO replication` of the
/// server on `port`.
fn info_field(port: u16, field: &str) -> Result<String, String> {
    let mut conn = ::redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let info: String = ::redis::cmd("INFO")
        .arg("replication")
        .query(&mut conn)
        .map_err(|e| e.to_string())?;
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|r| r.trim().to_owned())
        .ok_or_else(|| format!("no {field} in INFO replication"))
}
