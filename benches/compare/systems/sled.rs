//! Raw sled 0.34.7 doing idemkv's state transitions with
//! `compare_and_swap` (optionally `flush()` after each).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Client, LEASE_MS, RETENTION_MS, System, now_ms};
use crate::common;
use crate::{Res, err};

/// A sled database in a temp dir, with idemkv's sled settings.
pub struct Sled {
    _dir: tempfile::TempDir,
    db: sled::Db,
    flush: bool,
    tokens: AtomicU64,
}

impl Sled {
    /// A new database; `flush`: `flush()` after each CAS.
    pub fn new(flush: bool) -> Res<Self> {
        let dir = tempfile::tempdir().map_err(err)?;
        // The same sled settings idemkv uses.
        let db = sled::Config::new()
            .path(dir.path())
            .cache_capacity(64 << 20)
            .flush_every_ms(Some(500))
            .open()
            .map_err(err)?;
        Ok(Sled { _dir: dir, db, flush, tokens: AtomicU64::new(1) })
    }
}

/// A thread's handle: the database is shared.
struct SledClient<'a>(&'a Sled);

impl System for Sled {
    fn client(&self) -> Res<Box<dyn Client + '_>> {
        Ok(Box::new(SledClient(self)))
    }
}

impl SledClient<'_> {
    fn flush(&self) -> Res<()> {
        if self.0.flush {
            self.0.db.flush().map_err(err)?;
        }
        Ok(())
    }
}

impl Client for SledClient<'_> {
    fn cycle(&mut self, key: &[u8]) -> Res<()> {
        let token = self.0.tokens.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        // In progress: state 1, token, lease deadline.
        let mut claimed = vec![1u8];
        claimed.extend_from_slice(&token.to_be_bytes());
        claimed.extend_from_slice(&(now + LEASE_MS).to_be_bytes());
        let cas = self.0.db.compare_and_swap(key, None::<&[u8]>, Some(&claimed[..]));
        if cas.map_err(err)?.is_err() {
            return Err("claim of a new key found a record".into());
        }
        self.flush()?;
        // Completed: state 2, token, expiry, response.
        let mut done = vec![2u8];
        done.extend_from_slice(&token.to_be_bytes());
        done.extend_from_slice(&(now_ms() + RETENTION_MS).to_be_bytes());
        done.extend_from_slice(common::RESPONSE);
        let cas = self.0.db.compare_and_swap(key, Some(&claimed[..]), Some(done));
        if cas.map_err(err)?.is_err() {
            return Err("complete lost its claim".into());
        }
        self.flush()
    }
    fn lookup(&mut self, key: &[u8]) -> Res<()> {
        match self.0.db.get(key).map_err(err)? {
            Some(v) if v.first() == Some(&2) => {
                black_box(&v[17..]);
                Ok(())
            }
            other => Err(format!("lookup found {other:?}")),
        }
    }
}
