//! The parent's checks after a kill: reopen the store, check every key
//! against the model, settle what the kill left uncertain.

use std::path::Path;

use idemkv::{Claim, EntryState, Fingerprint, Lease, Outcome, Store};

use crate::common::Rng;
use crate::model::{Check, Intent, Model, St, ensure};
use crate::{KEYS_PER_GEN, body, hkey, key_id};

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
    let acquired = |c: Claim, attempts: &[u32], recovered: &[bool]| -> Result<Lease, String> {
        match c {
            Claim::Acquired(l)
                if attempts.contains(&l.attempt()) && recovered.contains(&l.recovered()) =>
            {
                ensure(l.token() > max_before, || {
                    format!("{id}: new token {} not above {max_before} seen before", l.token())
                })?;
                Ok(l.into_lease())
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
                // An abandon lands or not: the claim is an orphan either way.
                None | Some(Intent::Ext(_) | Intent::Abandon(_)) => {
                    Some(acquired(c, &[a], &[true])?)
                }
                Some(Intent::Claim) if held_here => Some(acquired(c, &[a], &[true])?),
                // An earlier epoch's claim, then an unacknowledged claim of
                // the child: it took the orphan over (attempt + 2) or not.
                Some(Intent::Claim) => {
                    let l = acquired(c, &[a, a + 1], &[true])?;
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
                        Some(acquired(c, &[a], &[true])?)
                    }
                }
                Some(Intent::FailR(_) | Intent::Rel(_)) => {
                    let l = acquired(c, &[a], &[true, false])?;
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
            let was_recovered = matches!(&c, Claim::Acquired(l) if l.recovered());
            let l = if was_recovered {
                acquired(c, &[a + 1], &[true])?
            } else {
                acquired(c, &[a], &[false])?
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

pub(crate) fn check_store(dir: &Path, m: &mut Model, round: u64, rng: &mut Rng) -> Check {
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
pub(crate) const KNOWN_SLED_BUG: &str = "KNOWN BUG (sled snapshot cut by the kill): ";

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
