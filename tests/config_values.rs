//! Guards that every `Config` and `Policy` value is checked at open: over a table of boundary values for every setter, `open` returns `Ok` or `InvalidConfig` (as the documented ranges say), never panics — nothing reaches sled or the record cache unchecked — and a completed sentinel key still replays afterwards, also after a reopen with a valid configuration.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Duration;

use common::{TestResult, acquire, key};
use idemkv::{
    Claim, Config, Durability, Error, MAX_DURATION, MAX_RESPONSE_LIMIT, MAX_SEGMENT_BYTES,
    MAX_SWEEP_BATCH, MIN_SEGMENT_BYTES, MIN_SLED_CACHE_BYTES, Policy,
};

/// One case: a label, the configuration, and whether it must open.
struct Case {
    label: String,
    config: Config,
    ok: bool,
}

fn case(label: impl Into<String>, config: Config, ok: bool) -> Case {
    Case { label: label.into(), config, ok }
}

/// A base configuration: no background sweep (the cases add it back).
fn base() -> Config {
    Config::new().sweep_interval(None)
}

fn durations() -> Vec<(Duration, bool)> {
    vec![
        (Duration::ZERO, false),
        (Duration::from_nanos(1), true),
        (Duration::from_micros(500), true),
        (Duration::from_millis(1), true),
        (MAX_DURATION, true),
        (MAX_DURATION + Duration::from_nanos(1), false),
        (Duration::MAX, false),
    ]
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for n in [0, 1, 2, 3, 64, 4096, 4097, 8192, usize::MAX] {
        let ok = n.is_power_of_two() && n <= 4096;
        v.push(case(format!("shards({n})"), base().shards(n), ok));
    }
    let long = "n".repeat(idemkv::MAX_NAMESPACE_LEN + 1);
    let widest = "n".repeat(idemkv::MAX_NAMESPACE_LEN);
    for (name, ok) in
        [("", false), (long.as_str(), false), (widest.as_str(), true), ("a:b %c", true)]
    {
        let config = base().namespace(name, idemkv::Policy::default());
        v.push(case(format!("namespace({name:?})"), config, ok));
    }
    for n in [0, 1, MAX_RESPONSE_LIMIT, MAX_RESPONSE_LIMIT + 1, usize::MAX] {
        let ok = n <= MAX_RESPONSE_LIMIT;
        v.push(case(format!("max_response_bytes({n})"), base().max_response_bytes(n), ok));
    }
    for n in [0, 1, 255, 4096, u64::MAX] {
        v.push(case(format!("cache_bytes({n})"), base().cache_bytes(n), true));
        // A share per shard of 0 (fewer bytes than shards) is a cache off too.
        v.push(case(
            format!("cache_bytes({n}) x 4096 shards"),
            base().cache_bytes(n).shards(4096),
            true,
        ));
    }
    for n in [0, 1, 255, MIN_SLED_CACHE_BYTES, 4096, u64::MAX] {
        let ok = n >= MIN_SLED_CACHE_BYTES;
        v.push(case(format!("sled_cache_bytes({n})"), base().sled_cache_bytes(n), ok));
    }
    for n in [0, 1, MAX_SWEEP_BATCH, MAX_SWEEP_BATCH + 1, usize::MAX] {
        let ok = (1..=MAX_SWEEP_BATCH).contains(&n);
        v.push(case(format!("sweep_batch({n})"), base().sweep_batch(n), ok));
    }
    for n in [0, 1, 4096, u64::MAX] {
        v.push(case(format!("checkpoint_bytes({n})"), base().checkpoint_bytes(n), n >= 1));
    }
    for n in [
        0,
        100,
        MIN_SEGMENT_BYTES - 1,
        MIN_SEGMENT_BYTES,
        MAX_SEGMENT_BYTES,
        MAX_SEGMENT_BYTES + 1,
        u64::MAX,
    ] {
        let ok = (MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&n);
        v.push(case(format!("segment_bytes({n})"), base().segment_bytes(n), ok));
    }
    for (d, ok) in durations() {
        let buffered = Durability::Buffered { max_delay: d };
        v.push(case(format!("Buffered max_delay {d:?}"), base().durability(buffered), ok));
        v.push(case(format!("sweep_interval {d:?}"), base().sweep_interval(Some(d)), ok));
        v.push(case(format!("checkpoint_interval {d:?}"), base().checkpoint_interval(Some(d)), ok));
        let lease = Policy::default().lease(d).retention(MAX_DURATION);
        v.push(case(format!("policy lease {d:?}"), base().default_policy(lease), ok));
        let keep = Policy::default().lease(Duration::from_nanos(1)).retention(d);
        v.push(case(format!("policy retention {d:?}"), base().namespace("n", keep), ok));
        let horizon = Policy::default().retention(MAX_DURATION).retry_horizon(d);
        v.push(case(format!("policy retry horizon {d:?}"), base().default_policy(horizon), ok));
    }
    v.push(case("sweep_interval None", base().sweep_interval(None), true));
    v.push(case("checkpoint_interval None", base().checkpoint_interval(None), true));
    v
}

