//! The transitions. Each takes the stored record (or none) and `now`.
//!
//! Rules (docs/DESIGN.md, "The contract"):
//! - a record whose `expires_at <= now` does not exist;
//! - a claim whose fingerprint differs from the stored one is a `Mismatch`
//!   and changes nothing;
//! - an `InProgress` record whose lease deadline has passed, or whose boot
//!   epoch is not the current one (its process is gone), is orphaned: the
//!   next claim acquires it with `recovered = true`, attempt count + 1;
//! - `complete`, `fail`, `extend` and `release` require the record to be
//!   `InProgress` with the lease's token; anything else is a stale lease.

use crate::clock::{Millis, Now};
use crate::error::StaleReason;
use crate::fingerprint::Fingerprint;

use super::{BodyFormat, IdleReason, Record, State};

/// The record if it has not expired.
pub(crate) fn live(current: Option<&Record>, now: Millis) -> Option<&Record> {
    current.filter(|r| r.expires_at > now)
}

/// What a claim needs to know besides the record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimParams {
    pub now: Now,
    pub boot: u64,
    pub fingerprint: Option<Fingerprint>,
    pub lease_ms: u64,
    pub retention_ms: u64,
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClaimDecision {
    /// Write `record`; the caller now holds the lease.
    Acquire { record: Record, recovered: bool },
    /// The key is finished: replay this record.
    Replay,
    /// Another holder's lease is live.
    InFlight { retry_after_ms: u64, attempt: u32, token: u64 },
    /// The stored fingerprint differs from the claim's.
    Mismatch { stored: Fingerprint },
}

/// Claims the key. An `Acquire` carries token 0: the caller stamps the
/// fencing token it issues ([`stamp_token`]) before writing the record.
pub(crate) fn claim(current: Option<&Record>, p: &ClaimParams) -> ClaimDecision {
    let current = live(current, p.now.ms);
    if let (Some(stored), Some(given)) = (current.and_then(|r| r.fingerprint), p.fingerprint)
        && stored != given
    {
        return ClaimDecision::Mismatch { stored };
    }
    let (attempts, created_at, fingerprint, recovered) = match current {
        None => (0, p.now.ms, p.fingerprint, false),
        Some(r) => {
            let fp = r.fingerprint.or(p.fingerprint);
            match &r.state {
                State::Completed { .. } | State::Failed { .. } => return ClaimDecision::Replay,
                State::InProgress { token, boot, lease_deadline, .. } => {
                    if *boot == p.boot && *lease_deadline > p.now.ms {
                        return ClaimDecision::InFlight {
                            // From the next whole millisecond, as the lease
                            // was counted: never longer than the lease.
                            retry_after_ms: lease_deadline.saturating_sub(p.now.plus(0)).max(1),
                            attempt: r.attempts,
                            token: *token,
                        };
                    }
                    (r.attempts, r.created_at, fp, true)
                }
                State::Idle { .. } => (r.attempts, r.created_at, fp, false),
            }
        }
    };
    // Counted from the next whole millisecond if part of it has passed:
    // the lease never ends before `lease` has passed.
    let lease_deadline = p.now.plus(p.lease_ms);
    let record = Record {
        attempts: attempts.saturating_add(1),
        created_at,
        expires_at: lease_deadline.saturating_add(p.retention_ms),
        retention_ms: p.retention_ms,
        fingerprint,
        state: State::InProgress { token: 0, boot: p.boot, claimed_at: p.now.ms, lease_deadline },
    };
    ClaimDecision::Acquire { record, recovered }
}

/// Gives an acquired record (from [`claim`]) its fencing token.
pub(crate) fn stamp_token(record: &mut Record, token: u64) {
    if let State::InProgress { token: t, .. } = &mut record.state {
        *t = token;
    }
}

