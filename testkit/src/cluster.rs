//! A private Redis Cluster per test: three masters and three replicas
//! (`redis-server --cluster-enabled yes` ×6, joined by `redis-cli --cluster
//! create … --cluster-replicas 1`), on free loopback ports below 55,536
//! (each node's cluster bus listens 10,000 above), with a node timeout of
//! 1 s so that a killed master is replaced within a few seconds; every node
//! killed on drop.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use tidings_testkit::ClusterSet;
//! let mut cluster = ClusterSet::start();
//! let url = cluster.url(); // redis+cluster://127.0.0.1:p1,127.0.0.1:p2,…
//! let port = cluster.master_of("tidings:{orders}:stream").unwrap();
//! cluster.kill(port);
//! cluster.wait_ok(Duration::from_secs(20)).unwrap();
//! ```
//!
//! [`ClusterSet::start_tls`] starts one that speaks TLS only, between its
//! nodes too (`tls-cluster`, `tls-replication`); the kit then asks its
//! nodes through `redis-cli --tls`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis::{RedisOptions, RedisServer, ServerTls};
use crate::TestCa;

/// Three masters and their three replicas, joined in one cluster.
#[derive(Debug)]
pub struct ClusterSet {
    nodes: Vec<RedisServer>,
    /// The files of a cluster that speaks TLS.
    tls: Option<ServerTls>,
}

