//! The engine's life: one "closed" flag every wait loop checks, the sleep of
//! the background threads (cut short by close), the threads themselves
//! (a panic in one poisons the store instead of dying silently) and the
//! directory's LOCK.

use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::Engine;
use crate::error::{Error, Result};

/// The one "we are closing" flag, with what waits on it.
pub(super) struct Lifecycle {
    closed: AtomicBool,
    /// Background threads sleep here between rounds.
    sleep: Mutex<()>,
    sleep_cv: Condvar,
    /// The journal writer and the applier: stopped last, after they drained.
    pipeline: Mutex<Vec<JoinHandle<()>>>,
    /// The directory's LOCK, held until the store closes.
    lock: Mutex<Option<File>>,
}

impl Lifecycle {
    pub fn new(lock: File) -> Lifecycle {
        Lifecycle {
            closed: AtomicBool::new(false),
            sleep: Mutex::new(()),
            sleep_cv: Condvar::new(),
            pipeline: Mutex::new(Vec::new()),
            lock: Mutex::new(Some(lock)),
        }
    }
}

/// The journal writer's thread name: while it runs, the directory's LOCK is
/// kept.
pub(crate) const JOURNAL_THREAD: &str = "idemkv-journal";

impl Engine {
    /// Refuses every call after close (reads too).
    #[inline]
    pub fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Refuses writes after close or poisoning.
    #[inline]
    pub fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        self.poison.check()
    }

    /// `Err(Poisoned)` once the store is poisoned (closed or not).
    pub fn check_poison(&self) -> Result<()> {
        self.poison.check()
    }

    /// Whether close has begun.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.lifecycle.closed.load(Ordering::Acquire)
    }

    /// Whether the store is poisoned.
    #[inline]
    pub fn is_poisoned(&self) -> bool {
        self.poison.is_set()
    }

    /// Poisons the store with `reason` and wakes every durability waiter.
    pub fn poison(&self, reason: String) {
        self.poison.set(reason);
        self.journal.wake_waiters();
    }

    /// Marks the store closed and wakes the engine's waiters (throttled
    /// writers, sleeping background threads). Returns false if it was
    /// already closed.
    pub fn mark_closed(&self) -> bool {
        if self.lifecycle.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        {
            let _g = self.lifecycle.sleep.lock();
            self.lifecycle.sleep_cv.notify_all();
        }
        {
            let _g = self.backlog.try_lock_for(Duration::from_millis(100));
            self.backlog_cv.notify_all();
        }
        true
    }

    /// Sleeps up to `d` or until the store closes; true if it is closing.
    pub fn sleep(&self, d: Duration) -> bool {
        let mut g = self.lifecycle.sleep.lock();
        if !self.is_closed() {
            let _ = self.lifecycle.sleep_cv.wait_for(&mut g, d);
        }
        self.is_closed()
    }

    /// Starts a thread named `idemkv-{name}` running `body`; a panic in it
    /// poisons the store.
    pub fn spawn(
        self: &Arc<Self>,
        name: &'static str,
        body: impl FnOnce(&Arc<Engine>) + Send + 'static,
    ) -> Result<JoinHandle<()>> {
        let engine = self.clone();
        std::thread::Builder::new()
            .name(format!("idemkv-{name}"))
            .spawn(move || {
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(&engine))) {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    engine.poison(format!("the {name} thread panicked: {msg}"));
                }
            })
            .map_err(|e| Error::io(format!("starting the {name} thread"), e))
    }

    /// Adds the journal writer and applier threads (stopped by `stop_pipeline`).
    pub(super) fn add_pipeline(&self, t: JoinHandle<()>) {
        self.lifecycle.pipeline.lock().push(t);
    }

    /// Asks the journal writer to write out and stop, and waits for it and
    /// the applier to drain (see `join_within`). Returns the names of the
    /// threads still running.
    pub fn stop_pipeline(&self, bound: Duration) -> Vec<String> {
        self.journal.shutdown();
        let pipeline: Vec<_> = self.lifecycle.pipeline.lock().drain(..).collect();
        self.join_within(pipeline, bound)
    }

    /// Joins `threads`, giving up once `bound` passes without progress of
    /// the journal or the applier. Returns the names of those still running
    /// (they are left detached).
    pub fn join_within(&self, threads: Vec<JoinHandle<()>>, bound: Duration) -> Vec<String> {
        let marker = || (self.applied(), self.journal.durable_seq(), self.journal.next_seq());
        let mut seen = marker();
        let mut since = Instant::now();
        let mut pause = Duration::from_micros(200);
        loop {
            if threads.iter().all(JoinHandle::is_finished) {
                for t in threads {
                    let _ = t.join();
                }
                return Vec::new();
            }
            let now = marker();
            if now != seen {
                seen = now;
                since = Instant::now();
            } else if since.elapsed() >= bound {
                return threads
                    .iter()
                    .filter(|t| !t.is_finished())
                    .map(|t| t.thread().name().unwrap_or("idemkv").to_string())
                    .collect();
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// Drops sled, waiting at most `bound` (see `Storage::close`); false if
    /// it stopped waiting.
    pub fn close_storage(&self, bound: Duration) -> bool {
        self.storage.close(bound)
    }

    /// Releases the directory's LOCK.
    pub fn release_lock(&self) {
        self.lifecycle.lock.lock().take();
    }
}
