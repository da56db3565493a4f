//! Inspection and maintenance: listing, export and import.

use super::{Entry, Store};
use crate::core::{self, Record, State};
use crate::error::{Error, Result};
use crate::format::record;
use crate::key::Key;
use crate::text::hex;

/// One record in portable form: the JSON Lines of `idemkv export`.
///
/// `record` (our encoded record, hex) is what `import` reads; the other
/// fields repeat its content for people and scripts. Claims in progress are
/// exported with boot epoch 0, so that after an import they are orphans —
/// the process that held them is not the importer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ExportedRecord {
    /// The key's namespace.
    pub namespace: String,
    /// The id, when it is UTF-8.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Option::is_none"))]
    pub id: Option<String>,
    /// The id in hex, when it is not UTF-8.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Option::is_none"))]
    pub id_hex: Option<String>,
    /// `in_progress`, `completed`, `failed` or `claimable`.
    pub state: String,
    /// Times acquired.
    pub attempts: u32,
    /// First claim, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Expiry, ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// The encoded record (docs/FORMAT.md, "Record"), hex.
    pub record: String,
}

impl ExportedRecord {
    /// The key this record belongs to. Fails with [`Error::InvalidKey`]
    /// when the namespace or id is not a valid key, `id_hex` is not hex, or
    /// both `id` and `id_hex` are missing. Never blocks.
    pub fn key(&self) -> Result<Key> {
        match (&self.id, &self.id_hex) {
            (Some(id), _) => Key::new(&self.namespace, id),
            (None, Some(h)) => Key::new(&self.namespace, unhex(h)?),
            (None, None) => Err(Error::InvalidKey { reason: "neither id nor id_hex".into() }),
        }
    }
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    let bad = || Error::InvalidKey { reason: format!("not hex: {s:.40}") };
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()).ok_or_else(bad))
        .collect()
}

fn state_name(r: &Record) -> &'static str {
    match r.state {
        State::InProgress { .. } => "in_progress",
        State::Completed { .. } => "completed",
        State::Failed { .. } => "failed",
        State::Idle { .. } => "claimable",
    }
}

impl Store {
    /// Up to `limit` live records in key order, optionally in one namespace,
    /// starting after `after` (pass the last key of the previous page).
    /// A snapshot as of the call: changes made meanwhile may or may not show.
    ///
    /// # Blocking
    /// First makes every transition made before the call durable (a
    /// journal fsync, in either durability mode) and waits until sled holds
    /// it (the applier); then reads sled a page at a time, taking no stripe
    /// lock. No async form: from async code call it in `spawn_blocking`.
    ///
    /// # Errors
    /// Nothing is changed by a failed `list`.
    /// - [`Error::Closed`] after close.
    /// - [`Error::InvalidKey`] if `namespace` is not one that [`Key::new`]
    ///   accepts (empty, or longer than 64 bytes).
    /// - [`Error::Poisoned`] when earlier transitions can no longer become
    ///   durable or reach sled.
    /// - [`Error::Storage`] if sled cannot be read; [`Error::Corrupt`] or
    ///   [`Error::UnsupportedVersion`] if a record in the range read cannot
    ///   be decoded — one such record fails the whole call (find it with
    ///   [`Store::verify`], delete it with [`Store::remove`]).
    pub fn list(
        &self,
        namespace: Option<&str>,
        after: Option<&Key>,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let b = self.backend();
        b.check_open()?; // closed comes before bad input
        if let Some(ns) = namespace {
            crate::key::validate_namespace_name(ns)?;
        }
        b.catch_up()?;
        let prefix = match namespace {
            Some(ns) => {
                // A name over 255 bytes would wrap the length byte and list
                // another namespace: refuse what no key can have.
                crate::key::validate_namespace_name(ns)?;
                let mut p = vec![u8::try_from(ns.len()).unwrap_or(u8::MAX)];
                p.extend_from_slice(ns.as_bytes());
                p
            }
            None => Vec::new(),
        };
        let now = self.inner.config.clock.now_millis();
        let mut out = Vec::new();
        let mut cursor = after.map(|k| k.as_raw().to_vec());
        while out.len() < limit {
            let page = b.scan(&prefix, cursor.as_deref(), limit - out.len())?;
            let Some((last, _)) = page.last() else { break };
            cursor = Some(last.clone());
            for (raw, r) in page {
                if core::live(Some(&r), now).is_some() {
                    out.push(Entry::from_record(Key::from_raw(&raw)?, &r, now, b.boot()));
                }
            }
        }
        Ok(out)
    }

