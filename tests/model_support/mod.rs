//! The reference model of idemkv's contract, and a driver that runs the same
//! operations against a real [`Store`].
//!
//! Shared by `tests/model.rs` (model-based property tests),
//! `tests/linearizability.rs` (the per-key rules are the sequential
//! specification of the history checker) and `fuzz/fuzz_targets/model.rs`.
//! It has no proptest types: an [`Op`] is plain data, [`Model::apply`] and
//! [`Sut::apply`] both return an [`Outcome`], and a test compares the two.
//!
//! The model is written from the README's "The contract" section and
//! DESIGN.md's rules, not from `src/core`: it never calls idemkv internals.
//! It cannot predict fencing-token values (each open skips 2^32 of them), so
//! it names leases by acquisition order (`LeaseId` 0, 1, 2, …) and the driver
//! translates every token the store reports back to that index, checking on
//! the way that each new token is strictly greater than all earlier ones.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use idemkv::{
    Claim, ClaimOptions, Config, Durability, Entry, EntryState, Error, Failure, Fingerprint, Key,
    Lease, MockClock, Outcome as ReplayOutcome, Policy, Replay, StaleReason, Store,
};

/// Milliseconds since the Unix epoch (the store's unit of time).
pub type Ms = u64;
/// A lease's name in the model. In `Model` the acquisition order (0, 1, …);
/// in the linearizability checker the real fencing token.
pub type LeaseId = u64;
/// A request fingerprint, by number (see [`fingerprint`]).
pub type Fp = u8;

/// The per-key rules: the sequential specification of one key.
pub mod rules {
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
        /// `Completed` or `Failed` by `id`, with the stored bytes.
        Done { id: LeaseId, failed: bool, at: Ms, body: Vec<u8> },
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

    /// The answer to a claim.
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
            RecState::Done { id, failed, at, body } => Some(ReplayView {
                failed: *failed,
                body: body.clone(),
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
                    RecState::Held { boot, deadline, .. }
                        if *boot == a.boot && a.now < *deadline =>
                    {
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
            End::Complete(body) => RecState::Done { id, failed: false, at: now, body },
            End::FailTerminal(body) => RecState::Done { id, failed: true, at: now, body },
            End::FailRetryable => RecState::Idle { last: id, since: now, retryable: true },
            End::Release => RecState::Idle { last: id, since: now, retryable: false },
        };
        Ok(())
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
}

pub use rules::{ClaimOut, EntryView, ReplayView, Stale, StateView};

/// Number of keys the operations address (`Op::*::key` is taken modulo it).
pub const KEYS: u8 = 4;
/// The model store's default lease.
pub const LEASE_MS: Ms = 10_000;
/// The model store's default retention.
pub const RETENTION_MS: Ms = 100_000;
/// The mock clock's start (2023-11-14).
pub const T0: Ms = 1_700_000_000_000;
/// The namespace of the model's keys.
pub const NS: &str = "model";

/// One operation of a test sequence. A `lease` field selects among the
/// leases acquired so far, stale ones included: 0 is the most recent, 1 the
/// one before, … (modulo their number); with none acquired the op is
/// skipped (`Outcome::NoLease`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `claim`, or `claim_with` when `lease_ms` or `retention_ms` is set.
    Claim { key: u8, fp: Option<Fp>, lease_ms: Option<Ms>, retention_ms: Option<Ms> },
    /// `wait` with a short timeout: behaves as a claim, `InFlight` at the
    /// timeout (the mock clock does not move while it waits).
    Wait { key: u8, fp: Option<Fp>, timeout_ms: u64 },
    /// `complete(lease, body(body))`.
    Complete { lease: usize, body: u8 },
    /// `fail(lease, Retryable)`.
    FailRetryable { lease: usize },
    /// `fail(lease, Terminal(body(body)))`.
    FailTerminal { lease: usize, body: u8 },
    /// `extend(lease, by_ms)`.
    Extend { lease: usize, by_ms: Ms },
    /// `release(lease)`.
    Release { lease: usize },
    /// `remove(key)`.
    Remove { key: u8 },
    /// `get(key)`.
    Get { key: u8 },
    /// Moves the mock clock forward.
    Advance { ms: Ms },
    /// `sweep()`.
    Sweep,
    /// Closes the store (`close()` if `close`, else drop) and opens it again.
    Reopen { close: bool },
}

/// The result of one operation, in the model's terms. Identical for the
/// model and the real store, or the test fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A lease-addressed op with no lease acquired yet: skipped.
    NoLease,
    Acquired {
        lease: LeaseId,
        attempt: u32,
        recovered: bool,
        deadline: Ms,
    },
    Replay(ReplayView),
    InFlight {
        retry_after_ms: Ms,
        attempt: u32,
    },
    Mismatch {
        stored: Fp,
    },
    /// `complete`, `fail` or `release` returned `Ok`.
    Done,
    /// `extend` returned `Ok`; the lease's new deadline.
    Extended {
        deadline: Ms,
    },
    Stale(Stale),
    /// `Error::InvalidConfig` (bad per-call options or `extend` duration).
    InvalidConfig,
    Removed(bool),
    Got(Option<EntryView>),
    Swept(usize),
    Advanced,
    Reopened,
    /// Anything the model never answers: an unexpected error, a token that
    /// did not increase, a token the driver never saw.
    Unexpected(String),
}

