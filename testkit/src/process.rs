//! What every private server shares: a free loopback port, a program found
//! on `PATH` (or a failure that names it), and a wait until it answers.

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A server program looked up on `PATH`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Program {
    /// Its file name.
    pub(crate) name: &'static str,
    /// How to install it, said when it is missing.
    pub(crate) install: &'static str,
}

/// Why a server did not start.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The program is not on `PATH`: no other port or try can help.
    Missing(String),
    /// This try failed (the port was taken, the server exited or stayed
    /// silent); another port may work.
    Failed(String),
}

impl StartError {
    pub(crate) fn message(self) -> String {
        match self {
            StartError::Missing(m) | StartError::Failed(m) => m,
        }
    }
}

/// Calls `start` with a free port until it succeeds, five times at most:
/// another process may take the probed port before the server binds it.
pub(crate) fn on_free_port<T>(
    program: Program,
    mut start: impl FnMut(u16) -> Result<T, StartError>,
) -> Result<T, StartError> {
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port().map_err(StartError::Failed)?;
        match start(port) {
            Ok(server) => return Ok(server),
            Err(StartError::Failed(e)) => last = e,
            Err(missing) => return Err(missing),
        }
    }
    Err(StartError::Failed(format!(
        "could not start {}: {last}",
        program.name
    )))
}

/// Spawns `cmd` (which runs `program`) and waits up to 10 s until `ready(port)`.
/// The child is killed if it does not get there.
pub(crate) fn spawn_ready(
    program: Program,
    cmd: &mut Command,
    port: u16,
    ready: impl Fn(u16) -> bool,
) -> Result<Child, StartError> {
    let name = program.name;
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => StartError::Missing(format!(
            "`{name}` was not found on PATH; these tests need it ({})",
            program.install
        )),
        _ => StartError::Failed(format!("spawning {name}: {e}")),
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StartError::Failed(format!(
                "{name} on port {port} exited: {status}"
            )));
        }
        if ready(port) {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(StartError::Failed(format!(
        "{name} on port {port} did not become ready within 10 s"
    )))
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// A free port below 55,536 whose port 10,000 above (a cluster node's bus)
/// is free too; the probe stops after 100 ports.
pub(crate) fn free_cluster_port() -> Result<u16, String> {
    for _ in 0..100 {
        let port = free_port()?;
        if port < 55_536 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free loopback port below 55,536 with its cluster bus port free".into())
}
