//! Guards the closed-store rule: after `Store::close`, every call on every clone returns `Error::Closed` — including a `wait` already blocked, which wakes at once — except the accessors `config`, `recovery_report` and `stats`; nothing stored changes.

mod common;

use std::time::{Duration, Instant};

use common::{TestResult, acquire, key, mock_clock, mock_config};
use idemkv::{Claim, ClaimOptions, Error, Failure, Store};

#[track_caller]
fn closed<T: std::fmt::Debug>(what: &str, res: idemkv::Result<T>) {
    match res {
        Err(Error::Closed) => {}
        other => panic!("{what} after close: expected Error::Closed, got {other:?}"),
    }
}

#[test]
fn every_call_on_a_clone_of_a_closed_store_is_closed() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    let clock = mock_clock();
    let store = mock_config(&clock).open(dir.path())?;
    let done = acquire(&store, &key("done"), None)?;
    store.complete(&done, b"kept")?;
    let mut held = acquire(&store, &key("held"), None)?;
    let mut exported = Vec::new();
    store.export(|r| {
        exported.push(r);
        Ok(())
    })?;
    let clone = store.clone();
    let config_before = format!("{:?}", clone.config());
    store.close()?;

    let options = ClaimOptions::new().lease(Duration::from_secs(1));
    let none = Duration::from_millis(1);
    closed("claim", clone.claim(&key("new"), None));
    closed("claim_with", clone.claim_with(&key("new"), None, &options));
    closed("wait", clone.wait(&key("new"), None, none));
    closed("wait_with", clone.wait_with(&key("new"), None, &options, none));
    closed("complete", clone.complete(&held, b"x"));
    closed("fail retryable", clone.fail(&held, Failure::Retryable));
    closed("fail terminal", clone.fail(&held, Failure::Terminal(b"x")));
    closed("release", clone.release(&held));
    closed("extend", clone.extend(&mut held, Duration::from_secs(1)));
    closed("get of a cached key", clone.get(&key("done")));
    closed("get of an unknown key", clone.get(&key("never")));
    closed("remove", clone.remove(&key("done")));
    closed("sweep", clone.sweep());
    closed("flush", clone.flush());
    closed("checkpoint", clone.checkpoint());
    closed("verify", clone.verify());
    closed("list", clone.list(None, None, 10));
    closed("list in a namespace", clone.list(Some(common::NS), None, 10));
    closed("export", clone.export(|_| Ok(())));
    closed("import", clone.import(&exported[0]));
    // The accessors keep answering.
    assert_eq!(format!("{:?}", clone.config()), config_before);
    let _ = clone.recovery_report();
    assert_eq!(clone.stats().namespaces[common::NS].completions, 1);
    // Closing again, through the clone, is refused the same way.
    closed("close", clone.clone().close());
    drop(clone);

    // Nothing changed: the completed key replays, the held one is orphaned.
    let store = mock_config(&clock).open(dir.path())?;
    match store.claim(&key("done"), None)? {
        Claim::Replay(r) => assert_eq!(r.response(), b"kept"),
        other => panic!("the completed key changed: {other:?}"),
    }
    assert!(store.get(&key("new"))?.is_none(), "no call after close stored anything");
    store.close()?;
    Ok(())
}

#[test]
fn a_wait_in_progress_on_a_clone_returns_closed_at_once() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    // The real clock: the waiter's holder has a 30 s lease it never ends.
    let store = Store::open(dir.path())?;
    let _holder = acquire(&store, &key("busy"), None)?;
    let clone = store.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        tx.send(()).expect("main thread listens");
        let started = Instant::now();
        let res = clone.wait(&key("busy"), None, Duration::from_secs(60));
        (res, started.elapsed())
    });
    rx.recv()?;
    // Let the waiter reach its condition variable (a waiter that has not
    // yet gone to sleep sees `closed` at its next check instead).
    std::thread::sleep(Duration::from_millis(200));
    let closing = Instant::now();
    store.close()?;
    let (res, waited) = waiter.join().map_err(|_| "waiter panicked")?;
    closed("a wait in progress", res);
    assert!(
        closing.elapsed() < Duration::from_secs(5) && waited < Duration::from_secs(10),
        "the waiter woke at close, not at its timeout or the lease's end: {waited:?}"
    );
    Ok(())
}

/// Closed comes first: a call with bad input on a closed store says
/// `Closed`, not what is wrong with the input.
#[test]
fn bad_input_on_a_closed_store_is_closed() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    let store = mock_config(&mock_clock()).max_response_bytes(4).open(dir.path())?;
    let mut lease = acquire(&store, &key("k"), None)?;
    let clone = store.clone();
    store.close()?;
    let closed = |what: &str, e: Error| assert!(matches!(e, Error::Closed), "{what}: {e:?}");
    closed("complete too large", clone.complete(&lease, b"too large").unwrap_err());
    closed("fail too large", clone.fail(&lease, Failure::Terminal(b"too large")).unwrap_err());
    closed("extend by zero", clone.extend(&mut lease, Duration::ZERO).unwrap_err());
    closed("list of no namespace", clone.list(Some(""), None, 10).unwrap_err());
    let bad = ClaimOptions::new().lease(Duration::ZERO);
    closed("claim with a zero lease", clone.claim_with(&key("k"), None, &bad).unwrap_err());
    Ok(())
}
