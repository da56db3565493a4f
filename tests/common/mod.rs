//! Shared helpers of the integration tests: keys, clocks, a deterministic
//! PRNG, CRC-32, journal-frame parsing, and the self-exec child process used
//! by the crash tests (the test binary re-runs itself as `child_worker`).
#![allow(dead_code)]

use std::error::Error as StdError;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use idemkv::{Claim, Config, Durability, Fingerprint, Key, Lease, MockClock, Policy, Store};

/// `Result` for tests that mix idemkv and std errors.
pub type TestResult<T = ()> = Result<T, Box<dyn StdError>>;

/// A realistic start time for mock clocks (2023-11-14).
pub const T0: u64 = 1_700_000_000_000;

/// The namespace used by most tests.
pub const NS: &str = "test";

/// Key `NS:<id>`.
pub fn key(id: impl AsRef<[u8]>) -> Key {
    Key::new(NS, id).expect("valid test key")
}

/// A mock clock at [`T0`].
pub fn mock_clock() -> MockClock {
    MockClock::new(T0)
}

/// Config driven by `clock`, with the background sweeper off.
pub fn mock_config(clock: &MockClock) -> Config {
    Config::new().clock(clock.clone()).sweep_interval(None)
}

/// The Buffered mode used by the tests.
pub fn buffered() -> Durability {
    Durability::Buffered { max_delay: Duration::from_millis(5) }
}

/// Both durability modes, labelled.
pub fn modes() -> [(&'static str, Durability); 2] {
    [("durable", Durability::Durable), ("buffered", buffered())]
}

/// Claims `key` and insists on `Acquired`.
pub fn acquire(store: &Store, key: &Key, fp: impl Into<Option<Fingerprint>>) -> TestResult<Lease> {
    match store.claim(key, fp)? {
        Claim::Acquired(lease) => Ok(lease),
        other => Err(format!("expected Acquired for {key}, got {other:?}").into()),
    }
}

/// Milliseconds since the epoch of a `SystemTime`.
pub fn ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).expect("after the epoch").as_millis() as u64
}

/// SplitMix64: a small deterministic PRNG (no `rand` dev-dependency).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// CRC-32/IEEE (the polynomial crc32fast uses), bit by bit.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// The response a sentinel key is completed with: what a bad-input test
/// must not lose.
pub const SENTINEL: &[u8] = b"sentinel";

/// Completes `key` in `store` with [`SENTINEL`].
pub fn plant_sentinel(store: &Store, key: &Key) -> TestResult {
    let lease = acquire(store, key, None)?;
    store.complete(&lease, SENTINEL)?;
    Ok(())
}

/// `key` still replays [`SENTINEL`]: nothing stored was lost.
pub fn sentinel_replays(store: &Store, key: &Key) -> TestResult {
    match store.claim(key, None)? {
        Claim::Replay(r) if r.response() == SENTINEL => Ok(()),
        other => Err(format!("the sentinel {key} was lost: {other:?}").into()),
    }
}

pub mod tmpfs;

/// Recursively copies a directory.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Journal frames (src/format/entry.rs): 16-byte segment header, then frames
// `len u32 | crc u32 | seq u64 | payload`, payload
// `op u8 | flags u8 | key_len u16 | prev_expiry u64 | new_expiry u64 | key | record`.

pub const SEGMENT_HEADER_LEN: usize = 16;
pub const FRAME_HEADER_LEN: usize = 16;

/// One whole, checksum-valid frame of a segment file.
#[derive(Debug, Clone)]
pub struct FrameInfo {
    /// Byte offset of the frame in its segment file.
    pub start: usize,
    /// Offset one past its last byte.
    pub end: usize,
    pub seq: u64,
    /// Raw storage key: `ns_len | namespace | id`.
    pub key: Vec<u8>,
    /// The encoded record of a Put, `None` for a Delete.
    pub record: Option<Vec<u8>>,
}

impl FrameInfo {
    /// The record's state tag (1 InProgress, 2 Completed, 3 Failed, 4 Idle).
    pub fn state_tag(&self) -> Option<u8> {
        self.record.as_ref().map(|r| r[3])
    }

