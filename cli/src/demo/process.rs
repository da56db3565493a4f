//! Supervision of the server child process: spawning `idemkv demo-server`
//! and waiting for its JSON ready line (which names its port), noticing an
//! unexpected exit, the SIGKILL, and the orderly shutdown (close its stdin,
//! read its stopped line, reap it).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use super::DemoArgs;
use super::protocol::{Ready, ServerMsg};
use super::signing::{SECRET, SECRET_ENV};

/// How long to wait for a (re)started server to report ready, and for a
/// server to stop once its stdin is closed.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Share of side-effect attempts that fail retryably, and of events that fail terminally.
const RETRY_RATE: f64 = 0.03;
const TERMINAL_RATE: f64 = 0.01;

/// The running server process.
pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<Result<ServerMsg, String>>,
    /// What its ready line said.
    pub ready: Ready,
}

impl Server {
    /// Starts a server process on the demo directory and waits until it listens.
    pub async fn spawn(args: &DemoArgs) -> Result<Server> {
        let exe = std::env::current_exe().context("locating the idemkv executable")?;
        let mut child = Command::new(exe)
            .arg("demo-server")
            .args(args.audit.then_some("--audit"))
            .arg("--path")
            .arg(&args.path)
            .args(["--seed", &args.seed.to_string()])
            .args(["--sources", &args.sources.to_string()])
            .args(["--workers", &args.workers.to_string()])
            .args(["--retry-rate", &RETRY_RATE.to_string()])
            .args(["--terminal-rate", &TERMINAL_RATE.to_string()])
            .env(SECRET_ENV, SECRET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the server process")?;
        let stdin = child.stdin.take().context("server stdin")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let (tx, mut lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let msg = serde_json::from_str::<ServerMsg>(&line)
                    .map_err(|e| format!("{e} in {line:?}"));
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        let ready = match tokio::time::timeout(READY_TIMEOUT, lines.recv()).await {
            Ok(Some(Ok(ServerMsg::Ready(ready)))) => ready,
            other => {
                let _ = child.start_kill();
                let status = child.wait().await.ok();
                bail!(
                    "the server process did not start ({}; {})",
                    match other {
                        Ok(Some(Ok(m))) => format!("first line {m:?}"),
                        Ok(Some(Err(e))) => format!("bad first line: {e}"),
                        Ok(None) => "no ready line".to_string(),
                        Err(_) => format!("no ready line within {READY_TIMEOUT:?}"),
                    },
                    status.map_or_else(|| "still running".to_string(), |s| s.to_string())
                );
            }
        };
        Ok(Server { child, stdin: Some(stdin), lines, ready })
    }

    /// Fails if the process has exited on its own.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait().context("checking the server process")? {
            Some(status) => bail!("the server process exited unexpectedly ({status})"),
            None => Ok(()),
        }
    }

    /// SIGKILLs the process and reaps it; returns its pid.
    pub async fn kill(mut self) -> Result<u32> {
        let pid = self.ready.pid;
        self.child.start_kill().context("killing the server")?;
        self.child.wait().await.context("reaping the killed server")?;
        Ok(pid)
    }

    /// Closes its stdin and waits for it to drain, close the store and
    /// exit; returns the number of requests its endpoint ran.
    pub async fn shutdown(mut self) -> Result<u64> {
        drop(self.stdin.take());
        let status = tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .with_context(|| format!("the server did not stop within {STOP_TIMEOUT:?}"))?
            .context("waiting for the server")?;
        if !status.success() {
            bail!("the server process failed ({status})");
        }
        let mut runs = None;
        // The reader ends at the closed pipe, so this ends too.
        while let Ok(Some(line)) = tokio::time::timeout(STOP_TIMEOUT, self.lines.recv()).await {
            match line {
                Ok(ServerMsg::Stopped { handler_runs }) => runs = Some(handler_runs),
                Ok(other) => bail!("unexpected line from the server: {other:?}"),
                Err(e) => bail!("bad line from the server: {e}"),
            }
        }
        runs.context("the server exited without its stopped line")
    }
}
