//! Arbitrary bytes as a stored HTTP response envelope: decoding never
//! panics and whatever decodes re-encodes to the same bytes; the same bytes
//! as an `Idempotency-Key` or `webhook-id` header never panic and never
//! yield an empty or over-long key.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(again) = idemkv::testing::reencode_http_envelope(data) {
        assert_eq!(again, data, "a decoded envelope re-encodes differently");
    }
    for key in idemkv::testing::parse_key_headers(data).into_iter().flatten().flatten() {
        assert!(!key.is_empty() && key.len() <= 255, "key {key:?}");
    }
});
