//! `idemkv list`: live records in key order (`Store::list`), optionally of
//! one namespace and one state, a page at a time: when more match, a
//! `next: KEY` line (`"next"` in JSON) gives the `--after` of the next page.
//! Keys are printed in `idemkv::Key`'s text form, which `get`, `remove` and
//! `--after` read back as printed.

use std::io::Write;

use anyhow::Result;
use clap::ValueEnum;
use idemkv::{Entry, EntryState, Key};
use serde_json::json;

use super::{Global, close, entry_json, fmt_time, parse_key, print_json, state_label, state_name};

/// Records read per `Store::list` call.
const PAGE: usize = 1024;

/// A record state, as `--state` takes it.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum StateFilter {
    /// Claimed; lease running or orphaned.
    InProgress,
    /// Completed with a response.
    Completed,
    /// Failed terminally.
    Failed,
    /// Claimable again after a release or a retryable failure.
    Claimable,
}

impl StateFilter {
    fn matches(self, state: &EntryState) -> bool {
        let name = match self {
            StateFilter::InProgress => "in_progress",
            StateFilter::Completed => "completed",
            StateFilter::Failed => "failed",
            StateFilter::Claimable => "claimable",
        };
        state_name(state) == name
    }
}

/// Arguments of `idemkv list`.
#[derive(clap::Args, Debug, Clone)]
pub struct ListArgs {
    /// Only this namespace, given as it is (not escaped).
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Only records in this state.
    #[arg(long, value_enum)]
    pub state: Option<StateFilter>,
    /// Records per page; 0 lists them all.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: usize,
    /// Start after this key (the `next:` of the previous page), in the
    /// text form the listing prints.
    #[arg(long, value_name = "KEY")]
    pub after: Option<String>,
    /// The id of `--after` (after unescaping) is given in hex.
    #[arg(long)]
    pub hex: bool,
}

/// Runs `idemkv list`.
pub fn run(g: &Global, args: &ListArgs) -> Result<bool> {
    let after = args.after.as_deref().map(|k| parse_key(k, args.hex)).transpose()?;
    if let Some(ns) = &args.namespace {
        Key::new(ns, "x").map_err(|e| anyhow::anyhow!("invalid --namespace {ns:?}: {e}"))?;
    }
    let (store, _) = g.open_existing()?;
    let limit = if args.limit == 0 { usize::MAX } else { args.limit };
    let (entries, more) = collect(g, &store, args, after, limit)?;
    close(store)?;
    let next = if more { entries.last().map(|e| e.key.to_string()) } else { None };
    if g.json {
        let doc = json!({
            "entries": entries.iter().map(|e| entry_json(e, false)).collect::<Vec<_>>(),
            "next": next,
        });
        print_json(&doc)?;
        return Ok(true);
    }
    let mut out = std::io::stdout().lock();
    let key_w = entries.iter().map(|e| e.key.to_string().chars().count()).max().unwrap_or(3);
    if !entries.is_empty() {
        writeln!(
            out,
            "{:key_w$}  {:<22}  {:>8}  {:<24}  EXPIRES",
            "KEY", "STATE", "ATTEMPTS", "CREATED"
        )?;
    }
    for e in &entries {
        writeln!(
            out,
            "{:key_w$}  {:<22}  {:>8}  {:<24}  {}",
            e.key.to_string(),
            short_state(&e.state),
            e.attempts,
            fmt_time(e.created_at),
            fmt_time(e.expires_at)
        )?;
    }
    let n = entries.len();
    writeln!(out, "({n} record{})", if n == 1 { "" } else { "s" })?;
    if let Some(k) = next {
        writeln!(out, "next: {k}")?;
    }
    out.flush()?;
    Ok(true)
}

fn short_state(state: &EntryState) -> String {
    match state {
        EntryState::Claimable { .. } => "claimable".into(),
        other => state_label(other),
    }
}

/// Up to `limit` matching entries after `after`, and whether more match.
fn collect(
    g: &Global,
    store: &idemkv::Store,
    args: &ListArgs,
    mut after: Option<Key>,
    limit: usize,
) -> Result<(Vec<Entry>, bool)> {
    let pb = g.spinner("listing records");
    let mut out = Vec::new();
    let mut more = false;
    'scan: loop {
        let page = store.list(args.namespace.as_deref(), after.as_ref(), PAGE)?;
        pb.inc(page.len() as u64);
        let full = page.len() == PAGE;
        after = page.last().map(|e| e.key.clone());
        for e in page {
            if args.state.is_some_and(|s| !s.matches(&e.state)) {
                continue;
            }
            if out.len() == limit {
                more = true;
                break 'scan;
            }
            out.push(e);
        }
        if !full {
            break;
        }
    }
    pb.finish_and_clear();
    Ok((out, more))
}
