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

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::Engine;
use super::sled_check;
use super::storage::Audited;
use crate::core::VerifyReport;
use crate::error::{Error, Result};
use crate::format::meta::{FLAG_SLED_LOST, FLAG_SLED_RECOUNT};

/// What the audits found, and the first one's progress.
pub(super) struct AuditState {
    /// Set once the first audit of sled after open has ended (see
    /// `Engine::end_audit`): until then a key found nowhere may be one sled
    /// lost, so claims and reads of such keys wait for it.
    audited: Mutex<bool>,
    /// The same, read without a lock on the claim path.
    ended: AtomicBool,
    audited_cv: Condvar,
    /// An audit found sled's records disagreeing with its marker: no absent
    /// answer can be trusted any more.
    pub damaged: AtomicBool,
    /// The last session did not close cleanly: the next audit rebuilds the
    /// marker's count from the records instead of checking it.
    pub rebase_pending: AtomicBool,
    /// What the rebuild of sled's count after an unclean end changed, if it
    /// changed it: (the marker's count, the records found). Reported by
    /// `verify` (a partly applied batch, or damage the count cannot tell).
    pub rebuilt: Mutex<Option<(u64, u64)>>,
}

impl AuditState {
    /// `check`: the first audit must check a count open did not take itself
    /// (until it has, absent keys wait). `rebase`: it rebuilds the count.
    pub fn new(check: bool, rebase: bool) -> AuditState {
        AuditState {
            audited: Mutex::new(!check),
            ended: AtomicBool::new(!check),
            audited_cv: Condvar::new(),
            damaged: AtomicBool::new(false),
            rebase_pending: AtomicBool::new(rebase),
            rebuilt: Mutex::new(None),
        }
    }
}

impl Engine {
    /// Whether the first audit after open has ended (or none was needed).
    #[inline]
    pub fn audit_done(&self) -> bool {
        self.audit.ended.load(Ordering::Acquire)
    }

    /// Whether an audit found sled short of records.
    pub fn sled_damaged(&self) -> bool {
        self.audit.damaged.load(Ordering::Acquire)
    }

    /// Whether the count of sled's records is still to be rebuilt (the last
    /// session ended uncleanly and no audit finished since).
    pub fn rebase_pending(&self) -> bool {
        self.audit.rebase_pending.load(Ordering::Acquire)
    }

    /// What the rebuild of sled's count after an unclean end changed:
    /// (the marker's count, the records found).
    pub fn rebuilt(&self) -> Option<(u64, u64)> {
        *self.audit.rebuilt.lock()
    }

    /// Waits until the first audit has ended or the store is poisoned.
    pub(super) fn wait_audit_quietly(&self) {
        let mut done = self.audit.audited.lock();
        while !*done && !self.poison.is_set() {
            let _ = self.audit.audited_cv.wait_for(&mut done, Duration::from_millis(50));
        }
    }

    /// Waits until the first audit after open has ended or the store is
    /// poisoned (the audit may have found sled damaged); `Err(Closed)` if
    /// it closes meanwhile.
    pub fn wait_audit(&self) -> Result<()> {
        let mut done = self.audit.audited.lock();
        while !*done && !self.poison.is_set() {
            self.check_open()?;
            let _ = self.audit.audited_cv.wait_for(&mut done, Duration::from_millis(50));
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
        let mut done = self.audit.audited.lock();
        if !*done {
            if let Err(e) = self.set_meta_flag(FLAG_SLED_RECOUNT) {
                self.poison.set(format!("marking the store open in META: {e}"));
            }
            *done = true;
            self.audit.ended.store(true, Ordering::Release);
        }
        drop(done);
        self.audit.audited_cv.notify_all();
    }

    /// Audits sled's records (see `Storage::audit`), rebuilding the marker's
    /// count instead of checking it while a rebuild is pending (the last
    /// session did not close cleanly). When the count disagrees with the
    /// marker (`Audited::matches` is false) sled lost records: the store
    /// refuses to serve from then on and every later open refuses too.
    fn audit(
        &self,
        each: impl FnMut(&[u8], &[u8]),
        keep_going: impl FnMut() -> bool,
    ) -> Result<Option<Audited>> {
        let rebase = self.rebase_pending();
        let audited = self.storage.audit(each, keep_going, rebase)?;
        if audited.is_some() && rebase {
            self.audit.rebase_pending.store(false, Ordering::Release);
        }
        if let Some(a) = audited.filter(|a| a.rebuilt_from.is_some()) {
            let was = a.rebuilt_from.unwrap_or_default();
            tracing::warn!(
                target: "idemkv",
                marker = was,
                found = a.scanned,
                "sled's record count differed after an unclean end and was rebuilt"
            );
            *self.audit.rebuilt.lock() = Some((was, a.scanned));
        }
        if let Some(a) = audited.filter(|a| !a.matches()) {
            self.sled_lost(&a);
        }
        Ok(audited)
    }

    /// Audits sled (see `audit`), calling `each` with every record's key.
    /// Returns false if `keep_going` stopped it; fails with the loss when
    /// the count disagrees with the marker (the store is poisoned then).
    /// Blocks for a scan of every record.
    pub fn audit_keys(
        &self,
        mut each: impl FnMut(&[u8]),
        keep_going: impl FnMut() -> bool,
    ) -> Result<bool> {
        match self.audit(|raw, _| each(raw), keep_going)? {
            Some(a) if !a.matches() => Err(sled_check::audit_loss(&a)),
            other => Ok(other.is_some()),
        }
    }

    /// Checks every stored record's encoding and checksum and counts them
    /// against sled's marker (`Store::verify`). Blocks for a scan of every
    /// record; writes to sled go on between pages.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.check_open()?;
        let mut report = VerifyReport::default();
        // Like `list` and `export`: see every transition made before the call
        // — unless the audit after open already found sled short and
        // poisoned the store: that is the report.
        if let Err(e) = self.catch_up() {
            if !self.sled_damaged() {
                return Err(e);
            }
            report.lost = Some(e.to_string());
            return Ok(report);
        }
        let audited = self.audit(
            |raw, bytes| {
                if let Err(e) = crate::format::record::decode(raw, bytes) {
                    let reason = match e {
                        Error::Corrupt { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    report.corrupt.push((raw.to_vec(), reason));
                }
            },
            || !self.is_closed(),
        );
        let audited = audited?.ok_or(Error::Closed)?;
        report.records = audited.scanned;
        report.expected_records = audited.expected;
        if let Some((was, found)) = self.rebuilt() {
            report.rebuilt = Some(format!(
                "after an unclean end sled's marker counted {was} record(s) and sled held \
                 {found}; the count was rebuilt: a batch sled applied only in part (a full \
                 disk), or records lost that cannot be told apart (docs/RELIABILITY.md)"
            ));
        }
        if !audited.matches() {
            report.lost = Some(sled_check::audit_loss(&audited).to_string());
        }
        Ok(report)
    }

    /// sled lost records: poison the store, refuse absent answers, and
    /// record it in META (as well as it can) so that every open refuses.
    fn sled_lost(&self, audited: &Audited) {
        let err = sled_check::audit_loss(audited);
        tracing::error!(target: "idemkv", error = %err, "sled lost records");
        self.poison.set(err.to_string());
        self.audit.damaged.store(true, Ordering::Release);
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
        if self.sled_damaged() || !self.audit_done() {
            self.poison.check()?;
        }
        Ok(())
    }
}
