//! The records every target stores, and the stores holding them: keys,
//! responses, the common configuration, and populating by claim + complete.

use std::ops::Range;
use std::time::{Duration, Instant};

use idemkv::{Claim, Config, Fingerprint, Key, Store};

use crate::{Res, common, err};

/// The namespace of every key.
pub const NS: &str = "stripe";
/// Bytes of every stored response.
pub const RESPONSE_LEN: usize = 100;
/// Raw bytes per record: namespace + id + response.
pub const RAW_PER_RECORD: u64 = (NS.len() + ID_LEN + RESPONSE_LEN) as u64;
/// `evt_` + 20 digits.
pub const ID_LEN: usize = 24;
/// The record cache of every store (`Config::cache_bytes`).
pub const CACHE_BYTES: u64 = 64 << 20;
/// sled's page cache of every store (`Config::sled_cache_bytes`).
pub const SLED_CACHE_BYTES: u64 = 64 << 20;

/// The id of record `i` of key space `space`: `evt_` and the 20 decimal
/// digits of a bijective mix of `(space, i)`, written without allocating.
pub fn id_bytes(space: u64, i: u64) -> [u8; ID_LEN] {
    let mut id = *b"evt_00000000000000000000";
    let mut v = common::mix((space << 40) ^ i);
    for b in id[4..].iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
    id
}

/// The key of record `i` of key space `space`.
pub fn key(space: u64, i: u64) -> Key {
    Key::new(NS, id_bytes(space, i)).expect("valid benchmark key")
}

/// The 100-byte JSON response stored for the event `id`.
fn response(id: &[u8; ID_LEN]) -> [u8; RESPONSE_LEN] {
    let mut r = [b' '; RESPONSE_LEN];
    let mut body = Vec::with_capacity(RESPONSE_LEN);
    body.extend_from_slice(br#"{"id":""#);
    body.extend_from_slice(id);
    body.extend_from_slice(br#"","object":"event","type":"charge.succeeded","handled":true}"#);
    r[..body.len()].copy_from_slice(&body); // 91 bytes, padded with spaces
    r
}

/// The fingerprint every claim carries.
pub fn fingerprint() -> Fingerprint {
    Fingerprint::of(b"scale benchmark request body")
}

/// The configuration every store here starts from.
pub fn base_config() -> Config {
    Config::new()
        .durability(common::buffered())
        .cache_bytes(CACHE_BYTES)
        .sled_cache_bytes(SLED_CACHE_BYTES)
}

/// One claim + complete of a new key; `Ok(claim latency)`.
pub fn cycle(store: &Store, space: u64, i: u64, fp: Fingerprint) -> Res<Duration> {
    let id = id_bytes(space, i);
    let key = Key::new(NS, id).map_err(err)?;
    let t0 = Instant::now();
    let claim = store.claim(&key, fp).map_err(err)?;
    let took = t0.elapsed();
    match claim {
        Claim::Acquired(lease) => lease.complete(&response(&id)).map_err(err)?,
        other => return Err(format!("claim of the new key {key} answered {other:?}")),
    }
    Ok(took)
}

/// Claims and completes records `range` of `space` from `threads` threads;
/// returns the wall time.
pub fn populate(store: &Store, space: u64, range: Range<u64>, threads: u64) -> Res<Duration> {
    let fp = fingerprint();
    let n = range.end - range.start;
    let chunk = n.div_ceil(threads.max(1)).max(1);
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let from = (range.start + t * chunk).min(range.end);
                let to = (from + chunk).min(range.end);
                s.spawn(move || (from..to).try_for_each(|i| cycle(store, space, i, fp).map(drop)))
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| "populate panicked")?)
    })?;
    Ok(start.elapsed())
}
