//! What the server process tells the demo (JSON Lines on its stdout, via
//! serde), and the response headers its endpoint adds to first-run answers.
//!
//! The demo talks to the server over HTTP only; the server's stdout carries
//! one [`ServerMsg::Ready`] line once it listens and one
//! [`ServerMsg::Stopped`] line after an orderly shutdown (stdin closed).

use serde::{Deserialize, Serialize};

/// Response header: what the endpoint did (`executed`, `reconciled`,
/// `retry`, `terminal`). Not in the layer's replay allow-list, so a replayed
/// answer never carries it: only the attempt that ran does.
pub const OUTCOME_HEADER: &str = "x-demo-outcome";
/// Response header: `true` when the attempt was `recovered()` (an earlier
/// attempt at the key was orphaned).
pub const RECOVERED_HEADER: &str = "x-demo-recovered";
/// Response header: the attempt number (`IdempotentRequest::attempt`).
pub const ATTEMPT_HEADER: &str = "x-demo-attempt";

/// One line of the server's stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Listening; what opening the store and the ledger found.
    Ready(Ready),
    /// Shut down in order: the store is closed.
    Stopped {
        /// Requests the endpoint ran (past the signature and idempotency layers).
        handler_runs: u64,
    },
}

/// The ready line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// The server's pid.
    pub pid: u32,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Journal entries the store replayed when it opened.
    pub journal_entries_replayed: u64,
    /// Bytes cut at a torn journal tail.
    pub journal_bytes_dropped: u64,
    /// Ledger lines found.
    pub ledger_lines: u64,
    /// Bytes of a torn last ledger line that were cut.
    pub ledger_torn_bytes: u64,
}

impl ServerMsg {
    /// The JSON line, with its newline.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("plain enum serializes");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let ready = ServerMsg::Ready(Ready {
            pid: 7,
            port: 8080,
            journal_entries_replayed: 3,
            journal_bytes_dropped: 0,
            ledger_lines: 2,
            ledger_torn_bytes: 1,
        });
        for m in [ready, ServerMsg::Stopped { handler_runs: 5 }] {
            let line = m.to_line();
            assert!(line.ends_with('\n') && line.starts_with("{\"type\":"), "{line}");
            assert_eq!(serde_json::from_str::<ServerMsg>(&line).unwrap(), m);
        }
    }
}