/// The record held by `token`, or why the lease is stale.
fn held(current: Option<&Record>, token: u64, now: Millis) -> Result<&Record, StaleReason> {
    let Some(r) = live(current, now) else {
        return Err(StaleReason::Missing);
    };
    match &r.state {
        State::InProgress { token: t, .. } if *t == token => Ok(r),
        State::InProgress { token: t, .. } => Err(StaleReason::Superseded { current: *t }),
        State::Completed { token: t, .. } | State::Failed { token: t, .. } if *t != token => {
            Err(StaleReason::Superseded { current: *t })
        }
        State::Idle { last_token, .. } if *last_token != token => {
            // Someone acquired after us and gave the key back.
            Err(StaleReason::Superseded { current: *last_token })
        }
        _ => Err(StaleReason::Finished),
    }
}

/// The record finished at `now`: it expires `retention` after now — counted
/// from the claim if the clock has gone back since, so that a clock stepped
/// backwards never shortens the time a finished key is kept.
fn finish(r: &Record, now: Now, state: State) -> Record {
    let claimed_at = match r.state {
        State::InProgress { claimed_at, .. } => claimed_at,
        _ => 0,
    };
    let expires_at = now.at_least(claimed_at).plus(r.retention_ms);
    Record { expires_at, state, ..r.clone() }
}

/// Completes the claim of `token` with `body`.
///
/// A lease whose deadline has passed may still complete as long as nobody
/// else acquired the key: the work was done and no newer holder exists.
pub(crate) fn complete(
    current: Option<&Record>,
    token: u64,
    now: Now,
    body: &[u8],
    format: BodyFormat,
) -> Result<Record, StaleReason> {
    let r = held(current, token, now.ms)?;
    let state = State::Completed { token, finished_at: now.ms, body: body.into(), format };
    Ok(finish(r, now, state))
}

/// Fails the claim of `token` terminally; `body` is replayed to later claims.
pub(crate) fn fail_terminal(
    current: Option<&Record>,
    token: u64,
    now: Now,
    body: &[u8],
    format: BodyFormat,
) -> Result<Record, StaleReason> {
    let r = held(current, token, now.ms)?;
    let state = State::Failed { token, finished_at: now.ms, body: body.into(), format };
    Ok(finish(r, now, state))
}

/// Fails the claim of `token` retryably: the key becomes claimable again.
pub(crate) fn fail_retryable(
    current: Option<&Record>,
    token: u64,
    now: Now,
) -> Result<Record, StaleReason> {
    let r = held(current, token, now.ms)?;
    let state =
        State::Idle { last_token: token, since: now.ms, reason: IdleReason::RetryableFailure };
    Ok(finish(r, now, state))
}

/// Releases the claim of `token` without an outcome.
pub(crate) fn release(
    current: Option<&Record>,
    token: u64,
    now: Now,
) -> Result<Record, StaleReason> {
    let r = held(current, token, now.ms)?;
    let state = State::Idle { last_token: token, since: now.ms, reason: IdleReason::Released };
    Ok(finish(r, now, state))
}

/// Abandons the claim of `token`: the holder stopped without saying whether
/// its side effect ran (a dropped guard, a panic, a cancelled future). The
/// lease deadline moves back to the claim time, so the key is orphaned at
/// once: the next claim acquires it with `recovered = true` and the attempt
/// count kept. Nothing else changes (the record keeps its expiry).
///
/// A deadline at or before the claim time is what marks a claim abandoned
/// ([`abandoned`]): a lease is never shorter than 1 ms, so no claim gets one
/// otherwise.
pub(crate) fn abandon(
    current: Option<&Record>,
    token: u64,
    now: Now,
) -> Result<Record, StaleReason> {
    let r = held(current, token, now.ms)?;
    let State::InProgress { boot, claimed_at, .. } = r.state else {
        unreachable!("held() returns only InProgress records");
    };
    // Robust against a clock stepped back after the claim: still at or
    // before both the claim and now.
    let lease_deadline = claimed_at.min(now.ms);
    Ok(Record { state: State::InProgress { token, boot, claimed_at, lease_deadline }, ..r.clone() })
}

