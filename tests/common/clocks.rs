//! Mock clocks and wall-clock times in milliseconds.

use idemkv::{Config, MockClock};

/// A realistic start time for mock clocks (2023-11-14).
pub const T0: u64 = 1_700_000_000_000;

/// A mock clock at [`T0`].
pub fn mock_clock() -> MockClock {
    MockClock::new(T0)
}

/// Config driven by `clock`, with the background sweeper off.
pub fn mock_config(clock: &MockClock) -> Config {
    Config::new().clock(clock.clone()).sweep_interval(None)
}

/// Milliseconds since the epoch of a `SystemTime`.
pub fn ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).expect("after the epoch").as_millis() as u64
}
