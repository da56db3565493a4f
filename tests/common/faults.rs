//! Fault injection through the journal's file seam (`idemkv::testing`).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Mutex;

use idemkv::testing::{JournalFile, JournalFs, StdFs};

/// One fault, counted from the first call of its kind (1-based) over
/// the life of the [`FaultyFs`], across every segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No fault: count calls only.
    None,
    /// The Nth `write_all` fails with EIO and writes nothing.
    FailWrite(u64),
    /// The Nth `write_all` writes the first half of its buffer to the
    /// real file, then fails with EIO.
    ShortWrite(u64),
    /// The Nth `sync_data` fails with EIO (after really syncing nothing).
    FailSync(u64),
    /// The Nth directory fsync fails with EIO.
    FailDirSync(u64),
    /// From the Nth `write_all` on, every write stores only part of its
    /// buffer (the first half of the first one, nothing of later ones)
    /// and fails with ENOSPC: a full disk.
    Enospc(u64),
}

#[derive(Debug, Default)]
struct Counters {
    writes: AtomicU64,
    syncs: AtomicU64,
    dir_syncs: AtomicU64,
    injected: AtomicU64,
}

/// A [`JournalFs`] over the real file system that injects one [`Fault`].
#[derive(Debug, Clone)]
pub struct FaultyFs {
    fault: Arc<Mutex<Fault>>,
    counters: Arc<Counters>,
}

impl FaultyFs {
    pub fn new(fault: Fault) -> FaultyFs {
        FaultyFs { fault: Arc::new(Mutex::new(fault)), counters: Arc::default() }
    }

    /// Replaces the fault (counters keep running).
    pub fn arm(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// `write_all` calls so far.
    pub fn writes(&self) -> u64 {
        self.counters.writes.load(Ordering::SeqCst)
    }

    /// `sync_data` calls so far.
    pub fn syncs(&self) -> u64 {
        self.counters.syncs.load(Ordering::SeqCst)
    }

    /// Directory fsyncs so far.
    pub fn dir_syncs(&self) -> u64 {
        self.counters.dir_syncs.load(Ordering::SeqCst)
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.counters.injected.load(Ordering::SeqCst)
    }

    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hit(&self) {
        self.counters.injected.fetch_add(1, Ordering::SeqCst);
    }
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("injected fault: {what}"))
}

struct FaultyFile {
    inner: Box<dyn JournalFile>,
    fs: FaultyFs,
}

impl JournalFile for FaultyFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let n = self.fs.counters.writes.fetch_add(1, Ordering::SeqCst) + 1;
        match self.fs.fault() {
            Fault::FailWrite(k) if k == n => {
                self.fs.hit();
                Err(eio("write failed"))
            }
            Fault::ShortWrite(k) if k == n => {
                self.fs.hit();
                self.inner.write_all(&buf[..buf.len() / 2])?;
                Err(eio("short write"))
            }
            Fault::Enospc(k) if n >= k => {
                self.fs.hit();
                if n == k {
                    self.inner.write_all(&buf[..buf.len() / 2])?;
                }
                Err(io::Error::from_raw_os_error(28))
            }
            _ => self.inner.write_all(buf),
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let n = self.fs.counters.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        match self.fs.fault() {
            Fault::FailSync(k) if k == n => {
                self.fs.hit();
                Err(eio("fsync failed"))
            }
            _ => self.inner.sync_data(),
        }
    }
}

impl JournalFs for FaultyFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn JournalFile>> {
        let inner = StdFs.create(path)?;
        Ok(Box::new(FaultyFile { inner, fs: self.clone() }))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let n = self.counters.dir_syncs.fetch_add(1, Ordering::SeqCst) + 1;
        match self.fault() {
            Fault::FailDirSync(k) if k == n => {
                self.hit();
                Err(eio("directory fsync failed"))
            }
            _ => StdFs.sync_dir(dir),
        }
    }
}
