//! What opening and verifying a store found: plain reports, filled in by the
//! backend that ran the recovery or the scan and shown by the front.

/// What recovery found in the journal (see
/// [`Store::recovery_report`](crate::Store::recovery_report)). Plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Segment files read.
    pub segments: usize,
    /// Entries replayed into sled (those after the last checkpoint).
    pub entries_replayed: u64,
    /// Entries already covered by the checkpoint and skipped.
    pub entries_skipped: u64,
    /// Sequence number of the last intact entry (or of the checkpoint).
    pub last_seq: u64,
    /// Bytes cut from the journal at a torn or corrupt tail.
    pub bytes_dropped: u64,
    /// What the damage was, when there was any.
    pub damage: Option<String>,
}

/// What one [`Store::verify`](crate::Store::verify) found. Plain data;
/// [`VerifyReport::is_ok`] never blocks or fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
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
