//! The journal writer: appenders encode frames into a shared buffer under a
//! short lock; one thread writes the buffer, fsyncs it (group commit: every
//! entry appended while the previous fsync ran shares the next one), publishes
//! the durable sequence number, wakes the waiters (blocked on a condvar, or
//! awaiting an `event_listener::Event`) and hands the durable entries to the
//! applier.
//!
//! A batch of transitions (`claim_batch`, `complete_batch`) *holds* the
//! journal while it appends, so that in `Durable` mode the writer does not
//! fsync the batch's first entries alone: the whole batch shares one fsync.
//! A hold defers an fsync only while every unsynced entry comes from a
//! batch: an entry appended by any other caller (who waits for its own
//! fsync) ends the deferral at once, so batches never delay other callers —
//! under mixed traffic a batch shares the group commits like everyone else.
//! Holds belong to a generation: when an fsync becomes due while batches
//! hold, the writer *seals* their generation and waits for those batches
//! only (batches starting later join the next one), at most [`MAX_HOLD`];
//! so overlapping batches cannot keep deferring the fsync.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};

use super::segment::segment_path;
use crate::error::{Error, Result};
use crate::format::entry::{Mutation, encode_frame, segment_header};
use crate::io::{JournalFile, JournalFs};
use crate::poison::Poison;

/// When the writer fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// As soon as entries are queued.
    Durable,
    /// At most this long after the first unsynced entry was written.
    Buffered(Duration),
}

/// Durable entries for the applier: `(seq, mutation)` in order.
pub(crate) type Batch = Vec<(u64, Mutation)>;

/// The longest a batch's hold defers an fsync in `Durable` mode. A batch
/// appends in microseconds per entry; the bound only matters if one stalls.
pub(crate) const MAX_HOLD: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Queue {
    buf: Vec<u8>,
    ops: Batch,
    next_seq: u64,
    flush_requested: bool,
    shutdown: bool,
    /// Batches appending now, by generation parity, and since when the
    /// oldest of each has.
    holds: [usize; 2],
    held_since: [Option<Instant>; 2],
    /// The generation new holds join.
    hold_gen: u64,
    /// The generation the writer waits for, once sealed.
    sealed: Option<u64>,
    /// An entry not appended by a holding batch is waiting for the next
    /// fsync: holds defer nothing until it is synced.
    unheld: bool,
}

