//! Guards the bad-input matrix: each kind of bad key, payload, duration, clock, lease, directory, disk or on-disk version gives a typed error with a useful message (never a panic), and nothing already stored is lost — a completed sentinel key still replays afterwards.
//!
//! One test per kind. Sub-cases that need root (read-only and full tmpfs
//! mounts) print a note and skip when not root or when `mount` fails.
//! Documented behaviour of a clock going backwards: see
//! `clock_going_backwards_keeps_records_consistent`.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::faults::{Fault, FaultyFs};
use common::tmpfs::Tmpfs;
use common::{Ack, ChildProc, TestResult, acquire, crc32, mock_clock, mock_config};
use idemkv::{
    Claim, ClaimOptions, Config, Durability, EntryState, Error, Failure, Key, MAX_DURATION,
    MAX_ID_LEN, MAX_NAMESPACE_LEN, MAX_RESPONSE_LIMIT, MockClock, Policy, StaleReason, Store,
};

#[test]
#[ignore = "child process of the crash tests; does nothing when run directly"]
fn child_worker() {
    common::child_main();
}

const NS: &str = "m";
const SENTINEL: &[u8] = b"sentinel response";

fn mkey(id: &str) -> Key {
    Key::new(NS, id).expect("valid key")
}

fn sentinel() -> Key {
    mkey("sentinel")
}

/// Completes the sentinel key in `store`.
fn plant(store: &Store) -> TestResult {
    let lease = acquire(store, &sentinel(), None)?;
    store.complete(&lease, SENTINEL)?;
    Ok(())
}

/// The sentinel still replays: nothing stored was lost.
fn still_there(store: &Store) -> TestResult {
    match store.claim(&sentinel(), None)? {
        Claim::Replay(r) if r.response() == SENTINEL => Ok(()),
        other => Err(format!("the sentinel was lost: {other:?}").into()),
    }
}

/// Asserts `res` failed with an error matching `kind` whose message
/// contains every one of `words`.
#[track_caller]
fn refused<T: std::fmt::Debug>(
    res: idemkv::Result<T>,
    kind: fn(&Error) -> bool,
    words: &[&str],
) -> Error {
    match res {
        Err(e) if kind(&e) => {
            let msg = e.to_string();
            for w in words {
                assert!(msg.contains(w), "message of {e:?} lacks {w:?}: {msg}");
            }
            e
        }
        other => panic!("expected a typed error containing {words:?}, got {other:?}"),
    }
}

fn invalid_key(e: &Error) -> bool {
    matches!(e, Error::InvalidKey { .. })
}

fn invalid_config(e: &Error) -> bool {
    matches!(e, Error::InvalidConfig { .. })
}

fn io(e: &Error) -> bool {
    matches!(e, Error::Io { .. })
}

fn stale(e: &Error) -> bool {
    matches!(e, Error::StaleLease { .. })
}

/// A format one version newer than this build reads.
fn unsupported(e: &Error) -> bool {
    matches!(e, Error::UnsupportedVersion { found, supported, .. } if *found == supported + 1)
}

fn poisoned(e: &Error) -> bool {
    matches!(e, Error::Poisoned { .. })
}

/// A store in a fresh directory with the sentinel planted.
fn store_with_sentinel(config: Config) -> TestResult<(tempfile::TempDir, Store)> {
    let dir = common::fast_tempdir()?;
    let store = config.open(dir.path())?;
    plant(&store)?;
    Ok((dir, store))
}

// ---------------------------------------------------------------------------
// Keys.

#[test]
fn empty_and_oversized_namespaces_are_invalid_keys() -> TestResult {
    let _serial = common::serial();
    refused(Key::new("", "id"), invalid_key, &["invalid key", "namespace is empty"]);
    let long = "n".repeat(MAX_NAMESPACE_LEN + 1);
    refused(Key::new(&long, "id"), invalid_key, &["namespace is 65 bytes", "limit is 64"]);
    assert!(Key::new(&"n".repeat(MAX_NAMESPACE_LEN), "id").is_ok());
    // A policy for such a namespace is refused at open, before anything is written.
    let dir = common::fast_tempdir()?;
    refused(
        Config::new().namespace(&long, Policy::default()).open(dir.path()),
        invalid_config,
        &["Config::namespace", "limit is 64"],
    );
    refused(
        Config::new().namespace("", Policy::default()).open(dir.path()),
        invalid_config,
        &["Config::namespace", "namespace is empty"],
    );
    // `list` of a namespace no key can have is refused too: a 300-byte name
    // must not wrap its length byte and list namespace "n" x 44 instead.
    let store = Store::open(dir.path())?;
    let alias = Key::new(&"n".repeat(44), "n".repeat(256))?;
    let lease = acquire(&store, &alias, None)?;
    store.complete(&lease, b"other namespace")?;
    refused(store.list(Some(&"n".repeat(300)), None, 10), invalid_key, &["namespace is 300 bytes"]);
    refused(store.list(Some(&long), None, 10), invalid_key, &["limit is 64"]);
    refused(store.list(Some(""), None, 10), invalid_key, &["namespace is empty"]);
    assert_eq!(store.list(Some(&"n".repeat(44)), None, 10)?.len(), 1);
    store.close()?;
    Ok(())
}

