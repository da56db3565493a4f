//! Scale harness: issue #4's targets P4, P5 and P6 — idemkv with many
//! records — measured in one run and printed as a table of goal against
//! measured figure (optionally also as JSON).
//!
//! Every record is a completed webhook event: namespace `"stripe"`, id
//! `evt_` followed by 20 decimal digits (a mixed counter, so keys arrive in
//! random order), and a 100-byte JSON response; 130 raw bytes of namespace,
//! id and response per record. Stores run `Buffered { max_delay: 5 ms }`
//! with a 64 MiB record cache and a 64 MiB sled cache (stated, not left to
//! the defaults), and are populated by claim + complete from 2 threads.
//!
//! - **P4, many live records.** Populates N records (the rate is reported),
//!   checkpoints, then times lookups — a claim of a completed key, answered
//!   `Claim::Replay` — of uniformly random keys on one thread (latency of the
//!   `claim` call alone; ops/s over the wall-clock window, which includes
//!   building each `Key`). The same is measured first on a store of 10 k
//!   records; the goal is p99 at N within 2× of p99 at 10 k. For
//!   information, the big store is also measured with lookups confined to
//!   10 k of its keys (a hot set that fits the record cache). Disk: the bytes
//!   of every file in the store directory after checkpoint + close (apparent
//!   size and allocated blocks) against the raw bytes (goal ≤ 2.5×). Memory:
//!   `VmRSS` and `VmHWM` from `/proc/self/status` after populating and after
//!   the lookups, against the cache budget + 256 MiB (the peak is judged).
//! - **P5, reopen after kill -9.** The binary re-executes itself as a child
//!   (`IDEMKV_BENCH_SCALE_CHILD`): it populates N records, checkpoints and
//!   closes, reopens with `checkpoint_interval(None).checkpoint_bytes(MAX)`,
//!   writes 100 k journal entries (50 k claim + complete cycles of new
//!   keys), `flush()`es, prints `ready` and sleeps. The parent kills it with
//!   SIGKILL (`Child::kill`), then times `Config::open` on the directory
//!   (journal replay) and the time to the first answer (open + one claim of
//!   an existing key, a `Replay`), and reports the `RecoveryReport`. The
//!   child's files are still in the OS page cache, as after a process crash
//!   (not a reboot).
//! - **P6, sweeping N expired records.** A `MockClock` store (sweeper off,
//!   interval checkpoints off; namespace policy lease 30 s, retention 1 h =
//!   the declared retry horizon) is populated with N records, checkpointed,
//!   and the clock moved 2 h on. One claimer thread claims + completes new
//!   keys at a steady 1 k/s (`--claim-rate`, on a fixed schedule; 0 = back
//!   to back; they expire an hour after the moved clock, so the sweep leaves
//!   them alone) and records the latency of each `claim` call: first without
//!   a sweep, for as long as the sweep is expected to take, then while
//!   `Store::sweep()` runs on the main thread. The expected length comes from
//!   a pilot: the same sweep, with the claimer, of a store of N/20 records
//!   (at most 50 k); a second pilot sweeps alone, for information. Goals:
//!   ≥ 500 k expirations/s, claim p99 during the sweep ≤ 2× without. The
//!   checkpoint that then applies the deletes to sled is timed too (for
//!   information).
//!
//! ```text
//! cargo bench --bench scale                               # N = 1 M (several minutes)
//! cargo bench --bench scale -- --records 1000000 --json scale.json
//! cargo bench --bench scale -- --quick                    # tiny sizes, seconds (CI: --test)
//! cargo bench --bench scale -- --only p5 --records 200000
//! ```
//!
//! Options: `--records N` (default 1 000 000; 10 000 with `--quick`),
//! `--journal-entries N` (P5; default 100 000, 2 000 with `--quick`),
//! `--duration-ms N` (P4's lookup window, default 3000, 200 with `--quick`),
//! `--claim-rate N` (P6's claimer, cycles/s, default 1 000; 0 = unpaced),
//! `--only p4|p5|p6` (repeatable or comma-separated), `--json FILE`,
//! `--quick` (implied by criterion's `--test`). Exit code 1 if a measurement
//! failed (a goal not met is not a failure).

#[path = "../common/mod.rs"]
mod common;
mod latency;
mod output;
mod p4;
mod p5;
mod p6;
mod records;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::report::cpus;
use output::{Part, Row, Status, fmt_bytes, print_table, to_json};
use records::{CACHE_BYTES, NS, RAW_PER_RECORD, RESPONSE_LEN, SLED_CACHE_BYTES};

type Res<T> = Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// P6's claimer: claim + complete cycles per second.
const CLAIM_RATE: u64 = 1_000;

// Key spaces: every phase uses its own, so no two phases share a key.
const SPACE_P4: u64 = 1;
const SPACE_P4_REF: u64 = 2;
const SPACE_P5: u64 = 3;
const SPACE_P5_JOURNAL: u64 = 4;
const SPACE_P6: u64 = 5;
const SPACE_P6_CLAIMER: u64 = 6;
const SPACE_P6_PILOT: u64 = 7; // and 8

// ───────────────────────────── options ─────────────────────────────

struct Opts {
    records: usize,
    journal_entries: usize,
    claim_rate: u64,
    quick: bool,
    warmup: Duration,
    window: Duration,
    json: Option<PathBuf>,
    only: Vec<String>,
}

impl Opts {
    fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == part)
    }
}