thread_local! {
    /// Holds this thread has open (a batch appends from its own thread).
    static HOLDING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The slot of generation `g`.
fn slot(g: u64) -> usize {
    usize::from(g & 1 == 1)
}

impl Queue {
    /// Until when holds defer the fsync (`None`: they do not). The first
    /// call that finds batches holding seals their generation (later
    /// batches join the next one); the writer then waits for the sealed
    /// batches only, at most `MAX_HOLD` from the first of them.
    fn held_until(&mut self) -> Option<Instant> {
        if self.flush_requested || self.shutdown || self.unheld {
            return None;
        }
        let g = match self.sealed {
            Some(g) => g,
            None if self.holds[slot(self.hold_gen)] > 0 => {
                let g = self.hold_gen;
                self.sealed = Some(g);
                self.hold_gen += 1;
                g
            }
            None => return None,
        };
        let i = slot(g);
        let until = (self.holds[i] > 0)
            .then_some(self.held_since[i])
            .flatten()
            .and_then(|t| t.checked_add(MAX_HOLD))
            .filter(|&u| Instant::now() < u);
        if until.is_none() {
            self.sealed = None; // drained or out of time: the next seals anew
        }
        until
    }
}

/// The shared half of the journal: appenders and durability waiters.
pub(crate) struct Journal {
    queue: Mutex<Queue>,
    work: Condvar,
    durable_seq: AtomicU64,
    durable_lock: Mutex<()>,
    durable_cv: Condvar,
    /// Notified with `durable_cv`, for durability waits that are futures.
    durable_event: event_listener::Event,
    poison: Arc<Poison>,
    /// Mirror of `Queue::next_seq` for lock-free readers.
    next_seq: AtomicU64,
    /// Set when the writer thread has exited; nothing becomes durable after.
    stopped: std::sync::atomic::AtomicBool,
    /// Bytes written since the last checkpoint; read by the checkpointer.
    pub(crate) bytes_since_checkpoint: AtomicU64,
}

impl Journal {
    /// A journal whose next entry gets `next_seq`; everything before it is durable.
    pub fn new(next_seq: u64, poison: Arc<Poison>) -> Journal {
        Journal {
            queue: Mutex::new(Queue { next_seq, ..Default::default() }),
            work: Condvar::new(),
            durable_seq: AtomicU64::new(next_seq - 1),
            durable_lock: Mutex::new(()),
            durable_cv: Condvar::new(),
            durable_event: event_listener::Event::new(),
            poison,
            next_seq: AtomicU64::new(next_seq),
            stopped: std::sync::atomic::AtomicBool::new(false),
            bytes_since_checkpoint: AtomicU64::new(0),
        }
    }

    /// Queues `m`; returns its sequence number. Call it while holding the
    /// stripe lock of `m`'s key so that per-key order is journal order.
    /// Fails once the journal is shutting down (nothing would write it) or
    /// the store is poisoned (nothing would make it durable); the caller
    /// then changes nothing.
    pub fn append(&self, m: Mutation) -> Result<u64> {
        let mut q = self.queue.lock();
        if q.shutdown {
            return Err(Error::Closed);
        }
        if self.poison.is_set() {
            return Err(self.poison.error());
        }
        if HOLDING.with(|h| h.get()) == 0 {
            q.unheld = true;
        }
        let seq = q.next_seq;
        q.next_seq += 1;
        self.next_seq.store(q.next_seq, Ordering::Relaxed);
        let was_empty = q.buf.is_empty();
        encode_frame(&mut q.buf, seq, &m);
        q.ops.push((seq, m));
        drop(q);
        if was_empty {
            self.work.notify_one();
        }
        Ok(seq)
    }

    /// The sequence number the next entry will get.
    #[inline]
    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed)
    }

    /// The highest sequence number known to be on stable storage.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq.load(Ordering::Acquire)
    }

    /// Whether entry `seq` is durable; `Err` once it never will be (the
    /// store is poisoned, or the writer stopped). Never blocks.
    pub fn is_durable(&self, seq: u64) -> Result<bool> {
        if self.durable_seq() >= seq {
            return Ok(true);
        }
        if self.poison.is_set() {
            return Err(self.poison.error());
        }
        if self.stopped.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(false)
    }

    /// A listener notified at the next publication of durable entries (or
    /// poisoning, or the writer's stop). Register it, re-check
    /// [`Journal::is_durable`], then await it.
    pub fn listen_durable(&self) -> event_listener::EventListener {
        self.durable_event.listen()
    }

    /// Starts a hold (see the module doc); its generation, for
    /// [`Journal::release_hold`], which ends it. Never blocks beyond the
    /// queue lock.
    pub fn hold(&self) -> u64 {
        HOLDING.with(|h| h.set(h.get().saturating_add(1)));
        let mut q = self.queue.lock();
        let g = q.hold_gen;
        let i = slot(g);
        q.holds[i] += 1;
        q.held_since[i].get_or_insert_with(Instant::now);
        g
    }

    /// Ends a hold of generation `g`; the last one of its generation lets
    /// the writer fsync what was held.
    pub fn release_hold(&self, g: u64) {
        HOLDING.with(|h| h.set(h.get().saturating_sub(1)));
        let mut q = self.queue.lock();
        let i = slot(g);
        q.holds[i] = q.holds[i].saturating_sub(1);
        if q.holds[i] == 0 {
            q.held_since[i] = None;
            drop(q);
            self.work.notify_one();
        }
    }

    /// Blocks until entry `seq` is durable, or the store is poisoned.
    pub fn wait_durable(&self, seq: u64) -> Result<()> {
        if self.durable_seq() >= seq {
            return Ok(());
        }
        let mut g = self.durable_lock.lock();
        loop {
            if self.durable_seq() >= seq {
                return Ok(());
            }
            if self.poison.is_set() {
                return Err(self.poison.error());
            }
            if self.stopped.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            self.durable_cv.wait(&mut g);
        }
    }

    /// Makes every entry appended so far durable, whatever the mode.
    pub fn flush(&self) -> Result<()> {
        let target = {
            let mut q = self.queue.lock();
            q.flush_requested = true;
            q.next_seq - 1
        };
        self.work.notify_one();
        self.wait_durable(target)
    }

    /// [`Journal::request_flush`], returning the newest entry's sequence
    /// number (0 if none): what a flush waits for.
    pub fn request_flush_upto(&self) -> u64 {
        let target = {
            let mut q = self.queue.lock();
            q.flush_requested = true;
            q.next_seq - 1
        };
        self.work.notify_one();
        target
    }

    /// Asks the writer to write out and fsync everything so far, now, without
    /// waiting for it (in `Buffered`, before `max_delay` has passed). Never
    /// blocks.
    pub fn request_flush(&self) {
        self.queue.lock().flush_requested = true;
        self.work.notify_one();
    }

    /// Asks the writer to write out everything and stop.
    pub fn shutdown(&self) {
        self.queue.lock().shutdown = true;
        self.work.notify_one();
    }

    fn publish(&self, seq: u64) {
        self.durable_seq.store(seq, Ordering::Release);
        {
            let _g = self.durable_lock.lock();
            self.durable_cv.notify_all();
        }
        self.durable_event.notify(usize::MAX);
    }

    fn fail(&self, what: String) {
        self.poison.set(what);
        self.wake_waiters();
    }

    /// Wakes every durability waiter, e.g. after the store was poisoned.
    pub fn wake_waiters(&self) {
        {
            let _g = self.durable_lock.lock();
            self.durable_cv.notify_all();
        }
        self.durable_event.notify(usize::MAX);
    }

    /// The writer thread's loop. Returns when shut down or poisoned.
    pub fn run(&self, out: SegmentWriter, mode: Mode, applier: Sender<Batch>) {
        self.run_inner(out, mode, applier);
        self.stopped.store(true, Ordering::Release);
        self.wake_waiters();
    }

    fn run_inner(&self, mut out: SegmentWriter, mode: Mode, applier: Sender<Batch>) {
        let mut buf = Vec::new();
        let mut unsynced: Batch = Vec::new();
        let mut unsynced_since: Option<Instant> = None;
        loop {
            let (shutdown, flush, first, held) = {
                let mut q = self.queue.lock();
                loop {
                    let held = q.held_until();
                    let due = match (mode, unsynced_since) {
                        (_, None) => false,
                        (Mode::Durable, Some(_)) => held.is_none(),
                        (Mode::Buffered(d), Some(t)) => t.elapsed() >= d,
                    };
                    if !q.buf.is_empty() || q.shutdown || due || q.flush_requested {
                        break;
                    }
                    // `Config::validate` bounds `d` by MAX_DURATION; an
                    // instant past the monotonic clock's range is no
                    // deadline at all (woken by the next append or flush).
                    match (mode, unsynced_since.and_then(|t| fsync_due(mode, t))) {
                        (Mode::Buffered(_), Some(at)) => {
                            let _ = self.work.wait_until(&mut q, at);
                        }
                        // Held unsynced entries: until the hold ends (its
                        // release notifies) or runs out.
                        (Mode::Durable, _) if unsynced_since.is_some() => match held {
                            Some(until) => {
                                let _ = self.work.wait_until(&mut q, until);
                            }
                            None => break,
                        },
                        _ => self.work.wait(&mut q),
                    }
                }
                std::mem::swap(&mut buf, &mut q.buf);
                let first = q.ops.first().map_or(0, |op| op.0);
                unsynced.append(&mut q.ops);
                let held = q.held_until().is_some();
                if !held {
                    // The fsync below covers every entry swapped out here.
                    q.unheld = false;
                }
                let flush = std::mem::take(&mut q.flush_requested);
                (q.shutdown, flush, first, held)
            };
            if !buf.is_empty() {
                if let Err(e) = out.write(&buf, first) {
                    self.fail(format!("journal write failed: {e}"));
                    return;
                }
                let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
                self.bytes_since_checkpoint.fetch_add(len, Ordering::Relaxed);
                buf.clear();
                unsynced_since.get_or_insert_with(Instant::now);
            }
            let due = match (mode, unsynced_since) {
                (_, None) => false,
                (Mode::Durable, Some(_)) => !held,
                (Mode::Buffered(d), Some(t)) => t.elapsed() >= d,
            };
            if !unsynced.is_empty() && (due || flush || shutdown) {
                if let Err(e) = out.sync() {
                    self.fail(format!("journal fsync failed: {e}"));
                    return;
                }
                let last = unsynced[unsynced.len() - 1].0;
                unsynced_since = None;
                self.publish(last);
                if applier.send(std::mem::take(&mut unsynced)).is_err() {
                    self.fail("the applier thread stopped".to_string());
                    return;
                }
            } else if flush {
                // Nothing unsynced: wake the flusher anyway.
                self.publish(self.durable_seq());
            }
            if shutdown && unsynced.is_empty() && self.queue.lock().buf.is_empty() {
                return;
            }
        }
    }
}

