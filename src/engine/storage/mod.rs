//! The sled layer: materialized records and the expiry index.
//!
//! One sled tree holds both, under one-byte prefixes, so that the records and
//! their index entries change together in one atomic `apply_batch`:
//!
//! ```text
//! b'r' | raw key                          -> encoded record (format::record)
//! b'x' | due (u64 big-endian) | tag (u64 big-endian)
//!                                         -> expiry group (format::expiry)
//! b'm' | namespace                        -> counters (format::counters)
//! b's'                                    -> the sled marker (format::marker)
//! ```
//! The marker counts the records and names the last journal entry applied;
//! every batch that changes records rewrites it, in the same atomic batch,
//! so that whatever state sled recovers carries the marker describing it.
//! Open and `verify` compare it with META and with a count of the records:
//! a sled directory that was deleted, damaged or replaced by an older copy
//! is detected instead of silently forgetting completed keys.
//! An expiry group names up to 64 keys written by one batch whose records
//! expire close together, `due` being the earliest of their expiry times:
//! one index write per group instead of one per record, and no index write
//! at all to retire a record's previous expiry (a group may name keys whose
//! record has moved on; the sweeper checks each record itself). Big-endian
//! `due` makes sled's byte order time order, so the sweeper reads only the
//! due prefix of the index: work proportional to expired records.
//!
//! Entries of layout 1 (`b'x' | expires_at | raw key -> empty`) are still
//! read, as groups of one.
//!
//! sled is written only from journal entries that are already durable, and
//! is made durable itself only at checkpoints ([`Storage::sync`]): its
//! `flush()` ends in `sync_file_range` on Linux, so `sync` also fsyncs
//! sled's files and directories itself.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{MappedRwLockReadGuard, Mutex, RwLock, RwLockReadGuard};

use crate::core::Record;
use crate::error::{Error, Result};
use crate::format::entry::Mutation;
use crate::format::expiry::{self, GROUP_MAX};
use crate::format::marker::{self, Marker};
use crate::format::record;

mod audit;

pub(crate) use audit::Audited;

const RECORD_PREFIX: u8 = b'r';
const INDEX_PREFIX: u8 = b'x';
const COUNTERS_PREFIX: u8 = b'm';
const MARKER_KEY: &[u8] = b"s";

/// An expiry-index entry that is due.
pub(crate) struct DueGroup {
    /// Its sled key, to replace it once handled.
    pub position: Vec<u8>,
    /// The raw keys it names, or why they cannot be read.
    pub keys: std::result::Result<Vec<Vec<u8>>, String>,
}

/// Expiry times within one such span (1.024 s) may share a group.
const GROUP_SPAN_SHIFT: u32 = 10;

/// The sled database of a store. Closed (sled dropped) when the store
/// closes, even while handles to the store remain; calls then fail with
/// `Error::Closed`.
pub(crate) struct Storage {
    db: RwLock<Option<sled::Db>>,
    dir: PathBuf,
    /// Tags of the expiry groups this process writes: `boot << 32` plus a
    /// counter, unique across processes because boot epochs are.
    next_tag: AtomicU64,
    /// The marker as sled holds it (once open has checked sled and started
    /// keeping it), and the audit under way. Held while records change.
    marker: Mutex<audit::Tracked>,
    /// One audit at a time.
    auditing: Mutex<()>,
}

fn record_key(raw: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + raw.len());
    k.push(RECORD_PREFIX);
    k.extend_from_slice(raw);
    k
}

#[allow(clippy::big_endian_bytes)] // index keys sort by time
fn index_key(due: u64, tag: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(INDEX_PREFIX);
    k.extend_from_slice(&due.to_be_bytes());
    k.extend_from_slice(&tag.to_be_bytes());
    k
}

