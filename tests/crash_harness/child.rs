//! The child: opens the store and runs traffic from several threads,
//! printing an intent line before each call and an ack after it, until it is
//! killed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use idemkv::{Claim, Config, Fingerprint, Lease, Store};

use crate::common::{self, Ack, Rng, crc32, emit, to_hex};
use crate::{CHECKPOINT_ENV, KEYS_PER_GEN, MAX_HELD, ROUND_ENV, SEED_ENV, SEGMENT_ENV, THREADS};
use crate::{body, env_u64, hkey, key_id};

fn say(line: String) {
    emit(Ack::Result(line));
}

fn die(what: String) -> ! {
    say(format!("ERROR {what}"));
    std::process::exit(2);
}

pub(crate) fn harness_child() {
    let Some(dir) = std::env::var_os(common::CHILD_DIR_ENV) else { return };
    let round = env_u64(ROUND_ENV).expect("round");
    let seed = env_u64(SEED_ENV).expect("seed");
    let mut config = Config::new(); // Durable, lease 30 s, retention 72 h
    config = match env_u64(CHECKPOINT_ENV) {
        Some(0) | None => config.checkpoint_interval(None),
        Some(ms) => config.checkpoint_interval(Some(Duration::from_millis(ms))),
    };
    if let Some(bytes) = env_u64(SEGMENT_ENV) {
        config = config.segment_bytes(bytes);
    }
    say("BOOT".into());
    let store = config.open(&dir).unwrap_or_else(|e| die(format!("open: {e}")));
    let r = store.recovery_report();
    say(format!("OPEN {} {}", r.entries_replayed, r.bytes_dropped));
    let locks: Arc<Vec<Mutex<()>>> =
        Arc::new((0..2 * KEYS_PER_GEN).map(|_| Mutex::new(())).collect());
    for t in 0..THREADS {
        let (store, locks) = (store.clone(), locks.clone());
        let rng = Rng::new(seed ^ (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        std::thread::spawn(move || worker(&store, &locks, round, rng));
    }
    common::park_child();
}

fn worker(store: &Store, locks: &[Mutex<()>], round: u64, mut rng: Rng) {
    let mut held: Vec<(u64, Lease)> = Vec::new();
    loop {
        let claim_next = held.is_empty() || (held.len() < MAX_HELD && rng.below(2) == 0);
        if claim_next {
            let idx = rng.below(2 * KEYS_PER_GEN);
            let id = key_id(round, idx);
            let fp = (rng.below(4) != 0).then(|| Fingerprint::of(&id));
            let _g = locks[idx as usize].lock().unwrap();
            say(format!("C? {id}"));
            match store.claim(&hkey(&id), fp) {
                Ok(Claim::Acquired(lease)) => {
                    let (t, a, r) = (lease.token(), lease.attempt(), lease.recovered() as u8);
                    say(format!("ACQ {id} {t} {a} {r}"));
                    held.push((idx, lease.into_lease()));
                }
                Ok(Claim::Replay(r)) => {
                    let o = if r.is_completed() { 'D' } else { 'F' };
                    say(format!("REPLAY {id} {} {o} {:08x}", r.token(), crc32(r.response())));
                }
                Ok(Claim::InFlight { .. }) => say(format!("BUSY {id}")),
                other => die(format!("claim {id}: {other:?}")),
            }
            continue;
        }
        let (idx, mut lease) = held.swap_remove(rng.below(held.len() as u64) as usize);
        let id = key_id(round, idx);
        let t = lease.token();
        let _g = locks[idx as usize].lock().unwrap();
        let res = match rng.below(100) {
            0..40 => {
                let b = body(&id, t, b'D');
                say(format!("D? {id} {t}"));
                store.complete(&lease, &b).map(|()| format!("DONE {id} {t} {}", to_hex(&b)))
            }
            40..50 => {
                let b = body(&id, t, b'F');
                say(format!("FT? {id} {t}"));
                store
                    .fail(&lease, idemkv::Failure::Terminal(&b))
                    .map(|()| format!("FAIL_T {id} {t} {}", to_hex(&b)))
            }
            50..65 => {
                say(format!("FR? {id} {t}"));
                store.fail(&lease, idemkv::Failure::Retryable).map(|()| format!("FAIL_R {id} {t}"))
            }
            65..75 => {
                say(format!("R? {id} {t}"));
                store.release(&lease).map(|()| format!("REL {id} {t}"))
            }
            75..92 => {
                say(format!("E? {id} {t}"));
                let by = Duration::from_secs(60 + rng.below(3600));
                let res = store.extend(&mut lease, by).map(|()| format!("EXT {id} {t}"));
                held.push((idx, lease));
                res
            }
            // Abandon the claim, as a dropped guard does (half through a
            // guard): the next claim takes it over at once, recovered.
            92..96 => {
                say(format!("A? {id} {t}"));
                if rng.below(2) == 0 {
                    store.abandon(&lease);
                } else {
                    drop(store.adopt(lease).unwrap_or_else(|e| die(format!("adopt {id}: {e}"))));
                }
                Ok(format!("ABANDON {id} {t}"))
            }
            // Forget the (detached) lease: the claim stays in flight until
            // the kill.
            _ => continue,
        };
        match res {
            Ok(line) => say(line),
            Err(e) => die(format!("transition on {id} (token {t}): {e}")),
        }
    }
}
