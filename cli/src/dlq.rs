//! `tidings dlq list|retry|purge`: the dead letters of a stream.

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tidings_runtime::DeadLetter;

use crate::ops::{self, Connection, Failure, Format};

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// The oldest dead letters: which group gave up, after how many attempts, why.
    List(ListArgs),
    /// Put dead letters back into their stream, with their original event
    /// ids, each for the group that gave up on it only.
    Retry(RetryArgs),
    /// Delete dead letters: some, a group's, or all of them.
    Purge(PurgeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The stream's name, as in `#[event(stream = "…")]`.
    stream: String,
    /// Most dead letters to show.
    #[arg(long, default_value_t = 20)]
    count: usize,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    connection: Connection,
}

// clap writes the usage of a required choice that includes a positional
// before every positional (`<ID|--all> <STREAM>`), which is the wrong
// order: the usage is spelled out, one line per way to choose.
#[derive(Debug, Args)]
#[command(
    override_usage = "tidings dlq retry [OPTIONS] --redis-url <REDIS_URL> <STREAM> <ID>...\n       \
                  tidings dlq retry [OPTIONS] --redis-url <REDIS_URL> <STREAM> --group <GROUP>\n       \
                  tidings dlq retry [OPTIONS] --redis-url <REDIS_URL> <STREAM> --all"
)]
pub(crate) struct RetryArgs {
    /// The stream's name, as in `#[event(stream = "…")]`.
    stream: String,
    /// Dead-letter ids (the first column of `dlq list`); each goes back to
    /// the group that gave up on it.
    #[arg(
        value_name = "ID",
        value_parser = parse_dead_letter_id,
        required_unless_present_any = ["all", "group"],
        conflicts_with_all = ["all", "group"]
    )]
    ids: Vec<String>,
    /// Every dead letter of this group there is when the command starts.
    #[arg(long, conflicts_with = "all")]
    group: Option<String>,
    /// Every dead letter there is when the command starts.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "tidings dlq purge [OPTIONS] --redis-url <REDIS_URL> <STREAM> <ID>...\n       \
                  tidings dlq purge [OPTIONS] --redis-url <REDIS_URL> <STREAM> --group <GROUP>\n       \
                  tidings dlq purge [OPTIONS] --redis-url <REDIS_URL> <STREAM> --all"
)]
pub(crate) struct PurgeArgs {
    /// The stream's name, as in `#[event(stream = "…")]`.
    stream: String,
    /// Dead-letter ids (the first column of `dlq list`).
    #[arg(
        value_name = "ID",
        value_parser = parse_dead_letter_id,
        required_unless_present_any = ["all", "group"],
        conflicts_with_all = ["all", "group"]
    )]
    ids: Vec<String>,
    /// Every dead letter of this group.
    #[arg(long, conflicts_with = "all")]
    group: Option<String>,
    /// Every dead letter of the stream.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    connection: Connection,
}

/// A dead-letter id as `dlq list` prints it: `<milliseconds>-<sequence>`.
fn parse_dead_letter_id(text: &str) -> Result<String, String> {
    let number = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u64>().is_ok()
    };
    match text.split_once('-') {
        Some((ms, seq)) if number(ms) && number(seq) => Ok(text.to_owned()),
        _ => Err(format!("`{text}` is not a dead-letter id (`<milliseconds>-<sequence>`, the first column of `tidings dlq list`); the stream's name comes first")),
    }
}

pub(crate) fn run(command: DlqCommand) -> Result<(), Failure> {
    match command {
        DlqCommand::List(args) => ops::block_on(list(args)),
        DlqCommand::Retry(args) => ops::block_on(retry(args)),
        DlqCommand::Purge(args) => ops::block_on(purge(args)),
    }
}

