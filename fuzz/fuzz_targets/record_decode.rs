//! Arbitrary bytes as a stored record: decoding never panics, and whatever
//! decodes re-encodes to the very same bytes (the format has one encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(again) = idemkv::testing::reencode_record(data) {
        assert_eq!(again, data, "a decoded record re-encodes differently");
    }
});
