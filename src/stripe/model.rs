//! The pure-stripe model check (the `stripe_model` fuzz target and
//! `tests/stripe_model.rs`): drives one [`StripeState`] the way the embedded
//! backend does — lookups with sled reads outside the lock, some of them
//! raced by writes; claims and fenced transitions decided by the core rules;
//! the applier advancing the watermark at random; retirement, cache
//! eviction, key-filter builds and per-key waiters — against a reference
//! that is a plain map of each key's latest record. No disk, no threads.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};

use event_listener::EventListener;

use super::{HashedKey, KeyFilter, Lookup, StripeState};
use crate::clock::Now;
use crate::core::{self, ClaimDecision, ClaimParams, Record, State};
use crate::format::record;

/// Keys the sequences use: few, so that they collide and evict each other.
const KEYS: u8 = 12;

/// A journal entry: `(seq, raw key, encoded record or delete)`.
type Entry = (u64, Arc<[u8]>, Option<Arc<[u8]>>);

/// The stripe, and the engine below it simulated in memory.
struct Sim {
    st: StripeState,
    /// The journal.
    journal: Vec<Entry>,
    /// Entries applied to `sled` so far (the watermark is their last seq).
    applied: usize,
    sled: HashMap<Arc<[u8]>, Arc<[u8]>>,
    /// A filter build under way: sled's keys when it began.
    building: Option<Vec<u64>>,
}