impl ClusterSet {
    /// Starts six nodes, joins them (three masters, one replica each), and
    /// waits (up to 30 s) until every node says `cluster_state:ok`.
    ///
    /// # Panics
    ///
    /// When a node cannot start (`redis-server` or `redis-cli` not on
    /// `PATH` first of all) or the cluster is not whole in time.
    #[track_caller]
    pub fn start() -> ClusterSet {
        match Self::try_start() {
            Ok(set) => set,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts the cluster, or says why it could not.
    pub fn try_start() -> Result<ClusterSet, String> {
        Self::try_start_with(None)
    }

    /// [`ClusterSet::start`], speaking TLS only with certificates of `ca`:
    /// to clients, which must show one of its client certificates, and
    /// between nodes (`tls-cluster yes`, `tls-replication yes`, each node
    /// showing the CA's client certificate to the others).
    ///
    /// # Panics
    ///
    /// As [`ClusterSet::start`].
    #[track_caller]
    pub fn start_tls(ca: &TestCa) -> ClusterSet {
        match Self::try_start_with(Some(ca)) {
            Ok(set) => set,
            Err(e) => panic!("{e}"),
        }
    }

    fn try_start_with(ca: Option<&TestCa>) -> Result<ClusterSet, String> {
        let mut options = RedisOptions::default()
            .cluster_node()
            .config("repl-diskless-sync-delay", "0");
        if let Some(ca) = ca {
            options = options
                .tls(ca)
                .config("tls-cluster", "yes")
                .config("tls-replication", "yes")
                .config(
                    "tls-client-cert-file",
                    ca.client_cert().display().to_string(),
                )
                .config("tls-client-key-file", ca.client_key().display().to_string());
        }
        let tls = options.tls.clone();
        let mut nodes = Vec::new();
        for _ in 0..6 {
            nodes.push(RedisServer::try_with_options(options.clone())?);
        }
        let mut cmd = Command::new("redis-cli");
        if let Some(tls) = &tls {
            cli_tls(&mut cmd, tls);
        }
        cmd.arg("--cluster").arg("create");
        for node in &nodes {
            cmd.arg(format!("127.0.0.1:{}", node.port()));
        }
        cmd.args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null());
        let out = cmd.output().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "`redis-cli` was not found on PATH; the cluster tests \
                 need it (Debian/Ubuntu: `apt-get install redis-tools`)"
                .to_string(),
            _ => format!("running redis-cli --cluster create: {e}"),
        })?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        let set = ClusterSet { nodes, tls };
        set.wait_ok(Duration::from_secs(30))?;
        Ok(set)
    }

    /// `redis+cluster://127.0.0.1:<p1>,…` naming every node started; over
    /// TLS, `rediss+cluster://…/?tls_ca=…&tls_cert=…&tls_key=…` with the
    /// test CA and its client certificate.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        match &self.tls {
            None => format!("redis+cluster://{}", hosts.join(",")),
            Some(tls) => format!(
                "rediss+cluster://{}/?tls_ca={}&tls_cert={}&tls_key={}",
                hosts.join(","),
                tls.ca.display(),
                tls.client_cert.display(),
                tls.client_key.display()
            ),
        }
    }

    /// The nodes, in the order they were started.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The ports of the nodes that are masters now and not failed, as a
    /// live node sees them.
    pub fn masters(&self) -> Result<Vec<u16>, String> {
        let nodes = self.ask_any(&["CLUSTER", "NODES"])?;
        Ok(nodes
            .lines()
            .filter(|l| {
                let flags = l.split(' ').nth(2).unwrap_or("");
                flags.contains("master") && !flags.contains("fail")
            })
            .filter_map(node_port)
            .collect())
    }

    /// The port of the master serving the slot of `key` now.
    pub fn master_of(&self, key: &str) -> Result<u16, String> {
        let slot: u16 = self
            .ask_any(&["CLUSTER", "KEYSLOT", key])?
            .trim()
            .parse()
            .map_err(|e| format!("CLUSTER KEYSLOT: {e}"))?;
        let nodes = self.ask_any(&["CLUSTER", "NODES"])?;
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            for range in &fields[8..] {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) {
                    if (lo..=hi).contains(&slot) {
                        return node_port(line).ok_or_else(|| format!("no port in `{line}`"));
                    }
                }
            }
        }
        Err(format!("no live master serves slot {slot} of `{key}`"))
    }

    /// Kills the node on `port` (SIGKILL, as in a crash).
    ///
    /// # Panics
    ///
    /// When no node of the cluster listens on `port`.
    pub fn kill(&mut self, port: u16) {
        self.nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no cluster node on port {port}"))
            .stop();
    }

    /// Moves the slot of `key` to the master on `to`, as `redis-cli
    /// --cluster reshard` does for each slot: `CLUSTER SETSLOT … IMPORTING`
    /// on `to`, `MIGRATING` on the owner, `MIGRATE` of the slot's keys a
    /// hundred at a time (clients meanwhile get `ASK` for keys already
    /// moved), then `CLUSTER SETSLOT … NODE` on every master (clients then
    /// get `MOVED`). Returns the port the slot was on.
    pub fn move_slot_of(&self, key: &str, to: u16) -> Result<u16, String> {
        let from = self.start_moving_slot_of(key, to)?;
        self.end_moving_slot_of(key, to)?;
        Ok(from)
    }

    /// The first half of [`ClusterSet::move_slot_of`]: the slot of `key`
    /// is importing on `to` and migrating on its owner, and its keys are
    /// on `to` already, so that a command on `key` gets `ASK` from the
    /// owner. Returns the owner's port.
    pub fn start_moving_slot_of(&self, key: &str, to: u16) -> Result<u16, String> {
        let from = self.master_of(key)?;
        if from == to {
            return Err(format!("the slot of `{key}` is already on {to}"));
        }
        if self.tls.is_some() {
            return Err("the test kit moves slots of a plain cluster only".into());
        }
        let slot = ask(from, &["CLUSTER", "KEYSLOT", key])?;
        let from_id = ask(from, &["CLUSTER", "MYID"])?;
        let to_id = ask(to, &["CLUSTER", "MYID"])?;
        ask(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id])?;
        ask(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id])?;
        let port = to.to_string();
        loop {
            let keys = ask_keys(from, &slot)?;
            if keys.is_empty() {
                break;
            }
            let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            args.extend(keys.iter().map(String::as_str));
            ask(from, &args)?;
        }
        Ok(from)
    }

    /// The second half of [`ClusterSet::move_slot_of`]: the slot of `key`
    /// is `to`'s on every master.
    pub fn end_moving_slot_of(&self, key: &str, to: u16) -> Result<(), String> {
        let slot = ask(to, &["CLUSTER", "KEYSLOT", key])?;
        let to_id = ask(to, &["CLUSTER", "MYID"])?;
        for master in self.masters()? {
            ask(master, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id])?;
        }
        Ok(())
    }

    /// Starts the node on `port` again, with its `nodes.conf`: it rejoins
    /// the cluster, as a replica of whichever node took its slots.
    ///
    /// # Panics
    ///
    /// When no node of the cluster listens on `port`, or it does not start.
    #[track_caller]
    pub fn restart(&mut self, port: u16) {
        self.nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no cluster node on port {port}"))
            .restart();
    }

    /// Waits until every running node says `cluster_state:ok` and three
    /// masters serve the slots, all of them running (a killed master has
    /// been replaced), or says what it saw last.
    pub fn wait_ok(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut last;
        loop {
            last = self.state();
            if last.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the cluster is not whole within {within:?}: {}",
                    last.unwrap_err()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn state(&self) -> Result<(), String> {
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let info = self.ask(node.port(), &["CLUSTER", "INFO"])?;
            if !info.contains("cluster_state:ok") {
                return Err(format!("node {} is not ok", node.port()));
            }
        }
        let masters = self.masters()?;
        let running: Vec<u16> = self
            .nodes
            .iter()
            .filter(|n| n.is_running())
            .map(RedisServer::port)
            .collect();
        if let Some(dead) = masters.iter().find(|m| !running.contains(m)) {
            return Err(format!("the killed node {dead} is still a master"));
        }
        match masters.len() {
            3 => Ok(()),
            n => Err(format!("{n} live masters")),
        }
    }

    fn ask_any(&self, args: &[&str]) -> Result<String, String> {
        let mut last = String::from("no node is running");
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            match self.ask(node.port(), args) {
                Ok(reply) => return Ok(reply),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

impl ClusterSet {
    /// One command to the node on `port`: over TCP, or through
    /// `redis-cli --tls` for a TLS cluster.
    fn ask(&self, port: u16, args: &[&str]) -> Result<String, String> {
        let Some(tls) = &self.tls else {
            return ask(port, args);
        };
        let mut cmd = Command::new("redis-cli");
        cli_tls(&mut cmd, tls);
        let out = cmd
            .args(["-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running redis-cli: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).trim_end().to_owned();
        // redis-cli prints an error reply as its text, and exits with 1 on
        // one only from 7.2 on.
        let error = [
            "ERR ",
            "CLUSTERDOWN",
            "MOVED ",
            "Could not connect",
            "Error: ",
        ];
        if !out.status.success() || error.iter().any(|e| text.starts_with(e)) {
            return Err(format!(
                "node {port}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(text)
    }
}

/// `redis-cli`'s options for a server of the test CA.
fn cli_tls(cmd: &mut Command, tls: &ServerTls) {
    cmd.arg("--tls")
        .arg("--cacert")
        .arg(&tls.ca)
        .arg("--cert")
        .arg(&tls.client_cert)
        .arg("--key")
        .arg(&tls.client_key);
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[&str]) -> String {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    out
}

/// Up to 100 keys of `slot` on the node at `port` (`CLUSTER GETKEYSINSLOT`).
fn ask_keys(port: u16, slot: &str) -> Result<Vec<String>, String> {
    let fail = |e: std::io::Error| format!("node {port}: {e}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(fail)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(fail)?;
    s.write_all(encode(&["CLUSTER", "GETKEYSINSLOT", slot, "100"]).as_bytes())
        .map_err(fail)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut chunk).map_err(fail)?;
        if n == 0 {
            return Err(format!("node {port} closed the connection"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(keys) = parse_array(&buf)? {
            return Ok(keys);
        }
    }
}

/// An array of bulk strings, or `None` while it is not whole.
fn parse_array(buf: &[u8]) -> Result<Option<Vec<String>>, String> {
    let line = |at: usize| -> Option<(String, usize)> {
        let end = at + buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        Some((String::from_utf8_lossy(&buf[at..end]).into_owned(), end + 2))
    };
    let Some((head, mut at)) = line(0) else {
        return Ok(None);
    };
    let count: usize = head
        .strip_prefix('*')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("not an array: `{head}`"))?;
    let mut keys = Vec::with_capacity(count);
    for _ in 0..count {
        let Some((len, next)) = line(at) else {
            return Ok(None);
        };
        let len: usize = len
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("not a bulk string: `{len}`"))?;
        if buf.len() < next + len + 2 {
            return Ok(None);
        }
        keys.push(String::from_utf8_lossy(&buf[next..next + len]).into_owned());
        at = next + len + 2;
    }
    Ok(Some(keys))
}

/// The port of a `CLUSTER NODES` line (`id ip:port@bus flags …`).
fn node_port(line: &str) -> Option<u16> {
    let addr = line.split(' ').nth(1)?;
    let addr = addr.split('@').next()?;
    addr.rsplit_once(':')?.1.parse().ok()
}

/// Sends one command to 127.0.0.1:`port` and reads a bulk string, simple
/// string or integer reply, as text.
pub(crate) fn ask(port: u16, args: &[&str]) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("node {port}: {e}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(fail)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(fail)?;
    s.write_all(encode(args).as_bytes()).map_err(fail)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut chunk).map_err(fail)?;
        if n == 0 {
            return Err(format!("node {port} closed the connection"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[1..end]).into_owned();
        match buf[0] {
            b'+' | b':' => return Ok(head),
            b'-' => return Err(format!("node {port}: {head}")),
            b'$' => {
                let len: usize = head
                    .parse()
                    .map_err(|_| format!("node {port}: bad bulk length `{head}`"))?;
                if buf.len() >= end + 2 + len + 2 {
                    let body = &buf[end + 2..end + 2 + len];
                    return Ok(String::from_utf8_lossy(body).into_owned());
                }
            }
            other => return Err(format!("node {port}: unexpected reply type `{other}`")),
        }
    }
}
