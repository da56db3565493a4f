//! The seam between the journal and the file system: the only file calls the
//! writer makes go through these traits, so tests can substitute a file that
//! fails its Nth write or fsync, or writes only part of a buffer.
//!
//! Not part of the stable API: exported as `idemkv::testing` (hidden from
//! the docs) for fault-injection tests.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// An open journal segment, written at its end.
pub trait JournalFile: Send {
    /// Appends all of `buf`.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything written durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// Creates journal segment files.
pub trait JournalFs: Send + Sync + std::fmt::Debug {
    /// Creates a new, empty segment at `path` (it must not exist).
    fn create(&self, path: &Path) -> io::Result<Box<dyn JournalFile>>;
    /// Makes the creation of entries in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

impl JournalFile for File {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Write::write_all(self, buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }
}

impl JournalFs for StdFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn JournalFile>> {
        let f = OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(Box::new(f))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}
