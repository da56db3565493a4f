//! The `idemkv` command-line tool, run as a real process on temporary stores
//! built with the library: every inspect/maintain subcommand, `--json`, exit
//! codes (0 ok, 1 check failed or key absent, 2 usage or I/O error), a
//! corrupted store failing `verify`, export → import round trips, a locked
//! store, and a tiny `bench`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use idemkv::{Claim, Config, Failure, Fingerprint, Key, MockClock, Store};
use serde_json::Value;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The response of `stripe:evt_1`.
const RESPONSE: &[u8] = br#"{"charged":true}"#;
/// A non-UTF-8 id and response, in namespace `github`.
const BIN_ID: &[u8] = &[0xff, 0x00, 0x01];
const BIN_RESPONSE: &[u8] = &[0x00, 0xff, 0x10, 0x0a];

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.out()))
    }

    fn expect(self, code: i32) -> Self {
        assert_eq!(self.code, code, "exit code; stdout:\n{}\nstderr:\n{}", self.out(), self.stderr);
        self
    }
}

fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().expect("exited normally"),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `idemkv ARGS`.
fn idemkv(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_idemkv"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run idemkv");
    finish(out)
}

/// Runs `idemkv --path DIR ARGS`.
fn at(dir: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--path", dir.to_str().expect("UTF-8 temp path")];
    all.extend_from_slice(args);
    idemkv(&all)
}

/// Runs `idemkv --path DIR ARGS` with `input` on stdin.
fn at_with_stdin(dir: &Path, args: &[&str], input: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idemkv"))
        .arg("--path")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run idemkv");
    child.stdin.take().expect("stdin").write_all(input).expect("write stdin");
    finish(child.wait_with_output().expect("wait idemkv"))
}

/// A store with, in `stripe`: a completed key (and one duplicate claim of
/// it), a terminally failed one, one left in progress, one claimable after a
/// retryable failure; in `github`: a completed key with a binary id and
/// response.
fn build_store(dir: &Path) -> TestResult {
    let store = Store::open(dir)?;
    let fp = Fingerprint::of(b"body");
    let done = Key::new("stripe", "evt_1")?;
    let lease = store.claim(&done, fp)?.into_lease().expect("new key");
    store.complete(&lease, RESPONSE)?;
    assert!(matches!(store.claim(&done, fp)?, Claim::Replay(_)));

    let failed = store.claim(&Key::new("stripe", "evt_2")?, None)?.into_lease().expect("new");
    store.fail(&failed, Failure::Terminal(b"card declined"))?;
    let _held = store.claim(&Key::new("stripe", "evt_3")?, None)?.into_lease().expect("new");
    let retry = store.claim(&Key::new("stripe", "evt_4")?, None)?.into_lease().expect("new");
    store.fail(&retry, Failure::Retryable)?;

    let bin = store.claim(&Key::new("github", BIN_ID)?, None)?.into_lease().expect("new");
    store.complete(&bin, BIN_RESPONSE)?;
    store.close()?;
    Ok(())
}

fn store() -> TestResult<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    build_store(dir.path())?;
    Ok(dir)
}

#[test]
fn stats_counts_records_by_state_and_reads_counters() -> TestResult {
    let dir = store()?;
    let text = at(dir.path(), &["stats"]).expect(0).out();
    for want in ["stripe", "github", "total", "duplicate rate", "in progress, orphaned"] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }

    let j = at(dir.path(), &["stats", "--json"]).expect(0).json();
    let stripe = j["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .find(|n| n["namespace"] == "stripe")
        .expect("stripe");
    let r = &stripe["records"];
    assert_eq!(
        (&r["completed"], &r["failed"], &r["claimable"], &r["orphaned"], &r["in_flight"]),
        (&1.into(), &1.into(), &1.into(), &1.into(), &0.into()),
        "{stripe}"
    );
    assert_eq!(stripe["counters"]["claims"], 5, "{stripe}");
    assert_eq!(stripe["counters"]["replayed"], 1);
    assert!((stripe["duplicate_rate"].as_f64().unwrap() - 0.2).abs() < 1e-9);
    assert_eq!(stripe["event_latency_ms"]["count"], 2);
    assert_eq!(j["total"]["records"]["live"], 5);

    let prom = at(dir.path(), &["stats", "--prometheus"]).expect(0).out();
    assert!(prom.contains("idemkv_claims_total{namespace=\"stripe\"} 5"), "{prom}");
    Ok(())
}

