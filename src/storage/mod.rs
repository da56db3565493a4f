//! The sled layer: materialized records and the expiry index.
//!
//! One sled tree holds both, under one-byte prefixes, so that the records and
//! their index entries change together in one atomic `apply_batch`:
//!
//! ```text
//! b'r' | raw key                         -> encoded record (format::record)
//! b'x' | expires_at (u64 big-endian) | raw key -> empty   (expiry index)
//! b'm' | namespace                       -> counters (format::counters)
//! ```
//! Big-endian expiry makes sled's byte order time order, so the sweeper reads
//! only the due prefix of the index: work proportional to expired records.
//!
//! sled is written only from journal entries that are already durable, and
//! is made durable itself only at checkpoints ([`Storage::sync`]): its
//! `flush()` ends in `sync_file_range` on Linux, so `sync` also fsyncs
//! sled's files and directories itself.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};

use crate::core::Record;
use crate::error::{Error, Result};
use crate::format::entry::Mutation;
use crate::format::record;

const RECORD_PREFIX: u8 = b'r';
const INDEX_PREFIX: u8 = b'x';
const COUNTERS_PREFIX: u8 = b'm';

/// An expiry-index entry that is due: `(expires_at, raw key, index position)`.
pub(crate) type Due = (u64, Vec<u8>, Vec<u8>);

/// The sled database of a store. Closed (sled dropped) when the store
/// closes, even while handles to the store remain; calls then fail with
/// `Error::Closed`.
pub(crate) struct Storage {
    db: RwLock<Option<sled::Db>>,
    dir: PathBuf,
}

fn record_key(raw: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + raw.len());
    k.push(RECORD_PREFIX);
    k.extend_from_slice(raw);
    k
}

#[allow(clippy::big_endian_bytes)] // index keys sort by time
fn index_key(expires_at: u64, raw: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + raw.len());
    k.push(INDEX_PREFIX);
    k.extend_from_slice(&expires_at.to_be_bytes());
    k.extend_from_slice(raw);
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
            let opened = sled::Config::new()
                .path(dir)
                .cache_capacity(cache_bytes)
                .flush_every_ms(Some(500))
                .open();
            match opened {
                Ok(db) => {
                    return Ok(Storage { db: RwLock::new(Some(db)), dir: dir.to_path_buf() });
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

    /// Drops sled (after a final `sync`); later calls fail with `Closed`.
    pub fn close(&self) {
        self.db.write().take();
    }

    /// The record of `raw`, as stored (possibly expired).
    pub fn get(&self, raw: &[u8]) -> Result<Option<Record>> {
        let v =
            self.db()?.get(record_key(raw)).map_err(|e| Error::storage("reading a record", e))?;
        v.map(|bytes| record::decode(raw, &bytes)).transpose()
    }

    /// Applies mutations, in order, in one atomic sled batch.
    ///
    /// Coalesced per key first: only the first mutation of a key in the batch
    /// names an index entry that may already be in sled (its `prev_expiry`);
    /// the entries later mutations replace were written by this very batch,
    /// so they are never written at all. A claim and its completion in one
    /// batch cost two sled writes (record, index entry) instead of four.
    pub fn apply<'a>(&self, mutations: impl IntoIterator<Item = &'a Mutation>) -> Result<()> {
        // key -> (prev_expiry of its first mutation, its last mutation)
        let mut last: HashMap<&[u8], (Option<u64>, &Mutation)> = HashMap::new();
        for m in mutations {
            last.entry(&m.key[..]).and_modify(|(_, l)| *l = m).or_insert((m.prev_expiry, m));
        }
        let mut batch = sled::Batch::default();
        for (key, (first_prev, m)) in last {
            let new_expiry = m.put.as_ref().map(|(_, e)| *e);
            if let Some(prev) = first_prev.filter(|p| Some(*p) != new_expiry) {
                batch.remove(index_key(prev, key));
            }
            match &m.put {
                Some((bytes, expires_at)) => {
                    batch.insert(record_key(key), &bytes[..]);
                    batch.insert(index_key(*expires_at, key), &[][..]);
                }
                None => batch.remove(record_key(key)),
            }
        }
        self.db()?.apply_batch(batch).map_err(|e| Error::storage("applying journal entries", e))
    }

    /// Up to `limit` expiry-index entries due at `now`, after `after` (an
    /// index position returned earlier) if given.
    #[allow(clippy::big_endian_bytes)] // index keys sort by time
    pub fn due(&self, now: u64, after: Option<&[u8]>, limit: usize) -> Result<Vec<Due>> {
        let start = match after {
            Some(pos) => std::ops::Bound::Excluded(pos.to_vec()),
            None => std::ops::Bound::Included(vec![INDEX_PREFIX]),
        };
        // Everything with expires_at <= now sorts below (now + 1, empty key).
        let end = std::ops::Bound::Excluded(index_key(now.saturating_add(1), &[]));
        let mut out = Vec::new();
        let db = self.db()?;
        for item in db.range::<Vec<u8>, _>((start, end)).take(limit) {
            let (k, _) = item.map_err(|e| Error::storage("scanning the expiry index", e))?;
            if k.len() < 10 {
                continue; // not an index entry of ours
            }
            let mut t = [0u8; 8];
            t.copy_from_slice(&k[1..9]);
            out.push((u64::from_be_bytes(t), k[9..].to_vec(), k.to_vec()));
        }
        Ok(out)
    }

    /// Removes one expiry-index entry that no longer matches its record.
    pub fn remove_index(&self, position: &[u8]) -> Result<()> {
        self.db()?.remove(position).map_err(|e| Error::storage("removing an index entry", e))?;
        Ok(())
    }

    /// Every stored record as `(raw key, bytes)`, in key order.
    pub fn records(&self) -> Result<impl Iterator<Item = Result<(Vec<u8>, sled::IVec)>>> {
        Ok(self.db()?.scan_prefix([RECORD_PREFIX]).map(|item| {
            item.map(|(k, v)| (k[1..].to_vec(), v))
                .map_err(|e| Error::storage("scanning records", e))
        }))
    }

    /// Up to `limit` stored records whose raw key starts with `prefix`, in
    /// key order, after `after` (a raw key) if given.
    pub fn scan_records(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, sled::IVec)>> {
        let start = match after {
            Some(raw) => std::ops::Bound::Excluded(record_key(raw)),
            None => std::ops::Bound::Included(record_key(prefix)),
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

    /// Number of expiry-index entries (for verification and tests).
    pub fn index_len(&self) -> Result<usize> {
        Ok(self.db()?.scan_prefix([INDEX_PREFIX]).count())
    }

    /// Writes one raw value under a record key, bypassing the codec. Only for
    /// tests that damage a record on purpose.
    #[doc(hidden)]
    pub fn put_raw_record(&self, raw: &[u8], bytes: &[u8]) -> Result<()> {
        self.db()?.insert(record_key(raw), bytes).map_err(|e| Error::storage("writing", e))?;
        Ok(())
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
