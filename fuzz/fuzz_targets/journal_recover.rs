//! Arbitrary bytes as a journal segment: recovery never panics, keeps a run
//! of consecutive sequence numbers, and reports damage whenever it stops
//! before the end.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (seqs, damage) = idemkv::testing::scan_journal_segment(data);
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "entries out of sequence: {seqs:?}");
    }
    if seqs.is_empty() && data.len() > 16 {
        // Bytes beyond a header and not one intact entry: that is damage.
        assert!(damage.is_some(), "{} bytes, no entries, no damage", data.len());
    }
});
