//! What the commands that talk to Redis share: the connection options, the
//! output format, failures and their exit status, and plain-text tables.

use std::fmt::Write as _;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tidings_runtime::streams::{Endpoint, TlsFiles};
use tidings_runtime::{Bus, Error};

/// How long the first connection may take before Redis counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the events are: the Redis server, the key namespace, the tenant.
#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// Redis URL: `redis://[user:password@]host:port[/db]`;
    /// `rediss://…?tls_ca=<ca.crt>&tls_cert=<client.crt>&tls_key=<client.key>`
    /// over TLS (`?insecure` accepts any certificate);
    /// `redis+sentinel://[user:password@]h1:26379,h2:26379/<master>[/db]`
    /// (`?sentinel_password=…` for Sentinels that ask for one;
    /// `rediss+sentinel://` over TLS); or
    /// `redis+cluster://h1:p1,h2:p2` (`rediss+cluster://` over TLS).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: String,
    /// Key namespace of the services (`<namespace>:{<stream>}`).
    #[arg(long, default_value = tidings_runtime::DEFAULT_NAMESPACE)]
    namespace: String,
    /// Tenant whose keys to read (`<namespace>:{<tenant>:<stream>}`).
    #[arg(long)]
    tenant: Option<String>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns, for people.
    Text,
    /// JSON, for scripts.
    Json,
}

/// `--json`, or `--format text|json`: how a command prints its results.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct Output {
    /// Print JSON, for scripts (the same as `--format json`).
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// How to print the results.
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<Format>,
}

impl Output {
    /// The format asked for: text unless `--json` or `--format json`.
    pub(crate) fn format(&self) -> Format {
        match (self.json, self.format) {
            (true, _) => Format::Json,
            (false, Some(f)) => f,
            (false, None) => Format::Text,
        }
    }
}

/// `--yes`: the confirmation of a command that deletes.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct Confirm {
    /// Do it without asking (needed when not at a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
}

impl Confirm {
    /// Asks `question` at a terminal and goes on on `y`; without a terminal
    /// refuses, unless `--yes` was given.
    pub(crate) fn ask(&self, question: &str) -> Result<(), Failure> {
        use std::io::{BufRead, IsTerminal, Write};
        if self.yes {
            return Ok(());
        }
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Err(Failure::Usage(format!(
                "{question} Not at a terminal to ask: add --yes to do it"
            )));
        }
        eprint!("{question} [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        stdin
            .lock()
            .read_line(&mut answer)
            .map_err(|e| Failure::Usage(format!("reading the answer failed: {e}")))?;
        match answer.trim() {
            "y" | "Y" | "yes" => Ok(()),
            _ => Err(Failure::Usage("not confirmed; nothing was done".to_owned())),
        }
    }
}

/// Why a command failed, and the exit status that says so.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Something the user asked cannot work as given (exit status 2).
    Usage(String),
    /// Redis is unreachable or refused (exit status 1).
    Operational(String),
}

impl Failure {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Operational(_) => 1,
        }
    }

    pub(crate) fn message(&self) -> &str {
        match self {
            Failure::Usage(m) | Failure::Operational(m) => m,
        }
    }
}

impl Connection {
    /// The URL as it may be shown: without its password.
    pub(crate) fn shown_url(&self) -> String {
        redact(&self.redis_url)
    }

    /// An in-memory bus with the same namespace and tenant, to check the
    /// names of the command line against: a name that would break a key is
    /// a mistake on the command line, said before reaching for the server.
    pub(crate) fn offline(&self) -> Result<Bus, Failure> {
        Bus::builder()
            .namespace(&self.namespace)
            .in_memory()
            .and_then(|b| match &self.tenant {
                Some(t) => b.tenant(t),
                None => Ok(b),
            })
            .map_err(|e| Failure::Usage(e.to_string()))
    }

