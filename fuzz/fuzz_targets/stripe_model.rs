//! One stripe's pure state (no disk, no threads) against a reference map of
//! each key's latest record: lookups whose sled reads race writes, lazy
//! retirement by the applied watermark, cache eviction, key-filter builds
//! and per-key waiters (src/stripe/model.rs). Any divergence is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = idemkv::testing::stripe_model(data) {
        panic!("the stripe diverged from the reference: {e}");
    }
});
