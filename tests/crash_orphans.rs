//! Guards crash recovery after SIGKILL: acknowledged completions replay byte-identically and claims of the dead process are orphaned at once (recovered, next attempt, higher token) without waiting for their lease.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Ack, ChildProc, TestResult, child_config, key, response_for, summarize};
use idemkv::{Claim, EntryState, Fingerprint, Store};

#[test]
#[ignore = "child process of the crash tests; does nothing when run directly"]
fn child_worker() {
    common::child_main();
}

/// Checks every acknowledged transition against the reopened store.
/// `may_have_completed(id)` says whether an unacknowledged completion of a
/// claimed key could exist (then a Replay is accepted for it).
fn check_acks(
    store: &Store,
    claimed: &BTreeMap<String, u64>,
    completed: &[String],
    may_have_completed: impl Fn(&str) -> bool,
) -> TestResult {
    let max_child_token = *claimed.values().max().ok_or("no claims acknowledged")?;
    for id in completed {
        let token =
            claimed.get(id).ok_or_else(|| format!("{id} completed before it was claimed?"))?;
        match store.claim(&key(id), Fingerprint::of(id))? {
            Claim::Replay(r) => {
                assert_eq!(r.response(), &response_for(id)[..], "{id}: body differs");
                assert!(r.is_completed());
                assert_eq!(r.token(), *token, "{id}: finished by another token");
                assert_eq!(r.attempts(), 1);
            }
            other => panic!("{id}: acknowledged completion lost, got {other:?}"),
        }
    }
    let mut recovered = 0;
    for (id, token) in claimed {
        if completed.contains(id) {
            continue;
        }
        let k = key(id);
        match store.get(&k)?.map(|e| e.state) {
            Some(EntryState::InProgress { token: t, orphaned, .. }) => {
                assert_eq!(t, *token, "{id}: the stored claim is the child's");
                assert!(orphaned, "{id}: a dead process's claim is orphaned");
            }
            Some(EntryState::Finished(_)) if may_have_completed(id) => {}
            other => panic!("{id}: acknowledged claim lost, got {other:?}"),
        }
        // The lease is an hour long: only orphaning by boot can free it now.
        match store.claim(&k, Fingerprint::of(id))? {
            Claim::Acquired(lease) => {
                assert!(lease.recovered(), "{id}: must be flagged recovered");
                assert_eq!(lease.attempt(), 2, "{id}");
                assert!(
                    lease.token() > max_child_token,
                    "{id}: token {} not above the child's {max_child_token}",
                    lease.token()
                );
                lease.complete(b"redone")?;
                recovered += 1;
            }
            Claim::Replay(r) if may_have_completed(id) => {
                assert_eq!(r.response(), &response_for(id)[..]);
            }
            other => panic!("{id}: expected an immediate recovered Acquired, got {other:?}"),
        }
    }
    assert!(recovered > 0, "no in-flight claim was checked");
    Ok(())
}

#[test]
fn orphans_recovered_after_sigkill() -> TestResult {
    let _serial = common::serial();
    let dir = tempfile::tempdir()?;
    let mut child =
        ChildProc::spawn(dir.path(), "claim_complete", &[(common::CHILD_ARG_ENV, "40".into())])?;
    let mut acks = child.acks_until_ready()?;
    acks.extend(child.kill()?);
    let (claimed, completed) = summarize(&acks);
    assert_eq!(claimed.len(), 40);
    assert_eq!(completed.len(), 20);

    let store = child_config().open(dir.path())?;
    let report = store.recovery_report().clone();
    assert!(
        report.entries_replayed >= 60,
        "the journal holds every acknowledged transition: {report:?}"
    );
    assert_eq!(report.damage, None);
    check_acks(&store, &claimed, &completed, |_| false)?;
    store.close()?;

    // The redone work is durable too, and nothing is orphaned any more.
    let store = child_config().open(dir.path())?;
    for id in claimed.keys() {
        assert!(matches!(store.claim(&key(id), Fingerprint::of(id))?, Claim::Replay(_)));
    }
    Ok(())
}

#[test]
fn orphans_recovered_after_sigkill_mid_traffic() -> TestResult {
    let _serial = common::serial();
    let dir = tempfile::tempdir()?;
    let mut child =
        ChildProc::spawn(dir.path(), "traffic", &[(common::CHILD_ARG_ENV, "8".into())])?;
    let mut acks = Vec::new();
    while acks.len() < 400 {
        match child.next_ack(Duration::from_secs(60))? {
            Some(a @ (Ack::Claimed { .. } | Ack::Completed { .. })) => acks.push(a),
            Some(other) => return Err(format!("unexpected {other:?}").into()),
            None => return Err("child exited mid-traffic".into()),
        }
    }
    // Kill while the eight threads are still claiming and completing.
    acks.extend(child.kill()?);
    let (claimed, completed) = summarize(&acks);
    assert!(completed.len() > 100, "traffic ran: {} completions", completed.len());

    let store = child_config().open(dir.path())?;
    let report = store.recovery_report().clone();
    assert!(report.entries_replayed as usize >= acks.len(), "{report:?}");
    // Keys t{thread}-{n} with n % 3 == 0 are never completed by the child.
    let completes = |id: &str| {
        let n: u64 = id.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap();
        !n.is_multiple_of(3)
    };
    check_acks(&store, &claimed, &completed, completes)?;
    Ok(())
}
