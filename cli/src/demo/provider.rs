//! The webhook provider: sends the schedule's deliveries to the server over
//! HTTP, up to `--concurrency` at once, checks each answer against the
//! event's known outcome, resends with exponential backoff like a real
//! provider, and SIGKILLs and restarts the server half-way, redelivering
//! whatever the killed server left unanswered.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::mpsc;

use super::DemoArgs;
use super::answer::{Answer, Outcome};
use super::client::{Client, Delivery, Forgery};
use super::events::{
    completed_response, effect_token, event_body, event_id, forged_event_id, terminal_payload,
};
use super::process::Server;
use super::report::CrashInfo;
use super::rng::hash;
use super::schedule::{Kind, Planned, Schedule};
use super::tally::{Counters, Latencies};

/// Resends of one event after which the provider gives up on it.
const MAX_RETRIES: u16 = 30;
/// The kill comes this long, plus up to `KILL_JITTER_US`, after the refill.
const KILL_DELAY_US: u64 = 1_000;
const KILL_JITTER_US: u64 = 6_000;
const SALT_KILL: u64 = 0x4b49_4c4c;

/// How the server acknowledged an event to the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acked {
    /// No final answer yet.
    Open,
    /// Completed (200); the ledger token of its side effect.
    Completed(u64),
    /// Failed terminally (422).
    Failed,
}

/// What the provider saw, handed over when the server has exited.
pub struct Observed {
    /// Each event's source and how the server acknowledged it.
    pub acked: Vec<(u8, Acked)>,
    /// What was sent and answered.
    pub counters: Counters,
    /// The round trips.
    pub latencies: Latencies,
    /// The crash, if the server was killed.
    pub crash: Option<CrashInfo>,
    /// Requests the last server's endpoint ran (from its stopped line).
    pub last_server_runs: u64,
}

#[derive(Debug, Clone, Copy)]
struct EventState {
    planned: Planned,
    retries: u16,
    fin: Acked,
}

/// A delivery awaiting its answer.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// The event (or the forged delivery's number).
    event: u32,
    kind: Kind,
    /// Which server incarnation it was sent to.
    generation: u32,
}

/// The provider's whole state.
struct Provider<'a> {
    args: &'a DemoArgs,
    sources: &'a [String],
    events: Vec<EventState>,
    schedule: Schedule,
    outstanding: HashMap<u64, Pending>,
    next_id: u64,
    finished: u32,
    next_progress: u32,
    started: Instant,
    c: Counters,
    lat: Latencies,
    crash: Option<CrashInfo>,
    /// When the server is to be killed, once half the events finished.
    kill_at: Option<Instant>,
    server: Option<Server>,
    generation: u32,
    port: u16,
    client: Arc<Client>,
    tx: mpsc::UnboundedSender<Answer>,
    rx: mpsc::UnboundedReceiver<Answer>,
}

/// Plays the provider against a fresh server process until every event is
/// finished (or given up on) and the server has exited.
pub async fn run(args: &DemoArgs, sources: &[String], started: Instant) -> Result<Observed> {
    let server = Server::spawn(args).await?;
    let mut p = Provider::new(args, sources, started, server)?;
    p.drive().await?;
    let runs = match p.server.take() {
        Some(s) => s.shutdown().await?,
        None => 0,
    };
    Ok(Observed {
        acked: p.events.iter().map(|e| (e.planned.source, e.fin)).collect(),
        counters: p.c,
        latencies: p.lat,
        crash: p.crash,
        last_server_runs: runs,
    })
}

