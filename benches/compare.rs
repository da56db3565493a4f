//! Comparison harness: the same idempotency workloads, in one run, against
//! idemkv (`Buffered` and `Durable`) and its peers — raw sled 0.34.7 doing the
//! same state transitions with `compare_and_swap`, a 64-stripe
//! `Mutex<HashMap>` (memory only: the physical limit of the design), SQLite in
//! WAL mode through rusqlite, and Redis on loopback (a `redis-server` child
//! process, skipped when not installed).
//!
//! Workloads (one op = one lookup, or one claim + complete cycle):
//! - **P1** duplicate lookup of completed keys, 2 threads;
//! - **P2** claim + complete of new keys, buffered durability, 2 threads
//!   (Redis also with 1 and 50 clients);
//! - **P3** claim + complete of new keys, durable, 64 concurrent claimers.
//!
//! Reports ops/s and per-op latency percentiles p50/p99/p99.9 (a log-linear
//! histogram with 32 sub-buckets per power of two, about 3 % resolution) and
//! the ratio idemkv/peer, as a table and optionally as JSON.
//!
//! ```text
//! cargo bench --bench compare                         # full run, ~2 s per row
//! cargo bench --bench compare -- --quick              # every system briefly (CI)
//! cargo bench --bench compare -- --duration-ms 5000 --only sqlite --json out.json
//! ```
//!
//! Options: `--duration-ms N` (measured time per row, default 2000, plus a
//! warm-up of a fifth of it), `--quick` (also implied by criterion's `--test`),
//! `--only <system>` (substring of the system name), `--json <file>`, and an
//! optional positional filter on `workload/system`.

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, RandomState};
use std::hint::black_box;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::SplitMix64;
use common::report::{Hist, cpus, fmt_ns, fmt_ops, json_str};
use idemkv::{Claim, Config, Durability, Fingerprint, Key, Store};

type Res<T> = Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

const LEASE_MS: u64 = 30_000;
const RETENTION_MS: u64 = 72 * 3600 * 1000;

// ───────────────────────────── options ─────────────────────────────

struct Opts {
    duration: Duration,
    warmup: Duration,
    quick: bool,
    lookup_keys: usize,
    json: Option<PathBuf>,
    only: Option<String>,
    filter: Option<String>,
}

fn parse_args() -> Res<Opts> {
    let mut duration_ms: Option<u64> = None;
    let (mut quick, mut json, mut only, mut filter) = (false, None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" | "--test" => quick = true,
            "--duration-ms" => {
                let v = args.next().ok_or("--duration-ms needs a value")?;
                duration_ms = Some(v.parse().map_err(|e| format!("--duration-ms {v}: {e}"))?);
            }
            "--json" => json = Some(PathBuf::from(args.next().ok_or("--json needs a file")?)),
            "--only" => only = Some(args.next().ok_or("--only needs a system name")?),
            "--bench" => {} // passed by `cargo bench`
            "-h" | "--help" => {
                println!(
                    "usage: cargo bench --bench compare -- [--quick] [--duration-ms N] \
                     [--only SYSTEM] [--json FILE] [FILTER]"
                );
                std::process::exit(0);
            }
            flag if flag.starts_with('-') => eprintln!("compare: ignoring unknown option {flag}"),
            positional => filter = Some(positional.to_string()),
        }
    }
    let duration =
        Duration::from_millis(duration_ms.unwrap_or(if quick { 150 } else { 2000 }).max(1));
    Ok(Opts {
        warmup: (duration / 5).max(Duration::from_millis(30)),
        duration,
        quick,
        lookup_keys: if quick { 2_000 } else { 50_000 },
        json,
        only,
        filter,
    })
}

// ──────────────────────────── systems ─────────────────────────────

