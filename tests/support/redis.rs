//! A private `redis-server` per test: a free port, no persistence unless
//! asked, killed on drop, restartable on the same port for fault tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Options of a test server.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `--appendonly yes|no`.
    pub appendonly: bool,
    /// `--appendfsync always|everysec|no`, when `appendonly`.
    pub appendfsync: &'static str,
    /// Extra `--name value` arguments.
    pub extra: Vec<(String, String)>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            appendonly: false,
            appendfsync: "everysec",
            extra: Vec::new(),
        }
    }
}

/// A running `redis-server` owned by one test.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    options: RedisOptions,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server with no persistence (`--save "" --appendonly no`).
    pub fn start() -> Self {
        Self::with_options(RedisOptions::default())
    }

    /// Starts a server that loses no acknowledged write when killed:
    /// `--appendonly yes --appendfsync always`.
    pub fn durable() -> Self {
        Self::with_options(RedisOptions {
            appendonly: true,
            appendfsync: "always",
            extra: Vec::new(),
        })
    }

    /// Starts a server with the given options.
    pub fn with_options(options: RedisOptions) -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("tidings-redis-{}-{port}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let mut server = RedisServer {
                port,
                dir,
                options: options.clone(),
                child: None,
            };
            match server.spawn() {
                Ok(()) => return server,
                // Another process may have taken the port between probing
                // and binding: try another one.
                Err(e) => last = e,
            }
        }
        panic!("could not start redis-server: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg(if self.options.appendonly { "yes" } else { "no" })
            .arg("--dir")
            .arg(&self.dir)
            .arg("--daemonize")
            .arg("no")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.options.appendonly {
            cmd.arg("--appendfsync").arg(self.options.appendfsync);
        }
        for (k, v) in &self.options.extra {
            cmd.arg(format!("--{k}")).arg(v);
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "`redis-server` was not found on PATH; the Redis tests need it \
                 (Debian/Ubuntu: `apt-get install redis-server`)"
            ),
            Err(e) => return Err(format!("spawning redis-server: {e}")),
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "redis-server on port {} exited: {status}",
                        self.port
                    ));
                }
            }
            if ping(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(format!(
            "redis-server on port {} did not answer PING",
            self.port
        ))
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: no chance to save, as in a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("could not restart redis-server: {e}");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free local port")
}

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
