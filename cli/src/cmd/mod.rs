//! The inspect and maintain subcommands (`stats`, `get`, `list`, `remove`,
//! `sweep`, `verify`, `export`, `import`, `bench`): one file each, each a thin
//! shell over library calls with a `pub fn run(global, args)`, plus what they
//! share here — the global options, locating and opening the store, key
//! syntax, progress bars and formatting.
//!
//! Every `run` returns `Ok(true)` on success, `Ok(false)` when the command's
//! check or lookup failed (exit 1; the reason is already printed) and `Err`
//! for usage and I/O errors (exit 2).

pub mod bench;
pub mod export;
pub mod get;
pub mod import;
pub mod list;
pub mod remove;
pub mod stats;
pub mod sweep;
pub mod verify;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use idemkv::{Config, Entry, EntryState, Key, Store};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value, json};

/// The default data directory, shared with `idemkv demo`.
pub const DEFAULT_PATH: &str = "./idemkv-data";
/// The store's subdirectory inside a demo directory (`idemkv demo` writes its
/// store to `<path>/store`).
const DEMO_STORE_DIR: &str = crate::demo::server::STORE_DIR;
/// The file every store directory holds.
const META: &str = "META";

/// Options every subcommand takes.
#[derive(Debug, Clone, Default)]
pub struct Global {
    /// `--path`, if given.
    pub path: Option<PathBuf>,
    /// `--json`: machine-readable output on stdout, no progress bars.
    pub json: bool,
    /// `--accept-sled-as-is`: open a store whose `sled/` was refused
    /// (`Config::accept_sled_as_is`), e.g. to export what is left.
    pub accept_sled_as_is: bool,
}

impl Global {
    /// The store directory: `--path` (default `./idemkv-data`), or its
    /// `store/` subdirectory when that holds the store and `--path` itself
    /// does not (the layout `idemkv demo` leaves behind).
    pub fn store_dir(&self) -> PathBuf {
        let base = self.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
        let nested = base.join(DEMO_STORE_DIR);
        if !base.join(META).exists() && nested.join(META).exists() { nested } else { base }
    }

    /// Opens the existing store for inspection or maintenance; refuses to
    /// create one. The background sweeper and timed checkpoints are off, so
    /// the store changes only as the command asks.
    pub fn open_existing(&self) -> Result<(Store, PathBuf)> {
        let dir = self.store_dir();
        if !is_store(&dir) {
            let base = self.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
            bail!(
                "no idemkv store in {} (no {META} file there nor in {}); pass --path DIR",
                base.display(),
                base.join(DEMO_STORE_DIR).display()
            );
        }
        Ok((open(&dir, self.inspect_config())?, dir))
    }

    /// Opens the store, creating it if the directory holds none.
    pub fn open_or_create(&self) -> Result<(Store, PathBuf)> {
        let dir = self.store_dir();
        Ok((open(&dir, self.inspect_config())?, dir))
    }

    /// A spinner counting items on stderr; hidden without a terminal or with `--json`.
    pub fn spinner(&self, message: &str) -> ProgressBar {
        let pb = ProgressBar::with_draw_target(None, self.draw_target());
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg} {human_pos} [{elapsed}]")
                .expect("valid template"),
        );
        pb.set_message(message.to_string());
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }

    /// A bar of `len` items (or bytes, with `bytes`) on stderr; hidden like [`Global::spinner`].
    pub fn bar(&self, len: u64, message: &str, bytes: bool) -> ProgressBar {
        let pb = ProgressBar::with_draw_target(Some(len), self.draw_target());
        let template = if bytes {
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})"
        } else {
            "{msg} [{bar:30}] {human_pos}/{human_len} ({per_sec}, {eta})"
        };
        pb.set_style(
            ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "),
        );
        pb.set_message(message.to_string());
        pb
    }

    fn draw_target(&self) -> ProgressDrawTarget {
        if self.json || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        }
    }
}

/// True if `dir` holds a store (or the remains of one, which `open` judges).
fn is_store(dir: &Path) -> bool {
    dir.join(META).exists() || dir.join("sled").exists() || dir.join("journal").exists()
}

impl Global {
    /// How the commands open a store: no background sweep or checkpoints.
    fn inspect_config(&self) -> Config {
        Config::new()
            .sweep_interval(None)
            .checkpoint_interval(None)
            .accept_sled_as_is(self.accept_sled_as_is)
    }
}

/// Opens a store; the library's errors (Locked, Corrupt, …) name the
/// directory and say what to do, so they pass through unchanged.
fn open(dir: &Path, config: Config) -> Result<Store> {
    Ok(config.open(dir)?)
}