/// Key bytes: `evt_` and 16 hex digits of a mixed `(space, i)`, 20 bytes.
fn key_bytes(space: u64, i: u64) -> [u8; 20] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut k = *b"evt_0000000000000000";
    let v = common::mix((space << 40) ^ i);
    for (j, b) in k[4..].iter_mut().enumerate() {
        *b = HEX[((v >> (60 - 4 * j)) & 0xf) as usize];
    }
    k
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One thread's connection to a system under test.
trait Client {
    /// Claims a new key and completes it with the response; an error if the
    /// claim did not acquire.
    fn cycle(&mut self, key: &[u8]) -> Res<()>;
    /// Looks up a completed key; an error unless it is completed.
    fn lookup(&mut self, key: &[u8]) -> Res<()>;
    /// Claims and completes every key (P1's population); systems may batch.
    fn populate(&mut self, keys: &mut dyn Iterator<Item = [u8; 20]>) -> Res<()> {
        for k in keys {
            self.cycle(&k)?;
        }
        Ok(())
    }
}

/// A system under test, shared by all threads of a run.
trait System: Sync {
    fn client(&self) -> Res<Box<dyn Client + '_>>;
    /// After populating: wait until background work is done.
    fn settle(&self) -> Res<()> {
        Ok(())
    }
    /// Threads to populate with.
    fn populate_threads(&self) -> usize {
        16
    }
}

// idemkv

struct Idemkv {
    _dir: tempfile::TempDir,
    store: Store,
    fp: Fingerprint,
}

impl Idemkv {
    fn new(durability: Durability) -> Res<Self> {
        let dir = tempfile::tempdir().map_err(err)?;
        let store = Config::new().durability(durability).open(dir.path()).map_err(err)?;
        Ok(Idemkv { _dir: dir, store, fp: common::fingerprint() })
    }
}

struct IdemkvClient<'a>(&'a Idemkv);

impl System for Idemkv {
    fn client(&self) -> Res<Box<dyn Client + '_>> {
        Ok(Box::new(IdemkvClient(self)))
    }
    fn settle(&self) -> Res<()> {
        self.store.checkpoint().map_err(err)
    }
}

impl Client for IdemkvClient<'_> {
    fn cycle(&mut self, key: &[u8]) -> Res<()> {
        let key = Key::new(common::NS, key).map_err(err)?;
        match self.0.store.claim(&key, self.0.fp).map_err(err)? {
            Claim::Acquired(lease) => self.0.store.complete(&lease, common::RESPONSE).map_err(err),
            other => Err(format!("claim of a new key answered {other:?}")),
        }
    }
    fn lookup(&mut self, key: &[u8]) -> Res<()> {
        let key = Key::new(common::NS, key).map_err(err)?;
        match self.0.store.claim(&key, self.0.fp).map_err(err)? {
            Claim::Replay(done) => {
                black_box(done.response());
                Ok(())
            }
            other => Err(format!("lookup answered {other:?}")),
        }
    }
}

// raw sled

struct Sled {
    _dir: tempfile::TempDir,
    db: sled::Db,
    flush: bool,
    tokens: AtomicU64,
}

impl Sled {
    fn new(flush: bool) -> Res<Self> {
        let dir = tempfile::tempdir().map_err(err)?;
        // The same sled settings idemkv uses.
        let db = sled::Config::new()
            .path(dir.path())
            .cache_capacity(64 << 20)
            .flush_every_ms(Some(500))
            .open()
            .map_err(err)?;
        Ok(Sled { _dir: dir, db, flush, tokens: AtomicU64::new(1) })
    }
}

struct SledClient<'a>(&'a Sled);

impl System for Sled {
    fn client(&self) -> Res<Box<dyn Client + '_>> {
        Ok(Box::new(SledClient(self)))
    }
}

impl SledClient<'_> {
    fn flush(&self) -> Res<()> {
        if self.0.flush {
            self.0.db.flush().map_err(err)?;
        }
        Ok(())
    }
}

