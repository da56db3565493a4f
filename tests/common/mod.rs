//! Shared helpers of the integration tests: keys, clocks, a deterministic
//! PRNG, CRC-32, journal-frame parsing, and the self-exec child process used
//! by the crash tests (the test binary re-runs itself as `child_worker`).
#![allow(dead_code)]

use std::error::Error as StdError;

/// `Result` for tests that mix idemkv and std errors.
pub type TestResult<T = ()> = Result<T, Box<dyn StdError>>;

mod child;
mod child_proc;
mod child_worker;
mod clocks;
mod crc;
mod dirs;
mod durability;
pub mod faults;
mod frames;
mod hex;
mod keys;
mod rng;
mod sentinel;
pub mod tmpfs;

// Each test binary uses only some of these.
#[allow(unused_imports)]
pub use {
    child::{
        Ack, CHILD_ARG_ENV, CHILD_DIR_ENV, CHILD_MODE_ENV, child_config, emit, response_for,
        summarize,
    },
    child_proc::{ChildProc, serial},
    child_worker::{child_main, park_child},
    clocks::{T0, mock_clock, mock_config, ms},
    crc::crc32,
    dirs::{copy_dir, fast_tempdir, is_root},
    durability::{buffered, modes},
    frames::{FRAME_HEADER_LEN, FrameInfo, SEGMENT_HEADER_LEN, parse_segment, segments},
    hex::{from_hex, to_hex},
    keys::{NS, acquire, key},
    rng::Rng,
    sentinel::{SENTINEL, plant_sentinel, sentinel_replays},
};
