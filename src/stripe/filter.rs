//! A blocked Bloom filter of the keys that may have a record in sled, so that
//! claiming a new key — the common case for webhooks — answers "absent"
//! without a sled read.
//!
//! It may answer "maybe" for an absent key (a false positive costs one sled
//! read, as without a filter) but never "no" for a key that has a record:
//! every version written is inserted before it can reach sled (see
//! `StripeState::stage`), and a filter only starts answering once it holds
//! every key that was in sled when it was built (see `embedded::background`,
//! `build_filters`).
//! Deleted keys stay in it until the next rebuild, which happens when it has
//! taken more insertions than it was sized for.
//!
//! Each key sets [`PROBES`] bits inside one 512-bit block (one cache line), so
//! a lookup touches one line. At [`BITS_PER_KEY`] bits per key the false
//! positive rate stays under 0.5 % at capacity (checked by the test below).

/// Bits of filter per key of capacity.
const BITS_PER_KEY: u64 = 16;
/// Bits set per key, all in one block.
const PROBES: u32 = 8;
/// 64-bit words per block: 512 bits, one cache line.
const BLOCK_WORDS: usize = 8;

/// A fixed-size Bloom filter over 64-bit key hashes.
pub(crate) struct KeyFilter {
    words: Box<[u64]>,
    blocks: u64,
    capacity: u64,
    inserted: u64,
}

impl KeyFilter {
    /// A filter sized for `keys` insertions (at least a few thousand).
    pub fn with_capacity(keys: u64) -> KeyFilter {
        let capacity = keys.max(4096);
        let blocks = (capacity * BITS_PER_KEY).div_ceil(BLOCK_WORDS as u64 * 64);
        KeyFilter {
            words: vec![0; blocks as usize * BLOCK_WORDS].into_boxed_slice(),
            blocks,
            capacity,
            inserted: 0,
        }
    }

    /// Adds `hash`. Returns true once the filter holds more insertions than it
    /// was sized for (it still answers correctly, with more false positives).
    pub fn insert(&mut self, hash: u64) -> bool {
        let (block, mut bits) = self.locate(hash);
        for _ in 0..PROBES {
            let bit = (bits & 511) as usize;
            self.words[block + bit / 64] |= 1 << (bit % 64);
            bits >>= 9;
        }
        self.inserted += 1;
        self.is_over()
    }

    /// False only if `hash` was never inserted.
    pub fn may_contain(&self, hash: u64) -> bool {
        let (block, mut bits) = self.locate(hash);
        for _ in 0..PROBES {
            let bit = (bits & 511) as usize;
            if self.words[block + bit / 64] & (1 << (bit % 64)) == 0 {
                return false;
            }
            bits >>= 9;
        }
        true
    }

    /// More insertions than the filter was sized for.
    pub fn is_over(&self) -> bool {
        self.inserted > self.capacity
    }

    /// The first word of the key's block, and 72 bits' worth of positions
    /// (8 × 9 bits) taken from a second mix of the hash.
    fn locate(&self, hash: u64) -> (usize, u128) {
        let a = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let block = ((u128::from(a) * u128::from(self.blocks)) >> 64) as usize;
        let b = (hash ^ (hash >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let bits = u128::from(b) | (u128::from(a) << 64);
        (block * BLOCK_WORDS, bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, RandomState};

    #[test]
    fn never_forgets_an_inserted_key_and_rarely_invents_one() {
        let hasher = RandomState::new();
        let n = 100_000u64;
        let mut f = KeyFilter::with_capacity(n);
        for i in 0..n {
            assert!(!f.insert(hasher.hash_one(i)) || i == n - 1);
        }
        assert!(!f.is_over());
        for i in 0..n {
            assert!(f.may_contain(hasher.hash_one(i)), "key {i} forgotten");
        }
        let false_positives = (n..11 * n).filter(|i| f.may_contain(hasher.hash_one(i))).count();
        let rate = false_positives as f64 / (10 * n) as f64;
        assert!(rate < 0.005, "false positive rate {rate}");
    }

    #[test]
    fn reports_when_it_is_over_capacity() {
        let mut f = KeyFilter::with_capacity(10);
        assert_eq!(f.words.len() as u64 * 64, 4096 * BITS_PER_KEY);
        let over = (0..=4096u64).map(|i| f.insert(i.wrapping_mul(0x2545_F491_4F6C_DD1D))).last();
        assert_eq!(over, Some(true));
    }
}
