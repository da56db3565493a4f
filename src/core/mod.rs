//! The contract: one key's record and its state machine, as pure functions,
//! the reports of recovery and verification, and the boundary a backend
//! implements to keep records under these rules.
//!
//! No locks, no I/O, no clock: every function takes the current record (as
//! stored, possibly expired) and `now`, and returns the decision and the new
//! record. The layers above supply the lock, the lookup, the journal and the
//! fencing token. This is where the contract lives; it is unit-tested here
//! and compared against a model in the test suites.

pub(crate) mod backend;
mod record;
mod reports;
mod transition;

pub(crate) use crate::error::StaleReason;
pub use record::BodyFormat;
pub(crate) use record::{IdleReason, Record, State};
pub use reports::{RecoveryReport, VerifyReport};
pub(crate) use transition::{
    ClaimDecision, ClaimParams, abandon, claim, complete, extend, fail_retryable, fail_terminal,
    live, release, stamp_token,
};
