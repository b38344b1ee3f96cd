//! The `tidings` command line.
//!
//! Exit status: 0 on success; 1 when a schema change breaks the
//! compatibility mode, when Redis is unreachable or refuses a command, or
//! when a group acted on does not exist; 2 when an input cannot be read or
//! the command line is wrong.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod dashboard;
mod dlq;
mod groups;
mod ops;
mod schema;
mod streams;
mod tail;

/// Typed, versioned events on Redis: inspect and check them.
#[derive(Debug, Parser)]
#[command(name = "tidings", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare JSON Schemas of events: two files, or two `schemas/` trees.
    #[command(subcommand)]
    Schema(schema::SchemaCommand),
    /// Inspect streams: length, consumer groups, lag, pending entries.
    #[command(subcommand)]
    Streams(streams::StreamsCommand),
    /// List, retry or purge the dead letters of a stream.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// List, create, delete or move the consumer groups of a stream.
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
    /// The entries a group delivered and no consumer acknowledged yet.
    Pending(groups::PendingArgs),
    /// Print the newest entries of a stream, or those from an entry id or a time.
    Tail(tail::TailArgs),
    /// Print a shell's completion script: `tidings completions bash > /etc/bash_completion.d/tidings`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Serve a live dashboard: streams, groups, lag, dead letters (retry,
    /// purge), a live tail, schema versions; on loopback unless told otherwise.
    Dashboard(dashboard::DashboardArgs),
}

/// How a command ended, as the exit status says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Everything checked is compatible.
    Compatible,
    /// Some change breaks the mode.
    Breaking,
}

/// An input that cannot be read; the message names it and the problem.
#[derive(Debug)]
struct Unreadable(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Schema(command) => match schema::run(command) {
            Ok(Outcome::Compatible) => Ok(()),
            Ok(Outcome::Breaking) => return ExitCode::from(1),
            Err(Unreadable(message)) => Err(ops::Failure::Usage(message)),
        },
        Command::Streams(command) => streams::run(command),
        Command::Dlq(command) => dlq::run(command),
        Command::Groups(command) => groups::run(command),
        Command::Pending(args) => groups::run_pending(args),
        Command::Tail(args) => tail::run(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "tidings",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Dashboard(args) => dashboard::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message());
            ExitCode::from(failure.exit_code())
        }
    }
}
