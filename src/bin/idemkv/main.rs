//! `idemkv`: the command-line front end of the idemkv engine.
//!
//! `idemkv demo` plays a webhook provider against a handler process that
//! embeds idemkv — duplicates, reordering, failures and a SIGKILL half-way —
//! and checks that every side effect ran once. Exit codes: 0 ok, 1 the
//! verdict failed, 2 usage or I/O error.

mod demo;
mod handler;
mod ledger;
mod protocol;
mod report;
mod rng;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Embedded idempotency and deduplication engine.
#[derive(Parser, Debug)]
#[command(name = "idemkv", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Play a webhook provider against a handler process embedding idemkv:
    /// duplicates, reordering, failures and a crash; verify each side effect
    /// ran exactly once.
    Demo(demo::DemoArgs),
    /// The handler process of `demo` (internal).
    #[command(hide = true)]
    DemoHandler(handler::HandlerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Demo(args) => demo::run(args),
        Command::DemoHandler(args) => handler::run(args).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("idemkv: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
