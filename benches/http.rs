//! P7: the HTTP idempotency layer's cost, over real HTTP on 127.0.0.1, in
//! one run, side by side:
//!
//! - **plain** — an axum handler without the layer (the reference);
//! - **replay** — the same handler behind `IdempotencyLayer`, every request
//!   a duplicate of a completed key (claim → Replay → the stored status,
//!   headers and body sent again; the handler does not run);
//! - **first** — the same handler behind the layer, every request a new key
//!   (claim + handler + complete, `Buffered { max_delay: 5 ms }`).
//!
//! Each row drives N concurrent client tasks (default 32) through one
//! keep-alive `reqwest` pool for a warm-up and a measured window; the
//! servers run on their own 2-worker tokio runtime, the clients on another
//! (both in this process: they share the machine's CPUs). The rows run in
//! rounds — plain, replay, first — so plain and replay alternate at least
//! twice. Reports requests/s and p50/p99/p99.9 latency (exact, from every
//! request's latency sorted), per row and pooled per workload, and the
//! replay/plain ratio.
//!
//! ```text
//! cargo bench --bench http                          # 2 rounds of 3 s rows
//! cargo bench --bench http -- --duration-ms 5000 --rounds 3 --clients 64 --json p7.json
//! cargo bench --bench http -- --test                # tiny run (CI)
//! ```

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::post;
use axum::serve::ListenerExt;
use common::report::{cpus, fmt_ns, fmt_ops, json_str};
use idemkv::http::{IDEMPOTENT_REPLAYED, IdempotencyLayer};
use idemkv::{Config, Store};

/// A result whose error is a message.
type Res<T> = Result<T, String>;

/// The request body every client sends.
const REQUEST: &str = r#"{"amount":1999,"currency":"eur","customer":"cus_0123456789abcd"}"#;

// ───────────────────────────── options ─────────────────────────────

struct Opts {
    duration: Duration,
    warmup: Duration,
    clients: usize,
    rounds: usize,
    /// Completed keys the replay rows pick from.
    replay_keys: usize,
    quick: bool,
    json: Option<PathBuf>,
}

fn parse_args() -> Res<Opts> {
    let (mut duration_ms, mut clients, mut rounds) = (None, None, None);
    let (mut quick, mut json) = (false, None);
    let mut args = std::env::args().skip(1);
    let value = |flag: &str, v: Option<String>| -> Res<u64> {
        let v = v.ok_or(format!("{flag} needs a value"))?;
        v.parse().map_err(|e| format!("{flag} {v}: {e}"))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" | "--test" => quick = true,
            "--duration-ms" => duration_ms = Some(value("--duration-ms", args.next())?),
            "--clients" => clients = Some(value("--clients", args.next())? as usize),
            "--rounds" => rounds = Some(value("--rounds", args.next())? as usize),
            "--json" => json = Some(PathBuf::from(args.next().ok_or("--json needs a file")?)),
            "--bench" => {} // passed by `cargo bench`
            "-h" | "--help" => {
                println!(
                    "usage: cargo bench --bench http -- [--test] [--duration-ms N] [--clients N] \
                     [--rounds N] [--json FILE]"
                );
                std::process::exit(0);
            }
            other => eprintln!("http: ignoring argument {other}"),
        }
    }
    let duration =
        Duration::from_millis(duration_ms.unwrap_or(if quick { 100 } else { 3000 }).max(1));
    Ok(Opts {
        warmup: (duration / 5).max(Duration::from_millis(30)),
        duration,
        clients: clients.unwrap_or(if quick { 8 } else { 32 }).max(1),
        rounds: rounds.unwrap_or(2).max(1),
        replay_keys: if quick { 64 } else { 1024 },
        quick,
        json,
    })
}

// ───────────────────────────── servers ─────────────────────────────

/// The handler both servers run: reads the body, answers 201 with a JSON
/// body of 128 bytes, `Content-Type` and `Location`.
async fn create_order(
    body: String,
) -> (StatusCode, [(header::HeaderName, HeaderValue); 2], String) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut json =
        format!("{{\"id\":\"ord_{n:016}\",\"amount\":1999,\"request_bytes\":{}", body.len());
    while json.len() < 127 {
        json.push(' ');
    }
    json.push('}');
    let location = HeaderValue::from_str(&format!("/orders/ord_{n:016}")).expect("ASCII");
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::LOCATION, location),
        ],
        json,
    )
}

async fn serve(router: Router) -> Res<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("http: server stopped: {e}");
        }
    });
    Ok(addr)
}