    /// Connects and scopes the bus to the tenant, if one was given.
    pub(crate) async fn bus(&self) -> Result<Bus, Failure> {
        let url = self.shown_url();
        self.offline()?;
        self.probe(&url).await?;
        let bus = Bus::builder()
            .namespace(&self.namespace)
            .source("tidings-cli")
            .connect(&self.redis_url)
            .await
            .map_err(|e| match e {
                // The runtime's message repeats the URL as given, password included.
                Error::InvalidUrl { source, .. } => {
                    Failure::Usage(format!("invalid Redis URL `{url}`: {source}"))
                }
                Error::InvalidName(e) => Failure::Usage(e.to_string()),
                other => Failure::Operational(format!("cannot reach Redis at {url}: {other}")),
            })?;
        match &self.tenant {
            Some(t) => bus.tenant(t).map_err(|e| Failure::Usage(e.to_string())),
            None => Ok(bus),
        }
    }

    /// One `PING` on a connection that gives up after [`PROBE_TIMEOUT`]:
    /// the bus's own connection retries with backoff for several seconds,
    /// which suits a service riding out a restart, not a person at a prompt.
    async fn probe(&self, url: &str) -> Result<(), Failure> {
        let endpoint =
            Endpoint::parse(&self.redis_url, &TlsFiles::default()).map_err(|e| match e {
                Error::InvalidUrl { source, .. } => {
                    Failure::Usage(format!("invalid Redis URL `{url}`: {source}"))
                }
                other => Failure::Usage(other.to_string()),
            })?;
        let client = tokio::time::timeout(PROBE_TIMEOUT, endpoint.first_client())
            .await
            .map_err(|_| {
                Failure::Operational(format!(
                    "cannot reach Redis at {url}: no master named within {PROBE_TIMEOUT:?}"
                ))
            })?
            .map_err(|e| Failure::Operational(format!("cannot reach Redis at {url}: {e}")))?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(PROBE_TIMEOUT))
            .set_response_timeout(Some(PROBE_TIMEOUT));
        let unreachable = |e: redis::RedisError| {
            Failure::Operational(format!("cannot reach Redis at {url}: {e}"))
        };
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(unreachable)?;
        redis::cmd("PING")
            .query_async::<redis::Value>(&mut conn)
            .await
            .map_err(unreachable)?;
        Ok(())
    }

    /// A failure of a command sent to the server, naming it; but a name or
    /// an entry id the runtime refused before sending anything is a
    /// mistake on the command line (exit status 2), not a failure of Redis.
    pub(crate) fn failed(&self, what: &str, e: Error) -> Failure {
        match e {
            Error::InvalidName(_) | Error::InvalidEntryId { .. } => Failure::Usage(e.to_string()),
            other => {
                Failure::Operational(format!("{what} on Redis at {}: {other}", self.shown_url()))
            }
        }
    }
}

/// Runs a command's future to completion on a runtime of its own.
pub(crate) fn block_on<T>(
    future: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Operational(format!("cannot start the async runtime: {e}")))?
        .block_on(future)
}

/// `scheme://user:password@host` to `scheme://***@host`, and secret query
/// values (`sentinel_password=…`) to `***`: the library's own.
pub(crate) use tidings_runtime::streams::redact;

/// Left-aligned columns under upper-case headers, two spaces apart.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, w) in cells.zip(&widths) {
            let _ = write!(text, "{cell:<w$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// A duration on the command line: one number and one unit.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    duration(text).ok_or_else(|| {
        format!("`{text}` is not a duration; expected a number and a unit, such as `30s`, `10m`, `2h`, `7d`")
    })
}

/// `30s`, `90m`, `2h`, `7d`: one number and one unit.
pub(crate) fn duration(text: &str) -> Option<Duration> {
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(digits);
    let n: u64 = n.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(unit).map(Duration::from_secs)
}

/// A progress bar on stderr for `total` items of `what`, drawn only at a
/// terminal (so scripts and `--json` output see nothing of it).
pub(crate) fn progress(what: &str, total: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} ({elapsed}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// A spinner on stderr for work of unknown length, drawn only at a terminal.
pub(crate) fn spinner(what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_not_shown() {
        assert_eq!(
            redact("redis://:s3cret@db.internal:6379/2"),
            "redis://***@db.internal:6379/2"
        );
        assert_eq!(redact("redis://127.0.0.1:7000"), "redis://127.0.0.1:7000");
    }

    #[test]
    fn table_columns_are_aligned() {
        let t = table(
            &["GROUP", "LAG"],
            &[vec!["file-processor".into(), "3".into()]],
        );
        assert_eq!(t, "GROUP           LAG\nfile-processor  3\n");
    }
}
