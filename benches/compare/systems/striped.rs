//! A 64-stripe `Mutex<HashMap>`: memory only, the physical limit of the
//! design.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{Client, LEASE_MS, RETENTION_MS, System, now_ms};
use crate::Res;
use crate::common;

/// A record: claimed, or completed with its response.
enum MemRecord {
    InProgress { token: u64, _deadline: u64 },
    Completed { _token: u64, _expires: u64, response: Arc<[u8]> },
}

/// 64 `Mutex<HashMap>` stripes chosen by key hash.
pub struct Striped {
    stripes: Vec<Mutex<HashMap<Box<[u8]>, MemRecord>>>,
    hasher: RandomState,
    tokens: AtomicU64,
}

impl Striped {
    /// Empty stripes.
    pub fn new() -> Self {
        Striped {
            stripes: (0..64).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            tokens: AtomicU64::new(1),
        }
    }

    /// The locked stripe of `key`.
    fn stripe(&self, key: &[u8]) -> std::sync::MutexGuard<'_, HashMap<Box<[u8]>, MemRecord>> {
        let i = self.hasher.hash_one(key) as usize & (self.stripes.len() - 1);
        self.stripes[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A thread's handle: the stripes are shared.
struct StripedClient<'a>(&'a Striped);

impl System for Striped {
    fn client(&self) -> Res<Box<dyn Client + '_>> {
        Ok(Box::new(StripedClient(self)))
    }
}

impl Client for StripedClient<'_> {
    fn cycle(&mut self, key: &[u8]) -> Res<()> {
        let token = self.0.tokens.fetch_add(1, Ordering::Relaxed);
        {
            let mut map = self.0.stripe(key);
            if map.contains_key(key) {
                return Err("claim of a new key found a record".into());
            }
            let rec = MemRecord::InProgress { token, _deadline: now_ms() + LEASE_MS };
            map.insert(key.into(), rec);
        }
        let response: Arc<[u8]> = Arc::from(&common::RESPONSE[..]);
        let mut map = self.0.stripe(key);
        match map.get_mut(key) {
            Some(r @ MemRecord::InProgress { .. }) => {
                if !matches!(r, MemRecord::InProgress { token: t, .. } if *t == token) {
                    return Err("complete lost its claim".into());
                }
                let expires = now_ms() + RETENTION_MS;
                *r = MemRecord::Completed { _token: token, _expires: expires, response };
                Ok(())
            }
            _ => Err("complete lost its claim".into()),
        }
    }
    fn lookup(&mut self, key: &[u8]) -> Res<()> {
        let found = match self.0.stripe(key).get(key) {
            Some(MemRecord::Completed { response, .. }) => Some(response.clone()),
            _ => None,
        };
        black_box(found.ok_or("lookup: not completed")?);
        Ok(())
    }
}