fn hashed(k: u8) -> HashedKey {
    // Any fixed mix: the model only needs a stable hash per key.
    let hash = (u64::from(k) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    HashedKey { hash, raw: Arc::from(&[b'k', k][..]) }
}

impl Sim {
    fn watermark(&self) -> u64 {
        self.applied.checked_sub(1).map_or(0, |i| self.journal[i].0)
    }

    fn read_sled(&self, key: &HashedKey) -> Result<Option<Arc<Record>>, String> {
        self.sled
            .get(&key.raw)
            .map(|b| record::decode(&key.raw, b).map(Arc::new).map_err(|e| e.to_string()))
            .transpose()
    }

    /// A lookup as the backend does it; `race` writes `other` between the
    /// sled read and the fill, as a concurrent caller could.
    /// Returns the record and whether the racing write happened (only
    /// when sled was read).
    fn lookup(
        &mut self,
        key: &HashedKey,
        race: Option<(&HashedKey, Record)>,
    ) -> Result<(Option<Arc<Record>>, bool), String> {
        let mut race = race;
        let mut raced = false;
        for _ in 0..4 {
            let epoch = match self.st.lookup(key, self.watermark()) {
                Lookup::Found(r, _) => return Ok((r, raced)),
                Lookup::NeedRead { epoch } => epoch,
            };
            let read = self.read_sled(key)?;
            if let Some((other, r)) = race.take() {
                self.write_quietly(other, Some(r));
                raced = true;
            }
            if self.st.fill(key, epoch, read.as_ref()) {
                return Ok((read, raced));
            }
        }
        Err("a lookup kept needing sled".into())
    }

    /// Writes `new` and takes the key's waiters (woken when dropped).
    fn write(&mut self, key: &HashedKey, new: Option<Record>) -> Option<super::Wake> {
        self.write_waking(key, new, true)
    }

    /// Writes `new` without ending the key's claim (its waiters stay).
    fn write_quietly(&mut self, key: &HashedKey, new: Option<Record>) {
        let woken = self.write_waking(key, new, false);
        debug_assert!(woken.is_none());
    }

    fn write_waking(
        &mut self,
        key: &HashedKey,
        new: Option<Record>,
        wake: bool,
    ) -> Option<super::Wake> {
        let staged = self.st.stage(key, new);
        let seq = self.journal.last().map_or(1, |e| e.0 + 1);
        let bytes = staged.mutation.put.as_ref().map(|(b, _)| b.clone());
        self.journal.push((seq, key.raw.clone(), bytes));
        let applied = self.watermark();
        self.st.commit(key, staged.record, seq, applied, wake)
    }

    fn apply(&mut self, n: usize) {
        let until = (self.applied + n).min(self.journal.len());
        for (_, key, put) in &self.journal[self.applied..until] {
            match put {
                Some(b) => self.sled.insert(key.clone(), b.clone()),
                None => self.sled.remove(key),
            };
        }
        self.applied = until;
    }
}

/// Runs the operations `data` encodes; `Err` describes the first divergence
/// from the reference.
pub fn check(data: &[u8]) -> Result<(), String> {
    let mut sim = Sim {
        // Room for a few records only: evictions happen all the time.
        st: StripeState::new(1200),
        journal: Vec::new(),
        applied: 0,
        sled: HashMap::new(),
        building: None,
    };
    let mut model: BTreeMap<u8, Record> = BTreeMap::new();
    let mut now: u64 = 1_000;
    let mut next_token: u64 = 1;
    let mut waiting: Vec<(u8, EventListener)> = Vec::new();
    let mut ops = data.chunks_exact(3);
    for (i, op) in ops.by_ref().enumerate() {
        let (code, k, arg) = (op[0] % 12, op[1] % KEYS, op[2]);
        let key = hashed(k);
        let fail = |what: String| format!("op {i} ({code} on key {k}): {what}");
        // With the high bit of `arg`, a key of the stripe — this one, or
        // another — is written while this op's sled read runs (outside the
        // stripe lock): a read of this key that raced is stale.
        let other = if arg & 0x40 != 0 { k } else { (k + 1 + arg % (KEYS - 1)) % KEYS };
        let race = (arg & 0x80 != 0)
            .then(|| model.get(&other))
            .flatten()
            .map(|r| (hashed(other), Record { created_at: r.created_at + 1, ..r.clone() }));
        // The record every op starts from: the stripe's answer must be the
        // model's (expiry aside: both see the same stored record).
        let (seen, raced) =
            sim.lookup(&key, race.as_ref().map(|(h, r)| (h, r.clone()))).map_err(&fail)?;
        if let Some((_, r)) = race.filter(|_| raced) {
            model.insert(other, r);
        }
        let want = model.get(&k);
        if seen.as_deref() != want {
            return Err(fail(format!("stripe read {seen:?}, the model holds {want:?}")));
        }
        let current = seen.as_deref();
        let t = Now::at(now);
        let mut ended = false;
        match code {
            0 | 1 => {
                let params = ClaimParams {
                    now: t,
                    boot: 1,
                    fingerprint: None,
                    lease_ms: 1 + u64::from(arg % 64),
                    retention_ms: 1 + u64::from(arg) * 3,
                };
                match core::claim(current, &params) {
                    ClaimDecision::Acquire { mut record, .. } => {
                        core::stamp_token(&mut record, next_token);
                        next_token += 1;
                        model.insert(k, record.clone());
                        sim.write_quietly(&key, Some(record));
                    }
                    ClaimDecision::InFlight { .. } if code == 1 => {
                        waiting.push((k, sim.st.waiters.listen(&key)));
                    }
                    _ => {}
                }
            }
            2..=5 => {
                let token = match current.map(|r| &r.state) {
                    Some(State::InProgress { token, .. }) => *token,
                    _ => next_token.saturating_sub(1),
                };
                let format =
                    if arg & 1 == 0 { core::BodyFormat::Bytes } else { core::BodyFormat::Json };
                let next = match code {
                    2 => core::complete(current, token, t, &[arg; 3], format),
                    3 => core::fail_retryable(current, token, t),
                    4 if arg & 1 == 0 => core::release(current, token, t),
                    4 => core::abandon(current, token, t),
                    _ => core::fail_terminal(current, token, t, &[arg], format),
                };
                if let Ok(r) = next {
                    model.insert(k, r.clone());
                    if let Some(w) = sim.write(&key, Some(r)) {
                        w.notify();
                    }
                    ended = true;
                }
            }
            6 if current.is_some() => {
                model.remove(&k);
                if let Some(w) = sim.write(&key, None) {
                    w.notify();
                }
                ended = true;
            }
            7 => sim.apply(usize::from(arg % 8)),
            8 => sim.st.retire(sim.watermark()),
            9 => now += u64::from(arg),
            10 if sim.building.is_none() => {
                // The scan sees sled as it is now: the worst case, every key
                // applied later must come from the pending or written lists.
                let mut hashes = sim.st.begin_filter_build();
                hashes.extend(sim.sled.keys().map(|raw| hashed(raw[1]).hash));
                sim.building = Some(hashes);
            }
            11 => {
                if let Some(hashes) = sim.building.take() {
                    let mut f = KeyFilter::with_capacity(2 * hashes.len() as u64);
                    for h in hashes {
                        f.insert(h);
                    }
                    sim.st.end_filter_build(Some(f));
                }
            }
            _ => {}
        }
        if ended {
            // Exactly this key's waiters wake.
            let (mine, others): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|(w, _)| *w == k);
            for (_, mut l) in mine {
                if !notified(&mut l) {
                    return Err(fail("a waiter of the key was not woken".into()));
                }
            }
            waiting = others;
        }
        for (w, l) in &mut waiting {
            if notified(l) {
                return Err(fail(format!("a waiter of key {w} woke for key {k}")));
            }
        }
    }
    // Drained: every key reads back as the model holds it.
    sim.apply(usize::MAX / 2);
    for k in 0..KEYS {
        let (seen, _) = sim.lookup(&hashed(k), None)?;
        if seen.as_deref() != model.get(&k) {
            return Err(format!("at the end, key {k}: stripe {seen:?}, model {:?}", model.get(&k)));
        }
    }
    Ok(())
}

/// Whether `l` was notified, without blocking or unregistering it.
fn notified(l: &mut EventListener) -> bool {
    Pin::new(l).poll(&mut Context::from_waker(Waker::noop())).is_ready()
}
