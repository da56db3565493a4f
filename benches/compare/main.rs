//! Comparison harness: the same idempotency workloads, in one run, against
//! idemkv (`Buffered` and `Durable`) and its peers — raw sled 0.34.7 doing the
//! same state transitions with `compare_and_swap`, a 64-stripe
//! `Mutex<HashMap>` (memory only: the physical limit of the design), SQLite in
//! WAL mode through rusqlite, and Redis on loopback (a `redis-server` child
//! process, skipped when not installed).
//!
//! Workloads (one op = one lookup, or one claim + complete cycle):
//! - **P1** duplicate lookup of completed keys, 2 threads;
//! - **P2** claim + complete of new keys, buffered durability, 2 threads
//!   (Redis also with 1 and 50 clients);
//! - **P3** claim + complete of new keys, durable, 64 concurrent claimers
//!   (idemkv as 64 async tasks on a 2-worker tokio runtime, the reference,
//!   and as 64 threads).
//!
//! Reports ops/s and per-op latency percentiles p50/p99/p99.9 (a log-linear
//! histogram with 32 sub-buckets per power of two, about 3 % resolution) and
//! the ratio idemkv/peer, as a table and optionally as JSON.
//!
//! ```text
//! cargo bench --bench compare                         # full run, ~2 s per row
//! cargo bench --bench compare -- --quick              # every system briefly (CI)
//! cargo bench --bench compare -- --duration-ms 5000 --only sqlite --json out.json
//! ```
//!
//! Options: `--duration-ms N` (measured time per row, default 2000, plus a
//! warm-up of a fifth of it), `--quick` (also implied by criterion's `--test`),
//! `--only <system>` (substring of the system name), `--json <file>`, and an
//! optional positional filter on `workload/system`.
//!
//! Files: `systems/` (the adapters, one per system), `plan.rs` (workloads
//! and their rows), `measure.rs` (running and timing one row), `output.rs`
//! (table, notes, JSON); this file reads the options and runs the plan.

#[path = "../common/mod.rs"]
mod common;
mod measure;
mod output;
mod plan;
mod systems;

use std::path::PathBuf;
use std::time::Duration;

use measure::run_one;
use output::{Row, print_header, print_row, to_json};
use plan::{Workload, plan};
use systems::{Servers, Spec};

/// A result whose error is a message.
type Res<T> = Result<T, String>;

/// `e` as a message (for `map_err`).
fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

// ───────────────────────────── options ─────────────────────────────

/// The command line.
struct Opts {
    /// Measured time per row.
    duration: Duration,
    /// Warm-up before each row's window.
    warmup: Duration,
    /// `--quick` (or criterion's `--test`): short rows, a small P1 population.
    quick: bool,
    /// Completed keys P1 looks up.
    lookup_keys: usize,
    /// `--json FILE`.
    json: Option<PathBuf>,
    /// `--only SYSTEM`: a substring of the system name.
    only: Option<String>,
    /// The positional filter on `workload/system`.
    filter: Option<String>,
}

/// Reads the command line; an error for a flag without its value.
fn parse_args() -> Res<Opts> {
    let mut duration_ms: Option<u64> = None;
    let (mut quick, mut json, mut only, mut filter) = (false, None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" | "--test" => quick = true,
            "--duration-ms" => {
                let v = args.next().ok_or("--duration-ms needs a value")?;
                duration_ms = Some(v.parse().map_err(|e| format!("--duration-ms {v}: {e}"))?);
            }
            "--json" => json = Some(PathBuf::from(args.next().ok_or("--json needs a file")?)),
            "--only" => only = Some(args.next().ok_or("--only needs a system name")?),
            "--bench" => {} // passed by `cargo bench`
            "-h" | "--help" => {
                println!(
                    "usage: cargo bench --bench compare -- [--quick] [--duration-ms N] \
                     [--only SYSTEM] [--json FILE] [FILTER]"
                );
                std::process::exit(0);
            }
            flag if flag.starts_with('-') => eprintln!("compare: ignoring unknown option {flag}"),
            positional => filter = Some(positional.to_string()),
        }
    }
    let duration =
        Duration::from_millis(duration_ms.unwrap_or(if quick { 150 } else { 2000 }).max(1));
    Ok(Opts {
        warmup: (duration / 5).max(Duration::from_millis(30)),
        duration,
        quick,
        lookup_keys: if quick { 2_000 } else { 50_000 },
        json,
        only,
        filter,
    })
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("compare: {e}");
            std::process::exit(2);
        }
    };
    let selected = |w: &Workload, spec: Spec| {
        let name = spec.name();
        opts.only.as_deref().is_none_or(|o| name.contains(o))
            && opts.filter.as_deref().is_none_or(|f| format!("{}/{name}", w.name).contains(f))
    };
    let workloads = plan(&opts);
    if !workloads.iter().any(|w| w.runs.iter().any(|&(s, _)| selected(w, s))) {
        println!("compare: nothing matches the filter; skipped");
        return;
    }
    let mut servers = Servers::new();
    let mut skipped = Vec::new();
    if !servers.installed
        && workloads
            .iter()
            .any(|w| w.runs.iter().any(|&(s, _)| matches!(s, Spec::Redis(_)) && selected(w, s)))
    {
        let msg = "SKIPPED redis: redis-server not found (apt-get install redis-server)";
        println!("{msg}");
        skipped.push(msg.to_string());
    }
    print_header(&opts);
    let mut rows: Vec<Row> = Vec::new();
    for w in &workloads {
        let first = rows.len();
        for &(spec, threads) in &w.runs {
            if !selected(w, spec) || (matches!(spec, Spec::Redis(_)) && !servers.installed) {
                continue;
            }
            let run = run_one(spec, threads, w, &opts, &mut servers);
            rows.push(Row::new(w.name, spec, threads, run));
            // The reference row runs first in every workload.
            let reference = rows[first..]
                .iter()
                .find(|r| r.system == w.reference && r.ops_per_sec > 0.0)
                .map(|r| r.ops_per_sec);
            let r = rows.last_mut().expect("just pushed");
            if let Some(x) = reference.filter(|_| r.ops_per_sec > 0.0) {
                r.ratio = Some(x / r.ops_per_sec);
            }
            print_row(r);
        }
    }
    drop(servers); // kills the redis-server children
    let notes = output::notes();
    println!();
    for n in &notes {
        println!("note: {n}");
    }
    if let Some(path) = &opts.json {
        match std::fs::write(path, to_json(&opts, &rows, &notes, &skipped)) {
            Ok(()) => println!("wrote {}", path.display()),
            Err(e) => {
                eprintln!("compare: writing {}: {e}", path.display());
                std::process::exit(1);
            }
        }
    }
    if rows.iter().any(|r| r.note.starts_with("FAILED")) {
        std::process::exit(1);
    }
}
