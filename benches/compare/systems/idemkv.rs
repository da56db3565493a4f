//! idemkv itself (`Buffered` or `Durable`): claim + complete through a
//! [`Store`], a lookup is a claim answered `Replay`.

use std::hint::black_box;

use idemkv::{Claim, Config, Durability, Fingerprint, Key, Store};

use super::{Client, System};
use crate::common;
use crate::{Res, err};

/// An idemkv store in a temp dir.
pub struct Idemkv {
    _dir: tempfile::TempDir,
    store: Store,
    fp: Fingerprint,
}

impl Idemkv {
    /// A new store with `durability`.
    pub fn new(durability: Durability) -> Res<Self> {
        let dir = tempfile::tempdir().map_err(err)?;
        let store = Config::new().durability(durability).open(dir.path()).map_err(err)?;
        Ok(Idemkv { _dir: dir, store, fp: common::fingerprint() })
    }
}

/// A thread's handle: the store is shared.
struct IdemkvClient<'a>(&'a Idemkv);

impl System for Idemkv {
    fn client(&self) -> Res<Box<dyn Client + '_>> {
        Ok(Box::new(IdemkvClient(self)))
    }
    fn settle(&self) -> Res<()> {
        self.store.checkpoint().map_err(err)
    }
    fn store(&self) -> Option<&Store> {
        Some(&self.store)
    }
}

impl Client for IdemkvClient<'_> {
    fn cycle(&mut self, key: &[u8]) -> Res<()> {
        let key = Key::new(common::NS, key).map_err(err)?;
        match self.0.store.claim(&key, self.0.fp).map_err(err)? {
            Claim::Acquired(lease) => lease.complete(common::RESPONSE).map_err(err),
            other => Err(format!("claim of a new key answered {other:?}")),
        }
    }
    fn lookup(&mut self, key: &[u8]) -> Res<()> {
        let key = Key::new(common::NS, key).map_err(err)?;
        match self.0.store.claim(&key, self.0.fp).map_err(err)? {
            Claim::Replay(done) => {
                black_box(done.response());
                Ok(())
            }
            other => Err(format!("lookup answered {other:?}")),
        }
    }
}
