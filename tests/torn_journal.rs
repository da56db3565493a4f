//! Guards journal recovery from a torn or corrupt tail: open succeeds, the damage is reported and cut off, and exactly the entries before the damage point survive.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{ChildProc, FrameInfo, Rng, TestResult, child_config, copy_dir, key, response_for};
use idemkv::{EntryState, Store};

#[test]
#[ignore = "child process of the crash tests; does nothing when run directly"]
fn child_worker() {
    common::child_main();
}

const KEYS: usize = 40;

/// The state a prefix of the journal gives a key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Model {
    Absent,
    InProgress(u64),
    Completed(u64),
}

fn frame_state(f: &FrameInfo) -> Model {
    let r = f.record.as_ref().expect("the child only writes records");
    let token = u64::from_le_bytes(r[36..44].try_into().unwrap());
    match f.state_tag() {
        Some(1) => Model::InProgress(token),
        Some(2) => Model::Completed(token),
        other => panic!("unexpected state tag {other:?}"),
    }
}

fn observed(store: &Store, id: &str) -> TestResult<Model> {
    Ok(match store.get(&key(id))?.map(|e| e.state) {
        None => Model::Absent,
        Some(EntryState::InProgress { token, orphaned, .. }) => {
            assert!(orphaned, "{id}: a claim of the dead child must be orphaned");
            Model::InProgress(token)
        }
        Some(EntryState::Finished(r)) => {
            assert_eq!(r.response(), &response_for(id)[..], "{id}: body differs");
            Model::Completed(r.token())
        }
        Some(other) => panic!("{id}: unexpected {other:?}"),
    })
}

enum Damage {
    Truncate(usize),
    Append(Vec<u8>),
    Flip(usize),
}

struct Case {
    name: String,
    /// Index of the damaged segment.
    seg: usize,
    damage: Damage,
}

/// The journal the child left: each segment's file name, bytes and frames.
struct Journal {
    segs: Vec<(PathBuf, Vec<u8>, Vec<FrameInfo>)>,
}

impl Journal {
    /// Frames that survive `case`, in order, and the bytes recovery must drop.
    fn expect(&self, case: &Case) -> (Vec<&FrameInfo>, u64) {
        let mut keep: Vec<&FrameInfo> =
            self.segs[..case.seg].iter().flat_map(|(_, _, f)| f.iter()).collect();
        let (_, bytes, frames) = &self.segs[case.seg];
        let later: u64 = self.segs[case.seg + 1..].iter().map(|(_, b, _)| b.len() as u64).sum();
        let at = match case.damage {
            Damage::Truncate(x) if x < common::SEGMENT_HEADER_LEN => {
                return (keep, x as u64 + later);
            }
            Damage::Truncate(x) => {
                let whole: Vec<_> = frames.iter().filter(|f| f.end <= x).collect();
                let at = whole.last().map_or(common::SEGMENT_HEADER_LEN, |f| f.end);
                keep.extend(whole);
                return (keep, (x - at) as u64 + later);
            }
            Damage::Append(ref g) => {
                keep.extend(frames.iter());
                return (keep, g.len() as u64 + later);
            }
            Damage::Flip(off) => frames.iter().position(|f| f.start <= off && off < f.end).unwrap(),
        };
        keep.extend(&frames[..at]);
        (keep, (bytes.len() - frames[at].start) as u64 + later)
    }
}

fn apply(seg_path: &Path, original: &[u8], damage: &Damage) -> std::io::Result<()> {
    let mut b = original.to_vec();
    match damage {
        Damage::Truncate(x) => b.truncate(*x),
        Damage::Append(g) => b.extend_from_slice(g),
        Damage::Flip(off) => b[*off] ^= 0x5a,
    }
    std::fs::write(seg_path, b)
}

fn cases(j: &Journal) -> Vec<Case> {
    let last = j.segs.len() - 1;
    let f = &j.segs[last].2;
    let n = f.len();
    assert!(n >= 2, "the last segment needs two frames for these cases");
    let (a, b) = (&f[n - 2], &f[n - 1]);
    let mut rng = Rng::new(7);
    let mut out = Vec::new();
    let mut add = |name: &str, seg: usize, damage: Damage| {
        out.push(Case { name: name.to_string(), seg, damage })
    };
    add("cut 1 byte into the last frame", last, Damage::Truncate(b.start + 1));
    add("cut inside the last frame header", last, Damage::Truncate(b.start + 9));
    add("cut right after the last frame header", last, Damage::Truncate(b.start + 16));
    add("cut mid last frame", last, Damage::Truncate((b.start + b.end) / 2));
    add("cut 1 byte short", last, Damage::Truncate(b.end - 1));
    add("cut inside the previous frame", last, Damage::Truncate(a.start + 20));
    add("cut inside the segment header", last, Damage::Truncate(10));
    add("append 1 zero byte", last, Damage::Append(vec![0]));
    add("append 7 random bytes", last, Damage::Append(rng.bytes(7)));
    add("append 100 random bytes", last, Damage::Append(rng.bytes(100)));
    add("append 0xff run", last, Damage::Append(vec![0xff; 40]));
    add("flip the last frame's crc", last, Damage::Flip(b.start + 5));
    add("flip the last frame's seq", last, Damage::Flip(b.start + 9));
    add("flip the last frame's payload", last, Damage::Flip((b.start + b.end) / 2));
    add("flip the last byte", last, Damage::Flip(b.end - 1));
    add("flip the previous frame's length", last, Damage::Flip(a.start));
    if last > 0 {
        let prev = &j.segs[last - 1].2;
        let p = prev.last().unwrap();
        add("flip inside an earlier segment", last - 1, Damage::Flip(p.start + 20));
    }
    out
}