impl Client for SledClient<'_> {
    fn cycle(&mut self, key: &[u8]) -> Res<()> {
        let token = self.0.tokens.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        // In progress: state 1, token, lease deadline.
        let mut claimed = vec![1u8];
        claimed.extend_from_slice(&token.to_be_bytes());
        claimed.extend_from_slice(&(now + LEASE_MS).to_be_bytes());
        let cas = self.0.db.compare_and_swap(key, None::<&[u8]>, Some(&claimed[..]));
        if cas.map_err(err)?.is_err() {
            return Err("claim of a new key found a record".into());
        }
        self.flush()?;
        // Completed: state 2, token, expiry, response.
        let mut done = vec![2u8];
        done.extend_from_slice(&token.to_be_bytes());
        done.extend_from_slice(&(now_ms() + RETENTION_MS).to_be_bytes());
        done.extend_from_slice(common::RESPONSE);
        let cas = self.0.db.compare_and_swap(key, Some(&claimed[..]), Some(done));
        if cas.map_err(err)?.is_err() {
            return Err("complete lost its claim".into());
        }
        self.flush()
    }
    fn lookup(&mut self, key: &[u8]) -> Res<()> {
        match self.0.db.get(key).map_err(err)? {
            Some(v) if v.first() == Some(&2) => {
                black_box(&v[17..]);
                Ok(())
            }
            other => Err(format!("lookup found {other:?}")),
        }
    }
}

// striped Mutex<HashMap>

enum MemRecord {
    InProgress { token: u64, _deadline: u64 },
    Completed { _token: u64, _expires: u64, response: Arc<[u8]> },
}

struct Striped {
    stripes: Vec<Mutex<HashMap<Box<[u8]>, MemRecord>>>,
    hasher: RandomState,
    tokens: AtomicU64,
}

impl Striped {
    fn new() -> Self {
        Striped {
            stripes: (0..64).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            tokens: AtomicU64::new(1),
        }
    }

    fn stripe(&self, key: &[u8]) -> std::sync::MutexGuard<'_, HashMap<Box<[u8]>, MemRecord>> {
        let i = self.hasher.hash_one(key) as usize & (self.stripes.len() - 1);
        self.stripes[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct StripedClient<'a>(&'a Striped);

impl System for Striped {
    fn client(&self) -> Res<Box<dyn Client + '_>> {
        Ok(Box::new(StripedClient(self)))
    }
}

impl Client for StripedClient<'_> {
    fn cycle(&mut self, key: &[u8]) -> Res<()> {
        let token = self.0.tokens.fetch_add(1, Ordering::Relaxed);
        {
            let mut map = self.0.stripe(key);
            if map.contains_key(key) {
                return Err("claim of a new key found a record".into());
            }
            let rec = MemRecord::InProgress { token, _deadline: now_ms() + LEASE_MS };
            map.insert(key.into(), rec);
        }
        let response: Arc<[u8]> = Arc::from(&common::RESPONSE[..]);
        let mut map = self.0.stripe(key);
        match map.get_mut(key) {
            Some(r @ MemRecord::InProgress { .. }) => {
                if !matches!(r, MemRecord::InProgress { token: t, .. } if *t == token) {
                    return Err("complete lost its claim".into());
                }
                let expires = now_ms() + RETENTION_MS;
                *r = MemRecord::Completed { _token: token, _expires: expires, response };
                Ok(())
            }
            _ => Err("complete lost its claim".into()),
        }
    }
    fn lookup(&mut self, key: &[u8]) -> Res<()> {
        let found = match self.0.stripe(key).get(key) {
            Some(MemRecord::Completed { response, .. }) => Some(response.clone()),
            _ => None,
        };
        black_box(found.ok_or("lookup: not completed")?);
        Ok(())
    }
}

// SQLite (rusqlite), WAL

struct Sqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
    synchronous: &'static str,
    tokens: AtomicU64,
}

impl Sqlite {
    fn new(full: bool) -> Res<Self> {
        let dir = tempfile::tempdir().map_err(err)?;
        let path = dir.path().join("idem.db");
        let conn = rusqlite::Connection::open(&path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE idem(key BLOB PRIMARY KEY, state INT NOT NULL, token INT NOT NULL,
                               response BLOB, expires_at INT NOT NULL);",
        )
        .map_err(err)?;
        let synchronous = if full { "FULL" } else { "NORMAL" };
        Ok(Sqlite { _dir: dir, path, synchronous, tokens: AtomicU64::new(1) })
    }
}

