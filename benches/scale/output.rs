//! The harness's output: rows of goal against measured figure per target,
//! printed as a table and written as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use crate::Opts;
use crate::common::report::{cpus, json_str};

/// A figure of the JSON.
pub enum Val {
    U(u64),
    F(f64),
    S(String),
    Null,
}

/// A target's named figures, in output order.
pub type Fields = Vec<(String, Val)>;

/// Whether a row's goal was met (or the row is for information).
#[derive(Clone, Copy, PartialEq)]
pub enum Status {
    Met,
    NotMet,
    Info,
}

impl Status {
    /// The table's status column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::NotMet => "NOT MET",
            Status::Info => "-",
        }
    }
}

/// One line of the table.
pub struct Row {
    pub what: String,
    pub goal: String,
    pub measured: String,
    pub status: Status,
}

/// One target's rows (for the table) and figures (for the JSON).
pub struct Part {
    pub name: &'static str,
    pub rows: Vec<Row>,
    pub fields: Fields,
}

impl Part {
    pub fn new(name: &'static str) -> Self {
        Part { name, rows: Vec::new(), fields: Vec::new() }
    }
    /// A row judged against a goal.
    pub fn goal(&mut self, what: String, goal: String, measured: String, met: bool) {
        let status = if met { Status::Met } else { Status::NotMet };
        self.rows.push(Row { what, goal, measured, status });
    }
    /// A row for information (no goal).
    pub fn info(&mut self, what: String, measured: String) {
        self.rows.push(Row { what, goal: "-".into(), measured, status: Status::Info });
    }
}

/// A record count: `10k`, `1M`, else the digits.
pub fn fmt_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Bytes in MiB: `64.0 MiB`.
pub fn fmt_bytes(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

/// Prints every part's rows as one table, columns as wide as their widest cell.
pub fn print_table(parts: &[Part]) {
    let what_w = parts.iter().flat_map(|p| &p.rows).map(|r| r.what.chars().count()).max();
    let goal_w = parts.iter().flat_map(|p| &p.rows).map(|r| r.goal.chars().count()).max();
    let meas_w = parts.iter().flat_map(|p| &p.rows).map(|r| r.measured.chars().count()).max();
    let (what_w, goal_w, meas_w) =
        (what_w.unwrap_or(0).max(11), goal_w.unwrap_or(0).max(4), meas_w.unwrap_or(0).max(8));
    let line = |t: &str, w: &str, g: &str, m: &str, s: &str| {
        println!("{t:<6} {w:<what_w$}  {g:<goal_w$}  {m:<meas_w$}  {s}");
    };
    line("target", "measurement", "goal", "measured", "status");
    for p in parts {
        for r in &p.rows {
            line(p.name, &r.what, &r.goal, &r.measured, r.status.as_str());
        }
    }
}

fn json_val(v: &Val) -> String {
    match v {
        Val::U(u) => u.to_string(),
        Val::F(x) if x.is_finite() => format!("{x:.6}"),
        Val::F(_) | Val::Null => "null".into(),
        Val::S(s) => json_str(s),
    }
}

/// The whole run as JSON: options, notes, and each part's figures and rows.
pub fn to_json(opts: &Opts, parts: &[Part], notes: &[String], wall: Duration) -> String {
    let mut s = String::from("{\n");
    let _ = writeln!(s, "  \"records\": {},", opts.records);
    let _ = writeln!(s, "  \"journal_entries\": {},", opts.journal_entries);
    let _ = writeln!(s, "  \"quick\": {},", opts.quick);
    let _ = writeln!(s, "  \"cpus\": {},", cpus());
    let _ = writeln!(s, "  \"wall_s\": {:.3},", wall.as_secs_f64());
    let notes: Vec<String> = notes.iter().map(|n| json_str(n)).collect();
    let _ = writeln!(s, "  \"notes\": [{}],", notes.join(", "));
    for p in parts {
        let _ = writeln!(s, "  {}: {{", json_str(&p.name.to_ascii_lowercase()));
        for (k, v) in &p.fields {
            let _ = writeln!(s, "    {}: {},", json_str(k), json_val(v));
        }
        s.push_str("    \"rows\": [\n");
        for (i, r) in p.rows.iter().enumerate() {
            let _ = write!(
                s,
                "      {{\"measurement\": {}, \"goal\": {}, \"measured\": {}, \"status\": {}}}",
                json_str(&r.what),
                json_str(&r.goal),
                json_str(&r.measured),
                json_str(match r.status {
                    Status::Met => "met",
                    Status::NotMet => "not met",
                    Status::Info => "info",
                })
            );
            s.push_str(if i + 1 < p.rows.len() { ",\n" } else { "\n" });
        }
        s.push_str("    ]\n  },\n");
    }
    if s.ends_with(",\n") {
        s.truncate(s.len() - 2);
        s.push('\n');
    }
    s.push_str("}\n");
    s
}