#[test]
fn empty_and_oversized_ids_are_invalid_keys() -> TestResult {
    let _serial = common::serial();
    refused(Key::new(NS, ""), invalid_key, &["id is empty"]);
    refused(
        Key::new(NS, vec![b'x'; MAX_ID_LEN + 1]),
        invalid_key,
        &["1025 bytes", "limit is 1024"],
    );
    refused(Key::from_parts(NS, &["/".repeat(400)]), invalid_key, &["limit is 1024"]);
    let (_dir, store) = store_with_sentinel(Config::new())?;
    let k = Key::new(NS, vec![b'x'; MAX_ID_LEN])?;
    let lease = acquire(&store, &k, None)?;
    store.complete(&lease, b"longest id")?;
    still_there(&store)
}

#[test]
fn non_utf8_ids_work() -> TestResult {
    let _serial = common::serial();
    let (dir, store) = store_with_sentinel(Config::new())?;
    let ids: [&[u8]; 3] = [&[0xff, 0xfe, 0x00], &[0xc3, 0x28], &[0x80; 1024]];
    for id in ids {
        let k = Key::new(NS, id)?;
        assert!(k.to_string().starts_with("m:%"), "non-UTF-8 bytes %-escaped: {k}");
        assert_eq!(Key::parse(&k.to_string())?, k, "the text form reads back");
        let lease = acquire(&store, &k, None)?;
        store.complete(&lease, id)?;
    }
    store.close()?;
    let store = Store::open(dir.path())?;
    for id in ids {
        match store.claim(&Key::new(NS, id)?, None)? {
            Claim::Replay(r) => assert_eq!(r.response(), id),
            other => panic!("{other:?}"),
        }
    }
    still_there(&store)
}

#[test]
fn garbage_raw_keys_are_invalid_keys() -> TestResult {
    let _serial = common::serial();
    let mut too_long = vec![1, b'a'];
    too_long.extend(vec![b'x'; MAX_ID_LEN + 1]);
    let cases: [(&[u8], &str); 6] = [
        (&[], "raw key is empty"),
        (&[5, b'a', b'b'], "truncated"),
        (&[2, 0xff, 0xfe, b'x'], "not UTF-8"),
        (&[0, b'x'], "namespace is empty"),
        (&[1, b'a'], "id is empty"),
        (&too_long, "limit is 1024"),
    ];
    for (raw, why) in cases {
        refused(Key::from_raw(raw), invalid_key, &[why]);
    }
    let k = Key::new("ns", [0u8, 1, 2])?;
    assert_eq!(Key::from_raw(k.as_raw())?, k, "a valid raw key round-trips");
    Ok(())
}

// ---------------------------------------------------------------------------
// Payloads.

#[test]
fn oversized_response_is_refused_and_the_claim_kept() -> TestResult {
    let _serial = common::serial();
    let (_dir, store) = store_with_sentinel(Config::new().max_response_bytes(4096))?;
    let k = mkey("big");
    let lease = acquire(&store, &k, None)?;
    let e = refused(
        store.complete(&lease, &[1; 4097]),
        |e| matches!(e, Error::ResponseTooLarge { len: 4097, limit: 4096 }),
        &["4097 bytes", "limit of 4096", "max_response_bytes"],
    );
    assert!(!e.is_poisoned());
    assert!(matches!(store.claim(&k, None)?, Claim::InFlight { .. }), "the claim is kept");
    store.complete(&lease, &[1; 4096])?;
    assert!(matches!(store.claim(&k, None)?, Claim::Replay(r) if r.response().len() == 4096));
    still_there(&store)
}