impl<'a> Provider<'a> {
    fn new(
        args: &'a DemoArgs,
        sources: &'a [String],
        started: Instant,
        server: Server,
    ) -> Result<Self> {
        let (schedule, planned) = Schedule::plan(args);
        let events =
            planned.into_iter().map(|planned| EventState { planned, retries: 0, fin: Acked::Open });
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Provider {
            args,
            sources,
            events: events.collect(),
            schedule,
            outstanding: HashMap::new(),
            next_id: 1,
            finished: 0,
            next_progress: 1,
            started,
            c: Counters::default(),
            lat: Latencies::default(),
            crash: None,
            kill_at: None,
            port: server.ready.port,
            server: Some(server),
            generation: 0,
            client: Arc::new(Client::new()?),
            tx,
            rx,
        })
    }

    fn source_of(&self, event: u32) -> &'a str {
        &self.sources[self.events[event as usize].planned.source as usize]
    }

    /// The main loop: send within the window, take answers, crash once.
    async fn drive(&mut self) -> Result<()> {
        loop {
            self.fill();
            if self.schedule.is_empty() && self.outstanding.is_empty() {
                return Ok(());
            }
            let mut timeout = self.schedule.next_timer_in().unwrap_or(Duration::from_millis(200));
            if let (Some(at), None) = (self.kill_at, &self.crash) {
                timeout = timeout.min(at.saturating_duration_since(Instant::now()));
            }
            if let Ok(Some(a)) = tokio::time::timeout(timeout, self.rx.recv()).await {
                self.on_answer(&a);
                while let Ok(a) = self.rx.try_recv() {
                    self.on_answer(&a);
                }
            }
            if let Some(s) = self.server.as_mut() {
                s.check_alive()?;
            }
            if !self.args.no_crash && self.crash.is_none() && self.finished >= self.args.events / 2
            {
                // Answers arrive right after the server's group commits, when
                // it holds no claim yet: keep the window full a few ms more
                // (seeded), so the kill lands among claims, side effects and
                // answers in progress.
                let jitter = hash(&[self.args.seed, SALT_KILL]) % KILL_JITTER_US;
                let kill_at = *self.kill_at.get_or_insert_with(|| {
                    Instant::now() + Duration::from_micros(KILL_DELAY_US + jitter)
                });
                if Instant::now() >= kill_at {
                    // Refill and let those requests reach the server, so the
                    // kill also lands among fresh claims.
                    self.fill();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    self.crash_and_restart().await?;
                }
            }
        }
    }

    /// Sends deliveries until the window is full or nothing is due.
    fn fill(&mut self) {
        let now = Instant::now();
        while self.outstanding.len() < self.args.concurrency {
            let Some((event, kind)) = self.schedule.next(now, self.c.deliveries_sent) else {
                break;
            };
            self.send(event, kind);
        }
    }

    fn send(&mut self, event: u32, kind: Kind) {
        let id = self.next_id;
        self.next_id += 1;
        let d = if kind == Kind::Forged {
            self.forged(id, event)
        } else {
            let source = self.source_of(event);
            let evt = event_id(self.args.seed, event);
            let body = event_body(source, &evt);
            Delivery { id, source: source.to_string(), event_id: evt, body, forgery: None }
        };
        self.outstanding.insert(id, Pending { event, kind, generation: self.generation });
        self.c.count_sent(kind);
        let (client, tx, port) = (self.client.clone(), self.tx.clone(), self.port);
        tokio::spawn(async move {
            let _ = tx.send(client.deliver(port, &d).await);
        });
    }

    /// Forged delivery number `f`: a tampered body borrows a genuine event
    /// (its id, source and signature); the others carry ids of their own.
    fn forged(&self, id: u64, f: u32) -> Delivery {
        let forgery = Forgery::of(f);
        let (source, evt) = if forgery == Forgery::TamperedBody {
            let event =
                (hash(&[self.args.seed, u64::from(f)]) % u64::from(self.args.events)) as u32;
            (self.source_of(event).to_string(), event_id(self.args.seed, event))
        } else {
            (
                self.sources[f as usize % self.sources.len()].clone(),
                forged_event_id(self.args.seed, f),
            )
        };
        let body = event_body(&source, &evt);
        Delivery { id, source, event_id: evt, body, forgery: Some(forgery) }
    }

    fn on_answer(&mut self, a: &Answer) {
        let Some(p) = self.outstanding.remove(&a.id) else {
            self.c.unknown_answers += 1;
            return;
        };
        self.lat.record(a);
        self.c.count_answer(a);
        let event = p.event;
        if a.outcome == Outcome::ConnectionError && p.generation < self.generation {
            // Sent to the killed server and never answered: redeliver now.
            if let Some(crash) = self.crash.as_mut() {
                crash.unanswered_resent += 1;
            }
            let kind = if p.kind == Kind::Forged { Kind::Forged } else { Kind::AfterCrash };
            self.schedule.resend([(event, kind)]);
            return;
        }
        if p.kind == Kind::Forged {
            if a.outcome == Outcome::ConnectionError {
                self.schedule.resend([(event, Kind::Forged)]);
            } else {
                self.c.count_forged(a);
            }
            return;
        }
        let src = self.source_of(event);
        let evt = event_id(self.args.seed, event);
        let body = a.body.as_bytes();
        match a.outcome {
            Outcome::Acquired | Outcome::Reconciled => {
                if a.body != completed_response(src, &evt, a.effect_token) {
                    self.c.note_bad_response(src, &evt);
                }
                self.finish(event, Acked::Completed(a.effect_token), src, &evt);
            }
            Outcome::Replayed => match effect_token(body) {
                Some(t) if a.body == completed_response(src, &evt, t) => {
                    self.finish(event, Acked::Completed(t), src, &evt);
                }
                _ => self.c.note_bad_response(src, &evt),
            },
            Outcome::Terminal | Outcome::ReplayedFailure => {
                if a.body == terminal_payload(src, &evt) {
                    self.finish(event, Acked::Failed, src, &evt);
                } else {
                    self.c.note_bad_response(src, &evt);
                }
            }
            Outcome::Retry => self.retry(event, Kind::AfterFailure, 5),
            Outcome::InFlight => self.retry(event, Kind::AfterInFlight, 2),
            Outcome::ConnectionError | Outcome::Rejected | Outcome::Error => {
                let status = a.status.map_or_else(|| "connection".to_string(), |s| s.to_string());
                self.c.note_error(&format!("{status}: {}", a.body));
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
        self.schedule.retry_after(delay, event, kind);
    }

    /// Records how an event ended; the first time, queues its late copies.
    fn finish(&mut self, event: u32, fin: Acked, src: &str, evt: &str) {
        let e = &mut self.events[event as usize];
        if e.fin == Acked::Open {
            e.fin = fin;
            self.finished += 1;
            let copies = e.planned.late_copies;
            self.schedule.queue_late_copies(self.args.seed, event, copies, self.c.deliveries_sent);
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

    /// SIGKILLs the server mid-run and starts another on the same directory
    /// (on a new port); the killed one's unanswered deliveries come back as
    /// connection errors and are resent (`on_answer`).
    async fn crash_and_restart(&mut self) -> Result<()> {
        let at_finished = self.finished;
        let in_flight = self.outstanding.len() as u64;
        let Some(old) = self.server.take() else { return Ok(()) };
        let old_port = old.ready.port;
        let pid = old.kill().await?;
        self.generation += 1;
        let t = Instant::now();
        let new = Server::spawn(self.args).await?;
        let restart = t.elapsed();
        let r = &new.ready;
        let info = CrashInfo {
            killed_pid: pid,
            at_events_finished: at_finished,
            in_flight_at_kill: in_flight,
            unanswered_resent: 0,
            old_port,
            new_port: r.port,
            restart_ms: restart.as_secs_f64() * 1e3,
            journal_entries_replayed: r.journal_entries_replayed,
            journal_bytes_dropped: r.journal_bytes_dropped,
            ledger_lines_found: r.ledger_lines,
            ledger_torn_bytes: r.ledger_torn_bytes,
        };
        eprintln!(
            "  crash: SIGKILL server pid {pid} (port {old_port}) with {in_flight} requests in \
             flight; restarted on port {} in {:.0} ms (journal: {} entries replayed; ledger: {} \
             lines, {} torn bytes cut)",
            r.port,
            info.restart_ms,
            info.journal_entries_replayed,
            info.ledger_lines_found,
            info.ledger_torn_bytes
        );
        self.port = r.port;
        self.crash = Some(info);
        self.server = Some(new);
        Ok(())
    }
}
