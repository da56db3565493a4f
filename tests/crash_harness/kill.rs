//! Kill scheduling: one round spawns a child, kills it at a random moment
//! (blind, inside open, or mid-traffic), replays its lines into the model
//! and checks the store.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::checks::check_store;
use crate::common::{Ack, ChildProc, Rng};
use crate::model::{Check, Model};
use crate::{CHECKPOINT_ENV, MODE, ROUND_ENV, SEED_ENV, SEGMENT_ENV};

/// How a round picks its moment to kill.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// This long after the spawn, whatever the child is doing (often still
    /// starting up, opening or replaying).
    Blind(Duration),
    /// This long after the child announced it is about to open the store:
    /// inside recovery (replay, checkpoint, META, new segment).
    InOpen(Duration),
    /// This long after the store opened: mid-traffic.
    InTraffic(Duration),
}

pub(crate) fn run_round(
    dir: &Path,
    m: &mut Model,
    round: u64,
    seed: u64,
    open_time: &mut Duration,
) -> Check {
    let mut rng = Rng::new(seed);
    let max_before = m.max_token;
    m.epoch += 1; // the child
    let checkpoint_ms = [0, 0, 15, 60][rng.below(4) as usize];
    let segment_bytes = [4096, 16 << 10, 64 << 20][rng.below(3) as usize];
    let env = [
        (ROUND_ENV, round.to_string()),
        (SEED_ENV, seed.to_string()),
        (CHECKPOINT_ENV, checkpoint_ms.to_string()),
        (SEGMENT_ENV, segment_bytes.to_string()),
    ];
    // IDEMKV_KILL_AT=blind|open|traffic runs only that kind of kill.
    let pick = match std::env::var("IDEMKV_KILL_AT").as_deref() {
        Ok("blind") => rng.below(20),
        Ok("open") => 20 + rng.below(15),
        Ok("traffic") => 35 + rng.below(65),
        _ => rng.below(100),
    };
    let kill_at = match pick {
        0..20 => KillAt::Blind(open_time.mul_f64(rng.below(2000) as f64 / 1000.0)),
        20..35 => KillAt::InOpen(Duration::from_micros(rng.below(4000))),
        p => {
            // Mostly short runs, some long ones.
            let ms = if p < 80 { rng.below(60) } else { rng.below(400) };
            KillAt::InTraffic(Duration::from_millis(ms))
        }
    };
    let started = Instant::now();
    let mut child = ChildProc::spawn(dir, MODE, &env).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    let mut wait_for = |child: &mut ChildProc, word: &str| -> Check {
        loop {
            match child.next_ack(Duration::from_secs(60)).map_err(|e| e.to_string())? {
                Some(Ack::Result(l)) => {
                    let hit = l.split_whitespace().next() == Some(word);
                    lines.push(l);
                    if hit {
                        return Ok(());
                    }
                }
                other => return Err(format!("child said {other:?} before {word}")),
            }
        }
    };
    match kill_at {
        KillAt::Blind(d) => std::thread::sleep(d),
        KillAt::InOpen(d) => {
            wait_for(&mut child, "BOOT")?;
            std::thread::sleep(d);
        }
        KillAt::InTraffic(d) => {
            wait_for(&mut child, "OPEN")?;
            // Learn how long start-up and open take, for the blind kills.
            *open_time = (*open_time * 3 + started.elapsed()) / 4;
            std::thread::sleep(d);
        }
    }
    let rest = child.kill().map_err(|e| format!("{kill_at:?}: {e}"))?;
    for a in rest {
        match a {
            Ack::Result(l) => lines.push(l),
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    m.stats.kills += 1;
    let opened = lines.iter().any(|l| l.starts_with("OPEN"));
    if !opened {
        m.stats.kills_before_open += 1;
        if lines.iter().any(|l| l == "BOOT") {
            m.stats.kills_in_recovery_window += 1;
        }
    }
    for l in &lines {
        m.child_line(l, max_before).map_err(|e| format!("{kill_at:?}: {e}"))?;
    }
    let phase = match (lines.iter().any(|l| l == "BOOT"), opened) {
        (_, true) => "after the child opened the store",
        (true, false) => "while the child was opening the store",
        (false, false) => "before the child started opening",
    };
    check_store(dir, m, round, &mut rng).map_err(|e| {
        format!(
            "{kill_at:?} ({phase}, {} lines), checkpoint {checkpoint_ms} ms, segment \
             {segment_bytes} B: {e}",
            lines.len()
        )
    })
}
