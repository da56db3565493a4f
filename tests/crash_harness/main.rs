//! Guards crash safety under SIGKILL at random moments (also while the child is still opening and replaying): every acknowledged completion or terminal failure replays byte-identically, a finished key is never acquired again, claims held at the kill come back recovered, and tokens keep increasing across kills.
//!
//! A child (this test binary re-executed, see `tests/common`) opens the store
//! in `Durable` mode and runs claim/complete/fail/extend/release traffic from
//! several threads over a bounded key space. Around every call on a key it
//! prints an intent line (`C? key`, `D? key token`, …) and, after the call
//! returned Ok, the acknowledgement (`ACQ key token attempt recovered`,
//! `DONE key token <hex>`, `FAIL_T key token <hex>`, `FAIL_R key token`,
//! `REL key token`, `EXT key token`, or for claims that acquire nothing
//! `REPLAY key token D|F crc` and `BUSY key`), holding a per-key mutex so that
//! one key's lines are in the order of its transitions. The parent keeps an
//! exact model of every key, kills the child at a random moment, reopens the
//! store in-process and checks the model; an intent without its ack (the call
//! the kill interrupted) may or may not have landed, and both outcomes are
//! accepted and resolved by a claim. The next child continues on the same
//! directory, so the state accumulates over the rounds.
//!
//! `IDEMKV_KILLS=1000` runs 1000 kills (default 40, ~7 s in debug); `IDEMKV_SEED=<n>`
//! replays a seed (printed at the start and in every failure);
//! `IDEMKV_KEEP_DIR=1` keeps the store directory of a failed run;
//! `IDEMKV_KILL_AT=blind|open|traffic` uses only that kind of kill moment.

#[path = "../common/mod.rs"]
mod common;

mod checks;
mod child;
mod kill;
mod model;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use checks::KNOWN_SLED_BUG;
use child::harness_child;
use common::{Rng, TestResult};
use idemkv::{Claim, Key, Store};
use kill::run_round;
use model::{Model, Stats};

#[test]
#[ignore = "child process of the crash tests; does nothing when run directly"]
fn child_worker() {
    if std::env::var(common::CHILD_MODE_ENV).as_deref() == Ok(MODE) {
        harness_child();
    } else {
        common::child_main();
    }
}

const MODE: &str = "harness";
const NS: &str = "h";
/// Keys per generation; round `r` works on generations `r - 1` and `r`.
const KEYS_PER_GEN: u64 = 128;
/// Worker threads of the child.
const THREADS: u64 = 4;
/// Leases one worker holds at most at a time.
const MAX_HELD: usize = 3;

const ROUND_ENV: &str = "IDEMKV_HARNESS_ROUND";
const SEED_ENV: &str = "IDEMKV_HARNESS_SEED";
const CHECKPOINT_ENV: &str = "IDEMKV_HARNESS_CHECKPOINT_MS";
const SEGMENT_ENV: &str = "IDEMKV_HARNESS_SEGMENT_BYTES";

/// The id of key `idx` (0 .. 2 * KEYS_PER_GEN) in round `round`.
fn key_id(round: u64, idx: u64) -> String {
    let gen_ = round - 1 + idx / KEYS_PER_GEN;
    format!("g{gen_}-{}", idx % KEYS_PER_GEN)
}

fn hkey(id: &str) -> Key {
    Key::new(NS, id).expect("valid harness key")
}

