//! `idemkv demo`: a webhook provider played against a handler process that
//! embeds idemkv, with duplicates, reordering, retryable and terminal
//! failures and a SIGKILL of the handler in the middle; then a verdict from
//! the ledger of side effects and the store.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::handler::{LEDGER_FILE, STORE_DIR};
use crate::protocol::{
    Answer, Outcome, completed_response, effect_token, event_body, event_id, source_name,
    terminal_payload,
};
use crate::report::{Counters, CrashInfo, Latencies};
use crate::rng::{Rng, hash};
use crate::verify::Acked;

/// Marks a directory the demo created, so it only ever wipes its own.
const MARKER: &str = ".idemkv-demo";
/// Deliveries are shuffled within windows of this many (reordering).
const REORDER_WINDOW: usize = 16;
/// Share of duplicate copies sent together with the original.
const CONCURRENT_SHARE: f64 = 0.4;
/// A late copy is sent this many deliveries (plus up to `LATE_SPREAD`) after
/// its event finished.
const LATE_GAP: u64 = 200;
const LATE_SPREAD: u64 = 5000;
/// Resends of one event after which the provider gives up on it.
const MAX_RETRIES: u16 = 30;
/// How long to wait for a (re)started handler to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Share of side-effect attempts that fail retryably, and of events that fail terminally.
const RETRY_RATE: f64 = 0.03;
const TERMINAL_RATE: f64 = 0.01;

/// Arguments of `idemkv demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Demo directory; wiped and recreated at the start.
    #[arg(long, default_value = "./idemkv-data")]
    pub path: PathBuf,
    /// Unique events to deliver.
    #[arg(long, default_value_t = 100_000)]
    pub events: u32,
    /// Share of events that get extra duplicate deliveries (0..=1).
    #[arg(long, default_value_t = 0.2)]
    pub dup_rate: f64,
    /// Event sources, i.e. namespaces (stripe, github, shopify, …).
    #[arg(long, default_value_t = 3)]
    pub sources: usize,
    /// Worker threads in the handler process.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Seed of the delivery schedule and the fault injection.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Do not kill the handler in the middle of the run.
    #[arg(long)]
    pub no_crash: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Pass `--audit` to the handler process (set from the global flag).
    #[arg(skip)]
    pub audit: bool,
}

/// Why a delivery was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The event's first delivery.
    Original,
    /// A duplicate sent together with the original.
    Concurrent,
    /// A duplicate sent long after the event finished.
    Late,
    /// A resend after a retryable failure (exponential backoff).
    AfterFailure,
    /// A resend after an "in flight" answer.
    AfterInFlight,
    /// A resend of a delivery left unanswered by the killed handler.
    AfterCrash,
    /// A resend after a handler error.
    AfterError,
}

#[derive(Debug, Clone, Copy)]
struct EventState {
    source: u8,
    late_copies: u8,
    retries: u16,
    fin: Acked,
}

/// The running handler process and its answer stream.
struct Handler {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    answers: Receiver<Msg>,
    reader: JoinHandle<()>,
    ready: HashMap<String, u64>,
}

enum Msg {
    Answer(Answer),
    Bad(String),
}

/// The provider's whole state.
struct Provider<'a> {
    args: &'a DemoArgs,
    sources: Vec<String>,
    events: Vec<EventState>,
    stream: Vec<(u32, Kind)>,
    stream_pos: usize,
    resend: VecDeque<(u32, Kind)>,
    timers: BinaryHeap<Reverse<(Instant, u64, u32, Kind)>>,
    late: BinaryHeap<Reverse<(u64, u32)>>,
    outstanding: HashMap<u64, (u32, Kind)>,
    window: usize,
    next_id: u64,
    timer_seq: u64,
    finished: u32,
    next_progress: u32,
    started: Instant,
    c: Counters,
    lat: Latencies,
    crash: Option<CrashInfo>,
    handler: Option<Handler>,
}

