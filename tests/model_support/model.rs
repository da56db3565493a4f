//! The reference model: what the store must answer to each operation.

use super::{ClaimOut, KEYS, LEASE_MS, LeaseId, Ms, Op, Outcome, RETENTION_MS, Stale, T0};
use super::{Fp, body, json_bytes, keeps_guard, pick, rules};

/// Completions remembered for the `retry_after` estimate.
const WINDOW: usize = 256;
/// The 90th percentile is recomputed, when asked for, at most once per this
/// many new completions…
const REFRESH: u32 = 16;
/// …once more than this many are remembered (before: whenever one is new).
const EXACT_UNTIL: usize = 64;

/// The namespace's recent claim-to-completion times, as the store keeps
/// them for `Claim::InFlight::retry_after` (one process, one open: a reopen
/// forgets them). `Claim::InFlight` documents the rule; the window, the
/// refresh cadence and the nearest-rank percentile are those of
/// src/metrics/estimate.rs, so that the model predicts `retry_after` to
/// the millisecond.
#[derive(Debug, Clone, Default)]
struct Times {
    samples: Vec<Ms>,
    next: usize,
    since_refresh: u32,
    p90: Option<Ms>,
}

impl Times {
    /// A `complete` that took `ms` from its claim.
    fn record(&mut self, ms: Ms) {
        if self.samples.len() < WINDOW {
            self.samples.push(ms);
        } else {
            self.samples[self.next] = ms;
        }
        self.next = (self.next + 1) % WINDOW;
        self.since_refresh += 1;
    }

    /// The p90 as an in-flight answer sees it (computed when asked for).
    fn p90(&mut self) -> Option<Ms> {
        let n = self.samples.len();
        if self.since_refresh > 0
            && (self.p90.is_none() || n <= EXACT_UNTIL || self.since_refresh >= REFRESH)
        {
            self.since_refresh = 0;
            let mut sorted = self.samples.clone();
            sorted.sort_unstable();
            self.p90 = Some(sorted[(n * 9).div_ceil(10) - 1]);
        }
        self.p90
    }

    /// `retry_after` for a holder that has run `elapsed` ms with
    /// `lease_left` ms left on its lease: the p90 minus `elapsed` (a
    /// quarter of the p90 once it ran longer), at least 1 ms, at most the
    /// lease left; before the first completion, the lease left.
    fn retry_after(&mut self, elapsed: Ms, lease_left: Ms) -> Ms {
        let Some(p90) = self.p90() else { return lease_left };
        let guess = p90.checked_sub(elapsed).filter(|&left| left > 0).unwrap_or(p90 / 4);
        guess.max(1).min(lease_left.max(1))
    }
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
    /// When each lease was acquired, by lease id.
    lease_claimed_at: Vec<Ms>,
    /// Whether the driver still keeps the lease's own guard (armed), by
    /// lease id (see [`keeps_guard`]).
    kept: Vec<bool>,
    /// Recent processing times (this open).
    times: Times,
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
            lease_claimed_at: Vec::new(),
            kept: Vec::new(),
            times: Times::default(),
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

    /// Whether the lease `sel` addresses holds its key now (an `Abandon` of
    /// it would take effect).
    pub fn holds(&self, sel: usize) -> bool {
        self.resolve(sel).is_some_and(|i| {
            self.lease_boots[i] == self.boot
                && rules::check_holder(
                    &self.records[usize::from(self.leases[i])],
                    i as LeaseId,
                    self.now,
                )
                .is_ok()
        })
    }

    /// How many guards the driver keeps whose lease holds its key now.
    pub fn kept_holders(&self) -> usize {
        (0..self.leases.len())
            .filter(|&i| {
                self.kept[i]
                    && rules::check_holder(
                        &self.records[usize::from(self.leases[i])],
                        i as LeaseId,
                        self.now,
                    )
                    .is_ok()
            })
            .count()
    }