#[test]
fn oversized_terminal_failure_payload_is_refused() -> TestResult {
    let _serial = common::serial();
    let (_dir, store) = store_with_sentinel(Config::new().max_response_bytes(100))?;
    let k = mkey("big-failure");
    let lease = acquire(&store, &k, None)?;
    refused(
        store.fail(&lease, Failure::Terminal(&[0; 101])),
        |e| matches!(e, Error::ResponseTooLarge { len: 101, limit: 100 }),
        &["101 bytes", "limit of 100"],
    );
    store.fail(&lease, Failure::Terminal(b"gave up"))?;
    assert!(matches!(store.claim(&k, None)?, Claim::Replay(r) if r.response() == b"gave up"));
    still_there(&store)
}

#[test]
fn max_response_bytes_over_the_format_limit_is_invalid_config() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    let res = Config::new().max_response_bytes(MAX_RESPONSE_LIMIT + 1).open(dir.path());
    refused(res, invalid_config, &["max_response_bytes", "67108865", "67108864"]);
    let res = Config::new().max_response_bytes(usize::MAX).open(dir.path());
    refused(res, invalid_config, &["exceeds the format's limit"]);
    Config::new().max_response_bytes(MAX_RESPONSE_LIMIT).open(dir.path())?.close()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Durations.

#[test]
fn zero_lease_and_zero_retention_are_invalid_config() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    let zero = Duration::ZERO;
    for (policy, word) in [
        (Policy::default().lease(zero), "lease must be longer than zero"),
        (Policy::default().retention(zero), "retention must be longer than zero"),
    ] {
        refused(Config::new().default_policy(policy).open(dir.path()), invalid_config, &[word]);
        refused(
            Config::new().namespace(NS, policy).open(dir.path()),
            invalid_config,
            &[word, "\"m\""],
        );
    }
    let store = Config::new().open(dir.path())?;
    plant(&store)?;
    let k = mkey("zero");
    refused(
        store.claim_with(&k, None, &ClaimOptions::new().lease(zero)),
        invalid_config,
        &["claim options", "lease must be longer than zero"],
    );
    refused(
        store.claim_with(&k, None, &ClaimOptions::new().retention(zero)),
        invalid_config,
        &["retention must be longer than zero"],
    );
    assert!(store.get(&k)?.is_none(), "a refused claim stores nothing");
    let mut lease = acquire(&store, &k, None)?;
    refused(store.extend(&mut lease, zero), invalid_config, &["extend", "longer than zero"]);
    store.complete(&lease, b"ok")?;
    still_there(&store)
}

