//! Typed bodies: a `Serialize` value stored as JSON replays as a
//! `Deserialize` type, before and after a restart; the record keeps the
//! format; `run_once` maps values and failures; raw bytes stay raw.

mod common;

use common::{TestResult, key};
use idemkv::{BodyFormat, Claim, EntryState, Error, Fail, Json, RunOnce, Store};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Receipt {
    charge: String,
    amount_cents: u64,
    tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Declined {
    InsufficientFunds { balance: i64 },
    Fraud,
}

fn receipt() -> Receipt {
    Receipt { charge: "ch_1 \"é\" \n".into(), amount_cents: u64::MAX, tags: vec!["a".into()] }
}

#[test]
fn a_json_response_replays_as_its_type_across_a_restart() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let g = store.claim(&key("typed"), None)?.into_guard().expect("acquired");
    g.complete(Json(&receipt()))?;
    match store.claim(&key("typed"), None)? {
        Claim::Replay(r) => {
            assert_eq!(r.format(), BodyFormat::Json);
            assert_eq!(r.json::<Receipt>()?, receipt());
            assert_eq!(r.decode::<Json<Receipt>>()?.0, receipt());
            // The bytes are serde_json's compact form.
            assert_eq!(r.response(), serde_json::to_vec(&receipt())?.as_slice());
            // Another type: a typed error, not a panic.
            assert!(matches!(r.json::<Vec<u8>>(), Err(Error::Codec { .. })));
        }
        other => panic!("{other:?}"),
    }
    store.close()?;
    check_after_restart(Store::open(dir.path())?)
}

fn check_after_restart(store: Store) -> TestResult {
    match store.get(&key("typed"))?.map(|e| e.state) {
        Some(EntryState::Finished(r)) => {
            assert_eq!(r.format(), BodyFormat::Json);
            assert_eq!(r.json::<Receipt>()?, receipt());
        }
        other => panic!("{other:?}"),
    }
    // Raw bodies stay bytes, and export/import keeps the format.
    let g = store.claim(&key("raw"), None)?.into_guard().expect("acquired");
    g.complete(&b"\x00\xffraw"[..])?;
    let mut exported = Vec::new();
    store.export(|r| {
        exported.push(r);
        Ok(())
    })?;
    let dir2 = tempfile::tempdir()?;
    let other = Store::open(dir2.path())?;
    for r in &exported {
        other.import(r)?;
    }
    match other.claim(&key("typed"), None)? {
        Claim::Replay(r) => {
            assert_eq!((r.format(), r.json::<Receipt>()?), (BodyFormat::Json, receipt()))
        }
        c => panic!("{c:?}"),
    }
    match other.claim(&key("raw"), None)? {
        Claim::Replay(r) => {
            assert_eq!((r.format(), r.response()), (BodyFormat::Bytes, &b"\x00\xffraw"[..]))
        }
        c => panic!("{c:?}"),
    }
    Ok(())
}

#[test]
fn run_once_stores_values_and_terminal_failures_and_retries_retryable_ones() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    type Out = RunOnce<Json<Receipt>, Json<Declined>>;
    let pay = |fail: Option<bool>| {
        move |a: idemkv::Attempt| -> Result<Json<Receipt>, Fail<Json<Declined>>> {
            assert!(!a.recovered());
            match fail {
                None => Ok(Json(receipt())),
                Some(true) => {
                    Err(Fail::Terminal(Json(Declined::InsufficientFunds { balance: -5 })))
                }
                Some(false) => Err(Json(Declined::Fraud))?, // `?`: retryable
            }
        }
    };
    let ran: Out = store.run_once(&key("ok"), None, pay(None))?;
    assert_eq!(ran, RunOnce::Ran(Json(receipt())));
    let again: Out = store.run_once(&key("ok"), None, pay(Some(true)))?;
    assert_eq!(again, RunOnce::Replayed(Json(receipt())), "the closure did not run again");

    let failed: Out = store.run_once(&key("declined"), None, pay(Some(true)))?;
    let declined = Json(Declined::InsufficientFunds { balance: -5 });
    assert_eq!(failed, RunOnce::Failed(declined.clone()));
    let replayed: Out = store.run_once(&key("declined"), None, pay(None))?;
    assert_eq!(replayed, RunOnce::Failed(declined));

    let retry: Out = store.run_once(&key("flaky"), None, pay(Some(false)))?;
    assert_eq!(retry, RunOnce::Retry(Json(Declined::Fraud)));
    let second = store.run_once(
        &key("flaky"),
        None,
        |a| -> Result<Json<Receipt>, Fail<Json<Declined>>> {
            assert_eq!((a.number(), a.recovered()), (2, false));
            Ok(Json(receipt()))
        },
    )?;
    assert_eq!(second, RunOnce::Ran(Json(receipt())));

    // A replay that is not the asked type is a typed error.
    let wrong: idemkv::Result<RunOnce<Json<u8>, String>> =
        store.run_once(&key("ok"), None, |_| Ok(Json(1)));
    assert!(matches!(wrong, Err(Error::Codec { .. })), "{wrong:?}");
    // In flight: no run.
    let _held = store.claim(&key("busy"), None)?.into_lease();
    let busy: RunOnce<String, String> =
        store.run_once(&key("busy"), None, |_| unreachable!("the key is held"))?;
    assert!(matches!(busy, RunOnce::InFlight { .. }), "{busy:?}");
    Ok(())
}

#[test]
fn a_value_that_cannot_be_encoded_abandons_and_stores_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    // JSON maps need string keys: serialization fails.
    let bad: std::collections::BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into();
    let g = store.claim(&key("bad"), None)?.into_guard().expect("acquired");
    assert!(matches!(g.complete(Json(&bad)), Err(Error::Codec { .. })));
    match store.claim(&key("bad"), None)? {
        Claim::Acquired(g) => assert!(g.recovered(), "abandoned, not completed"),
        other => panic!("{other:?}"),
    }
    // Over the size limit: refused, abandoned.
    let small = idemkv::Config::new().max_response_bytes(8);
    let dir2 = tempfile::tempdir()?;
    let store = small.open(dir2.path())?;
    let g = store.claim(&key("big"), None)?.into_guard().expect("acquired");
    assert!(matches!(g.complete(Json(&receipt())), Err(Error::ResponseTooLarge { .. })));
    assert!(store.claim(&key("big"), None)?.into_guard().expect("acquired").recovered());
    Ok(())
}
