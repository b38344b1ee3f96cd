//! Running the built `tidings` binary, shared by the test files that start
//! a private `redis-server`.

// Each test file compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::process::{Command, Output};

use serde_json::Value;
use tidings_testkit::RedisServer;

/// Runs the binary with `args` only: `REDIS_URL` of the environment is
/// removed, so that a test says which server it means. The commands that
/// ask before they delete (`dlq purge`, `groups delete`, `streams trim`)
/// are answered `--yes`, as a script answers them; `asks` runs them as given.
pub(crate) fn tidings(args: &[&str]) -> Output {
    let deletes = ["purge", "delete", "trim"]
        .iter()
        .any(|c| args.get(1) == Some(c))
        && !args.contains(&"--help");
    let mut all = args.to_vec();
    if deletes {
        all.push("--yes");
    }
    asks(&all)
}

/// Runs the binary with exactly `args`, stdin not a terminal.
pub(crate) fn asks(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(args)
        .env_remove("REDIS_URL")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the tidings binary runs")
}

/// Runs the binary against `server`, whatever its exit status.
pub(crate) fn run(server: &RedisServer, args: &[&str]) -> Output {
    let url = server.url();
    let mut all = args.to_vec();
    all.extend(["--redis-url", &url]);
    tidings(&all)
}

/// Runs the binary against `server` and expects success; its stdout.
pub(crate) fn ok(server: &RedisServer, args: &[&str]) -> String {
    let out = run(server, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "tidings {args:?} failed: {}",
        stderr(&out)
    );
    stdout(&out)
}

/// [`ok`], its stdout read as one JSON document.
pub(crate) fn json(server: &RedisServer, args: &[&str]) -> Value {
    let text = ok(server, args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