// ───────────────────────────── measuring ─────────────────────────────

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    Plain,
    Replay,
    First,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Plain => "plain",
            Workload::Replay => "replay",
            Workload::First => "first",
        }
    }
    fn server(self) -> &'static str {
        match self {
            Workload::Plain => "axum, no layer",
            Workload::Replay | Workload::First => "axum + layer",
        }
    }
}

/// One row's raw measurements.
struct Measured {
    /// Every successful request's latency in the window, ns.
    latencies: Vec<u64>,
    window: Duration,
    errors: u64,
    first_error: Option<String>,
}

/// One request; `Err` when it failed or was not the expected answer.
async fn one(
    client: &reqwest::Client,
    url: &str,
    key: HeaderValue,
    replay_expected: Option<bool>,
) -> Res<()> {
    let r = client
        .post(url)
        .header("idempotency-key", key)
        .header(header::CONTENT_TYPE, "application/json")
        .body(REQUEST)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let replayed = r.headers().get(IDEMPOTENT_REPLAYED).is_some();
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    if status != StatusCode::CREATED || body.len() != 128 {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    match replay_expected {
        Some(want) if want != replayed => {
            Err(format!("Idempotent-Replayed {replayed}, expected {want}"))
        }
        _ => Ok(()),
    }
}

/// The quoted key `i` of the replay set.
fn replay_key(i: usize) -> HeaderValue {
    HeaderValue::from_str(&format!("\"rk-{i:08}\"")).expect("ASCII")
}

/// Runs `w` against `url` with `opts.clients` tasks on `rt`.
fn measure(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    url: &str,
    w: Workload,
    round: usize,
    opts: &Opts,
) -> Measured {
    let (warmup, duration) = (opts.warmup, opts.duration);
    let origin = Instant::now();
    let (start, end) = (origin + warmup, origin + warmup + duration);
    let results: Vec<Measured> = rt.block_on(async {
        let tasks: Vec<_> = (0..opts.clients)
            .map(|t| {
                let (client, url, keys) = (client.clone(), url.to_owned(), opts.replay_keys);
                tokio::spawn(async move {
                    let mut m = Measured {
                        latencies: Vec::new(),
                        window: duration,
                        errors: 0,
                        first_error: None,
                    };
                    let mut rng = common::SplitMix64::new(0x5EED ^ t as u64);
                    for i in 0u64.. {
                        let (key, expect) = match w {
                            Workload::Plain => (replay_key(rng.below(keys)), None),
                            Workload::Replay => (replay_key(rng.below(keys)), Some(true)),
                            Workload::First => {
                                let k = format!("\"first-{round}-{t}-{i}\"");
                                (HeaderValue::from_str(&k).expect("ASCII"), Some(false))
                            }
                        };
                        let t0 = Instant::now();
                        let r = one(&client, &url, key, expect).await;
                        let t1 = Instant::now();
                        if t0 >= start {
                            match r {
                                Ok(()) => m.latencies.push((t1 - t0).as_nanos() as u64),
                                Err(e) => {
                                    m.errors += 1;
                                    m.first_error.get_or_insert(e);
                                }
                            }
                        }
                        if t1 >= end {
                            break;
                        }
                    }
                    m
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap_or_else(|e| Measured {
                latencies: Vec::new(),
                window: duration,
                errors: 1,
                first_error: Some(format!("client task failed: {e}")),
            }));
        }
        out
    });
    let mut total =
        Measured { latencies: Vec::new(), window: duration, errors: 0, first_error: None };
    for m in results {
        total.latencies.extend(m.latencies);
        total.errors += m.errors;
        if total.first_error.is_none() {
            total.first_error = m.first_error;
        }
    }
    total.latencies.sort_unstable();
    total
}

/// The `q` quantile of sorted latencies (nearest rank); 0 when empty.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

// ───────────────────────────── output ─────────────────────────────

struct Row {
    round: usize,
    workload: Workload,
    requests: u64,
    window: Duration,
    p50: u64,
    p99: u64,
    p999: u64,
    errors: u64,
    note: String,
}

impl Row {
    fn of(round: usize, workload: Workload, m: &Measured) -> Row {
        Row {
            round,
            workload,
            requests: m.latencies.len() as u64,
            window: m.window,
            p50: quantile(&m.latencies, 0.50),
            p99: quantile(&m.latencies, 0.99),
            p999: quantile(&m.latencies, 0.999),
            errors: m.errors,
            note: m.first_error.as_ref().map_or(String::new(), |e| format!("first error: {e}")),
        }
    }
    fn rps(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64()
    }
}

fn print_header(opts: &Opts) {
    println!(
        "http (P7): {} ms measured per row after {} ms warm-up{}, {} client tasks, {} rounds, {} CPUs",
        opts.duration.as_millis(),
        opts.warmup.as_millis(),
        if opts.quick { " (quick)" } else { "" },
        opts.clients,
        opts.rounds,
        cpus()
    );
    println!(
        "{:>5} {:<8} {:<15} {:>9} {:>9} {:>9} {:>9} {:>6}",
        "round", "workload", "server", "req/s", "p50", "p99", "p99.9", "errors"
    );
}

fn print_row(r: &Row) {
    println!(
        "{:>5} {:<8} {:<15} {:>9} {:>9} {:>9} {:>9} {:>6}  {}",
        r.round,
        r.workload.name(),
        r.workload.server(),
        fmt_ops(r.rps()),
        fmt_ns(r.p50),
        fmt_ns(r.p99),
        fmt_ns(r.p999),
        r.errors,
        r.note
    );
}

/// One workload's rounds pooled: every latency, every window.
struct Pooled {
    workload: Workload,
    rps: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    errors: u64,
}

fn pool(workload: Workload, all: &[(Workload, Measured)]) -> Pooled {
    let mut lat = Vec::new();
    let (mut secs, mut errors) = (0.0, 0);
    for (_, m) in all.iter().filter(|(w, _)| *w == workload) {
        lat.extend_from_slice(&m.latencies);
        secs += m.window.as_secs_f64();
        errors += m.errors;
    }
    lat.sort_unstable();
    Pooled {
        workload,
        rps: if secs > 0.0 { lat.len() as f64 / secs } else { 0.0 },
        p50: quantile(&lat, 0.50),
        p99: quantile(&lat, 0.99),
        p999: quantile(&lat, 0.999),
        errors,
    }
}

fn notes(opts: &Opts) -> Vec<String> {
    vec![
        "plain: POST /orders on axum without the layer (the handler reads the body, answers 201 + \
         Content-Type + Location + 128-byte JSON)"
            .into(),
        format!(
            "replay: the same request through IdempotencyLayer, the key one of {} completed keys: \
             claim -> Replay -> stored answer + Idempotent-Replayed (the handler does not run)",
            opts.replay_keys
        ),
        "first: a new key per request through the layer: claim + handler + complete, Buffered { \
         max_delay: 5 ms } (the answer leaves once the completion is journaled, before its fsync)"
            .into(),
        "real HTTP/1.1 on 127.0.0.1, one keep-alive reqwest pool; servers on a 2-worker tokio \
         runtime and clients on another, in one process sharing the CPUs; latency = send + whole \
         body, exact percentiles from every request"
            .into(),
    ]
}

fn num(x: f64) -> String {
    if x.is_finite() { format!("{x:.3}") } else { "null".into() }
}

fn to_json(opts: &Opts, rows: &[Row], pooled: &[Pooled], ratio: Option<f64>) -> String {
    let mut s = String::from("{\n");
    let _ = writeln!(s, "  \"benchmark\": \"P7 http\",");
    let _ = writeln!(s, "  \"duration_ms\": {},", opts.duration.as_millis());
    let _ = writeln!(s, "  \"warmup_ms\": {},", opts.warmup.as_millis());
    let _ = writeln!(s, "  \"clients\": {},", opts.clients);
    let _ = writeln!(s, "  \"rounds\": {},", opts.rounds);
    let _ = writeln!(s, "  \"quick\": {},", opts.quick);
    let _ = writeln!(s, "  \"cpus\": {},", cpus());
    let notes: Vec<String> = notes(opts).iter().map(|n| json_str(n)).collect();
    let _ = writeln!(s, "  \"notes\": [{}],", notes.join(", "));
    s.push_str("  \"rows\": [\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            s,
            "    {{\"round\": {}, \"workload\": {}, \"server\": {}, \"requests\": {}, \
             \"req_per_sec\": {}, \"p50_ns\": {}, \"p99_ns\": {}, \"p999_ns\": {}, \"errors\": {}, \
             \"note\": {}}}",
            r.round,
            json_str(r.workload.name()),
            json_str(r.workload.server()),
            r.requests,
            num(r.rps()),
            r.p50,
            r.p99,
            r.p999,
            r.errors,
            json_str(&r.note)
        );
        s.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    s.push_str("  ],\n  \"pooled\": [\n");
    for (i, p) in pooled.iter().enumerate() {
        let _ = write!(
            s,
            "    {{\"workload\": {}, \"req_per_sec\": {}, \"p50_ns\": {}, \"p99_ns\": {}, \
             \"p999_ns\": {}, \"errors\": {}}}",
            json_str(p.workload.name()),
            num(p.rps),
            p.p50,
            p.p99,
            p.p999,
            p.errors
        );
        s.push_str(if i + 1 < pooled.len() { ",\n" } else { "\n" });
    }
    let _ = writeln!(
        s,
        "  ],\n  \"replay_over_plain_req_per_sec\": {}",
        ratio.map_or("null".into(), num)
    );
    s.push_str("}\n");
    s
}

// ───────────────────────────── main ─────────────────────────────

fn run(opts: &Opts) -> Res<bool> {
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    };
    let (server_rt, client_rt) = (runtime("http-server")?, runtime("http-client")?);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store: Store = Config::new()
        .durability(common::buffered())
        .open(dir.path())
        .map_err(|e| format!("open the store: {e}"))?;
    let plain = server_rt.block_on(serve(Router::new().route("/orders", post(create_order))))?;
    let layered = server_rt.block_on(serve(
        Router::new()
            .route("/orders", post(create_order))
            .layer(IdempotencyLayer::new(store.clone(), common::NS)),
    ))?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(opts.clients * 2)
        .build()
        .map_err(|e| e.to_string())?;
    let url = |addr: SocketAddr| format!("http://{addr}/orders");
    let (plain_url, layered_url) = (url(plain), url(layered));

    // The replay set: every key completed once, through the layer.
    client_rt.block_on(async {
        let chunk = opts.replay_keys.div_ceil(opts.clients);
        let tasks: Vec<_> = (0..opts.clients)
            .map(|t| {
                let (client, url) = (client.clone(), layered_url.clone());
                let keys = (t * chunk)..((t + 1) * chunk).min(opts.replay_keys);
                tokio::spawn(async move {
                    for i in keys {
                        one(&client, &url, replay_key(i), Some(false)).await?;
                    }
                    Res::Ok(())
                })
            })
            .collect();
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
        Res::Ok(())
    })?;
    store.flush().map_err(|e| e.to_string())?;

    print_header(opts);
    let mut rows = Vec::new();
    let mut all = Vec::new();
    for round in 1..=opts.rounds {
        for w in [Workload::Plain, Workload::Replay, Workload::First] {
            let target = if w == Workload::Plain { &plain_url } else { &layered_url };
            let m = measure(&client_rt, &client, target, w, round, opts);
            let row = Row::of(round, w, &m);
            print_row(&row);
            rows.push(row);
            all.push((w, m));
        }
    }
    let pooled: Vec<Pooled> = [Workload::Plain, Workload::Replay, Workload::First]
        .into_iter()
        .map(|w| pool(w, &all))
        .collect();
    println!();
    println!(
        "{:<8} {:>9} {:>9} {:>9} {:>9}   (all rounds pooled)",
        "workload", "req/s", "p50", "p99", "p99.9"
    );
    for p in &pooled {
        println!(
            "{:<8} {:>9} {:>9} {:>9} {:>9}",
            p.workload.name(),
            fmt_ops(p.rps),
            fmt_ns(p.p50),
            fmt_ns(p.p99),
            fmt_ns(p.p999)
        );
    }
    let (plain_p, replay_p) = (&pooled[0], &pooled[1]);
    let ratio = (plain_p.rps > 0.0).then(|| replay_p.rps / plain_p.rps);
    if let Some(r) = ratio {
        println!(
            "replay through the layer: {:.2}x the plain handler's req/s; p99 {} vs {}",
            r,
            fmt_ns(replay_p.p99),
            fmt_ns(plain_p.p99)
        );
    }
    let stats = store.stats().namespaces.get(common::NS).cloned().unwrap_or_default();
    println!(
        "store: {} replays, {} completions, {} claims in flight answered (should be 0)",
        stats.replayed, stats.completions, stats.in_flight
    );
    for n in notes(opts) {
        println!("note: {n}");
    }
    if let Some(path) = &opts.json {
        std::fs::write(path, to_json(opts, &rows, &pooled, ratio))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    drop(client);
    server_rt.shutdown_background();
    store.close().map_err(|e| format!("close: {e}"))?;
    Ok(rows.iter().all(|r| r.errors == 0 && r.requests > 0))
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("http: {e}");
            std::process::exit(2);
        }
    };
    match run(&opts) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("http: some rows failed (see the errors column)");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("http: {e}");
            std::process::exit(1);
        }
    }
}
