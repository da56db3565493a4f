//! Closing the embedded backend in bounded time.
//!
//! Close marks the store closed (waking every waiter), stops the background
//! threads, lets the journal writer write out and the applier drain, takes a
//! final checkpoint and drops sled. Each step that waits on another thread or
//! on sled gives up after [`STEP_TIMEOUT`] without progress: once sled has hit
//! a full disk, its final flush (and everything behind its process-wide batch
//! lock) can wait forever, and close must still return and let go of the
//! directory.

use std::sync::Arc;
use std::time::Duration;

use super::Embedded;
use crate::error::{Error, Result};

/// How long close waits for one step that shows no progress: a background
/// thread to stop (progress: the journal or the applier moving on), the final
/// checkpoint, sled's drop.
pub(crate) const STEP_TIMEOUT: Duration = Duration::from_secs(5);

impl Embedded {
    /// Stops the background threads, writes out, checkpoints and drops sled,
    /// within bounded time. `Err(Closed)` if the store was already closed.
    pub(super) fn shutdown(self: &Arc<Self>) -> Result<()> {
        let e = &*self.engine;
        if !e.mark_closed() {
            return Err(Error::Closed);
        }
        self.wake_all();
        let mut stuck: Vec<String> = Vec::new();
        let maintenance: Vec<_> = self.maintenance.lock().drain(..).collect();
        let mut left = e.join_within(maintenance, STEP_TIMEOUT);
        left.extend(e.stop_pipeline(STEP_TIMEOUT));
        let journal_stopped = !left.iter().any(|name| name == crate::engine::JOURNAL_THREAD);
        stuck.extend(left.into_iter().map(|name| format!("the {name} thread to stop")));

        // A poisoned store is not checkpointed: its journal is the truth. Nor
        // is one whose threads are stuck (in sled, presumably).
        let mut result = e.check_poison();
        if result.is_ok() && stuck.is_empty() {
            let store = Arc::clone(self);
            // Read before the checkpoint syncs sled (see `close_cleanly`).
            let rebuilt = !e.rebase_pending();
            let checkpoint =
                move || store.checkpoint_now().and_then(|_| store.engine.close_cleanly(rebuilt));
            match run_within(STEP_TIMEOUT, checkpoint) {
                Some(r) => result = r,
                None => stuck.push("the final checkpoint".into()),
            }
        }
        if !e.close_storage(STEP_TIMEOUT) {
            stuck.push("sled to close (its final flush)".into());
        }
        // Release the directory now, even if other clones of the handle
        // live — unless the journal writer may still write to it.
        if journal_stopped {
            e.release_lock();
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
