//! Maintenance calls of the store: sweeping, flushing, checkpointing,
//! verifying — and the hidden test hooks that reach into the same machinery.

use std::sync::atomic::Ordering;

use super::{Store, background, sled_check};
use crate::error::{Error, Result};
use crate::key::Key;

/// What one `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records read.
    pub records: u64,
    /// Keys whose record failed its checks, with the reason.
    pub corrupt: Vec<(Vec<u8>, String)>,
    /// The number of records sled should hold (its marker, kept with every
    /// write), when the store keeps one.
    pub expected_records: Option<u64>,
    /// Set when `records` disagrees with `expected_records`: sled's files
    /// were damaged and completed keys may be forgotten. Says what was lost
    /// and how to recover (the lost keys themselves cannot be named).
    pub lost: Option<String>,
    /// Set when, after an unclean end (a crash, a full disk), sled's count
    /// had to be rebuilt and changed: a batch sled applied only in part, or
    /// damage the count cannot tell from one. The store serves on;
    /// `idemkv verify --strict` fails on it.
    pub rebuilt: Option<String>,
}

impl VerifyReport {
    /// True when every record passed its checks and none is missing.
    pub fn is_ok(&self) -> bool {
        self.corrupt.is_empty() && self.lost.is_none()
    }
}

impl Store {
    /// Removes every expired record now (the background sweeper does the same
    /// every `sweep_interval`). Returns how many were removed.
    pub fn sweep(&self) -> Result<usize> {
        self.shared().check_writable()?;
        background::sweep(self.shared())
    }

    /// Makes every transition so far durable, whatever the durability mode.
    pub fn flush(&self) -> Result<()> {
        self.shared().check_writable()?;
        self.shared().journal.flush()
    }

    /// Writes everything to the journal, applies it to sled, makes sled
    /// durable and deletes the journal segments it covers.
    pub fn checkpoint(&self) -> Result<()> {
        self.shared().check_writable()?;
        self.catch_up()?;
        self.shared().checkpoint().map(drop)
    }

    /// Checks every stored record's encoding and checksum, and counts them
    /// against the count sled should hold (see [`VerifyReport::lost`]).
    ///
    /// Blocks for a scan of every record (≈ 2 s per million here), a page
    /// of 4,096 at a time; writes to sled go on between pages. A count that
    /// disagrees with the marker also poisons the store and makes every
    /// later open refuse (docs/RELIABILITY.md, "Damaged or missing sled
    /// data"). Fails only when the scan itself fails (`Error::Storage`), or
    /// with `Error::Closed` once the store closes; damage is reported in the
    /// [`VerifyReport`].
    pub fn verify(&self) -> Result<VerifyReport> {
        let s = self.shared();
        s.check_open()?;
        let mut report = VerifyReport::default();
        // Like `list` and `export`: see every transition made before the call
        // — unless the audit after open already found sled short and
        // poisoned the store: that is the report.
        if let Err(e) = self.catch_up() {
            if !s.sled_damaged.load(Ordering::Acquire) {
                return Err(e);
            }
            report.lost = Some(e.to_string());
            return Ok(report);
        }
        let audited = s.audit(
            |raw, bytes| {
                if let Err(e) = crate::format::record::decode(raw, bytes) {
                    let reason = match e {
                        Error::Corrupt { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    report.corrupt.push((raw.to_vec(), reason));
                }
            },
            || !s.closed.load(Ordering::Acquire),
        );
        let audited = audited?.ok_or(Error::Closed)?;
        report.records = audited.scanned;
        report.expected_records = audited.expected;
        if let Some((was, found)) = *s.rebuilt.lock() {
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

    #[doc(hidden)]
    /// Test hook: the number of distinct keys the expiry index names.
    pub fn __index_len(&self) -> usize {
        self.shared().storage.index_len().unwrap_or(0)
    }

    #[doc(hidden)]
    /// Test hook: whether every shard's key filter is built (the background
    /// build after open has finished).
    pub fn __key_filters_ready(&self) -> bool {
        self.shared().shards.iter().all(|shard| shard.state.lock().filter.is_some())
    }

    #[doc(hidden)]
    /// Test hook: rebuilds every shard's key filter now, from a scan of sled,
    /// concurrently with other calls (as the background rebuild does).
    pub fn __rebuild_key_filters(&self) -> Result<bool> {
        background::build_filters(self.shared())
    }

    #[doc(hidden)]
    /// Test hook: overwrites a stored record with raw bytes, bypassing the
    /// codec and the journal, to test corruption handling.
    pub fn __corrupt_record(&self, key: &Key, bytes: &[u8]) -> Result<()> {
        let s = self.shared();
        self.checkpoint()?;
        let raw = s.hashed(key);
        let mut st = s.shards[s.shard_of(&raw)].state.lock();
        st.cache.remove(&raw);
        s.storage.put_raw_record(&raw.raw, bytes)
    }
}
