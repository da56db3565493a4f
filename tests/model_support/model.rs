//! The reference model: what the store must answer to each operation.

use super::{ClaimOut, KEYS, LEASE_MS, LeaseId, Ms, Op, Outcome, RETENTION_MS, Stale, T0};
use super::{Fp, body, pick, rules};

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