#[test]
fn torn_and_corrupt_tails_keep_exactly_the_prefix() -> TestResult {
    let _serial = common::serial();
    let root = tempfile::tempdir()?;
    let orig = root.path().join("orig");
    let mut child = ChildProc::spawn(
        &orig,
        "claim_complete",
        &[
            (common::CHILD_ARG_ENV, KEYS.to_string()),
            ("IDEMKV_CHILD_SEGMENT_BYTES", "16384".into()),
        ],
    )?;
    let acks = child.acks_until_ready()?;
    child.kill()?;
    let (claimed, completed) = common::summarize(&acks);
    assert_eq!((claimed.len(), completed.len()), (KEYS, KEYS / 2));

    let mut journal = Journal { segs: Vec::new() };
    for path in common::segments(&orig)? {
        let bytes = std::fs::read(&path)?;
        let frames = common::parse_segment(&bytes);
        journal.segs.push((path.file_name().unwrap().into(), bytes, frames));
    }
    let all: Vec<&FrameInfo> = journal.segs.iter().flat_map(|s| s.2.iter()).collect();
    assert_eq!(all.len(), acks.len(), "one journal entry per acknowledged transition");
    assert!(journal.segs.len() >= 2, "expected several segments");
    for (i, f) in all.iter().enumerate() {
        assert_eq!(f.seq, i as u64 + 1, "sequence numbers are dense from 1");
    }

    for (n, case) in cases(&journal).iter().enumerate() {
        for reset_sled in [true, false] {
            let copy = root.path().join(format!("case{n}-{reset_sled}"));
            copy_dir(&orig, &copy)?;
            if reset_sled {
                // Back to sled as of the (empty) checkpoint: the journal alone
                // must rebuild the state, so the result is exactly the prefix.
                std::fs::remove_dir_all(copy.join("sled"))?;
            }
            let (name, bytes, _) = &journal.segs[case.seg];
            apply(&copy.join("journal").join(name), bytes, &case.damage)?;
            check_case(&journal, case, &copy, reset_sled, &all)
                .map_err(|e| format!("case {:?} (sled reset: {reset_sled}): {e}", case.name))?;
        }
    }
    Ok(())
}

fn check_case(
    journal: &Journal,
    case: &Case,
    dir: &Path,
    reset_sled: bool,
    all: &[&FrameInfo],
) -> TestResult {
    let (keep, dropped) = journal.expect(case);
    let mut model: BTreeMap<String, Model> =
        (0..KEYS).map(|i| (format!("c{i}"), Model::Absent)).collect();
    for f in &keep {
        model.insert(String::from_utf8(f.id().to_vec())?, frame_state(f));
    }
    // Later states a key may show when sled kept entries the journal lost.
    let mut later: BTreeMap<String, Vec<Model>> = BTreeMap::new();
    for f in &all[keep.len()..] {
        later.entry(String::from_utf8(f.id().to_vec())?).or_default().push(frame_state(f));
    }

    let store = child_config().open(dir)?;
    let report = store.recovery_report().clone();
    assert!(report.damage.is_some(), "damage must be reported: {report:?}");
    assert_eq!(report.bytes_dropped, dropped, "{report:?}");
    assert_eq!(report.entries_replayed, keep.len() as u64, "{report:?}");
    assert_eq!(report.last_seq, keep.len() as u64, "{report:?}");
    for (id, want) in &model {
        let got = observed(&store, id)?;
        let cut = later.get(id);
        if reset_sled || cut.is_none() {
            assert_eq!(&got, want, "{id}: entries before the damage must be intact");
        } else {
            let ok = &got == want || cut.is_some_and(|l| l.contains(&got));
            assert!(ok, "{id}: {got:?} is neither {want:?} nor a later state {cut:?}");
        }
    }
    store.close()?;

    // Recovery repaired the journal: the next open finds no damage and the
    // same state.
    let store = child_config().open(dir)?;
    let report = store.recovery_report();
    assert_eq!(report.damage, None, "{report:?}");
    assert_eq!(report.bytes_dropped, 0);
    if reset_sled {
        for (id, want) in &model {
            assert_eq!(&observed(&store, id)?, want, "{id} after a second open");
        }
    }
    store.close()?;
    Ok(())
}

#[test]
fn undamaged_journal_replays_everything() -> TestResult {
    let _serial = common::serial();
    let root = tempfile::tempdir()?;
    let dir = root.path().join("store");
    let mut child =
        ChildProc::spawn(&dir, "claim_complete", &[(common::CHILD_ARG_ENV, "10".into())])?;
    let acks = child.acks_until_ready()?;
    child.kill()?;
    std::fs::remove_dir_all(dir.join("sled"))?;
    let store = child_config().open(&dir)?;
    let report = store.recovery_report();
    assert_eq!(report.damage, None, "{report:?}");
    assert_eq!(report.bytes_dropped, 0);
    assert_eq!(report.entries_replayed, acks.len() as u64);
    for i in 0..10 {
        let want = if i % 2 == 0 { "Completed" } else { "InProgress" };
        let got = observed(&store, &format!("c{i}"))?;
        assert!(format!("{got:?}").starts_with(want), "c{i}: {got:?}");
    }
    Ok(())
}
