//! The parent side: spawning this test binary as a child, reading its acks,
//! killing it; and the lock that serializes such tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use super::child::{CHILD_DIR_ENV, CHILD_MODE_ENV, parse_ack};
use super::{Ack, TestResult};

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
