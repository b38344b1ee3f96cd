//! Instructions executed, counted by valgrind's callgrind: the measure of a
//! CPU-bound loop that the machine's noise and code placement do not move.
//!
//! The benchmark runs itself as a child process under callgrind twice per
//! side, doing the work `n` times and 0 times; the difference over `n` is
//! the count per call, with the process's start-up left out.

use std::path::Path;
use std::process::Command;

/// An error of an instruction count.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether `valgrind` is on PATH.
pub fn available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Instructions executed by `exe` run under callgrind with `envs`.
pub fn count(exe: &Path, envs: &[(&str, String)]) -> Result<u64, BoxError> {
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg("--callgrind-out-file=/dev/null")
        .arg(exe);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "callgrind run of {} failed ({}): {stderr}",
            exe.display(),
            out.status
        )
        .into());
    }
    collected(&stderr).ok_or_else(|| {
        format!(
            "callgrind printed no `Collected :` line for {}: {stderr}",
            exe.display()
        )
        .into()
    })
}

/// The total of callgrind's `==pid== Collected : <n>` summary line.
pub fn collected(stderr: &str) -> Option<u64> {
    stderr.lines().rev().find_map(|l| {
        let (_, rest) = l.split_once("Collected :")?;
        rest.trim().parse().ok()
    })
}

/// Instructions per call: `(with_n - with_0) / n`.
pub fn per_call(with_n: u64, with_0: u64, n: u64) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    with_n.saturating_sub(with_0) as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_collected_total() {
        let stderr = "==25865== Events    : Ir\n==25865== Collected : 3783819513\n==25865== \n==25865== I   refs:      3,783,819,513\n";
        assert_eq!(collected(stderr), Some(3_783_819_513));
        assert_eq!(collected("==1== I   refs: 12\n"), None);
        assert_eq!(collected("==1== Collected : many\n"), None);
    }

    #[test]
    fn per_call_leaves_the_start_up_out() {
        assert_eq!(per_call(1_000_500, 500, 1000), 1000.0);
        assert!(per_call(10, 5, 0).is_nan());
        assert_eq!(per_call(5, 10, 1), 0.0);
    }
}