#[test]
fn absurd_durations_are_refused_and_the_longest_accepted_saturates() -> TestResult {
    let _serial = common::serial();
    // Duration::MAX and u64::MAX milliseconds are above MAX_DURATION (100
    // years): refused with InvalidConfig naming the value and the limit,
    // wherever a duration is taken.
    let ms_max = Duration::from_millis(u64::MAX);
    for absurd in [Duration::MAX, ms_max, MAX_DURATION + Duration::from_millis(1)] {
        let dir = common::fast_tempdir()?;
        let huge = Policy::default().lease(absurd).retention(absurd);
        refused(
            Config::new().default_policy(huge).open(dir.path()),
            invalid_config,
            &["lease", "MAX_DURATION", &format!("{absurd:?}")],
        );
        let (_d, store) = store_with_sentinel(Config::new())?;
        let k = mkey("forever-per-call");
        let opts = ClaimOptions::new().lease(Duration::from_secs(1)).retention(absurd);
        refused(store.claim_with(&k, None, &opts), invalid_config, &["retention", "MAX_DURATION"]);
        assert!(store.get(&k)?.is_none(), "a refused claim stores nothing");
        let mut lease = acquire(&store, &k, None)?;
        refused(store.extend(&mut lease, absurd), invalid_config, &["extend", "MAX_DURATION"]);
        store.complete(&lease, b"ok")?;
        still_there(&store)?;
    }

    // MAX_DURATION itself is accepted: "kept for a century", no overflow.
    let huge = Policy::default().lease(MAX_DURATION).retention(MAX_DURATION);
    let (dir, store) = store_with_sentinel(Config::new().default_policy(huge))?;
    let k = mkey("forever");
    let mut lease = acquire(&store, &k, None)?;
    let _ = lease.deadline(); // representable, no panic
    match store.claim(&k, None)? {
        Claim::InFlight { retry_after, .. } => assert!(retry_after > Duration::from_secs(1 << 31)),
        other => panic!("{other:?}"),
    }
    store.extend(&mut lease, MAX_DURATION)?;
    store.complete(&lease, b"kept forever")?;
    let entry = store.get(&k)?.ok_or("record lost")?;
    assert!(common::ms(entry.expires_at) > 3_000_000_000_000, "{entry:?}");
    assert_eq!(store.sweep()?, 0);
    store.close()?;
    let store = Config::new().default_policy(huge).open(dir.path())?;
    assert!(matches!(store.claim(&k, None)?, Claim::Replay(r) if r.response() == b"kept forever"));
    store.close()?;

    // A clock near the end of u64 milliseconds: deadlines saturate.
    let clock = MockClock::new(u64::MAX - 1_000);
    let dir = common::fast_tempdir()?;
    let store = mock_config(&clock).default_policy(huge).open(dir.path())?;
    plant(&store)?;
    let mut lease = acquire(&store, &k, None)?;
    assert!(matches!(store.claim(&k, None)?, Claim::InFlight { .. }));
    store.extend(&mut lease, Duration::from_secs(60))?;
    store.complete(&lease, b"late in time")?;
    clock.advance(Duration::from_millis(999));
    assert!(matches!(store.claim(&k, None)?, Claim::Replay(_)));
    still_there(&store)?;
    // Extending past the key's retention is refused.
    let (_d, store) = store_with_sentinel(Config::new())?;
    let mut lease = acquire(&store, &k, None)?;
    refused(
        store.extend(&mut lease, MAX_DURATION),
        invalid_config,
        &["longer than the key's retention"],
    );
    store.complete(&lease, b"ok")?;
    still_there(&store)
}

#[test]
fn wait_with_an_absurd_timeout_does_not_panic() -> TestResult {
    let _serial = common::serial();
    let (_dir, store) = store_with_sentinel(Config::new())?;
    // The key is finished: wait must return its replay at once.
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.wait(&sentinel(), None, Duration::MAX)
    }));
    match res {
        Ok(Ok(Claim::Replay(r))) => assert_eq!(r.response(), SENTINEL),
        Ok(other) => panic!("{other:?}"),
        Err(_) => panic!("Store::wait(.., Duration::MAX) panicked"),
    }
    Ok(())
}

#[test]
fn wait_on_a_saturated_lease_does_not_overflow() -> TestResult {
    let _serial = common::serial();
    let clock = MockClock::new(u64::MAX - 10);
    let dir = common::fast_tempdir()?;
    let huge = Policy::default().lease(MAX_DURATION).retention(MAX_DURATION);
    let store = mock_config(&clock).default_policy(huge).open(dir.path())?;
    let k = mkey("held");
    let _lease = acquire(&store, &k, None)?;
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.wait(&k, None, Duration::from_millis(10))
    }));
    assert!(matches!(res, Ok(Ok(Claim::InFlight { .. }))), "{res:?}");
    Ok(())
}

#[test]
fn lease_longer_than_retention_is_invalid_config() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    let hour = Duration::from_secs(3600);
    let policy = Policy::default().lease(2 * hour).retention(hour);
    refused(
        Config::new().default_policy(policy).open(dir.path()),
        invalid_config,
        &["lease (7200s) is longer than the retention (3600s)"],
    );
    let store = Config::new().open(dir.path())?;
    plant(&store)?;
    let opts = ClaimOptions::new().lease(2 * hour).retention(hour);
    refused(
        store.claim_with(&mkey("k"), None, &opts),
        invalid_config,
        &["longer than the retention"],
    );
    // The default retention is 72 h: a per-call lease beyond it is refused too.
    let opts = ClaimOptions::new().lease(Duration::from_secs(73 * 3600));
    refused(
        store.claim_with(&mkey("k"), None, &opts),
        invalid_config,
        &["longer than the retention"],
    );
    still_there(&store)
}

