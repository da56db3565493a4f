//! The driver of the real store: runs each operation on a [`Store`] and
//! answers in the model's terms.
//!
//! Every other claim keeps its own [`Guard`] until an op finishes it through
//! the guard (or drops it); the others are detached at once and finished
//! through `Store::complete` & co., or through a guard re-attached with
//! `Store::adopt` (see [`keeps_guard`]).
//!
//! The typed (JSON) completions need the `serde` feature of idemkv, which
//! the fuzz crate (sharing this module) does not enable: without it the
//! driver answers `Unexpected` to those ops, which the fuzz target never
//! generates.
#![allow(unexpected_cfgs)]

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use idemkv::{
    BodyFormat, Claim, ClaimOptions, Config, Durability, Entry, EntryState, Error, Failure,
    Fingerprint, Guard, Lease, MockClock, Outcome as ReplayOutcome, Policy, Replay, StaleReason,
    Store,
};

use super::{EntryView, Fp, LEASE_MS, LeaseId, Ms, Op, Outcome, RETENTION_MS, ReplayView, T0};
use super::{Stale, StateView, body, fingerprint, keeps_guard, key, pick};

/// A JSON value of the typed completions, as `serde` sees it.
#[cfg(feature = "serde")]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum JsonVal {
    Num(u32),
    Text(String),
}

#[cfg(feature = "serde")]
fn json_val(n: u8) -> JsonVal {
    use super::{JsonLit, json_value};
    match json_value(n) {
        JsonLit::Num(v) => JsonVal::Num(v),
        JsonLit::Text(t) => JsonVal::Text(t.to_owned()),
    }
}

/// Completes with JSON value number `n` through `guard`.
#[cfg(feature = "serde")]
fn complete_json(guard: Guard, n: u8) -> idemkv::Result<()> {
    guard.complete(idemkv::Json(&json_val(n)))
}

#[cfg(not(feature = "serde"))]
fn complete_json(_: Guard, _: u8) -> idemkv::Result<()> {
    Err(Error::Codec { reason: "idemkv built without the serde feature".into() })
}

/// `complete_batch` of `items` with JSON value number `n` each.
#[cfg(feature = "serde")]
fn complete_batch_json(
    store: &Store,
    items: Vec<(Guard, u8)>,
) -> idemkv::Result<Vec<idemkv::Result<()>>> {
    store.complete_batch(items.into_iter().map(|(g, n)| (g, idemkv::Json(json_val(n)))))
}

#[cfg(not(feature = "serde"))]
fn complete_batch_json(_: &Store, _: Vec<(Guard, u8)>) -> idemkv::Result<Vec<idemkv::Result<()>>> {
    Err(Error::Codec { reason: "idemkv built without the serde feature".into() })
}

/// A JSON replay must decode (`Replay::json`) to a value that encodes to
/// the stored bytes again.
#[cfg(feature = "serde")]
fn check_json(r: &Replay) -> Result<(), String> {
    let v: JsonVal = r.json().map_err(|e| format!("a JSON replay does not decode: {e}"))?;
    let again = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
    if again != r.response() {
        return Err(format!(
            "JSON replay {:?} decodes to {v:?}",
            String::from_utf8_lossy(r.response())
        ));
    }
    Ok(())
}

#[cfg(not(feature = "serde"))]
fn check_json(_: &Replay) -> Result<(), String> {
    Ok(())
}

/// Milliseconds since the epoch of a `SystemTime`.
pub fn ms_of(t: SystemTime) -> Ms {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as Ms).unwrap_or(0)
}

/// The configuration the model describes: mock clock, lease 10 s, retention
/// 100 s, no background sweeper or checkpointer (`sweep()` is an op), two
/// shards so that keys share a stripe.
pub fn model_config(clock: &MockClock, durability: Durability) -> Config {
    Config::new()
        .clock(clock.clone())
        .durability(durability)
        .shards(2)
        .sweep_interval(None)
        .checkpoint_interval(None)
        .default_policy(
            Policy::default()
                .lease(Duration::from_millis(LEASE_MS))
                .retention(Duration::from_millis(RETENTION_MS)),
        )
}