/// Closes the store, reporting a failed final checkpoint.
pub fn close(store: Store) -> Result<()> {
    store.close().map_err(|e| anyhow::anyhow!("closing the store: {e}"))
}

/// Parses a key in its text form (`Key::parse`: `NAMESPACE:ID`, split at
/// the first `:`, `%XX` escapes a byte) — exactly as `list`, `get` and the
/// JSON `"key"` fields print it. With `hex` (kept for old scripts) the id,
/// after unescaping, is hex digits, optionally after `0x`.
pub fn parse_key(s: &str, hex: bool) -> Result<Key> {
    let key = Key::parse(s).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !hex {
        return Ok(key);
    }
    let text = std::str::from_utf8(key.id()).unwrap_or_default();
    let h = text.strip_prefix("0x").unwrap_or(text);
    let id = unhex(h)
        .ok_or_else(|| anyhow::anyhow!("invalid key {s:?}: --hex given but {h:?} is not hex"))?;
    Key::new(key.namespace(), id).map_err(|e| anyhow::anyhow!("invalid key {s:?}: {e}"))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Shows a raw storage key (as in `VerifyReport`), valid or not.
pub fn display_raw_key(raw: &[u8]) -> String {
    Key::from_raw(raw).map_or_else(|_| format!("0x{} (raw)", hex(raw)), |k| k.to_string())
}

/// Milliseconds since the Unix epoch.
pub fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The current wall-clock time in ms.
pub fn now_ms() -> u64 {
    ms(SystemTime::now())
}

/// `2024-05-01T12:00:00.123Z`.
pub fn fmt_time(t: SystemTime) -> String {
    let total = ms(t);
    let (secs, milli) = (total / 1000, total % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// A time with how far it is from now: `… (3m 12s ago)` / `… (in 71h 59m)`.
pub fn fmt_time_rel(t: SystemTime, now: u64) -> String {
    let at = ms(t);
    let rel = if at <= now {
        format!("{} ago", fmt_ms(now - at))
    } else {
        format!("in {}", fmt_ms(at - now))
    };
    format!("{} ({rel})", fmt_time(t))
}

/// A duration in ms for people: `850 ms`, `2.4 s`, `3m 12s`, `71h 59m`.
pub fn fmt_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1e3),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// A duration in ns for people: `850 ns`, `12.3 µs`, `4.56 ms`, `1.20 s`.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// The state's name, as in `list --state` and the export format.
pub fn state_name(state: &EntryState) -> &'static str {
    match state {
        EntryState::InProgress { .. } => "in_progress",
        EntryState::Finished(r) if r.is_completed() => "completed",
        EntryState::Finished(_) => "failed",
        EntryState::Claimable { .. } => "claimable",
        _ => "unknown",
    }
}

/// The body format's name, as in the JSON output.
pub fn format_name(f: idemkv::BodyFormat) -> &'static str {
    match f {
        idemkv::BodyFormat::Json => "json",
        idemkv::BodyFormat::Http => "http",
        _ => "bytes",
    }
}

/// A stored body for people: JSON bodies as JSON text, others as text when
/// UTF-8, else hex.
pub fn show_body(r: &idemkv::Replay) -> String {
    match r.format() {
        idemkv::BodyFormat::Json => String::from_utf8_lossy(r.response()).into_owned(),
        idemkv::BodyFormat::Http => match idemkv::http::stored_response(r) {
            Ok(response) => {
                let mut out = format!("HTTP {}", response.status());
                for (name, value) in response.headers() {
                    out.push_str(&format!(
                        "\n{name}: {}",
                        String::from_utf8_lossy(value.as_bytes())
                    ));
                }
                out.push_str("\n\n");
                out.push_str(&get::show_bytes(response.body()));
                out
            }
            Err(e) => format!("{} ({e})", get::show_bytes(r.response())),
        },
        _ => get::show_bytes(r.response()),
    }
}

/// An HTTP envelope as JSON: status, headers (name, value pairs in order)
/// and the body as text, or in hex when it is not UTF-8.
fn http_json(r: &idemkv::Replay) -> Option<Value> {
    let response = idemkv::http::stored_response(r).ok()?;
    let headers: Vec<Value> = response
        .headers()
        .iter()
        .map(|(n, v)| json!([n.as_str(), String::from_utf8_lossy(v.as_bytes())]))
        .collect();
    let mut o = serde_json::Map::new();
    o.insert("status".into(), json!(response.status().as_u16()));
    o.insert("headers".into(), Value::Array(headers));
    match std::str::from_utf8(response.body()) {
        Ok(s) => o.insert("body".into(), json!(s)),
        Err(_) => o.insert("body_hex".into(), json!(hex(response.body()))),
    };
    Some(Value::Object(o))
}