#[test]
fn retention_shorter_than_the_retry_horizon_is_invalid_config() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    let (hour, horizon) = (Duration::from_secs(3600), Duration::from_secs(72 * 3600));
    let short = Policy::default().retention(hour).retry_horizon(horizon);
    refused(
        Config::new().namespace("stripe", short).open(dir.path()),
        invalid_config,
        &["namespace \"stripe\"", "shorter than the declared retry horizon", "raise the retention"],
    );
    refused(
        Config::new().default_policy(short).open(dir.path()),
        invalid_config,
        &["retry horizon"],
    );
    let ok = Policy::default().retry_horizon(horizon);
    let store = Config::new().namespace(NS, ok).open(dir.path())?;
    plant(&store)?;
    let opts = ClaimOptions::new().retention(hour);
    refused(store.claim_with(&mkey("k"), None, &opts), invalid_config, &["retry horizon"]);
    assert!(store.get(&mkey("k"))?.is_none());
    still_there(&store)
}

#[test]
fn other_invalid_config_values_are_refused() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    for shards in [0, 3, 100, 4095, 8192] {
        refused(
            Config::new().shards(shards).open(dir.path()),
            invalid_config,
            &["power of two", &shards.to_string()],
        );
    }
    for shards in [1, 4096] {
        Config::new().shards(shards).open(dir.path())?.close()?;
    }
    let zero_delay = Durability::Buffered { max_delay: Duration::ZERO };
    refused(Config::new().durability(zero_delay).open(dir.path()), invalid_config, &["max_delay"]);
    refused(Config::new().sweep_batch(0).open(dir.path()), invalid_config, &["sweep_batch"]);
    refused(Config::new().segment_bytes(100).open(dir.path()), invalid_config, &["segment_bytes"]);
    Ok(())
}

// ---------------------------------------------------------------------------
// The clock.

/// What happens when the wall clock goes backwards (documented here):
/// records keep their absolute times, so a jump back by X makes every lease
/// and retention last X longer (an in-flight claim reports a longer
/// `retry_after`), and a finish recorded during the jump has a `finished_at`
/// before its `first_claimed_at`. Nothing panics, `verify` stays clean, and
/// no lease becomes immortal: once the clock passes the stored deadline
/// again the claim is an orphan and is taken over.
#[test]
fn clock_going_backwards_keeps_records_consistent() -> TestResult {
    let _serial = common::serial();
    let clock = mock_clock();
    let t0 = clock_now(&clock);
    let dir = common::fast_tempdir()?;
    let store = mock_config(&clock).open(dir.path())?;
    plant(&store)?;
    let held = acquire(&store, &mkey("held"), None)?; // deadline t0 + 30 s
    let late = acquire(&store, &mkey("late"), None)?;

    clock.set(t0 - 3_600_000); // one hour back
    match store.claim(&mkey("held"), None)? {
        Claim::InFlight { retry_after, .. } => {
            assert_eq!(retry_after, Duration::from_secs(3600 + 30), "the lease lasts 1 h longer");
        }
        other => panic!("{other:?}"),
    }
    still_there(&store)?;
    store.complete(&late, b"finished in the past")?;
    match store.get(&mkey("late"))?.map(|e| e.state) {
        Some(EntryState::Finished(r)) => {
            assert!(r.finished_at() < r.first_claimed_at(), "times are kept as read");
            assert_eq!(r.response(), b"finished in the past");
        }
        other => panic!("{other:?}"),
    }
    let past = acquire(&store, &mkey("claimed-in-the-past"), None)?; // deadline t0 - 1 h + 30 s
    assert!(past.token() > held.token());
    assert_eq!(store.sweep()?, 0, "nothing live is swept");

    // Forward again, past every deadline: no lease is immortal.
    clock.set(t0 + 31_000);
    for id in ["held", "claimed-in-the-past"] {
        let lease = acquire(&store, &mkey(id), None)?;
        assert!(lease.recovered(), "{id}: the expired lease is an orphan");
        store.complete(&lease, b"redone")?;
    }
    assert!(matches!(store.claim(&mkey("late"), None)?, Claim::Replay(_)));
    // Far back, to the epoch: still no panic, and the records stay readable.
    clock.set(0);
    assert!(matches!(store.claim(&mkey("late"), None)?, Claim::Replay(_)));
    let k = mkey("at-epoch");
    let lease = acquire(&store, &k, None)?;
    store.complete(&lease, b"epoch")?;
    clock.set(t0); // a record written at time 0 has long expired by now
    assert!(store.get(&k)?.is_none());
    assert_eq!(store.verify()?.corrupt, vec![]);
    still_there(&store)
}

fn clock_now(clock: &MockClock) -> u64 {
    idemkv::Clock::now_millis(clock)
}

