//! The systems under test: the [`System`] and [`Client`] interface every
//! adapter implements, [`Spec`] (which system, which variant) and [`build`].

mod idemkv;
mod redis;
mod sled;
mod sqlite;
mod striped;

use std::time::{SystemTime, UNIX_EPOCH};

use ::idemkv::Durability;

pub use self::redis::Servers;
use self::{idemkv::Idemkv, redis::Redis, sled::Sled, sqlite::Sqlite, striped::Striped};
use crate::Res;
use crate::common;

/// The lease every peer gives a claim, in milliseconds.
const LEASE_MS: u64 = 30_000;
/// How long every peer keeps a completed record, in milliseconds.
const RETENTION_MS: u64 = 72 * 3600 * 1000;

/// Wall-clock milliseconds since the Unix epoch (the peers' deadlines).
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One thread's connection to a system under test.
pub trait Client {
    /// Claims a new key and completes it with the response; an error if the
    /// claim did not acquire.
    fn cycle(&mut self, key: &[u8]) -> Res<()>;
    /// Looks up a completed key; an error unless it is completed.
    fn lookup(&mut self, key: &[u8]) -> Res<()>;
    /// Claims and completes every key (P1's population); systems may batch.
    fn populate(&mut self, keys: &mut dyn Iterator<Item = [u8; 20]>) -> Res<()> {
        for k in keys {
            self.cycle(&k)?;
        }
        Ok(())
    }
}

/// A system under test, shared by all threads of a run.
pub trait System: Sync {
    /// A connection for one thread.
    fn client(&self) -> Res<Box<dyn Client + '_>>;
    /// After populating: wait until background work is done.
    fn settle(&self) -> Res<()> {
        Ok(())
    }
    /// Threads to populate with.
    fn populate_threads(&self) -> usize {
        16
    }
    /// The idemkv store, for the async rows.
    fn store(&self) -> Option<&::idemkv::Store> {
        None
    }
}

/// A system and its variant: the `bool` means "the durable variant".
#[derive(Clone, Copy)]
pub enum Spec {
    /// idemkv, `Buffered` or `Durable`.
    Idemkv(bool),
    /// idemkv `Durable`, driven by async tasks on a 2-worker tokio runtime
    /// (`claim_async` + `complete_async`) instead of threads.
    IdemkvAsync,
    /// Raw sled, without or with `flush()` after each CAS.
    Sled(bool),
    /// The striped `Mutex<HashMap>` (memory only).
    Striped,
    /// SQLite, `synchronous=NORMAL` or `FULL`.
    Sqlite(bool),
    /// Redis, without or with `appendfsync always`.
    Redis(bool),
}

impl Spec {
    /// Name: the `bool` means "the durable variant".
    pub fn name(self) -> &'static str {
        match self {
            Spec::Idemkv(false) => "idemkv-buffered",
            Spec::Idemkv(true) => "idemkv-durable",
            Spec::IdemkvAsync => "idemkv-durable-async",
            Spec::Sled(false) => "sled",
            Spec::Sled(true) => "sled-flush",
            Spec::Striped => "mutex-hashmap",
            Spec::Sqlite(false) => "sqlite-normal",
            Spec::Sqlite(true) => "sqlite-full",
            Spec::Redis(false) => "redis",
            Spec::Redis(true) => "redis-aof-always",
        }
    }
}

/// A fresh instance of `spec` (empty store, temp dir, flushed Redis).
pub fn build(spec: Spec, servers: &mut Servers) -> Res<Box<dyn System>> {
    Ok(match spec {
        Spec::Idemkv(durable) => Box::new(Idemkv::new(if durable {
            Durability::Durable
        } else {
            Durability::Buffered { max_delay: common::BUFFERED_DELAY }
        })?),
        Spec::IdemkvAsync => Box::new(Idemkv::new(Durability::Durable)?),
        Spec::Sled(flush) => Box::new(Sled::new(flush)?),
        Spec::Striped => Box::new(Striped::new()),
        Spec::Sqlite(full) => Box::new(Sqlite::new(full)?),
        Spec::Redis(aof) => Box::new(Redis::new(servers.get(aof)?)?),
    })
}
