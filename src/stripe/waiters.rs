//! Per-key waiters: a `wait` on a key in flight sleeps on that key's own
//! event, so a transition wakes only the waiters of its key (a stripe-wide
//! condition variable woke about 1/64 of all waiters on every transition).
//!
//! A slot is made by the first waiter of a key, under the stripe lock and in
//! the same critical section that found the key in flight, so no transition
//! can slip between the check and the registration. The transition that
//! ends the claim takes the slot out, under the lock, and notifies it after
//! releasing the lock. Slots whose waiters all left (timed out) are dropped
//! when the next waiter of the stripe registers, so their number stays
//! bounded by the keys being waited on.

use std::collections::HashMap;

use event_listener::{Event, EventListener};

use super::hashed::{HashedKey, PassThrough};

/// The waiters of one stripe's keys.
#[derive(Default)]
pub(crate) struct Waiters {
    slots: HashMap<HashedKey, Event, PassThrough>,
    /// Slot count beyond which empty slots are dropped.
    prune_at: usize,
}

/// Waiters taken out by a transition; wakes them when notified — or when
/// dropped, so that no path can strand them.
#[must_use = "notify the waiters, after releasing the stripe lock"]
pub(crate) struct Wake(Event);

impl Wake {
    /// Wakes every waiter of the key. Never blocks.
    pub fn notify(self) {
        drop(self);
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        self.0.notify(usize::MAX);
    }
}

impl Waiters {
    /// Registers a waiter of `key`: it is woken when the key's claim ends
    /// (or when the stripe's waiters are all woken, at close).
    pub fn listen(&mut self, key: &HashedKey) -> EventListener {
        if self.slots.len() >= self.prune_at.max(16) {
            self.slots.retain(|_, e| e.total_listeners() > 0);
            self.prune_at = 2 * self.slots.len();
        }
        self.slots.entry(key.clone()).or_default().listen()
    }

    /// Takes the waiters of `key`, if any.
    pub fn take(&mut self, key: &HashedKey) -> Option<Wake> {
        self.slots.remove(key).map(Wake)
    }

    /// Takes every waiter of the stripe (at close).
    pub fn take_all(&mut self) -> Vec<Wake> {
        self.slots.drain().map(|(_, e)| Wake(e)).collect()
    }

    /// Keys with a slot (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use event_listener::Listener;

    use super::*;

    fn key(hash: u64, raw: &[u8]) -> HashedKey {
        HashedKey { hash, raw: Arc::from(raw) }
    }

    #[test]
    fn a_transition_wakes_only_its_own_key() {
        let mut w = Waiters::default();
        let a = w.listen(&key(1, b"a"));
        let b = w.listen(&key(2, b"b"));
        w.take(&key(1, b"a")).expect("a has a waiter").notify();
        assert!(a.wait_deadline(Instant::now() + Duration::from_secs(5)).is_some());
        assert!(b.wait_deadline(Instant::now() + Duration::from_millis(20)).is_none());
    }

    #[test]
    fn slots_of_waiters_that_left_are_pruned() {
        let mut w = Waiters::default();
        for i in 0..1000u64 {
            drop(w.listen(&key(i, &i.to_le_bytes())));
        }
        assert!(w.len() <= 32, "{} slots kept", w.len());
        let kept = w.listen(&key(5000, b"kept"));
        for i in 0..100u64 {
            drop(w.listen(&key(i, &i.to_le_bytes())));
        }
        assert!(w.take(&key(5000, b"kept")).is_some(), "a live waiter's slot stays");
        drop(kept);
    }
}
