//! `tidings dlq list|retry|purge`: the dead letters of a stream.

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tidings_runtime::DeadLetter;

use crate::ops::{self, Connection, Failure, Format};

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// The oldest dead letters: which group gave up, after how many attempts, why.
    List(ListArgs),
    /// Put dead letters back into their stream, with their original event ids.
    Retry(RetryArgs),
    /// Delete every dead letter of the stream.
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

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["id", "all"]))]
pub(crate) struct RetryArgs {
    /// The stream's name.
    stream: String,
    /// The dead letter's id (the first column of `dlq list`).
    id: Option<String>,
    /// Every dead letter there is when the command starts.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub(crate) struct PurgeArgs {
    /// The stream's name.
    stream: String,
    #[command(flatten)]
    connection: Connection,
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
    match &args.id {
        Some(id) => match dlq
            .retry(id)
            .await
            .map_err(|e| args.connection.failed("EVAL (retry)", e))?
        {
            Some(entry) => println!("retried {id} as entry {entry} of {}", dlq.stream_key()),
            None => {
                return Err(Failure::Operational(format!(
                    "`{id}` is not a dead letter in {}",
                    dlq.key()
                )))
            }
        },
        None => {
            let n = dlq
                .retry_all()
                .await
                .map_err(|e| args.connection.failed("EVAL (retry)", e))?;
            println!("retried {n} dead letters into {}", dlq.stream_key());
        }
    }
    Ok(())
}

async fn purge(args: PurgeArgs) -> Result<(), Failure> {
    let bus = args.connection.bus().await?;
    let dlq = bus
        .dead_letters(&args.stream)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let n = dlq
        .purge()
        .await
        .map_err(|e| args.connection.failed("EVAL (purge)", e))?;
    println!("purged {n} dead letters from {}", dlq.key());
    Ok(())
}