#[test]
fn path_falls_back_to_the_demo_layout() -> TestResult {
    let base = tempfile::tempdir()?;
    build_store(&base.path().join("store"))?;
    let j = at(base.path(), &["--json", "stats"]).expect(0).json();
    assert!(j["store"].as_str().unwrap().ends_with("store"), "{j}");
    assert_eq!(j["total"]["records"]["live"], 5);

    let empty = tempfile::tempdir()?;
    let r = at(empty.path(), &["stats"]).expect(2);
    assert!(r.stderr.starts_with("idemkv: error: no idemkv store in"), "{}", r.stderr);
    assert!(!empty.path().join("META").exists(), "inspecting must not create a store");
    Ok(())
}

#[test]
fn get_shows_entries_and_raw_responses() -> TestResult {
    let dir = store()?;
    let text = at(dir.path(), &["get", "stripe:evt_1"]).expect(0).out();
    assert!(text.contains("completed") && text.contains(r#"{"charged":true}"#), "{text}");
    assert!(text.contains(&Fingerprint::of(b"body").to_string()), "{text}");

    let j = at(dir.path(), &["get", "stripe:evt_1", "--json"]).expect(0).json();
    assert_eq!(j["state"], "completed");
    assert_eq!(j["attempts"], 1);
    assert_eq!(j["response"], r#"{"charged":true}"#);
    assert!(j["expires_at_ms"].as_u64() > j["created_at_ms"].as_u64());

    assert_eq!(at(dir.path(), &["get", "stripe:evt_1", "--raw"]).expect(0).stdout, RESPONSE);
    let bin = at(dir.path(), &["get", "--hex", "github:ff0001", "--raw"]).expect(0);
    assert_eq!(bin.stdout, BIN_RESPONSE);
    let j = at(dir.path(), &["--json", "get", "--hex", "github:ff0001"]).expect(0).json();
    assert_eq!((&j["id_hex"], &j["response_hex"]), (&"ff0001".into(), &"00ff100a".into()));

    let failed = at(dir.path(), &["get", "stripe:evt_2"]).expect(0).out();
    assert!(failed.contains("failed") && failed.contains("card declined"), "{failed}");
    let j = at(dir.path(), &["get", "stripe:evt_3", "--json"]).expect(0).json();
    assert_eq!((&j["state"], &j["orphaned"]), (&"in_progress".into(), &true.into()), "{j}");
    let r = at(dir.path(), &["get", "stripe:evt_3", "--raw"]).expect(1);
    assert!(r.stderr.contains("no stored response"), "{}", r.stderr);
    let j = at(dir.path(), &["get", "stripe:evt_4", "--json"]).expect(0).json();
    assert_eq!((&j["state"], &j["after_retryable_failure"]), (&"claimable".into(), &true.into()));

    let missing = at(dir.path(), &["get", "stripe:nope"]).expect(1);
    assert!(missing.stderr.contains("no record for stripe:nope"), "{}", missing.stderr);
    assert!(missing.stdout.is_empty());
    assert_eq!(at(dir.path(), &["get", "stripe:nope", "--json"]).expect(1).json()["found"], false);
    Ok(())
}

#[test]
fn list_pages_filters_and_prints_next() -> TestResult {
    let dir = store()?;
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = vec!["list", "--limit", "2", "--json"];
        if let Some(a) = &after {
            args.extend(["--after", a.as_str()]);
        }
        let j = at(dir.path(), &args).expect(0).json();
        pages += 1;
        for e in j["entries"].as_array().expect("entries") {
            keys.push(e["key"].as_str().unwrap().to_string());
        }
        match j["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        keys,
        ["github:%FF%00%01", "stripe:evt_1", "stripe:evt_2", "stripe:evt_3", "stripe:evt_4"]
    );

    let text = at(dir.path(), &["list", "--limit", "2"]).expect(0).out();
    assert!(text.contains("next: stripe:evt_1"), "{text}");
    assert!(text.contains("github:%FF%00%01"), "{text}");
    let last = at(dir.path(), &["list", "--after", "stripe:evt_2"]).expect(0).out();
    assert!(!last.contains("next:") && last.contains("(2 records)"), "{last}");

    let j = at(dir.path(), &["list", "--state", "claimable", "--json"]).expect(0).json();
    assert_eq!(j["entries"].as_array().unwrap().len(), 1);
    assert_eq!(j["entries"][0]["key"], "stripe:evt_4");
    let j = at(dir.path(), &["list", "--state", "in_progress", "--json"]).expect(0).json();
    assert_eq!(j["entries"][0]["key"], "stripe:evt_3");
    let j = at(dir.path(), &["list", "--namespace", "github", "--json"]).expect(0).json();
    assert_eq!(j["entries"].as_array().unwrap().len(), 1);
    assert_eq!(j["next"], Value::Null);
    Ok(())
}

#[test]
fn remove_exits_1_when_nothing_was_removed() -> TestResult {
    let dir = store()?;
    let out = at(dir.path(), &["remove", "stripe:evt_4"]).expect(0).out();
    assert!(out.contains("removed stripe:evt_4"), "{out}");
    let again = at(dir.path(), &["remove", "stripe:evt_4"]).expect(1);
    assert!(again.stderr.contains("nothing removed"), "{}", again.stderr);
    at(dir.path(), &["get", "stripe:evt_4"]).expect(1);
    let j = at(dir.path(), &["--json", "remove", "--hex", "github:ff0001"]).expect(0).json();
    assert_eq!(j["removed"], true);
    Ok(())
}

#[test]
fn sweep_removes_expired_records() -> TestResult {
    let dir = tempfile::tempdir()?;
    // Written by a clock in 2023: long expired by the system clock.
    let store = Config::new().clock(MockClock::new(1_700_000_000_000)).open(dir.path())?;
    for id in ["a", "b", "c"] {
        let lease = store.claim(&Key::new("old", id)?, None)?.into_lease().expect("new");
        store.complete(&lease, b"ok")?;
    }
    store.close()?;
    at(dir.path(), &["get", "old:a"]).expect(1);
    let j = at(dir.path(), &["sweep", "--json"]).expect(0).json();
    assert_eq!(j["swept"], 3);
    let text = at(dir.path(), &["sweep"]).expect(0).out();
    assert!(text.starts_with("swept 0 expired records"), "{text}");
    let j = at(dir.path(), &["stats", "--json"]).expect(0).json();
    assert_eq!(j["total"]["expired"], 3, "{j}");
    Ok(())
}

#[test]
fn verify_passes_a_clean_store_and_fails_a_corrupt_one() -> TestResult {
    let dir = store()?;
    let ok = at(dir.path(), &["verify"]).expect(0).out();
    assert!(ok.contains("5 checked, all OK") && ok.contains("journal: intact"), "{ok}");

    let store = Store::open(dir.path())?;
    store.__corrupt_record(&Key::new("stripe", "evt_2")?, b"\x01garbage")?;
    store.close()?;
    let bad = at(dir.path(), &["verify"]).expect(1);
    let out = bad.out();
    assert!(out.contains("1 CORRUPT") && out.contains("stripe:evt_2"), "{out}");
    assert!(out.contains("FAILED"), "{out}");
    let j = at(dir.path(), &["verify", "--json"]).expect(1).json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["corrupt"][0]["key"], "stripe:evt_2");
    assert_eq!(j["records"], 5);

    // `get` of the damaged record is an error, not a silent absence.
    let r = at(dir.path(), &["get", "stripe:evt_2"]).expect(2);
    assert!(r.stderr.starts_with("idemkv: error: corrupt record"), "{}", r.stderr);
    // remove repairs it.
    at(dir.path(), &["remove", "stripe:evt_2"]).expect(0);
    at(dir.path(), &["verify"]).expect(0);
    Ok(())
}

#[test]
fn export_import_round_trips_exactly() -> TestResult {
    let src = store()?;
    let file = tempfile::NamedTempFile::new()?;
    let out =
        at(src.path(), &["export", "--output", file.path().to_str().unwrap()]).expect(0).out();
    assert!(out.contains("exported 5 records"), "{out}");
    let exported = std::fs::read(file.path())?;
    assert_eq!(exported.iter().filter(|&&b| b == b'\n').count(), 5);
    for line in exported.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let rec: idemkv::ExportedRecord = serde_json::from_slice(line)?;
        assert!(rec.expires_at_ms > rec.created_at_ms);
    }
    // Export to stdout is the same bytes.
    assert_eq!(at(src.path(), &["export"]).expect(0).stdout, exported);

    // Into an empty store, from a file…
    let dst = tempfile::tempdir()?;
    let r = at(dst.path(), &["import", "--input", file.path().to_str().unwrap()]).expect(0);
    assert!(r.out().contains("imported 5 records"), "{}", r.out());
    assert_eq!(at(dst.path(), &["export"]).expect(0).stdout, exported, "export → import → export");
    // …and from stdin.
    let dst2 = tempfile::tempdir()?;
    let j = at_with_stdin(dst2.path(), &["import", "--json"], &exported).expect(0).json();
    assert_eq!(j["imported"], 5);
    assert_eq!(at(dst2.path(), &["export", "-o", "-"]).expect(0).stdout, exported);

    for key in ["stripe:evt_1", "stripe:evt_2", "stripe:evt_3", "stripe:evt_4"] {
        let a = at(src.path(), &["get", key, "--json"]).expect(0).stdout;
        let b = at(dst.path(), &["get", key, "--json"]).expect(0).stdout;
        assert_eq!(a, b, "get {key}");
    }
    let a = at(src.path(), &["get", "--hex", "github:ff0001", "--raw"]).expect(0).stdout;
    let b = at(dst.path(), &["get", "--hex", "github:ff0001", "--raw"]).expect(0).stdout;
    assert_eq!(a, b);
    // The imported in-progress claim is an orphan: the next claim recovers it.
    let store = Store::open(dst.path())?;
    let lease = store.claim(&Key::new("stripe", "evt_3")?, None)?.into_lease().expect("orphan");
    assert!(lease.recovered());
    Ok(())
}

#[test]
fn import_names_the_bad_line() -> TestResult {
    let src = store()?;
    let exported = at(src.path(), &["export"]).expect(0).stdout;
    let first = exported.split(|&b| b == b'\n').next().unwrap().to_vec();
    let mut input = first.clone();
    input.extend_from_slice(b"\n\n{\"namespace\": 7}\n");
    let dst = tempfile::tempdir()?;
    let r = at_with_stdin(dst.path(), &["import"], &input).expect(2);
    assert!(
        r.stderr.starts_with("idemkv: error: stdin line 3: not an exported record"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("the 1 record before it were imported"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);

    // A damaged record field is refused with its line too.
    let mut rec: Value = serde_json::from_slice(&first)?;
    let hex = rec["record"].as_str().unwrap().to_string();
    rec["record"] = Value::String(format!("{}00", &hex[..hex.len() - 2]));
    let r = at_with_stdin(dst.path(), &["import"], format!("{rec}\n").as_bytes()).expect(2);
    assert!(r.stderr.contains("stdin line 1: corrupt record"), "{}", r.stderr);
    Ok(())
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["frobnicate"], "unrecognized subcommand"),
        (&["list", "--limit", "many"], "invalid value 'many'"),
        (&["list", "--state", "done"], "possible values"),
        (&["get"], "<KEY>"),
        (&["stats", "--bogus"], "unexpected argument '--bogus'"),
        (&["bench", "--durability", "sometimes"], "invalid value 'sometimes'"),
    ];
    for (args, want) in cases {
        let r = at(dir.path(), args).expect(2);
        assert!(r.stderr.starts_with("idemkv: error: "), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.trim_end().lines().count(), 1, "{args:?}: {}", r.stderr);
    }
    let dir = store().unwrap();
    for (args, want) in [
        (&["get", "no-colon"][..], "expected NAMESPACE:ID"),
        (&["get", "--hex", "s:xyz"], "not hex"),
        (&["remove", ":id"], "namespace is empty"),
        (&["stats", "--prometheus", "--json"], "cannot be used together"),
        (&["bench", "--ops", "0"], "--ops must be"),
    ] {
        let r = at(dir.path(), args).expect(2);
        assert!(
            r.stderr.starts_with("idemkv: error: ") && r.stderr.contains(want),
            "{args:?}: {}",
            r.stderr
        );
    }
    let help = idemkv(&["--help"]).expect(0).out();
    assert!(help.contains("stats") && help.contains("Exit codes"), "{help}");
}

#[test]
fn a_store_in_use_is_refused_with_the_library_message() -> TestResult {
    let dir = store()?;
    let held = Store::open(dir.path())?;
    let r = at(dir.path(), &["stats"]).expect(2);
    assert!(r.stderr.starts_with("idemkv: error: data directory"), "{}", r.stderr);
    assert!(r.stderr.contains(&dir.path().display().to_string()), "{}", r.stderr);
    assert!(r.stderr.contains("in use by another process"), "{}", r.stderr);
    at(dir.path(), &["export"]).expect(2);
    drop(held);
    at(dir.path(), &["stats"]).expect(0);
    Ok(())
}

#[test]
fn bench_runs_tiny_loads_and_audit_prints_duplicates() -> TestResult {
    let r =
        idemkv(&["bench", "--ops", "40", "--threads", "2", "--durability", "buffered"]).expect(0);
    let out = r.out();
    assert!(out.contains("temporary, removed afterwards") && out.contains("ops/s"), "{out}");
    assert!(out.contains("claim+complete") && out.contains("duplicate claim"), "{out}");

    let j = idemkv(&["bench", "--ops", "20", "--threads", "3", "--json", "--audit"]).expect(0);
    let doc = j.json();
    assert_eq!(doc["phases"][0]["ops"], 20);
    assert_eq!(doc["phases"][1]["unexpected"], 0);
    let tmp = doc["store"].as_str().unwrap();
    assert!(!Path::new(tmp).exists(), "the temporary bench store is removed");
    let dups = j.stderr.lines().filter(|l| l.contains("duplicate replayed")).count();
    assert_eq!(dups, 20, "one audit line per duplicate:\n{}", j.stderr);

    // An explicit --path is used only when new or empty, and kept.
    let dir = tempfile::tempdir()?;
    let kept = dir.path().join("bench");
    at(&kept, &["bench", "--ops", "10", "--durability", "buffered"]).expect(0);
    assert!(kept.join("META").exists());
    let r = at(&kept, &["bench", "--ops", "10"]).expect(2);
    assert!(r.stderr.contains("not empty"), "{}", r.stderr);
    assert_eq!(at(&kept, &["stats", "--json"]).expect(0).json()["total"]["records"]["live"], 10);
    Ok(())
}

#[test]
fn every_json_output_parses() -> TestResult {
    let dir = store()?;
    for args in [
        &["stats"][..],
        &["get", "stripe:evt_1"],
        &["list"],
        &["verify"],
        &["sweep"],
        &["remove", "stripe:evt_2"],
    ] {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let r = at(dir.path(), &all).expect(0);
        assert!(r.json().is_object(), "{args:?}");
        assert!(r.stderr.is_empty(), "{args:?}: no progress output with --json: {}", r.stderr);
    }
    let file = tempfile::NamedTempFile::new()?;
    let p = file.path().to_str().unwrap();
    assert_eq!(at(dir.path(), &["export", "--json", "-o", p]).expect(0).json()["exported"], 4);
    Ok(())
}