fn parse_args() -> Res<Opts> {
    let (mut records, mut entries, mut duration_ms, mut claim_rate) = (None, None, None, None);
    let (mut quick, mut json, mut only) = (false, None, Vec::new());
    let mut args = std::env::args().skip(1);
    let number = |args: &mut dyn Iterator<Item = String>, flag: &str| -> Res<u64> {
        let v = args.next().ok_or(format!("{flag} needs a value"))?;
        v.replace('_', "").parse().map_err(|e| format!("{flag} {v}: {e}"))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" | "--test" => quick = true,
            "--records" => records = Some(number(&mut args, "--records")? as usize),
            "--journal-entries" => entries = Some(number(&mut args, "--journal-entries")? as usize),
            "--duration-ms" => duration_ms = Some(number(&mut args, "--duration-ms")?),
            "--claim-rate" => claim_rate = Some(number(&mut args, "--claim-rate")?),
            "--json" => json = Some(PathBuf::from(args.next().ok_or("--json needs a file")?)),
            "--only" => {
                let v = args.next().ok_or("--only needs p4, p5 or p6")?;
                for part in v.split(',').map(|p| p.trim().to_ascii_lowercase()) {
                    if !matches!(part.as_str(), "p4" | "p5" | "p6") {
                        return Err(format!("--only {part}: expected p4, p5 or p6"));
                    }
                    only.push(part);
                }
            }
            "--bench" => {} // passed by `cargo bench`
            "-h" | "--help" => {
                println!(
                    "usage: cargo bench --bench scale -- [--quick] [--records N] \
                     [--journal-entries N] [--duration-ms N] [--claim-rate N] \
                     [--only p4|p5|p6] [--json FILE]"
                );
                std::process::exit(0);
            }
            other => eprintln!("scale: ignoring unknown argument {other}"),
        }
    }
    let records = records.unwrap_or(if quick { 10_000 } else { 1_000_000 }).max(1);
    let window =
        Duration::from_millis(duration_ms.unwrap_or(if quick { 200 } else { 3000 }).max(1));
    Ok(Opts {
        records,
        journal_entries: entries.unwrap_or(if quick { 2_000 } else { 100_000 }).max(2),
        claim_rate: claim_rate.unwrap_or(CLAIM_RATE),
        quick,
        warmup: if quick { Duration::from_millis(50) } else { Duration::from_millis(500) },
        window,
        json,
        only,
    })
}

fn progress(msg: &str) {
    eprintln!("scale: {msg}");
}

fn main() {
    // Re-executed as P5's child writer: write, say ready, wait for SIGKILL.
    if let Ok(spec) = std::env::var(p5::CHILD_ENV) {
        if let Err(e) = p5::child_writer(&spec) {
            eprintln!("scale child: {e}");
        }
        std::process::exit(3);
    }
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("scale: {e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    println!(
        "scale: N = {} records{}; P5 journal {} entries; P4 lookup window {} ms after {} ms \
         warm-up; {} CPUs",
        opts.records,
        if opts.quick { " (quick)" } else { "" },
        opts.journal_entries,
        opts.window.as_millis(),
        opts.warmup.as_millis(),
        cpus()
    );
    type Target = fn(&Opts) -> Res<Part>;
    let targets: [(&str, &'static str, Target); 3] =
        [("p4", "P4", p4::p4), ("p5", "P5", p5::p5), ("p6", "P6", p6::p6)];
    let mut parts = Vec::new();
    let mut failed = false;
    for (name, label, run) in targets {
        if !opts.runs(name) {
            continue;
        }
        match run(&opts) {
            Ok(part) => parts.push(part),
            Err(e) => {
                eprintln!("scale: {name} FAILED: {e}");
                let mut part = Part::new(label);
                part.rows.push(Row {
                    what: "FAILED".into(),
                    goal: "-".into(),
                    measured: e,
                    status: Status::NotMet,
                });
                parts.push(part);
                failed = true;
            }
        }
    }
    let wall = started.elapsed();
    println!();
    print_table(&parts);
    let notes = vec![
        format!(
            "records: namespace \"{NS}\", id \"evt_\" + 20 decimal digits, {RESPONSE_LEN}-byte \
             JSON response; raw = namespace + id + response = {RAW_PER_RECORD} bytes/record"
        ),
        format!(
            "every store: Buffered {{ max_delay: 5 ms }}, cache_bytes {}, sled_cache_bytes {}; \
             populated by claim + complete from 2 threads",
            fmt_bytes(CACHE_BYTES),
            fmt_bytes(SLED_CACHE_BYTES)
        ),
        "P4 lookup = claim of a completed key answered Replay, uniformly random keys, 1 thread; \
         latency of the claim call, ops/s over the wall-clock window (includes building each \
         Key); memory judged on VmHWM (the process peak); disk ratio uses the larger of \
         apparent and allocated bytes"
            .into(),
        "P5: the child is SIGKILLed after flush(); its files are still in the OS page cache \
         (a process crash, not a reboot); open = Config::new().open() (default Durable)"
            .into(),
        format!(
            "P6: MockClock, lease 30 s, retention 1 h = retry horizon, clock +2 h; background \
             sweeper and interval checkpoints off; claimer = 1 thread claiming + completing new \
             keys at {} (fixed schedule), latency of the claim call; its window without a \
             sweep is the estimate, from the pilot with the claimer, of the sweep's length",
            match opts.claim_rate {
                0 => "full speed".to_string(),
                r => format!("{r}/s"),
            }
        ),
        format!(
            "{} CPUs; latency includes two Instant::now() calls; wall time {:.1} s",
            cpus(),
            wall.as_secs_f64()
        ),
    ];
    println!();
    for n in &notes {
        println!("note: {n}");
    }
    if let Some(path) = &opts.json {
        match std::fs::write(path, to_json(&opts, &parts, &notes, wall)) {
            Ok(()) => println!("wrote {}", path.display()),
            Err(e) => {
                eprintln!("scale: writing {}: {e}", path.display());
                std::process::exit(1);
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