impl From<ClaimOut> for Outcome {
    fn from(c: ClaimOut) -> Outcome {
        match c {
            ClaimOut::Acquired { id, attempt, recovered, deadline } => {
                Outcome::Acquired { lease: id, attempt, recovered, deadline }
            }
            ClaimOut::Replay(r) => Outcome::Replay(r),
            ClaimOut::InFlight { retry_after_ms, attempt } => {
                Outcome::InFlight { retry_after_ms, attempt }
            }
            ClaimOut::Mismatch { stored } => Outcome::Mismatch { stored },
        }
    }
}

/// The bytes of response/payload number `n` (0 is the empty response).
pub fn body(n: u8) -> Vec<u8> {
    if n == 0 { Vec::new() } else { format!("body-{n}").into_bytes() }
}

/// The fingerprint of number `n`.
pub fn fingerprint(n: Fp) -> Fingerprint {
    Fingerprint::of(format!("request-{n}"))
}

/// The key of number `n`.
pub fn key(n: u8) -> Key {
    Key::new(NS, format!("k{}", n % KEYS)).expect("valid key")
}

/// Picks lease `sel` among `n` acquired: 0 is the latest.
pub fn pick(sel: usize, n: usize) -> Option<usize> {
    (n > 0).then(|| n - 1 - sel % n)
}

/// The reference model: one record slot per key, the mock time, the boot
/// epoch and the leases handed out.
#[derive(Debug, Clone)]
pub struct Model {
    now: Ms,
    boot: u64,
    records: [Option<rules::Rec>; KEYS as usize],
    /// The key of each lease, by lease id.
    leases: Vec<u8>,
    /// The boot (open) that issued each lease, by lease id.
    lease_boots: Vec<u64>,
}

impl Default for Model {
    fn default() -> Self {
        Model::new()
    }
}

impl Model {
    /// An empty store at [`T0`], boot 1.
    pub fn new() -> Model {
        Model {
            now: T0,
            boot: 1,
            records: Default::default(),
            leases: Vec::new(),
            lease_boots: Vec::new(),
        }
    }

    /// Leases acquired so far.
    pub fn lease_count(&self) -> usize {
        self.leases.len()
    }

    /// The lease id an op's `lease` selector addresses now.
    pub fn resolve(&self, sel: usize) -> Option<usize> {
        pick(sel, self.leases.len())
    }

