//! Time source and the one rule for durations.
//!
//! Everything idemkv stores is in milliseconds since the Unix epoch, read from
//! a [`Clock`] so tests can drive time by hand.
//!
//! # Durations
//! Every duration the API takes goes through [`duration_ms`] (or, for the
//! timers that run on the monotonic clock, [`check_duration`]), so that one
//! rule holds everywhere:
//! - zero is refused with [`Error::InvalidConfig`] (a zero lease, retention,
//!   retry horizon, extension, fsync delay or background interval makes no
//!   sense); wait timeouts are the exception: zero means "do not wait";
//! - a duration longer than [`MAX_DURATION`] (100 years) is refused with
//!   `InvalidConfig` naming the value and the limit, so that no `now + d`
//!   can overflow; wait timeouts are again the exception: any timeout too
//!   long to represent means "no limit";
//! - a duration the store keeps in milliseconds (lease, retention, retry
//!   horizon, `extend`, the sweep and checkpoint intervals) is rounded UP to
//!   the next whole millisecond: 500 µs is 1 ms, 1.2 ms is 2 ms. A lease
//!   never ends early and a retention never drops a key early;
//! - `Durability::Buffered { max_delay }` and wait timeouts run on the
//!   monotonic clock and are honoured to the nanosecond.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::error::{Error, Result};

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// The longest duration idemkv accepts anywhere (leases, retentions, retry
/// horizons, extensions, fsync delays, background intervals): 100 years
/// (36 525 days). Longer values are refused with
/// [`Error::InvalidConfig`](crate::Error::InvalidConfig).
pub const MAX_DURATION: Duration = Duration::from_secs(36_525 * 86_400);

/// The latest time a store works with: `u64::MAX` minus twice
/// [`MAX_DURATION`] (in milliseconds) minus one. A store reads a later clock
/// as this instant (time stops there), so that `now + lease + retention`
/// always fits and no lease or retention is cut short by saturation.
pub(crate) const LATEST_MILLIS: Millis = u64::MAX - 2 * (MAX_DURATION.as_secs() * 1000) - 1;

/// A source of wall-clock time in milliseconds since the Unix epoch.
///
/// Implementations must be cheap and must not block: the store reads the
/// clock on every call, sometimes while it holds a stripe lock.
/// Any value is accepted, up to `u64::MAX`; a store treats readings within
/// 200 years of `u64::MAX` ms (half a billion years from now) as that
/// point, so every deadline it computes stays representable.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time in milliseconds since the Unix epoch.
    fn now_millis(&self) -> Millis;

    /// The current time as whole milliseconds since the Unix epoch, and
    /// whether part of the next millisecond has passed too. A store counts
    /// the deadlines it sets from the next whole millisecond when it has, so
    /// that no lease or retention ends early. The default, for clocks that
    /// know only milliseconds, is `(self.now_millis(), false)`.
    fn now_precise(&self) -> (Millis, bool) {
        (self.now_millis(), false)
    }
}

/// One clock reading as the store uses it: whole milliseconds for every
/// comparison, and whether a fraction of a millisecond has passed since,
/// for the deadlines it sets (see [`Now::plus`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Now {
    /// Whole milliseconds since the Unix epoch (rounded down).
    pub ms: Millis,
    /// Whether part of the next millisecond has passed too.
    pub frac: bool,
}

impl Now {
    #[cfg(any(test, feature = "testing"))]
    /// A reading of exactly `ms`.
    pub fn at(ms: Millis) -> Now {
        Now { ms, frac: false }
    }

    /// Reads `clock` once.
    pub fn of(clock: &dyn Clock) -> Now {
        let (ms, frac) = clock.now_precise();
        Now { ms, frac }
    }

    /// The deadline `d` milliseconds from now, counted from the next whole
    /// millisecond if part of it has passed: never earlier than the true
    /// `now + d` (saturating).
    pub fn plus(self, d: u64) -> Millis {
        self.ms.saturating_add(u64::from(self.frac)).saturating_add(d)
    }

    /// This reading, or `floor` if that is later (a clock gone backwards).
    pub fn at_least(self, floor: Millis) -> Now {
        if floor > self.ms { Now { ms: floor, frac: false } } else { self }
    }
}

/// The system's wall clock. Never blocks; a clock set before the Unix epoch
/// reads as 0.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> Millis {
        self.now_precise().0
    }

    fn now_precise(&self) -> (Millis, bool) {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| (saturating_ms(d.as_millis()), !d.subsec_nanos().is_multiple_of(1_000_000)))
            .unwrap_or((0, false))
    }
}

const NANOS_PER_MS: u128 = 1_000_000;
/// The latest instant a [`MockClock`] can show: `u64::MAX` ms and 999 999 ns.
const MOCK_MAX_NANOS: u128 = (u64::MAX as u128) * NANOS_PER_MS + (NANOS_PER_MS - 1);

/// A clock that moves only when told to; for tests of TTLs and leases.
///
/// It keeps nanoseconds, so that [`MockClock::advance`] is exact: two
/// advances of 500 µs move [`Clock::now_millis`] by one millisecond. It
/// saturates at `u64::MAX` milliseconds instead of wrapping. Clones share
/// the same time. Never blocks (beyond a lock held for a few nanoseconds).
#[derive(Debug, Clone)]
pub struct MockClock {
    nanos: Arc<Mutex<u128>>,
}

