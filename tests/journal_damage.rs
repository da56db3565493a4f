//! Guards journal recovery against damage at every byte of the tail: for each of the last 8 entries of a real journal (written by a SIGKILLed child), a cut at every byte offset inside it and a flip of every single bit of it open without a panic, keep exactly the entries before it, and report the damage and the bytes dropped; plus a damaged sled record is Error::Corrupt and listed by verify.
//!
//! Each case runs on a copy of the journal and META only, without `sled/`,
//! so the journal alone rebuilds the state and the expected state is exactly
//! the prefix of entries before the damage (sled's own background flush could
//! otherwise hold later entries; see `torn_journal.rs`, which covers that).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use common::{Ack, ChildProc, FrameInfo, TestResult, acquire, child_config, emit};
use idemkv::{Claim, Config, EntryState, Error, Failure, Key, Store};

#[test]
#[ignore = "child process of the crash tests; does nothing when run directly"]
fn child_worker() {
    if std::env::var(common::CHILD_MODE_ENV).as_deref() == Ok(MODE) {
        damage_child();
    } else {
        common::child_main();
    }
}

const MODE: &str = "damage_writer";
const NS: &str = "d";
const KEYS: usize = 16;
/// Entries at the end of the last segment damaged byte by byte.
const DAMAGED: usize = 8;
/// Small segments, so that the journal spans several of them.
const SEGMENT_BYTES: u64 = 4096;

fn dkey(i: usize) -> Key {
    Key::new(NS, format!("k{i:02}")).expect("valid key")
}

fn body(i: usize) -> Vec<u8> {
    format!("r{i}").into_bytes()
}

/// Writes a varied journal: per key, by `i % 4`: claim, fail retryably,
/// claim, complete; claim, complete; claim, fail terminally; claim,
/// complete, remove. Acks each transition, then READY, then parks.
fn damage_child() {
    let Some(dir) = std::env::var_os(common::CHILD_DIR_ENV) else { return };
    let run = || -> TestResult {
        let store = child_config().segment_bytes(SEGMENT_BYTES).open(&dir)?;
        let done = |what: &str| emit(Ack::Result(what.to_string()));
        for i in 0..KEYS {
            let k = dkey(i);
            let lease = acquire(&store, &k, None)?;
            done("claim");
            match i % 4 {
                0 => {
                    store.fail(&lease, Failure::Retryable)?;
                    done("fail_retryable");
                    let lease = acquire(&store, &k, None)?;
                    done("claim");
                    store.complete(&lease, &body(i))?;
                    done("complete");
                }
                1 => {
                    store.complete(&lease, &body(i))?;
                    done("complete");
                }
                2 => {
                    store.fail(&lease, Failure::Terminal(&body(i)))?;
                    done("fail_terminal");
                }
                _ => {
                    store.complete(&lease, &body(i))?;
                    done("complete");
                    assert!(store.remove(&k)?);
                    done("remove");
                }
            }
        }
        emit(Ack::Ready);
        std::mem::forget(store); // keep the lock until the kill
        Ok(())
    };
    if let Err(e) = run() {
        emit(Ack::Result(format!("ERROR {e}")));
        std::process::exit(2);
    }
    common::park_child();
}

/// The state a prefix of the journal gives a key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Model {
    Absent,
    InProgress(u64),
    Idle,
    Completed(u64, Vec<u8>),
    Failed(u64, Vec<u8>),
}

fn frame_state(f: &FrameInfo) -> Model {
    let Some(r) = &f.record else { return Model::Absent };
    let token = u64::from_le_bytes(r[36..44].try_into().unwrap());
    let body_len = u32::from_le_bytes(r[84..88].try_into().unwrap()) as usize;
    let body = r[88..88 + body_len].to_vec();
    match r[3] {
        1 => Model::InProgress(token),
        2 => Model::Completed(token, body),
        3 => Model::Failed(token, body),
        4 => Model::Idle,
        tag => panic!("unknown state tag {tag}"),
    }
}

fn observed(store: &Store, k: &Key) -> TestResult<Model> {
    Ok(match store.get(k)?.map(|e| e.state) {
        None => Model::Absent,
        Some(EntryState::InProgress { token, orphaned, .. }) => {
            assert!(orphaned, "{k}: a claim of the dead child must be orphaned");
            Model::InProgress(token)
        }
        Some(EntryState::Finished(r)) if r.is_completed() => {
            Model::Completed(r.token(), r.response().to_vec())
        }
        Some(EntryState::Finished(r)) => Model::Failed(r.token(), r.response().to_vec()),
        Some(EntryState::Claimable { .. }) => Model::Idle,
        Some(other) => panic!("{k}: unknown state {other:?}"),
    })
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// The last segment cut to this length.
    Truncate(usize),
    /// This bit (byte offset * 8 + bit) of the last segment flipped.
    Flip(usize),
}

