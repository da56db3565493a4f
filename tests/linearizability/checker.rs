//! The linearizability checker (Wing & Gong / Lowe search) and the direct
//! check of one holder per lease epoch.

use std::collections::HashSet;

use crate::SEARCH_BUDGET;
use crate::history::{Event, LinOp, LinRes};
use crate::spec::{KeyState, step};

/// What the checker concluded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Linearizable,
    /// No order explains the history; the longest linearizable prefix found.
    Violation {
        longest_prefix: Vec<usize>,
    },
    /// The search budget ran out.
    Inconclusive,
}

/// Is `history` (the calls on one key, starting from an absent key)
/// linearizable with respect to [`step`]? Also returns the search steps.
///
/// The Wing & Gong search as Lowe refines it ("Testing for linearizability",
/// 2017): from a set of linearized calls and a model state, the candidates
/// are the unlinearized calls invoked before the earliest response of any
/// unlinearized call; each is tried in turn, and each (linearized set, state)
/// pair is explored at most once (memoization). Two reductions keep 64-way
/// concurrent histories cheap:
///
/// - a candidate that leaves the state unchanged (an `InFlight`, a `Replay`,
///   a `get`, a refused stale lease) can be moved to the front of any
///   linearization of the rest — nothing unlinearized returned before it was
///   invoked, and it changes nothing — so it is committed without trying
///   alternatives;
/// - only state-changing candidates branch, earliest response first.
pub(crate) fn check_linearizable(history: &[Event]) -> (Verdict, u64) {
    let mut search = Search {
        history,
        by_call: {
            let mut v: Vec<usize> = (0..history.len()).collect();
            v.sort_by_key(|&i| history[i].call);
            v
        },
        by_ret: {
            let mut v: Vec<usize> = (0..history.len()).collect();
            v.sort_by_key(|&i| history[i].ret);
            v
        },
        done: vec![0; history.len().div_ceil(64).max(1)],
        cache: HashSet::new(),
        path: Vec::new(),
        longest: Vec::new(),
        steps: 0,
    };
    let verdict = match search.run(&KeyState { rec: None, max_token: 0 }) {
        Some(true) => Verdict::Linearizable,
        Some(false) => Verdict::Violation { longest_prefix: search.longest },
        None => Verdict::Inconclusive,
    };
    (verdict, search.steps)
}

struct Search<'a> {
    history: &'a [Event],
    by_call: Vec<usize>,
    by_ret: Vec<usize>,
    /// The linearized calls, as a bit set.
    done: Vec<u64>,
    cache: HashSet<(Vec<u64>, KeyState)>,
    path: Vec<usize>,
    longest: Vec<usize>,
    steps: u64,
}

impl Search<'_> {
    fn is_done(&self, i: usize) -> bool {
        self.done[i / 64] & (1 << (i % 64)) != 0
    }

    fn flip(&mut self, i: usize) {
        self.done[i / 64] ^= 1 << (i % 64);
    }

    /// Linearizes call `i` into `next` unless that configuration was seen;
    /// `Some(found)`, or `None` for "seen before" (it failed then).
    fn descend(&mut self, i: usize, next: KeyState) -> Option<Option<bool>> {
        self.flip(i);
        if !self.cache.insert((self.done.clone(), next.clone())) {
            self.flip(i);
            return None;
        }
        self.path.push(i);
        if self.path.len() > self.longest.len() {
            self.longest = self.path.clone();
        }
        let found = self.run(&next);
        self.path.pop();
        self.flip(i);
        Some(found)
    }

    /// `Some(true)`: the rest linearizes from `state`; `Some(false)`: it
    /// cannot; `None`: out of budget.
    fn run(&mut self, state: &KeyState) -> Option<bool> {
        self.steps += 1;
        if self.steps > SEARCH_BUDGET {
            return None;
        }
        let Some(first_ret) =
            self.by_ret.iter().find(|&&i| !self.is_done(i)).map(|&i| self.history[i].ret)
        else {
            return Some(true);
        };
        let candidates: Vec<usize> = self
            .by_call
            .iter()
            .copied()
            .take_while(|&i| self.history[i].call < first_ret)
            .filter(|&i| !self.is_done(i))
            .collect();
        let mut branches: Vec<(usize, KeyState)> = Vec::new();
        for &i in &candidates {
            let e = &self.history[i];
            let Some(next) = step(state, &e.op, &e.res) else { continue };
            if next == *state {
                // Without loss of generality first; no alternatives.
                return self.descend(i, next).unwrap_or(Some(false));
            }
            branches.push((i, next));
        }
        branches.sort_by_key(|(i, _)| self.history[*i].ret);
        for (i, next) in branches {
            match self.descend(i, next) {
                Some(Some(true)) => return Some(true),
                Some(None) => return None,
                Some(Some(false)) | None => {}
            }
        }
        Some(false)
    }
}

