//! The applier: durable journal entries into sled, in order, then the
//! applied watermark moves. It touches nothing else: the stripes above
//! retire their pending versions by comparing with the watermark.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::Engine;
use super::journal::Batch;

/// Journal entries not yet in sled beyond which writers wait for the
/// applier: bounds the memory of the pending versions and the applier queue.
pub(crate) const MAX_BACKLOG: u64 = 1 << 18;

/// How long the applier gathers durable entries before writing them to sled.
const APPLY_WINDOW: Duration = Duration::from_millis(10);
/// Most journal entries per sled batch.
const APPLY_MAX: usize = 8192;

impl Engine {
    /// The applier thread's loop: applies durable batches to sled and
    /// advances the watermark. Returns when the journal writer stops.
    pub(super) fn run_applier(&self, batches: Receiver<Batch>) {
        // After a clean close, sled stays as that close left it until the
        // first audit has checked it (writers meanwhile fill the pending
        // versions, up to the backlog limit). The filter thread always ends
        // that audit.
        self.wait_audit_quietly();
        while let Ok(mut batch) = batches.recv() {
            // Gather what arrives within the window into one sled batch:
            // fewer, larger batches, and a key's claim and completion (two
            // fsync rounds apart in `Durable`) then cost one sled write.
            let until = Instant::now() + APPLY_WINDOW;
            while batch.len() < APPLY_MAX {
                match batches.recv_deadline(until) {
                    Ok(more) => batch.extend(more),
                    Err(_) => break, // window over, or the writer stopped
                }
            }
            // One fsync can hand over a whole backlog: apply it APPLY_MAX
            // entries at a time, so that sled batches stay bounded and
            // progress shows.
            for chunk in batch.chunks(APPLY_MAX) {
                if self.is_poisoned() {
                    break; // keep draining so the writer is never blocked
                }
                let last = chunk.last().map_or(0, |(seq, _)| *seq);
                if let Err(e) = self.storage.apply(chunk.iter().map(|(_, m)| m), last) {
                    self.poison(format!("applying journal entries to sled failed: {e}"));
                    break;
                }
                self.applied_seq.store(last, Ordering::Release);
                let _g = self.backlog.lock();
                self.backlog_cv.notify_all();
            }
        }
    }
}
