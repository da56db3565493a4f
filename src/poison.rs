//! The store's poison flag: set after an fsync failure or a background-thread
//! panic, after which every write is refused until the store is reopened.
//!
//! Retrying a failed fsync is unsafe: the kernel may have dropped the dirty
//! pages and report success the second time, so the only safe recovery is to
//! reopen and replay what the journal really holds.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};

#[derive(Debug, Default)]
pub(crate) struct Poison {
    set: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Poison {
    /// Poisons the store; the first reason is kept.
    pub fn set(&self, reason: impl Into<String>) {
        let mut r = self.reason.lock();
        if r.is_none() {
            *r = Some(reason.into());
        }
        self.set.store(true, Ordering::SeqCst);
    }

    #[inline]
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// `Err(Error::Poisoned)` once poisoned.
    #[inline]
    pub fn check(&self) -> Result<()> {
        if self.is_set() { Err(self.error()) } else { Ok(()) }
    }

    pub fn error(&self) -> Error {
        Error::Poisoned { reason: self.reason.lock().clone().unwrap_or_default() }
    }
}
