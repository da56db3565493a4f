//! Fencing tokens: issued from one store-wide counter, strictly increasing
//! across restarts because none is ever used above the ceiling META holds
//! durably (each open starts above the previous ceiling).
//!
//! Issuing is an atomic increment. Raising the ceiling writes and fsyncs
//! META, so callers do it with no stripe lock held: a claim that draws a
//! token above the ceiling (once per [`TOKEN_BLOCK`] claims) lets go of its
//! stripe, calls [`Engine::secure_token`] and decides again.

use std::sync::atomic::Ordering;

use super::Engine;
use super::meta::TOKEN_BLOCK;
use crate::config::MAX_TOKEN;
use crate::error::{Error, Result};

impl Engine {
    /// The next fencing token. Tokens strictly increase and never wrap: once
    /// [`MAX_TOKEN`] was issued (or the reopened ceiling lies beyond it),
    /// every call fails with [`Error::TokenSpaceExhausted`] and the counter
    /// stays. Never blocks.
    pub fn issue_token(&self) -> Result<u64> {
        self.next_token
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                (t <= MAX_TOKEN).then(|| t.saturating_add(1))
            })
            .map_err(|t| Error::TokenSpaceExhausted { token: t, limit: MAX_TOKEN })
    }

    /// Whether `token` lies at or below the durable ceiling (it may then be
    /// journaled). Never blocks.
    pub fn token_secured(&self, token: u64) -> bool {
        token <= self.token_ceiling()
    }

    fn token_ceiling(&self) -> u64 {
        self.ceiling.load(Ordering::Acquire)
    }

    /// Makes sure `token` is at or below the durable ceiling, raising it by
    /// a block if needed: blocks for a META write and fsync then. Call it
    /// with no stripe lock held. A failed write poisons the store.
    pub fn secure_token(&self, token: u64) -> Result<()> {
        if self.token_secured(token) {
            return Ok(());
        }
        let mut meta = self.meta.lock();
        if token > meta.current.token_ceiling {
            let mut m = meta.current;
            m.token_ceiling = token.saturating_add(TOKEN_BLOCK);
            meta.store(m).inspect_err(|e| self.poison(format!("raising token ceiling: {e}")))?;
            self.ceiling.store(m.token_ceiling, Ordering::Release);
        }
        Ok(())
    }

    /// Makes every later token exceed `token` (an imported record's), and
    /// secures the ceiling above it. Blocks for a META write when needed.
    pub fn tokens_after(&self, token: u64) -> Result<()> {
        let next = token.saturating_add(1);
        self.next_token.fetch_max(next, Ordering::SeqCst);
        self.secure_token(next)
    }
}