    /// The id part of the raw key.
    pub fn id(&self) -> &[u8] {
        &self.key[1 + self.key[0] as usize..]
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Parses every frame of an undamaged segment; panics on damage.
pub fn parse_segment(bytes: &[u8]) -> Vec<FrameInfo> {
    assert!(bytes.len() >= SEGMENT_HEADER_LEN, "segment header missing");
    assert_eq!(&bytes[..8], b"IDEMKVJL", "segment magic");
    assert_eq!(le_u32(bytes, 12), crc32(&bytes[..12]), "segment header crc");
    let mut at = SEGMENT_HEADER_LEN;
    let mut out = Vec::new();
    while at < bytes.len() {
        assert!(at + FRAME_HEADER_LEN <= bytes.len(), "torn frame at {at}");
        let len = le_u32(bytes, at) as usize;
        let end = at + FRAME_HEADER_LEN + len;
        assert!(end <= bytes.len(), "torn frame at {at}");
        assert_eq!(le_u32(bytes, at + 4), crc32(&bytes[at + 8..end]), "frame crc at {at}");
        let seq = le_u64(bytes, at + 8);
        let p = &bytes[at + FRAME_HEADER_LEN..end];
        let key_len = u16::from_le_bytes([p[2], p[3]]) as usize;
        let key = p[20..20 + key_len].to_vec();
        let record = match p[0] {
            1 => Some(p[20 + key_len..].to_vec()),
            2 => None,
            op => panic!("unknown op {op} at {at}"),
        };
        out.push(FrameInfo { start: at, end, seq, key, record });
        at = end;
    }
    out
}

/// The segment files of `<store>/journal`, in sequence order.
pub fn segments(store_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(store_dir.join("journal"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    out.retain(|p| p.extension().is_some_and(|e| e == "log"));
    out.sort();
    Ok(out)
}

// ---------------------------------------------------------------------------
// The child process. Every test file that needs one declares
//
//     #[test]
//     #[ignore = "child process of the crash tests"]
//     fn child_worker() { common::child_main() }
//
// and the parent runs `current_exe --exact child_worker --nocapture --ignored`
// with `IDEMKV_CHILD_DIR` (and `IDEMKV_CHILD_MODE`) set. Without the
// variable, `child_worker` returns at once.

pub const CHILD_DIR_ENV: &str = "IDEMKV_CHILD_DIR";
pub const CHILD_MODE_ENV: &str = "IDEMKV_CHILD_MODE";
pub const CHILD_ARG_ENV: &str = "IDEMKV_CHILD_ARG";

/// Marks protocol lines; libtest may print other text on the same stream.
const MARK: &str = "@@idemkv ";

/// One acknowledged event reported by the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// The claim of `id` was acquired (and is durable) with `token`.
    Claimed { id: String, token: u64 },
    /// The completion of `id` returned Ok.
    Completed { id: String },
    /// The child finished its scripted work and is parked.
    Ready,
    /// A free-form result line.
    Result(String),
}

fn ack_line(ack: &Ack) -> String {
    match ack {
        Ack::Claimed { id, token } => format!("{MARK}CLAIMED {id} {token}"),
        Ack::Completed { id } => format!("{MARK}COMPLETED {id}"),
        Ack::Ready => format!("{MARK}READY"),
        Ack::Result(s) => format!("{MARK}RESULT {s}"),
    }
}

fn parse_ack(line: &str) -> Option<Ack> {
    let rest = &line[line.find(MARK)? + MARK.len()..];
    let mut words = rest.split_whitespace();
    match words.next()? {
        "CLAIMED" => {
            Some(Ack::Claimed { id: words.next()?.to_string(), token: words.next()?.parse().ok()? })
        }
        "COMPLETED" => Some(Ack::Completed { id: words.next()?.to_string() }),
        "READY" => Some(Ack::Ready),
        "RESULT" => Some(Ack::Result(rest["RESULT".len()..].trim().to_string())),
        _ => None,
    }
}

/// Prints one ack line (stdout is line-buffered: one write per line).
pub fn emit(ack: Ack) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", ack_line(&ack)).expect("stdout");
    out.flush().expect("stdout");
}

/// The deterministic response the crash tests store for key id `id`:
/// 0 to ~3 KiB, derived from the id so a replay can be checked anywhere.
pub fn response_for(id: &str) -> Vec<u8> {
    let seed = id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    let mut rng = Rng::new(seed);
    let len = rng.below(3000) as usize;
    let mut body = id.as_bytes().to_vec();
    body.push(0);
    body.extend(rng.bytes(len));
    body
}

/// Config of the crash-test children: Durable, a one-hour lease (so only
/// boot-epoch orphaning can free their claims at once), no background
/// checkpoint or sweep (the journal keeps every entry of the child's life).
pub fn child_config() -> Config {
    Config::new()
        .durability(Durability::Durable)
        .default_policy(Policy::default().lease(Duration::from_secs(3600)))
        .checkpoint_interval(None)
        .sweep_interval(None)
}

/// Blocks until the parent closes our stdin (it kills us first), then exits
/// without running destructors.
fn park() -> ! {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    std::process::exit(0);
}

/// The body of every `child_worker` test.
pub fn child_main() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return; // not a child: nothing to do
    };
    let dir = PathBuf::from(dir);
    let mode = std::env::var(CHILD_MODE_ENV).unwrap_or_default();
    let arg: u64 = std::env::var(CHILD_ARG_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let res = match mode.as_str() {
        "claim_complete" => child_claim_complete(&dir, arg, segment_bytes_env()),
        "traffic" => child_traffic(&dir, arg as usize),
        "open_park" => child_open_park(&dir),
        "try_open" => {
            child_try_open(&dir);
            Ok(())
        }
        other => Err(format!("unknown child mode {other:?}").into()),
    };
    if let Err(e) = res {
        emit(Ack::Result(format!("ERROR {e}")));
        std::process::exit(2);
    }
    park();
}

fn segment_bytes_env() -> Option<u64> {
    std::env::var("IDEMKV_CHILD_SEGMENT_BYTES").ok().and_then(|s| s.parse().ok())
}

/// Claims keys `c0..c{n}`, completes the even ones, prints every ack, READY.
fn child_claim_complete(dir: &Path, n: u64, segment_bytes: Option<u64>) -> TestResult {
    let mut config = child_config();
    if let Some(b) = segment_bytes {
        config = config.segment_bytes(b);
    }
    let store = config.open(dir)?;
    let mut leases = Vec::new();
    for i in 0..n {
        let id = format!("c{i}");
        let lease = acquire(&store, &key(&id), Fingerprint::of(&id))?;
        emit(Ack::Claimed { id: id.clone(), token: lease.token() });
        leases.push((id, lease));
    }
    for (i, (id, lease)) in leases.iter().enumerate() {
        if i % 2 == 0 {
            store.complete(lease, &response_for(id))?;
            emit(Ack::Completed { id: id.clone() });
        }
    }
    emit(Ack::Ready);
    // Keep the store (and its lock) alive while parked.
    std::mem::forget(store);
    Ok(())
}

/// `threads` threads claim keys `t{thread}-{n}` and complete two of every
/// three, printing acks, until killed.
fn child_traffic(dir: &Path, threads: usize) -> TestResult {
    let store = child_config().open(dir)?;
    for t in 0..threads {
        let store = store.clone();
        std::thread::spawn(move || {
            for n in 0..1_000_000u64 {
                let id = format!("t{t}-{n}");
                let lease = match store.claim(&key(&id), Fingerprint::of(&id)) {
                    Ok(Claim::Acquired(lease)) => lease,
                    other => {
                        emit(Ack::Result(format!("ERROR claim {id}: {other:?}")));
                        return;
                    }
                };
                emit(Ack::Claimed { id: id.clone(), token: lease.token() });
                if n % 3 != 0 {
                    if let Err(e) = store.complete(&lease, &response_for(&id)) {
                        emit(Ack::Result(format!("ERROR complete {id}: {e}")));
                        return;
                    }
                    emit(Ack::Completed { id });
                }
            }
        });
    }
    std::mem::forget(store);
    Ok(())
}

/// Opens the store (replaying its journal), reports how many entries were
/// replayed as `RESULT REPLAYED <n>`, READY, and parks until killed.
fn child_open_park(dir: &Path) -> TestResult {
    let store = child_config().open(dir)?;
    emit(Ack::Result(format!("REPLAYED {}", store.recovery_report().entries_replayed)));
    emit(Ack::Ready);
    std::mem::forget(store);
    Ok(())
}

/// Tries to open the store and reports the outcome as a RESULT line.
fn child_try_open(dir: &Path) {
    match Store::open(dir) {
        Ok(store) => {
            emit(Ack::Result("OPENED".into()));
            drop(store);
        }
        Err(idemkv::Error::Locked { path }) => {
            emit(Ack::Result(format!("LOCKED {}", path.display())));
        }
        Err(e) => emit(Ack::Result(format!("ERROR {e:?}"))),
    }
    std::process::exit(0);
}

/// Serializes the tests of a binary that spawns child processes.
///
/// A child inherits every open file descriptor of this process between fork
/// and exec, including a store's LOCK file, whose advisory lock then outlives
/// `close()` for that moment; a concurrent test reopening its store would see
/// a spurious `Error::Locked` (see `locked.rs`). Every test in such a binary
/// holds this guard.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running child test process, killed (SIGKILL) and reaped on drop.
pub struct ChildProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl ChildProc {
    /// Re-runs this test binary as `child_worker` on `dir` in `mode`.
    pub fn spawn(dir: &Path, mode: &str, env: &[(&str, String)]) -> TestResult<ChildProc> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["--exact", "child_worker", "--nocapture", "--ignored"])
            .env(CHILD_DIR_ENV, dir)
            .env(CHILD_MODE_ENV, mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no child stdout")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    // Only whole lines: a line cut by the kill is not an ack.
                    Ok(n) if n > 0 && line.ends_with('\n') => {
                        if tx.send(line.trim_end().to_string()).is_err() {
                            return;
                        }
                    }
                    _ => return,
                }
            }
        });
        Ok(ChildProc { child, stdin, lines: rx })
    }

    /// The next ack, waiting up to `timeout`; `Ok(None)` when stdout closed.
    pub fn next_ack(&mut self, timeout: Duration) -> TestResult<Option<Ack>> {
        loop {
            match self.lines.recv_timeout(timeout) {
                Ok(line) => {
                    if let Some(ack) = parse_ack(&line) {
                        if let Ack::Result(r) = &ack
                            && r.starts_with("ERROR")
                        {
                            return Err(format!("child failed: {r}").into());
                        }
                        return Ok(Some(ack));
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("child silent for {timeout:?}").into());
                }
            }
        }
    }

    /// Acks up to and excluding READY.
    pub fn acks_until_ready(&mut self) -> TestResult<Vec<Ack>> {
        let mut acks = Vec::new();
        loop {
            match self.next_ack(Duration::from_secs(60))? {
                Some(Ack::Ready) => return Ok(acks),
                Some(a) => acks.push(a),
                None => return Err("child exited before READY".into()),
            }
        }
    }

    /// SIGKILLs the child and reaps it; then returns every ack it printed
    /// that was not read yet.
    pub fn kill(&mut self) -> TestResult<Vec<Ack>> {
        self.child.kill()?;
        let status = self.child.wait()?;
        assert!(!status.success(), "the child must die by the kill: {status}");
        let mut rest = Vec::new();
        while let Some(ack) = self.next_ack(Duration::from_secs(30))? {
            rest.push(ack);
        }
        Ok(rest)
    }

    /// Waits for the child to exit on its own.
    pub fn wait(&mut self) -> TestResult<std::process::ExitStatus> {
        drop(self.stdin.take());
        Ok(self.child.wait()?)
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Claimed tokens and completed ids from a list of acks.
pub fn summarize(acks: &[Ack]) -> (std::collections::BTreeMap<String, u64>, Vec<String>) {
    let mut claimed = std::collections::BTreeMap::new();
    let mut completed = Vec::new();
    for a in acks {
        match a {
            Ack::Claimed { id, token } => {
                claimed.insert(id.clone(), *token);
            }
            Ack::Completed { id } => completed.push(id.clone()),
            _ => {}
        }
    }
    (claimed, completed)
}

// ---------------------------------------------------------------------------
// Helpers of the reliability harness (crash_harness, journal_damage,
// io_faults, bad_input_matrix).

/// Parks a child process like [`child_main`] does after its script: blocks
/// until the parent closes our stdin (or kills us), then exits at once.
pub fn park_child() -> ! {
    park()
}

/// True when the tests run as root (file permission bits do not apply).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A temporary directory on a RAM-backed file system when one is usable
/// (`/dev/shm`, or `IDEMKV_TEST_TMPDIR`), else in the default temp dir. The
/// many-case tests open thousands of stores; every open and close fsyncs,
/// which costs milliseconds on a disk and nothing on tmpfs. A process crash
/// (SIGKILL) loses nothing the kernel holds, so tmpfs proves the same there.
pub fn fast_tempdir() -> TestResult<tempfile::TempDir> {
    let candidates = std::env::var_os("IDEMKV_TEST_TMPDIR")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/dev/shm")]);
    for base in candidates {
        if base.is_dir()
            && let Ok(dir) = tempfile::Builder::new().prefix("idemkv-test").tempdir_in(&base)
        {
            return Ok(dir);
        }
    }
    Ok(tempfile::tempdir()?)
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lower- or upper-case hex; `None` if malformed.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

// ---------------------------------------------------------------------------
// Fault injection through the journal's file seam (`idemkv::testing`).

pub mod faults {
    use std::io;
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use std::sync::Mutex;

    use idemkv::testing::{JournalFile, JournalFs, StdFs};

    /// One fault, counted from the first call of its kind (1-based) over
    /// the life of the [`FaultyFs`], across every segment file.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Fault {
        /// No fault: count calls only.
        None,
        /// The Nth `write_all` fails with EIO and writes nothing.
        FailWrite(u64),
        /// The Nth `write_all` writes the first half of its buffer to the
        /// real file, then fails with EIO.
        ShortWrite(u64),
        /// The Nth `sync_data` fails with EIO (after really syncing nothing).
        FailSync(u64),
        /// The Nth directory fsync fails with EIO.
        FailDirSync(u64),
        /// From the Nth `write_all` on, every write stores only part of its
        /// buffer (the first half of the first one, nothing of later ones)
        /// and fails with ENOSPC: a full disk.
        Enospc(u64),
    }

    #[derive(Debug, Default)]
    struct Counters {
        writes: AtomicU64,
        syncs: AtomicU64,
        dir_syncs: AtomicU64,
        injected: AtomicU64,
    }

    /// A [`JournalFs`] over the real file system that injects one [`Fault`].
    #[derive(Debug, Clone)]
    pub struct FaultyFs {
        fault: Arc<Mutex<Fault>>,
        counters: Arc<Counters>,
    }

    impl FaultyFs {
        pub fn new(fault: Fault) -> FaultyFs {
            FaultyFs { fault: Arc::new(Mutex::new(fault)), counters: Arc::default() }
        }

        /// Replaces the fault (counters keep running).
        pub fn arm(&self, fault: Fault) {
            *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
        }

        /// `write_all` calls so far.
        pub fn writes(&self) -> u64 {
            self.counters.writes.load(Ordering::SeqCst)
        }

        /// `sync_data` calls so far.
        pub fn syncs(&self) -> u64 {
            self.counters.syncs.load(Ordering::SeqCst)
        }

        /// Directory fsyncs so far.
        pub fn dir_syncs(&self) -> u64 {
            self.counters.dir_syncs.load(Ordering::SeqCst)
        }

        /// Faults injected so far.
        pub fn injected(&self) -> u64 {
            self.counters.injected.load(Ordering::SeqCst)
        }

        fn fault(&self) -> Fault {
            *self.fault.lock().unwrap_or_else(|e| e.into_inner())
        }

        fn hit(&self) {
            self.counters.injected.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn eio(what: &str) -> io::Error {
        io::Error::other(format!("injected fault: {what}"))
    }

    struct FaultyFile {
        inner: Box<dyn JournalFile>,
        fs: FaultyFs,
    }

    impl JournalFile for FaultyFile {
        fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            let n = self.fs.counters.writes.fetch_add(1, Ordering::SeqCst) + 1;
            match self.fs.fault() {
                Fault::FailWrite(k) if k == n => {
                    self.fs.hit();
                    Err(eio("write failed"))
                }
                Fault::ShortWrite(k) if k == n => {
                    self.fs.hit();
                    self.inner.write_all(&buf[..buf.len() / 2])?;
                    Err(eio("short write"))
                }
                Fault::Enospc(k) if n >= k => {
                    self.fs.hit();
                    if n == k {
                        self.inner.write_all(&buf[..buf.len() / 2])?;
                    }
                    Err(io::Error::from_raw_os_error(28))
                }
                _ => self.inner.write_all(buf),
            }
        }

        fn sync_data(&mut self) -> io::Result<()> {
            let n = self.fs.counters.syncs.fetch_add(1, Ordering::SeqCst) + 1;
            match self.fs.fault() {
                Fault::FailSync(k) if k == n => {
                    self.fs.hit();
                    Err(eio("fsync failed"))
                }
                _ => self.inner.sync_data(),
            }
        }
    }

    impl JournalFs for FaultyFs {
        fn create(&self, path: &Path) -> io::Result<Box<dyn JournalFile>> {
            let inner = StdFs.create(path)?;
            Ok(Box::new(FaultyFile { inner, fs: self.clone() }))
        }

        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            let n = self.counters.dir_syncs.fetch_add(1, Ordering::SeqCst) + 1;
            match self.fault() {
                Fault::FailDirSync(k) if k == n => {
                    self.hit();
                    Err(eio("directory fsync failed"))
                }
                _ => StdFs.sync_dir(dir),
            }
        }
    }
}