    /// The key (number) of lease `id`.
    pub fn lease_key(&self, id: usize) -> u8 {
        self.leases[id]
    }

    /// Applies `op` and returns what the store must answer.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        let now = self.now;
        match op {
            Op::Claim { key, fp, lease_ms, retention_ms } => {
                let lease = lease_ms.unwrap_or(LEASE_MS);
                let retention = retention_ms.unwrap_or(RETENTION_MS);
                // "Zero durations and a lease longer than the retention are
                // refused" (per-call options; the default policy was checked
                // at open).
                if (lease_ms.is_some() || retention_ms.is_some())
                    && (lease == 0 || retention == 0 || lease > retention)
                {
                    return Outcome::InvalidConfig;
                }
                self.claim(*key, *fp, lease, retention)
            }
            Op::Wait { key, fp, .. } => self.claim(*key, *fp, LEASE_MS, RETENTION_MS),
            Op::Complete { lease, body: b } => self.end(*lease, rules::End::Complete(body(*b))),
            Op::FailRetryable { lease } => self.end(*lease, rules::End::FailRetryable),
            Op::FailTerminal { lease, body: b } => {
                self.end(*lease, rules::End::FailTerminal(body(*b)))
            }
            Op::Release { lease } => self.end(*lease, rules::End::Release),
            Op::Extend { lease, by_ms } => {
                let Some(i) = self.resolve(*lease) else { return Outcome::NoLease };
                if *by_ms != 0 && self.lease_boots[i] != self.boot {
                    return Outcome::Stale(Stale::OtherStore);
                }
                let slot = &mut self.records[usize::from(self.leases[i])];
                match rules::extend(slot, i as LeaseId, now, *by_ms) {
                    Ok(deadline) => Outcome::Extended { deadline },
                    Err(rules::ExtendErr::Invalid) => Outcome::InvalidConfig,
                    Err(rules::ExtendErr::Stale(s)) => Outcome::Stale(s),
                }
            }
            Op::Remove { key } => {
                let slot = &mut self.records[usize::from(key % KEYS)];
                let was_live = rules::live(slot, now).is_some();
                *slot = None;
                Outcome::Removed(was_live)
            }
            Op::Get { key } => {
                Outcome::Got(rules::view(&self.records[usize::from(key % KEYS)], now, self.boot))
            }
            Op::Advance { ms } => {
                self.now += ms;
                Outcome::Advanced
            }
            Op::Sweep => {
                let mut removed = 0;
                for slot in &mut self.records {
                    if slot.is_some() && rules::live(slot, now).is_none() {
                        *slot = None;
                        removed += 1;
                    }
                }
                Outcome::Swept(removed)
            }
            Op::Reopen { .. } => {
                // Records survive; claims of the old boot become orphans.
                self.boot += 1;
                Outcome::Reopened
            }
        }
    }

    fn claim(&mut self, key: u8, fp: Option<Fp>, lease: Ms, retention: Ms) -> Outcome {
        let key = key % KEYS;
        let args = rules::ClaimArgs { now: self.now, boot: self.boot, fp, lease, retention };
        let id = self.leases.len() as LeaseId;
        let out = rules::claim(&mut self.records[usize::from(key)], &args, id);
        if matches!(out, ClaimOut::Acquired { .. }) {
            self.leases.push(key);
            self.lease_boots.push(self.boot);
        }
        out.into()
    }

    fn end(&mut self, sel: usize, how: rules::End) -> Outcome {
        let Some(i) = self.resolve(sel) else { return Outcome::NoLease };
        if self.lease_boots[i] != self.boot {
            return Outcome::Stale(Stale::OtherStore);
        }
        let slot = &mut self.records[usize::from(self.leases[i])];
        match rules::end(slot, i as LeaseId, self.now, how) {
            Ok(()) => Outcome::Done,
            Err(s) => Outcome::Stale(s),
        }
    }
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
                self.leases.push(lease);
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