/// The system under test: a real store on a directory, driven by a mock
/// clock, answering in the model's terms.
pub struct Sut {
    dir: PathBuf,
    clock: MockClock,
    durability: Durability,
    store: Option<Store>,
    /// Every lease acquired, by lease id (for a kept guard, a copy).
    leases: Vec<Lease>,
    /// The guards kept (see [`keeps_guard`]) and not yet finished or
    /// dropped, by lease id.
    guards: Vec<Option<Guard>>,
    /// Fencing token → lease id (acquisition order).
    ids: HashMap<u64, LeaseId>,
    last_token: u64,
    fps: HashMap<Fingerprint, Fp>,
}

impl fmt::Debug for Sut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sut").field("dir", &self.dir).field("leases", &self.leases.len()).finish()
    }
}

impl Sut {
    /// Opens a store in `dir` (which should be empty) with [`model_config`].
    pub fn open(dir: &Path, durability: Durability) -> idemkv::Result<Sut> {
        let clock = MockClock::new(T0);
        let store = model_config(&clock, durability).open(dir)?;
        let fps = (0..=255u8).map(|n| (fingerprint(n), n)).collect();
        Ok(Sut {
            dir: dir.to_path_buf(),
            clock,
            durability,
            store: Some(store),
            leases: Vec::new(),
            guards: Vec::new(),
            ids: HashMap::new(),
            last_token: 0,
            fps,
        })
    }