struct SqliteClient<'a> {
    sys: &'a Sqlite,
    conn: rusqlite::Connection,
}

impl System for Sqlite {
    fn client(&self) -> Res<Box<dyn Client + '_>> {
        let conn = rusqlite::Connection::open(&self.path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        conn.execute_batch(&format!("PRAGMA synchronous={};", self.synchronous)).map_err(err)?;
        Ok(Box::new(SqliteClient { sys: self, conn }))
    }
    fn populate_threads(&self) -> usize {
        1 // one writer at a time anyway; populate in one transaction
    }
}

impl Client for SqliteClient<'_> {
    fn cycle(&mut self, key: &[u8]) -> Res<()> {
        let token = self.sys.tokens.fetch_add(1, Ordering::Relaxed) as i64;
        let claimed = self
            .conn
            .prepare_cached(
                "INSERT INTO idem(key, state, token, expires_at) VALUES (?1, 1, ?2, ?3)
                 ON CONFLICT(key) DO NOTHING",
            )
            .and_then(|mut s| s.execute(rusqlite::params![key, token, now_ms() + LEASE_MS]))
            .map_err(err)?;
        if claimed != 1 {
            return Err("claim of a new key found a record".into());
        }
        let done = self
            .conn
            .prepare_cached(
                "UPDATE idem SET state = 2, response = ?2, expires_at = ?3
                 WHERE key = ?1 AND state = 1 AND token = ?4",
            )
            .and_then(|mut s| {
                let exp = now_ms() + RETENTION_MS;
                s.execute(rusqlite::params![key, &common::RESPONSE[..], exp, token])
            })
            .map_err(err)?;
        if done != 1 {
            return Err("complete lost its claim".into());
        }
        Ok(())
    }
    fn lookup(&mut self, key: &[u8]) -> Res<()> {
        let (state, response): (i64, Option<Vec<u8>>) = self
            .conn
            .prepare_cached("SELECT state, response FROM idem WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(err)?;
        if state != 2 {
            return Err(format!("lookup found state {state}"));
        }
        black_box(response);
        Ok(())
    }
    fn populate(&mut self, keys: &mut dyn Iterator<Item = [u8; 20]>) -> Res<()> {
        self.conn.execute_batch("BEGIN").map_err(err)?;
        for k in keys {
            self.cycle(&k)?;
        }
        self.conn.execute_batch("COMMIT").map_err(err)
    }
}

// Redis on loopback

/// A `redis-server` child process; killed when dropped.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl RedisServer {
    fn start(aof: bool) -> Res<RedisServer> {
        let dir = tempfile::tempdir().map_err(err)?;
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(err)?.port();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        cmd.args(["--appendonly", if aof { "yes" } else { "no" }]);
        if aof {
            cmd.args(["--appendfsync", "always"]);
        }
        cmd.arg("--dir").arg(dir.path());
        cmd.args(["--daemonize", "no", "--maxclients", "1000"]);
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(err)?;
        let server = RedisServer { child, port, _dir: dir };
        let client = server.client()?;
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let ping = client
                .get_connection()
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            match ping {
                Ok(_) => return Ok(server),
                Err(_) if Instant::now() < give_up => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("redis-server on port {port} did not answer: {e}")),
            }
        }
    }

    /// A client with `TCP_NODELAY`, as hiredis and `redis-benchmark` use
    /// (the redis crate leaves Nagle's algorithm on by default).
    fn client(&self) -> Res<redis::Client> {
        use redis::IntoConnectionInfo;
        let info =
            format!("redis://127.0.0.1:{}/", self.port).into_connection_info().map_err(err)?;
        let tcp = redis::io::tcp::TcpSettings::default().set_nodelay(true);
        redis::Client::open(info.set_tcp_settings(tcp)).map_err(err)
    }
}

struct Redis {
    client: redis::Client,
    tokens: AtomicU64,
}

impl Redis {
    fn new(server: &RedisServer) -> Res<Self> {
        let client = server.client()?;
        let mut con = client.get_connection().map_err(err)?;
        redis::cmd("FLUSHALL").query::<()>(&mut con).map_err(err)?;
        Ok(Redis { client, tokens: AtomicU64::new(1) })
    }
}

