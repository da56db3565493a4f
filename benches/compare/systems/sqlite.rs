//! SQLite in WAL mode through rusqlite: one connection per thread,
//! `synchronous=NORMAL` or `FULL`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Client, LEASE_MS, RETENTION_MS, System, now_ms};
use crate::common;
use crate::{Res, err};

/// A SQLite database file in WAL mode in a temp dir.
pub struct Sqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
    synchronous: &'static str,
    tokens: AtomicU64,
}

impl Sqlite {
    /// A new database; `full`: `synchronous=FULL`, else `NORMAL`.
    pub fn new(full: bool) -> Res<Self> {
        let dir = tempfile::tempdir().map_err(err)?;
        let path = dir.path().join("idem.db");
        let conn = rusqlite::Connection::open(&path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE idem(key BLOB PRIMARY KEY, state INT NOT NULL, token INT NOT NULL,
                               response BLOB, expires_at INT NOT NULL);",
        )
        .map_err(err)?;
        let synchronous = if full { "FULL" } else { "NORMAL" };
        Ok(Sqlite { _dir: dir, path, synchronous, tokens: AtomicU64::new(1) })
    }
}

/// One connection per thread.
struct SqliteClient<'a> {
    sys: &'a Sqlite,
    conn: rusqlite::Connection,
}

impl System for Sqlite {
    fn client(&self) -> Res<Box<dyn Client + '_>> {
        let conn = rusqlite::Connection::open(&self.path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        conn.execute_batch(&format!("PRAGMA synchronous={};", self.synchronous)).map_err(err)?;
        Ok(Box::new(SqliteClient { sys: self, conn }))
    }
    fn populate_threads(&self) -> usize {
        1 // one writer at a time anyway; populate in one transaction
    }
}

impl Client for SqliteClient<'_> {
    fn cycle(&mut self, key: &[u8]) -> Res<()> {
        let token = self.sys.tokens.fetch_add(1, Ordering::Relaxed) as i64;
        let claimed = self
            .conn
            .prepare_cached(
                "INSERT INTO idem(key, state, token, expires_at) VALUES (?1, 1, ?2, ?3)
                 ON CONFLICT(key) DO NOTHING",
            )
            .and_then(|mut s| s.execute(rusqlite::params![key, token, now_ms() + LEASE_MS]))
            .map_err(err)?;
        if claimed != 1 {
            return Err("claim of a new key found a record".into());
        }
        let done = self
            .conn
            .prepare_cached(
                "UPDATE idem SET state = 2, response = ?2, expires_at = ?3
                 WHERE key = ?1 AND state = 1 AND token = ?4",
            )
            .and_then(|mut s| {
                let exp = now_ms() + RETENTION_MS;
                s.execute(rusqlite::params![key, &common::RESPONSE[..], exp, token])
            })
            .map_err(err)?;
        if done != 1 {
            return Err("complete lost its claim".into());
        }
        Ok(())
    }
    fn lookup(&mut self, key: &[u8]) -> Res<()> {
        let (state, response): (i64, Option<Vec<u8>>) = self
            .conn
            .prepare_cached("SELECT state, response FROM idem WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(err)?;
        if state != 2 {
            return Err(format!("lookup found state {state}"));
        }
        black_box(response);
        Ok(())
    }
    fn populate(&mut self, keys: &mut dyn Iterator<Item = [u8; 20]>) -> Res<()> {
        self.conn.execute_batch("BEGIN").map_err(err)?;
        for k in keys {
            self.cycle(&k)?;
        }
        self.conn.execute_batch("COMMIT").map_err(err)
    }
}
