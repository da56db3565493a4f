//! Our write-ahead journal: the durability of every state transition.
//!
//! sled's `flush()` is not an fsync on Linux (sled #1452), so every
//! transition is appended here first, as a crc32-framed entry with a sequence
//! number, and fsynced by a group-commit thread that batches concurrent
//! writers into one `fdatasync`. sled is updated behind the journal, from
//! entries that are already durable, and periodic checkpoints delete the
//! segments that sled has made redundant.

mod segment;
mod writer;

#[cfg(any(test, feature = "testing"))]
pub(crate) use segment::scan_segment_image;
pub(crate) use segment::{
    recover, remove_all_segments, remove_segments_below, remove_segments_from, sync_segments,
};
pub(crate) use writer::{Batch, Journal, Mode, SegmentWriter};