impl MockClock {
    /// A mock clock set to `start` milliseconds since the Unix epoch.
    pub fn new(start: Millis) -> Self {
        MockClock { nanos: Arc::new(Mutex::new(u128::from(start) * NANOS_PER_MS)) }
    }

    /// Moves the clock forward by `by`, exactly (sub-millisecond parts add
    /// up), saturating at `u64::MAX` milliseconds.
    pub fn advance(&self, by: Duration) {
        let mut n = self.nanos.lock();
        *n = n.saturating_add(by.as_nanos()).min(MOCK_MAX_NANOS);
    }

    /// Sets the clock to `to` milliseconds (sub-millisecond part zero), which
    /// may be earlier than now (a clock going backwards).
    pub fn set(&self, to: Millis) {
        *self.nanos.lock() = u128::from(to) * NANOS_PER_MS;
    }
}

impl Clock for MockClock {
    fn now_millis(&self) -> Millis {
        self.now_precise().0
    }

    fn now_precise(&self) -> (Millis, bool) {
        let n = *self.nanos.lock();
        let ms = saturating_ms(n / NANOS_PER_MS);
        (ms, ms < u64::MAX && !n.is_multiple_of(NANOS_PER_MS))
    }
}

/// Converts stored milliseconds to a `SystemTime`. Never panics: on a
/// platform whose `SystemTime` cannot reach `ms` (Linux can: up to `u64::MAX`
/// ms), the latest representable time below it is returned. Never blocks.
pub fn to_system_time(ms: Millis) -> SystemTime {
    let mut ms = ms;
    loop {
        if let Some(t) = UNIX_EPOCH.checked_add(Duration::from_millis(ms)) {
            return t;
        }
        ms /= 2;
    }
}

/// A clock whose readings stop at [`LATEST_MILLIS`]: what a store reads.
#[derive(Debug)]
pub(crate) struct Capped<C>(pub C);

impl<C: Clock> Clock for Capped<C> {
    fn now_millis(&self) -> Millis {
        self.0.now_millis().min(LATEST_MILLIS)
    }

    fn now_precise(&self) -> (Millis, bool) {
        match self.0.now_precise() {
            (ms, frac) if ms < LATEST_MILLIS => (ms, frac),
            _ => (LATEST_MILLIS, false),
        }
    }
}

fn saturating_ms(ms: u128) -> u64 {
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// `d` in whole milliseconds, rounded up (500 µs is 1 ms), saturating.
pub(crate) fn ceil_ms(d: Duration) -> u64 {
    saturating_ms(d.as_nanos().div_ceil(NANOS_PER_MS))
}

/// Checks `d` against the duration rule (module docs): refuses zero and
/// anything above [`MAX_DURATION`]. `what` names the value in the error
/// ("default policy: the lease"); it is formatted only on error, so the claim
/// path allocates nothing. Returns `d` unchanged.
pub(crate) fn check_duration(what: &dyn fmt::Display, d: Duration) -> Result<Duration> {
    if d.is_zero() {
        return Err(Error::config(format!("{what} must be longer than zero")));
    }
    if d > MAX_DURATION {
        return Err(Error::config(format!(
            "{what} ({d:?}) is longer than the longest duration idemkv accepts, \
             MAX_DURATION ({MAX_DURATION:?}, 100 years); use a shorter one"
        )));
    }
    Ok(d)
}

/// The duration rule for values the store keeps in milliseconds: checked by
/// [`check_duration`], then rounded up to whole milliseconds (1 ..= the
/// milliseconds of [`MAX_DURATION`]).
pub(crate) fn duration_ms(what: &dyn fmt::Display, d: Duration) -> Result<u64> {
    check_duration(what, d).map(ceil_ms)
}

/// `d` rounded up to whole milliseconds, as a `Duration`.
pub(crate) fn ceil_to_ms(d: Duration) -> Duration {
    Duration::from_millis(ceil_ms(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_up_and_limits() {
        assert_eq!(ceil_ms(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_ms(Duration::from_micros(500)), 1);
        assert_eq!(ceil_ms(Duration::from_nanos(999_999)), 1);
        assert_eq!(ceil_ms(Duration::from_millis(1)), 1);
        assert_eq!(ceil_ms(Duration::from_micros(1_200)), 2);
        assert_eq!(ceil_ms(Duration::MAX), u64::MAX);
        assert!(duration_ms(&"x", Duration::ZERO).is_err());
        assert!(duration_ms(&"x", MAX_DURATION + Duration::from_nanos(1)).is_err());
        assert_eq!(duration_ms(&"x", MAX_DURATION).unwrap(), 36_525 * 86_400_000);
    }

    #[test]
    fn mock_clock_is_exact_and_saturates() {
        let c = MockClock::new(10);
        c.advance(Duration::from_micros(500));
        assert_eq!(c.now_millis(), 10);
        c.advance(Duration::from_micros(500));
        assert_eq!(c.now_millis(), 11);
        c.set(u64::MAX - 1);
        c.advance(Duration::MAX);
        assert_eq!(c.now_millis(), u64::MAX);
        c.set(u64::MAX);
        assert_eq!(c.now_millis(), u64::MAX);
    }
}
