//! Closing a store in bounded time.
//!
//! Close marks the store closed (waking every waiter), stops the background
//! threads, lets the journal writer write out and the applier drain, takes a
//! final checkpoint and drops sled. Each step that waits on another thread or
//! on sled gives up after [`STEP_TIMEOUT`] without progress: once sled has hit
//! a full disk, its final flush (and everything behind its process-wide batch
//! lock) can wait forever, and close must still return and let go of the
//! directory.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Inner;
use super::shared::Shared;
use crate::error::{Error, Result};

/// How long close waits for one step that shows no progress: a background
/// thread to stop (progress: the journal or the applier moving on), the final
/// checkpoint, sled's drop.
pub(crate) const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// The journal writer's thread name (see `open`): while it runs, the
/// directory's LOCK is kept.
const JOURNAL_THREAD: &str = "idemkv-journal";

impl Inner {
    /// Stops the background threads, writes out, checkpoints and drops sled,
    /// within bounded time. `Err(Closed)` if the store was already closed.
    pub(super) fn shutdown(&self) -> Result<()> {
        let s = &self.shared;
        if !s.mark_closed() {
            return Err(Error::Closed);
        }
        let mut stuck: Vec<String> = Vec::new();
        let maintenance: Vec<_> = self.maintenance.lock().drain(..).collect();
        let mut left = join_within(s, maintenance);
        s.journal.shutdown();
        let pipeline: Vec<_> = self.pipeline.lock().drain(..).collect();
        left.extend(join_within(s, pipeline));
        let journal_stopped = !left.iter().any(|name| name == JOURNAL_THREAD);
        stuck.extend(left.into_iter().map(|name| format!("the {name} thread to stop")));

        // A poisoned store is not checkpointed: its journal is the truth. Nor
        // is one whose threads are stuck (in sled, presumably).
        let mut result = s.poison.check();
        if result.is_ok() && stuck.is_empty() {
            let shared = Arc::clone(s);
            // Read before the checkpoint syncs sled (see `close_cleanly`).
            let rebuilt = !shared.rebase_pending.load(Ordering::Acquire);
            let checkpoint =
                move || shared.checkpoint().and_then(|_| shared.close_cleanly(rebuilt));
            match run_within(STEP_TIMEOUT, checkpoint) {
                Some(r) => result = r.map(drop),
                None => stuck.push("the final checkpoint".into()),
            }
        }
        if !s.storage.close(STEP_TIMEOUT) {
            stuck.push("sled to close (its final flush)".into());
        }
        // Release the directory now, even if other clones of the handle
        // live — unless the journal writer may still write to it.
        if journal_stopped {
            self.lock.lock().take();
        }
        if stuck.is_empty() {
            return result;
        }
        let mut what = format!("{} (no progress for {STEP_TIMEOUT:?})", stuck.join(", "));
        if let Err(e) = &result {
            what.push_str(&format!("; before that: {e}"));
        }
        tracing::error!(target: "idemkv", %what, "close gave up waiting");
        Err(Error::CloseTimedOut { what, lock_released: journal_stopped })
    }
}

/// Joins `threads`, giving up once [`STEP_TIMEOUT`] passes without progress
/// of the journal or the applier. Returns the names of those still running
/// (they are left detached).
fn join_within(s: &Shared, threads: Vec<JoinHandle<()>>) -> Vec<String> {
    let marker =
        || (s.applied_seq.load(Ordering::Acquire), s.journal.durable_seq(), s.journal.next_seq());
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
        } else if since.elapsed() >= STEP_TIMEOUT {
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

/// Runs `f` on a helper thread and waits up to `bound` for its answer;
/// `None` if it did not answer in time (the thread is left running).
fn run_within<T: Send + 'static>(
    bound: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("idemkv-close".into()).spawn(move || {
        let _ = tx.send(f());
    });
    match spawned {
        Ok(_) => rx.recv_timeout(bound).ok(),
        Err(_) => None,
    }
}
