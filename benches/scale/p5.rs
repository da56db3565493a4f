//! P5, reopen after kill -9: a child process writes and is killed; the
//! parent times the reopen (journal replay) and the first answer.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use idemkv::{Claim, Config};

use crate::common::report::fmt_ops;
use crate::output::{Part, Val, fmt_count};
use crate::records::{base_config, fingerprint, key, populate};
use crate::{Opts, Res, SPACE_P5, SPACE_P5_JOURNAL, err, progress};

/// The environment variable that turns this binary into P5's child writer.
pub const CHILD_ENV: &str = "IDEMKV_BENCH_SCALE_CHILD";
/// The child gives up (exits) if nobody killed it by then.
const CHILD_LIFETIME: Duration = Duration::from_secs(600);

/// P5's child writer, run when `CHILD_ENV` is `<records>:<entries>:<dir>`:
/// populate, checkpoint, write `entries` unreplayed journal entries, flush,
/// say `ready` and wait for the SIGKILL.
pub fn child_writer(spec: &str) -> Res<()> {
    let mut parts = spec.splitn(3, ':');
    let mut next = |what: &str| parts.next().ok_or(format!("{CHILD_ENV}: no {what}"));
    let records: u64 = next("record count")?.parse().map_err(err)?;
    let entries: u64 = next("entry count")?.parse().map_err(err)?;
    let dir = PathBuf::from(next("directory")?);

    let store = base_config().sweep_interval(None).open(&dir).map_err(err)?;
    let took = populate(&store, SPACE_P5, 0..records, 2)?;
    store.checkpoint().map_err(err)?;
    store.close().map_err(err)?;
    println!("populated {records} {}", took.as_secs_f64());

    // Reopened without any checkpoint: everything from here stays in the
    // journal only, to be replayed by the next open.
    let store = base_config()
        .sweep_interval(None)
        .checkpoint_interval(None)
        .checkpoint_bytes(u64::MAX)
        .open(&dir)
        .map_err(err)?;
    let took = populate(&store, SPACE_P5_JOURNAL, 0..entries / 2, 2)?;
    store.flush().map_err(err)?;
    println!("ready {} {}", entries / 2 * 2, took.as_secs_f64());
    use std::io::Write as _;
    std::io::stdout().flush().map_err(err)?;
    // Keep the store open (no close, no checkpoint) until killed.
    std::thread::sleep(CHILD_LIFETIME);
    drop(store);
    Err("nobody killed the child writer".into())
}

/// Kills the child if the parent leaves early (an error or a panic).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs P5 (see the crate documentation).
pub fn p5(opts: &Opts) -> Res<Part> {
    let (n, entries) = (opts.records, opts.journal_entries);
    let mut part = Part::new("P5");
    let dir = tempfile::tempdir().map_err(err)?;
    progress(&format!("P5: child writes {n} records, checkpoints, then {entries} journal entries"));
    let exe = std::env::current_exe().map_err(err)?;
    let started = Instant::now();
    let mut child = KillOnDrop(
        Command::new(exe)
            .env(CHILD_ENV, format!("{n}:{entries}:{}", dir.path().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting the child writer: {e}"))?,
    );
    let stdout = child.0.stdout.take().ok_or("no child stdout")?;
    let (mut populate_s, mut journal_s, mut written) = (f64::NAN, f64::NAN, None);
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(err)?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["populated", _, s] => populate_s = s.parse().unwrap_or(f64::NAN),
            ["ready", e, s] => {
                written = Some(e.parse::<u64>().map_err(err)?);
                journal_s = s.parse().unwrap_or(f64::NAN);
                break;
            }
            _ => progress(&format!("P5 child: {line}")),
        }
    }
    let Some(written) = written else {
        let status = child.0.wait().map_err(err)?;
        return Err(format!("the child writer ended before it was ready: {status}"));
    };
    child.0.kill().map_err(|e| format!("SIGKILL: {e}"))?;
    let status = child.0.wait().map_err(err)?;
    let child_s = started.elapsed().as_secs_f64();
    let killed = killed_by(&status);

    progress("P5: reopening the killed store");
    let t0 = Instant::now();
    let store = Config::new().open(dir.path()).map_err(|e| format!("reopen: {e}"))?;
    let open_time = t0.elapsed();
    let probe = key(SPACE_P5, (n / 2) as u64);
    let first = store.claim(&probe, fingerprint()).map_err(err)?;
    let first_answer = t0.elapsed();
    if !matches!(first, Claim::Replay(_)) {
        return Err(format!("first claim after reopen of {probe} answered {first:?}"));
    }
    // Untimed: a key that only the replayed journal holds also replays.
    let journal_key = key(SPACE_P5_JOURNAL, written / 2 - 1);
    match store.claim(&journal_key, fingerprint()).map_err(err)? {
        Claim::Replay(_) => {}
        other => return Err(format!("replayed key {journal_key} answered {other:?}")),
    }
    let report = store.recovery_report().clone();
    store.close().map_err(err)?;

    let secs = open_time.as_secs_f64();
    part.goal(
        format!("open after kill -9 ({} records + {} entries)", fmt_count(n), fmt_count(entries)),
        "<= 1 s".into(),
        format!("{:.3} s ({}/s replayed)", secs, fmt_ops(report.entries_replayed as f64 / secs)),
        secs <= 1.0,
    );
    part.info(
        "time to first answer (open + 1 claim, Replay)".into(),
        format!("{:.3} s", first_answer.as_secs_f64()),
    );
    let mut replay = format!(
        "{} replayed, {} skipped, {} segments, last_seq {}, {} bytes dropped",
        report.entries_replayed,
        report.entries_skipped,
        report.segments,
        report.last_seq,
        report.bytes_dropped
    );
    if let Some(d) = &report.damage {
        let _ = write!(replay, ", damage: {d}");
    }
    if report.entries_replayed != written {
        let _ = write!(replay, " (EXPECTED {written})");
    }
    part.info("recovery report".into(), replay);
    part.info(
        "child: populate / journal phase / whole child".into(),
        format!("{populate_s:.1} s / {journal_s:.2} s / {child_s:.1} s; {killed}"),
    );

    let f = &mut part.fields;
    f.push(("records".into(), Val::U(n as u64)));
    f.push(("journal_entries_written".into(), Val::U(written)));
    f.push(("open_s".into(), Val::F(secs)));
    f.push(("first_answer_s".into(), Val::F(first_answer.as_secs_f64())));
    f.push(("entries_replayed".into(), Val::U(report.entries_replayed)));
    f.push(("entries_skipped".into(), Val::U(report.entries_skipped)));
    f.push(("segments".into(), Val::U(report.segments as u64)));
    f.push(("last_seq".into(), Val::U(report.last_seq)));
    f.push(("bytes_dropped".into(), Val::U(report.bytes_dropped)));
    f.push(("damage".into(), report.damage.clone().map_or(Val::Null, Val::S)));
    f.push(("child_populate_s".into(), Val::F(populate_s)));
    f.push(("child_journal_phase_s".into(), Val::F(journal_s)));
    f.push(("child_exit".into(), Val::S(killed)));
    Ok(part)
}

#[cfg(unix)]
fn killed_by(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(9) => "killed by SIGKILL".into(),
        Some(s) => format!("killed by signal {s}"),
        None => format!("exited: {status}"),
    }
}

#[cfg(not(unix))]
fn killed_by(status: &std::process::ExitStatus) -> String {
    format!("terminated: {status}")
}