// ---------------------------------------------------------------------------
// Leases.

#[test]
fn leases_of_other_keys_or_other_stores_and_used_leases_are_stale() -> TestResult {
    let _serial = common::serial();
    let (_a_dir, a) = store_with_sentinel(Config::new())?;
    let (_b_dir, b) = store_with_sentinel(Config::new())?;
    // A lease from store B, whatever the key, is refused by store A.
    let foreign = acquire(&b, &mkey("only-in-b"), None)?;
    let e = refused(
        a.complete(&foreign, b"x"),
        stale,
        &["stale lease", "m:only-in-b", "another store"],
    );
    assert!(matches!(e, Error::StaleLease { reason: StaleReason::OtherStore, .. }));
    assert!(a.get(&mkey("only-in-b"))?.is_none(), "nothing was stored");
    let _skip = acquire(&b, &mkey("burn-a-token"), None)?;
    let in_b = acquire(&b, &mkey("both"), None)?;
    let in_a = acquire(&a, &mkey("both"), None)?;
    let e = refused(a.complete(&in_b, b"x"), stale, &["another store"]);
    assert!(matches!(e, Error::StaleLease { reason: StaleReason::OtherStore, .. }));
    // A lease of this store for a key held under a newer token: Superseded.
    let held = acquire(&a, &mkey("held"), None)?;
    a.release(&held)?;
    let newer = acquire(&a, &mkey("held"), None)?;
    let e = refused(a.complete(&held, b"x"), stale, &["re-acquired by a newer claim"]);
    assert!(
        matches!(e, Error::StaleLease { reason: StaleReason::Superseded { current }, .. } if current == newer.token())
    );
    a.complete(&in_a, b"mine")?;
    // A used lease: every transition after its completion is Finished.
    let e = refused(a.complete(&in_a, b"again"), stale, &["already finished", "do not report"]);
    assert!(matches!(e, Error::StaleLease { reason: StaleReason::Finished, .. }));
    refused(a.fail(&in_a, Failure::Retryable), stale, &["already finished"]);
    refused(a.release(&in_a), stale, &["already finished"]);
    refused(a.extend(&mut in_a.clone(), Duration::from_secs(1)), stale, &["already finished"]);
    assert!(matches!(a.claim(&mkey("both"), None)?, Claim::Replay(r) if r.response() == b"mine"));
    // A lease given back, then the key re-acquired: Superseded.
    let first = acquire(&a, &mkey("again"), None)?;
    a.fail(&first, Failure::Retryable)?;
    let second = acquire(&a, &mkey("again"), None)?;
    let e = refused(a.complete(&first, b"old"), stale, &["re-acquired"]);
    assert!(
        matches!(e, Error::StaleLease { reason: StaleReason::Superseded { current }, .. } if current == second.token())
    );
    a.complete(&second, b"new")?;
    still_there(&a)?;
    still_there(&b)
}

#[test]
fn a_lease_from_another_store_with_an_equal_token_is_stale() -> TestResult {
    let _serial = common::serial();
    let (a_dir, b_dir) = (common::fast_tempdir()?, common::fast_tempdir()?);
    let (a, b) = (Store::open(a_dir.path())?, Store::open(b_dir.path())?);
    let in_a = acquire(&a, &mkey("k"), None)?;
    let in_b = acquire(&b, &mkey("k"), None)?;
    assert_eq!(in_a.token(), in_b.token(), "both fresh stores issue the same first token");
    let res = a.complete(&in_b, b"written through store B's lease");
    assert!(matches!(res, Err(Error::StaleLease { .. })), "store A accepted B's lease: {res:?}");
    Ok(())
}

// ---------------------------------------------------------------------------
// Directories.

#[test]
fn a_regular_file_as_the_directory_is_an_io_error() -> TestResult {
    let _serial = common::serial();
    let root = common::fast_tempdir()?;
    let file = root.path().join("a-file");
    std::fs::write(&file, b"not a directory")?;
    refused(Store::open(&file), io, &["creating data directory", "a-file"]);
    refused(Store::open(file.join("below")), io, &["I/O error"]);
    assert_eq!(std::fs::read(&file)?, b"not a directory", "left untouched");
    Ok(())
}

