//! The demo's side effect: an append-only ledger file with one line
//! `source event_id token` per executed side effect. Each line is written and
//! `sync_data`ed before the endpoint answers 200 (which the layer stores);
//! concurrent requests share one `sync_data` (group commit, like the store's
//! journal).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use parking_lot::{Condvar, Mutex, MutexGuard};

/// One executed side effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The namespace.
    pub source: String,
    /// The event id.
    pub event_id: String,
    /// The fencing token of the attempt that ran it.
    pub token: u64,
}

/// A ledger file as read from disk.
#[derive(Debug, Default)]
pub struct LedgerFile {
    /// Every complete line, in order.
    pub entries: Vec<LedgerEntry>,
    /// Length of the complete lines in bytes.
    pub valid_len: u64,
    /// Bytes after the last newline (a torn write of a dead process), ignored.
    pub torn_bytes: u64,
}

/// Reads a ledger file; a missing file is an empty ledger.
pub fn read(path: &Path) -> Result<LedgerFile> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes).with_context(|| format!("reading {}", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    }
    let valid_len = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let text = std::str::from_utf8(&bytes[..valid_len])
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut it = line.split(' ');
        let (Some(source), Some(event_id), Some(token), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            bail!("{} line {}: malformed entry {line:?}", path.display(), n + 1);
        };
        entries.push(LedgerEntry {
            source: source.to_string(),
            event_id: event_id.to_string(),
            token: token
                .parse()
                .with_context(|| format!("{} line {}: bad token", path.display(), n + 1))?,
        });
    }
    Ok(LedgerFile {
        entries,
        valid_len: valid_len as u64,
        torn_bytes: (bytes.len() - valid_len) as u64,
    })
}

/// The ledger, open for appending, with an index of what it holds.
#[derive(Debug)]
pub struct Ledger {
    file: Mutex<File>,
    state: Mutex<State>,
    synced: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Lines written by callers but not yet handed to the file.
    pending: Vec<u8>,
    /// Sequence number of the last line appended to `pending`.
    assigned: u64,
    /// Every line up to this sequence number is synced.
    durable: u64,
    /// A leader is writing and syncing.
    syncing: bool,
    /// The first write error; the ledger refuses everything after it.
    failed: Option<String>,
    /// `"source event_id"` → token, for every durable line.
    index: HashMap<String, u64>,
}

impl Ledger {
    /// Opens (or creates) the ledger, cutting off a torn last line.
    pub fn open(path: &Path) -> Result<(Ledger, LedgerFile)> {
        let loaded = read(path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        if loaded.torn_bytes > 0 {
            file.set_len(loaded.valid_len)
                .and_then(|()| file.sync_data())
                .with_context(|| format!("cutting the torn tail of {}", path.display()))?;
        }
        let index =
            loaded.entries.iter().map(|e| (index_key(&e.source, &e.event_id), e.token)).collect();
        let ledger = Ledger {
            file: Mutex::new(file),
            state: Mutex::new(State { index, ..State::default() }),
            synced: Condvar::new(),
        };
        Ok((ledger, loaded))
    }

    /// The token of the side effect recorded for this event, if any.
    pub fn lookup(&self, source: &str, event_id: &str) -> Option<u64> {
        self.state.lock().index.get(&index_key(source, event_id)).copied()
    }

    /// Runs the side effect: appends the line and returns once it is synced.
    pub fn record(&self, source: &str, event_id: &str, token: u64) -> Result<()> {
        let mut st = self.state.lock();
        st.pending.extend_from_slice(format!("{source} {event_id} {token}\n").as_bytes());
        st.assigned += 1;
        let mine = st.assigned;
        loop {
            if let Some(e) = &st.failed {
                bail!("the ledger failed earlier: {e}");
            }
            if st.durable >= mine {
                break;
            }
            if st.syncing {
                self.synced.wait(&mut st);
                continue;
            }
            // Become the leader: write and sync everything pending at once.
            st.syncing = true;
            let batch = std::mem::take(&mut st.pending);
            let upto = st.assigned;
            let res = MutexGuard::unlocked(&mut st, || {
                let mut f = self.file.lock();
                f.write_all(&batch).and_then(|()| f.sync_data())
            });
            st.syncing = false;
            match res {
                Ok(()) => st.durable = upto,
                Err(e) => st.failed = Some(e.to_string()),
            }
            self.synced.notify_all();
        }
        st.index.insert(index_key(source, event_id), token);
        Ok(())
    }
}

fn index_key(source: &str, event_id: &str) -> String {
    format!("{source} {event_id}")
}
