//! `idemkv get KEY`: one key's entry (`Store::get`) — state, attempts,
//! times, fingerprint and the stored response — or, with `--raw`, just the
//! response bytes. Exit 1 when the key has no live record.

use std::io::Write;

use anyhow::Result;
use idemkv::EntryState;

use super::{
    Global, close, entry_json, fmt_time_rel, format_name, hex, now_ms, parse_key, print_json,
    show_body, state_label,
};

/// Longest response shown in full by the human output.
const SHOW_BYTES: usize = 4096;

/// Arguments of `idemkv get`.
#[derive(clap::Args, Debug, Clone)]
pub struct GetArgs {
    /// The key as `list` prints it: `NAMESPACE:ID`, split at the first
    /// `:`; `%XX` stands for the byte XX (`%3A` is `:` in a namespace, `%25`
    /// is `%`, `%FF` a non-UTF-8 byte).
    pub key: String,
    /// The id (after unescaping) is given in hex, e.g. `github:ff0001`.
    #[arg(long)]
    pub hex: bool,
    /// Write only the stored response bytes to stdout.
    #[arg(long)]
    pub raw: bool,
}

/// Runs `idemkv get`.
pub fn run(g: &Global, args: &GetArgs) -> Result<bool> {
    if args.raw && g.json {
        anyhow::bail!("--raw and --json cannot be used together");
    }
    let key = parse_key(&args.key, args.hex)?;
    let (store, _) = g.open_existing()?;
    let entry = store.get(&key)?;
    close(store)?;
    let Some(e) = entry else {
        if g.json {
            print_json(&serde_json::json!({ "key": args.key, "found": false }))?;
        }
        eprintln!("idemkv: no record for {key} (never claimed, removed or expired)");
        return Ok(false);
    };
    let mut out = std::io::stdout().lock();
    if args.raw {
        let EntryState::Finished(done) = &e.state else {
            eprintln!("idemkv: {key} has no stored response: it is {}", state_label(&e.state));
            return Ok(false);
        };
        out.write_all(done.response())?;
        out.flush()?;
        return Ok(true);
    }
    if g.json {
        drop(out);
        print_json(&entry_json(&e, true))?;
        return Ok(true);
    }
    let now = now_ms();
    let mut rows: Vec<(&str, String)> = vec![
        ("key", key.to_string()),
        ("state", state_label(&e.state)),
        ("attempts", e.attempts.to_string()),
        ("created", fmt_time_rel(e.created_at, now)),
    ];
    match &e.state {
        EntryState::InProgress { token, claimed_at, lease_deadline, .. } => {
            rows.push(("claimed", fmt_time_rel(*claimed_at, now)));
            rows.push(("lease until", fmt_time_rel(*lease_deadline, now)));
            rows.push(("token", token.to_string()));
        }
        EntryState::Finished(done) => {
            rows.push(("finished", fmt_time_rel(done.finished_at(), now)));
            rows.push(("token", done.token().to_string()));
        }
        EntryState::Claimable { since, .. } => rows.push(("since", fmt_time_rel(*since, now))),
        _ => {}
    }
    rows.push(("expires", fmt_time_rel(e.expires_at, now)));
    rows.push(("fingerprint", e.fingerprint.map_or_else(|| "none".into(), |f| f.to_string())));
    if let EntryState::Finished(done) = &e.state {
        let what = if done.is_completed() { "response" } else { "error payload" };
        rows.push(("format", format_name(done.format()).into()));
        rows.push((what, show_body(done)));
    }
    for (label, value) in rows {
        writeln!(out, "{label:<13} {value}")?;
    }
    out.flush()?;
    Ok(true)
}

/// The bytes as text when they are printable UTF-8, else as hex; long ones cut.
pub(super) fn show_bytes(b: &[u8]) -> String {
    let n = b.len();
    let more = |shown: usize| {
        if shown < n {
            format!(" … ({} more bytes; --raw for all)", n - shown)
        } else {
            String::new()
        }
    };
    match std::str::from_utf8(b) {
        Ok(s) => {
            let mut end = n.min(SHOW_BYTES);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            let text = &s[..end];
            if text.chars().any(char::is_control) {
                format!("({n} bytes, UTF-8, escaped) {}{}", text.escape_debug(), more(end))
            } else {
                format!("({n} bytes, UTF-8) {text}{}", more(end))
            }
        }
        Err(_) => {
            let end = n.min(SHOW_BYTES);
            format!("({n} bytes, hex) {}{}", hex(&b[..end]), more(end))
        }
    }
}
