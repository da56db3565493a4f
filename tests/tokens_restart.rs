//! Guards fencing-token monotonicity over the life of a store: every token is greater than every token issued before, across close/reopen, drop, and SIGKILL, including tokens of claims never completed.

mod common;

use common::{ChildProc, TestResult, acquire, child_config, key, summarize};
use idemkv::{Claim, Store};

#[test]
#[ignore = "child process of the crash tests; does nothing when run directly"]
fn child_worker() {
    common::child_main();
}

/// Records tokens in issue order and insists each is above all before it.
#[derive(Default)]
struct Tokens {
    max: u64,
    count: usize,
}

impl Tokens {
    fn push(&mut self, token: u64, what: &str) {
        assert!(
            token > self.max,
            "{what}: token {token} is not above {} (issued earlier)",
            self.max
        );
        self.max = token;
        self.count += 1;
    }
}

/// One boot's worth of claims: take over the previous boot's orphan, then
/// complete one key, release one, and leave one in flight.
fn one_boot(store: &Store, boot: usize, tokens: &mut Tokens) -> TestResult {
    if boot > 0 {
        let orphan = key(format!("held-{}", boot - 1));
        let lease = acquire(store, &orphan, None)?;
        assert!(lease.recovered());
        tokens.push(lease.token(), "recovered orphan");
        store.complete(&lease, b"redone")?;
    }
    let done = acquire(store, &key(format!("done-{boot}")), None)?;
    tokens.push(done.token(), "completed");
    store.complete(&done, b"d")?;
    let released = acquire(store, &key(format!("released-{boot}")), None)?;
    tokens.push(released.token(), "released");
    store.release(&released)?;
    let again = acquire(store, released.key(), None)?;
    tokens.push(again.token(), "re-acquired after release");
    store.complete(&again, b"r")?;
    let held = acquire(store, &key(format!("held-{boot}")), None)?;
    tokens.push(held.token(), "never completed");
    Ok(())
}

#[test]
fn tokens_increase_across_reopen_cycles() -> TestResult {
    let _serial = common::serial();
    let dir = tempfile::tempdir()?;
    let mut tokens = Tokens::default();
    let mut finished = Vec::new();
    for boot in 0..5 {
        let store = Store::open(dir.path())?;
        // Tokens stored earlier are still the ones that finished the keys.
        for (id, token) in &finished {
            match store.claim(&key(id), None)? {
                Claim::Replay(r) => assert_eq!(r.token(), *token, "{id}"),
                other => panic!("{id}: {other:?}"),
            }
        }
        one_boot(&store, boot, &mut tokens)?;
        let id = format!("done-{boot}");
        match store.claim(&key(&id), None)? {
            Claim::Replay(r) => finished.push((id, r.token())),
            other => panic!("{id}: expected Replay, got {other:?}"),
        }
        if boot % 2 == 0 {
            store.close()?;
        } else {
            drop(store);
        }
    }
    assert_eq!(tokens.count, 5 * 4 + 4);
    assert_eq!(finished.len(), 5);
    Ok(())
}

#[test]
fn tokens_increase_across_sigkill() -> TestResult {
    let _serial = common::serial();
    let dir = tempfile::tempdir()?;
    let mut tokens = Tokens::default();
    {
        let store = child_config().open(dir.path())?;
        one_boot(&store, 0, &mut tokens)?;
        store.close()?;
    }

    let mut child =
        ChildProc::spawn(dir.path(), "claim_complete", &[(common::CHILD_ARG_ENV, "20".into())])?;
    let mut acks = child.acks_until_ready()?;
    acks.extend(child.kill()?);
    let (claimed, completed) = summarize(&acks);
    assert_eq!((claimed.len(), completed.len()), (20, 10));
    // The child's tokens, in the order it acquired c0, c1, ...
    for i in 0..20 {
        tokens.push(claimed[&format!("c{i}")], "child claim");
    }

    for boot in 1..4 {
        let store = child_config().open(dir.path())?;
        if boot == 1 {
            // The child's unfinished claims (odd keys) are orphans now.
            for i in (1..20).step_by(2) {
                let lease = acquire(&store, &key(format!("c{i}")), None)?;
                assert!(lease.recovered());
                tokens.push(lease.token(), "take-over of the killed child's claim");
            }
        }
        one_boot(&store, boot, &mut tokens)?;
        store.close()?;
    }
    Ok(())
}
