//! The pure stripe state (no disk, no threads) against a reference map:
//! lookups with raced sled reads, lazy retirement by watermark, eviction,
//! key-filter builds and per-key waiters (see `src/stripe/model.rs`; the
//! same check is the `stripe_model` fuzz target).
//!
//! `IDEMKV_STRIPE_CASES=N` runs N sequences (default 20,000).

use idemkv::testing::stripe_model;

/// A small xorshift generator: sequences are reproducible from the seed.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn random_sequences_agree_with_the_reference() {
    let cases: u64 =
        std::env::var("IDEMKV_STRIPE_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    for seed in 0..cases {
        let ops = bytes(seed, 3 * (50 + (seed % 250) as usize));
        if let Err(e) = stripe_model(&ops) {
            panic!("sequence {seed} diverged: {e}");
        }
    }
}

#[test]
fn the_check_sees_a_stale_read() {
    // Claim key 0, apply it, claim key 1 (pending), then complete key 0 while
    // a lookup of key 0 ... is served: the sequences above must exercise the
    // raced fill. Here: a raced read followed by a read of the raced key.
    let ops = [0, 0, 5, 7, 0, 7, 0, 1, 0x81, 2, 1, 0, 7, 0, 7];
    stripe_model(&ops).expect("a raced read is refused and read again");
}