/// Opens `dir` with the case's config; on success works a key through it
/// and closes it. Returns the open's verdict.
fn run(dir: &Path, c: Case) -> TestResult<Result<(), Error>> {
    let store = match c.config.open(dir) {
        Ok(store) => store,
        Err(e) => return Ok(Err(e)),
    };
    common::sentinel_replays(&store, &key("sentinel"))?;
    let lease = acquire(&store, &key(&c.label), None)?;
    store.complete(&lease, b"")?; // empty: fits max_response_bytes(0)
    assert!(matches!(store.claim(&key(&c.label), None)?, Claim::Replay(_)));
    store.close()?;
    Ok(Ok(()))
}

#[test]
fn every_config_value_opens_or_is_invalid_config_and_never_panics() -> TestResult {
    let dir = common::fast_tempdir()?;
    let store = base().open(dir.path())?;
    common::plant_sentinel(&store, &key("sentinel"))?;
    store.close()?;
    let mut failures = Vec::new();
    for c in cases() {
        let (label, want_ok) = (c.label.clone(), c.ok);
        let verdict = catch_unwind(AssertUnwindSafe(|| run(dir.path(), c)));
        match verdict {
            Err(_) => failures.push(format!("{label}: panicked")),
            Ok(Err(e)) => failures.push(format!("{label}: {e}")),
            Ok(Ok(Ok(()))) if want_ok => {}
            Ok(Ok(Ok(()))) => failures.push(format!("{label}: opened, expected InvalidConfig")),
            Ok(Ok(Err(Error::InvalidConfig { reason }))) if !want_ok => {
                assert!(!reason.is_empty());
            }
            Ok(Ok(Err(e))) => failures.push(format!("{label}: {e:?}")),
        }
        // Whatever happened, a valid configuration still finds the sentinel.
        let store = base().open(dir.path())?;
        if let Err(e) = common::sentinel_replays(&store, &key("sentinel")) {
            failures.push(format!("after {label}: {e}"));
        }
        store.close()?;
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    Ok(())
}

#[test]
fn invalid_config_messages_name_the_value_and_the_range() -> TestResult {
    let dir = common::fast_tempdir()?;
    let checks: Vec<(Config, &[&str])> = vec![
        (base().sled_cache_bytes(0), &["sled_cache_bytes", "256", "not 0"]),
        (base().sweep_batch(usize::MAX), &["sweep_batch", "1048576"]),
        (base().segment_bytes(u64::MAX), &["segment_bytes", "1073741824"]),
        (base().checkpoint_bytes(0), &["checkpoint_bytes"]),
        (base().sweep_interval(Some(Duration::ZERO)), &["sweep_interval", "longer than zero"]),
        (base().checkpoint_interval(Some(Duration::MAX)), &["checkpoint_interval", "MAX_DURATION"]),
        (
            base().durability(Durability::Buffered { max_delay: Duration::MAX }),
            &["max_delay", "MAX_DURATION"],
        ),
    ];
    for (config, words) in checks {
        match config.open(dir.path()) {
            Err(e @ Error::InvalidConfig { .. }) => {
                let msg = e.to_string();
                for w in words {
                    assert!(msg.contains(w), "{msg:?} lacks {w:?}");
                }
            }
            other => panic!("{words:?}: expected InvalidConfig, got {other:?}"),
        }
    }
    Ok(())
}
