//! Opening the engine: lock the directory, read META, check sled, replay the
//! journal, record the new boot in META, start a fresh segment, the journal
//! writer and the applier.
//!
//! Replayed entries go where live ones go: returned as pending versions for
//! the stripes, and handed to the applier, which writes them to sled in the
//! background — so opening does not wait for sled. Only a journal longer than
//! [`REPLAY_IN_MEMORY`] entries has its oldest entries written to sled during
//! the open (and then checkpointed).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::hash::{BuildHasher, RandomState};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::journal::{
    Batch, Journal, Mode, SegmentWriter, recover, remove_all_segments, remove_segments_below,
    remove_segments_from, sync_segments,
};
use super::lifecycle::Lifecycle;
use super::meta::{MetaFile, TOKEN_BLOCK};
use super::sled_check;
use super::sled_watch::AuditState;
use super::storage::Storage;
use super::{Engine, Seq};
use crate::config::{Config, Durability};
use crate::core::Record;
use crate::error::{Error, Result};
use crate::format::entry::Mutation;
use crate::format::marker::Marker;
use crate::format::meta::{FLAG_SLED_LOST, FLAG_SLED_MARKED, FLAG_SLED_RECOUNT, Meta};
use crate::format::record;
use crate::poison::Poison;

/// An open engine, and the journal entries replayed at open that are not in
/// sled yet: `(seq, raw key, record)` (`None`: a delete), in order. The
/// stripes hold them as pending versions until the applier's watermark
/// passes them.
pub(crate) struct Opened {
    pub engine: Arc<Engine>,
    pub tail: Vec<Replayed>,
}

/// One replayed entry not yet in sled: `(seq, raw key, record)`.
pub(crate) type Replayed = (Seq, Arc<[u8]>, Option<Arc<Record>>);

/// Entries replayed into sled per batch during recovery, and per batch handed
/// to the applier after it.
const REPLAY_BATCH: usize = 4096;
/// Most replayed entries kept in memory (pending) rather than written to sled
/// during the open: half the applier backlog that makes writers wait.
const REPLAY_IN_MEMORY: usize = (super::MAX_BACKLOG / 2) as usize;

/// Takes the directory's LOCK file (an OS advisory lock, released when the
/// process dies, so a crash never leaves a stale lock behind).
fn lock(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    // A child process forked by another thread of this process holds a copy
    // of every descriptor until it calls exec, and with it any lock we just
    // released: retry briefly before concluding that another owner exists.
    let give_up = Instant::now() + Duration::from_millis(500);
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(TryLockError::WouldBlock) if Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked { path: dir.to_path_buf() });
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::io(format!("locking {}", path.display()), e));
            }
        }
    }
}

