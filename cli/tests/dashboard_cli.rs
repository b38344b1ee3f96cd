//! `tidings dashboard`: serves the page on the address it prints, on
//! loopback by default, with a warning when bound elsewhere.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tidings_testkit::RedisServer;

const WITHIN: Duration = Duration::from_secs(10);

/// A running `tidings dashboard`, killed on drop.
struct Running {
    child: Child,
    /// `host:port` it printed.
    addr: String,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(redis: &RedisServer, args: &[&str]) -> Running {
    let schemas = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("dashboard")
        .args(args)
        .args(["--redis-url", &redis.url(), "--schemas", schemas])
        .env_remove("REDIS_URL")
        .env_remove("TIDINGS_DASHBOARD_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tidings binary runs");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (etx, erx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = etx.send(line);
        }
    });
    let line = rx.recv_timeout(WITHIN).unwrap_or_else(|_| {
        panic!(
            "no address printed: {:?}",
            erx.try_iter().collect::<Vec<_>>()
        )
    });
    let addr = line
        .strip_prefix("tidings dashboard on http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    Running {
        child,
        addr,
        stderr: erx,
    }
}

/// `GET path` over HTTP/1.0; the whole answer.
fn get(addr: &str, path: &str, headers: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WITHIN)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serves_the_page_on_loopback_with_no_warning() {
    let redis = RedisServer::start();
    let running = start(&redis, &["--bind", "127.0.0.1:0"]);
    assert!(running.addr.starts_with("127.0.0.1:"), "{}", running.addr);
    let page = get(&running.addr, "/", "");
    assert!(
        page.starts_with("HTTP/1.0 200") || page.starts_with("HTTP/1.1 200"),
        "{page}"
    );
    assert!(page.contains("<title>tidings dashboard</title>"));
    assert!(
        !page.contains("__TIDINGS_CSRF__"),
        "the CSRF token is filled in"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no CDN"
    );
    let schemas = get(&running.addr, "/api/schemas", "");
    assert!(schemas.contains("contextual/file.uploaded"), "{schemas}");
    assert!(running.stderr.try_iter().all(|l| !l.contains("warning")));
}

#[test]
fn warns_when_bound_beyond_loopback_and_asks_for_the_token() {
    let redis = RedisServer::start();
    let running = start(&redis, &["--bind", "0.0.0.0:0", "--token", "t0k"]);
    let warning = running.stderr.recv_timeout(WITHIN).unwrap();
    assert!(
        warning.starts_with("warning: the dashboard listens on 0.0.0.0:"),
        "{warning}"
    );
    assert!(
        warning.contains("reachable from other machines"),
        "{warning}"
    );
    let port = running.addr.rsplit(':').next().unwrap();
    let local = format!("127.0.0.1:{port}");
    assert!(get(&local, "/", "").contains(" 401 "));
    assert!(get(&local, "/", "Authorization: Bearer t0k\r\n").contains(" 200 "));
}
