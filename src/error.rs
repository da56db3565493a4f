//! The one error type of the crate.
//!
//! Expected outcomes of a claim (a duplicate, a claim in flight, a fingerprint
//! mismatch) are values of [`Claim`](crate::Claim), not errors. An [`Error`]
//! means the call did not do what was asked; each variant says what to do.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// `Result<T, idemkv::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a lease is no longer valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StaleReason {
    /// Another claimer acquired the key after this lease expired or its
    /// process crashed; `current` is the newer holder's fencing token.
    Superseded {
        /// Fencing token of the claim that holds the key now.
        current: u64,
    },
    /// The claim of this lease was already completed, failed or released.
    Finished,
    /// The record is gone: removed by hand or expired.
    Missing,
    /// The lease was not issued by this open store: it comes from another
    /// data directory, from a copy of this directory (`cp -a`, a restored
    /// backup), or from an earlier open of this same directory (a lease does
    /// not survive close and reopen, nor a restart). Each open draws a
    /// random identity that its leases carry; nothing was changed.
    OtherStore,
}

/// Everything that can go wrong in idemkv. Which calls return which, and
/// what has happened when they do, is documented on each method and under
/// "Errors" on [`Store`](crate::Store).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The key's namespace or id is empty or too long.
    InvalidKey {
        /// What is wrong with it.
        reason: String,
    },
    /// A response or failure payload is larger than the configured limit.
    ResponseTooLarge {
        /// Length of the rejected payload in bytes.
        len: usize,
        /// The configured limit (`Config::max_response_bytes`).
        limit: usize,
    },
    /// A configuration value or per-call option is refused.
    InvalidConfig {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Another process (or another `Store` in this process) holds the data directory.
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// A stored record failed its checksum or could not be decoded — or a
    /// whole part of the store is damaged or missing, when `key` names it
    /// (`b"META"`, `b"sled"`, `b"journal"`): then `reason` says what was
    /// lost and how to recover, and the store refuses to open.
    Corrupt {
        /// The raw storage key of the record (namespace length, namespace,
        /// id), or the name of the damaged part of the store.
        key: Vec<u8>,
        /// What the decoder found.
        reason: String,
    },
    /// The data directory was written by a newer idemkv with a format this
    /// version cannot read.
    UnsupportedVersion {
        /// Which file.
        what: String,
        /// The version found on disk.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// An I/O operation failed: at open, at a checkpoint, or writing META
    /// (a claim raising the fencing-token ceiling, an import). The last two
    /// poison the store.
    Io {
        /// What idemkv was doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The underlying storage engine (sled) reported an error.
    Storage {
        /// What idemkv was doing.
        context: String,
        /// The storage engine's error; its type is not part of the API (it
        /// depends on the backend).
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The lease is stale: its claim was superseded, finished or removed.
    /// Nothing was changed.
    StaleLease {
        /// The key of the lease.
        key: String,
        /// The lease's fencing token.
        token: u64,
        /// Why it is stale.
        reason: StaleReason,
    },
    /// The store refuses writes after a failure it cannot safely retry: a
    /// journal write or fsync, the applier's write to sled, a checkpoint, a
    /// META write or a sweep by the background sweeper failed, a background
    /// thread panicked, or a count of sled's records found some lost.
    /// Reopen the directory to recover from the journal. A transition that
    /// returns it may have been journaled before the failure, and may be
    /// durable: `get` the key after the reopen before retrying.
    Poisoned {
        /// The first failure that poisoned the store.
        reason: String,
    },
    /// The store was closed (through this handle or another clone of it).
    /// Every call except the accessors `config`, `recovery_report` and
    /// `stats` returns this after `Store::close`; open the directory again
    /// for a new handle.
    Closed,
    /// A fencing token beyond the token space: a claim after the store
    /// issued [`MAX_TOKEN`](crate::MAX_TOKEN), or an import of a record whose
    /// token is above [`MAX_IMPORTED_TOKEN`](crate::MAX_IMPORTED_TOKEN).
    /// Tokens never wrap; nothing was changed.
    TokenSpaceExhausted {
        /// The token that could not be issued or accepted.
        token: u64,
        /// The highest token allowed there.
        limit: u64,
    },
    /// [`Store::close`](crate::Store::close) stopped waiting for a step that
    /// made no progress within its bound (in practice: sled stuck in its final
    /// flush after the disk filled up). Everything acknowledged is in the
    /// journal; what could be released was.
    CloseTimedOut {
        /// The steps that did not finish, and the failure that had poisoned
        /// the store, if any.
        what: String,
        /// Whether the directory's LOCK was released (it is kept only while
        /// the journal writer itself has not stopped).
        lock_released: bool,
    },
    /// The call conflicts with the key's current state (for example an
    /// import over a claim in flight in this store). Nothing was changed.
    Conflict {
        /// What conflicts, and what to do first.
        reason: String,
    },
    /// A typed body could not be encoded, or a stored body decoded as the
    /// type asked for. Nothing was stored.
    Codec {
        /// What failed.
        reason: String,
    },
    /// An internal invariant of idemkv broke: a bug in idemkv, not damage to
    /// the store's data. Please report it, with `what`.
    Internal {
        /// Which invariant.
        what: String,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    pub(crate) fn storage(context: impl Into<String>, source: sled::Error) -> Self {
        Error::Storage { context: context.into(), source: Box::new(source) }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Error::InvalidConfig { reason: reason.into() }
    }

    /// True for errors after which the store refuses writes until reopened.
    pub fn is_poisoned(&self) -> bool {
        matches!(self, Error::Poisoned { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidKey { reason } => write!(f, "invalid key: {reason}"),
            Error::Codec { reason } => write!(f, "body encoding: {reason}"),
            Error::ResponseTooLarge { len, limit } => write!(
                f,
                "response of {len} bytes exceeds the limit of {limit} bytes; store a reference \
                 to the result instead, or raise Config::max_response_bytes"
            ),
            Error::InvalidConfig { reason } => write!(f, "invalid configuration: {reason}"),
            Error::Locked { path } => write!(
                f,
                "data directory {} is in use by another process or Store; close it first \
                 (one process owns a store directory at a time)",
                path.display()
            ),
            Error::Corrupt { key, reason } if is_store_part(key) => {
                write!(f, "damaged store: {}: {reason}", String::from_utf8_lossy(key))
            }
            Error::Corrupt { key, reason } => write!(
                f,
                "corrupt record for key {}: {reason}; `Store::verify` lists every damaged \
                 record and `Store::remove` deletes one",
                crate::text::display_raw(key)
            ),
            Error::UnsupportedVersion { what, found, supported } => write!(
                f,
                "{what} has format version {found}, but this idemkv reads up to version \
                 {supported}; open it with a newer idemkv"
            ),
            Error::Io { context, source } => write!(f, "I/O error while {context}: {source}"),
            Error::Storage { context, source } => {
                write!(f, "storage error while {context}: {source}")
            }
            Error::StaleLease { key, token, reason } => {
                let why = match reason {
                    StaleReason::Superseded { current } => {
                        format!("the key was re-acquired by a newer claim (token {current})")
                    }
                    StaleReason::Finished => "its claim was already finished".to_string(),
                    StaleReason::Missing => "the record was removed or expired".to_string(),
                    StaleReason::OtherStore => "it was issued by another store".to_string(),
                };
                write!(
                    f,
                    "stale lease for key {key} (token {token}): {why}; nothing was changed — \
                     do not report this attempt's result"
                )
            }
            Error::Poisoned { reason } => write!(
                f,
                "store refuses writes after a fatal error ({reason}); reopen it to recover \
                 from the journal"
            ),
            Error::Closed => {
                write!(f, "the store is closed; open the data directory again for a new handle")
            }
            Error::CloseTimedOut { what, lock_released } => write!(
                f,
                "closing the store gave up waiting for {what}; everything acknowledged is in the \
                 journal, and {} — restart the process before opening this data directory \
                 again (sled's files stay open in this process until it exits)",
                if *lock_released {
                    "the directory lock was released"
                } else {
                    "the directory lock is still held (the journal writer did not stop)"
                }
            ),
            Error::Conflict { reason } => write!(f, "conflict: {reason}; nothing was changed"),
            Error::Internal { what } => write!(
                f,
                "internal error: {what}; this is a bug in idemkv, not damage to the stored \
                 data — please report it to the idemkv maintainers with this message"
            ),
            Error::TokenSpaceExhausted { token, limit } => write!(
                f,
                "fencing token {token} is above the limit of {limit}: tokens must strictly \
                 increase and would wrap; nothing was changed — an imported record may carry \
                 a token up to MAX_IMPORTED_TOKEN, and a store that issued MAX_TOKEN must be \
                 replaced by a new one"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Storage { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// Whether a `Corrupt` key names a part of the store rather than a record.
fn is_store_part(key: &[u8]) -> bool {
    matches!(key, b"META" | b"sled" | b"journal")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_blame_idemkv_not_the_data() {
        let e = Error::Internal { what: "replay without outcome".into() };
        let msg = e.to_string();
        assert!(msg.contains("bug in idemkv") && msg.contains("report"), "{msg}");
        assert!(msg.contains("not damage") && !msg.contains("verify"), "{msg}");
        assert!(!e.is_poisoned());
    }
}