/// Whether `r` is a claim its holder abandoned (see [`abandon`]).
#[cfg(test)]
pub(crate) fn abandoned(r: &Record) -> bool {
    matches!(r.state, State::InProgress { claimed_at, lease_deadline, .. } if lease_deadline <= claimed_at)
}

/// Moves the lease deadline of `token` to `now + lease_ms`.
pub(crate) fn extend(
    current: Option<&Record>,
    token: u64,
    now: Now,
    lease_ms: u64,
) -> Result<Record, StaleReason> {
    let r = held(current, token, now.ms)?;
    let State::InProgress { boot, claimed_at, .. } = r.state else {
        unreachable!("held() returns only InProgress records");
    };
    let lease_deadline = now.plus(lease_ms);
    Ok(Record {
        expires_at: r.expires_at.max(lease_deadline.saturating_add(r.retention_ms)),
        state: State::InProgress { token, boot, claimed_at, lease_deadline },
        ..r.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: u64 = 30_000;
    const KEEP: u64 = 1_000_000;

    fn params(now: Millis) -> ClaimParams {
        ClaimParams {
            now: Now::at(now),
            boot: 1,
            fingerprint: Some(Fingerprint::of(b"a")),
            lease_ms: LEASE,
            retention_ms: KEEP,
        }
    }

    fn acquire(current: Option<&Record>, p: &ClaimParams, token: u64) -> (Record, bool) {
        match claim(current, p) {
            ClaimDecision::Acquire { mut record, recovered } => {
                stamp_token(&mut record, token);
                (record, recovered)
            }
            other => panic!("expected Acquire, got {other:?}"),
        }
    }

    #[test]
    fn new_key_is_acquired_then_in_flight() {
        let (r, recovered) = acquire(None, &params(100), 5);
        assert!(!recovered);
        assert_eq!(r.attempts, 1);
        assert_eq!(r.expires_at, 100 + LEASE + KEEP);
        let d = claim(Some(&r), &params(200));
        assert_eq!(
            d,
            ClaimDecision::InFlight { retry_after_ms: LEASE - 100, attempt: 1, token: 5 }
        );
    }

    #[test]
    fn completed_replays_and_expires() {
        let (r, _) = acquire(None, &params(0), 1);
        let done = complete(Some(&r), 1, Now::at(10), b"resp", BodyFormat::Bytes).unwrap();
        assert_eq!(done.expires_at, 10 + KEEP);
        assert_eq!(claim(Some(&done), &params(20)), ClaimDecision::Replay);
        let (again, _) = acquire(Some(&done), &params(10 + KEEP), 2);
        assert_eq!(again.attempts, 1, "an expired record is absent");
    }

    #[test]
    fn mismatch_changes_nothing() {
        let (r, _) = acquire(None, &params(0), 1);
        let mut p = params(1);
        p.fingerprint = Some(Fingerprint::of(b"b"));
        assert!(matches!(claim(Some(&r), &p), ClaimDecision::Mismatch { .. }));
        p.fingerprint = None;
        assert!(matches!(claim(Some(&r), &p), ClaimDecision::InFlight { .. }));
    }

    #[test]
    fn expired_lease_and_other_boot_are_orphans() {
        let (r, _) = acquire(None, &params(0), 1);
        let (r2, recovered) = acquire(Some(&r), &params(LEASE), 2);
        assert!(recovered);
        assert_eq!(r2.attempts, 2);
        let mut p = params(1);
        p.boot = 2;
        let (_, recovered) = acquire(Some(&r), &p, 3);
        assert!(recovered);
    }

    #[test]
    fn fencing() {
        let (r1, _) = acquire(None, &params(0), 1);
        let (r2, _) = acquire(Some(&r1), &params(LEASE + 1), 2);
        assert_eq!(
            complete(Some(&r2), 1, Now::at(LEASE + 2), b"x", BodyFormat::Bytes),
            Err(StaleReason::Superseded { current: 2 })
        );
        let done = complete(Some(&r2), 2, Now::at(LEASE + 3), b"y", BodyFormat::Bytes).unwrap();
        assert_eq!(
            complete(Some(&done), 2, Now::at(LEASE + 4), b"z", BodyFormat::Bytes),
            Err(StaleReason::Finished)
        );
        assert_eq!(
            complete(Some(&done), 1, Now::at(LEASE + 4), b"z", BodyFormat::Bytes),
            Err(StaleReason::Superseded { current: 2 })
        );
        assert_eq!(
            complete(None, 2, Now::at(0), b"z", BodyFormat::Bytes),
            Err(StaleReason::Missing)
        );
    }

    #[test]
    fn retryable_failure_and_release_keep_attempts() {
        let (r, _) = acquire(None, &params(0), 1);
        let idle = fail_retryable(Some(&r), 1, Now::at(5)).unwrap();
        let (r2, recovered) = acquire(Some(&idle), &params(6), 2);
        assert!(!recovered);
        assert_eq!(r2.attempts, 2);
        let idle = release(Some(&r2), 2, Now::at(7)).unwrap();
        assert_eq!(release(Some(&idle), 2, Now::at(8)), Err(StaleReason::Finished));
        let (r3, _) = acquire(Some(&idle), &params(8), 3);
        assert_eq!(r3.attempts, 3);
        let failed = fail_terminal(Some(&r3), 3, Now::at(9), b"bad", BodyFormat::Bytes).unwrap();
        assert_eq!(claim(Some(&failed), &params(10)), ClaimDecision::Replay);
    }

    #[test]
    fn abandoned_claim_is_an_orphan_at_once_for_every_clock_step() {
        // Abandoned at, before (clock stepped back) and long after the claim.
        for (claimed, at) in [(100, 100), (100, 101), (100, 40), (100, 100 + LEASE - 1)] {
            let (r, _) = acquire(None, &params(claimed), 1);
            let a = abandon(Some(&r), 1, Now::at(at)).unwrap();
            assert!(abandoned(&a));
            assert!(!abandoned(&r), "a fresh claim is not abandoned");
            assert_eq!(a.expires_at, r.expires_at, "the expiry is kept");
            for now in [at.min(claimed), claimed, at, claimed + 1] {
                let (next, recovered) = acquire(Some(&a), &params(now), 2);
                assert!(recovered, "claimed {claimed}, abandoned {at}, claim at {now}");
                assert_eq!(next.attempts, 2);
            }
            assert_eq!(
                abandon(Some(&a), 7, Now::at(at)),
                Err(StaleReason::Superseded { current: 1 })
            );
            // The abandoning holder's later calls are fenced by the next claim.
            let (next, _) = acquire(Some(&a), &params(at.max(claimed)), 2);
            assert_eq!(
                complete(Some(&next), 1, Now::at(at), b"x", BodyFormat::Bytes),
                Err(StaleReason::Superseded { current: 2 })
            );
        }
        let (r, _) = acquire(None, &params(0), 1);
        let done = complete(Some(&r), 1, Now::at(1), b"x", BodyFormat::Json).unwrap();
        assert_eq!(abandon(Some(&done), 1, Now::at(2)), Err(StaleReason::Finished));
        assert_eq!(abandon(None, 1, Now::at(2)), Err(StaleReason::Missing));
    }

    #[test]
    fn extend_moves_deadline() {
        let (r, _) = acquire(None, &params(0), 1);
        let ext = extend(Some(&r), 1, Now::at(20_000), LEASE).unwrap();
        let d = claim(Some(&ext), &params(LEASE + 1));
        assert!(matches!(d, ClaimDecision::InFlight { .. }));
        assert_eq!(
            extend(Some(&ext), 7, Now::at(1), LEASE),
            Err(StaleReason::Superseded { current: 1 })
        );
    }
}
