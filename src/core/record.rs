//! One key's stored state.

use std::sync::Arc;

use crate::clock::Millis;
use crate::fingerprint::Fingerprint;

/// Why a key is claimable again without being finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdleReason {
    /// The holder called `release`.
    Released,
    /// The holder called `fail(Failure::Retryable)`.
    RetryableFailure,
}

/// How a finished key's stored body is encoded, kept with the record so that
/// tools (`idemkv get`, `list`, `export`) can show it as what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum BodyFormat {
    /// Opaque bytes, as given to `complete`/`fail` (the raw API).
    #[default]
    Bytes,
    /// A JSON document (`serde_json`), as written by the typed API.
    Json,
    /// An HTTP response (status, allow-listed headers, body) as stored by
    /// the `http` feature's layer; its layout is in docs/FORMAT.md
    /// ("HTTP response envelope").
    Http,
}

/// The lifecycle state of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    /// Claimed; the holder with `token` is running the side effect.
    /// Orphaned (claimable) once `lease_deadline` passes or when `boot` is
    /// not the current process's boot epoch.
    InProgress { token: u64, boot: u64, claimed_at: Millis, lease_deadline: Millis },
    /// Finished successfully; `body` is the response replayed to duplicates.
    Completed { token: u64, finished_at: Millis, body: Arc<[u8]>, format: BodyFormat },
    /// Finished with a terminal failure; `body` is the error payload replayed.
    Failed { token: u64, finished_at: Millis, body: Arc<[u8]>, format: BodyFormat },
    /// Claimable again, attempt count kept.
    Idle { last_token: u64, since: Millis, reason: IdleReason },
}

/// A key's record: its state plus what every state keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// How many times the key was acquired.
    pub attempts: u32,
    /// When the key was first claimed.
    pub created_at: Millis,
    /// From this instant on the record is absent to every read.
    pub expires_at: Millis,
    /// Retention chosen at claim time, applied from the finishing transition.
    pub retention_ms: u64,
    /// The request digest given at the first claim, if any.
    pub fingerprint: Option<Fingerprint>,
    /// The lifecycle state.
    pub state: State,
}
