//! The demo's deterministic webhook events: sources (namespaces), event ids,
//! bodies, and the JSON answers the endpoint gives for them — a completion
//! naming the ledger token of its one side effect, a terminal rejection —
//! so both the provider and the crosscheck can tell the right answer from a
//! wrong one byte for byte.

use serde::{Deserialize, Serialize};

use super::rng::{hash_bytes, mix};

/// Well-known webhook senders used as namespaces; more become `source<N>`.
const SOURCES: [&str; 8] =
    ["stripe", "github", "shopify", "paddle", "twilio", "slack", "square", "paypal"];

/// The namespace of source number `i`.
pub fn source_name(i: usize) -> String {
    SOURCES.get(i).map_or_else(|| format!("source{i}"), |s| (*s).to_string())
}

/// The endpoint of a source: `POST /webhooks/{source}`.
pub fn route(source: &str) -> String {
    format!("/webhooks/{source}")
}

/// The sender's event id of event number `index` (unique: `mix` is a
/// bijection); also the delivery's `webhook-id`, stable across resends.
pub fn event_id(seed: u64, index: u32) -> String {
    format!("evt_{:016x}", mix(mix(seed).wrapping_add(u64::from(index))))
}

/// The id of forged delivery number `index`: never one of [`event_id`]'s
/// (those are 16 hex digits), so any trace of it in the store or the
/// ledger means a bad signature got through.
pub fn forged_event_id(seed: u64, index: u32) -> String {
    format!("evt_forged_{:08x}_{index}", mix(seed) as u32)
}

/// A webhook event as sent (the JSON body the endpoint reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The sender's event id.
    pub id: String,
    /// The namespace.
    pub source: String,
    /// The event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// An amount, in cents.
    pub amount: u64,
}

/// The event with this id from this source.
pub fn event(source: &str, event_id: &str) -> Event {
    let h = mix(hash_bytes(event_id.as_bytes()));
    let kind = match source {
        "stripe" => ["charge.succeeded", "invoice.paid", "customer.created"][(h % 3) as usize],
        "github" => ["push", "pull_request", "issues"][(h % 3) as usize],
        "shopify" => ["orders/create", "orders/paid", "refunds/create"][(h % 3) as usize],
        _ => "event.created",
    };
    Event {
        id: event_id.to_string(),
        source: source.to_string(),
        kind: kind.to_string(),
        amount: (h >> 8) % 100_000,
    }
}

/// The webhook body of an event (what the layer fingerprints and the
/// signature covers).
pub fn event_body(source: &str, event_id: &str) -> String {
    to_json(&event(source, event_id))
}

/// The body of a 200 answer: names the ledger token of the one side effect,
/// so the provider can match it against the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processed {
    /// The namespace.
    pub source: String,
    /// The event id.
    pub event_id: String,
    /// The ledger token of the side effect.
    pub effect: u64,
}

/// The body of a completed event's answer, replayed to every duplicate.
pub fn completed_response(source: &str, event_id: &str, effect_token: u64) -> String {
    to_json(&Processed {
        source: source.to_string(),
        event_id: event_id.to_string(),
        effect: effect_token,
    })
}

/// The effect token named in a completed answer's body.
pub fn effect_token(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Processed>(body).ok().map(|p| p.effect)
}

/// The body of an error answer of the endpoint (422 terminal, 503 retry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// A stable code.
    pub error: String,
    /// For humans.
    pub message: String,
}

/// The body stored and replayed for a terminally failed event (422).
pub fn terminal_payload(source: &str, event_id: &str) -> String {
    to_json(&Rejection {
        error: "amount_over_limit".to_string(),
        message: format!("rejected {source}/{event_id}: amount over the account limit"),
    })
}

/// The body of a retryable failure (503): nothing happened, send it again.
pub fn retry_payload() -> String {
    to_json(&Rejection {
        error: "downstream_unavailable".to_string(),
        message: "the downstream service is unavailable; nothing was done, retry later".to_string(),
    })
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain structs serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_and_ids_never_meet() {
        let body = completed_response("stripe", "evt_1", 42);
        assert_eq!(effect_token(body.as_bytes()), Some(42));
        assert_eq!(effect_token(terminal_payload("stripe", "evt_1").as_bytes()), None);
        let e: Event = serde_json::from_str(&event_body("github", "evt_2")).unwrap();
        assert_eq!((e.id.as_str(), e.source.as_str()), ("evt_2", "github"));
        assert_ne!(forged_event_id(1, 0).len(), event_id(1, 0).len());
        assert_eq!(route("stripe"), "/webhooks/stripe");
    }
}
