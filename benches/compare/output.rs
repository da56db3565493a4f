//! The output: the table (header, and a row printed as soon as it is
//! measured), the notes, and the JSON file.

use std::fmt::Write as _;

use crate::common::report::{cpus, fmt_ns, fmt_ops, json_str};
use crate::measure::Measured;
use crate::systems::Spec;
use crate::{Opts, Res};

/// One line of the table and one element of the JSON `results`.
pub struct Row {
    /// The workload's name.
    pub workload: &'static str,
    /// The system's name.
    pub system: String,
    /// Client threads.
    pub threads: usize,
    /// Successful operations per second of the window.
    pub ops_per_sec: f64,
    /// Median latency, ns.
    pub p50: u64,
    /// 99th percentile latency, ns.
    pub p99: u64,
    /// 99.9th percentile latency, ns.
    pub p999: u64,
    /// ops/s of the workload's reference idemkv row over this row's.
    pub ratio: Option<f64>,
    /// Failed operations (1 for a row that failed as a whole).
    pub errors: u64,
    /// Errors, or `FAILED: …` for a row that could not run.
    pub note: String,
}

impl Row {
    /// The row of `spec` with `threads` threads in `workload`, from what
    /// `run_one` gave; the ratio is filled in later.
    pub fn new(workload: &'static str, spec: Spec, threads: usize, run: Res<Measured>) -> Row {
        match run {
            Ok(m) => {
                let secs = m.window.as_secs_f64();
                let note = match &m.first_error {
                    Some(e) => format!("{} errors, first: {e}", m.errors),
                    None => String::new(),
                };
                Row {
                    workload,
                    system: spec.name().to_string(),
                    threads,
                    ops_per_sec: m.ops as f64 / secs,
                    p50: m.hist.percentile(0.50),
                    p99: m.hist.percentile(0.99),
                    p999: m.hist.percentile(0.999),
                    ratio: None,
                    errors: m.errors,
                    note,
                }
            }
            Err(e) => Row {
                workload,
                system: spec.name().to_string(),
                threads,
                ops_per_sec: 0.0,
                p50: 0,
                p99: 0,
                p999: 0,
                ratio: None,
                errors: 1,
                note: format!("FAILED: {e}"),
            },
        }
    }
}

/// Prints the run's settings and the table's two header lines.
pub fn print_header(opts: &Opts) {
    println!(
        "compare: {} ms measured per row after {} ms warm-up{}; P1 over {} completed keys; {} CPUs",
        opts.duration.as_millis(),
        opts.warmup.as_millis(),
        if opts.quick { " (quick)" } else { "" },
        opts.lookup_keys,
        cpus()
    );
    println!(
        "{:<27} {:<17} {:>4} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "workload", "system", "thr", "ops/s", "p50", "p99", "p99.9", "idemkv/"
    );
    println!(
        "{:<27} {:<17} {:>4} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "", "", "", "", "", "", "", "peer"
    );
}

/// Prints one row of the table.
pub fn print_row(r: &Row) {
    let ratio = r.ratio.map_or("-".to_string(), |x| format!("{x:.2}x"));
    println!(
        "{:<27} {:<17} {:>4} {:>9} {:>9} {:>9} {:>9} {:>8}  {}",
        r.workload,
        r.system,
        r.threads,
        fmt_ops(r.ops_per_sec),
        fmt_ns(r.p50),
        fmt_ns(r.p99),
        fmt_ns(r.p999),
        ratio,
        r.note
    );
}

/// A JSON number with three decimals, or `null`.
fn json_num(x: f64) -> String {
    if x.is_finite() { format!("{x:.3}") } else { "null".into() }
}

/// The JSON document of a run.
pub fn to_json(opts: &Opts, rows: &[Row], notes: &[String], skipped: &[String]) -> String {
    let mut s = String::from("{\n");
    let _ = writeln!(s, "  \"duration_ms\": {},", opts.duration.as_millis());
    let _ = writeln!(s, "  \"warmup_ms\": {},", opts.warmup.as_millis());
    let _ = writeln!(s, "  \"quick\": {},", opts.quick);
    let _ = writeln!(s, "  \"cpus\": {},", cpus());
    let list = |v: &[String]| v.iter().map(|n| json_str(n)).collect::<Vec<_>>().join(", ");
    let _ = writeln!(s, "  \"notes\": [{}],", list(notes));
    let _ = writeln!(s, "  \"skipped\": [{}],", list(skipped));
    s.push_str("  \"results\": [\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            s,
            "    {{\"workload\": {}, \"system\": {}, \"threads\": {}, \"ops_per_sec\": {}, \
             \"p50_ns\": {}, \"p99_ns\": {}, \"p999_ns\": {}, \"ratio_idemkv_over_peer\": {}, \
             \"errors\": {}, \"note\": {}}}",
            json_str(r.workload),
            json_str(&r.system),
            r.threads,
            json_num(r.ops_per_sec),
            r.p50,
            r.p99,
            r.p999,
            r.ratio.map_or("null".into(), json_num),
            r.errors,
            json_str(&r.note)
        );
        s.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    s.push_str("  ]\n}\n");
    s
}

/// What the table's figures mean and how each peer is set up, printed
/// after the table and written to the JSON.
pub fn notes() -> Vec<String> {
    vec![
        "ops: P1 = one lookup (idemkv: claim -> Replay); P2/P3 = one claim + complete cycle of a \
         new key (two transitions)"
            .to_string(),
        "idemkv/peer = ops/s of the workload's reference idemkv row (P1 idemkv-durable, P2 \
         idemkv-buffered, P3 idemkv-durable) divided by the row's ops/s; >1 means idemkv is faster"
            .to_string(),
        "idemkv-buffered: Buffered { max_delay: 5 ms }; idemkv-durable: fdatasync'd journal, \
         group commit"
            .to_string(),
        "sled-flush: sled 0.34.7 flush() after each CAS; on Linux it ends in sync_file_range, \
         which is not an fsync (sled #1452): NOT a true durable peer"
            .to_string(),
        "mutex-hashmap: 64 std Mutex<HashMap> stripes, memory only: the physical limit of the \
         design, no durability"
            .to_string(),
        "sqlite: WAL, one connection per thread, busy_timeout 30 s; synchronous=NORMAL (P1/P2) \
         syncs only at WAL checkpoints, FULL (P3) fsyncs the WAL at every commit"
            .to_string(),
        "redis: separate redis-server on loopback (--save \"\"; P3 with --appendonly yes \
         --appendfsync always); its clients (redis crate, TCP_NODELAY) run in this process and share its CPUs"
            .to_string(),
        format!(
            "{} CPUs: threads beyond that only help where operations block on I/O; latency \
             includes two Instant::now() calls",
            cpus()
        ),
    ]
}
