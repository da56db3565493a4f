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

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Ack, ChildProc, Rng, TestResult, crc32, emit, from_hex, to_hex};
use idemkv::{Claim, Config, EntryState, Fingerprint, Key, Lease, Outcome, Store};

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

// ---------------------------------------------------------------------------
// The child.

fn say(line: String) {
    emit(Ack::Result(line));
}

fn die(what: String) -> ! {
    say(format!("ERROR {what}"));
    std::process::exit(2);
}

fn harness_child() {
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
                    held.push((idx, lease));
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
            // Abandon the lease: the claim stays in flight until the kill.
            _ => continue,
        };
        match res {
            Ok(line) => say(line),
            Err(e) => die(format!("transition on {id} (token {t}): {e}")),
        }
    }
}

// ---------------------------------------------------------------------------
// The parent's model.

#[derive(Debug, Clone, PartialEq, Eq)]
enum St {
    Absent,
    /// Claimable again (released or failed retryably) after `attempts`.
    Idle {
        attempts: u32,
    },
    /// Held by `token`, claimed by the process or store of `epoch`.
    Held {
        token: u64,
        attempts: u32,
        epoch: u64,
    },
    Finished {
        token: u64,
        outcome: Outcome,
        body: Vec<u8>,
        attempts: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    Claim,
    Done(u64),
    FailT(u64),
    FailR(u64),
    Rel(u64),
    Ext(u64),
}

#[derive(Debug, Clone)]
struct KeyModel {
    st: St,
    pending: Option<Intent>,
}

impl Default for KeyModel {
    fn default() -> Self {
        KeyModel { st: St::Absent, pending: None }
    }
}

#[derive(Debug, Default)]
struct Stats {
    kills: u64,
    kills_before_open: u64,
    kills_in_recovery_window: u64,
    acked: BTreeMap<&'static str, u64>,
    checks: u64,
    interrupted_landed: u64,
    interrupted_not_landed: u64,
    torn_tails: u64,
    bytes_dropped: u64,
}

impl Stats {
    fn ack(&mut self, what: &'static str) {
        *self.acked.entry(what).or_default() += 1;
    }

    fn acked_total(&self) -> u64 {
        self.acked.values().sum()
    }
}

struct Model {
    keys: BTreeMap<String, KeyModel>,
    /// Highest token seen anywhere so far.
    max_token: u64,
    /// Epoch of the current child or parent store (one per process/open).
    epoch: u64,
    stats: Stats,
}

type Check = Result<(), String>;

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Check {
    if ok { Ok(()) } else { Err(what()) }
}

impl Model {
    fn key(&mut self, id: &str) -> &mut KeyModel {
        self.keys.entry(id.to_string()).or_default()
    }

