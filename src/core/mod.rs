//! The shard core: the state machine of one key, as pure functions.
//!
//! No locks, no I/O, no clock: every function takes the current record (as
//! stored, possibly expired) and `now`, and returns the decision and the new
//! record. The store layer above supplies the lock, the lookup, the journal
//! and the fencing-token counter. This is where the contract lives; it is
//! unit-tested here and compared against a model in the test suites.

mod record;
mod transition;

pub(crate) use record::{IdleReason, Record, State};
pub(crate) use transition::{
    ClaimDecision, ClaimParams, claim, complete, extend, fail_retryable, fail_terminal, live,
    release,
};
