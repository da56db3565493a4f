//! The driver of the real store: runs each operation on a [`Store`] and
//! answers in the model's terms.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use idemkv::{
    Claim, ClaimOptions, Config, Durability, Entry, EntryState, Error, Failure, Fingerprint, Lease,
    MockClock, Outcome as ReplayOutcome, Policy, Replay, StaleReason, Store,
};

use super::{EntryView, Fp, LEASE_MS, LeaseId, Ms, Op, Outcome, RETENTION_MS, ReplayView, T0};
use super::{Stale, StateView, body, fingerprint, key, pick};

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
    leases: Vec<Lease>,
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
            Err(Error::StaleLease { reason, .. }) => match reason {
                StaleReason::Superseded { current } => match self.ids.get(&current) {
                    Some(&id) => Outcome::Stale(Stale::Superseded { current: id }),
                    None => Outcome::Unexpected(format!("superseded by unknown token {current}")),
                },
                StaleReason::Finished => Outcome::Stale(Stale::Finished),
                StaleReason::Missing => Outcome::Stale(Stale::Missing),
                StaleReason::OtherStore => Outcome::Stale(Stale::OtherStore),
                other => Outcome::Unexpected(format!("stale reason {other:?}")),
            },
            Err(Error::InvalidConfig { .. }) => Outcome::InvalidConfig,
            Err(e) => Outcome::Unexpected(e.to_string()),
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
                let Some(l) = self.lease(*lease) else { return Ok(Outcome::NoLease) };
                self.store().complete(&l, &body(*b))?;
                Outcome::Done
            }
            Op::FailRetryable { lease } => {
                let Some(l) = self.lease(*lease) else { return Ok(Outcome::NoLease) };
                self.store().fail(&l, Failure::Retryable)?;
                Outcome::Done
            }
            Op::FailTerminal { lease, body: b } => {
                let Some(l) = self.lease(*lease) else { return Ok(Outcome::NoLease) };
                self.store().fail(&l, Failure::Terminal(&body(*b)))?;
                Outcome::Done
            }
            Op::Release { lease } => {
                let Some(l) = self.lease(*lease) else { return Ok(Outcome::NoLease) };
                self.store().release(&l)?;
                Outcome::Done
            }
            Op::Extend { lease, by_ms } => {
                let Some(i) = pick(*lease, self.leases.len()) else {
                    return Ok(Outcome::NoLease);
                };
                let mut l = self.leases[i].clone();
                self.store().extend(&mut l, Duration::from_millis(*by_ms))?;
                let deadline = ms_of(l.deadline());
                self.leases[i] = l;
                Outcome::Extended { deadline }
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
                if *close {
                    store.close()?;
                } else {
                    drop(store);
                }
                self.store = Some(model_config(&self.clock, self.durability).open(&self.dir)?);
                Outcome::Reopened
            }
        })
    }

    fn lease(&self, sel: usize) -> Option<Lease> {
        pick(sel, self.leases.len()).map(|i| self.leases[i].clone())
    }

    fn id_of(&self, token: u64) -> Result<LeaseId, String> {
        self.ids.get(&token).copied().ok_or_else(|| format!("unknown token {token}"))
    }

    fn fp_of(&self, fp: Fingerprint) -> Result<Fp, String> {
        self.fps.get(&fp).copied().ok_or_else(|| format!("unknown fingerprint {fp}"))
    }

    fn claimed(&mut self, claim: Claim) -> Outcome {
        let r = match claim {
            Claim::Acquired(lease) => {
                let token = lease.token();
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
                    attempt: lease.attempt(),
                    recovered: lease.recovered(),
                    deadline: ms_of(lease.deadline()),
                };
                self.leases.push(lease.into_lease());
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
        Ok(ReplayView {
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
