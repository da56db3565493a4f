//! The webhook provider: sends the schedule's deliveries to the handler
//! within a window, checks each answer against the event's known outcome,
//! resends with backoff, and SIGKILLs and restarts the handler half-way.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::DemoArgs;
use super::process::{Handler, Msg};
use super::protocol::{
    Answer, Outcome, completed_response, effect_token, event_body, event_id, terminal_payload,
};
use super::report::CrashInfo;
use super::schedule::{Kind, Planned, Schedule};
use super::tally::{Counters, Latencies};

/// Resends of one event after which the provider gives up on it.
const MAX_RETRIES: u16 = 30;

/// How the handler acknowledged an event to the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acked {
    /// No final answer yet.
    Open,
    /// Completed; the ledger token of its side effect.
    Completed(u64),
    /// Failed terminally.
    Failed,
}

/// What the provider saw, handed over when the handler has exited.
pub struct Observed {
    /// Each event's source and how the handler acknowledged it.
    pub acked: Vec<(u8, Acked)>,
    /// What was sent and answered.
    pub counters: Counters,
    /// The handler's timings.
    pub latencies: Latencies,
    /// The crash, if the handler was killed.
    pub crash: Option<CrashInfo>,
}

#[derive(Debug, Clone, Copy)]
struct EventState {
    planned: Planned,
    retries: u16,
    fin: Acked,
}

/// The provider's whole state.
struct Provider<'a> {
    args: &'a DemoArgs,
    sources: &'a [String],
    events: Vec<EventState>,
    schedule: Schedule,
    outstanding: HashMap<u64, (u32, Kind)>,
    window: usize,
    next_id: u64,
    finished: u32,
    next_progress: u32,
    started: Instant,
    c: Counters,
    lat: Latencies,
    crash: Option<CrashInfo>,
    handler: Option<Handler>,
}

/// Plays the provider against a fresh handler process until every event is
/// finished (or given up on) and the handler has exited.
pub fn run(args: &DemoArgs, sources: &[String], started: Instant) -> Result<Observed> {
    let mut p = Provider::new(args, sources, started);
    p.handler = Some(Handler::spawn(args)?);
    p.drive()?;
    p.shutdown()?;
    Ok(Observed {
        acked: p.events.iter().map(|e| (e.planned.source, e.fin)).collect(),
        counters: p.c,
        latencies: p.lat,
        crash: p.crash,
    })
}

impl<'a> Provider<'a> {
    fn new(args: &'a DemoArgs, sources: &'a [String], started: Instant) -> Self {
        let (schedule, planned) = Schedule::plan(args);
        let events =
            planned.into_iter().map(|planned| EventState { planned, retries: 0, fin: Acked::Open });
        Provider {
            window: (args.workers * 8).max(64),
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
            handler: None,
        }
    }

    fn handler(&mut self) -> &mut Handler {
        self.handler.as_mut().expect("handler running")
    }

    fn source_of(&self, event: u32) -> &'a str {
        &self.sources[self.events[event as usize].planned.source as usize]
    }

    /// The main loop: send within the window, take answers, crash once.
    fn drive(&mut self) -> Result<()> {
        loop {
            self.fill()?;
            if self.schedule.is_empty() && self.outstanding.is_empty() {
                return Ok(());
            }
            let timeout = self.schedule.next_timer_in().unwrap_or(Duration::from_millis(200));
            if let Some(m) = self.handler().recv_timeout(timeout)? {
                self.on_msg(m)?;
                while let Some(m) = self.handler().try_recv() {
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

    /// Sends deliveries until the window is full or nothing is due.
    fn fill(&mut self) -> Result<()> {
        let now = Instant::now();
        let mut wrote = false;
        while self.outstanding.len() < self.window {
            let Some((event, kind)) = self.schedule.next(now, self.c.deliveries_sent) else {
                break;
            };
            self.send(event, kind)?;
            wrote = true;
        }
        if wrote {
            self.handler().flush()?;
        }
        Ok(())
    }

    fn send(&mut self, event: u32, kind: Kind) -> Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        let source = self.source_of(event);
        let evt = event_id(self.args.seed, event);
        self.handler().write(&format!("D {id} {source} {evt} {}\n", event_body(source, &evt)))?;
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
        let src = self.source_of(event);
        let evt = event_id(self.args.seed, event);
        match a.outcome {
            Outcome::Acquired | Outcome::Reconciled => {
                if a.response != completed_response(src, &evt, a.effect_token) {
                    self.c.note_bad_response(src, &evt);
                }
                self.finish(event, Acked::Completed(a.effect_token), src, &evt);
            }
            Outcome::Terminal => self.finish(event, Acked::Failed, src, &evt),
            Outcome::Replayed => match effect_token(&a.response) {
                Some(t) if a.response == completed_response(src, &evt, t) => {
                    self.finish(event, Acked::Completed(t), src, &evt);
                }
                _ => self.c.note_bad_response(src, &evt),
            },
            Outcome::ReplayedFailure => {
                if a.response == terminal_payload(src, &evt) {
                    self.finish(event, Acked::Failed, src, &evt);
                } else {
                    self.c.note_bad_response(src, &evt);
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

    /// SIGKILLs the handler mid-run, collects the answers that made it out,
    /// restarts it on the same store and resends what went unanswered.
    fn crash_and_restart(&mut self) -> Result<()> {
        let at_finished = self.finished;
        let (pid, answers) = self.handler.take().expect("handler running").kill()?;
        // Answers already in the pipe were sent before the kill: take them.
        while let Ok(m) = answers.try_recv() {
            self.on_msg(m)?;
        }
        let mut lost: Vec<(u64, (u32, Kind))> = self.outstanding.drain().collect();
        lost.sort_unstable_by_key(|(id, _)| *id);
        let unanswered = lost.len() as u64;
        self.schedule.resend(lost.into_iter().map(|(_, (event, _))| (event, Kind::AfterCrash)));
        let t = Instant::now();
        let new = Handler::spawn(self.args)?;
        let restart = t.elapsed();
        let info = CrashInfo {
            killed_pid: pid,
            at_events_finished: at_finished,
            unanswered_resent: unanswered,
            restart_ms: restart.as_secs_f64() * 1e3,
            journal_entries_replayed: new.ready("journal_entries_replayed"),
            journal_bytes_dropped: new.ready("journal_bytes_dropped"),
            ledger_lines_found: new.ready("ledger_lines"),
            ledger_torn_bytes: new.ready("ledger_torn_bytes"),
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
        let Some(h) = self.handler.take() else {
            return Ok(());
        };
        let (status, answers) = h.shutdown()?;
        while let Ok(m) = answers.try_recv() {
            self.on_msg(m)?;
        }
        if !status.success() {
            bail!("the handler process failed ({status})");
        }
        Ok(())
    }
}