/// The journal the child left.
struct Journal {
    meta: Vec<u8>,
    /// `(file name, bytes)` of each segment, in order.
    segs: Vec<(PathBuf, Vec<u8>)>,
    /// Every frame of every segment, in sequence order.
    all: Vec<FrameInfo>,
    /// Index in `all` of the last segment's first frame.
    last_first: usize,
}

struct Expect {
    /// Entries kept (a prefix of `all`).
    keep: usize,
    bytes_dropped: u64,
    /// Where recovery must report the damage, if anywhere.
    damage_at: Option<usize>,
}

impl Journal {
    fn last(&self) -> &[u8] {
        &self.segs.last().unwrap().1
    }

    fn expect(&self, d: Damage) -> Expect {
        let frames = &self.all[self.last_first..];
        let len = self.last().len();
        let at = match d {
            Damage::Truncate(x) => x,
            Damage::Flip(bit) => bit / 8,
        };
        let i = frames.iter().position(|f| f.start <= at && at < f.end).expect("inside a frame");
        let f = &frames[i];
        let keep = self.last_first + i;
        match d {
            Damage::Truncate(x) if x == f.start => {
                Expect { keep, bytes_dropped: 0, damage_at: None }
            }
            Damage::Truncate(x) => {
                Expect { keep, bytes_dropped: (x - f.start) as u64, damage_at: Some(f.start) }
            }
            Damage::Flip(_) => {
                Expect { keep, bytes_dropped: (len - f.start) as u64, damage_at: Some(f.start) }
            }
        }
    }

    /// Writes META and the journal, the last segment damaged, into `dir`.
    fn materialize(&self, dir: &Path, d: Damage) -> std::io::Result<()> {
        let jdir = dir.join("journal");
        std::fs::create_dir_all(&jdir)?;
        std::fs::write(dir.join("META"), &self.meta)?;
        let (last, earlier) = self.segs.split_last().unwrap();
        for (name, bytes) in earlier {
            std::fs::write(jdir.join(name), bytes)?;
        }
        let mut b = last.1.clone();
        match d {
            Damage::Truncate(x) => b.truncate(x),
            Damage::Flip(bit) => b[bit / 8] ^= 1 << (bit % 8),
        }
        std::fs::write(jdir.join(&last.0), b)
    }

    /// The state of every key after the first `keep` entries.
    fn model(&self, keep: usize) -> BTreeMap<usize, Model> {
        let mut m: BTreeMap<usize, Model> = (0..KEYS).map(|i| (i, Model::Absent)).collect();
        for f in &self.all[..keep] {
            let id = std::str::from_utf8(f.id()).unwrap();
            m.insert(id[1..].parse().unwrap(), frame_state(f));
        }
        m
    }
}

/// The config of the cases: the child's, with small caches (allocating the
/// default 64 MiB ones costs most of an open in a debug build).
fn case_config() -> Config {
    child_config().cache_bytes(1 << 20).sled_cache_bytes(1 << 20)
}

fn run_case(j: &Journal, dir: &Path, d: Damage, reopen: bool) -> TestResult {
    let want = j.expect(d);
    j.materialize(dir, d)?;
    let store = case_config().open(dir).map_err(|e| format!("open failed: {e}"))?;
    let report = store.recovery_report().clone();
    assert_eq!(report.entries_replayed, want.keep as u64, "entries kept: {report:?}");
    assert_eq!(report.last_seq, want.keep as u64, "{report:?}");
    assert_eq!(report.bytes_dropped, want.bytes_dropped, "bytes dropped: {report:?}");
    assert_eq!(report.segments, j.segs.len(), "{report:?}");
    match (want.damage_at, &report.damage) {
        (None, None) => {}
        (Some(at), Some(what)) => {
            let name = j.segs.last().unwrap().0.display().to_string();
            assert!(
                what.ends_with(&format!("at byte {at}")) && what.contains(&name),
                "damage reported at the wrong place: {what:?}, expected {name} at byte {at}"
            );
        }
        (want, got) => panic!("damage {got:?}, expected at {want:?}"),
    }
    let model = j.model(want.keep);
    for (i, m) in &model {
        assert_eq!(&observed(&store, &dkey(*i))?, m, "key {i} after {} entries", want.keep);
    }
    store.close()?;
    if reopen {
        // The repair is durable: the next open finds a clean journal.
        let store = case_config().open(dir)?;
        let report = store.recovery_report();
        assert_eq!((report.damage.as_ref(), report.bytes_dropped), (None, 0), "{report:?}");
        for (i, m) in &model {
            assert_eq!(&observed(&store, &dkey(*i))?, m, "key {i} after a second open");
        }
        store.close()?;
    }
    Ok(())
}