/// Runs the demo; `Ok(false)` when the verdict is FAIL.
pub fn run(args: &DemoArgs) -> Result<bool> {
    validate(args)?;
    let started = Instant::now();
    prepare_dir(&args.path)?;
    let say = |s: String| {
        if args.json {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    };
    let sources: Vec<String> = (0..args.sources).map(source_name).collect();
    say(format!(
        "idemkv demo: wiped and recreated {} (store {}/, ledger {})",
        args.path.display(),
        STORE_DIR,
        LEDGER_FILE
    ));
    say(format!(
        "  provider: {} events from {} · dup-rate {} · seed {} · {}",
        args.events,
        sources.join(", "),
        args.dup_rate,
        args.seed,
        if args.no_crash {
            "no crash".to_string()
        } else {
            "SIGKILL of the handler half-way".to_string()
        }
    ));
    say(format!(
        "  handler:  child process, {} workers, Durable store, ledger synced before complete",
        args.workers
    ));
    let mut p = Provider::new(args, sources, started);
    p.handler = Some(p.spawn()?);
    p.drive()?;
    p.shutdown()?;
    let run_time = started.elapsed();
    let verdict = crate::verify::verify(args, &p.sources, &p.acked())?;
    let report = crate::report::build(
        args,
        &p.sources,
        &p.c,
        &mut p.lat,
        p.crash.take(),
        verdict,
        run_time,
        started.elapsed(),
    );
    report.print(args.json)?;
    Ok(report.verdict == "PASS")
}

fn validate(args: &DemoArgs) -> Result<()> {
    if args.events == 0 || args.events > 10_000_000 {
        bail!("--events must be from 1 to 10000000, not {}", args.events);
    }
    if !(0.0..=1.0).contains(&args.dup_rate) {
        bail!("--dup-rate must be from 0 to 1, not {}", args.dup_rate);
    }
    if args.sources == 0 || args.sources > 64 {
        bail!("--sources must be from 1 to 64, not {}", args.sources);
    }
    if args.workers == 0 || args.workers > 1024 {
        bail!("--workers must be from 1 to 1024, not {}", args.workers);
    }
    Ok(())
}

/// Wipes and recreates the demo directory — only if it is empty or was made
/// by an earlier demo.
fn prepare_dir(path: &Path) -> Result<()> {
    if path.exists() {
        let mut entries =
            std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?;
        let empty = entries.next().is_none();
        if !empty && !path.join(MARKER).exists() {
            bail!(
                "refusing to wipe {}: it is not empty and was not created by `idemkv demo` \
                 (no {MARKER} file); pass another --path",
                path.display()
            );
        }
        std::fs::remove_dir_all(path).with_context(|| format!("wiping {}", path.display()))?;
    }
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    std::fs::write(path.join(MARKER), "created by `idemkv demo`; wiped by the next run\n")
        .with_context(|| format!("writing {}", path.join(MARKER).display()))?;
    Ok(())
}

impl<'a> Provider<'a> {
    fn new(args: &'a DemoArgs, sources: Vec<String>, started: Instant) -> Self {
        let mut rng = Rng::new(args.seed);
        let n = args.events as usize;
        let mut events = Vec::with_capacity(n);
        let mut stream = Vec::with_capacity(n + n / 2);
        let mut c = Counters::default();
        for i in 0..args.events {
            let source = rng.below(args.sources as u64) as u8;
            let mut late_copies = 0u8;
            stream.push((i, Kind::Original));
            if rng.chance(args.dup_rate) {
                c.events_with_duplicates += 1;
                let copies = match rng.below(10) {
                    0..=5 => 1,
                    6..=8 => 2,
                    _ => 3,
                };
                for _ in 0..copies {
                    if rng.chance(CONCURRENT_SHARE) {
                        stream.push((i, Kind::Concurrent));
                    } else {
                        late_copies += 1;
                    }
                }
            }
            events.push(EventState { source, late_copies, retries: 0, fin: Acked::Open });
        }
        for window in stream.chunks_mut(REORDER_WINDOW) {
            rng.shuffle(window);
        }
        Provider {
            window: (args.workers * 8).max(64),
            args,
            sources,
            events,
            stream,
            stream_pos: 0,
            resend: VecDeque::new(),
            timers: BinaryHeap::new(),
            late: BinaryHeap::new(),
            outstanding: HashMap::new(),
            next_id: 1,
            timer_seq: 0,
            finished: 0,
            next_progress: 1,
            started,
            c,
            lat: Latencies::default(),
            crash: None,
            handler: None,
        }
    }

    /// Each event's source and how the handler acknowledged it.
    fn acked(&self) -> Vec<(u8, Acked)> {
        self.events.iter().map(|e| (e.source, e.fin)).collect()
    }

    /// Starts a handler process and waits for its ready line.
    fn spawn(&self) -> Result<Handler> {
        let exe = std::env::current_exe().context("locating the idemkv executable")?;
        let mut child = Command::new(exe)
            .arg("demo-handler")
            .args(self.args.audit.then_some("--audit"))
            .arg("--path")
            .arg(&self.args.path)
            .args(["--seed", &self.args.seed.to_string()])
            .args(["--sources", &self.args.sources.to_string()])
            .args(["--workers", &self.args.workers.to_string()])
            .args(["--retry-rate", &RETRY_RATE.to_string()])
            .args(["--terminal-rate", &TERMINAL_RATE.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the handler process")?;
        let stdin = child.stdin.take().context("handler stdin")?;
        let stdout = child.stdout.take().context("handler stdout")?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let reader = std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("H ") {
                    if let Some(r) = ready_tx.take() {
                        let _ = r.send(rest.to_string());
                    }
                    continue;
                }
                let msg =
                    Answer::parse(&line).map_or_else(|e| Msg::Bad(e.to_string()), Msg::Answer);
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        let hello = match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(h) => h,
            Err(_) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the handler process did not start ({})",
                    status.map_or("no ready line".to_string(), |s| s.to_string())
                );
            }
        };
        let ready = hello
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect();
        Ok(Handler {
            child,
            stdin: BufWriter::with_capacity(64 << 10, stdin),
            answers: rx,
            reader,
            ready,
        })
    }

    fn handler(&mut self) -> &mut Handler {
        self.handler.as_mut().expect("handler running")
    }

    /// The main loop: send within the window, take answers, crash once.
    fn drive(&mut self) -> Result<()> {
        loop {
            self.fill()?;
            if self.done() {
                return Ok(());
            }
            let timeout = self.next_timer_in().unwrap_or(Duration::from_millis(200));
            let first = match self.handler().answers.recv_timeout(timeout) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.handler().child.wait()?;
                    bail!("the handler process exited unexpectedly ({status})");
                }
            };
            if let Some(m) = first {
                self.on_msg(m)?;
                while let Ok(m) = self.handler().answers.try_recv() {
                    self.on_msg(m)?;
                }
            }
            if !self.args.no_crash && self.crash.is_none() && self.finished >= self.args.events / 2
            {
                // Refill first, so the kill lands among claims in progress.
                self.fill()?;
                self.crash_and_restart()?;
            }
        }
    }

    fn done(&self) -> bool {
        self.stream_pos >= self.stream.len()
            && self.resend.is_empty()
            && self.timers.is_empty()
            && self.late.is_empty()
            && self.outstanding.is_empty()
    }

    fn next_timer_in(&self) -> Option<Duration> {
        let Reverse((due, ..)) = self.timers.peek()?;
        Some(due.saturating_duration_since(Instant::now()))
    }

    /// Sends deliveries until the window is full or nothing is due.
    fn fill(&mut self) -> Result<()> {
        let now = Instant::now();
        let mut wrote = false;
        while self.outstanding.len() < self.window {
            let Some((event, kind)) = self.next_delivery(now) else {
                break;
            };
            self.send(event, kind)?;
            wrote = true;
        }
        if wrote {
            self.handler().stdin.flush().context("sending deliveries to the handler")?;
        }
        Ok(())
    }

    fn next_delivery(&mut self, now: Instant) -> Option<(u32, Kind)> {
        if let Some(d) = self.resend.pop_front() {
            return Some(d);
        }
        if let Some(Reverse((due, ..))) = self.timers.peek()
            && *due <= now
        {
            let Reverse((_, _, event, kind)) = self.timers.pop()?;
            return Some((event, kind));
        }
        let stream_left = self.stream_pos < self.stream.len();
        if let Some(Reverse((due_seq, _))) = self.late.peek()
            && (*due_seq <= self.c.deliveries_sent || !stream_left)
        {
            let Reverse((_, event)) = self.late.pop()?;
            return Some((event, Kind::Late));
        }
        if stream_left {
            self.stream_pos += 1;
            return Some(self.stream[self.stream_pos - 1]);
        }
        None
    }

    fn send(&mut self, event: u32, kind: Kind) -> Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        let source = &self.sources[self.events[event as usize].source as usize];
        let evt = event_id(self.args.seed, event);
        let line = format!("D {id} {source} {evt} {}\n", event_body(source, &evt));
        self.handler()
            .stdin
            .write_all(line.as_bytes())
            .context("sending a delivery to the handler")?;
        self.outstanding.insert(id, (event, kind));
        self.c.count_sent(kind);
        Ok(())
    }

    fn on_msg(&mut self, msg: Msg) -> Result<()> {
        match msg {
            Msg::Answer(a) => {
                self.on_answer(&a);
                Ok(())
            }
            Msg::Bad(e) => bail!("bad answer from the handler: {e}"),
        }
    }

    fn on_answer(&mut self, a: &Answer) {
        let Some((event, _kind)) = self.outstanding.remove(&a.id) else {
            self.c.unknown_answers += 1;
            return;
        };
        self.lat.record(a);
        self.c.count_answer(a);
        let src = self.sources[self.events[event as usize].source as usize].clone();
        let evt = event_id(self.args.seed, event);
        match a.outcome {
            Outcome::Acquired | Outcome::Reconciled => {
                if a.response != completed_response(&src, &evt, a.effect_token) {
                    self.c.note_bad_response(&src, &evt);
                }
                self.finish(event, Acked::Completed(a.effect_token), &src, &evt);
            }
            Outcome::Terminal => self.finish(event, Acked::Failed, &src, &evt),
            Outcome::Replayed => match effect_token(&a.response) {
                Some(t) if a.response == completed_response(&src, &evt, t) => {
                    self.finish(event, Acked::Completed(t), &src, &evt);
                }
                _ => self.c.note_bad_response(&src, &evt),
            },
            Outcome::ReplayedFailure => {
                if a.response == terminal_payload(&src, &evt) {
                    self.finish(event, Acked::Failed, &src, &evt);
                } else {
                    self.c.note_bad_response(&src, &evt);
                }
            }
            Outcome::Retry => self.retry(event, Kind::AfterFailure, 5),
            Outcome::InFlight => self.retry(event, Kind::AfterInFlight, 2),
            Outcome::Error => {
                self.c.note_error(&a.response);
                self.retry(event, Kind::AfterError, 20);
            }
            Outcome::Mismatch => {}
        }
    }

    /// Schedules a resend with exponential backoff (`base_ms` · 2^n, capped).
    fn retry(&mut self, event: u32, kind: Kind, base_ms: u64) {
        let e = &mut self.events[event as usize];
        e.retries += 1;
        if e.retries > MAX_RETRIES {
            if e.fin == Acked::Open {
                self.c.gave_up += 1;
            }
            return;
        }
        let delay = Duration::from_millis(base_ms << (e.retries - 1).min(6));
        // Distinct sequence numbers keep the heap order deterministic.
        self.timer_seq += 1;
        self.timers.push(Reverse((Instant::now() + delay, self.timer_seq, event, kind)));
    }

    /// Records how an event ended; the first time, queues its late copies.
    fn finish(&mut self, event: u32, fin: Acked, src: &str, evt: &str) {
        let e = &mut self.events[event as usize];
        if e.fin == Acked::Open {
            e.fin = fin;
            self.finished += 1;
            for copy in 0..e.late_copies {
                let gap = LATE_GAP
                    + hash(&[self.args.seed, u64::from(event), u64::from(copy)]) % LATE_SPREAD;
                self.late.push(Reverse((self.c.deliveries_sent + gap, event)));
            }
            self.progress();
        } else if e.fin != fin {
            self.c.note_conflict(src, evt);
        }
    }

    fn progress(&mut self) {
        let n = self.args.events;
        while self.next_progress <= 10
            && u64::from(self.finished) * 10 >= u64::from(n) * u64::from(self.next_progress)
        {
            eprintln!(
                "  {:>3}%  {:>8}/{} events finished · {:>8} deliveries sent · {:>5.1} s",
                self.next_progress * 10,
                self.finished,
                n,
                self.c.deliveries_sent,
                self.started.elapsed().as_secs_f64()
            );
            self.next_progress += 1;
        }
    }

    /// SIGKILLs the handler mid-run, collects the answers that made it out,
    /// restarts it on the same store and resends what went unanswered.
    fn crash_and_restart(&mut self) -> Result<()> {
        let mut h = self.handler.take().expect("handler running");
        let pid = h.child.id();
        let at_finished = self.finished;
        h.child.kill().context("killing the handler")?;
        let _ = h.child.wait();
        drop(h.stdin);
        let _ = h.reader.join();
        // Answers already in the pipe were sent before the kill: take them.
        while let Ok(m) = h.answers.try_recv() {
            self.on_msg(m)?;
        }
        let mut lost: Vec<(u64, (u32, Kind))> = self.outstanding.drain().collect();
        lost.sort_unstable_by_key(|(id, _)| *id);
        let unanswered = lost.len() as u64;
        self.resend.extend(lost.into_iter().map(|(_, (event, _))| (event, Kind::AfterCrash)));
        let t = Instant::now();
        let new = self.spawn()?;
        let restart = t.elapsed();
        let get = |k: &str| new.ready.get(k).copied().unwrap_or(0);
        let info = CrashInfo {
            killed_pid: pid,
            at_events_finished: at_finished,
            unanswered_resent: unanswered,
            restart_ms: restart.as_secs_f64() * 1e3,
            journal_entries_replayed: get("journal_entries_replayed"),
            journal_bytes_dropped: get("journal_bytes_dropped"),
            ledger_lines_found: get("ledger_lines"),
            ledger_torn_bytes: get("ledger_torn_bytes"),
        };
        eprintln!(
            "  crash: SIGKILL handler pid {pid} with {unanswered} deliveries unanswered; \
             restarted in {:.0} ms (journal: {} entries replayed; ledger: {} lines, {} torn bytes cut)",
            info.restart_ms,
            info.journal_entries_replayed,
            info.ledger_lines_found,
            info.ledger_torn_bytes
        );
        self.crash = Some(info);
        self.handler = Some(new);
        Ok(())
    }

    /// Closes the handler's stdin and waits for it to drain and exit.
    fn shutdown(&mut self) -> Result<()> {
        let Some(mut h) = self.handler.take() else {
            return Ok(());
        };
        h.stdin.flush()?;
        drop(h.stdin);
        let status = h.child.wait().context("waiting for the handler")?;
        let _ = h.reader.join();
        while let Ok(m) = h.answers.try_recv() {
            self.on_msg(m)?;
        }
        if !status.success() {
            bail!("the handler process failed ({status})");
        }
        Ok(())
    }
}
