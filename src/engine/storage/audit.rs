//! Keeping sled's marker, and counting records against it without stopping
//! writes.
//!
//! An audit scans the records a page at a time, in key order, while batches
//! go on between pages. Every batch that creates or deletes a record already
//! scanned (at or before the audit's cursor) is noted, so that at the end
//! `scanned = marker.records - net records created behind the cursor`
//! exactly: a record created behind the cursor was not counted, one deleted
//! behind it was. Pages are read, and batches applied, under one lock.

use super::{Error, Marker, RECORD_PREFIX, Result, Storage, marker, record_key};

/// Records per page of an audit (the lock is held for one page).
const PAGE: usize = 4096;

/// The marker kept in memory and the audit under way, if any.
#[derive(Default)]
pub(super) struct Tracked {
    /// sled's marker, once marking has started.
    pub marker: Option<Marker>,
    /// Raw key of the last record scanned; `None` before the first page.
    cursor: Option<Vec<u8>>,
    /// Whether an audit is under way.
    auditing: bool,
    /// Net records created at or before the cursor since the audit began.
    behind: i64,
    /// The same, for the batch being applied (kept once it is applied).
    pending: i64,
    /// A batch failed to apply since this audit began: part of it may be in
    /// sled without its marker, so the count proves nothing.
    failed: bool,
}

impl Tracked {
    /// Notes that the batch being applied moves the count of `raw` by `delta`.
    pub fn note(&mut self, raw: &[u8], delta: i64) {
        if delta != 0 && self.auditing && self.cursor.as_deref().is_some_and(|c| raw <= c) {
            self.pending += delta;
        }
    }

    /// Starts (or ends) an audit: no cursor, nothing noted.
    fn restart(&mut self, auditing: bool) {
        self.auditing = auditing;
        self.cursor = None;
        self.behind = 0;
        self.pending = 0;
        self.failed = false;
    }

    /// The batch was applied (or not): keep its marker and notes, or drop them.
    pub fn settle(&mut self, next: Option<Marker>, applied: bool) {
        if applied {
            if next.is_some() {
                self.marker = next;
            }
            self.behind += self.pending;
        } else {
            self.failed = true;
        }
        self.pending = 0;
    }
}

/// What an audit found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Audited {
    /// Records scanned.
    pub scanned: u64,
    /// Records the marker says the scan should have found; `None` when sled
    /// is not marked or a batch failed during the audit (nothing to compare).
    pub expected: Option<u64>,
    /// When the audit rebuilt the count (after an unclean end) and it had
    /// to change it: what the marker said before.
    pub rebuilt_from: Option<u64>,
}

impl Audited {
    /// Whether the scan found what the marker says.
    pub fn matches(&self) -> bool {
        self.expected.is_none_or(|e| e == self.scanned)
    }
}

impl Storage {
    /// The marker sled holds, if any (damaged: `Error::Corrupt`).
    pub fn read_marker(&self) -> Result<Option<Marker>> {
        let v = self
            .db()?
            .get(super::MARKER_KEY)
            .map_err(|e| Error::storage("reading the marker", e))?;
        v.map(|bytes| marker::decode(&bytes)).transpose()
    }

    /// Counts the records in sled (a scan of their keys).
    pub fn count_records(&self) -> Result<u64> {
        let mut n = 0u64;
        for item in self.db()?.scan_prefix([RECORD_PREFIX]).keys() {
            item.map_err(|e| Error::storage("counting records", e))?;
            n += 1;
        }
        Ok(n)
    }

    /// Starts keeping the marker, from `m` (checked by the caller against
    /// META), and writes it now if sled's copy differs.
    pub fn start_marking(&self, m: Marker) -> Result<()> {
        let db = self.db()?;
        let mut tracked = self.marker.lock();
        let encoded = marker::encode(&m);
        let stored =
            db.get(super::MARKER_KEY).map_err(|e| Error::storage("reading the marker", e))?;
        if stored.as_deref() != Some(&encoded[..]) {
            db.insert(super::MARKER_KEY, &encoded[..])
                .map_err(|e| Error::storage("writing the marker", e))?;
        }
        tracked.marker = Some(m);
        Ok(())
    }

    /// Gives the marker a new `sled_id` (written now, durable with the next
    /// sync). The caller has recorded it in META first.
    pub fn set_sled_id(&self, sled_id: u64) -> Result<()> {
        let db = self.db()?;
        let mut tracked = self.marker.lock();
        let Some(m) = tracked.marker.map(|m| Marker { sled_id, ..m }) else { return Ok(()) };
        db.insert(super::MARKER_KEY, &marker::encode(&m)[..])
            .map_err(|e| Error::storage("writing the marker", e))?;
        tracked.marker = Some(m);
        Ok(())
    }

    /// Runs `each` over every stored record (raw key, bytes), in key order, a
    /// page at a time while writes go on between pages, and counts them
    /// against the marker — or, with `rebase`, rebuilds the marker's count
    /// from them (and writes the marker). `keep_going` is asked before each
    /// page; `None` when it said no.
    pub fn audit(
        &self,
        mut each: impl FnMut(&[u8], &[u8]),
        mut keep_going: impl FnMut() -> bool,
        rebase: bool,
    ) -> Result<Option<Audited>> {
        let _one = self.auditing.lock();
        self.marker.lock().restart(true);
        let result = (|| {
            let mut scanned = 0u64;
            loop {
                if !keep_going() {
                    return Ok(None);
                }
                // sled's read lock per page only: close must be able to take
                // it between pages.
                let db = self.db()?;
                let mut tracked = self.marker.lock();
                let start = match &tracked.cursor {
                    Some(raw) => std::ops::Bound::Excluded(record_key(raw)),
                    None => std::ops::Bound::Included(vec![RECORD_PREFIX]),
                };
                let mut last = None;
                let mut n = 0;
                for item in db.range::<Vec<u8>, _>((start, std::ops::Bound::Unbounded)) {
                    let (k, v) = item.map_err(|e| Error::storage("scanning records", e))?;
                    if k.first() != Some(&RECORD_PREFIX) {
                        break;
                    }
                    each(&k[1..], &v);
                    n += 1;
                    if n == PAGE {
                        last = Some(k[1..].to_vec());
                        break;
                    }
                }
                scanned += n as u64;
                match last {
                    Some(raw) => tracked.cursor = Some(raw),
                    None => {
                        // The whole tree is scanned: compare under the lock
                        // (nothing to compare after a failed batch).
                        if tracked.failed {
                            return Ok(Some(Audited {
                                scanned,
                                expected: None,
                                rebuilt_from: None,
                            }));
                        }
                        let behind = tracked.behind;
                        let expected =
                            tracked.marker.map(|m| m.records.saturating_add_signed(-behind));
                        if let (true, Some(m), Some(e)) = (rebase, tracked.marker, expected)
                            && e != scanned
                        {
                            let fixed =
                                Marker { records: scanned.saturating_add_signed(behind), ..m };
                            db.insert(super::MARKER_KEY, &marker::encode(&fixed)[..])
                                .map_err(|e| Error::storage("writing the marker", e))?;
                            tracked.marker = Some(fixed);
                            tracing::info!(
                                target: "idemkv",
                                was = e,
                                now = scanned,
                                "sled's record count rebuilt after an unclean end"
                            );
                            return Ok(Some(Audited {
                                scanned,
                                expected: Some(scanned),
                                rebuilt_from: Some(e),
                            }));
                        }
                        return Ok(Some(Audited { scanned, expected, rebuilt_from: None }));
                    }
                }
            }
        })();
        self.marker.lock().restart(false);
        result
    }
}