struct RedisClient<'a> {
    sys: &'a Redis,
    con: redis::Connection,
}

impl System for Redis {
    fn client(&self) -> Res<Box<dyn Client + '_>> {
        let con = self.client.get_connection().map_err(err)?;
        Ok(Box::new(RedisClient { sys: self, con }))
    }
}

impl Client for RedisClient<'_> {
    fn cycle(&mut self, key: &[u8]) -> Res<()> {
        let token = self.sys.tokens.fetch_add(1, Ordering::Relaxed);
        let mut claimed = b"p".to_vec();
        claimed.extend_from_slice(&token.to_be_bytes());
        let ok: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(claimed)
            .arg("NX")
            .arg("PX")
            .arg(LEASE_MS)
            .query(&mut self.con)
            .map_err(err)?;
        if ok.is_none() {
            return Err("SET NX of a new key found a value".into());
        }
        let mut done = b"c".to_vec();
        done.extend_from_slice(common::RESPONSE);
        redis::cmd("SET")
            .arg(key)
            .arg(done)
            .arg("PX")
            .arg(RETENTION_MS)
            .query::<()>(&mut self.con)
            .map_err(err)
    }
    fn lookup(&mut self, key: &[u8]) -> Res<()> {
        let v: Option<Vec<u8>> = redis::cmd("GET").arg(key).query(&mut self.con).map_err(err)?;
        match v {
            Some(v) if v.first() == Some(&b'c') => {
                black_box(v);
                Ok(())
            }
            other => Err(format!("lookup found {other:?}")),
        }
    }
}

// ──────────────────────────── running ─────────────────────────────

#[derive(Clone, Copy, PartialEq)]
enum Work {
    /// P1: random lookups among `n` completed keys of key space 1.
    Lookup(usize),
    /// P2/P3: claim + complete of fresh keys.
    Cycle,
}

struct Measured {
    ops: u64,
    window: Duration,
    hist: Hist,
    errors: u64,
    first_error: Option<String>,
}

/// Claims and completes keys `0..n` of key space 1.
fn populate(sys: &dyn System, n: usize) -> Res<()> {
    let threads = sys.populate_threads().max(1);
    let chunk = n.div_ceil(threads) as u64;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                s.spawn(move || -> Res<()> {
                    let mut client = sys.client()?;
                    let end = ((t + 1) * chunk).min(n as u64);
                    client.populate(&mut ((t * chunk)..end).map(|i| key_bytes(1, i)))
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| "populate panicked")?)
    })?;
    sys.settle()
}

fn measure(sys: &dyn System, threads: usize, work: Work, opts: &Opts) -> Res<Measured> {
    let barrier = Barrier::new(threads);
    let (warmup, duration) = (opts.warmup, opts.duration);
    let results: Vec<Res<Measured>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || -> Res<Measured> {
                    let client = sys.client();
                    barrier.wait(); // every client connected before anyone starts
                    let mut client = client?;
                    let origin = Instant::now();
                    let (start, end) = (origin + warmup, origin + warmup + duration);
                    let mut rng = SplitMix64::new(0xC0FFEE ^ t as u64);
                    let space = 1000 + t as u64; // fresh keys: one space per thread
                    let mut m = Measured {
                        ops: 0,
                        window: duration,
                        hist: Hist::new(),
                        errors: 0,
                        first_error: None,
                    };
                    for i in 0.. {
                        let r;
                        let (t0, t1);
                        match work {
                            Work::Lookup(n) => {
                                let key = key_bytes(1, rng.below(n) as u64);
                                t0 = Instant::now();
                                r = client.lookup(&key);
                                t1 = Instant::now();
                            }
                            Work::Cycle => {
                                let key = key_bytes(space, i);
                                t0 = Instant::now();
                                r = client.cycle(&key);
                                t1 = Instant::now();
                            }
                        }
                        if t0 >= start {
                            match r {
                                Ok(()) => {
                                    m.hist.record(t1 - t0);
                                    m.ops += 1;
                                }
                                Err(e) => {
                                    m.errors += 1;
                                    m.first_error.get_or_insert(e);
                                }
                            }
                        }
                        if t1 >= end {
                            break;
                        }
                    }
                    Ok(m)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("benchmark thread panicked".into())))
            .collect()
    });
    let mut total =
        Measured { ops: 0, window: duration, hist: Hist::new(), errors: 0, first_error: None };
    for r in results {
        let m = r?;
        total.ops += m.ops;
        total.errors += m.errors;
        total.hist.merge(&m.hist);
        if total.first_error.is_none() {
            total.first_error = m.first_error;
        }
    }
    Ok(total)
}

