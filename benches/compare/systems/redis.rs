//! Redis on loopback: `redis-server` child processes (started on first use,
//! killed when dropped) and a client doing `SET NX PX` + `SET PX`.

use std::hint::black_box;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Client, LEASE_MS, RETENTION_MS, System};
use crate::common;
use crate::{Res, err};

/// A `redis-server` child process; killed when dropped.
pub struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `redis-server` can be run.
fn redis_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl RedisServer {
    fn start(aof: bool) -> Res<RedisServer> {
        let dir = tempfile::tempdir().map_err(err)?;
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(err)?.port();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        cmd.args(["--appendonly", if aof { "yes" } else { "no" }]);
        if aof {
            cmd.args(["--appendfsync", "always"]);
        }
        cmd.arg("--dir").arg(dir.path());
        cmd.args(["--daemonize", "no", "--maxclients", "1000"]);
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(err)?;
        let server = RedisServer { child, port, _dir: dir };
        let client = server.client()?;
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let ping = client
                .get_connection()
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            match ping {
                Ok(_) => return Ok(server),
                Err(_) if Instant::now() < give_up => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("redis-server on port {port} did not answer: {e}")),
            }
        }
    }

    /// A client with `TCP_NODELAY`, as hiredis and `redis-benchmark` use
    /// (the redis crate leaves Nagle's algorithm on by default).
    fn client(&self) -> Res<redis::Client> {
        use redis::IntoConnectionInfo;
        let info =
            format!("redis://127.0.0.1:{}/", self.port).into_connection_info().map_err(err)?;
        let tcp = redis::io::tcp::TcpSettings::default().set_nodelay(true);
        redis::Client::open(info.set_tcp_settings(tcp)).map_err(err)
    }
}

/// A Redis server, flushed, and the fencing tokens of its claims.
pub struct Redis {
    client: redis::Client,
    tokens: AtomicU64,
}

impl Redis {
    /// Connects to `server` and empties it.
    pub fn new(server: &RedisServer) -> Res<Self> {
        let client = server.client()?;
        let mut con = client.get_connection().map_err(err)?;
        redis::cmd("FLUSHALL").query::<()>(&mut con).map_err(err)?;
        Ok(Redis { client, tokens: AtomicU64::new(1) })
    }
}

/// One connection per thread.
struct RedisClient<'a> {
    sys: &'a Redis,
    con: redis::Connection,
}

impl System for Redis {
    fn client(&self) -> Res<Box<dyn Client + '_>> {
        let con = self.client.get_connection().map_err(err)?;
        Ok(Box::new(RedisClient { sys: self, con }))
    }
}

impl Client for RedisClient<'_> {
    fn cycle(&mut self, key: &[u8]) -> Res<()> {
        let token = self.sys.tokens.fetch_add(1, Ordering::Relaxed);
        let mut claimed = b"p".to_vec();
        claimed.extend_from_slice(&token.to_be_bytes());
        let ok: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(claimed)
            .arg("NX")
            .arg("PX")
            .arg(LEASE_MS)
            .query(&mut self.con)
            .map_err(err)?;
        if ok.is_none() {
            return Err("SET NX of a new key found a value".into());
        }
        let mut done = b"c".to_vec();
        done.extend_from_slice(common::RESPONSE);
        redis::cmd("SET")
            .arg(key)
            .arg(done)
            .arg("PX")
            .arg(RETENTION_MS)
            .query::<()>(&mut self.con)
            .map_err(err)
    }
    fn lookup(&mut self, key: &[u8]) -> Res<()> {
        let v: Option<Vec<u8>> = redis::cmd("GET").arg(key).query(&mut self.con).map_err(err)?;
        match v {
            Some(v) if v.first() == Some(&b'c') => {
                black_box(v);
                Ok(())
            }
            other => Err(format!("lookup found {other:?}")),
        }
    }
}

/// The Redis servers, started on first use and killed at the end.
pub struct Servers {
    /// Whether `redis-server` can be run; without it the Redis rows are skipped.
    pub installed: bool,
    plain: Option<RedisServer>,
    aof: Option<RedisServer>,
}

impl Servers {
    /// None started yet.
    pub fn new() -> Self {
        Servers { installed: redis_installed(), plain: None, aof: None }
    }

    /// The server without (`aof` false) or with `appendfsync always`,
    /// started on first use.
    pub fn get(&mut self, aof: bool) -> Res<&RedisServer> {
        let slot = if aof { &mut self.aof } else { &mut self.plain };
        if slot.is_none() {
            *slot = Some(RedisServer::start(aof)?);
        }
        Ok(slot.as_ref().expect("just started"))
    }
}