impl Storage {
    /// Opens sled in `dir`. The caller holds the store's LOCK, so a lock
    /// conflict on sled's own file can only be a previous `Store` of this
    /// process whose sled threads are still letting go: retry for a while.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Storage> {
        remove_unfinished_snapshots(dir)?;
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let config =
                sled::Config::new().path(dir).cache_capacity(cache_bytes).flush_every_ms(Some(500));
            // sled 0.34.7 panics on some damaged files (e.g. "tried to
            // serialize Uninitialized" while advancing a snapshot): that is
            // damage, reported as sled's own `Corruption`.
            let opened =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open()))
                    .unwrap_or(Err(sled::Error::Corruption { at: None, bt: () }));
            match opened {
                Ok(db) => {
                    return Ok(Storage {
                        db: RwLock::new(Some(db)),
                        dir: dir.to_path_buf(),
                        next_tag: AtomicU64::new(0),
                        marker: Mutex::new(audit::Tracked::default()),
                        auditing: Mutex::new(()),
                    });
                }
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && Instant::now() < give_up =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(Error::storage(format!("opening {}", dir.display()), e)),
            }
        }
    }

    fn db(&self) -> Result<MappedRwLockReadGuard<'_, sled::Db>> {
        RwLockReadGuard::try_map(self.db.read(), Option::as_ref).map_err(|_| Error::Closed)
    }

    /// Drops sled; later calls fail with `Closed`. Waits at most `bound`,
    /// first for calls in progress to let go of sled, then for sled's drop
    /// (its final flush), which runs on a helper thread: after sled hit a
    /// full disk that flush can wait forever for a buffer that never becomes
    /// stable. Returns false if it stopped waiting (sled's files then stay
    /// open, and its own lock held, until the helper thread finishes —
    /// possibly at process exit).
    pub fn close(&self, bound: Duration) -> bool {
        let started = Instant::now();
        let Some(mut slot) = self.db.try_write_for(bound) else { return false };
        let Some(db) = slot.take() else { return true };
        drop(slot);
        let (done_tx, done) = std::sync::mpsc::channel::<()>();
        let dropper =
            std::thread::Builder::new().name("idemkv-sled-close".into()).spawn(move || {
                drop(db);
                let _ = done_tx.send(());
            });
        match dropper {
            // A failed spawn dropped the closure, and sled with it, right here.
            Err(_) => true,
            // Disconnected: the helper ended (a panic in sled's drop) — not stuck.
            Ok(_) => !matches!(
                done.recv_timeout(bound.saturating_sub(started.elapsed())),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            ),
        }
    }

    /// The record of `raw`, as stored (possibly expired).
    pub fn get(&self, raw: &[u8]) -> Result<Option<Record>> {
        let v =
            self.db()?.get(record_key(raw)).map_err(|e| Error::storage("reading a record", e))?;
        v.map(|bytes| record::decode(raw, &bytes)).transpose()
    }

    /// Sets the boot epoch of this process: expiry-group tags are
    /// `boot << 32 | n`. Called once at open, before anything is applied.
    pub fn set_boot(&self, boot: u64) {
        self.next_tag.store(boot << 32, Ordering::Relaxed);
    }

    /// Applies mutations, in order, in one atomic sled batch; `applied_seq`
    /// is the journal entry of the last one.
    ///
    /// Coalesced per key first: a claim and its completion in one batch cost
    /// one record write. The records put are indexed by expiry groups (one
    /// index write per up to 64 records); deletes and superseded versions
    /// need no index write — the sweeper drops references to records that
    /// have moved on. Once marking has started, the batch also rewrites the
    /// marker (the record count moves by the keys this batch creates and
    /// deletes, each looked up in sled first).
    pub fn apply<'a>(
        &self,
        mutations: impl IntoIterator<Item = &'a Mutation>,
        applied_seq: u64,
    ) -> Result<()> {
        let mut last: HashMap<&[u8], &Mutation> = HashMap::new();
        for m in mutations {
            last.insert(&m.key[..], m);
        }
        let db = self.db()?;
        let mut tracked = self.marker.lock();
        let mut batch = sled::Batch::default();
        let mut expiring = Vec::new();
        let mut records = tracked.marker.map(|m| m.records);
        for (key, m) in last {
            let k = record_key(key);
            if let Some(n) = records.as_mut() {
                let existed = db
                    .contains_key(&k)
                    .map_err(|e| Error::storage("reading a record before applying", e))?;
                let delta = i64::from(m.put.is_some()) - i64::from(existed);
                *n = n.saturating_add_signed(delta);
                tracked.note(key, delta);
            }
            match &m.put {
                Some((bytes, expires_at)) => {
                    batch.insert(k, &bytes[..]);
                    expiring.push((*expires_at, key));
                }
                None => batch.remove(k),
            }
        }
        self.add_groups(&mut batch, &mut expiring);
        let next = tracked.marker.zip(records).map(|(m, records)| Marker {
            applied_seq: m.applied_seq.max(applied_seq),
            records,
            ..m
        });
        if let Some(next) = next {
            batch.insert(MARKER_KEY, &marker::encode(&next)[..]);
        }
        let applied = db.apply_batch(batch);
        tracked.settle(next, applied.is_ok());
        applied.map_err(|e| Error::storage("applying journal entries", e))
    }

    /// Adds to `batch` the expiry groups naming `expiring` (expiry, raw key).
    fn add_groups(&self, batch: &mut sled::Batch, expiring: &mut [(u64, &[u8])]) {
        expiring.sort_unstable();
        let mut rest = &expiring[..];
        while let Some(&(first, _)) = rest.first() {
            let span = first >> GROUP_SPAN_SHIFT;
            let n = rest
                .iter()
                .take(GROUP_MAX)
                .take_while(|(e, _)| *e >> GROUP_SPAN_SHIFT == span)
                .count();
            let (group, more) = rest.split_at(n);
            let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
            batch.insert(index_key(first, tag), expiry::encode(group.iter().map(|(_, k)| *k)));
            rest = more;
        }
    }

    /// Up to `limit` expiry groups due at `now` (their earliest expiry has
    /// come), after `after` (a position returned earlier) if given.
    #[allow(clippy::big_endian_bytes)] // index keys sort by time
    pub fn due(&self, now: u64, after: Option<&[u8]>, limit: usize) -> Result<Vec<DueGroup>> {
        let start = match after {
            Some(pos) => std::ops::Bound::Excluded(pos.to_vec()),
            None => std::ops::Bound::Included(vec![INDEX_PREFIX]),
        };
        // Everything due at or before now sorts below (now + 1, nothing).
        let mut end = vec![INDEX_PREFIX];
        end.extend_from_slice(&now.saturating_add(1).to_be_bytes());
        let mut out = Vec::new();
        let db = self.db()?;
        for item in db.range::<Vec<u8>, _>((start, std::ops::Bound::Excluded(end))).take(limit) {
            let (k, v) = item.map_err(|e| Error::storage("scanning the expiry index", e))?;
            let keys = match (k.len(), v.is_empty()) {
                (0..=9, _) => Err(format!("expiry-index key of {} bytes", k.len())),
                (_, true) => Ok(vec![k[9..].to_vec()]), // layout 1: one key, in the sled key
                (_, false) => expiry::decode(&v),
            };
            out.push(DueGroup { position: k.to_vec(), keys });
        }
        Ok(out)
    }

    /// Replaces the handled expiry group at `position` by groups naming the
    /// records it named that expire later (`remaining`: expiry, raw key).
    pub fn replace_group(&self, position: &[u8], remaining: &mut [(u64, &[u8])]) -> Result<()> {
        let mut batch = sled::Batch::default();
        batch.remove(position);
        self.add_groups(&mut batch, remaining);
        self.db()?.apply_batch(batch).map_err(|e| Error::storage("replacing an expiry group", e))
    }

    /// Up to `limit` stored records whose raw key starts with `prefix`, in
    /// key order, after `after` (a raw key) if given.
    pub fn scan_records(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, sled::IVec)>> {
        // After a key below the prefix (another namespace's) the prefix's
        // own start comes first.
        let start = match after {
            Some(raw) if raw >= prefix => std::ops::Bound::Excluded(record_key(raw)),
            _ => std::ops::Bound::Included(record_key(prefix)),
        };
        let mut out = Vec::new();
        for item in self.db()?.range::<Vec<u8>, _>((start, std::ops::Bound::Unbounded)) {
            let (k, v) = item.map_err(|e| Error::storage("scanning records", e))?;
            if k.first() != Some(&RECORD_PREFIX) || !k[1..].starts_with(prefix) {
                break;
            }
            out.push((k[1..].to_vec(), v));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    #[cfg(any(test, feature = "testing"))]
    /// Number of distinct keys the expiry index names (for tests).
    pub fn index_len(&self) -> Result<usize> {
        let mut keys = std::collections::HashSet::new();
        for item in self.db()?.scan_prefix([INDEX_PREFIX]) {
            let (k, v) = item.map_err(|e| Error::storage("scanning the expiry index", e))?;
            if v.is_empty() {
                keys.insert(k.get(9..).unwrap_or_default().to_vec());
            } else {
                keys.extend(expiry::decode(&v).unwrap_or_default());
            }
        }
        Ok(keys.len())
    }

    #[cfg(any(test, feature = "testing"))]
    /// Writes one raw value under a record key, bypassing the codec. Only for
    /// tests that damage a record on purpose.
    #[doc(hidden)]
    pub fn put_raw_record(&self, raw: &[u8], bytes: &[u8]) -> Result<()> {
        let db = self.db()?;
        let mut tracked = self.marker.lock();
        let k = record_key(raw);
        let existed = db.contains_key(&k).map_err(|e| Error::storage("reading", e))?;
        let mut batch = sled::Batch::default();
        batch.insert(k, bytes);
        let delta = i64::from(!existed);
        let next =
            tracked.marker.map(|m| Marker { records: m.records.saturating_add_signed(delta), ..m });
        if let Some(next) = next {
            batch.insert(MARKER_KEY, &marker::encode(&next)[..]);
            tracked.note(raw, delta);
        }
        let applied = db.apply_batch(batch);
        tracked.settle(next, applied.is_ok());
        applied.map_err(|e| Error::storage("writing", e))
    }

    /// Saves per-namespace counters (made durable by the next `sync`).
    pub fn save_counters(&self, all: &[(String, Vec<u64>)]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (ns, counts) in all {
            let mut k = vec![COUNTERS_PREFIX];
            k.extend_from_slice(ns.as_bytes());
            batch.insert(k, crate::format::counters::encode(counts));
        }
        self.db()?.apply_batch(batch).map_err(|e| Error::storage("saving counters", e))
    }

    /// The saved counters; damaged entries are skipped.
    pub fn load_counters(&self) -> Result<Vec<(String, Vec<u64>)>> {
        let mut out = Vec::new();
        for item in self.db()?.scan_prefix([COUNTERS_PREFIX]) {
            let (k, v) = item.map_err(|e| Error::storage("loading counters", e))?;
            if let (Ok(ns), Ok(counts)) =
                (std::str::from_utf8(&k[1..]), crate::format::counters::decode(&v))
            {
                out.push((ns.to_string(), counts));
            }
        }
        Ok(out)
    }

    /// Makes everything applied so far durable: sled's flush, then an fsync of
    /// every file and directory under sled's path (sled's own flush is only
    /// `sync_file_range` on Linux and never syncs `blobs/` or directories).
    pub fn sync(&self) -> Result<()> {
        self.db()?.flush().map_err(|e| Error::storage("flushing sled", e))?;
        sync_tree(&self.dir).map_err(|e| Error::io(format!("fsyncing {}", self.dir.display()), e))
    }
}

/// sled writes a snapshot as `snap.<lsn>.generating`, fsyncs it, then renames
/// it; a kill in between leaves the `.generating` file, which sled 0.34.7 then
/// fails to open over (`Corruption { at: None }`, sled #1527). Such a file is
/// incomplete by construction and never read as a snapshot: remove it.
fn remove_unfinished_snapshots(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| Error::io("listing sled's directory", e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(&path)
                .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
        }
    }
    Ok(())
}

fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        if ty.is_dir() {
            sync_tree(&entry.path())?;
        } else if ty.is_file() {
            match File::open(entry.path()) {
                Ok(f) => f.sync_all()?,
                // sled may delete a file (a temporary snapshot) meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn put(key: &[u8], expires_at: u64) -> Mutation {
        Mutation { key: Arc::from(key), put: Some((Arc::from(&b"rec"[..]), expires_at)) }
    }

    #[test]
    #[allow(clippy::big_endian_bytes)] // index keys sort by time
    fn groups_close_expiries_and_still_reads_layout_1_entries() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), 1 << 20).unwrap();
        s.set_boot(7);
        // 100 records expiring within one span, 1 much later, 1 deleted.
        let mut ms: Vec<Mutation> =
            (0..100u64).map(|i| put(format!("k{i}").as_bytes(), 5_000 + i)).collect();
        ms.push(put(b"late", 90_000));
        ms.push(Mutation { key: Arc::from(&b"gone"[..]), put: None });
        s.apply(ms.iter(), 1).unwrap();
        // A layout-1 entry, as older stores wrote them.
        let mut v1 = vec![INDEX_PREFIX];
        v1.extend_from_slice(&6_000u64.to_be_bytes());
        v1.extend_from_slice(b"old");
        s.db().unwrap().insert(v1, &[][..]).unwrap();

        assert!(s.due(4_999, None, 100).unwrap().is_empty());
        let due = s.due(6_000, None, 100).unwrap();
        let sizes: Vec<usize> = due.iter().map(|g| g.keys.as_ref().unwrap().len()).collect();
        assert_eq!(
            sizes,
            vec![64, 36, 1],
            "two groups of the batch (64 at most), then the old entry"
        );
        assert_eq!(due[2].keys.as_ref().unwrap()[0], b"old");
        assert_eq!(s.index_len().unwrap(), 102);

        let mut later = vec![(7_000u64, &b"k3"[..])];
        s.replace_group(&due[0].position, &mut later).unwrap();
        assert_eq!(s.index_len().unwrap(), 102 - 63);
        let due = s.due(7_000, None, 100).unwrap();
        assert_eq!(due.len(), 3, "the replacement is due at 7000: {:?}", due.len());
    }
}
