//! A private PostgreSQL per test: its own cluster (`initdb`) in a temporary
//! directory, on a free loopback port with its own socket directory, never
//! the machine's server on 5432; stopped and removed on drop, restartable on
//! the same port for fault tests.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: there the
//! harness runs `initdb`, `postgres` and `pg_ctl` as the `postgres` system
//! user (`runuser -u postgres -- …`) in a directory handed to that user.
//! Run as anyone else, it runs them directly.

use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{self, Program, StartError};

const POSTGRES: Program = Program {
    name: "postgres",
    install: "Debian/Ubuntu: `apt-get install postgresql`, with its bin directory \
              (/usr/lib/postgresql/<version>/bin) on PATH",
};

/// The system user the servers run as when the tests run as root.
const SYSTEM_USER: &str = "postgres";

/// A running PostgreSQL owned by one test (or one benchmark run), with the
/// superuser `postgres` and password-less (`trust`) logins on 127.0.0.1
/// only; stopped and its directory removed on drop.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    dir: PathBuf,
    as_user: bool,
    child: Option<Child>,
}

impl PostgresServer {
    /// Starts a server on a fresh cluster.
    ///
    /// # Panics
    ///
    /// When the server cannot start: `initdb` or `postgres` missing from
    /// `PATH`, or, as root, no way to run them as the `postgres` user (the
    /// message says which; a test must not skip).
    #[track_caller]
    pub fn start() -> Self {
        match Self::try_start() {
            Ok(server) => server,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts a server, or says why it could not.
    pub fn try_start() -> Result<Self, String> {
        let as_user = running_as_root();
        if as_user {
            check_system_user()?;
        }
        process::on_free_port(POSTGRES, |port| {
            let dir = std::env::temp_dir()
                .join(format!("tidings-postgres-{}-{port}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("socket"))
                .map_err(|e| StartError::Failed(format!("{}: {e}", dir.display())))?;
            let mut server = PostgresServer {
                port,
                dir,
                as_user,
                child: None,
            };
            if as_user {
                server.hand_over()?;
            }
            server.initdb()?;
            server.spawn()?;
            Ok(server)
        })
        .map_err(StartError::message)
    }

    /// A command that runs `program` as the user the server runs as.
    fn command(&self, program: &str) -> Command {
        if self.as_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", SYSTEM_USER, "--", program]);
            cmd
        } else {
            Command::new(program)
        }
    }

    /// Gives the directory to the `postgres` user, which must own its data.
    fn hand_over(&self) -> Result<(), StartError> {
        let status = Command::new("chown")
            .args(["-R", &format!("{SYSTEM_USER}:")])
            .arg(&self.dir)
            .status()
            .map_err(|e| StartError::Missing(format!("running chown: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(StartError::Missing(format!(
                "chown of {} to the `{SYSTEM_USER}` user failed: {status}",
                self.dir.display()
            )))
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn initdb(&self) -> Result<(), StartError> {
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StartError::Missing(format!(
                    "`{}` was not found on PATH; these tests need `initdb` and `postgres` ({})",
                    if self.as_user { "runuser" } else { "initdb" },
                    POSTGRES.install
                )),
                _ => StartError::Failed(format!("running initdb: {e}")),
            })?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        // A missing program, under runuser, is runuser's error, not ours.
        let missing = stderr.contains("No such file") || output.status.code() == Some(127);
        let message = format!(
            "initdb failed ({}){}: {}",
            output.status,
            if self.as_user {
                format!(" as the `{SYSTEM_USER}` user")
            } else {
                String::new()
            },
            stderr.trim()
        );
        Err(if missing {
            StartError::Missing(format!("{message} ({})", POSTGRES.install))
        } else {
            StartError::Failed(message)
        })
    }

    fn spawn(&mut self) -> Result<(), StartError> {
        let mut cmd = self.command(POSTGRES.name);
        cmd.arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(self.dir.join("socket"))
            .args(["-c", "listen_addresses=127.0.0.1"])
            // A test's server lives for seconds: no fsync (a killed server
            // still recovers from its WAL; only a machine crash would lose
            // data), and room for the tests' pools.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=100", "-c", "shared_buffers=32MB"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let pid_file = self.data().join("postmaster.pid");
        self.child = Some(process::spawn_ready(
            POSTGRES,
            &mut cmd,
            self.port,
            |port| ready(&pid_file, port),
        )?);
        Ok(())
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port the server listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m
    /// immediate`: no checkpoint, every connection cut; the next start
    /// recovers from the write-ahead log).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["stop", "-m", "immediate", "-w", "-t", "10"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // Through runuser, the child is runuser, which ends with postgres.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops the server as [`PostgresServer::stop`] does and starts it
    /// again on the same port and data, so clients reconnect to the same
    /// URL and find what was committed.
    ///
    /// # Panics
    ///
    /// When the server does not come back.
    #[track_caller]
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("could not restart postgres: {}", e.message());
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the harness runs as root, where PostgreSQL will not run.
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Checks, as root, that the `postgres` system user exists and `runuser`
/// can run commands as it.
fn check_system_user() -> Result<(), String> {
    let out = Command::new("runuser")
        .args(["-u", SYSTEM_USER, "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "PostgreSQL refuses to run as root, and running it as the `{SYSTEM_USER}` user \
             failed (`runuser -u {SYSTEM_USER} -- true`: {}: {}); create that user \
             (the postgresql package does) or run the tests as another user",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!(
            "PostgreSQL refuses to run as root, and `runuser` (to run it as the \
             `{SYSTEM_USER}` user) could not be run: {e}; install util-linux or run the \
             tests as another user"
        )),
    }
}

/// Whether the server says it is ready (the state line of `postmaster.pid`)
/// and takes connections on `port`.
fn ready(pid_file: &Path, port: u16) -> bool {
    let ready = std::fs::read_to_string(pid_file)
        .is_ok_and(|s| s.lines().nth(7).is_some_and(|l| l.trim() == "ready"));
    ready && TcpStream::connect(("127.0.0.1", port)).is_ok()
}