struct Row {
    workload: &'static str,
    system: String,
    threads: usize,
    ops_per_sec: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    ratio: Option<f64>,
    errors: u64,
    note: String,
}

#[derive(Clone, Copy)]
enum Spec {
    Idemkv(bool),
    Sled(bool),
    Striped,
    Sqlite(bool),
    Redis(bool),
}

impl Spec {
    /// Name: the `bool` means "the durable variant".
    fn name(self) -> &'static str {
        match self {
            Spec::Idemkv(false) => "idemkv-buffered",
            Spec::Idemkv(true) => "idemkv-durable",
            Spec::Sled(false) => "sled",
            Spec::Sled(true) => "sled-flush",
            Spec::Striped => "mutex-hashmap",
            Spec::Sqlite(false) => "sqlite-normal",
            Spec::Sqlite(true) => "sqlite-full",
            Spec::Redis(false) => "redis",
            Spec::Redis(true) => "redis-aof-always",
        }
    }
}

struct Workload {
    name: &'static str,
    work: Work,
    /// The idemkv row the others are compared with.
    reference: &'static str,
    runs: Vec<(Spec, usize)>,
}

fn plan(opts: &Opts) -> Vec<Workload> {
    use Spec::*;
    vec![
        Workload {
            name: "P1 lookup",
            work: Work::Lookup(opts.lookup_keys),
            reference: "idemkv-durable",
            runs: vec![
                (Idemkv(true), 2),
                (Idemkv(false), 2),
                (Sled(false), 2),
                (Striped, 2),
                (Sqlite(false), 2),
                (Redis(false), 2),
            ],
        },
        Workload {
            name: "P2 claim+complete buffered",
            work: Work::Cycle,
            reference: "idemkv-buffered",
            runs: vec![
                (Idemkv(false), 2),
                (Sled(false), 2),
                (Striped, 2),
                (Sqlite(false), 2),
                (Redis(false), 1),
                (Redis(false), 2),
                (Redis(false), 50),
            ],
        },
        Workload {
            name: "P3 claim+complete durable",
            work: Work::Cycle,
            reference: "idemkv-durable",
            runs: vec![
                (Idemkv(true), 64),
                (Sled(true), 64),
                (Striped, 64),
                (Sqlite(true), 64),
                (Redis(true), 64),
            ],
        },
    ]
}

/// The Redis servers, started on first use and killed at the end.
struct Servers {
    installed: bool,
    plain: Option<RedisServer>,
    aof: Option<RedisServer>,
}

impl Servers {
    fn get(&mut self, aof: bool) -> Res<&RedisServer> {
        let slot = if aof { &mut self.aof } else { &mut self.plain };
        if slot.is_none() {
            *slot = Some(RedisServer::start(aof)?);
        }
        Ok(slot.as_ref().expect("just started"))
    }
}

fn build(spec: Spec, servers: &mut Servers) -> Res<Box<dyn System>> {
    Ok(match spec {
        Spec::Idemkv(durable) => Box::new(Idemkv::new(if durable {
            Durability::Durable
        } else {
            Durability::Buffered { max_delay: common::BUFFERED_DELAY }
        })?),
        Spec::Sled(flush) => Box::new(Sled::new(flush)?),
        Spec::Striped => Box::new(Striped::new()),
        Spec::Sqlite(full) => Box::new(Sqlite::new(full)?),
        Spec::Redis(aof) => Box::new(Redis::new(servers.get(aof)?)?),
    })
}