    /// Calls `each` with every live record in portable form, in key order;
    /// returns how many it passed. Claims in progress are exported as
    /// orphans (see [`ExportedRecord`]).
    ///
    /// # Blocking
    /// As [`Store::list`]: a journal fsync and a wait for the applier, then
    /// sled read 1,024 records at a time, `each` called between reads with
    /// no lock held. Records changed while it runs may or may not show.
    ///
    /// # Errors
    /// Stops at the first error; the records passed to `each` before it
    /// stay passed, and nothing in the store is changed.
    /// - The first `Err` that `each` returns, as it is.
    /// - [`Error::Closed`], [`Error::Poisoned`], [`Error::Storage`],
    ///   [`Error::Corrupt`] or [`Error::UnsupportedVersion`] as
    ///   [`Store::list`] returns them: one record that cannot be decoded
    ///   stops the export (to export the rest, [`Store::remove`] it first).
    pub fn export(&self, mut each: impl FnMut(ExportedRecord) -> Result<()>) -> Result<u64> {
        let b = self.backend();
        b.catch_up()?;
        let now = self.inner.config.clock.now_millis();
        let mut cursor: Option<Vec<u8>> = None;
        let mut n = 0;
        loop {
            let page = b.scan(&[], cursor.as_deref(), 1024)?;
            let Some((last, _)) = page.last() else { return Ok(n) };
            cursor = Some(last.clone());
            for (raw, mut r) in page {
                if core::live(Some(&r), now).is_none() {
                    continue;
                }
                if let State::InProgress { boot, .. } = &mut r.state {
                    *boot = 0;
                }
                let key = Key::from_raw(&raw)?;
                let (id, id_hex) = match std::str::from_utf8(key.id()) {
                    Ok(id) => (Some(id.to_string()), None),
                    Err(_) => (None, Some(hex(key.id()))),
                };
                each(ExportedRecord {
                    namespace: key.namespace().to_string(),
                    id,
                    id_hex,
                    state: state_name(&r).to_string(),
                    attempts: r.attempts,
                    created_at_ms: r.created_at,
                    expires_at_ms: r.expires_at,
                    record: hex(&record::encode(&r)),
                })?;
                n += 1;
            }
        }
    }

    /// Stores an exported record under its key, replacing what is there,
    /// through the journal like any transition. The record is validated
    /// (checksum, version) first; fencing tokens issued afterwards exceed the
    /// record's.
    ///
    /// # Blocking
    /// A transition of the key: its stripe lock (reading sled outside it on
    /// a cache miss), backpressure while the applier is far behind, and in
    /// `Durable` mode the journal fsync of the record. When the record's
    /// token is beyond the store's durable token ceiling, also a META write
    /// and fsync to raise it. No async form.
    ///
    /// # Errors
    /// - [`Error::InvalidKey`] for a bad `namespace`, `id` or `id_hex`;
    ///   [`Error::Corrupt`] when `record` is not hex or fails its checksum or
    ///   decoding; [`Error::UnsupportedVersion`] for a record of a newer
    ///   idemkv. Nothing changed.
    /// - [`Error::TokenSpaceExhausted`] when the record's fencing token is
    ///   above [`MAX_IMPORTED_TOKEN`](crate::MAX_IMPORTED_TOKEN), which no
    ///   store issues before 2^63 claims: such a record would use up the
    ///   token space. Nothing changed.
    /// - [`Error::Conflict`] when the key is claimed in this store (held,
    ///   or orphaned but still completable): finish or remove that claim
    ///   first. No record changed (later fencing tokens already exceed the
    ///   imported one).
    /// - [`Error::Closed`]; [`Error::Poisoned`] — refused, or the record was
    ///   journaled and its fsync failed, so it may be durable (`get` the key
    ///   after a reopen).
    /// - [`Error::Io`] when writing META fails: nothing imported, and the
    ///   store is poisoned from then on.
    pub fn import(&self, exported: &ExportedRecord) -> Result<()> {
        self.backend().check_writable()?;
        let key = exported.key()?;
        let bytes = unhex(&exported.record).map_err(|_| Error::Corrupt {
            key: key.as_raw().to_vec(),
            reason: "record is not hex".into(),
        })?;
        let r = record::decode(key.as_raw(), &bytes)?;
        self.backend().import(&key, r)
    }
}