/// Kills a child that wrote the journal and reads it back.
fn child_journal(root: &Path) -> TestResult<Journal> {
    let orig = root.join("orig");
    let mut child = ChildProc::spawn(&orig, MODE, &[])?;
    let acks = child.acks_until_ready()?;
    child.kill()?;
    let mut segs = Vec::new();
    let mut all = Vec::new();
    let mut last_first = 0;
    for path in common::segments(&orig)? {
        let bytes = std::fs::read(&path)?;
        last_first = all.len();
        all.extend(common::parse_segment(&bytes));
        segs.push((path.file_name().unwrap().into(), bytes));
    }
    assert_eq!(all.len(), acks.len(), "one journal entry per acknowledged transition");
    for (i, f) in all.iter().enumerate() {
        assert_eq!(f.seq, i as u64 + 1, "sequence numbers are dense from 1");
    }
    assert!(segs.len() >= 2, "the journal spans several segments");
    assert!(all.len() - last_first >= DAMAGED, "the last segment holds {DAMAGED} entries");
    let meta = std::fs::read(orig.join("META"))?;
    Ok(Journal { meta, segs, all, last_first })
}

#[test]
fn every_cut_and_bit_flip_in_the_last_entries_keeps_exactly_the_prefix() -> TestResult {
    let _serial = common::serial();
    let root = common::fast_tempdir()?;
    let j = child_journal(root.path())?;
    let frames = &j.all[j.all.len() - DAMAGED..];
    let mut cases = Vec::new();
    for f in frames {
        cases.extend((f.start..f.end).map(Damage::Truncate));
        cases.extend((f.start * 8..f.end * 8).map(Damage::Flip));
    }
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let (truncations, flips) = (AtomicU64::new(0), AtomicU64::new(0));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut failed = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&d) = cases.get(n) else { return failed };
                        let dir = root.path().join(format!("case{n}"));
                        let res = std::panic::catch_unwind(|| {
                            run_case(&j, &dir, d, n.is_multiple_of(64))
                        });
                        let _ = std::fs::remove_dir_all(&dir);
                        match res {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => failed.push(format!("{d:?}: {e}")),
                            Err(p) => failed.push(format!("{d:?}: panicked: {p:?}")),
                        }
                        match d {
                            Damage::Truncate(_) => truncations.fetch_add(1, Ordering::Relaxed),
                            Damage::Flip(_) => flips.fetch_add(1, Ordering::Relaxed),
                        };
                        if failed.len() >= 5 {
                            return failed;
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    println!(
        "journal_damage: {} cases on the last {DAMAGED} of {} entries ({} bytes): {} cuts, {} bit \
         flips, {threads} threads, {:.1} s",
        cases.len(),
        j.all.len(),
        frames.last().unwrap().end - frames[0].start,
        truncations.load(Ordering::Relaxed),
        flips.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{} failed cases, first: {failures:#?}", failures.len());
    Ok(())
}

#[test]
fn damaged_sled_record_is_corrupt_and_listed_by_verify() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    let store = Store::open(dir.path())?;
    let (good, bad) = (dkey(1), dkey(2));
    for k in [&good, &bad] {
        let lease = acquire(&store, k, None)?;
        store.complete(&lease, k.id())?;
    }
    // A plausible record with one flipped bit: magic and length are right.
    let mut bytes = b"IK\x01\x02".to_vec();
    bytes.resize(96, 0);
    bytes[84] = 4;
    store.__corrupt_record(&bad, &bytes)?;
    for res in [store.claim(&bad, None).map(drop), store.get(&bad).map(drop)] {
        match res {
            Err(e @ Error::Corrupt { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("d:k02") && msg.contains("checksum"), "{msg}");
            }
            other => panic!("expected Error::Corrupt, got {other:?}"),
        }
    }
    let report = store.verify()?;
    assert_eq!(report.records, 2);
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert_eq!(report.corrupt[0].0, bad.as_raw());
    assert!(report.corrupt[0].1.contains("checksum"), "{report:?}");
    assert!(matches!(store.claim(&good, None)?, Claim::Replay(r) if r.response() == good.id()));
    Ok(())
}
