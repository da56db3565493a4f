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
    pub fn sweep(&self) -> Result<usize> {
        self.backend().check_writable()?;
        self.backend().sweep()
    }

    /// Makes every transition so far durable, whatever the durability mode.
    pub fn flush(&self) -> Result<()> {
        self.backend().flush()
    }

    /// Writes everything to the journal, applies it to sled, makes sled
    /// durable and deletes the journal segments it covers.
    pub fn checkpoint(&self) -> Result<()> {
        self.backend().checkpoint()
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