/// The state for people: `completed`, `in_progress (orphaned)`, …
pub fn state_label(state: &EntryState) -> String {
    match state {
        EntryState::InProgress { orphaned: true, .. } => "in_progress (orphaned)".into(),
        EntryState::Claimable { after_retryable_failure: true, .. } => {
            "claimable (after a retryable failure)".into()
        }
        EntryState::Claimable { .. } => "claimable (released)".into(),
        other => state_name(other).into(),
    }
}

/// An entry as a JSON object; the stored response only `with_body`.
pub fn entry_json(e: &Entry, with_body: bool) -> Value {
    let mut o = Map::new();
    // The key's text form, which `get`, `remove` and `list --after` accept.
    o.insert("key".into(), json!(e.key.to_string()));
    o.insert("namespace".into(), json!(e.key.namespace()));
    match std::str::from_utf8(e.key.id()) {
        Ok(id) => o.insert("id".into(), json!(id)),
        Err(_) => o.insert("id_hex".into(), json!(hex(e.key.id()))),
    };
    o.insert("state".into(), json!(state_name(&e.state)));
    o.insert("attempts".into(), json!(e.attempts));
    o.insert("created_at_ms".into(), json!(ms(e.created_at)));
    o.insert("expires_at_ms".into(), json!(ms(e.expires_at)));
    o.insert("fingerprint".into(), json!(e.fingerprint.map(|f| f.to_string())));
    match &e.state {
        EntryState::InProgress { token, claimed_at, lease_deadline, orphaned } => {
            o.insert("token".into(), json!(token));
            o.insert("claimed_at_ms".into(), json!(ms(*claimed_at)));
            o.insert("lease_deadline_ms".into(), json!(ms(*lease_deadline)));
            o.insert("orphaned".into(), json!(orphaned));
        }
        EntryState::Finished(r) => {
            o.insert("token".into(), json!(r.token()));
            o.insert("finished_at_ms".into(), json!(ms(r.finished_at())));
            o.insert("response_len".into(), json!(r.response().len()));
            o.insert("format".into(), json!(format_name(r.format())));
            let as_json = (r.format() == idemkv::BodyFormat::Json)
                .then(|| serde_json::from_slice::<Value>(r.response()).ok())
                .flatten();
            let as_http = (with_body && r.format() == idemkv::BodyFormat::Http)
                .then(|| http_json(r))
                .flatten();
            if with_body && let Some(v) = as_json {
                o.insert("response".into(), v);
            } else if let Some(v) = as_http {
                o.insert("http".into(), v);
            } else if with_body {
                match std::str::from_utf8(r.response()) {
                    Ok(s) => o.insert("response".into(), json!(s)),
                    Err(_) => o.insert("response_hex".into(), json!(hex(r.response()))),
                };
            }
        }
        EntryState::Claimable { since, after_retryable_failure } => {
            o.insert("since_ms".into(), json!(ms(*since)));
            o.insert("after_retryable_failure".into(), json!(after_retryable_failure));
        }
        _ => {}
    }
    Value::Object(o)
}

/// Writes one compact JSON document and a newline to stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Exact percentile `q` (0..=1) of sorted samples; 0 when empty.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(fmt_time(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(fmt_time(t), "2023-11-14T22:13:20.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(fmt_time(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn keys() {
        let k = parse_key("stripe:evt:1", false).unwrap();
        assert_eq!((k.namespace(), k.id()), ("stripe", &b"evt:1"[..]));
        let h = parse_key("s:ff00", true).unwrap();
        assert_eq!(h.id(), [0xff, 0]);
        assert_eq!(h.to_string(), "s:%FF%00");
        assert_eq!(parse_key("s:%FF%00", false).unwrap(), h);
        assert_eq!(parse_key("s:0xff00", true).unwrap(), h);
        let colon = parse_key("a%3Ab:c:d", false).unwrap();
        assert_eq!((colon.namespace(), colon.id()), ("a:b", &b"c:d"[..]));
        assert!(parse_key("nocolon", false).is_err());
        assert!(parse_key("s:zz", true).is_err());
        assert!(parse_key(":x", false).is_err());
    }

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), 500);
        assert_eq!(percentile(&v, 0.99), 990);
        assert_eq!(percentile(&v, 0.999), 999);
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
