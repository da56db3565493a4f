//! The self-exec child protocol: the ack lines a child prints and the parent
//! reads, and what the crash-test children store.

use std::io::Write;
use std::time::Duration;

use idemkv::{Config, Durability, Policy};

use super::Rng;

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

pub(super) fn parse_ack(line: &str) -> Option<Ack> {
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