pub(super) fn open(dir: &Path, config: &Config) -> Result<Opened> {
    let fs_ = config.journal_fs.clone();
    fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating data directory {}", dir.display()), e))?;
    let lock_file = lock(dir)?;
    let now = config.clock.now_millis();
    let sled_dir = dir.join("sled");
    let journal_dir = dir.join("journal");
    let old = match MetaFile::read(dir)? {
        Some(m) => m,
        None if sled_dir.exists() || journal_dir.exists() => {
            return Err(Error::Corrupt {
                key: b"META".to_vec(),
                reason: format!(
                    "{} holds data but no META file; refusing to start over on top of it",
                    dir.display()
                ),
            });
        }
        None => {
            // A new store: META goes first, so that a crash anywhere later in
            // this first open leaves a directory the next open accepts.
            let dir_id = (RandomState::new().hash_one(now) as u32).max(1);
            let fresh = Meta {
                dir_id,
                boot: 0,
                token_ceiling: 0,
                checkpoint_seq: 0,
                created_at: now,
                flags: 0,
                sled_id: 0,
                next_sled_id: 0,
            };
            MetaFile::new(dir, fresh).store(fresh)?;
            fresh
        }
    };
    fs::create_dir_all(&journal_dir)
        .map_err(|e| Error::io(format!("creating {}", journal_dir.display()), e))?;
    let storage =
        Storage::open(&sled_dir, config.sled_cache_bytes).map_err(sled_check::unreadable)?;
    storage.set_boot(old.boot + 1);
    // Does sled hold what META says it should? Refuse to serve if not.
    let as_is = config.accept_sled_as_is;
    let found = storage.read_marker().map_err(sled_check::unreadable)?;
    let count = || storage.count_records().map_err(sled_check::unreadable);
    let marker = sled_check::at_open(&old, found, count, as_is)?;
    // A new copy id for this open: recorded in META first (as the one also
    // accepted), then given to sled's marker; the next checkpoint makes it
    // the only one. A copy of the directory opened on its own draws its own.
    let sled_id = RandomState::new().hash_one((old.dir_id, now, "sled")) | 1;
    // sled's count was taken during this open (a store not yet marked, or
    // accepted as it is); or the first audit rebuilds it (the last session
    // ended uncleanly); or it checks it (a clean close: then sled must stay
    // as it is until the check).
    let remarked = !old.sled_marked() || as_is;
    let rebase = !remarked && old.sled_recount();
    let check = !remarked && !rebase;
    // A new marker (synced below, before META names its id) gets the new
    // id at once; a checked one keeps its id until META has the new one.
    storage.start_marking(if remarked { Marker { sled_id, ..marker } } else { marker })?;

    // Replay what the journal holds beyond the checkpoint: the newest
    // entries stay in `tail` (they become pending versions), older ones go
    // to sled now.
    let mut tail: VecDeque<(u64, Mutation)> = VecDeque::new();
    let mut to_sled = Vec::with_capacity(REPLAY_BATCH);
    let mut in_sled = old.checkpoint_seq;
    let recovery = recover(&journal_dir, old.checkpoint_seq, &mut |seq, m| {
        tail.push_back((seq, m));
        if tail.len() > REPLAY_IN_MEMORY
            && let Some((seq, m)) = tail.pop_front()
        {
            to_sled.push(m);
            in_sled = seq;
            if to_sled.len() >= REPLAY_BATCH {
                storage.apply(to_sled.iter(), in_sled)?;
                to_sled.clear();
            }
        }
        Ok(())
    })?;
    // The pending versions need their records decoded; a record this build
    // cannot read (say, of a newer version) is left to sled, as all used to be.
    let decoded: Option<Vec<Option<Arc<Record>>>> = tail
        .iter()
        .map(|(_, m)| match &m.put {
            Some((bytes, _)) => record::decode(&m.key, bytes).ok().map(|r| Some(Arc::new(r))),
            None => Some(None),
        })
        .collect();
    let decoded = match decoded {
        Some(d) => d,
        None => {
            to_sled.extend(tail.drain(..).map(|(seq, m)| {
                in_sled = seq;
                m
            }));
            Vec::new()
        }
    };
    storage.apply(to_sled.iter(), in_sled)?;
    drop(to_sled);

    // Record the new boot and token ceiling; checkpoint what went to sled
    // (and a new marker: META may say sled is marked only once the marker
    // is durable).
    if in_sled != old.checkpoint_seq || remarked {
        storage.sync()?;
    }
    if !tail.is_empty() {
        // The tail is about to be served as durable, yet a process killed
        // before its fsync may have left it only in the page cache.
        sync_segments(&journal_dir)?;
    }
    let next = Meta {
        dir_id: old.dir_id,
        boot: old.boot + 1,
        token_ceiling: old.token_ceiling.saturating_add(TOKEN_BLOCK),
        checkpoint_seq: if tail.is_empty() { recovery.last_seq } else { in_sled },
        created_at: old.created_at,
        // Marked; and "open, sled may change" (`SLED_RECOUNT`) until a clean
        // close — set now, unless the first audit must check sled as the
        // last close left it (then it sets the flag when it ends).
        flags: (old.flags | FLAG_SLED_MARKED | if check { 0 } else { FLAG_SLED_RECOUNT })
            & if as_is { !FLAG_SLED_LOST } else { u32::MAX },
        sled_id: if remarked { sled_id } else { marker.sled_id },
        next_sled_id: if remarked { 0 } else { sled_id },
    };
    let mut meta = MetaFile::new(dir, old);
    meta.store(next)?;
    if !remarked {
        storage.set_sled_id(sled_id)?;
    }
    let next_seq = recovery.last_seq + 1;
    if tail.is_empty() {
        remove_all_segments(&journal_dir)?;
    } else {
        // The tail's segments stay until a checkpoint covers them.
        remove_segments_below(&journal_dir, in_sled)?;
        remove_segments_from(&journal_dir, next_seq)?;
    }
    let writer = SegmentWriter::create(&journal_dir, fs_, next_seq, config.segment_bytes)?;

    let poison = Arc::new(Poison::default());
    let saved_counters = storage.load_counters()?;
    let engine = Arc::new(Engine {
        durability: config.durability,
        checkpoint_every: config.checkpoint_interval.map(crate::clock::ceil_to_ms),
        checkpoint_bytes: config.checkpoint_bytes,
        journal: Journal::new(next_seq, poison.clone()),
        journal_dir,
        storage,
        poison,
        boot: next.boot,
        // Drawn at random at each open: a copy of the directory, or this
        // directory opened again, never accepts this open's leases.
        store_id: RandomState::new().hash_one((next.dir_id, next.created_at, next.boot)) | 1,
        // Saturating: a ceiling at u64::MAX leaves no token to issue, and
        // claims then fail with TokenSpaceExhausted instead of wrapping.
        next_token: AtomicU64::new(old.token_ceiling.saturating_add(1)),
        ceiling: AtomicU64::new(next.token_ceiling),
        meta: Mutex::new(meta),
        applied_seq: AtomicU64::new(next.checkpoint_seq),
        backlog: Mutex::new(()),
        backlog_cv: Condvar::new(),
        lifecycle: Lifecycle::new(lock_file),
        // Claims of keys found nowhere wait for the first audit only when
        // it checks a count that open did not take itself. After an unclean
        // end sled's count is rebuilt, not checked: sled's batches are not
        // atomic across its own I/O errors (a full disk).
        audit: AuditState::new(check, rebase),
        recovery,
        saved_counters,
    });

    let mode = match config.durability {
        Durability::Durable => Mode::Durable,
        Durability::Buffered { max_delay } => Mode::Buffered(max_delay),
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    // The replayed tail: pending versions, on their way to sled.
    let mut pending = Vec::with_capacity(tail.len());
    let mut batch: Batch = Vec::with_capacity(REPLAY_BATCH);
    for ((seq, m), record) in tail.into_iter().zip(decoded) {
        pending.push((seq, m.key.clone(), record));
        batch.push((seq, m));
        if batch.len() >= REPLAY_BATCH {
            let _ = tx.send(std::mem::take(&mut batch));
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
    let journal = engine.spawn("journal", move |e| e.journal.run(writer, mode, tx))?;
    engine.add_pipeline(journal);
    match engine.spawn("applier", move |e| e.run_applier(rx)) {
        Ok(applier) => engine.add_pipeline(applier),
        Err(e) => {
            // Stop the journal writer and let go of the directory.
            engine.mark_closed();
            let _ = engine.stop_pipeline(Duration::from_secs(5));
            engine.release_lock();
            return Err(e);
        }
    }
    Ok(Opened { engine, tail: pending })
}