    /// Applies one line of the child (epoch `self.epoch`); `max_before` is
    /// the highest token seen before this child started.
    fn child_line(&mut self, line: &str, max_before: u64) -> Check {
        let w: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("malformed line {line:?}");
        let num = |i: usize| -> Result<u64, String> {
            w.get(i).and_then(|s| s.parse().ok()).ok_or_else(bad)
        };
        let id = w.get(1).copied().unwrap_or_default().to_string();
        let epoch = self.epoch;
        match w.first().copied() {
            Some("BOOT" | "OPEN") => return Ok(()),
            Some("C?") => {
                let k = self.key(&id);
                ensure(k.pending.is_none(), || format!("{id}: intent over {:?}", k.pending))?;
                k.pending = Some(Intent::Claim);
            }
            Some("ACQ") => {
                let (token, attempt, recovered) = (num(2)?, num(3)? as u32, num(4)? == 1);
                self.stats.ack("ACQ");
                self.max_token = self.max_token.max(token);
                let k = self.key(&id);
                ensure(k.pending == Some(Intent::Claim), || format!("{id}: ACQ without C?"))?;
                k.pending = None;
                ensure(token > max_before, || {
                    format!("{id}: token {token} not above {max_before}, seen before this boot")
                })?;
                let (want_attempt, want_recovered) = match &k.st {
                    St::Finished { token: t, .. } => {
                        return Err(format!(
                            "{id}: acquired (token {token}) after its acknowledged finish by {t}"
                        ));
                    }
                    St::Held { epoch: e, token: t, .. } if *e == epoch => {
                        return Err(format!("{id}: acquired while live lease {t} is held"));
                    }
                    St::Held { attempts, token: t, .. } => {
                        ensure(token > *t, || format!("{id}: token {token} <= {t}"))?;
                        (attempts + 1, true)
                    }
                    St::Idle { attempts } => (attempts + 1, false),
                    St::Absent => (1, false),
                };
                ensure(attempt == want_attempt && recovered == want_recovered, || {
                    format!(
                        "{id}: ACQ attempt {attempt} recovered {recovered}, expected \
                         {want_attempt} {want_recovered} from {:?}",
                        k.st
                    )
                })?;
                k.st = St::Held { token, attempts: attempt, epoch };
            }
            Some("REPLAY") => {
                let (token, o, crc) = (num(2)?, w.get(3).copied(), w.get(4).copied());
                let k = self.key(&id);
                ensure(k.pending == Some(Intent::Claim), || format!("{id}: REPLAY without C?"))?;
                k.pending = None;
                let St::Finished { token: t, outcome, body, .. } = &k.st else {
                    return Err(format!(
                        "{id}: replayed token {token} but the model is {:?}",
                        k.st
                    ));
                };
                let want_o = if *outcome == Outcome::Completed { "D" } else { "F" };
                let want_crc = format!("{:08x}", crc32(body));
                ensure(*t == token && o == Some(want_o) && crc == Some(&want_crc[..]), || {
                    format!("{id}: replay {line:?} differs from finish {t} {want_o} {want_crc}")
                })?;
            }
            Some("BUSY") => {
                let k = self.key(&id);
                ensure(k.pending == Some(Intent::Claim), || format!("{id}: BUSY without C?"))?;
                k.pending = None;
                ensure(matches!(k.st, St::Held { epoch: e, .. } if e == epoch), || {
                    format!("{id}: in flight, but the model is {:?} (orphan not taken over?)", k.st)
                })?;
            }
            Some(op @ ("D?" | "FT?" | "FR?" | "R?" | "E?")) => {
                let token = num(2)?;
                let intent = match op {
                    "D?" => Intent::Done(token),
                    "FT?" => Intent::FailT(token),
                    "FR?" => Intent::FailR(token),
                    "R?" => Intent::Rel(token),
                    _ => Intent::Ext(token),
                };
                let k = self.key(&id);
                ensure(k.pending.is_none(), || format!("{id}: intent over {:?}", k.pending))?;
                ensure(
                    matches!(k.st, St::Held { token: t, epoch: e, .. } if t == token && e == epoch),
                    || format!("{id}: {op} {token} but the model is {:?}", k.st),
                )?;
                k.pending = Some(intent);
            }
            Some(op @ ("DONE" | "FAIL_T" | "FAIL_R" | "REL" | "EXT")) => {
                let token = num(2)?;
                let k = self.key(&id);
                let want = match op {
                    "DONE" => Intent::Done(token),
                    "FAIL_T" => Intent::FailT(token),
                    "FAIL_R" => Intent::FailR(token),
                    "REL" => Intent::Rel(token),
                    _ => Intent::Ext(token),
                };
                ensure(k.pending == Some(want), || format!("{id}: {op} after {:?}", k.pending))?;
                k.pending = None;
                let St::Held { attempts, .. } = k.st else { unreachable!("checked at the intent") };
                k.st = match op {
                    "DONE" | "FAIL_T" => {
                        let (kind, outcome) = if op == "DONE" {
                            (b'D', Outcome::Completed)
                        } else {
                            (b'F', Outcome::Failed)
                        };
                        // An empty body prints as nothing after the token.
                        let hex = w.get(3).copied().unwrap_or_default();
                        let got = from_hex(hex).ok_or_else(bad)?;
                        let b = body(&id, token, kind);
                        ensure(got == b, || format!("{id}: {op} printed another body"))?;
                        St::Finished { token, outcome, body: b, attempts }
                    }
                    "FAIL_R" | "REL" => St::Idle { attempts },
                    _ => k.st.clone(),
                };
                self.stats.ack(match op {
                    "DONE" => "DONE",
                    "FAIL_T" => "FAIL_T",
                    "FAIL_R" => "FAIL_R",
                    "REL" => "REL",
                    _ => "EXT",
                });
            }
            _ => return Err(bad()),
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The parent's checks after a kill.

fn claim(store: &Store, id: &str) -> Result<Claim, String> {
    store.claim(&hkey(id), Fingerprint::of(id)).map_err(|e| format!("{id}: claim failed: {e}"))
}

fn check_replay(id: &str, c: &Claim, token: u64, outcome: Outcome, body: &[u8]) -> Check {
    match c {
        Claim::Replay(r) => {
            ensure(r.token() == token && r.outcome() == outcome && r.response() == body, || {
                format!(
                    "{id}: replay differs: token {} {:?} {} bytes, acknowledged token {token} \
                     {outcome:?} {} bytes",
                    r.token(),
                    r.outcome(),
                    r.response().len(),
                    body.len()
                )
            })
        }
        other => Err(format!("{id}: acknowledged {outcome:?} by {token} lost: {other:?}")),
    }
}

/// Checks one key of the reopened store against the model and settles
/// whatever the kill left uncertain. Returns a lease the parent acquired.
fn check_key(
    store: &Store,
    m: &mut Model,
    id: &str,
    max_before: u64,
) -> Result<Option<Lease>, String> {
    let k = m.keys.get(id).cloned().unwrap_or_default();
    m.stats.checks += 1;
    let acquired = |c: &Claim, attempts: &[u32], recovered: &[bool]| -> Result<Lease, String> {
        match c {
            Claim::Acquired(l)
                if attempts.contains(&l.attempt()) && recovered.contains(&l.recovered()) =>
            {
                ensure(l.token() > max_before, || {
                    format!("{id}: new token {} not above {max_before} seen before", l.token())
                })?;
                Ok(l.clone())
            }
            other => Err(format!(
                "{id}: expected Acquired (attempt {attempts:?}, recovered {recovered:?}) from \
                 {k:?}, got {other:?}"
            )),
        }
    };
    let land = |m: &mut Model, landed: bool| {
        if landed {
            m.stats.interrupted_landed += 1;
        } else {
            m.stats.interrupted_not_landed += 1;
        }
    };
    let lease = match (&k.st, k.pending) {
        (St::Finished { token, outcome, body, .. }, _) => {
            check_replay(id, &claim(store, id)?, *token, *outcome, body)?;
            None
        }
        (St::Held { token, attempts, epoch }, pending) => {
            let held_here = pending == Some(Intent::Claim) && *epoch == m.epoch - 1;
            if pending.is_none() || held_here {
                match store.get(&hkey(id)).map_err(|e| format!("{id}: get: {e}"))? {
                    Some(e) => match e.state {
                        EntryState::InProgress { token: t, orphaned: true, .. } if t == *token => {}
                        other => return Err(format!("{id}: held claim {token} is now {other:?}")),
                    },
                    None => return Err(format!("{id}: held claim {token} lost")),
                }
            }
            let c = claim(store, id)?;
            let a = attempts + 1;
            match pending {
                None | Some(Intent::Ext(_)) => Some(acquired(&c, &[a], &[true])?),
                Some(Intent::Claim) if held_here => Some(acquired(&c, &[a], &[true])?),
                // An earlier epoch's claim, then an unacknowledged claim of
                // the child: it took the orphan over (attempt + 2) or not.
                Some(Intent::Claim) => {
                    let l = acquired(&c, &[a, a + 1], &[true])?;
                    land(m, l.attempt() == a + 1);
                    Some(l)
                }
                Some(Intent::Done(t) | Intent::FailT(t)) => {
                    let (kind, outcome) = if matches!(pending, Some(Intent::Done(_))) {
                        (b'D', Outcome::Completed)
                    } else {
                        (b'F', Outcome::Failed)
                    };
                    if let Claim::Replay(_) = c {
                        let b = body(id, t, kind);
                        check_replay(id, &c, t, outcome, &b)?;
                        land(m, true);
                        let st = St::Finished { token: t, outcome, body: b, attempts: *attempts };
                        m.key(id).st = st;
                        None
                    } else {
                        land(m, false);
                        Some(acquired(&c, &[a], &[true])?)
                    }
                }
                Some(Intent::FailR(_) | Intent::Rel(_)) => {
                    let l = acquired(&c, &[a], &[true, false])?;
                    land(m, !l.recovered());
                    Some(l)
                }
            }
        }
        (St::Idle { attempts }, None) => {
            let e = store.get(&hkey(id)).map_err(|e| format!("{id}: get: {e}"))?;
            match e {
                Some(e) if matches!(e.state, EntryState::Claimable { .. }) => {
                    ensure(e.attempts == *attempts, || format!("{id}: attempts {}", e.attempts))?;
                }
                other => return Err(format!("{id}: claimable key is now {other:?}")),
            }
            None
        }
        (St::Absent, None) => {
            let e = store.get(&hkey(id)).map_err(|e| format!("{id}: get: {e}"))?;
            ensure(e.is_none(), || format!("{id}: never acknowledged, yet {e:?}"))?;
            None
        }
        (St::Idle { .. } | St::Absent, Some(Intent::Claim)) => {
            let a = match k.st {
                St::Idle { attempts } => attempts + 1,
                _ => 1,
            };
            let c = claim(store, id)?;
            let l = match &c {
                Claim::Acquired(l) if l.recovered() => acquired(&c, &[a + 1], &[true])?,
                _ => acquired(&c, &[a], &[false])?,
            };
            land(m, l.recovered());
            Some(l)
        }
        (st, p) => return Err(format!("{id}: impossible model {st:?} with intent {p:?}")),
    };
    m.key(id).pending = None;
    if let Some(l) = &lease {
        m.max_token = m.max_token.max(l.token());
        m.key(id).st = St::Held { token: l.token(), attempts: l.attempt(), epoch: m.epoch };
    }
    Ok(lease)
}

/// What the parent does with a lease it acquired while checking: finish it,
/// give it back, or keep it (the next child must see it orphaned).
fn dispose(store: &Store, m: &mut Model, id: &str, lease: Lease, rng: &mut Rng) -> Check {
    let t = lease.token();
    let attempts = lease.attempt();
    let err = |e: idemkv::Error| format!("{id}: parent transition failed: {e}");
    let st = match rng.below(4) {
        0 => {
            let b = body(id, t, b'P');
            store.complete(&lease, &b).map_err(err)?;
            St::Finished { token: t, outcome: Outcome::Completed, body: b, attempts }
        }
        1 => {
            store.release(&lease).map_err(err)?;
            St::Idle { attempts }
        }
        2 => {
            store.fail(&lease, idemkv::Failure::Retryable).map_err(err)?;
            St::Idle { attempts }
        }
        _ => St::Held { token: t, attempts, epoch: m.epoch },
    };
    m.key(id).st = st;
    Ok(())
}

fn check_store(dir: &Path, m: &mut Model, round: u64, rng: &mut Rng) -> Check {
    let max_before = m.max_token;
    m.epoch += 1; // the parent's own store
    let store = Store::open(dir).map_err(|e| {
        let known = matches!(e, idemkv::Error::Storage { .. }) && cut_sled_snapshot(dir);
        format!("{}reopen after the kill failed: {e}", if known { KNOWN_SLED_BUG } else { "" })
    })?;
    let report = store.recovery_report().clone();
    if report.damage.is_some() {
        m.stats.torn_tails += 1;
    }
    m.stats.bytes_dropped += report.bytes_dropped;
    for idx in 0..2 * KEYS_PER_GEN {
        let id = key_id(round, idx);
        if let Some(lease) = check_key(&store, m, &id, max_before)? {
            dispose(&store, m, &id, lease, rng)?;
        }
    }
    // Keys of older generations: nobody touched them, they stay as they were.
    for _ in 0..if round > 1 { 48 } else { 0 } {
        let id = format!("g{}-{}", rng.below(round - 1), rng.below(KEYS_PER_GEN));
        let st = m.keys.get(&id).map_or(St::Absent, |k| k.st.clone());
        m.stats.checks += 1;
        let entry = |id: &str| store.get(&hkey(id)).map_err(|e| format!("{id}: get: {e}"));
        match &st {
            St::Finished { token, outcome, body, .. } => {
                check_replay(&id, &claim(&store, &id)?, *token, *outcome, body)?;
            }
            St::Held { token, .. } => match entry(&id)?.map(|e| e.state) {
                Some(EntryState::InProgress { token: t, orphaned: true, .. }) if t == *token => {}
                other => return Err(format!("{id}: old held claim {token} is now {other:?}")),
            },
            St::Idle { attempts } => match entry(&id)? {
                Some(e) if matches!(e.state, EntryState::Claimable { .. }) => {
                    ensure(e.attempts == *attempts, || format!("{id}: attempts {}", e.attempts))?;
                }
                other => return Err(format!("{id}: old claimable key is now {other:?}")),
            },
            St::Absent => {
                let e = entry(&id)?;
                ensure(e.is_none(), || format!("{id}: never acknowledged, yet {e:?}"))?;
            }
        }
    }
    if round.is_multiple_of(10) {
        let v = store.verify().map_err(|e| format!("verify: {e}"))?;
        ensure(v.corrupt.is_empty(), || format!("verify found corrupt records: {v:?}"))?;
        m.stats.checks += v.records;
    }
    store.close().map_err(|e| format!("close: {e}"))
}

/// Marks the one known engine bug this harness runs into (see
/// `open_survives_a_sled_snapshot_cut_by_a_kill`): a kill while sled writes
/// a snapshot leaves `sled/snap.<lsn>.generating`, and sled then refuses to
/// open.
const KNOWN_SLED_BUG: &str = "KNOWN BUG (sled snapshot cut by the kill): ";

/// True if `dir/sled` holds a snapshot whose writing was cut short.
fn cut_sled_snapshot(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("sled")).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("snap.") && name.ends_with(".generating")
        })
    })
}

