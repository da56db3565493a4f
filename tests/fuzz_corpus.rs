//! Replays the checked-in fuzz corpus (fuzz/corpus/<target>/) on the stable
//! toolchain with the fuzz targets' own checks, so every input the fuzzers
//! ever kept stays a regression test even where cargo-fuzz cannot run.

use std::path::Path;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).expect("corpus file")))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "the {target} corpus is empty");
    out
}

#[test]
fn record_decode_corpus() {
    let mut decoded = 0;
    for (name, data) in corpus("record_decode") {
        if let Ok(again) = idemkv::testing::reencode_record(&data) {
            assert_eq!(again, data, "{name}: a decoded record re-encodes differently");
            decoded += 1;
        }
    }
    assert!(decoded >= 5, "the seeds include one valid record per state, saw {decoded}");
}

#[test]
fn journal_recover_corpus() {
    let mut entries = 0;
    for (name, data) in corpus("journal_recover") {
        let (seqs, damage) = idemkv::testing::scan_journal_segment(&data);
        for pair in seqs.windows(2) {
            assert_eq!(pair[1], pair[0] + 1, "{name}: entries out of sequence");
        }
        if seqs.is_empty() && data.len() > 16 {
            assert!(damage.is_some(), "{name}: bytes but no entries and no damage");
        }
        entries += seqs.len();
    }
    assert!(entries > 0, "the seeds include a real segment");
}

#[test]
fn stripe_model_corpus() {
    for (name, data) in corpus("stripe_model") {
        if let Err(e) = idemkv::testing::stripe_model(&data) {
            panic!("{name}: the stripe diverged from the reference: {e}");
        }
    }
}

#[test]
fn http_envelope_corpus() {
    let mut decoded = 0;
    for (name, data) in corpus("http_envelope") {
        if let Ok(again) = idemkv::testing::reencode_http_envelope(&data) {
            assert_eq!(again, data, "{name}: a decoded envelope re-encodes differently");
            decoded += 1;
        }
        for key in idemkv::testing::parse_key_headers(&data).into_iter().flatten().flatten() {
            assert!(!key.is_empty() && key.len() <= 255, "{name}: key {key:?}");
        }
    }
    assert!(decoded >= 2, "the seeds include two valid envelopes, saw {decoded}");
}
