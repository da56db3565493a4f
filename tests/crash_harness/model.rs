//! The parent's model: the state of every key as the child's acknowledged
//! lines tell it, with the call a kill may have interrupted.

use std::collections::BTreeMap;

use idemkv::Outcome;

use crate::body;
use crate::common::{crc32, from_hex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum St {
    Absent,
    /// Claimable again (released or failed retryably) after `attempts`.
    Idle {
        attempts: u32,
    },
    /// Held by `token`, claimed by the process or store of `epoch`.
    Held {
        token: u64,
        attempts: u32,
        epoch: u64,
    },
    Finished {
        token: u64,
        outcome: Outcome,
        body: Vec<u8>,
        attempts: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    Claim,
    Done(u64),
    FailT(u64),
    FailR(u64),
    Rel(u64),
    Ext(u64),
    Abandon(u64),
}

/// The epoch of a claim its holder abandoned: never the current one, so
/// the next claim takes it over (recovered), as after a restart.
pub(crate) const ABANDONED: u64 = u64::MAX;

#[derive(Debug, Clone)]
pub(crate) struct KeyModel {
    pub(crate) st: St,
    pub(crate) pending: Option<Intent>,
}

impl Default for KeyModel {
    fn default() -> Self {
        KeyModel { st: St::Absent, pending: None }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) kills: u64,
    pub(crate) kills_before_open: u64,
    pub(crate) kills_in_recovery_window: u64,
    pub(crate) acked: BTreeMap<&'static str, u64>,
    pub(crate) checks: u64,
    pub(crate) interrupted_landed: u64,
    pub(crate) interrupted_not_landed: u64,
    pub(crate) torn_tails: u64,
    pub(crate) bytes_dropped: u64,
}

impl Stats {
    fn ack(&mut self, what: &'static str) {
        *self.acked.entry(what).or_default() += 1;
    }

    pub(crate) fn acked_total(&self) -> u64 {
        self.acked.values().sum()
    }
}

pub(crate) struct Model {
    pub(crate) keys: BTreeMap<String, KeyModel>,
    /// Highest token seen anywhere so far.
    pub(crate) max_token: u64,
    /// Epoch of the current child or parent store (one per process/open).
    pub(crate) epoch: u64,
    pub(crate) stats: Stats,
}

pub(crate) type Check = Result<(), String>;

pub(crate) fn ensure(ok: bool, what: impl FnOnce() -> String) -> Check {
    if ok { Ok(()) } else { Err(what()) }
}

impl Model {
    pub(crate) fn key(&mut self, id: &str) -> &mut KeyModel {
        self.keys.entry(id.to_string()).or_default()
    }

    /// Applies one line of the child (epoch `self.epoch`); `max_before` is
    /// the highest token seen before this child started.
    pub(crate) fn child_line(&mut self, line: &str, max_before: u64) -> Check {
        let w: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("malformed line {line:?}");
        let num = |i: usize| -> Result<u64, String> {
            w.get(i).and_then(|s| s.parse().ok()).ok_or_else(bad)
        };
        let id = w.get(1).copied().unwrap_or_default().to_string();
        let epoch = self.epoch;
        match w.first().copied() {
            Some("BOOT" | "OPEN") => return Ok(()),
            Some("C?") => {
                let k = self.key(&id);
                ensure(k.pending.is_none(), || format!("{id}: intent over {:?}", k.pending))?;
                k.pending = Some(Intent::Claim);
            }
            Some("ACQ") => {
                let (token, attempt, recovered) = (num(2)?, num(3)? as u32, num(4)? == 1);
                self.stats.ack("ACQ");
                self.max_token = self.max_token.max(token);
                let k = self.key(&id);
                ensure(k.pending == Some(Intent::Claim), || format!("{id}: ACQ without C?"))?;
                k.pending = None;
                ensure(token > max_before, || {
                    format!("{id}: token {token} not above {max_before}, seen before this boot")
                })?;
                let (want_attempt, want_recovered) = match &k.st {
                    St::Finished { token: t, .. } => {
                        return Err(format!(
                            "{id}: acquired (token {token}) after its acknowledged finish by {t}"
                        ));
                    }
                    St::Held { epoch: e, token: t, .. } if *e == epoch => {
                        return Err(format!("{id}: acquired while live lease {t} is held"));
                    }
                    St::Held { attempts, token: t, .. } => {
                        ensure(token > *t, || format!("{id}: token {token} <= {t}"))?;
                        (attempts + 1, true)
                    }
                    St::Idle { attempts } => (attempts + 1, false),
                    St::Absent => (1, false),
                };
                ensure(attempt == want_attempt && recovered == want_recovered, || {
                    format!(
                        "{id}: ACQ attempt {attempt} recovered {recovered}, expected \
                         {want_attempt} {want_recovered} from {:?}",
                        k.st
                    )
                })?;
                k.st = St::Held { token, attempts: attempt, epoch };
            }
            Some("REPLAY") => {
                let (token, o, crc) = (num(2)?, w.get(3).copied(), w.get(4).copied());
                let k = self.key(&id);
                ensure(k.pending == Some(Intent::Claim), || format!("{id}: REPLAY without C?"))?;
                k.pending = None;
                let St::Finished { token: t, outcome, body, .. } = &k.st else {
                    return Err(format!(
                        "{id}: replayed token {token} but the model is {:?}",
                        k.st
                    ));
                };
                let want_o = if *outcome == Outcome::Completed { "D" } else { "F" };
                let want_crc = format!("{:08x}", crc32(body));
                ensure(*t == token && o == Some(want_o) && crc == Some(&want_crc[..]), || {
                    format!("{id}: replay {line:?} differs from finish {t} {want_o} {want_crc}")
                })?;
            }
            Some("BUSY") => {
                let k = self.key(&id);
                ensure(k.pending == Some(Intent::Claim), || format!("{id}: BUSY without C?"))?;
                k.pending = None;
                ensure(matches!(k.st, St::Held { epoch: e, .. } if e == epoch), || {
                    format!("{id}: in flight, but the model is {:?} (orphan not taken over?)", k.st)
                })?;
            }
            Some(op @ ("D?" | "FT?" | "FR?" | "R?" | "E?" | "A?")) => {
                let token = num(2)?;
                let intent = match op {
                    "D?" => Intent::Done(token),
                    "FT?" => Intent::FailT(token),
                    "FR?" => Intent::FailR(token),
                    "R?" => Intent::Rel(token),
                    "A?" => Intent::Abandon(token),
                    _ => Intent::Ext(token),
                };
                let k = self.key(&id);
                ensure(k.pending.is_none(), || format!("{id}: intent over {:?}", k.pending))?;
                ensure(
                    matches!(k.st, St::Held { token: t, epoch: e, .. } if t == token && e == epoch),
                    || format!("{id}: {op} {token} but the model is {:?}", k.st),
                )?;
                k.pending = Some(intent);
            }
            Some("ABANDON") => {
                let token = num(2)?;
                let k = self.key(&id);
                ensure(k.pending == Some(Intent::Abandon(token)), || {
                    format!("{id}: ABANDON after {:?}", k.pending)
                })?;
                k.pending = None;
                let St::Held { attempts, .. } = k.st else { unreachable!("checked at the intent") };
                k.st = St::Held { token, attempts, epoch: ABANDONED };
                self.stats.ack("ABANDON");
            }
            Some(op @ ("DONE" | "FAIL_T" | "FAIL_R" | "REL" | "EXT")) => {
                let token = num(2)?;
                let k = self.key(&id);
                let want = match op {
                    "DONE" => Intent::Done(token),
                    "FAIL_T" => Intent::FailT(token),
                    "FAIL_R" => Intent::FailR(token),
                    "REL" => Intent::Rel(token),
                    _ => Intent::Ext(token),
                };
                ensure(k.pending == Some(want), || format!("{id}: {op} after {:?}", k.pending))?;
                k.pending = None;
                let St::Held { attempts, .. } = k.st else { unreachable!("checked at the intent") };
                k.st = match op {
                    "DONE" | "FAIL_T" => {
                        let (kind, outcome) = if op == "DONE" {
                            (b'D', Outcome::Completed)
                        } else {
                            (b'F', Outcome::Failed)
                        };
                        // An empty body prints as nothing after the token.
                        let hex = w.get(3).copied().unwrap_or_default();
                        let got = from_hex(hex).ok_or_else(bad)?;
                        let b = body(&id, token, kind);
                        ensure(got == b, || format!("{id}: {op} printed another body"))?;
                        St::Finished { token, outcome, body: b, attempts }
                    }
                    "FAIL_R" | "REL" => St::Idle { attempts },
                    _ => k.st.clone(),
                };
                self.stats.ack(match op {
                    "DONE" => "DONE",
                    "FAIL_T" => "FAIL_T",
                    "FAIL_R" => "FAIL_R",
                    "REL" => "REL",
                    _ => "EXT",
                });
            }
            _ => return Err(bad()),
        }
        Ok(())
    }
}
