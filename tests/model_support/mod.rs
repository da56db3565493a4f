//! The reference model of idemkv's contract, and a driver that runs the same
//! operations against a real [`Store`].
//!
//! Shared by `tests/model.rs` (model-based property tests),
//! `tests/linearizability` (the per-key rules are the sequential
//! specification of the history checker) and `fuzz/fuzz_targets/model.rs`.
//! It has no proptest types: an [`Op`] is plain data, [`Model::apply`] and
//! [`Sut::apply`] both return an [`Outcome`], and a test compares the two.
//!
//! The model is written from the README's "The contract" section and
//! DESIGN.md's rules, not from `src/core`: it never calls idemkv internals.
//! It cannot predict fencing-token values (each open skips 2^32 of them), so
//! it names leases by acquisition order (`LeaseId` 0, 1, 2, …) and the driver
//! translates every token the store reports back to that index, checking on
//! the way that each new token is strictly greater than all earlier ones.
#![allow(dead_code)]

/// Milliseconds since the Unix epoch (the store's unit of time).
pub type Ms = u64;
/// A lease's name in the model. In `Model` the acquisition order (0, 1, …);
/// in the linearizability checker the real fencing token.
pub type LeaseId = u64;
/// A request fingerprint, by number (see [`fingerprint`]).
pub type Fp = u8;

mod model;
mod ops;
pub mod rules;
mod sut;

// Each test binary uses only some of these.
#[allow(unused_imports)]
pub use {
    model::Model,
    ops::{
        JsonLit, Op, Outcome, body, fingerprint, json_bytes, json_value, keeps_guard, key, pick,
    },
    rules::{ClaimOut, EntryView, ReplayView, Stale, StateView},
    sut::{Sut, model_config, ms_of},
};

/// Number of keys the operations address (`Op::*::key` is taken modulo it).
pub const KEYS: u8 = 4;
/// The model store's default lease.
pub const LEASE_MS: Ms = 10_000;
/// The model store's default retention.
pub const RETENTION_MS: Ms = 100_000;
/// The mock clock's start (2023-11-14).
pub const T0: Ms = 1_700_000_000_000;
/// The namespace of the model's keys.
pub const NS: &str = "model";
