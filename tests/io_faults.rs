//! Guards durability under injected journal I/O faults: for every write, short write, fsync and directory fsync of a workload, failing exactly that call gives a typed error (Io at open, else Poisoned with "reopen"), poisons the store, never panics, and after a reopen without faults every transition acknowledged before the fault is present (completions replay byte-identically).
//!
//! Faults go through the journal's file seam (`idemkv::testing`, wrapped by
//! `common::faults::FaultyFs`). A clean run first records how many journal
//! writes and fsyncs each operation of the workload makes; then every call
//! number N of every kind is failed in a run of its own.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestResult;
use common::faults::{Fault, FaultyFs};
use idemkv::{Claim, Config, Durability, EntryState, Error, Key, Lease, Store};

const CYCLES: usize = 40;

fn fkey(i: usize) -> Key {
    Key::new("io", format!("k{i:02}")).expect("valid key")
}

/// Small responses, or ~200-400 bytes so that 4 KiB segments rotate often.
fn response(i: usize, big: bool) -> Vec<u8> {
    let mut r = format!("response-{i}-").into_bytes();
    if big {
        r.extend((0..200 + 5 * i).map(|b| b as u8));
    }
    r
}

#[derive(Debug, Clone, Copy)]
struct Variant {
    name: &'static str,
    segment_bytes: u64,
    big: bool,
}

const VARIANTS: [Variant; 2] = [
    Variant { name: "one segment", segment_bytes: 64 << 20, big: false },
    Variant { name: "4 KiB segments (rotation)", segment_bytes: 4096, big: true },
];

fn config(fs: &FaultyFs, v: &Variant, durability: Durability) -> Config {
    Config::new()
        .durability(durability)
        .journal_fs(Arc::new(fs.clone()))
        .segment_bytes(v.segment_bytes)
        .checkpoint_interval(None)
        .sweep_interval(None)
        .cache_bytes(1 << 20)
        .sled_cache_bytes(1 << 20)
}

/// Makes the fault of one kind for call number N.
type FaultOf = fn(u64) -> Fault;

/// Journal calls made so far: (writes, fsyncs, directory fsyncs).
fn counts(fs: &FaultyFs) -> [u64; 3] {
    [fs.writes(), fs.syncs(), fs.dir_syncs()]
}

/// Operation `op` of the workload: `2i` claims key i, `2i + 1` completes it.
fn run_op(store: &Store, op: usize, v: &Variant, leases: &mut Vec<Lease>) -> Result<(), Error> {
    let i = op / 2;
    if op.is_multiple_of(2) {
        match store.claim(&fkey(i), None)? {
            Claim::Acquired(l) => leases.push(l.into_lease()),
            other => panic!("op {op}: expected Acquired, got {other:?}"),
        }
        Ok(())
    } else {
        store.complete(&leases[i], &response(i, v.big))
    }
}

/// The state of key `i` when the first `p` operations happened.
fn expected(i: usize, p: usize) -> &'static str {
    if 2 * i + 1 < p {
        "completed"
    } else if 2 * i < p {
        "in progress"
    } else {
        "absent"
    }
}

/// Reopens without faults and returns how many operations of the workload
/// are present (checking that they form a prefix), after checking that
/// completions replay byte-identically and claims come back orphaned.
fn present_prefix(dir: &std::path::Path, v: &Variant, ops: usize) -> TestResult<usize> {
    let store = Store::open(dir).map_err(|e| format!("reopen without faults failed: {e}"))?;
    let mut states = Vec::new();
    for i in 0..ops.div_ceil(2) {
        let state = match store.get(&fkey(i))?.map(|e| e.state) {
            None => "absent",
            Some(EntryState::InProgress { orphaned: true, .. }) => "in progress",
            Some(EntryState::Finished(r)) => {
                assert_eq!(r.response(), &response(i, v.big)[..], "k{i}: body differs");
                "completed"
            }
            other => panic!("k{i}: unexpected {other:?}"),
        };
        states.push(state);
    }
    let p = (0..=ops)
        .find(|&p| (0..states.len()).all(|i| states[i] == expected(i, p)))
        .ok_or_else(|| format!("the surviving operations are not a prefix: {states:?}"))?;
    // Claims come back orphaned; completions replay.
    for (i, s) in states.iter().enumerate() {
        match (*s, store.claim(&fkey(i), None)?) {
            ("completed", Claim::Replay(r)) => assert_eq!(r.response(), &response(i, v.big)[..]),
            ("in progress", Claim::Acquired(l)) => assert!(l.recovered() && l.attempt() == 2),
            ("absent", Claim::Acquired(l)) => assert!(!l.recovered() && l.attempt() == 1),
            (s, other) => panic!("k{i} ({s}): {other:?}"),
        }
    }
    store.close()?;
    Ok(p)
}

fn assert_poisoned(e: &Error, what: &str) {
    let msg = e.to_string();
    assert!(
        matches!(e, Error::Poisoned { .. }) && msg.contains("reopen") && msg.contains(what),
        "expected Error::Poisoned naming {what:?} and saying to reopen, got {e:?}: {msg}"
    );
}