/// When entries unsynced since `since` must be fsynced in `Buffered` mode;
/// `None` in `Durable` mode or when the instant is not representable.
fn fsync_due(mode: Mode, since: Instant) -> Option<Instant> {
    match mode {
        Mode::Buffered(d) => since.checked_add(d),
        Mode::Durable => None,
    }
}

/// The segment being appended to, with rotation.
pub(crate) struct SegmentWriter {
    dir: PathBuf,
    fs: Arc<dyn JournalFs>,
    file: Box<dyn JournalFile>,
    size: u64,
    max_size: u64,
}

impl SegmentWriter {
    /// Creates a fresh segment whose first entry will be `first_seq`.
    pub fn create(
        dir: &Path,
        fs: Arc<dyn JournalFs>,
        first_seq: u64,
        max_size: u64,
    ) -> Result<SegmentWriter> {
        let file = new_segment(dir, fs.as_ref(), first_seq)?;
        Ok(SegmentWriter {
            dir: dir.to_path_buf(),
            fs,
            file,
            size: crate::format::entry::SEGMENT_HEADER_LEN as u64,
            max_size,
        })
    }

    /// Appends `buf`, whose first frame is `first_seq`, rotating first if the
    /// current segment is full.
    fn write(&mut self, buf: &[u8], first_seq: u64) -> std::io::Result<()> {
        let header = crate::format::entry::SEGMENT_HEADER_LEN as u64;
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        if self.size > header && self.size.saturating_add(len) > self.max_size {
            self.file.sync_data()?;
            self.file = new_segment(&self.dir, self.fs.as_ref(), first_seq)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            self.size = header;
        }
        self.file.write_all(buf)?;
        self.size = self.size.saturating_add(len);
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

fn new_segment(dir: &Path, fs: &dyn JournalFs, first_seq: u64) -> Result<Box<dyn JournalFile>> {
    let path = segment_path(dir, first_seq);
    let ctx = || format!("creating journal segment {}", path.display());
    let mut f = fs.create(&path).map_err(|e| Error::io(ctx(), e))?;
    f.write_all(&segment_header()).map_err(|e| Error::io(ctx(), e))?;
    f.sync_data().map_err(|e| Error::io(ctx(), e))?;
    fs.sync_dir(dir).map_err(|e| Error::io(ctx(), e))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(q: &mut Queue) -> u64 {
        let g = q.hold_gen;
        q.holds[slot(g)] += 1;
        q.held_since[slot(g)].get_or_insert_with(Instant::now);
        g
    }

    fn release(q: &mut Queue, g: u64) {
        q.holds[slot(g)] -= 1;
        if q.holds[slot(g)] == 0 {
            q.held_since[slot(g)] = None;
        }
    }

    #[test]
    fn an_fsync_waits_only_for_the_batches_under_way_when_it_became_due() {
        let mut q = Queue::default();
        assert!(q.held_until().is_none(), "no batch: no wait");
        let first = hold(&mut q);
        assert!(q.held_until().is_some(), "the first batch holds the fsync");
        // Batches that start now join the next generation: they do not
        // extend the wait, however many overlap.
        let second = hold(&mut q);
        assert_ne!(slot(first), slot(second));
        assert!(q.held_until().is_some(), "still waiting for the first");
        release(&mut q, first);
        assert!(q.held_until().is_none(), "the first is done: fsync now");
        // The next fsync seals the second generation anew: it waits for the
        // second batch and a third that started before that seal, not for a
        // fourth that starts after it.
        let third = hold(&mut q);
        assert_eq!(slot(third), slot(second));
        assert!(q.held_until().is_some());
        assert_eq!(q.sealed, Some(second));
        let fourth = hold(&mut q);
        release(&mut q, second);
        assert!(q.held_until().is_some(), "the third still holds its generation");
        release(&mut q, third);
        assert!(q.held_until().is_none(), "the fourth does not hold this fsync");
        release(&mut q, fourth);
        // A flush request or shutdown never waits.
        let g = hold(&mut q);
        q.flush_requested = true;
        assert!(q.held_until().is_none());
        q.flush_requested = false;
        q.shutdown = true;
        assert!(q.held_until().is_none());
        release(&mut q, g);
    }

    #[test]
    fn an_entry_of_another_caller_ends_the_deferral() {
        let mut q = Queue::default();
        let g = hold(&mut q);
        assert!(q.held_until().is_some());
        q.unheld = true; // a caller outside the batch appended
        assert!(q.held_until().is_none(), "it must not wait for the batch");
        release(&mut q, g);
    }

    #[test]
    fn a_stalled_batch_defers_the_fsync_at_most_max_hold() {
        let mut q = Queue::default();
        let g = hold(&mut q);
        q.held_since[slot(g)] = Instant::now().checked_sub(MAX_HOLD);
        assert!(q.held_until().is_none(), "past MAX_HOLD the fsync goes ahead");
    }
}