    /// The open store.
    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("open")
    }

    /// Closes the store (for tests that want to see `close` succeed).
    pub fn close(mut self) -> idemkv::Result<()> {
        self.store.take().map_or(Ok(()), Store::close)
    }

    /// Runs `op` on the store.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        match self.run(op) {
            Ok(out) => out,
            Err(e) => self.error(e),
        }
    }

    /// An error in the model's terms.
    fn error(&self, e: Error) -> Outcome {
        match e {
            Error::StaleLease { reason, .. } => match reason {
                StaleReason::Superseded { current } => match self.ids.get(&current) {
                    Some(&id) => Outcome::Stale(Stale::Superseded { current: id }),
                    None => Outcome::Unexpected(format!("superseded by unknown token {current}")),
                },
                StaleReason::Finished => Outcome::Stale(Stale::Finished),
                StaleReason::Missing => Outcome::Stale(Stale::Missing),
                StaleReason::OtherStore => Outcome::Stale(Stale::OtherStore),
                other => Outcome::Unexpected(format!("stale reason {other:?}")),
            },
            Error::InvalidConfig { .. } => Outcome::InvalidConfig,
            e => Outcome::Unexpected(e.to_string()),
        }
    }

    /// The index of the lease `sel` addresses.
    fn index(&self, sel: usize) -> Option<usize> {
        pick(sel, self.leases.len())
    }

    /// A guard for lease `i`: its kept guard (taken), else one adopted.
    fn guard(&mut self, i: usize) -> idemkv::Result<Guard> {
        match self.guards[i].take() {
            Some(g) => Ok(g),
            None => self.store().adopt(self.leases[i].clone()),
        }
    }

    fn run(&mut self, op: &Op) -> idemkv::Result<Outcome> {
        Ok(match op {
            Op::Claim { key: k, fp, lease_ms, retention_ms } => {
                let fp = fp.map(fingerprint);
                let claim = if lease_ms.is_none() && retention_ms.is_none() {
                    self.store().claim(&key(*k), fp)?
                } else {
                    let mut o = ClaimOptions::new();
                    if let Some(l) = lease_ms {
                        o = o.lease(Duration::from_millis(*l));
                    }
                    if let Some(r) = retention_ms {
                        o = o.retention(Duration::from_millis(*r));
                    }
                    self.store().claim_with(&key(*k), fp, &o)?
                };
                self.claimed(claim)
            }
            Op::Wait { key: k, fp, timeout_ms } => {
                let timeout = Duration::from_millis(*timeout_ms);
                let claim = self.store().wait(&key(*k), fp.map(fingerprint), timeout)?;
                self.claimed(claim)
            }
            Op::Complete { lease, body: b } => {
                let Some(i) = self.index(*lease) else { return Ok(Outcome::NoLease) };
                match self.guards[i].take() {
                    Some(g) => g.complete(body(*b))?,
                    None => self.store().complete(&self.leases[i], &body(*b))?,
                }
                Outcome::Done
            }
            Op::CompleteJson { lease, value } => {
                let Some(i) = self.index(*lease) else { return Ok(Outcome::NoLease) };
                complete_json(self.guard(i)?, *value)?;
                Outcome::Done
            }
            Op::FailRetryable { lease } => {
                let Some(i) = self.index(*lease) else { return Ok(Outcome::NoLease) };
                match self.guards[i].take() {
                    Some(g) => g.fail(Failure::Retryable)?,
                    None => self.store().fail(&self.leases[i], Failure::Retryable)?,
                }
                Outcome::Done
            }
            Op::FailTerminal { lease, body: b } => {
                let Some(i) = self.index(*lease) else { return Ok(Outcome::NoLease) };
                match self.guards[i].take() {
                    Some(g) => g.fail_terminal(body(*b))?,
                    None => self.store().fail(&self.leases[i], Failure::Terminal(&body(*b)))?,
                }
                Outcome::Done
            }
            Op::Release { lease } => {
                let Some(i) = self.index(*lease) else { return Ok(Outcome::NoLease) };
                match self.guards[i].take() {
                    Some(g) => g.release()?,
                    None => self.store().release(&self.leases[i])?,
                }
                Outcome::Done
            }
            Op::Extend { lease, by_ms } => {
                let Some(i) = self.index(*lease) else { return Ok(Outcome::NoLease) };
                let by = Duration::from_millis(*by_ms);
                if let Some(g) = self.guards[i].as_mut() {
                    g.extend(by)?;
                    self.leases[i] = g.lease().clone();
                } else {
                    let mut l = self.leases[i].clone();
                    self.store().extend(&mut l, by)?;
                    self.leases[i] = l;
                }
                Outcome::Extended { deadline: ms_of(self.leases[i].deadline()) }
            }
            Op::Abandon { lease, guard } => {
                let Some(i) = self.index(*lease) else { return Ok(Outcome::NoLease) };
                if *guard {
                    match self.guards[i].take() {
                        Some(g) => drop(g),
                        None => self.store().adopt(self.leases[i].clone())?.abandon(),
                    }
                } else {
                    self.store().abandon(&self.leases[i]);
                }
                Outcome::Abandoned
            }
            Op::ClaimBatch { items } => {
                let keys: Vec<_> =
                    items.iter().map(|&(k, fp)| (key(k), fp.map(fingerprint))).collect();
                let answers = self.store().claim_batch(keys.iter().map(|(k, fp)| (k, *fp)))?;
                let outs = answers
                    .into_iter()
                    .map(|a| match a {
                        Ok(claim) => self.claimed(claim),
                        Err(e) => self.error(e),
                    })
                    .collect();
                Outcome::Batch(outs)
            }
            Op::CompleteBatch { items, json } => {
                if self.leases.is_empty() {
                    return Ok(Outcome::NoLease);
                }
                // Each item's guard; a lease of an earlier open is refused
                // by `adopt` and answered at once.
                let mut outs: Vec<Option<Outcome>> = vec![None; items.len()];
                let mut batch = Vec::new();
                for (j, &(sel, n)) in items.iter().enumerate() {
                    let i = self.index(sel).expect("leases");
                    match self.guard(i) {
                        Ok(g) => batch.push((j, g, n)),
                        Err(e) => outs[j] = Some(self.error(e)),
                    }
                }
                let order: Vec<usize> = batch.iter().map(|(j, ..)| *j).collect();
                let results = if *json {
                    complete_batch_json(
                        self.store(),
                        batch.into_iter().map(|(_, g, n)| (g, n)).collect(),
                    )?
                } else {
                    self.store().complete_batch(batch.into_iter().map(|(_, g, n)| (g, body(n))))?
                };
                if results.len() != order.len() {
                    return Ok(Outcome::Unexpected(format!(
                        "complete_batch of {} answered {} results",
                        order.len(),
                        results.len()
                    )));
                }
                for (j, r) in order.into_iter().zip(results) {
                    outs[j] = Some(r.map_or_else(|e| self.error(e), |()| Outcome::Done));
                }
                Outcome::Batch(outs.into_iter().map(|o| o.expect("answered")).collect())
            }
            Op::Remove { key: k } => Outcome::Removed(self.store().remove(&key(*k))?),
            Op::Get { key: k } => {
                let entry = self.store().get(&key(*k))?;
                match entry.map(|e| self.entry(e)).transpose() {
                    Ok(v) => Outcome::Got(v),
                    Err(msg) => Outcome::Unexpected(msg),
                }
            }
            Op::Advance { ms } => {
                self.clock.advance(Duration::from_millis(*ms));
                Outcome::Advanced
            }
            Op::Sweep => Outcome::Swept(self.store().sweep()?),
            Op::Reopen { close } => {
                let store = self.store.take().expect("open");
                let guards: Vec<Guard> = self.guards.iter_mut().filter_map(Option::take).collect();
                if *close {
                    // Closes the store although the guards hold clones of it.
                    store.close()?;
                } else {
                    // The guards keep the store open: each abandons its
                    // claim when dropped, and the last one closes the store.
                    drop(store);
                    drop(guards);
                    self.store = Some(model_config(&self.clock, self.durability).open(&self.dir)?);
                    return Ok(Outcome::Reopened);
                }
                self.store = Some(model_config(&self.clock, self.durability).open(&self.dir)?);
                // Guards of the closed store: dropping them does nothing.
                drop(guards);
                Outcome::Reopened
            }
        })
    }

    fn id_of(&self, token: u64) -> Result<LeaseId, String> {
        self.ids.get(&token).copied().ok_or_else(|| format!("unknown token {token}"))
    }

    fn fp_of(&self, fp: Fingerprint) -> Result<Fp, String> {
        self.fps.get(&fp).copied().ok_or_else(|| format!("unknown fingerprint {fp}"))
    }

    fn claimed(&mut self, claim: Claim) -> Outcome {
        let r = match claim {
            Claim::Acquired(guard) => {
                let token = guard.token();
                if token <= self.last_token {
                    return Outcome::Unexpected(format!(
                        "token {token} not above the previous one {}",
                        self.last_token
                    ));
                }
                self.last_token = token;
                let id = self.leases.len() as LeaseId;
                self.ids.insert(token, id);
                let out = Outcome::Acquired {
                    lease: id,
                    attempt: guard.attempt(),
                    recovered: guard.recovered(),
                    deadline: ms_of(guard.deadline()),
                };
                if keeps_guard(id) {
                    self.leases.push(guard.lease().clone());
                    self.guards.push(Some(guard));
                } else {
                    self.leases.push(guard.into_lease());
                    self.guards.push(None);
                }
                return out;
            }
            Claim::Replay(r) => self.replay(&r).map(Outcome::Replay),
            Claim::InFlight { retry_after, attempt } => {
                Ok(Outcome::InFlight { retry_after_ms: retry_after.as_millis() as Ms, attempt })
            }
            Claim::Mismatch { stored } => {
                self.fp_of(stored).map(|stored| Outcome::Mismatch { stored })
            }
        };
        r.unwrap_or_else(Outcome::Unexpected)
    }

    fn replay(&self, r: &Replay) -> Result<ReplayView, String> {
        let json = match r.format() {
            BodyFormat::Bytes => false,
            BodyFormat::Json => {
                check_json(r)?;
                true
            }
            other => return Err(format!("unknown body format {other:?}")),
        };
        Ok(ReplayView {
            json,
            failed: match r.outcome() {
                ReplayOutcome::Completed => false,
                ReplayOutcome::Failed => true,
                other => return Err(format!("unknown outcome {other:?}")),
            },
            body: r.response().to_vec(),
            attempts: r.attempts(),
            id: self.id_of(r.token())?,
            first_claimed_at: ms_of(r.first_claimed_at()),
            finished_at: ms_of(r.finished_at()),
        })
    }

    fn entry(&self, e: Entry) -> Result<EntryView, String> {
        let state = match e.state {
            EntryState::InProgress { token, claimed_at, lease_deadline, orphaned } => {
                StateView::InProgress {
                    id: self.id_of(token)?,
                    claimed_at: ms_of(claimed_at),
                    deadline: ms_of(lease_deadline),
                    orphaned,
                }
            }
            EntryState::Finished(r) => StateView::Finished(self.replay(&r)?),
            EntryState::Claimable { since, after_retryable_failure } => {
                StateView::Claimable { since: ms_of(since), retryable: after_retryable_failure }
            }
            other => return Err(format!("unknown entry state {other:?}")),
        };
        Ok(EntryView {
            attempts: e.attempts,
            created_at: ms_of(e.created_at),
            expires_at: ms_of(e.expires_at),
            fp: e.fingerprint.map(|f| self.fp_of(f)).transpose()?,
            state,
        })
    }
}
