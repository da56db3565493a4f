//! The embedded backend's per-key calls: claim, the fenced transitions, get,
//! remove and import. Each runs under its key's stripe lock and appends at
//! most one mutation there. Claims and transitions return the sequence number
//! their answer rests on, for the caller to settle (wait for its fsync, or
//! await it); the others settle it themselves after releasing the lock.

use std::sync::Arc;

use super::counting::{count_acquired, count_claim, counter_of};
use super::{Embedded, internal};
use crate::clock::Now;
use crate::core::backend::{ClaimRequest, Claimed, Op, Waiter, run_op};
use crate::core::{self, ClaimDecision, ClaimParams, Record, State};
use crate::engine::Seq;
use crate::error::{Error, Result, StaleReason};
use crate::key::Key;
use crate::metrics::Counter;

impl Embedded {
    /// The front has refused a closed or poisoned store already (before
    /// checking input); an acquiring claim's append refuses both again.
    pub(super) fn claim_key(&self, req: &ClaimRequest<'_>) -> Result<(Claimed, Seq)> {
        let e = &*self.engine;
        let key = self.hash(req.key);
        let ns = req.key.namespace_bytes();
        e.throttle()?;
        let mut count_wait = req.count_wait;
        loop {
            let (mut st, current, seen) = self.lookup(&key);
            if std::mem::take(&mut count_wait) {
                st.counters.add(ns, Counter::Waits);
            }
            let current = current?;
            if current.is_none() && !e.audit_done() {
                // Found nowhere, and sled's records are not counted yet
                // since open: it may be a key sled lost. Wait for the count.
                drop(st);
                e.wait_audit()?;
                e.check_writable()?; // the audit may have found sled damaged
                continue;
            }
            let now = Now::of(&*self.clock);
            let params = ClaimParams {
                now,
                boot: e.boot(),
                fingerprint: req.fingerprint,
                lease_ms: req.lease_ms,
                retention_ms: req.retention_ms,
            };
            let decision = core::claim(current.as_deref(), &params);
            if !matches!(decision, ClaimDecision::Acquire { .. }) {
                count_claim(&mut st.counters, ns, &decision, req.wait);
            }
            let answer = match decision {
                ClaimDecision::Acquire { mut record, recovered } => {
                    // Never wraps: past MAX_TOKEN this is an error, before
                    // anything is written.
                    let token = e.issue_token()?;
                    if !e.token_secured(token) {
                        // Once per 2^32 claims: raise the durable ceiling
                        // (a META fsync) with no stripe lock held, then
                        // decide again.
                        drop(st);
                        e.secure_token(token)?;
                        continue;
                    }
                    core::stamp_token(&mut record, token);
                    let attempts = record.attempts;
                    let (seq, record, _) = self.write(&mut st, &key, Some(record), false)?;
                    count_acquired(&mut st.counters, ns, attempts, recovered);
                    drop(st);
                    let record = record.ok_or_else(|| internal("acquired without record"))?;
                    return Ok((Claimed::Acquired { record, recovered }, seq));
                }
                ClaimDecision::Replay => current.map(Claimed::Replay),
                ClaimDecision::Mismatch { stored } => {
                    current.map(|r| Claimed::Mismatch { fingerprint: stored, stored: r })
                }
                ClaimDecision::InFlight { retry_after_ms, attempt, .. } => {
                    // For a wait: registered in the critical section that
                    // found the key in flight, so its end cannot slip in
                    // between. Close takes every stripe's waiters after
                    // setting `closed`.
                    let waiter = if req.wait {
                        e.check_writable()?;
                        Some(Waiter::new(st.waiters.listen(&key)))
                    } else {
                        None
                    };
                    current.map(|stored| Claimed::InFlight {
                        retry_after_ms,
                        attempt,
                        stored,
                        waiter,
                    })
                }
            };
            drop(st);
            let answer = answer.ok_or_else(|| internal("a decision on a record found nowhere"))?;
            return Ok((answer, seen));
        }
    }

