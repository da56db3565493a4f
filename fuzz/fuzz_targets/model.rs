//! An arbitrary sequence of operations — claim, wait, complete, fail,
//! extend, release, abandon (guards dropped too), batches of claims and of
//! completions, remove, get, advance the clock, sweep, and `Reboot`
//! (close or drop the store and open it again) — run against the real store
//! and against the reference model of the contract (tests/model_support,
//! shared with the property tests); every outcome must match.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/model_support/mod.rs"]
mod model_support;

use model_support::{Model, Op, Sut};

/// Operations in fuzzer terms; mapped onto `model_support::Op`.
#[derive(Debug, Arbitrary)]
enum FuzzOp {
    Claim { key: u8, fp: Option<u8>, lease_ms: Option<u16>, retention_ms: Option<u32> },
    Wait { key: u8, fp: Option<u8> },
    Complete { lease: u8, body: u8 },
    FailRetryable { lease: u8 },
    FailTerminal { lease: u8, body: u8 },
    Extend { lease: u8, by_ms: u32 },
    Release { lease: u8 },
    Remove { key: u8 },
    Get { key: u8 },
    Advance { ms: u32 },
    Sweep,
    Reboot { close: bool },
    Abandon { lease: u8, guard: bool },
    ClaimBatch { items: Vec<(u8, Option<u8>)> },
    CompleteBatch { items: Vec<(u8, u8)> },
}

impl FuzzOp {
    fn op(&self) -> Op {
        match *self {
            FuzzOp::Claim { key, fp, lease_ms, retention_ms } => Op::Claim {
                key,
                fp: fp.map(|f| f % 3),
                lease_ms: lease_ms.map(u64::from),
                retention_ms: retention_ms.map(u64::from),
            },
            FuzzOp::Wait { key, fp } => Op::Wait { key, fp: fp.map(|f| f % 3), timeout_ms: 0 },
            FuzzOp::Complete { lease, body } => Op::Complete { lease: lease.into(), body },
            FuzzOp::FailRetryable { lease } => Op::FailRetryable { lease: lease.into() },
            FuzzOp::FailTerminal { lease, body } => Op::FailTerminal { lease: lease.into(), body },
            FuzzOp::Extend { lease, by_ms } => {
                Op::Extend { lease: lease.into(), by_ms: by_ms.into() }
            }
            FuzzOp::Release { lease } => Op::Release { lease: lease.into() },
            FuzzOp::Remove { key } => Op::Remove { key },
            FuzzOp::Get { key } => Op::Get { key },
            FuzzOp::Advance { ms } => Op::Advance { ms: ms.into() },
            FuzzOp::Sweep => Op::Sweep,
            FuzzOp::Reboot { close } => Op::Reopen { close },
            FuzzOp::Abandon { lease, guard } => Op::Abandon { lease: lease.into(), guard },
            FuzzOp::ClaimBatch { ref items } => Op::ClaimBatch {
                items: items.iter().take(5).map(|&(k, fp)| (k, fp.map(|f| f % 3))).collect(),
            },
            // JSON bodies need the `serde` feature, which this crate does
            // not enable: raw bodies only.
            FuzzOp::CompleteBatch { ref items } => Op::CompleteBatch {
                items: items.iter().take(5).map(|&(l, b)| (l.into(), b)).collect(),
                json: false,
            },
        }
    }
}

fuzz_target!(|ops: Vec<FuzzOp>| {
    if ops.len() > 64 {
        return; // bounded sequences keep each run fast (reboots open sled)
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sut = Sut::open(
        dir.path(),
        idemkv::Durability::Buffered { max_delay: std::time::Duration::from_millis(1) },
    )
    .expect("open");
    let mut model = Model::new();
    for (i, fop) in ops.iter().enumerate() {
        let op = fop.op();
        let want = model.apply(&op);
        let got = sut.apply(&op);
        assert_eq!(got, want, "op {i}: {op:?}\nsequence: {ops:?}");
    }
});
