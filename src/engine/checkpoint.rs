//! The checkpoint protocol: make sled durable up to the applied watermark
//! (with the counters), record the watermark in META, delete the journal
//! segments it covers — and when one is due.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::Engine;
use super::journal::remove_segments_below;
use crate::error::Result;

impl Engine {
    /// Makes sled durable up to the applied watermark together with
    /// `counters` (cumulative, by namespace), records the watermark in META
    /// and deletes the journal segments it covers. Returns the watermark.
    /// Blocks for sled's flush and several fsyncs. A failure poisons the
    /// store (the journal stays the truth).
    ///
    /// Takes META's lock: callers hold no stripe lock (a claim never takes
    /// META under one).
    pub fn checkpoint(&self, counters: &[(String, Vec<u64>)]) -> Result<u64> {
        let mut meta = self.meta.lock();
        let applied = self.applied();
        let written = self.journal.bytes_since_checkpoint.swap(0, Ordering::Relaxed);
        let res = (|| {
            self.storage.save_counters(counters)?;
            self.storage.sync()?;
            // sled is synced with the marker's new copy id (set at open):
            // from now on it is the only one accepted.
            if applied != meta.current.checkpoint_seq || meta.current.next_sled_id != 0 {
                let mut m = meta.current;
                m.checkpoint_seq = applied;
                if m.next_sled_id != 0 {
                    m.sled_id = m.next_sled_id;
                    m.next_sled_id = 0;
                }
                meta.store(m)?;
            }
            remove_segments_below(&self.journal_dir, applied)
        })();
        if let Err(e) = res {
            self.journal.bytes_since_checkpoint.fetch_add(written, Ordering::Relaxed);
            self.poison(format!("checkpoint failed: {e}"));
            return Err(e);
        }
        Ok(applied)
    }

    /// Whether a checkpoint is due: `checkpoint_interval` has passed since
    /// `last`, or the journal grew by `checkpoint_bytes` since the last one.
    pub fn checkpoint_due(&self, last: Instant) -> bool {
        let bytes = self.journal.bytes_since_checkpoint.load(Ordering::Relaxed);
        self.checkpoint_every.is_some_and(|e| last.elapsed() >= e) || bytes >= self.checkpoint_bytes
    }

    /// How often the checkpointer looks whether a checkpoint is due.
    pub fn checkpoint_tick(&self) -> std::time::Duration {
        let second = std::time::Duration::from_secs(1);
        self.checkpoint_every.unwrap_or(second).min(second)
    }
}
