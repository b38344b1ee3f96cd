//! What Redis itself serves for the benchmark's entry: `redis-benchmark`,
//! Redis's own C client, against the same server in the same run.
//!
//! `redis-benchmark` costs its client next to nothing (it does not even read
//! the replies it gets into values), so its figure is what the server can do
//! for this entry on this machine: the ceiling any client can approach and
//! none can pass through the same number of connections.

use std::process::Command;

use crate::events::FileUploaded;

/// An error of a ceiling measurement.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `XADD` arguments after the key: the same 9 attributes as the raw
/// baseline (`raw.rs`) writes, the payload of sample event 42.
fn xadd_args() -> Vec<String> {
    let data = serde_json::to_string(&FileUploaded::sample(42, 0)).unwrap_or_default();
    let mut id = [0u8; ulid::ULID_LEN];
    let id = ulid::Ulid::new().array_to_str(&mut id).to_owned();
    [
        "*",
        "specversion",
        "1.0",
        "id",
        &id,
        "source",
        "bench",
        "type",
        "file.uploaded",
        "time",
        "2026-11-24T10:00:00.123Z",
        "datacontenttype",
        "application/json",
        "dataschema",
        "schemas/bench/file.uploaded/v3.json",
        "dataversion",
        "3",
        "data",
        &data,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Whether `redis-benchmark` and `redis-cli` are on PATH (they come with
/// redis-server in most packages, but not in all).
pub fn available() -> bool {
    ["redis-benchmark", "redis-cli"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Requests per second of one `redis-benchmark` run: `clients` connections,
/// `pipeline` requests in flight on each, `requests` in all.
fn redis_benchmark(
    port: u16,
    clients: usize,
    pipeline: usize,
    requests: usize,
    command: &[String],
) -> Result<f64, BoxError> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &clients.to_string(), "-P", &pipeline.to_string()])
        .args(["-n", &requests.to_string(), "--csv"])
        .args(command)
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "`redis-benchmark` is not on PATH (it comes with redis-server)".to_owned()
            }
            _ => format!("running redis-benchmark: {e}"),
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "redis-benchmark failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    // `"test","rps",…` then `"<command>","<rps>",…`.
    let rps = stdout
        .lines()
        .nth(1)
        .and_then(|line| line.rsplit("\",\"").nth(6))
        .and_then(|v| v.trim_matches('"').parse::<f64>().ok())
        .ok_or_else(|| format!("no requests per second in redis-benchmark's output: {stdout}"))?;
    Ok(rps)
}

/// `redis-cli <args>` against the server.
fn cli(port: u16, args: &[&str]) -> Result<(), BoxError> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.starts_with("ERR") {
        return Err(format!("redis-cli {args:?}: {text}").into());
    }
    Ok(())
}

/// `key` deleted, then `n` of the benchmark's entries appended to it by
/// `redis-benchmark`; returns its requests per second.
fn append(
    port: u16,
    key: &str,
    clients: usize,
    pipeline: usize,
    n: usize,
) -> Result<f64, BoxError> {
    cli(port, &["DEL", key])?;
    let mut command = vec!["XADD".to_owned(), key.to_owned()];
    command.extend(xadd_args());
    redis_benchmark(port, clients, pipeline, n, &command)
}

/// Entries appended per second by `XADD` of the benchmark's entry to an
/// empty stream (deleted again afterwards).
pub fn xadd(
    port: u16,
    key: &str,
    clients: usize,
    pipeline: usize,
    n: usize,
) -> Result<f64, BoxError> {
    let rps = append(port, key, clients, pipeline, n)?;
    cli(port, &["DEL", key])?;
    Ok(rps)
}

/// Entries read per second by `XREADGROUP … COUNT 100` from a stream of `n`
/// such entries under a fresh group, in `n / 100` reads (each one full);
/// nothing is acknowledged, so this is less work than consume + ack.
pub fn xreadgroup_100(port: u16, key: &str, clients: usize, n: usize) -> Result<f64, BoxError> {
    let group = "ceiling";
    append(port, key, 4, 100, n)?;
    cli(port, &["XGROUP", "CREATE", key, group, "0"])?;
    let command: Vec<String> = ["XREADGROUP", "GROUP", group, "reader", "COUNT", "100"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(["STREAMS".to_owned(), key.to_owned(), ">".to_owned()])
        .collect();
    let reads = n / 100;
    let calls_per_second = redis_benchmark(port, clients, 1, reads, &command)?;
    cli(port, &["DEL", key])?;
    Ok(calls_per_second * 100.0)
}