// ---------------------------------------------------------------------------
// The harness.

/// How a round picks its moment to kill.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// This long after the spawn, whatever the child is doing (often still
    /// starting up, opening or replaying).
    Blind(Duration),
    /// This long after the child announced it is about to open the store:
    /// inside recovery (replay, checkpoint, META, new segment).
    InOpen(Duration),
    /// This long after the store opened: mid-traffic.
    InTraffic(Duration),
}

fn run_round(dir: &Path, m: &mut Model, round: u64, seed: u64, open_time: &mut Duration) -> Check {
    let mut rng = Rng::new(seed);
    let max_before = m.max_token;
    m.epoch += 1; // the child
    let checkpoint_ms = [0, 0, 15, 60][rng.below(4) as usize];
    let segment_bytes = [4096, 16 << 10, 64 << 20][rng.below(3) as usize];
    let env = [
        (ROUND_ENV, round.to_string()),
        (SEED_ENV, seed.to_string()),
        (CHECKPOINT_ENV, checkpoint_ms.to_string()),
        (SEGMENT_ENV, segment_bytes.to_string()),
    ];
    // IDEMKV_KILL_AT=blind|open|traffic runs only that kind of kill.
    let pick = match std::env::var("IDEMKV_KILL_AT").as_deref() {
        Ok("blind") => rng.below(20),
        Ok("open") => 20 + rng.below(15),
        Ok("traffic") => 35 + rng.below(65),
        _ => rng.below(100),
    };
    let kill_at = match pick {
        0..20 => KillAt::Blind(open_time.mul_f64(rng.below(2000) as f64 / 1000.0)),
        20..35 => KillAt::InOpen(Duration::from_micros(rng.below(4000))),
        p => {
            // Mostly short runs, some long ones.
            let ms = if p < 80 { rng.below(60) } else { rng.below(400) };
            KillAt::InTraffic(Duration::from_millis(ms))
        }
    };
    let started = Instant::now();
    let mut child = ChildProc::spawn(dir, MODE, &env).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    let mut wait_for = |child: &mut ChildProc, word: &str| -> Check {
        loop {
            match child.next_ack(Duration::from_secs(60)).map_err(|e| e.to_string())? {
                Some(Ack::Result(l)) => {
                    let hit = l.split_whitespace().next() == Some(word);
                    lines.push(l);
                    if hit {
                        return Ok(());
                    }
                }
                other => return Err(format!("child said {other:?} before {word}")),
            }
        }
    };
    match kill_at {
        KillAt::Blind(d) => std::thread::sleep(d),
        KillAt::InOpen(d) => {
            wait_for(&mut child, "BOOT")?;
            std::thread::sleep(d);
        }
        KillAt::InTraffic(d) => {
            wait_for(&mut child, "OPEN")?;
            // Learn how long start-up and open take, for the blind kills.
            *open_time = (*open_time * 3 + started.elapsed()) / 4;
            std::thread::sleep(d);
        }
    }
    let rest = child.kill().map_err(|e| format!("{kill_at:?}: {e}"))?;
    for a in rest {
        match a {
            Ack::Result(l) => lines.push(l),
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    m.stats.kills += 1;
    let opened = lines.iter().any(|l| l.starts_with("OPEN"));
    if !opened {
        m.stats.kills_before_open += 1;
        if lines.iter().any(|l| l == "BOOT") {
            m.stats.kills_in_recovery_window += 1;
        }
    }
    for l in &lines {
        m.child_line(l, max_before).map_err(|e| format!("{kill_at:?}: {e}"))?;
    }
    let phase = match (lines.iter().any(|l| l == "BOOT"), opened) {
        (_, true) => "after the child opened the store",
        (true, false) => "while the child was opening the store",
        (false, false) => "before the child started opening",
    };
    check_store(dir, m, round, &mut rng).map_err(|e| {
        format!(
            "{kill_at:?} ({phase}, {} lines), checkpoint {checkpoint_ms} ms, segment \
             {segment_bytes} B: {e}",
            lines.len()
        )
    })
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