fn run_one(
    spec: Spec,
    threads: usize,
    w: &Workload,
    opts: &Opts,
    servers: &mut Servers,
) -> Res<Measured> {
    let sys = build(spec, servers)?;
    if let Work::Lookup(n) = w.work {
        populate(&*sys, n)?;
    }
    let m = measure(&*sys, threads, w.work, opts);
    drop(sys); // closes stores, removes temp dirs (outside the measurement)
    m
}

// ──────────────────────────── output ──────────────────────────────

fn print_row(r: &Row) {
    let ratio = r.ratio.map_or("-".to_string(), |x| format!("{x:.2}x"));
    println!(
        "{:<27} {:<17} {:>4} {:>9} {:>9} {:>9} {:>9} {:>8}  {}",
        r.workload,
        r.system,
        r.threads,
        fmt_ops(r.ops_per_sec),
        fmt_ns(r.p50),
        fmt_ns(r.p99),
        fmt_ns(r.p999),
        ratio,
        r.note
    );
}

fn json_num(x: f64) -> String {
    if x.is_finite() { format!("{x:.3}") } else { "null".into() }
}

fn to_json(opts: &Opts, rows: &[Row], notes: &[String], skipped: &[String]) -> String {
    let mut s = String::from("{\n");
    let _ = writeln!(s, "  \"duration_ms\": {},", opts.duration.as_millis());
    let _ = writeln!(s, "  \"warmup_ms\": {},", opts.warmup.as_millis());
    let _ = writeln!(s, "  \"quick\": {},", opts.quick);
    let _ = writeln!(s, "  \"cpus\": {},", cpus());
    let list = |v: &[String]| v.iter().map(|n| json_str(n)).collect::<Vec<_>>().join(", ");
    let _ = writeln!(s, "  \"notes\": [{}],", list(notes));
    let _ = writeln!(s, "  \"skipped\": [{}],", list(skipped));
    s.push_str("  \"results\": [\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            s,
            "    {{\"workload\": {}, \"system\": {}, \"threads\": {}, \"ops_per_sec\": {}, \
             \"p50_ns\": {}, \"p99_ns\": {}, \"p999_ns\": {}, \"ratio_idemkv_over_peer\": {}, \
             \"errors\": {}, \"note\": {}}}",
            json_str(r.workload),
            json_str(&r.system),
            r.threads,
            json_num(r.ops_per_sec),
            r.p50,
            r.p99,
            r.p999,
            r.ratio.map_or("null".into(), json_num),
            r.errors,
            json_str(&r.note)
        );
        s.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    s.push_str("  ]\n}\n");
    s
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("compare: {e}");
            std::process::exit(2);
        }
    };
    let selected = |w: &Workload, spec: Spec| {
        let name = spec.name();
        opts.only.as_deref().is_none_or(|o| name.contains(o))
            && opts.filter.as_deref().is_none_or(|f| format!("{}/{name}", w.name).contains(f))
    };
    let workloads = plan(&opts);
    if !workloads.iter().any(|w| w.runs.iter().any(|&(s, _)| selected(w, s))) {
        println!("compare: nothing matches the filter; skipped");
        return;
    }
    let mut servers = Servers { installed: redis_installed(), plain: None, aof: None };
    let mut skipped = Vec::new();
    if !servers.installed
        && workloads
            .iter()
            .any(|w| w.runs.iter().any(|&(s, _)| matches!(s, Spec::Redis(_)) && selected(w, s)))
    {
        let msg = "SKIPPED redis: redis-server not found (apt-get install redis-server)";
        println!("{msg}");
        skipped.push(msg.to_string());
    }
    println!(
        "compare: {} ms measured per row after {} ms warm-up{}; P1 over {} completed keys; {} CPUs",
        opts.duration.as_millis(),
        opts.warmup.as_millis(),
        if opts.quick { " (quick)" } else { "" },
        opts.lookup_keys,
        cpus()
    );
    println!(
        "{:<27} {:<17} {:>4} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "workload", "system", "thr", "ops/s", "p50", "p99", "p99.9", "idemkv/"
    );
    println!(
        "{:<27} {:<17} {:>4} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "", "", "", "", "", "", "", "peer"
    );
    let mut rows: Vec<Row> = Vec::new();
    for w in &workloads {
        let first = rows.len();
        for &(spec, threads) in &w.runs {
            if !selected(w, spec) || (matches!(spec, Spec::Redis(_)) && !servers.installed) {
                continue;
            }
            let row = match run_one(spec, threads, w, &opts, &mut servers) {
                Ok(m) => {
                    let secs = m.window.as_secs_f64();
                    let note = match &m.first_error {
                        Some(e) => format!("{} errors, first: {e}", m.errors),
                        None => String::new(),
                    };
                    Row {
                        workload: w.name,
                        system: spec.name().to_string(),
                        threads,
                        ops_per_sec: m.ops as f64 / secs,
                        p50: m.hist.percentile(0.50),
                        p99: m.hist.percentile(0.99),
                        p999: m.hist.percentile(0.999),
                        ratio: None,
                        errors: m.errors,
                        note,
                    }
                }
                Err(e) => Row {
                    workload: w.name,
                    system: spec.name().to_string(),
                    threads,
                    ops_per_sec: 0.0,
                    p50: 0,
                    p99: 0,
                    p999: 0,
                    ratio: None,
                    errors: 1,
                    note: format!("FAILED: {e}"),
                },
            };
            rows.push(row);
            // The reference row runs first in every workload.
            let reference = rows[first..]
                .iter()
                .find(|r| r.system == w.reference && r.ops_per_sec > 0.0)
                .map(|r| r.ops_per_sec);
            let r = rows.last_mut().expect("just pushed");
            if let Some(x) = reference.filter(|_| r.ops_per_sec > 0.0) {
                r.ratio = Some(x / r.ops_per_sec);
            }
            print_row(r);
        }
    }
    drop(servers); // kills the redis-server children
    let notes = vec![
        "ops: P1 = one lookup (idemkv: claim -> Replay); P2/P3 = one claim + complete cycle of a \
         new key (two transitions)"
            .to_string(),
        "idemkv/peer = ops/s of the workload's reference idemkv row (P1 idemkv-durable, P2 \
         idemkv-buffered, P3 idemkv-durable) divided by the row's ops/s; >1 means idemkv is faster"
            .to_string(),
        "idemkv-buffered: Buffered { max_delay: 5 ms }; idemkv-durable: fdatasync'd journal, \
         group commit"
            .to_string(),
        "sled-flush: sled 0.34.7 flush() after each CAS; on Linux it ends in sync_file_range, \
         which is not an fsync (sled #1452): NOT a true durable peer"
            .to_string(),
        "mutex-hashmap: 64 std Mutex<HashMap> stripes, memory only: the physical limit of the \
         design, no durability"
            .to_string(),
        "sqlite: WAL, one connection per thread, busy_timeout 30 s; synchronous=NORMAL (P1/P2) \
         syncs only at WAL checkpoints, FULL (P3) fsyncs the WAL at every commit"
            .to_string(),
        "redis: separate redis-server on loopback (--save \"\"; P3 with --appendonly yes \
         --appendfsync always); its clients (redis crate, TCP_NODELAY) run in this process and share its CPUs"
            .to_string(),
        format!(
            "{} CPUs: threads beyond that only help where operations block on I/O; latency \
             includes two Instant::now() calls",
            cpus()
        ),
    ];
    println!();
    for n in &notes {
        println!("note: {n}");
    }
    if let Some(path) = &opts.json {
        match std::fs::write(path, to_json(&opts, &rows, &notes, &skipped)) {
            Ok(()) => println!("wrote {}", path.display()),
            Err(e) => {
                eprintln!("compare: writing {}: {e}", path.display());
                std::process::exit(1);
            }
        }
    }
    if rows.iter().any(|r| r.note.starts_with("FAILED")) {
        std::process::exit(1);
    }
}