    /// `throttle: false` (an abandon from a guard's drop) skips the
    /// backpressure wait: the call never waits for the applier.
    pub(super) fn transition_key(
        &self,
        key: &Key,
        store_id: u64,
        token: u64,
        op: Op<'_>,
        throttle: bool,
    ) -> Result<(Arc<Record>, Seq)> {
        let e = &*self.engine;
        e.check_writable()?;
        let hk = self.hash(key);
        let ns = key.namespace_bytes();
        if store_id != e.store_id() {
            // Counted like every stale lease (`stale_leases`).
            self.stripe(&hk).lock().counters.add(ns, Counter::StaleLeases);
            return Err(Error::StaleLease {
                key: key.to_string(),
                token,
                reason: StaleReason::OtherStore,
            });
        }
        if throttle {
            e.throttle()?;
        }
        let (mut st, current, _) = self.lookup(&hk);
        let current = current?;
        let now = Now::of(&*self.clock);
        let record = match run_op(key, token, current.as_deref(), now, op) {
            Ok(r) => r,
            Err(err) => {
                // An abandon from a guard's drop that finds the key taken
                // over is not a caller's stale lease.
                if matches!(err, Error::StaleLease { .. }) && !matches!(op, Op::Abandon) {
                    st.counters.add(ns, Counter::StaleLeases);
                }
                return Err(err);
            }
        };
        let (seq, record, woken) = self.write(&mut st, &hk, Some(record), op.ends_claim())?;
        st.counters.add(ns, counter_of(&op));
        drop(st);
        if let Some(w) = woken {
            w.notify(); // the claim ended: wake its waiters
        }
        Ok((record.ok_or_else(|| internal("transition without record"))?, seq))
    }

    pub(super) fn get_key(&self, key: &Key) -> Result<Option<Arc<Record>>> {
        let e = &*self.engine;
        e.check_open()?;
        let hk = self.hash(key);
        let (st, current, seen) = self.lookup(&hk);
        let (current, seen) = match current? {
            None if !e.audit_done() => {
                // As in `claim`: an absent key waits for sled's first count.
                drop(st);
                e.wait_audit()?;
                let (st, current, seen) = self.lookup(&hk);
                drop(st);
                (current?, seen)
            }
            current => (current, seen),
        };
        if current.is_none() {
            // sled lost records, or could not be checked: "absent" may be
            // one of them.
            e.absent_unsure()?;
        }
        // Even an absent answer may rest on a pending delete: settle it.
        e.settle(seen)?;
        Ok(current)
    }

    pub(super) fn remove_key(&self, key: &Key) -> Result<bool> {
        let e = &*self.engine;
        e.check_writable()?;
        let hk = self.hash(key);
        e.throttle()?;
        let (mut st, current, seen) = self.lookup(&hk);
        let was_live = match current {
            Ok(None) => {
                drop(st);
                e.settle(seen)?;
                return Ok(false);
            }
            Ok(Some(r)) => core::live(Some(&r), self.clock.now_millis()).is_some(),
            // A record that cannot be decoded can still be removed; its
            // expiry-index entry, if any, is dropped as stale by the sweeper.
            Err(Error::Corrupt { .. }) => true,
            Err(err) => return Err(err),
        };
        let (seq, _, woken) = self.write(&mut st, &hk, None, true)?;
        if was_live {
            st.counters.add(key.namespace_bytes(), Counter::Removals);
        }
        drop(st);
        if let Some(w) = woken {
            w.notify();
        }
        e.settle(seq)?;
        Ok(was_live)
    }

    pub(super) fn import_key(&self, key: &Key, record: Record) -> Result<()> {
        let e = &*self.engine;
        e.check_writable()?;
        let token = match record.state {
            State::InProgress { token, .. }
            | State::Completed { token, .. }
            | State::Failed { token, .. } => token,
            State::Idle { last_token, .. } => last_token,
        };
        // Refused before anything changes: a token near u64::MAX would leave
        // no room for the strictly increasing tokens of later claims.
        if token > crate::config::MAX_IMPORTED_TOKEN {
            return Err(Error::TokenSpaceExhausted {
                token,
                limit: crate::config::MAX_IMPORTED_TOKEN,
            });
        }
        e.tokens_after(token)?;
        let hk = self.hash(key);
        e.throttle()?;
        let (mut st, prev, _) = self.lookup(&hk);
        // A claim of this store on the key (held, or orphaned but still
        // completable) would match an imported token by chance and finish a
        // record that is not its own: refused, nothing changed.
        let prev = prev.ok().flatten();
        if let Some(p) = core::live(prev.as_deref(), self.clock.now_millis())
            && matches!(p.state, State::InProgress { .. })
        {
            return Err(Error::Conflict {
                reason: format!(
                    "import of {key}: the key is claimed in this store; complete, fail, \
                     release or remove that claim first"
                ),
            });
        }
        let (seq, _, woken) = self.write(&mut st, &hk, Some(record), true)?;
        drop(st);
        if let Some(w) = woken {
            w.notify();
        }
        e.settle(seq)
    }
}
