//! The `tidings` command line.
//!
//! Exit status: 0 when everything checked is compatible, 1 when a change
//! breaks the compatibility mode, 2 when an input cannot be read (or the
//! command line is wrong).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod schema;

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
        Command::Schema(command) => schema::run(command),
    };
    match result {
        Ok(Outcome::Compatible) => ExitCode::SUCCESS,
        Ok(Outcome::Breaking) => ExitCode::from(1),
        Err(Unreadable(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
