//! `tidings dlq list|retry|purge`: the dead letters of a stream.

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tidings_runtime::DeadLetter;

use crate::ops::{self, Confirm, Connection, Failure, Format, Output};

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// The oldest dead letters: which group gave up, after how many attempts, why.
    #[command(after_help = "Example:\n  tidings dlq list contextual --count 20")]
    List(ListArgs),
    /// Put dead letters back into their stream, with their original event
    /// ids, each for the group that gave up on it only.
    #[command(after_help = "Example:\n  tidings dlq retry contextual --group file-processor")]
    Retry(RetryArgs),
    /// Delete dead letters: some, a group's, or all of them.
    #[command(
        after_help = "Example:\n  tidings dlq purge contextual 1732442400123-0 1732442400124-0"
    )]
    Purge(PurgeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The stream's name, as in `#[event(stream = "…")]`.
    stream: String,
    /// Most dead letters to show.
    #[arg(long, default_value_t = 20)]
    count: usize,
    #[command(flatten)]
    output: Output,
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
    output: Output,
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
    confirm: Confirm,
    #[command(flatten)]
    output: Output,
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
    match args.output.format() {
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
    let json = args.output.format() == Format::Json;
    let mut retried = Vec::new();
    let mut missing = Vec::new();
    let bar = ops::progress("retrying dead letters", args.ids.len());
    let show = |p: tidings_runtime::Progress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    };
    let count = if let Some(group) = &args.group {
        dlq.retry_group_with(group, show).await.map_err(failed)?
    } else if args.all {
        dlq.retry_all_with(show).await.map_err(failed)?
    } else {
        for id in &args.ids {
            match dlq.retry(id).await.map_err(failed)? {
                Some(entry) => retried.push((id.clone(), entry)),
                None => missing.push(id.clone()),
            }
            bar.inc(1);
        }
        retried.len()
    };
    bar.finish_and_clear();
    if json {
        let entries: Vec<Value> = retried
            .iter()
            .map(|(id, entry)| json!({ "dead_letter": id, "entry": entry }))
            .collect();
        println!(
            "{}",
            json!({
                "stream": dlq.stream_key(),
                "retried": count,
                "entries": entries,
                "missing": missing,
            })
        );
    } else if let Some(group) = &args.group {
        println!(
            "retried {count} dead letters of group `{group}` into {}",
            dlq.stream_key()
        );
    } else if args.all {
        println!("retried {count} dead letters into {}", dlq.stream_key());
    } else {
        for (id, entry) in &retried {
            println!("retried {id} as entry {entry} of {}", dlq.stream_key());
        }
    }
    let quoted: Vec<String> = missing.iter().map(|id| format!("`{id}`")).collect();
    match quoted.len() {
        0 => Ok(()),
        1 => Err(Failure::Operational(format!(
            "{} is not a dead letter in {}",
            quoted[0],
            dlq.key()
        ))),
        _ => Err(Failure::Operational(format!(
            "{} are not dead letters in {}",
            quoted.join(", "),
            dlq.key()
        ))),
    }
}

async fn purge(args: PurgeArgs) -> Result<(), Failure> {
    let bus = args.connection.bus().await?;
    let dlq = bus
        .dead_letters(&args.stream)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let which = match (&args.group, args.all) {
        (Some(group), _) => format!("the dead letters of group `{group}` in {}", dlq.key()),
        (None, true) => format!("every dead letter in {}", dlq.key()),
        (None, false) => format!("{} dead letters in {}", args.ids.len(), dlq.key()),
    };
    args.confirm.ask(&format!("Delete {which}?"))?;
    let failed = |e| args.connection.failed("EVAL (purge)", e);
    let bar = ops::progress("purging dead letters", 0);
    let show = |p: tidings_runtime::Progress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    };
    let n = if let Some(group) = &args.group {
        dlq.purge_group_with(group, show).await.map_err(failed)?
    } else if args.all {
        // One `DEL`, however many there are.
        dlq.purge().await.map_err(failed)?
    } else {
        dlq.purge_ids(&args.ids).await.map_err(failed)?
    };
    bar.finish_and_clear();
    let given = (args.group.is_none() && !args.all).then_some(args.ids.len());
    match (args.output.format(), given) {
        (Format::Json, _) => println!("{}", json!({ "key": dlq.key(), "purged": n })),
        (Format::Text, Some(given)) if given != n => println!(
            "purged {n} of the {given} dead letters given from {}; the others were not there",
            dlq.key()
        ),
        (Format::Text, _) => match &args.group {
            Some(group) => println!(
                "purged {n} dead letters of group `{group}` from {}",
                dlq.key()
            ),
            None => println!("purged {n} dead letters from {}", dlq.key()),
        },
    }
    Ok(())
}
