//! `tidings streams stats`: length, consumer groups, lag, pending entries and
//! dead letters of one stream; `tidings streams trim`: retention by age and
//! length, never past what a group has not read or acknowledged.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use tidings_runtime::StreamStats;

use crate::ops::{self, Confirm, Connection, Failure, Format, Output};

#[derive(Debug, Subcommand)]
pub(crate) enum StreamsCommand {
    /// Every stream of the namespace (or tenant) in one table: length,
    /// groups, the largest lag, pending entries, dead letters.
    #[command(after_help = "Example:\n  tidings streams list --redis-url redis://localhost:6379")]
    List(ListArgs),
    /// Length, groups (consumers, pending, lag) and dead letters of a stream.
    #[command(after_help = "Example:\n  tidings streams stats contextual --json")]
    Stats(StatsArgs),
    /// Trims a stream by age and/or length, never past an entry that a
    /// group has not read or acknowledged; says what went and which group
    /// held the trim back.
    #[command(after_help = "Example:\n  tidings streams trim contextual --max-age 30d --dry-run")]
    Trim(TrimArgs),
}

#[derive(Debug, Args)]
pub(crate) struct TrimArgs {
    /// The stream's name, as in `#[event(stream = "…")]`.
    stream: String,
    /// Remove entries older than this: a number and a unit (`90d`, `12h`, `30m`, `45s`).
    #[arg(long, value_parser = crate::ops::parse_duration)]
    max_age: Option<std::time::Duration>,
    /// Keep at most the newest N entries.
    #[arg(long)]
    max_len: Option<u64>,
    /// Trim exactly instead of whole internal nodes (`XTRIM … =` rather than `~`).
    #[arg(long)]
    exact: bool,
    /// Say what would go, and remove nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    confirm: Confirm,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// The stream's name, as in `#[event(stream = "…")]`.
    stream: String,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    connection: Connection,
}

pub(crate) fn run(command: StreamsCommand) -> Result<(), Failure> {
    match command {
        StreamsCommand::List(args) => ops::block_on(list(args)),
        StreamsCommand::Stats(args) => ops::block_on(stats(args)),
        StreamsCommand::Trim(args) => ops::block_on(trim(args)),
    }
}

async fn trim(args: TrimArgs) -> Result<(), Failure> {
    let retention = match (args.max_age, args.max_len) {
        (None, None) => {
            return Err(Failure::Usage(
                "say how much to keep: `--max-age <duration>`, `--max-len <n>`, or both".to_owned(),
            ))
        }
        (Some(age), len) => {
            let r = tidings_runtime::Retention::max_age(age);
            match len {
                Some(n) => r.and_max_len(n),
                None => r,
            }
        }
        (None, Some(n)) => tidings_runtime::Retention::max_len(n),
    };
    let retention = if args.exact {
        retention.exact()
    } else {
        retention
    };
    let bus = args.connection.bus().await?;
    if !args.dry_run {
        let what = match (args.max_age, args.max_len) {
            (Some(age), Some(n)) => format!("older than {age:?} or beyond the newest {n}"),
            (Some(age), None) => format!("older than {age:?}"),
            (None, Some(n)) => format!("beyond the newest {n}"),
            (None, None) => String::new(),
        };
        args.confirm.ask(&format!(
            "Remove the entries of `{}` {what} (never one a group has not acknowledged)?",
            args.stream
        ))?;
    }
    // One script on Redis, however long: a spinner says it is at work.
    let spinner = ops::spinner(&format!("trimming {}", args.stream));
    let report = if args.dry_run {
        bus.trim_dry_run(&args.stream, &retention).await
    } else {
        bus.trim(&args.stream, &retention).await
    };
    spinner.finish_and_clear();
    let report = report.map_err(|e| args.connection.failed("EVAL (trim)", e))?;
    match args.output.format() {
        Format::Json => println!(
            "{}",
            serde_json::json!({
                "stream": args.stream,
                "dry_run": args.dry_run,
                "trimmed": report.trimmed,
                "min_id": report.min_id,
                "held_back_by": report.held_back_by,
            })
        ),
        Format::Text => {
            let verb = if args.dry_run {
                "would trim"
            } else {
                "trimmed"
            };
            match &report.min_id {
                None => println!("nothing to trim in {}", args.stream),
                Some(id) => println!(
                    "{verb} {} entries of {} (those before {id})",
                    report.trimmed, args.stream
                ),
            }
            if !report.held_back_by.is_empty() {
                println!(
                    "held back by group(s) {}: they have not read or acknowledged older entries",
                    report.held_back_by.join(", ")
                );
            }
        }
    }
    Ok(())
}

