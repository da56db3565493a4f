//! `idemkv demo` end to end, as a real process: a small run over HTTP with
//! the SIGKILL of the server passes and reports its HTTP statuses and forged
//! deliveries, text and `--json`; the store it leaves is one the other
//! subcommands find; a directory it did not create is never wiped.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn idemkv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idemkv"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run idemkv")
}

fn demo(dir: &Path, extra: &[&str]) -> Output {
    let path = dir.to_str().expect("UTF-8 temp path");
    let mut args = vec!["demo", "--path", path, "--events", "400", "--concurrency", "16"];
    args.extend_from_slice(extra);
    idemkv(&args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn demo_over_http_with_a_crash_passes() -> TestResult {
    let base = tempfile::tempdir()?;
    let dir = base.path().join("demo");
    let out = demo(&dir, &["--json", "--seed", "7"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{stderr}", text(&out.stdout));
    let j: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(j["verdict"], "PASS", "{j:#}");
    assert_eq!(j["failures"].as_array().map(Vec::len), Some(0));
    assert_eq!(j["events_executed_twice"], 0);
    assert_eq!(j["acknowledged_outcomes_lost"], 0);
    assert_eq!(
        j["unique_events_completed"].as_u64().unwrap()
            + j["events_failed_terminally"].as_u64().unwrap(),
        400
    );
    // Every forged delivery was stopped by the signature check: 401 for a
    // bad signature or stale timestamp, 400 without one; none reached the store.
    let statuses = &j["http_statuses"];
    assert_eq!(j["forged_sent"], 16);
    assert_eq!(j["forged_rejected"], 16);
    assert_eq!(statuses["401"], 12, "{statuses}");
    assert_eq!(statuses["400"], 4, "{statuses}");
    let why = &j["signature_rejections"];
    assert_eq!(why["401 webhook_signature_invalid"], 8, "{why}");
    assert_eq!(why["401 webhook_timestamp_outside_tolerance"], 4, "{why}");
    assert_eq!(why["400 webhook_signature_missing"], 4, "{why}");
    assert_eq!(j["foreign_traces"], 0);
    assert!(statuses["200"].as_u64().unwrap() > 0, "{statuses}");
    assert!(statuses["200 replayed"].as_u64().unwrap() > 0, "{statuses}");
    // The crash happened, on the same directory, and a new server took over.
    let crash = &j["crash"];
    assert!(crash["killed_pid"].as_u64().unwrap() > 0, "{crash}");
    assert!(crash["new_port"].as_u64().unwrap() > 0, "{crash}");
    assert!(stderr.contains("crash: SIGKILL server pid"), "{stderr}");

    // The store it leaves is found under <dir>/store by the other subcommands.
    let path = dir.to_str().unwrap();
    let stats = idemkv(&["--path", path, "--json", "stats"]);
    assert_eq!(stats.status.code(), Some(0), "{}", text(&stats.stderr));
    let verify = idemkv(&["--path", path, "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stderr));
    Ok(())
}

#[test]
fn demo_text_report_without_crash() -> TestResult {
    let base = tempfile::tempdir()?;
    let dir = base.path().join("demo");
    let out = demo(&dir, &["--no-crash", "--dup-rate", "0.5"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{}", text(&out.stderr));
    for words in [
        "http answers",
        "200 first run",
        "200 replayed",
        "401 bad signature",
        "forged deliveries",
        "(--no-crash)",
        "VERDICT: PASS",
    ] {
        assert!(stdout.contains(words), "{words:?} missing from:\n{stdout}");
    }
    assert!(dir.join("ledger.log").exists() && dir.join("store").is_dir());
    Ok(())
}

#[test]
fn demo_refuses_to_wipe_a_directory_it_did_not_create() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("precious.txt"), "keep me")?;
    let out = demo(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("refusing to wipe"), "{}", text(&out.stderr));
    assert!(dir.path().join("precious.txt").exists());
    Ok(())
}
