//! The provider's delivery schedule: the seeded stream of originals,
//! concurrent copies and forged deliveries, shuffled in reorder windows
//! (out-of-order delivery), then what decides the next delivery — resends
//! after the crash, backoff timers, late copies due after their event
//! finished, and the rest of the stream.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use super::DemoArgs;
use super::rng::{Rng, hash};

/// Deliveries are shuffled within windows of this many (reordering).
const REORDER_WINDOW: usize = 16;
/// Share of duplicate copies sent together with the original.
const CONCURRENT_SHARE: f64 = 0.4;
/// A late copy is sent this many deliveries (plus up to `LATE_SPREAD`) after
/// its event finished.
const LATE_GAP: u64 = 200;
const LATE_SPREAD: u64 = 5000;
/// Deliveries with a bad signature, spread evenly over the stream.
pub const FORGED_DELIVERIES: u32 = 16;

/// Why a delivery was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The event's first delivery.
    Original,
    /// A duplicate sent together with the original.
    Concurrent,
    /// A duplicate sent long after the event finished.
    Late,
    /// A resend after a retryable failure (exponential backoff).
    AfterFailure,
    /// A resend after an "in flight" answer.
    AfterInFlight,
    /// A resend of a delivery left unanswered by the killed server.
    AfterCrash,
    /// A resend after an unexpected answer or connection error.
    AfterError,
    /// A delivery with a bad signature (its number, not an event, travels
    /// with it); never retried except after a connection error.
    Forged,
}

/// One event as planned.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// Index of its source in the source list.
    pub source: u8,
    /// Duplicate copies to send after it finished.
    pub late_copies: u8,
}

/// What is still to be sent, and when.
pub struct Schedule {
    stream: Vec<(u32, Kind)>,
    stream_pos: usize,
    resend: VecDeque<(u32, Kind)>,
    timers: BinaryHeap<Reverse<(Instant, u64, u32, Kind)>>,
    timer_seq: u64,
    late: BinaryHeap<Reverse<(u64, u32)>>,
}

impl Schedule {
    /// Plans every event from `--seed`: its source, its duplicate copies
    /// (concurrent ones join the stream, late ones wait for the event to
    /// finish), the forged deliveries and the reordered stream.
    pub fn plan(args: &DemoArgs) -> (Schedule, Vec<Planned>) {
        let mut rng = Rng::new(args.seed);
        let n = args.events as usize;
        let mut events = Vec::with_capacity(n);
        let mut stream = Vec::with_capacity(n + n / 2);
        for i in 0..args.events {
            let source = rng.below(args.sources as u64) as u8;
            let mut late_copies = 0u8;
            stream.push((i, Kind::Original));
            if rng.chance(args.dup_rate) {
                let copies = match rng.below(10) {
                    0..=5 => 1,
                    6..=8 => 2,
                    _ => 3,
                };
                for _ in 0..copies {
                    if rng.chance(CONCURRENT_SHARE) {
                        stream.push((i, Kind::Concurrent));
                    } else {
                        late_copies += 1;
                    }
                }
            }
            events.push(Planned { source, late_copies });
        }
        let len = stream.len();
        for f in (0..FORGED_DELIVERIES).rev() {
            let at = (f as usize + 1) * len / (FORGED_DELIVERIES as usize + 1);
            stream.insert(at, (f, Kind::Forged));
        }
        for window in stream.chunks_mut(REORDER_WINDOW) {
            rng.shuffle(window);
        }
        let schedule = Schedule {
            stream,
            stream_pos: 0,
            resend: VecDeque::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            late: BinaryHeap::new(),
        };
        (schedule, events)
    }

    /// Nothing left to send, now or later.
    pub fn is_empty(&self) -> bool {
        self.stream_pos >= self.stream.len()
            && self.resend.is_empty()
            && self.timers.is_empty()
            && self.late.is_empty()
    }

    /// Time until the earliest backoff timer is due.
    pub fn next_timer_in(&self) -> Option<Duration> {
        let Reverse((due, ..)) = self.timers.peek()?;
        Some(due.saturating_duration_since(Instant::now()))
    }

    /// The delivery to send now, `sent` deliveries into the run: resends
    /// first, then due timers, then due late copies (all of them once the
    /// stream is exhausted), then the stream.
    pub fn next(&mut self, now: Instant, sent: u64) -> Option<(u32, Kind)> {
        if let Some(d) = self.resend.pop_front() {
            return Some(d);
        }
        if let Some(Reverse((due, ..))) = self.timers.peek()
            && *due <= now
        {
            let Reverse((_, _, event, kind)) = self.timers.pop()?;
            return Some((event, kind));
        }
        let stream_left = self.stream_pos < self.stream.len();
        if let Some(Reverse((due_seq, _))) = self.late.peek()
            && (*due_seq <= sent || !stream_left)
        {
            let Reverse((_, event)) = self.late.pop()?;
            return Some((event, Kind::Late));
        }
        if stream_left {
            self.stream_pos += 1;
            return Some(self.stream[self.stream_pos - 1]);
        }
        None
    }

    /// Sends these again as soon as possible, in this order.
    pub fn resend(&mut self, deliveries: impl IntoIterator<Item = (u32, Kind)>) {
        self.resend.extend(deliveries);
    }

    /// Sends `event` again after `delay`.
    pub fn retry_after(&mut self, delay: Duration, event: u32, kind: Kind) {
        // Distinct sequence numbers keep the heap order deterministic.
        self.timer_seq += 1;
        self.timers.push(Reverse((Instant::now() + delay, self.timer_seq, event, kind)));
    }

    /// Queues the late copies of an event that just finished, `sent`
    /// deliveries into the run; each is due a seeded gap later.
    pub fn queue_late_copies(&mut self, seed: u64, event: u32, copies: u8, sent: u64) {
        for copy in 0..copies {
            let gap = LATE_GAP + hash(&[seed, u64::from(event), u64::from(copy)]) % LATE_SPREAD;
            self.late.push(Reverse((sent + gap, event)));
        }
    }
}
