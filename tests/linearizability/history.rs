//! Histories: the calls on one key and their answers, on a global logical
//! clock.

use crate::model_support::Fp;
use crate::model_support::rules::Stale;

/// A call on one key. Tokens are the real fencing tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinOp {
    Claim {
        fp: Option<Fp>,
    },
    Wait {
        fp: Option<Fp>,
        timeout_ms: u64,
    },
    Complete {
        token: u64,
        body: Vec<u8>,
    },
    FailTerminal {
        token: u64,
        body: Vec<u8>,
    },
    FailRetryable {
        token: u64,
    },
    Release {
        token: u64,
    },
    /// `Store::abandon(&lease)`, or with `guard` a guard adopted from the
    /// lease and dropped. Answers `Ok` whatever it did.
    Abandon {
        token: u64,
        guard: bool,
    },
    Get,
    Remove,
}

/// Its answer, without wall-clock times (which the model does not predict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinRes {
    Acquired { token: u64, attempt: u32, recovered: bool },
    Replay(ReplayRes),
    InFlight { attempt: u32 },
    Mismatch { stored: Fp },
    Ok,
    Stale(Stale),
    Got(Option<GotRes>),
    Removed(bool),
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplayRes {
    pub(crate) failed: bool,
    pub(crate) body: Vec<u8>,
    pub(crate) attempts: u32,
    pub(crate) token: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GotRes {
    pub(crate) attempts: u32,
    pub(crate) fp: Option<Fp>,
    pub(crate) state: GotState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GotState {
    InProgress { token: u64, orphaned: bool },
    Finished(ReplayRes),
    Claimable { retryable: bool },
}

/// One completed call: who, what, when (logical invocation and response
/// times from one global counter), and the answer.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) thread: usize,
    pub(crate) op: LinOp,
    pub(crate) call: u64,
    pub(crate) ret: u64,
    pub(crate) res: LinRes,
}