    /// Whether `retry_after` is an estimate now (a completion seen since
    /// the store was opened) rather than the lease left.
    pub fn estimating(&self) -> bool {
        !self.times.samples.is_empty()
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
            Op::CompleteJson { lease, value } => {
                self.end(*lease, rules::End::CompleteJson(json_bytes(*value)))
            }
            Op::Abandon { lease, guard } => {
                let Some(i) = self.resolve(*lease) else { return Outcome::NoLease };
                if *guard && self.kept[i] {
                    // The claim's own guard is dropped.
                    self.kept[i] = false;
                } else if *guard && self.lease_boots[i] != self.boot {
                    // `adopt` refuses a lease of an earlier open.
                    return Outcome::Stale(Stale::OtherStore);
                }
                // `Store::abandon` ignores a lease of an earlier open.
                if self.lease_boots[i] == self.boot {
                    rules::abandon(
                        &mut self.records[usize::from(self.leases[i])],
                        i as LeaseId,
                        now,
                    );
                }
                Outcome::Abandoned
            }
            Op::ClaimBatch { items } => Outcome::Batch(
                items
                    .iter()
                    .map(|&(key, fp)| self.claim(key, fp, LEASE_MS, RETENTION_MS))
                    .collect(),
            ),
            Op::CompleteBatch { items, json } => {
                if self.leases.is_empty() {
                    return Outcome::NoLease;
                }
                Outcome::Batch(
                    items
                        .iter()
                        .map(|&(sel, n)| {
                            let how = if *json {
                                rules::End::CompleteJson(json_bytes(n))
                            } else {
                                rules::End::Complete(body(n))
                            };
                            self.end(sel, how)
                        })
                        .collect(),
                )
            }
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
            Op::Reopen { close } => {
                // Dropping the handle (not closing it) leaves the store open
                // until the driver drops the guards it still keeps: each
                // abandons its claim first. After a close they can do
                // nothing.
                for i in 0..self.kept.len() {
                    if !close && self.kept[i] {
                        let slot = &mut self.records[usize::from(self.leases[i])];
                        rules::abandon(slot, i as LeaseId, now);
                    }
                    self.kept[i] = false;
                }
                // Records survive; claims of the old boot become orphans;
                // the processing times are forgotten.
                self.boot += 1;
                self.times = Times::default();
                Outcome::Reopened
            }
        }
    }

    fn claim(&mut self, key: u8, fp: Option<Fp>, lease: Ms, retention: Ms) -> Outcome {
        let key = key % KEYS;
        let args = rules::ClaimArgs { now: self.now, boot: self.boot, fp, lease, retention };
        let id = self.leases.len() as LeaseId;
        let slot = &mut self.records[usize::from(key)];
        match rules::claim(slot, &args, id) {
            out @ ClaimOut::Acquired { .. } => {
                self.leases.push(key);
                self.lease_boots.push(self.boot);
                self.lease_claimed_at.push(self.now);
                self.kept.push(keeps_guard(id));
                out.into()
            }
            ClaimOut::InFlight { retry_after_ms: lease_left, attempt } => {
                let Some(rules::Rec { state: rules::RecState::Held { claimed_at, .. }, .. }) = slot
                else {
                    unreachable!("in flight means held")
                };
                let elapsed = self.now.saturating_sub(*claimed_at);
                Outcome::InFlight {
                    retry_after_ms: self.times.retry_after(elapsed, lease_left),
                    attempt,
                }
            }
            out => out.into(),
        }
    }

    fn end(&mut self, sel: usize, how: rules::End) -> Outcome {
        let Some(i) = self.resolve(sel) else { return Outcome::NoLease };
        // A kept guard is consumed by whatever finishing call it makes.
        self.kept[i] = false;
        if self.lease_boots[i] != self.boot {
            return Outcome::Stale(Stale::OtherStore);
        }
        let completes = matches!(how, rules::End::Complete(_) | rules::End::CompleteJson(_));
        let slot = &mut self.records[usize::from(self.leases[i])];
        match rules::end(slot, i as LeaseId, self.now, how) {
            Ok(()) => {
                if completes {
                    self.times.record(self.now - self.lease_claimed_at[i]);
                }
                Outcome::Done
            }
            Err(s) => Outcome::Stale(s),
        }
    }
}
