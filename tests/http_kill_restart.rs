//! Proves that SIGKILL of an HTTP server mid-burst, then a restart on the
//! same directory, never runs an acknowledged side effect twice and never
//! changes an acknowledged answer.
//!
//! The server is a separate process: this test binary re-executed as
//! `child_worker` (the self-exec protocol of `tests/common`), serving axum
//! with the idempotency layer on a `Durable` store. Its handler appends one
//! line per side effect to a ledger file and fsyncs it before answering
//! 2xx; the line records the key, the server generation, the attempt and
//! whether the layer flagged the attempt `recovered`. The parent fires a
//! concurrent burst (many keys, each sent three times), SIGKILLs the server
//! once some answers are in, restarts it and re-sends every request until
//! each got a 2xx. Then:
//!
//! - every key acknowledged (2xx) by the first server is replayed by the
//!   second with the same body and never runs again (no ledger line of
//!   generation 2);
//! - no key runs twice unless the later run was flagged `recovered` (the
//!   earlier one was cut by the kill mid-handler), with rising attempts;
//! - every key ran at least once, and all answers of a key are the same.

#[path = "common/mod.rs"]
mod common;
mod http_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use common::{Ack, ChildProc, Rng, TestResult};
use http_support::{Answer, Idem, client};
use idemkv::http::IdempotencyLayer;
use idemkv::{Config, Durability};
use tokio::sync::{Semaphore, mpsc};

const MODE: &str = "http_server";
const GEN_ENV: &str = "IDEMKV_HTTP_GEN";
const KEYS: usize = 150;
const DUPS: usize = 3;
const CONCURRENCY: usize = 32;
/// The first server is killed once this many 2xx answers arrived.
const KILL_AFTER: usize = 40;

#[test]
#[ignore = "child process of the HTTP kill test; does nothing when run directly"]
fn child_worker() {
    if std::env::var(common::CHILD_MODE_ENV).as_deref() == Ok(MODE) {
        server_child();
    }
}

fn ledger_path(dir: &Path) -> PathBuf {
    dir.join("ledger")
}

/// The child: serves until killed. Prints `PORT <n>` once listening.
fn server_child() {
    let dir = PathBuf::from(std::env::var_os(common::CHILD_DIR_ENV).expect("child dir"));
    let generation: u32 = std::env::var(GEN_ENV).expect("generation").parse().unwrap();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let store = Config::new()
            .durability(Durability::Durable)
            .sweep_interval(None)
            .open(dir.join("store"))
            .unwrap_or_else(|e| die(format!("open: {e}")));
        let ledger = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(ledger_path(&dir))
            .unwrap_or_else(|e| die(format!("ledger: {e}")));
        let ledger = Arc::new(Mutex::new(ledger));
        let serial = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .route(
                "/pay",
                post(move |idem: Idem, id: String| {
                    let (ledger, serial) = (ledger.clone(), serial.clone());
                    async move {
                        let idem = idem.expect("the layer's extension");
                        let (attempt, recovered) = (idem.attempt(), idem.recovered());
                        let line = format!(
                            "{id} gen={generation} attempt={attempt} recovered={}\n",
                            recovered as u8
                        );
                        // The side effect: one synced ledger line.
                        tokio::task::spawn_blocking(move || {
                            let mut f = ledger.lock().unwrap();
                            f.write_all(line.as_bytes())?;
                            f.sync_data()
                        })
                        .await
                        .unwrap()
                        .unwrap_or_else(|e| die(format!("ledger write: {e}")));
                        let n = serial.fetch_add(1, Ordering::SeqCst);
                        let pid = std::process::id();
                        (
                            StatusCode::CREATED,
                            format!(
                                "{id} paid: gen {generation} pid {pid} run {n} attempt {attempt}"
                            ),
                        )
                    }
                }),
            )
            .layer(IdempotencyLayer::new(store, "pay").wait_in_flight(Duration::from_secs(60)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        common::emit(Ack::Result(format!("PORT {port}")));
        axum::serve(listener, app).await.unwrap_or_else(|e| die(format!("serve: {e}")));
    });
}

fn die(what: String) -> ! {
    common::emit(Ack::Result(format!("ERROR {what}")));
    std::process::exit(2);
}

/// Starts generation `generation` of the server on `dir`; its base URL.
fn start(dir: &Path, generation: u32) -> TestResult<(ChildProc, String)> {
    let mut child = ChildProc::spawn(dir, MODE, &[(GEN_ENV, generation.to_string())])?;
    match child.next_ack(Duration::from_secs(60))? {
        Some(Ack::Result(line)) if line.starts_with("PORT ") => {
            let url = format!("http://127.0.0.1:{}/pay", &line[5..]);
            Ok((child, url))
        }
        other => Err(format!("generation {generation} said {other:?} instead of its port").into()),
    }
}

fn key_id(i: usize) -> String {
    format!("k{i:03}")
}

/// Every request of a burst: each key `DUPS` times, in a shuffled order.
fn requests(seed: u64) -> Vec<String> {
    let mut all: Vec<String> = (0..KEYS).flat_map(|i| vec![key_id(i); DUPS]).collect();
    Rng::new(seed).shuffle(&mut all);
    all
}

/// One request: `Ok(answer)` for any HTTP answer, `Err` when the
/// connection failed (the server died).
async fn pay(client: &reqwest::Client, url: &str, id: &str) -> Result<Answer, reqwest::Error> {
    let response = client
        .post(url)
        .header("idempotency-key", format!("\"{id}\""))
        .body(id.to_owned())
        .send()
        .await?;
    Answer::read(response).await
}

/// A ledger line: key, generation, attempt, recovered.
#[derive(Debug)]
struct Line {
    id: String,
    generation: u32,
    attempt: u32,
    recovered: bool,
}