async fn list(args: ListArgs) -> Result<(), Failure> {
    let bus = args.connection.bus().await?;
    let names = bus
        .streams()
        .await
        .map_err(|e| args.connection.failed("SCAN", e))?;
    let mut all = Vec::with_capacity(names.len());
    for name in &names {
        all.push(
            bus.stream_stats(name)
                .await
                .map_err(|e| args.connection.failed("XINFO", e))?,
        );
    }
    match args.output.format() {
        Format::Json => println!(
            "{}",
            serde_json::to_string(&all).map_err(|e| Failure::Operational(e.to_string()))?
        ),
        Format::Text if all.is_empty() => println!("no streams in {}", bus.namespace()),
        Format::Text => {
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|s| {
                    // The group furthest behind says how late the stream is.
                    let lag = s.groups.iter().map(|g| g.lag).max().flatten();
                    let pending: u64 = s.groups.iter().map(|g| g.pending).sum();
                    vec![
                        s.stream.clone(),
                        s.length.to_string(),
                        s.groups.len().to_string(),
                        if s.groups.is_empty() {
                            "-".to_owned()
                        } else {
                            count(lag)
                        },
                        pending.to_string(),
                        s.dead_letters.to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                ops::table(
                    &[
                        "STREAM",
                        "LENGTH",
                        "GROUPS",
                        "MAX LAG",
                        "PENDING",
                        "DEAD LETTERS"
                    ],
                    &rows
                )
            );
        }
    }
    Ok(())
}

async fn stats(args: StatsArgs) -> Result<(), Failure> {
    let bus = args.connection.bus().await?;
    let stats = bus
        .stream_stats(&args.stream)
        .await
        .map_err(|e| args.connection.failed("XINFO", e))?;
    match args.output.format() {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&stats)
                .map_err(|e| Failure::Operational(e.to_string()))?
        ),
        Format::Text => print!("{}", text(&stats)),
    }
    Ok(())
}

fn or_dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

pub(crate) fn count(v: Option<u64>) -> String {
    v.map_or_else(|| "unknown".to_owned(), |n| n.to_string())
}

/// `1.2s`, `350ms`, `3m05s`: idle times at a glance.
pub(crate) fn idle(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

fn text(s: &StreamStats) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "stream        {}", s.stream);
    if let Some(t) = &s.tenant {
        let _ = writeln!(out, "tenant        {t}");
    }
    let _ = writeln!(out, "key           {}", s.key);
    if !s.exists {
        let _ = writeln!(out, "exists        no (nothing was published to it)");
    } else {
        let _ = writeln!(out, "length        {}", s.length);
        let _ = writeln!(
            out,
            "first entry   {}",
            or_dash(s.first_entry_id.as_deref())
        );
        let _ = writeln!(out, "last entry    {}", or_dash(s.last_entry_id.as_deref()));
    }
    let _ = writeln!(
        out,
        "dead letters  {} ({})",
        s.dead_letters, s.dead_letter_key
    );
    if s.groups.is_empty() {
        if s.exists {
            let _ = writeln!(out, "\nno consumer group");
        }
        return out;
    }
    let groups: Vec<Vec<String>> = s
        .groups
        .iter()
        .map(|g| {
            vec![
                g.name.clone(),
                g.consumers.len().to_string(),
                g.pending.to_string(),
                count(g.lag),
                count(g.entries_read),
                g.last_delivered_id.clone(),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&ops::table(
        &[
            "GROUP",
            "CONSUMERS",
            "PENDING",
            "LAG",
            "ENTRIES READ",
            "LAST DELIVERED",
        ],
        &groups,
    ));
    let consumers: Vec<Vec<String>> = s
        .groups
        .iter()
        .flat_map(|g| {
            g.consumers.iter().map(|c| {
                vec![
                    g.name.clone(),
                    c.name.clone(),
                    c.pending.to_string(),
                    idle(c.idle_ms),
                ]
            })
        })
        .collect();
    if !consumers.is_empty() {
        out.push('\n');
        out.push_str(&ops::table(
            &["GROUP", "CONSUMER", "PENDING", "IDLE"],
            &consumers,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::idle;

    #[test]
    fn idle_times_read_at_a_glance() {
        assert_eq!(idle(350), "350ms");
        assert_eq!(idle(1_250), "1.2s");
        assert_eq!(idle(185_000), "3m05s");
        assert_eq!(idle(7_500_000), "2h05m");
    }
}