/// The operation whose journal calls include call number `n` of kind `k`,
/// from the clean run's counts after open (`after[0]`) and after each op.
fn failing_op(after: &[[u64; 3]], kind: usize, n: u64) -> Option<usize> {
    if after[0][kind] >= n {
        return None;
    }
    after.iter().position(|c| c[kind] >= n).map(|p| p - 1)
}

#[test]
fn every_journal_fault_in_durable_mode_loses_nothing_acknowledged() -> TestResult {
    let root = common::fast_tempdir()?;
    let started = Instant::now();
    let mut injected = 0;
    let mut runs = 0;
    let ops = 2 * CYCLES;
    for v in &VARIANTS {
        // The clean run: journal calls after open and after each operation.
        let fs = FaultyFs::new(Fault::None);
        let dir = root.path().join(format!("clean-{}", v.segment_bytes));
        let store = config(&fs, v, Durability::Durable).open(&dir)?;
        let mut after = vec![counts(&fs)];
        let mut leases = Vec::new();
        for op in 0..ops {
            run_op(&store, op, v, &mut leases)?;
            after.push(counts(&fs));
        }
        store.close()?;
        assert_eq!(counts(&fs), after[ops], "close writes no journal entries");
        assert_eq!(present_prefix(&dir, v, ops)?, ops);
        let total = after[ops];
        println!("io_faults: {}: {total:?} writes/fsyncs/dir fsyncs for {ops} ops", v.name);

        let kinds: [(&str, usize, FaultOf); 4] = [
            ("write", 0, Fault::FailWrite),
            ("short write", 0, Fault::ShortWrite),
            ("fsync", 1, Fault::FailSync),
            ("dir fsync", 2, Fault::FailDirSync),
        ];
        for (name, kind, fault) in kinds {
            for n in 1..=total[kind] {
                runs += 1;
                let ctx = format!("{} / {name} #{n}", v.name);
                let fs = FaultyFs::new(fault(n));
                let dir = root.path().join(format!("run{runs}"));
                let res = run_faulty(&dir, &fs, v, failing_op(&after, kind, n), name);
                injected += fs.injected();
                res.map_err(|e| format!("{ctx}: {e}"))?;
                assert_eq!(fs.injected(), 1, "{ctx}: the fault fired once");
                std::fs::remove_dir_all(&dir)?;
            }
        }
    }
    println!(
        "io_faults: durable: {runs} runs, {injected} faults injected, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One run with one fault; `fails` is the operation that must fail (None:
/// the fault hits `open`).
fn run_faulty(
    dir: &std::path::Path,
    fs: &FaultyFs,
    v: &Variant,
    fails: Option<usize>,
    name: &str,
) -> TestResult {
    let ops = 2 * CYCLES;
    let store = match config(fs, v, Durability::Durable).open(dir) {
        Err(e) => {
            assert!(fails.is_none(), "open failed, expected op {fails:?} to: {e}");
            let msg = e.to_string();
            assert!(
                matches!(e, Error::Io { .. })
                    && msg.contains("journal segment")
                    && msg.contains("injected"),
                "a fault in open is an Io error naming the segment: {e:?}: {msg}"
            );
            // Nothing was acknowledged; the directory still opens.
            assert_eq!(present_prefix(dir, v, ops)?, 0);
            return Ok(());
        }
        Ok(store) => store,
    };
    let fails = fails.ok_or("open succeeded through a fault meant for it")?;
    let mut leases = Vec::new();
    let mut acked = 0;
    let mut failure = None;
    for op in 0..ops {
        match run_op(&store, op, v, &mut leases) {
            Ok(()) => acked += 1,
            Err(e) => {
                failure = Some((op, e));
                break;
            }
        }
    }
    let (op, e) = failure.ok_or("no operation failed")?;
    assert_eq!(op, fails, "the operation that made the faulty call fails: {e}");
    // The journal thread reports "journal write failed: …" or "journal fsync
    // failed: …" (a failed fsync or directory fsync while rotating segments
    // is part of a write), with the injected cause.
    let what = "journal";
    assert_poisoned(&e, what);
    let cause = match name {
        "write" => "injected fault: write failed",
        "short write" => "injected fault: short write",
        "fsync" => "injected fault: fsync failed",
        _ => "injected fault: directory fsync failed",
    };
    assert!(e.to_string().contains(cause), "the cause is named: {e}");
    // Poisoned: every later write is refused, also on other keys.
    match store.claim(&fkey(CYCLES + 1), None) {
        Err(e) => assert_poisoned(&e, what),
        Ok(c) => panic!("a claim after the fault succeeded: {c:?}"),
    }
    assert_poisoned(&store.flush().unwrap_err(), what);
    if let Some(l) = leases.get(op / 2) {
        assert_poisoned(&store.complete(l, b"late").unwrap_err(), what);
    }
    // Reads of acknowledged completions still answer.
    for i in 0..acked / 2 {
        match store.get(&fkey(i))?.map(|e| e.state) {
            Some(EntryState::Finished(r)) => assert_eq!(r.response(), &response(i, v.big)[..]),
            other => panic!("k{i}: acknowledged completion unreadable after the fault: {other:?}"),
        }
    }
    let closed = store.close();
    assert!(matches!(closed, Err(Error::Poisoned { .. })), "close reports the poison: {closed:?}");

    let p = present_prefix(dir, v, ops)?;
    // Nothing acknowledged is lost; the failed operation itself may have
    // reached the file only if its frame was written whole (fsync fault).
    let may_land = name == "fsync";
    assert!(
        p == acked || (may_land && p == acked + 1),
        "{p} operations present, {acked} acknowledged ({name})"
    );
    Ok(())
}

#[test]
fn buffered_fsync_fault_is_returned_by_flush() -> TestResult {
    let root = common::fast_tempdir()?;
    let v = &VARIANTS[0];
    let buffered = Durability::Buffered { max_delay: Duration::from_secs(3600) };
    let mut injected = 0;
    // Syncs: #1 is the new segment's header at open, then one per flush.
    for n in 2..=5u64 {
        let fs = FaultyFs::new(Fault::FailSync(n));
        let dir = root.path().join(format!("sync{n}"));
        let store = config(&fs, v, buffered).open(&dir)?;
        let mut leases = Vec::new();
        let mut acked = 0;
        let mut flushes = 0;
        let err = 'run: {
            for op in 0..2 * CYCLES {
                run_op(&store, op, v, &mut leases)?; // Buffered: acknowledged at once
                acked += 1;
                if acked % 10 == 0 {
                    flushes += 1;
                    if let Err(e) = store.flush() {
                        break 'run e;
                    }
                }
            }
            panic!("sync #{n}: no flush failed");
        };
        injected += fs.injected();
        assert_eq!(flushes, n - 1, "the flush whose fsync failed reports it");
        assert_poisoned(&err, "journal fsync failed");
        assert_poisoned(&store.claim(&fkey(CYCLES + 1), None).unwrap_err(), "fsync");
        assert!(matches!(store.close(), Err(Error::Poisoned { .. })));
        // The data reached the OS before the fsync failed: all of it is there.
        assert_eq!(present_prefix(&dir, v, 2 * CYCLES)?, acked, "sync #{n}");
    }
    println!("io_faults: buffered fsync: {injected} faults injected");
    Ok(())
}

#[test]
fn buffered_write_faults_lose_only_what_was_not_flushed() -> TestResult {
    let root = common::fast_tempdir()?;
    let v = &VARIANTS[1];
    let buffered = Durability::Buffered { max_delay: Duration::from_secs(3600) };
    /// Flushes after every this many operations.
    const EVERY: usize = 3;
    let workload = |store: &Store, flushed: &mut usize, acked: &mut usize| -> Result<(), Error> {
        let mut leases = Vec::new();
        for op in 0..2 * CYCLES {
            run_op(store, op, v, &mut leases)?;
            *acked += 1;
            if (*acked).is_multiple_of(EVERY) {
                store.flush()?;
                *flushed = *acked;
            }
        }
        store.flush()?;
        *flushed = *acked;
        Ok(())
    };
    let fs = FaultyFs::new(Fault::None);
    let store = config(&fs, v, buffered).open(root.path().join("clean"))?;
    workload(&store, &mut 0, &mut 0)?;
    store.close()?;
    let writes = fs.writes();
    let mut injected = 0;
    let mut runs = 0;
    for (name, fault) in
        [("write", Fault::FailWrite as fn(u64) -> Fault), ("short", Fault::ShortWrite)]
    {
        for n in 2..=writes {
            runs += 1;
            let fs = FaultyFs::new(fault(n));
            let dir = root.path().join(format!("{name}{n}"));
            let store = config(&fs, v, buffered).open(&dir)?;
            let (mut flushed, mut acked) = (0, 0);
            let res = workload(&store, &mut flushed, &mut acked);
            if fs.injected() == 0 {
                // Batching differs from run to run: this run made fewer writes.
                assert!(res.is_ok(), "{name} #{n}: {res:?}");
                continue;
            }
            injected += fs.injected();
            assert_poisoned(&res.unwrap_err(), "journal write failed");
            assert_poisoned(&store.flush().unwrap_err(), "journal write failed");
            drop(store);
            // Buffered loses acknowledged transitions not yet handed to the
            // OS, but never one that a successful flush made durable.
            let p = present_prefix(&dir, v, 2 * CYCLES)?;
            assert!(
                flushed <= p && p <= acked,
                "{name} #{n}: {p} present; {flushed} flushed, {acked} acknowledged"
            );
            std::fs::remove_dir_all(&dir)?;
        }
    }
    println!("io_faults: buffered writes: {runs} runs, {injected} faults injected");
    Ok(())
}