#[test]
fn a_read_only_directory_is_an_io_error() -> TestResult {
    let _serial = common::serial();
    let root = tempfile::tempdir()?;
    if common::is_root() {
        // Root ignores permission bits: use read-only mounts instead.
        let ro = root.path().join("ro");
        if let Some(_m) = Tmpfs::mount(&ro, "ro,size=1m", "the read-only sub-case") {
            refused(Store::open(&ro), io, &["LOCK", "Read-only file system"]);
            refused(Store::open(ro.join("sub")), io, &["creating data directory"]);
        }
        // An existing store whose file system turns read-only.
        let rw = root.path().join("rw");
        if let Some(m) = Tmpfs::mount(&rw, "size=16m", "the read-write sub-case") {
            let store = Store::open(&rw)?;
            plant(&store)?;
            store.close()?;
            m.remount("ro")?;
            refused(Store::open(&rw), io, &["Read-only file system"]);
            m.remount("rw")?;
            let store = Store::open(&rw)?;
            still_there(&store)?;
            store.close()?;
        }
    } else {
        use std::os::unix::fs::PermissionsExt;
        let dir = root.path().join("ro");
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555))?;
        refused(Store::open(&dir), io, &["LOCK", "ermission denied"]);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

#[test]
fn a_second_process_on_the_directory_is_locked_out() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    let store = Store::open(dir.path())?;
    plant(&store)?;
    // In this process (see locked.rs for the full lifecycle).
    refused(
        Store::open(dir.path()),
        |e| matches!(e, Error::Locked { .. }),
        &["in use by another process", &dir.path().display().to_string()],
    );
    // From another process.
    let mut child = ChildProc::spawn(dir.path(), "try_open", &[])?;
    match child.next_ack(Duration::from_secs(60))? {
        Some(Ack::Result(r)) => assert_eq!(r, format!("LOCKED {}", dir.path().display())),
        other => panic!("child said {other:?}"),
    }
    assert!(child.wait()?.success());
    still_there(&store)
}

// ---------------------------------------------------------------------------
// Full disks.

/// Claims and completes keys `full-{i}` for `i` in `from..to` with
/// `len`-byte responses until a call fails; returns the ids acknowledged and
/// the error.
fn fill(store: &Store, len: usize, from: usize, to: usize) -> (Vec<String>, Option<Error>) {
    let mut acked = Vec::new();
    for i in from..to {
        let id = format!("full-{i}");
        let body = vec![i as u8; len];
        let res = store.claim(&mkey(&id), None).and_then(|c| match c {
            Claim::Acquired(lease) => store.complete(&lease, &body),
            other => panic!("{other:?}"),
        });
        match res {
            Ok(()) => acked.push(id),
            Err(e) => return (acked, Some(e)),
        }
    }
    (acked, None)
}

fn check_filled(store: &Store, acked: &[String], len: usize, sentinel: bool) -> TestResult {
    for id in acked {
        let i: usize = id["full-".len()..].parse()?;
        match store.claim(&mkey(id), None)? {
            Claim::Replay(r) => assert!(r.response() == vec![i as u8; len], "{id}: body differs"),
            other => return Err(format!("{id}: acknowledged completion lost: {other:?}").into()),
        }
    }
    if sentinel { still_there(store) } else { Ok(()) }
}

