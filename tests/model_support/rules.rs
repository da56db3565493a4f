//! The per-key rules: the sequential specification of one key.

use super::{Fp, LeaseId, Ms};

/// A key's stored record, as the contract describes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rec {
    /// Times acquired since the record was created.
    pub attempts: u32,
    /// When the record was created (first acquisition).
    pub created_at: Ms,
    /// The record is absent to every call from this instant on.
    pub expires_at: Ms,
    /// The retention of the claim that last acquired it.
    pub retention: Ms,
    /// The stored fingerprint, if any.
    pub fp: Option<Fp>,
    /// The state.
    pub state: RecState,
}

/// The four states of a stored record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecState {
    /// `InProgress`: held by `id` of boot `boot` until `deadline`.
    Held { id: LeaseId, boot: u64, claimed_at: Ms, deadline: Ms },
    /// `Completed` or `Failed` by `id`, with the stored bytes and whether
    /// they are JSON (`BodyFormat::Json`) rather than raw bytes.
    Done { id: LeaseId, failed: bool, at: Ms, body: Vec<u8>, json: bool },
    /// `Idle` after `last` released it or failed retryably.
    Idle { last: LeaseId, since: Ms, retryable: bool },
}

/// What a finished key replays.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplayView {
    /// `Outcome::Failed` rather than `Outcome::Completed`.
    pub failed: bool,
    /// The stored bytes.
    pub body: Vec<u8>,
    /// `Replay::format()` is `BodyFormat::Json` (else `Bytes`).
    pub json: bool,
    /// Attempts it took.
    pub attempts: u32,
    /// The lease that finished it.
    pub id: LeaseId,
    /// `Replay::first_claimed_at`.
    pub first_claimed_at: Ms,
    /// `Replay::finished_at`.
    pub finished_at: Ms,
}

/// Why a lease is stale (`StaleReason`, with lease ids for tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stale {
    /// Another lease acquired the key since.
    Superseded { current: LeaseId },
    /// This lease's claim already ended.
    Finished,
    /// No live record.
    Missing,
    /// The lease was issued before the last reopen: a lease is valid
    /// only with the open store that issued it.
    OtherStore,
}

/// What `get` shows of a live record (`Entry`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryView {
    pub attempts: u32,
    pub created_at: Ms,
    pub expires_at: Ms,
    pub fp: Option<Fp>,
    pub state: StateView,
}

/// `EntryState`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StateView {
    InProgress { id: LeaseId, claimed_at: Ms, deadline: Ms, orphaned: bool },
    Finished(ReplayView),
    Claimable { since: Ms, retryable: bool },
}

/// The answer to a claim. `InFlight::retry_after_ms` is the time left on
/// the holder's lease: the upper bound of `Claim::InFlight::retry_after`,
/// which `Model` refines with the namespace's recent processing times.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClaimOut {
    Acquired { id: LeaseId, attempt: u32, recovered: bool, deadline: Ms },
    Replay(ReplayView),
    InFlight { retry_after_ms: Ms, attempt: u32 },
    Mismatch { stored: Fp },
}

/// The inputs of a claim besides the record.
#[derive(Debug, Clone, Copy)]
pub struct ClaimArgs {
    pub now: Ms,
    pub boot: u64,
    pub fp: Option<Fp>,
    pub lease: Ms,
    pub retention: Ms,
}

/// How a holder ends its claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Complete(Vec<u8>),
    /// `complete(Json(..))`: the value's JSON bytes.
    CompleteJson(Vec<u8>),
    FailTerminal(Vec<u8>),
    FailRetryable,
    Release,
}

/// "A record whose `expires_at` has passed is absent to every call."
pub fn live(slot: &Option<Rec>, now: Ms) -> Option<&Rec> {
    slot.as_ref().filter(|r| now < r.expires_at)
}

fn replay_of(r: &Rec) -> Option<ReplayView> {
    match &r.state {
        RecState::Done { id, failed, at, body, json } => Some(ReplayView {
            failed: *failed,
            body: body.clone(),
            json: *json,
            attempts: r.attempts,
            id: *id,
            first_claimed_at: r.created_at,
            finished_at: *at,
        }),
        _ => None,
    }
}

/// `claim`: the README's table, checked top to bottom. `id` names the
/// lease if the claim acquires.
pub fn claim(slot: &mut Option<Rec>, a: &ClaimArgs, id: LeaseId) -> ClaimOut {
    let (attempt, created_at, fp, recovered) = match live(slot, a.now) {
        None => (1, a.now, a.fp, false),
        Some(r) => {
            // 1. a different fingerprint (both present): Mismatch.
            if let (Some(stored), Some(given)) = (r.fp, a.fp)
                && stored != given
            {
                return ClaimOut::Mismatch { stored };
            }
            let recovered = match &r.state {
                // 2. finished: replay.
                RecState::Done { .. } => {
                    return ClaimOut::Replay(replay_of(r).expect("done"));
                }
                // 3. held by this boot, lease running: in flight.
                RecState::Held { boot, deadline, .. } if *boot == a.boot && a.now < *deadline => {
                    return ClaimOut::InFlight {
                        retry_after_ms: deadline - a.now,
                        attempt: r.attempts,
                    };
                }
                // 4. held, but lease passed or older boot: an orphan.
                RecState::Held { .. } => true,
                // 5. idle: claimable, attempt count kept.
                RecState::Idle { .. } => false,
            };
            // "a record stored without [a fingerprint] adopts the
            // fingerprint of the next claim that acquires it"
            (r.attempts + 1, r.created_at, r.fp.or(a.fp), recovered)
        }
    };
    let deadline = a.now + a.lease;
    *slot = Some(Rec {
        attempts: attempt,
        created_at,
        // "A claim's record expires at lease deadline + retention"
        expires_at: deadline + a.retention,
        retention: a.retention,
        fp,
        state: RecState::Held { id, boot: a.boot, claimed_at: a.now, deadline },
    });
    ClaimOut::Acquired { id, attempt, recovered, deadline }
}