fn read_ledger(dir: &Path) -> TestResult<Vec<Line>> {
    let text = std::fs::read_to_string(ledger_path(dir))?;
    let mut out = Vec::new();
    for l in text.lines() {
        let bad = || format!("ledger line {l:?}");
        let w: Vec<&str> = l.split(' ').collect();
        let [id, g, a, r] = w[..] else { return Err(bad().into()) };
        let field = |s: &str, name: &str| -> TestResult<u32> {
            Ok(s.strip_prefix(name).ok_or_else(bad)?.parse()?)
        };
        out.push(Line {
            id: id.to_owned(),
            generation: field(g, "gen=")?,
            attempt: field(a, "attempt=")?,
            recovered: field(r, "recovered=")? == 1,
        });
    }
    Ok(out)
}

#[test]
fn sigkill_mid_burst_never_reruns_an_acknowledged_key() -> TestResult {
    let _serial = common::serial();
    let dir = tempfile::tempdir()?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let client = client();

    // ── Generation 1: a burst, killed once KILL_AFTER answers are in.
    let (mut child, url) = start(dir.path(), 1)?;
    let (acked1, failed) = rt.block_on(async {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        for id in requests(1) {
            let (client, url, tx, slots) = (client.clone(), url.clone(), tx.clone(), slots.clone());
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.unwrap();
                let _ = tx.send((id.clone(), pay(&client, &url, &id).await));
            });
        }
        drop(tx);
        let mut acked: BTreeMap<String, Vec<Answer>> = BTreeMap::new();
        let (mut answers, mut failed, mut killed) = (0, 0, false);
        while let Some((id, result)) = rx.recv().await {
            match result {
                Ok(a) if a.status.is_success() => {
                    acked.entry(id).or_default().push(a);
                    answers += 1;
                }
                Ok(a) => panic!("generation 1 answered {id} with {}: {}", a.status, a.text()),
                Err(_) => {
                    assert!(killed, "{id}: a request failed before the kill");
                    failed += 1;
                }
            }
            if answers == KILL_AFTER && !killed {
                child.kill()?; // SIGKILL, and reaped
                killed = true;
            }
        }
        assert!(killed, "the burst ended before the kill");
        TestResult::Ok((acked, failed))
    })?;
    assert!(failed > 0, "the kill must cut the burst: no request failed");
    assert!(acked1.len() < KEYS, "every key was acknowledged before the kill");
    for (id, answers) in &acked1 {
        assert!(answers.iter().all(|a| a.body == answers[0].body), "{id}: two answers");
    }

    // ── Generation 2 on the same directory: every request until a 2xx.
    let (mut child, url) = start(dir.path(), 2)?;
    let answers2: BTreeMap<String, Vec<Answer>> = rt.block_on(async {
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let mut tasks = Vec::new();
        for id in requests(2) {
            let (client, url, slots) = (client.clone(), url.clone(), slots.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.unwrap();
                for _ in 0..20 {
                    match pay(&client, &url, &id).await {
                        Ok(a) if a.status.is_success() => return (id, a),
                        Ok(a) if a.status == StatusCode::CONFLICT => continue,
                        Ok(a) => {
                            panic!("generation 2 answered {id} with {}: {}", a.status, a.text())
                        }
                        Err(e) => panic!("generation 2: {id}: {e}"),
                    }
                }
                panic!("{id}: no 2xx after 20 tries");
            }));
        }
        let mut out: BTreeMap<String, Vec<Answer>> = BTreeMap::new();
        for t in tasks {
            let (id, a) = t.await.expect("request task");
            out.entry(id).or_default().push(a);
        }
        out
    });
    child.kill()?;
    assert_eq!(answers2.len(), KEYS);
    for (id, answers) in &answers2 {
        assert_eq!(answers.len(), DUPS);
        let first = &answers[0].body;
        assert!(answers.iter().all(|a| a.body == *first), "{id}: answers differ in generation 2");
        if let Some(before) = acked1.get(id) {
            assert_eq!(first, &before[0].body, "{id}: the acknowledged answer changed");
            assert!(answers.iter().all(Answer::replayed), "{id}: acknowledged, yet not replayed");
        } else {
            // Exactly one of a key's requests ran it (or none, if the first
            // server completed it without its answer getting out).
            assert!(answers.iter().filter(|a| !a.replayed()).count() <= 1, "{id}");
        }
    }

    // ── The ledger: the side effects that happened.
    let ledger = read_ledger(dir.path())?;
    let mut by_key: BTreeMap<&str, Vec<&Line>> = BTreeMap::new();
    for l in &ledger {
        by_key.entry(l.id.as_str()).or_default().push(l);
    }
    assert_eq!(by_key.len(), KEYS, "every key's side effect happened");
    let mut reruns = BTreeSet::new();
    for (id, lines) in &by_key {
        if acked1.contains_key(*id) {
            assert!(
                lines.iter().all(|l| l.generation == 1),
                "{id} was acknowledged before the kill and ran again: {lines:?}"
            );
        }
        assert!(!lines[0].recovered || lines[0].attempt > 1, "{id}: {lines:?}");
        for pair in lines.windows(2) {
            assert!(pair[1].recovered, "{id} ran twice without the recovered flag: {lines:?}");
            assert!(pair[1].attempt > pair[0].attempt, "{id}: {lines:?}");
            assert_eq!((pair[0].generation, pair[1].generation), (1, 2), "{id}: {lines:?}");
            reruns.insert(*id);
        }
    }
    println!(
        "http_kill_restart: {} keys acknowledged before the kill, {failed} requests cut, {} ledger \
         lines, {} keys re-run with recovered after the restart",
        acked1.len(),
        ledger.len(),
        reruns.len()
    );
    Ok(())
}
