//! `idemkv`: the command-line front end of the idemkv engine.
//!
//! `idemkv demo` plays a webhook provider over HTTP against a server process
//! that embeds idemkv — signed deliveries, duplicates, reordering, failures,
//! forged signatures and a SIGKILL half-way — and checks that every side
//! effect ran once (its files are under `demo/`).
//! `stats`, `get`, `list`, `remove`, `sweep`, `verify`, `export`, `import`
//! and `bench` inspect and maintain a store (one file each under `cmd/`). Exit codes: 0 ok, 1 the
//! verdict or check failed (or the key is absent), 2 usage or I/O error.

mod cmd;
mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Embedded idempotency and deduplication engine.
#[derive(Parser, Debug)]
#[command(
    name = "idemkv",
    version,
    about,
    after_help = "Exit codes: 0 ok, 1 the check failed or the key is absent, 2 usage or I/O error."
)]
struct Cli {
    /// The store directory [default: ./idemkv-data, or its store/
    /// subdirectory when that holds the store, as `idemkv demo` leaves it].
    #[arg(long, global = true, value_name = "DIR")]
    path: Option<PathBuf>,
    /// Machine-readable output: one JSON document on stdout, no progress bars.
    #[arg(long, global = true)]
    json: bool,
    /// Print every duplicate attempt (tracing target `idemkv::audit`) on stderr.
    #[arg(long, global = true)]
    audit: bool,
    /// Open a store even though its sled/ was refused as damaged, rebuilding
    /// sled's marker from what is there (records sled lost stay lost): to
    /// export what is left, or after restoring sled/ yourself.
    #[arg(long, global = true)]
    accept_sled_as_is: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Play a webhook provider over HTTP against a server embedding idemkv:
    /// signed deliveries, duplicates, reordering, failures, forged
    /// signatures and a crash; verify each side effect ran exactly once.
    Demo(demo::DemoArgs),
    /// The HTTP server process of `demo` (internal).
    #[command(hide = true)]
    DemoServer(demo::server::ServerArgs),
    /// Per-namespace duplicate rate, retries, records by state, expirations,
    /// orphans and event latency.
    Stats(cmd::stats::StatsArgs),
    /// Show one key's entry: state, attempts, times, fingerprint, response.
    Get(cmd::get::GetArgs),
    /// List live records, a page at a time.
    List(cmd::list::ListArgs),
    /// Remove one key's record (even a corrupt one).
    Remove(cmd::remove::RemoveArgs),
    /// Remove every expired record now.
    Sweep(cmd::sweep::SweepArgs),
    /// Check the journal and every record; exit 1 on corruption.
    Verify(cmd::verify::VerifyArgs),
    /// Write every live record as JSON Lines.
    Export(cmd::export::ExportArgs),
    /// Read JSON Lines written by `export` into the store (created if needed).
    Import(cmd::import::ImportArgs),
    /// A quick load test on a fresh store: claim+complete, then duplicate lookups.
    Bench(cmd::bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    if cli.audit {
        install_audit();
    }
    let g = cmd::Global {
        path: cli.path.clone(),
        json: cli.json,
        accept_sled_as_is: cli.accept_sled_as_is,
    };
    let result = match &cli.command {
        Command::Demo(args) => {
            let mut args = args.clone();
            args.audit = cli.audit;
            demo::run(&args)
        }
        Command::DemoServer(args) => demo::server::run(args).map(|()| true),
        Command::Stats(args) => cmd::stats::run(&g, args),
        Command::Get(args) => cmd::get::run(&g, args),
        Command::List(args) => cmd::list::run(&g, args),
        Command::Remove(args) => cmd::remove::run(&g, args),
        Command::Sweep(args) => cmd::sweep::run(&g, args),
        Command::Verify(args) => cmd::verify::run(&g, args),
        Command::Export(args) => cmd::export::run(&g, args),
        Command::Import(args) => cmd::import::run(&g, args),
        Command::Bench(args) => cmd::bench::run(&g, args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("idemkv: error: {msg}");
            ExitCode::from(2)
        }
    }
}

/// Prints help and version as clap does; any other parse error as one line.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::from(2);
    }
    // clap renders "error: …", tips, then "Usage: …" and "For more information…".
    let text = e.render().to_string();
    let mut msg = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if !msg.is_empty() {
            msg.push_str(if msg.ends_with(':') || line.starts_with('[') { " " } else { "; " });
        }
        msg.push_str(line);
    }
    eprintln!("idemkv: error: {msg}; see '{} --help'", command_path());
    ExitCode::from(2)
}

/// `idemkv` and the subcommand named on the command line, if any.
fn command_path() -> String {
    use clap::CommandFactory;
    let cli = Cli::command();
    let sub = std::env::args().skip(1).find_map(|a| {
        cli.get_subcommands().find(|c| c.get_name() == a).map(|c| c.get_name().to_string())
    });
    sub.map_or_else(|| "idemkv".to_string(), |s| format!("idemkv {s}"))
}

/// `--audit`: the library's `idemkv::audit` events (one per duplicate
/// attempt) as text lines on stderr.
fn install_audit() {
    let filter = tracing_subscriber::EnvFilter::new("idemkv::audit=info");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// True when stdout was closed by the reader (`idemkv list | head`).
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