/// Runs `f` on another thread, failing if it takes longer than `limit`
/// (the thread is left behind).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn a_full_disk_poisons_the_store_and_loses_nothing_acknowledged() -> TestResult {
    let _serial = common::serial();
    // 1. ENOSPC from the journal through the fault seam (works unprivileged).
    let dir = common::fast_tempdir()?;
    let fs = FaultyFs::new(Fault::None);
    let store = Config::new().journal_fs(Arc::new(fs.clone())).open(dir.path())?;
    plant(&store)?;
    let (first, none) = fill(&store, 1000, 0, 10);
    assert!(none.is_none());
    fs.arm(Fault::Enospc(fs.writes() + 5));
    let (more, err) = fill(&store, 1000, 10, 100);
    assert_eq!(more.len(), 2, "the fifth journal write hit the full disk");
    let e = err.ok_or("no error on a full disk")?;
    refused(Err::<(), _>(e), poisoned, &["No space left on device", "reopen"]);
    refused(store.claim(&mkey("after"), None), poisoned, &["No space left on device"]);
    refused(store.close(), poisoned, &["No space left on device"]);
    let store = Store::open(dir.path())?;
    check_filled(&store, &first, 1000, true)?;
    check_filled(&store, &more, 1000, true)?;
    store.close()?;

    // 2. A real full file system: a tmpfs filled up while the store runs.
    let root = tempfile::tempdir()?;
    let mnt = root.path().join("mnt");
    let Some(m) = Tmpfs::mount(&mnt, "size=8m", "the full-disk sub-case") else { return Ok(()) };
    let store = Store::open(&mnt)?;
    plant(&store)?;
    let (first, none) = fill(&store, 16 << 10, 0, 20);
    assert!(none.is_none());
    // Make sled durable, then take the rest of the space: the next journal
    // write is the first to find the disk full.
    store.checkpoint()?;
    let filler = mnt.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status()?;
    let (more, err) = fill(&store, 16 << 10, 20, 1000);
    let e = err.ok_or("no error on a full disk")?;
    let msg = e.to_string();
    println!("full tmpfs: {} more acknowledged, then: {msg}", more.len());
    assert!(
        matches!(e, Error::Poisoned { .. } | Error::Io { .. } | Error::Storage { .. })
            && msg.contains("No space left on device"),
        "{e:?}: {msg}"
    );
    let closed = within(Duration::from_secs(20), move || store.close()).ok_or("close hung")?;
    assert!(closed.is_err(), "close reports the failure: {closed:?}");
    std::fs::remove_file(&filler)?;
    m.remount("size=64m")?;
    let store = Store::open(&mnt)?;
    check_filled(&store, &first, 16 << 10, true)?;
    check_filled(&store, &more, 16 << 10, true)?;
    store.close()?;
    Ok(())
}

// `Store::close` once sled itself hit a full disk: tests/close_full_disk.rs.

// ---------------------------------------------------------------------------
// Newer on-disk versions.

/// Rewrites the little-endian u32 version at `at` and the crc32 over
/// `[0, crc_at)` stored at `crc_at`.
fn bump(bytes: &mut [u8], at: usize, crc_at: usize, version: u32) {
    bytes[at..at + 4].copy_from_slice(&version.to_le_bytes());
    let sum = crc32(&bytes[..crc_at]);
    bytes[crc_at..crc_at + 4].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn newer_format_versions_are_unsupported_version() -> TestResult {
    let _serial = common::serial();
    let (dir, store) = store_with_sentinel(Config::new())?;
    store.close()?;

    // META (72 bytes: version at 8, crc32 of [0, 68) at 68).
    let meta_path = dir.path().join("META");
    let meta = std::fs::read(&meta_path)?;
    let mut newer = meta.clone();
    bump(&mut newer, 8, 68, 4);
    std::fs::write(&meta_path, &newer)?;
    refused(Store::open(dir.path()), unsupported, &["META", "version 4", "newer idemkv"]);
    std::fs::write(&meta_path, &meta)?;

    // A journal segment header (16 bytes: version at 8, crc32 of [0, 12) at 12).
    let seg = common::segments(dir.path())?.pop().ok_or("no journal segment")?;
    let original = std::fs::read(&seg)?;
    let frames = common::parse_segment(&original);
    let mut newer = original.clone();
    bump(&mut newer, 8, 12, 2);
    std::fs::write(&seg, &newer)?;
    refused(
        Store::open(dir.path()),
        unsupported,
        &["journal segment", "version 2", "newer idemkv"],
    );
    std::fs::write(&seg, &original)?;

    // A record (version byte at 2, crc32 of everything before the last 4
    // bytes at the end), taken from the sentinel's journal frame.
    let store = Store::open(dir.path())?;
    still_there(&store)?;
    let mut record = frames
        .iter()
        .rev()
        .find(|f| f.key == sentinel().as_raw() && f.state_tag() == Some(2))
        .and_then(|f| f.record.clone())
        .ok_or("no completed record of the sentinel in the journal")?;
    record[2] = 2;
    let n = record.len() - 4;
    let sum = crc32(&record[..n]);
    record[n..].copy_from_slice(&sum.to_le_bytes());
    let k = mkey("from-the-future");
    let lease = acquire(&store, &k, None)?;
    store.complete(&lease, b"now")?;
    store.__corrupt_record(&k, &record)?;
    refused(store.claim(&k, None), unsupported, &["record", "version 2", "newer idemkv"]);
    refused(store.get(&k), unsupported, &["record"]);
    let report = store.verify()?;
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert!(report.corrupt[0].1.contains("version 2"), "{report:?}");
    still_there(&store)
}
