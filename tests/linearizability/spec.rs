//! The sequential specification of one key: the per-key rules of
//! `tests/model_support`, on real fencing tokens.

use crate::history::{GotRes, GotState, LinOp, LinRes, ReplayRes};
use crate::model_support::rules::{self, ClaimArgs, ClaimOut, End, Rec, Stale, StateView};
use crate::{LEASE, RETENTION};

/// The model state of one key: its record (lease ids are real tokens) and
/// the highest token acquired so far, since tokens strictly increase.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct KeyState {
    pub(crate) rec: Option<Rec>,
    pub(crate) max_token: u64,
}

const NOW: u64 = 0;
const BOOT: u64 = 1;

fn replay_res(r: &rules::ReplayView) -> ReplayRes {
    ReplayRes { failed: r.failed, body: r.body.clone(), attempts: r.attempts, token: r.id }
}

/// Applies `op` to `s`: the model's answer and the next state. `token` is
/// the fencing token drawn if the call acquires.
pub(crate) fn apply(s: &KeyState, op: &LinOp, token: u64) -> (LinRes, KeyState) {
    let mut next = s.clone();
    let res = match op {
        LinOp::Claim { fp } | LinOp::Wait { fp, .. } => {
            let args = ClaimArgs {
                now: NOW,
                boot: BOOT,
                fp: *fp,
                lease: LEASE.as_millis() as u64,
                retention: RETENTION.as_millis() as u64,
            };
            match rules::claim(&mut next.rec, &args, token) {
                ClaimOut::Acquired { id, attempt, recovered, .. } => {
                    next.max_token = next.max_token.max(id);
                    LinRes::Acquired { token: id, attempt, recovered }
                }
                ClaimOut::Replay(r) => LinRes::Replay(replay_res(&r)),
                ClaimOut::InFlight { attempt, .. } => LinRes::InFlight { attempt },
                ClaimOut::Mismatch { stored } => LinRes::Mismatch { stored },
            }
        }
        LinOp::Complete { token, body } => {
            end_res(rules::end(&mut next.rec, *token, NOW, End::Complete(body.clone())))
        }
        LinOp::FailTerminal { token, body } => {
            end_res(rules::end(&mut next.rec, *token, NOW, End::FailTerminal(body.clone())))
        }
        LinOp::FailRetryable { token } => {
            end_res(rules::end(&mut next.rec, *token, NOW, End::FailRetryable))
        }
        LinOp::Release { token } => end_res(rules::end(&mut next.rec, *token, NOW, End::Release)),
        LinOp::Abandon { token, .. } => {
            // Effective only for the holder; silent either way.
            rules::abandon(&mut next.rec, *token, NOW);
            LinRes::Ok
        }
        LinOp::Get => LinRes::Got(rules::view(&next.rec, NOW, BOOT).map(|e| GotRes {
            attempts: e.attempts,
            fp: e.fp,
            state: match e.state {
                StateView::InProgress { id, orphaned, .. } => {
                    GotState::InProgress { token: id, orphaned }
                }
                StateView::Finished(r) => GotState::Finished(replay_res(&r)),
                StateView::Claimable { retryable, .. } => GotState::Claimable { retryable },
            },
        })),
        LinOp::Remove => LinRes::Removed(next.rec.take().is_some()),
    };
    (res, next)
}

/// Applies `op` to `s`; returns the next state if the model's answer is
/// `res`, `None` if this order cannot explain `res`.
pub(crate) fn step(s: &KeyState, op: &LinOp, res: &LinRes) -> Option<KeyState> {
    // The model cannot draw the token: it takes the observed one, which must
    // exceed every earlier token of the key (tokens strictly increase).
    let token = match res {
        LinRes::Acquired { token, .. } if *token > s.max_token => *token,
        LinRes::Acquired { .. } => return None,
        _ => 0,
    };
    // Only a holder abandons, so never before its token was drawn. (An
    // abandon answers nothing: without this rule one placed before its
    // acquisition would be a silent no-op there, and the checker, which
    // commits no-ops without trying alternatives, could miss its effect.)
    if let LinOp::Abandon { token, .. } = op
        && *token > s.max_token
    {
        return None;
    }
    let (out, next) = apply(s, op, token);
    (out == *res).then_some(next)
}

fn end_res(r: Result<(), Stale>) -> LinRes {
    match r {
        Ok(()) => LinRes::Ok,
        Err(s) => LinRes::Stale(s),
    }
}
