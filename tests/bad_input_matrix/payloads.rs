//! Bad payloads: responses and terminal-failure payloads over the limit, and
//! a limit over the format's.

use idemkv::{Claim, Config, Error, Failure, MAX_RESPONSE_LIMIT};

use crate::common::{self, TestResult, acquire};
use crate::{invalid_config, mkey, refused, still_there, store_with_sentinel};

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
