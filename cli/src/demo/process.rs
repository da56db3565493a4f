//! Supervision of the handler child process: spawning `idemkv demo-handler`
//! and waiting for its ready line, the thread that reads its answers, writing
//! deliveries to its stdin, the SIGKILL, and the orderly shutdown.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::DemoArgs;
use super::protocol::Answer;

/// How long to wait for a (re)started handler to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Share of side-effect attempts that fail retryably, and of events that fail terminally.
const RETRY_RATE: f64 = 0.03;
const TERMINAL_RATE: f64 = 0.01;

/// One line read from the handler's stdout.
pub enum Msg {
    /// A well-formed answer.
    Answer(Answer),
    /// A line that does not parse, with the reason.
    Bad(String),
}

/// The running handler process and its answer stream.
pub struct Handler {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    answers: Receiver<Msg>,
    reader: JoinHandle<()>,
    ready: HashMap<String, u64>,
}

impl Handler {
    /// Starts a handler process and waits for its ready line.
    pub fn spawn(args: &DemoArgs) -> Result<Handler> {
        let exe = std::env::current_exe().context("locating the idemkv executable")?;
        let mut child = Command::new(exe)
            .arg("demo-handler")
            .args(args.audit.then_some("--audit"))
            .arg("--path")
            .arg(&args.path)
            .args(["--seed", &args.seed.to_string()])
            .args(["--sources", &args.sources.to_string()])
            .args(["--workers", &args.workers.to_string()])
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

    /// A number from the ready line (`journal_entries_replayed`, …), 0 if absent.
    pub fn ready(&self, key: &str) -> u64 {
        self.ready.get(key).copied().unwrap_or(0)
    }

    /// Buffers one delivery line.
    pub fn write(&mut self, line: &str) -> Result<()> {
        self.stdin.write_all(line.as_bytes()).context("sending a delivery to the handler")
    }

    /// Sends the buffered deliveries.
    pub fn flush(&mut self) -> Result<()> {
        self.stdin.flush().context("sending deliveries to the handler")
    }

    /// The next answer line, or `None` after `timeout`; an error if the
    /// handler is gone.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Msg>> {
        match self.answers.recv_timeout(timeout) {
            Ok(m) => Ok(Some(m)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait()?;
                bail!("the handler process exited unexpectedly ({status})");
            }
        }
    }

    /// An answer line already read, if any.
    pub fn try_recv(&self) -> Option<Msg> {
        self.answers.try_recv().ok()
    }

    /// SIGKILLs the process and reaps it; returns its pid and the answers it
    /// wrote before dying.
    pub fn kill(mut self) -> Result<(u32, Receiver<Msg>)> {
        let pid = self.child.id();
        self.child.kill().context("killing the handler")?;
        let _ = self.child.wait();
        drop(self.stdin);
        let _ = self.reader.join();
        Ok((pid, self.answers))
    }

    /// Closes stdin and waits for the process to drain and exit; returns its
    /// exit status and its last answers.
    pub fn shutdown(mut self) -> Result<(ExitStatus, Receiver<Msg>)> {
        self.stdin.flush()?;
        drop(self.stdin);
        let status = self.child.wait().context("waiting for the handler")?;
        let _ = self.reader.join();
        Ok((status, self.answers))
    }
}
