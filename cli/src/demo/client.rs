//! The provider's HTTP side: each delivery signed (Standard Webhooks
//! headers) and POSTed to the server with `reqwest` (no TLS: 127.0.0.1
//! only), its answer read into an [`Answer`]. Forged deliveries carry a
//! bad signature of one of four kinds.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::answer::Answer;
use super::events::route;
use super::signing::{SECRET, Signer, TOLERANCE, WRONG_SECRET, now_secs};

/// A request that takes longer than this is abandoned (never expected: it
/// would drop the connection, and with it the handler mid-way).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How a forged delivery is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Signed with another secret.
    WrongSecret,
    /// A genuine event's signature over a body changed afterwards.
    TamperedBody,
    /// Signed with the right secret, ten minutes ago (a replayed capture).
    StaleTimestamp,
    /// No `webhook-signature` header at all.
    Unsigned,
}

impl Forgery {
    /// The kind of forged delivery number `index` (the four kinds in turn).
    pub fn of(index: u32) -> Forgery {
        [Forgery::WrongSecret, Forgery::TamperedBody, Forgery::StaleTimestamp, Forgery::Unsigned]
            [index as usize % 4]
    }
}

/// One delivery to send.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Unique per send (a resend gets a new id).
    pub id: u64,
    /// The namespace, and so the route.
    pub source: String,
    /// The `webhook-id`: the event id.
    pub event_id: String,
    /// The body.
    pub body: String,
    /// `Some` for a deliberately bad signature.
    pub forgery: Option<Forgery>,
}

/// Sends deliveries; cheap to share (`Arc`).
pub struct Client {
    http: reqwest::Client,
    signer: Signer,
    forger: Signer,
}

impl Client {
    /// A client that signs with the demo's secret.
    pub fn new() -> Result<Client> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(Client { http, signer: Signer::new(SECRET)?, forger: Signer::new(WRONG_SECRET)? })
    }

    /// POSTs `d` to the server on `port` and reads the answer; never fails
    /// (a failed connection is an answer too).
    pub async fn deliver(&self, port: u16, d: &Delivery) -> Answer {
        let url = format!("http://127.0.0.1:{port}{}", route(&d.source));
        let now = now_secs();
        let (signer, ts, body) = match d.forgery {
            None | Some(Forgery::Unsigned) => (&self.signer, now, d.body.clone()),
            Some(Forgery::WrongSecret) => (&self.forger, now, d.body.clone()),
            Some(Forgery::TamperedBody) => (&self.signer, now, tamper(&d.body)),
            Some(Forgery::StaleTimestamp) => {
                (&self.signer, now - 2 * TOLERANCE.as_secs(), d.body.clone())
            }
        };
        // A tampered body keeps the signature of the genuine one.
        let signature = signer.sign(&d.event_id, ts, d.body.as_bytes());
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.event_id)
            .header("webhook-timestamp", ts.to_string());
        if d.forgery != Some(Forgery::Unsigned) {
            req = req.header("webhook-signature", signature);
        }
        let t = Instant::now();
        let result = match req.body(body).send().await {
            Ok(resp) => {
                let (status, headers) = (resp.status(), resp.headers().clone());
                resp.bytes().await.map(|b| (status, headers, b))
            }
            Err(e) => Err(e),
        };
        let rtt = t.elapsed().as_nanos().try_into().unwrap_or(u64::MAX);
        match result {
            Ok((status, headers, body)) => Answer::classify(d.id, status, &headers, &body, rtt),
            Err(e) => Answer::connection_error(d.id, error_chain(&e), rtt),
        }
    }
}

/// The body with its amount changed: what an attacker would do.
fn tamper(body: &str) -> String {
    body.replacen("\"amount\":", "\"amount\":9", 1)
}

/// An error with its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
