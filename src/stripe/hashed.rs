//! A key hashed once per call. The store hashes the raw key with its randomly
//! seeded hasher (foldhash, seeded per store, so that chosen keys cannot be
//! aimed at one stripe or one bucket); that one hash then picks the stripe,
//! indexes the stripe's maps and the cache (through [`PassThrough`]) and
//! probes the key filter.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

/// A raw key with its store hash.
#[derive(Clone, Debug)]
pub(crate) struct HashedKey {
    pub hash: u64,
    pub raw: Arc<[u8]>,
}

impl Hash for HashedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for HashedKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.raw == other.raw
    }
}

impl Eq for HashedKey {}

/// Hands a [`HashedKey`]'s hash to a map unchanged (it is already keyed and
/// well mixed). Its stripe bits (32 and up) vary little inside one stripe, so
/// maps must index by the low bits, as hashbrown does.
#[derive(Clone, Copy, Default)]
pub(crate) struct PassThrough;

impl BuildHasher for PassThrough {
    type Hasher = PassHasher;
    fn build_hasher(&self) -> PassHasher {
        PassHasher(0)
    }
}

/// The hasher of [`PassThrough`].
pub(crate) struct PassHasher(u64);

impl Hasher for PassHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not reached by `HashedKey`; kept correct for any other input.
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517C_C1B7_2722_0A95);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_are_equal_and_hash_alike() {
        let a = HashedKey { hash: 7, raw: Arc::from(&b"k"[..]) };
        let b = HashedKey { hash: 7, raw: Arc::from(&b"k"[..]) };
        let c = HashedKey { hash: 7, raw: Arc::from(&b"other"[..]) };
        assert_eq!(a, b);
        assert_ne!(a, c, "same hash, other bytes: different keys");
        assert_eq!(PassThrough.hash_one(&a), 7);
    }
}