/// One holder per lease epoch, checked directly: sorted by token, each
/// acquisition after the first must be preceded (invoked before the
/// acquisition returned, after the previous acquisition was invoked) by a
/// successful release or retryable failure of the previous token, an
/// abandon of it, or by a removal of a live record. Returns the violations.
pub(crate) fn check_one_holder(history: &[Event]) -> Vec<String> {
    let mut acquired: Vec<&Event> =
        history.iter().filter(|e| matches!(e.res, LinRes::Acquired { .. })).collect();
    acquired.sort_by_key(|e| token(e));
    let mut problems = Vec::new();
    for pair in acquired.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if token(a) == token(b) {
            problems
                .push(format!("one holder: token {} acquired twice: {a:?} and {b:?}", token(a)));
            continue;
        }
        let handed_over = history.iter().any(|e| {
            let ends_a = match &e.op {
                LinOp::Release { token }
                | LinOp::FailRetryable { token }
                | LinOp::Abandon { token, .. } => *token == self::token(a) && e.res == LinRes::Ok,
                LinOp::Remove => e.res == LinRes::Removed(true),
                _ => false,
            };
            ends_a && e.call < b.ret && e.ret > a.call
        });
        if !handed_over {
            problems.push(format!(
                "one holder: token {} was acquired while token {} still held the key (no \
                 release, retryable failure, abandon or removal in between): {a:?} then {b:?}",
                token(b),
                token(a)
            ));
        }
    }
    problems
}

/// The token of an `Acquired` event.
fn token(e: &Event) -> u64 {
    match e.res {
        LinRes::Acquired { token, .. } => token,
        _ => unreachable!("not an acquisition"),
    }
}

/// Checks one key's history: the search steps it took, or a readable report
/// of the violation.
pub(crate) fn check_history(name: &str, history: &[Event]) -> Result<u64, String> {
    let mut problems = check_one_holder(history);
    // The recorder itself: each thread's calls are sequential.
    let mut by_thread: Vec<&Event> = history.iter().collect();
    by_thread.sort_by_key(|e| (e.thread, e.call));
    for w in by_thread.windows(2) {
        if w[0].thread == w[1].thread && w[1].call < w[0].ret {
            problems.push(format!("thread {} overlaps itself: {:?} {:?}", w[0].thread, w[0], w[1]));
        }
    }
    // An error answer explains nothing; report it rather than search.
    let errors = history.iter().filter(|e| matches!(e.res, LinRes::Error(_))).count();
    for e in history.iter().filter(|e| matches!(e.res, LinRes::Error(_))) {
        problems.push(format!("error answer: {e:?}"));
    }
    let (verdict, steps) =
        if errors == 0 { check_linearizable(history) } else { (Verdict::Inconclusive, 0) };
    if problems.is_empty() && verdict == Verdict::Linearizable {
        return Ok(steps);
    }
    let mut report = format!("history of {name} ({} calls) is wrong:\n", history.len());
    for p in &problems {
        report += &format!("  {p}\n");
    }
    match verdict {
        Verdict::Linearizable => {}
        Verdict::Inconclusive if steps == 0 => {}
        Verdict::Inconclusive => report += &format!("  search gave up after {steps} steps\n"),
        Verdict::Violation { longest_prefix } => {
            report += &format!(
                "  not linearizable; longest linearizable prefix ({} calls):\n",
                longest_prefix.len()
            );
            for &i in &longest_prefix {
                report += &format!("    {:?}\n", history[i]);
            }
            report += "  calls never linearized:\n";
            let done: HashSet<usize> = longest_prefix.into_iter().collect();
            for (i, e) in history.iter().enumerate().filter(|(i, _)| !done.contains(i)) {
                report += &format!("    #{i} {e:?}\n");
            }
        }
    }
    Err(report)
}
