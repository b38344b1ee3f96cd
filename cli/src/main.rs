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
    #[command(after_help = "Example:\n  tidings pending contextual file-processor --count 50")]
    Pending(groups::PendingArgs),
    /// Print the newest entries of a stream, or those from an entry id or a time.
    Tail(tail::TailArgs),
    /// Print a shell's completion script.
    #[command(
        after_help = "Example:\n  tidings completions bash > /etc/bash_completion.d/tidings"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Serve a live dashboard: streams, groups, lag, dead letters (retry,
    /// purge), a live tail, schema versions; on loopback unless told otherwise.
    #[command(
        after_help = "Example:\n  tidings dashboard --bind 127.0.0.1:8080 --schemas schemas"
    )]
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command a user can run, with its path (`tidings dlq retry`).
    fn leaves(command: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        let path = format!("{path} {}", command.get_name());
        let subcommands: Vec<_> = command
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .collect();
        if subcommands.is_empty() {
            out.push((path.clone(), command.clone()));
        }
        for sub in subcommands {
            leaves(sub, &path, out);
        }
    }

    #[test]
    fn every_command_shows_an_example_of_itself() {
        let mut all = Vec::new();
        for sub in super::Cli::command().get_subcommands() {
            leaves(sub, "tidings", &mut all);
        }
        assert!(all.len() >= 17, "{} commands", all.len());
        for (path, command) in all {
            let help = command
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.contains(&path),
                "`{path} --help` shows no example of itself: {help:?}"
            );
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