/// Is `id` the holder? (`complete`, `fail`, `extend`, `release` require
/// the record to be `InProgress` with the lease's token; the deadline is
/// not checked.)
pub fn check_holder(slot: &Option<Rec>, id: LeaseId, now: Ms) -> Result<(), Stale> {
    let Some(r) = live(slot, now) else {
        return Err(Stale::Missing);
    };
    let (latest, held) = match &r.state {
        RecState::Held { id, .. } => (*id, true),
        RecState::Done { id, .. } => (*id, false),
        RecState::Idle { last, .. } => (*last, false),
    };
    match (latest == id, held) {
        (true, true) => Ok(()),
        (true, false) => Err(Stale::Finished),
        (false, _) => Err(Stale::Superseded { current: latest }),
    }
}

/// `complete`, `fail` or `release` by `id`. "`complete`, `fail` and
/// `release` reset it to `now + retention`."
pub fn end(slot: &mut Option<Rec>, id: LeaseId, now: Ms, how: End) -> Result<(), Stale> {
    check_holder(slot, id, now)?;
    let r = slot.as_mut().expect("held");
    r.expires_at = now + r.retention;
    r.state = match how {
        End::Complete(body) => RecState::Done { id, failed: false, at: now, body, json: false },
        End::CompleteJson(body) => RecState::Done { id, failed: false, at: now, body, json: true },
        End::FailTerminal(body) => RecState::Done { id, failed: true, at: now, body, json: false },
        End::FailRetryable => RecState::Idle { last: id, since: now, retryable: true },
        End::Release => RecState::Idle { last: id, since: now, retryable: false },
    };
    Ok(())
}

/// `abandon` by `id` (dropping its guard, or `Store::abandon`): if `id`
/// holds the key, its lease deadline moves back to `min(claimed_at, now)`,
/// so the claim is an orphan at once — the next claim acquires it
/// `recovered`, attempt + 1 — and nothing else changes (not the expiry);
/// the holder's own later calls still pass until someone takes it over.
/// A stale `id` changes nothing, and nothing is reported either way.
/// Returns whether the claim was abandoned.
pub fn abandon(slot: &mut Option<Rec>, id: LeaseId, now: Ms) -> bool {
    if check_holder(slot, id, now).is_err() {
        return false;
    }
    let r = slot.as_mut().expect("held");
    let RecState::Held { claimed_at, deadline, .. } = &mut r.state else { unreachable!() };
    *deadline = (*claimed_at).min(now);
    true
}

/// Why `extend` refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtendErr {
    /// `Error::InvalidConfig`: zero, or longer than the key's retention.
    Invalid,
    /// `Error::StaleLease`.
    Stale(Stale),
}

/// `extend(&mut lease, by)`: "moves the deadline to `now + by`";
/// `expires_at` becomes `max(expires_at, new deadline + retention)`.
/// Returns the new deadline.
pub fn extend(slot: &mut Option<Rec>, id: LeaseId, now: Ms, by: Ms) -> Result<Ms, ExtendErr> {
    if by == 0 {
        return Err(ExtendErr::Invalid);
    }
    // "`by` may not be zero nor longer than the retention the key was
    // claimed with" — read from the live record (an expired one is
    // absent to every call).
    if live(slot, now).is_some_and(|r| by > r.retention) {
        return Err(ExtendErr::Invalid);
    }
    check_holder(slot, id, now).map_err(ExtendErr::Stale)?;
    let r = slot.as_mut().expect("held");
    let RecState::Held { deadline, .. } = &mut r.state else { unreachable!() };
    *deadline = now + by;
    r.expires_at = r.expires_at.max(now + by + r.retention);
    Ok(now + by)
}

/// `get`.
pub fn view(slot: &Option<Rec>, now: Ms, boot: u64) -> Option<EntryView> {
    let r = live(slot, now)?;
    let state = match &r.state {
        RecState::Held { id, boot: b, claimed_at, deadline } => StateView::InProgress {
            id: *id,
            claimed_at: *claimed_at,
            deadline: *deadline,
            orphaned: *b != boot || *deadline <= now,
        },
        RecState::Done { .. } => StateView::Finished(replay_of(r).expect("done")),
        RecState::Idle { since, retryable, .. } => {
            StateView::Claimable { since: *since, retryable: *retryable }
        }
    };
    Some(EntryView {
        attempts: r.attempts,
        created_at: r.created_at,
        expires_at: r.expires_at,
        fp: r.fp,
        state,
    })
}
