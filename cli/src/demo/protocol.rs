//! The line protocol between the demo provider and the handler process, and
//! the demo's deterministic events, responses and failure payloads.
//!
//! Provider → handler (stdin), one line per delivery:
//! `D <delivery-id> <source> <event-id> <body…>`.
//! Handler → provider (stdout): one `H key=value…` line when ready, then one
//! line per answer:
//! `A <delivery-id> <outcome> <recovered> <waited> <claim-ns> <wait-ns> <effect-token> <response…>`.

use anyhow::{Context, Result, anyhow, bail};

use super::rng::mix;

/// Well-known webhook senders used as namespaces; more become `source<N>`.
const SOURCES: [&str; 8] =
    ["stripe", "github", "shopify", "paddle", "twilio", "slack", "square", "paypal"];

/// The namespace of source number `i`.
pub fn source_name(i: usize) -> String {
    SOURCES.get(i).map_or_else(|| format!("source{i}"), |s| (*s).to_string())
}

/// The sender's event id of event number `index` (unique: `mix` is a bijection).
pub fn event_id(seed: u64, index: u32) -> String {
    format!("evt_{:016x}", mix(mix(seed).wrapping_add(u64::from(index))))
}

/// The webhook body of an event (what the handler fingerprints).
pub fn event_body(source: &str, event_id: &str) -> String {
    let h = mix(super::rng::hash_bytes(event_id.as_bytes()));
    let kind = match source {
        "stripe" => ["charge.succeeded", "invoice.paid", "customer.created"][(h % 3) as usize],
        "github" => ["push", "pull_request", "issues"][(h % 3) as usize],
        "shopify" => ["orders/create", "orders/paid", "refunds/create"][(h % 3) as usize],
        _ => "event.created",
    };
    format!(
        r#"{{"id":"{event_id}","source":"{source}","type":"{kind}","amount":{}}}"#,
        (h >> 8) % 100_000
    )
}

/// The response a completed event replays: names the ledger token of the one
/// side effect, so the provider can match it against the ledger.
pub fn completed_response(source: &str, event_id: &str, effect_token: u64) -> String {
    format!("200 OK {source}/{event_id} effect={effect_token}")
}

/// The effect token named in a completed response.
pub fn effect_token(response: &str) -> Option<u64> {
    response.rsplit_once("effect=")?.1.parse().ok()
}

/// The payload stored for a terminally failed event.
pub fn terminal_payload(source: &str, event_id: &str) -> String {
    format!("422 rejected {source}/{event_id}: amount over the account limit")
}

/// One webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Unique per send (a resend gets a new id).
    pub id: u64,
    /// The namespace.
    pub source: String,
    /// The sender's event id.
    pub event_id: String,
    /// The request body.
    pub body: String,
}

impl Delivery {
    /// Parses a `D …` line.
    pub fn parse(line: &str) -> Result<Delivery> {
        let mut it = line.splitn(5, ' ');
        let (Some("D"), Some(id), Some(source), Some(event_id), Some(body)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            bail!("malformed delivery line {line:?}");
        };
        Ok(Delivery {
            id: id.parse().context("delivery id")?,
            source: source.to_string(),
            event_id: event_id.to_string(),
            body: body.to_string(),
        })
    }
}

/// What the handler did with one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Acquired the key, ran the side effect, completed.
    Acquired,
    /// Acquired an orphaned claim whose side effect the ledger already holds:
    /// completed without running it again.
    Reconciled,
    /// The side effect failed retryably (`Failure::Retryable`).
    Retry,
    /// The side effect failed terminally (`Failure::Terminal`).
    Terminal,
    /// A duplicate: the stored response was replayed.
    Replayed,
    /// A duplicate: the stored terminal failure was replayed.
    ReplayedFailure,
    /// A duplicate while another delivery holds the key.
    InFlight,
    /// The key was claimed with another fingerprint.
    Mismatch,
    /// A store or ledger error; the response field holds the message.
    Error,
}

/// Every outcome with its wire name.
const OUTCOMES: &[(Outcome, &str)] = &[
    (Outcome::Acquired, "acquired"),
    (Outcome::Reconciled, "reconciled"),
    (Outcome::Retry, "retry"),
    (Outcome::Terminal, "terminal"),
    (Outcome::Replayed, "replayed"),
    (Outcome::ReplayedFailure, "replayed-failure"),
    (Outcome::InFlight, "inflight"),
    (Outcome::Mismatch, "mismatch"),
    (Outcome::Error, "error"),
];

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        OUTCOMES.iter().find(|(o, _)| *o == self).map_or("error", |(_, s)| s)
    }

    fn parse(s: &str) -> Result<Outcome> {
        OUTCOMES
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(o, _)| *o)
            .ok_or_else(|| anyhow!("unknown outcome {s:?}"))
    }
}

/// The handler's answer to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The delivery answered.
    pub id: u64,
    /// What happened.
    pub outcome: Outcome,
    /// The acquired lease was `recovered()` (an orphan of a dead attempt).
    pub recovered: bool,
    /// The handler called `Store::wait` on an in-flight key.
    pub waited: bool,
    /// Duration of the first `claim` call, ns.
    pub claim_ns: u64,
    /// Duration of the `wait` call, ns (0 if none).
    pub wait_ns: u64,
    /// Ledger token of the side effect (acquired / reconciled), else 0.
    pub effect_token: u64,
    /// The response or payload returned to the sender (single line).
    pub response: String,
}

impl Answer {
    /// An answer to delivery `id` with everything else empty.
    pub fn new(id: u64, outcome: Outcome) -> Answer {
        Answer {
            id,
            outcome,
            recovered: false,
            waited: false,
            claim_ns: 0,
            wait_ns: 0,
            effect_token: 0,
            response: String::new(),
        }
    }

    /// The `A …` line, with its newline.
    pub fn to_line(&self) -> String {
        let response: String =
            self.response.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect();
        format!(
            "A {} {} {} {} {} {} {} {}\n",
            self.id,
            self.outcome.as_str(),
            u8::from(self.recovered),
            u8::from(self.waited),
            self.claim_ns,
            self.wait_ns,
            self.effect_token,
            response
        )
    }

    /// Parses an `A …` line.
    pub fn parse(line: &str) -> Result<Answer> {
        let f: Vec<&str> = line.splitn(9, ' ').collect();
        if f.len() != 9 || f[0] != "A" {
            bail!("malformed answer line {line:?}");
        }
        Ok(Answer {
            id: f[1].parse().context("answer id")?,
            outcome: Outcome::parse(f[2])?,
            recovered: f[3] == "1",
            waited: f[4] == "1",
            claim_ns: f[5].parse().context("claim ns")?,
            wait_ns: f[6].parse().context("wait ns")?,
            effect_token: f[7].parse().context("effect token")?,
            response: f[8].to_string(),
        })
    }
}