/// The body stored by the holder of `token` on key `id`; `kind` tells a
/// completion (`D`), a terminal failure (`F`) and the parent's own (`P`)
/// apart. 0 to ~300 bytes, sometimes empty, now and then 4 KiB.
fn body(id: &str, token: u64, kind: u8) -> Vec<u8> {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in id.bytes().chain(token.to_le_bytes()).chain([kind]) {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng = Rng::new(h);
    let len = match rng.below(20) {
        0 => 0,
        1 => 4096,
        _ => rng.below(300) as usize,
    };
    rng.bytes(len)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() -> TestResult {
    // Strict: every reopen must succeed (the sled snapshot bug is fixed).
    harness(true)
}

/// The harness in strict mode: the known sled bug fails the run too. It
/// shows up about once in 1500 kills inside `open` (`IDEMKV_KILL_AT=blind`),
/// so give it many: `IDEMKV_KILLS=5000 IDEMKV_KILL_AT=blind`.
#[test]
#[ignore = "long run: IDEMKV_KILLS=5000 IDEMKV_KILL_AT=blind"]
fn sigkill_at_random_moments_strict() -> TestResult {
    harness(true)
}

/// Regression: a kill during sled's snapshot writing must not make the
/// store unopenable (fixed: `Storage::open` removes `snap.*.generating`).
/// The on-disk state a kill during sled's snapshot writing leaves (seen in
/// this harness: `snap.<lsn>.generating` of 32 KiB next to the previous
/// snapshot), built by hand: sled 0.34.7 refuses to open it (`Corruption {
/// at: None }`, sled issue #1527), so `Store::open` fails with
/// `Error::Storage` until the file is deleted by hand, though everything the
/// store needs is intact (deleting the file makes it open with all data).
#[test]
fn open_survives_a_sled_snapshot_cut_by_a_kill() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    let store = Store::open(dir.path())?;
    let mut leases = Vec::new();
    for i in 0..20 {
        let id = format!("cut-{i}");
        leases.push((id.clone(), common::acquire(&store, &hkey(&id), None)?));
    }
    for (id, lease) in &leases {
        store.complete(lease, id.as_bytes())?;
    }
    store.close()?;
    std::fs::write(dir.path().join("sled/snap.00000000000F0000.generating"), vec![0u8; 32 << 10])?;
    let store = Store::open(dir.path()).map_err(|e| format!("open after a cut snapshot: {e}"))?;
    for (id, _) in &leases {
        match store.claim(&hkey(id), None)? {
            Claim::Replay(r) => assert_eq!(r.response(), id.as_bytes()),
            other => panic!("{id}: {other:?}"),
        }
    }
    Ok(())
}

fn harness(strict: bool) -> TestResult {
    let _serial = common::serial();
    let kills = env_u64("IDEMKV_KILLS").unwrap_or(40).max(1);
    let seed = env_u64("IDEMKV_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64
    });
    println!("crash_harness: {kills} kills, seed {seed} (replay with IDEMKV_SEED={seed})");
    let root = common::fast_tempdir()?;
    let mut dir = root.path().join("store");
    let fresh = |stats| Model { keys: BTreeMap::new(), max_token: 0, epoch: 0, stats };
    let mut m = fresh(Stats::default());
    // Spawn to open, learned from the traffic kills (for the blind ones).
    let mut open_time = Duration::from_millis(60);
    let mut seeds = Rng::new(seed);
    let started = Instant::now();
    let mut known_bug = 0;
    for round in 1..=kills {
        let round_seed = seeds.next_u64();
        if let Err(e) = run_round(&dir, &mut m, round, round_seed, &mut open_time) {
            let msg =
                format!("seed {seed} (IDEMKV_SEED={seed}), round {round} (seed {round_seed}): {e}");
            if !strict && msg.contains(KNOWN_SLED_BUG) {
                // Not this harness's finding to repeat on every CI run: note
                // it and go on with a fresh directory.
                println!("crash_harness: {msg}; continuing in a fresh directory");
                known_bug += 1;
                dir = root.path().join(format!("store-{round}"));
                m = fresh(std::mem::take(&mut m.stats));
                continue;
            }
            if std::env::var_os("IDEMKV_KEEP_DIR").is_some() {
                let kept = root.keep();
                return Err(format!("{msg}; store directories kept in {}", kept.display()).into());
            }
            return Err(msg.into());
        }
    }
    let s = &m.stats;
    println!(
        "crash_harness: {} kills ({} before the store opened, {} of them inside open/recovery), \
         {} acknowledged transitions {:?}, {} key checks, interrupted calls landed {} / not {}, \
         {} torn tails cut ({} bytes), {} sled snapshots cut (known bug), {:.1} s",
        s.kills,
        s.kills_before_open,
        s.kills_in_recovery_window,
        s.acked_total(),
        s.acked,
        s.checks,
        s.interrupted_landed,
        s.interrupted_not_landed,
        s.torn_tails,
        s.bytes_dropped,
        known_bug,
        started.elapsed().as_secs_f64()
    );
    if std::env::var_os("IDEMKV_KILL_AT").is_none() {
        assert!(s.acked.get("DONE").copied().unwrap_or(0) > 0, "no completion was acknowledged");
    }
    Ok(())
}
