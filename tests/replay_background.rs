//! Guards the open of a crashed store: replayed journal entries become
//! pending versions that the applier writes to sled in the background, so the
//! journal segments must survive until a checkpoint covers them. A second
//! SIGKILL right after the replaying open, and a clean close after it, lose
//! nothing acknowledged.

mod common;

use common::{Ack, ChildProc, TestResult, key, response_for, serial, summarize};
use idemkv::{Claim, EntryState, Fingerprint, Store};

#[test]
#[ignore = "child process of the crash tests; does nothing when run directly"]
fn child_worker() {
    common::child_main();
}

const KEYS: u64 = 3_000;

fn check(
    store: &Store,
    claimed: &std::collections::BTreeMap<String, u64>,
    done: &[String],
) -> TestResult {
    for (id, token) in claimed {
        let k = key(id);
        if done.contains(id) {
            match store.claim(&k, Fingerprint::of(id))? {
                Claim::Replay(r) => {
                    assert_eq!(r.response(), &response_for(id)[..], "{id}: body differs");
                    assert_eq!(r.token(), *token);
                }
                other => panic!("{id}: acknowledged completion lost, got {other:?}"),
            }
        } else {
            match store.get(&k)?.map(|e| e.state) {
                Some(EntryState::InProgress { token: t, orphaned: true, .. }) => {
                    assert_eq!(t, *token)
                }
                other => panic!("{id}: acknowledged claim lost, got {other:?}"),
            }
        }
    }
    Ok(())
}

#[test]
fn kill_right_after_a_replaying_open_loses_nothing() -> TestResult {
    let _serial = serial();
    let dir = tempfile::tempdir()?;
    // A child writes 3,000 claims and 1,500 completions (Durable, no
    // checkpoint), then dies.
    let mut writer =
        ChildProc::spawn(dir.path(), "claim_complete", &[("IDEMKV_CHILD_ARG", KEYS.to_string())])?;
    let mut acks = writer.acks_until_ready()?;
    acks.extend(writer.kill()?);
    let (claimed, done) = summarize(&acks);
    assert_eq!(claimed.len() as u64, KEYS);

    // A second child replays that journal and dies at once.
    let mut opener = ChildProc::spawn(dir.path(), "open_park", &[])?;
    let acks = opener.acks_until_ready()?;
    assert_eq!(acks, vec![Ack::Result(format!("REPLAYED {}", KEYS + KEYS / 2))]);
    opener.kill()?;

    // The journal is still there: this open replays the same entries again.
    let store = Store::open(dir.path())?;
    assert_eq!(store.recovery_report().entries_replayed, KEYS + KEYS / 2);
    check(&store, &claimed, &done)?;
    store.close()?;

    // After a clean close everything is in sled and checkpointed.
    let store = Store::open(dir.path())?;
    assert_eq!(store.recovery_report().entries_replayed, 0);
    check(&store, &claimed, &done)
}
