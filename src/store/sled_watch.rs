//! Watching sled while the store runs: the audits that count its records
//! against its marker, the first audit after open, and META's flags that
//! carry what they found across restarts (docs/DESIGN.md, "The sled marker
//! and the audit"). The checks at open are in `sled_check`.
//!
//! After a clean close (`SLED_RECOUNT` clear) the first audit *checks* the
//! count, and until it has, sled is left exactly as the close left it: the
//! applier waits, and a key found nowhere waits too (it may be one sled
//! lost). Only then is `SLED_RECOUNT` set, so that a process that dies
//! before the check leaves a store the next open checks again. After an
//! unclean end the first audit *rebuilds* the count instead (sled's batches
//! are not atomic across its own I/O errors) and nothing waits.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::shared::Shared;
use super::sled_check;
use crate::error::Result;
use crate::format::meta::{FLAG_SLED_LOST, FLAG_SLED_RECOUNT};
use crate::storage::Audited;

impl Shared {
    /// Whether the first audit after open has ended (or none was needed).
    pub fn audit_done(&self) -> bool {
        self.audit_ended.load(Ordering::Acquire)
    }

    /// Waits until the first audit after open has ended or the store is
    /// poisoned (the audit may have found sled damaged); `Err(Closed)` if
    /// it closes meanwhile.
    pub fn wait_audit(&self) -> Result<()> {
        let mut done = self.audited.lock();
        while !*done && !self.poison.is_set() {
            self.check_open()?;
            let _ = self.audited_cv.wait_for(&mut done, Duration::from_millis(50));
        }
        drop(done);
        self.check_open()
    }

    /// Ends the first audit after open, whatever it found (a loss has
    /// poisoned the store first): from now on sled may change, so META says
    /// that an end without a clean close must rebuild the count. If META
    /// cannot say so, the store is poisoned rather than let sled change.
    /// Wakes the applier and every waiting claim.
    pub fn end_audit(&self) {
        let mut done = self.audited.lock();
        if !*done {
            if let Err(e) = self.set_meta_flag(FLAG_SLED_RECOUNT) {
                self.poison.set(format!("marking the store open in META: {e}"));
            }
            *done = true;
            self.audit_ended.store(true, Ordering::Release);
        }
        drop(done);
        self.audited_cv.notify_all();
    }

    /// Audits sled's records (see `Storage::audit`), rebuilding the marker's
    /// count instead of checking it while a rebuild is pending (the last
    /// session did not close cleanly). When the count disagrees with the
    /// marker (`Audited::matches` is false) sled lost records: the store
    /// refuses to serve from then on and every later open refuses too.
    pub fn audit(
        &self,
        each: impl FnMut(&[u8], &[u8]),
        keep_going: impl FnMut() -> bool,
    ) -> Result<Option<Audited>> {
        let rebase = self.rebase_pending.load(Ordering::Acquire);
        let audited = self.storage.audit(each, keep_going, rebase)?;
        if audited.is_some() && rebase {
            self.rebase_pending.store(false, Ordering::Release);
        }
        if let Some(a) = audited.filter(|a| a.rebuilt_from.is_some()) {
            let was = a.rebuilt_from.unwrap_or_default();
            tracing::warn!(
                target: "idemkv",
                marker = was,
                found = a.scanned,
                "sled's record count differed after an unclean end and was rebuilt"
            );
            *self.rebuilt.lock() = Some((was, a.scanned));
        }
        if let Some(a) = audited.filter(|a| !a.matches()) {
            self.sled_lost(&a);
        }
        Ok(audited)
    }

    /// sled lost records: poison the store, refuse absent answers, and
    /// record it in META (as well as it can) so that every open refuses.
    fn sled_lost(&self, audited: &Audited) {
        let err = sled_check::audit_loss(audited);
        tracing::error!(target: "idemkv", error = %err, "sled lost records");
        self.poison.set(err.to_string());
        self.sled_damaged.store(true, Ordering::Release);
        if let Err(e) = self.set_meta_flag(FLAG_SLED_LOST) {
            tracing::error!(target: "idemkv", error = %e, "recording the loss in META failed");
        }
        self.journal.wake_waiters();
    }

    /// After a close's final checkpoint: clears `SLED_RECOUNT`, so that the
    /// next open checks sled's count. `rebuilt` must say whether the count
    /// had been rebuilt (if it had to be) *before* that checkpoint synced
    /// sled: a marker rewritten after the sync is not durable yet.
    pub fn close_cleanly(&self, rebuilt: bool) -> Result<()> {
        if !rebuilt || !self.audit_done() {
            return Ok(());
        }
        let mut meta = self.meta.lock();
        let mut m = meta.current;
        m.flags &= !FLAG_SLED_RECOUNT;
        meta.store(m)
    }

    /// Sets `flag` in META.
    fn set_meta_flag(&self, flag: u32) -> Result<()> {
        let mut meta = self.meta.lock();
        let mut m = meta.current;
        if m.flags & flag == flag {
            return Ok(());
        }
        m.flags |= flag;
        meta.store(m)
    }

    /// The error for an absent answer once sled is known to have lost
    /// records, or while the first audit could not finish (the store was
    /// poisoned first): "absent" may be a lost key.
    pub fn absent_unsure(&self) -> Result<()> {
        if self.sled_damaged.load(Ordering::Acquire) || !self.audit_done() {
            self.poison.check()?;
        }
        Ok(())
    }
}