async fn list(args: ListArgs) -> Result<(), Failure> {
    let bus = args.connection.bus().await?;
    let dlq = bus
        .dead_letters(&args.stream)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let letters = dlq
        .list(args.count)
        .await
        .map_err(|e| args.connection.failed("XRANGE", e))?;
    match args.format {
        Format::Json => {
            let all: Vec<Value> = letters.iter().map(to_json).collect();
            println!("{}", Value::Array(all));
        }
        Format::Text if letters.is_empty() => println!("no dead letters in {}", dlq.key()),
        Format::Text => {
            let rows: Vec<Vec<String>> = letters
                .iter()
                .map(|l| {
                    vec![
                        l.id.clone(),
                        l.entry_id.clone(),
                        l.group.clone(),
                        l.attempts.to_string(),
                        match &l.envelope {
                            Ok(e) => format!("{} v{}", e.type_name, e.dataversion),
                            Err(_) => "(not an event)".to_owned(),
                        },
                        l.error.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                ops::table(
                    &[
                        "DEAD LETTER",
                        "ENTRY",
                        "GROUP",
                        "ATTEMPTS",
                        "EVENT",
                        "ERROR"
                    ],
                    &rows
                )
            );
        }
    }
    Ok(())
}

fn to_json(l: &DeadLetter) -> Value {
    let time = |t: Option<time::OffsetDateTime>| {
        t.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
    };
    let event = match &l.envelope {
        Ok(e) => json!({
            "id": e.id.to_string(),
            "type": e.type_name,
            "dataversion": e.dataversion,
            "source": e.source,
            "time": e.time_rfc3339(),
            "data": serde_json::from_slice::<Value>(&e.data)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&e.data).into_owned())),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    json!({
        "id": l.id,
        "entry_id": l.entry_id,
        "group": l.group,
        "handler": l.handler,
        "error": l.error,
        "attempts": l.attempts,
        "first_failure": time(l.first_failure),
        "last_failure": time(l.last_failure),
        "event": event,
    })
}

async fn retry(args: RetryArgs) -> Result<(), Failure> {
    let bus = args.connection.bus().await?;
    let dlq = bus
        .dead_letters(&args.stream)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let failed = |e| args.connection.failed("EVAL (retry)", e);
    if let Some(group) = &args.group {
        let n = dlq.retry_group(group).await.map_err(failed)?;
        println!(
            "retried {n} dead letters of group `{group}` into {}",
            dlq.stream_key()
        );
        return Ok(());
    }
    if args.all {
        let n = dlq.retry_all().await.map_err(failed)?;
        println!("retried {n} dead letters into {}", dlq.stream_key());
        return Ok(());
    }
    let mut missing = Vec::new();
    for id in &args.ids {
        match dlq.retry(id).await.map_err(failed)? {
            Some(entry) => println!("retried {id} as entry {entry} of {}", dlq.stream_key()),
            None => missing.push(format!("`{id}`")),
        }
    }
    match missing.len() {
        0 => Ok(()),
        1 => Err(Failure::Operational(format!(
            "{} is not a dead letter in {}",
            missing[0],
            dlq.key()
        ))),
        _ => Err(Failure::Operational(format!(
            "{} are not dead letters in {}",
            missing.join(", "),
            dlq.key()
        ))),
    }
}

async fn purge(args: PurgeArgs) -> Result<(), Failure> {
    let bus = args.connection.bus().await?;
    let dlq = bus
        .dead_letters(&args.stream)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let failed = |e| args.connection.failed("EVAL (purge)", e);
    if let Some(group) = &args.group {
        let n = dlq.purge_group(group).await.map_err(failed)?;
        println!(
            "purged {n} dead letters of group `{group}` from {}",
            dlq.key()
        );
    } else if args.all {
        let n = dlq.purge().await.map_err(failed)?;
        println!("purged {n} dead letters from {}", dlq.key());
    } else {
        let n = dlq.purge_ids(&args.ids).await.map_err(failed)?;
        let given = args.ids.len();
        if n == given {
            println!("purged {n} dead letters from {}", dlq.key());
        } else {
            println!(
                "purged {n} of the {given} dead letters given from {}; the others were not there",
                dlq.key()
            );
        }
    }
    Ok(())
}
