//! Maintenance calls of the store: sweeping, flushing, checkpointing,
//! verifying — and the hidden test hooks that reach into the same machinery.

use super::Store;
use crate::core::VerifyReport;
use crate::error::Result;
#[cfg(any(test, feature = "testing"))]
use crate::{embedded::Embedded, error::Error, key::Key};

impl Store {
    /// Removes every expired record now (the background sweeper does the same
    /// every `sweep_interval`). Returns how many were removed.
    ///
    /// # Blocking
    /// I/O in proportion to the expired records: reads the due part of the
    /// expiry index and each record it names from sled, journals each
    /// delete under its key's stripe lock (briefly: claims never wait for a
    /// whole sweep; the sweep waits for the applier once it is 2^16 entries
    /// behind), then makes the deletes durable and waits until sled holds
    /// them (a journal fsync, in either mode) before rewriting the index.
    ///
    /// # Errors
    /// [`Error::Closed`](crate::Error::Closed) or
    /// [`Error::Poisoned`](crate::Error::Poisoned): refused, or stopped
    /// midway; [`Error::Storage`](crate::Error::Storage) when sled's index
    /// cannot be read or rewritten. After an error part of the expired
    /// records may be removed already (expired records are invisible either
    /// way); the next sweep goes on from the index. A record that cannot be
    /// read is left for a later sweep (or `verify`), not an error. Unlike
    /// the background sweeper's, a failure here does not poison the store.
    pub fn sweep(&self) -> Result<usize> {
        self.backend().check_writable()?;
        self.backend().sweep()
    }

    /// Makes every transition so far durable, whatever the durability mode.
    ///
    /// Blocks for a journal fsync (asked for now, even in `Buffered`;
    /// shared with concurrent callers); see [`Store::flush_async`]. Fails
    /// with [`Error::Closed`](crate::Error::Closed) or
    /// [`Error::Poisoned`](crate::Error::Poisoned) — then not every
    /// transition may be durable: reopen to recover what the journal holds.
    pub fn flush(&self) -> Result<()> {
        self.backend().flush()
    }

    /// Writes everything to the journal, applies it to sled, makes sled
    /// durable and deletes the journal segments it covers.
    ///
    /// # Blocking
    /// A journal fsync and a wait for the applier; then each stripe's lock
    /// in turn (to save the counters), one checkpoint at a time (with the
    /// background checkpointer), sled's flush and the fsyncs of sled's
    /// files, META and the journal directory.
    ///
    /// # Errors
    /// [`Error::Closed`](crate::Error::Closed) or
    /// [`Error::Poisoned`](crate::Error::Poisoned): refused.
    /// [`Error::Storage`](crate::Error::Storage) or
    /// [`Error::Io`](crate::Error::Io): the checkpoint failed, **and the
    /// store is poisoned** — every later write fails with `Poisoned`.
    /// Nothing acknowledged is lost (the journal stays the truth): reopen
    /// the directory.
    pub fn checkpoint(&self) -> Result<()> {
        self.backend().checkpoint()
    }

    /// Checks every stored record's encoding and checksum, and counts them
    /// against the count sled should hold (see [`VerifyReport::lost`]). A
    /// count that disagrees with the marker also poisons the store and makes
    /// every later open refuse (docs/RELIABILITY.md, "Damaged or missing
    /// sled data").
    ///
    /// # Blocking
    /// First makes every earlier transition durable (a journal fsync, in
    /// either mode) and waits until sled holds it, and waits for a count of
    /// sled's records already running (the one after open, or a rebuild of
    /// the key filter) to end. Then blocks for a scan of every record
    /// (≈ 2 s per million here), a page of 4,096 at a time; writes to sled
    /// go on between pages.
    ///
    /// # Errors
    /// Damage is reported in the [`VerifyReport`], not as an error. `Err` is
    /// [`Error::Storage`](crate::Error::Storage) when the scan itself fails,
    /// [`Error::Closed`](crate::Error::Closed) once the store closes (also
    /// during the scan), or [`Error::Poisoned`](crate::Error::Poisoned) when
    /// a poisoned store's earlier transitions cannot reach sled — unless it
    /// was poisoned because sled lost records: then the report says so.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.backend().verify()
    }

    #[cfg(any(test, feature = "testing"))]
    /// The embedded backend, for the test hooks below.
    fn embedded(&self) -> Result<&Embedded> {
        let b = self.backend();
        b.as_any().downcast_ref::<crate::embedded::Embedded>().ok_or_else(|| Error::Internal {
            what: "test hook on a backend that is not the embedded one".into(),
        })
    }

    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    /// Test hook: the number of distinct keys the expiry index names.
    pub fn __index_len(&self) -> usize {
        self.embedded().map_or(0, Embedded::index_len)
    }

    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    /// Test hook: whether every stripe's key filter is built (the background
    /// build after open has finished).
    pub fn __key_filters_ready(&self) -> bool {
        self.embedded().is_ok_and(Embedded::key_filters_ready)
    }

    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    /// Test hook: rebuilds every stripe's key filter now, from a scan of sled,
    /// concurrently with other calls (as the background rebuild does).
    pub fn __rebuild_key_filters(&self) -> Result<bool> {
        self.embedded()?.rebuild_key_filters()
    }

    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    /// Test hook: overwrites a stored record with raw bytes, bypassing the
    /// codec and the journal, to test corruption handling.
    pub fn __corrupt_record(&self, key: &Key, bytes: &[u8]) -> Result<()> {
        self.embedded()?.corrupt_record(key, bytes)
    }
}
