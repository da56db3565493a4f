//! The META file on disk, replaced atomically, and the fencing-token ceiling
//! it carries.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::meta::{self, Meta};

/// Fencing tokens reserved per META write. A boot that issues more reserves
/// another block (one durable META write per 2^32 claims), so no token is
/// ever issued above a durable ceiling and tokens strictly increase across
/// restarts.
pub(crate) const TOKEN_BLOCK: u64 = 1 << 32;

pub(crate) struct MetaFile {
    dir: PathBuf,
    pub current: Meta,
}

impl MetaFile {
    fn path(dir: &Path) -> PathBuf {
        dir.join("META")
    }

    /// Reads META from `dir`, or `None` if the store is new.
    pub fn read(dir: &Path) -> Result<Option<Meta>> {
        match fs::read(Self::path(dir)) {
            Ok(bytes) => meta::decode(&bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading META", e)),
        }
    }

    pub fn new(dir: &Path, current: Meta) -> MetaFile {
        MetaFile { dir: dir.to_path_buf(), current }
    }

    /// Durably replaces META with `m`.
    pub fn store(&mut self, m: Meta) -> Result<()> {
        let tmp = self.dir.join("META.tmp");
        let ctx = |e| Error::io("writing META", e);
        let mut f =
            OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(ctx)?;
        f.write_all(&meta::encode(&m)).map_err(ctx)?;
        f.sync_all().map_err(ctx)?;
        drop(f);
        fs::rename(&tmp, Self::path(&self.dir)).map_err(ctx)?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(ctx)?;
        self.current = m;
        Ok(())
    }
}
