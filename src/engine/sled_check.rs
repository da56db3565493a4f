//! Does sled hold what the store says it should? Compares sled's marker
//! (`format::marker`) with META and with a count of the records, at open and
//! in `verify`, so that a deleted, damaged or rolled-back `sled/` directory
//! is refused instead of silently forgetting completed keys — for an
//! idempotency store a forgotten completion is a side effect run twice.

use crate::error::{Error, Result};
use crate::format::marker::Marker;
use crate::format::meta::Meta;

/// What the user does when sled lost data.
pub(crate) const RECOVERY: &str = "the store refuses to serve rather than forget completed \
     keys (their side effects would run again). To recover: restore the whole data directory \
     (META, journal/ and sled/ together) from a backup taken while the store was closed, or \
     move this directory aside, open a new store and `idemkv import` the last export; see \
     docs/RELIABILITY.md, \"Damaged or missing sled data\" (`Config::accept_sled_as_is`, or \
     `idemkv --accept-sled-as-is export`, reads what is left)";

/// Checks sled at open. `found` is sled's marker; `count` counts sled's
/// records (a scan of them all, so it is called only when needed). Returns
/// the marker to keep from now on.
///
/// A store whose META does not yet say that sled is marked (created by an
/// older build, or its first open was interrupted) is not checked: its
/// marker starts now, from the count. Otherwise the marker must be there,
/// be this store's and not be older than META's checkpoint; its record
/// count is checked against sled by the audit that runs after open (see
/// `background::build_filters`), which is too slow for open itself.
///
/// `as_is` (`Config::accept_sled_as_is`) skips every check: the marker is
/// rebuilt from the count.
pub(crate) fn at_open(
    meta: &Meta,
    found: Option<Marker>,
    count: impl FnOnce() -> Result<u64>,
    as_is: bool,
) -> Result<Marker> {
    if as_is {
        let applied_seq = found
            .filter(|m| m.dir_id == meta.dir_id)
            .map_or(meta.checkpoint_seq, |m| m.applied_seq.max(meta.checkpoint_seq));
        return Ok(Marker { dir_id: meta.dir_id, sled_id: 0, applied_seq, records: count()? });
    }
    if meta.sled_lost() {
        return Err(lost(
            "an earlier count of sled's records disagreed with its marker (sled's files are \
             damaged) and the store has refused to serve since"
                .into(),
        ));
    }
    if !meta.sled_marked() {
        let applied_seq = found.map_or(meta.checkpoint_seq, |m| m.applied_seq);
        return Ok(Marker { dir_id: meta.dir_id, sled_id: 0, applied_seq, records: count()? });
    }
    let lost = |what: String| Err(lost(what));
    let Some(m) = found else {
        if meta.checkpoint_seq == 0 {
            // Never checkpointed: the journal still holds every entry, and
            // sled (new, or deleted) is rebuilt from it — unless sled holds
            // records nobody counted.
            let records = count()?;
            if records == 0 {
                return Ok(Marker { dir_id: meta.dir_id, sled_id: 0, applied_seq: 0, records });
            }
            return lost(format!(
                "sled/ holds {records} record(s) but no marker: it is not this store's sled"
            ));
        }
        return lost(format!(
            "sled/ holds no marker, but META says sled was checkpointed up to journal entry {}: \
             sled's data was deleted or replaced, and every key completed before that \
             checkpoint is missing",
            meta.checkpoint_seq
        ));
    };
    if m.dir_id != meta.dir_id {
        return lost(format!(
            "sled/ belongs to another store (its marker names store {:#010x}, META is store \
             {:#010x})",
            m.dir_id, meta.dir_id
        ));
    }
    if m.sled_id != meta.sled_id && (meta.next_sled_id == 0 || m.sled_id != meta.next_sled_id) {
        return lost(format!(
            "sled/ and META are not from the same copy of this store (sled's marker names copy \
             {:#018x}, META expects {:#018x}): one of them was copied or restored from elsewhere \
             — a `cp -a` copy opened on its own, or an older backup of sled/ or of META alone",
            m.sled_id, meta.sled_id
        ));
    }
    if m.applied_seq < meta.checkpoint_seq {
        return lost(format!(
            "sled/ is older than META: it holds journal entries up to {}, but the last \
             checkpoint covered entries up to {} (sled/ restored from an older copy, or its \
             newest writes were lost); keys completed by the entries in between are missing",
            m.applied_seq, meta.checkpoint_seq
        ));
    }
    Ok(m)
}

/// The description of a record count that disagrees with the marker.
pub(crate) fn count_mismatch(expected: u64, found: u64) -> String {
    if found < expected {
        format!(
            "sled/ holds {found} record(s) but its marker says {expected}: {} record(s) were \
             lost (sled's files are damaged)",
            expected - found
        )
    } else {
        format!(
            "sled/ holds {found} record(s) but its marker says {expected}: {} record(s) more \
             than written (sled's files are damaged or were mixed with another copy)",
            found - expected
        )
    }
}

/// The error for an audit whose count disagrees with the marker.
pub(crate) fn audit_loss(a: &super::storage::Audited) -> Error {
    lost(count_mismatch(a.expected.unwrap_or_default(), a.scanned))
}

/// Maps an error of sled's open that means its files are damaged (sled's
/// `Corruption`, or a read past the end of a truncated file) to the lost-data
/// error; any other error (permissions, a full disk) is left as it is.
pub(crate) fn unreadable(e: Error) -> Error {
    let damaged = match &e {
        Error::Storage { source, .. } => match source.downcast_ref::<sled::Error>() {
            Some(sled::Error::Corruption { .. }) => true,
            Some(sled::Error::Io(io)) => matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ),
            _ => false,
        },
        _ => false,
    };
    if damaged { lost(format!("sled cannot read its own files ({e})")) } else { e }
}

/// The error for sled data that is lost, with what to do.
pub(crate) fn lost(what: String) -> Error {
    Error::Corrupt { key: b"sled".to_vec(), reason: format!("{what}; {RECOVERY}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::meta::{FLAG_SLED_LOST, FLAG_SLED_MARKED};

    fn meta(flags: u32) -> Meta {
        Meta {
            dir_id: 5,
            boot: 2,
            token_ceiling: 1,
            checkpoint_seq: 100,
            created_at: 1,
            flags,
            sled_id: 40,
            next_sled_id: 41,
        }
    }

    fn marker(applied_seq: u64, records: u64) -> Marker {
        Marker { dir_id: 5, sled_id: 40, applied_seq, records }
    }

    #[test]
    fn an_unmarked_store_starts_its_marker_from_the_count() {
        let m = at_open(&meta(0), None, || Ok(7), false).unwrap();
        assert_eq!(m, Marker { sled_id: 0, ..marker(100, 7) });
    }

    #[test]
    fn a_marked_store_refuses_every_kind_of_loss() {
        let marked = meta(FLAG_SLED_MARKED);
        let uncounted = || -> Result<u64> { panic!("a marked store is not counted at open") };
        assert_eq!(
            at_open(&marked, Some(marker(100, 7)), uncounted, false).unwrap(),
            marker(100, 7)
        );
        assert_eq!(
            at_open(&marked, Some(marker(150, 7)), uncounted, false).unwrap(),
            marker(150, 7)
        );
        // The id an open drew, recorded in META before sled had it durably.
        let drawn = Marker { sled_id: 41, ..marker(100, 7) };
        assert_eq!(at_open(&marked, Some(drawn), uncounted, false).unwrap(), drawn);
        // Never checkpointed: the journal rebuilds a missing sled.
        let fresh = Meta { checkpoint_seq: 0, ..marked };
        assert_eq!(
            at_open(&fresh, None, || Ok(0), false).unwrap(),
            Marker { sled_id: 0, ..marker(0, 0) }
        );
        assert!(at_open(&fresh, None, || Ok(1), false).is_err(), "records without a marker");
        let cases = [
            (marked, None, "holds no marker"),
            (marked, Some(Marker { dir_id: 6, ..marker(100, 7) }), "another store"),
            (marked, Some(Marker { sled_id: 39, ..marker(100, 7) }), "not from the same copy"),
            (marked, Some(marker(99, 7)), "older than META"),
            (
                Meta { flags: FLAG_SLED_MARKED | FLAG_SLED_LOST, ..marked },
                Some(marker(100, 7)),
                "earlier count",
            ),
        ];
        for (meta, found, words) in cases {
            let e = at_open(&meta, found, || Ok(7), false).unwrap_err();
            // Accepted as it is, on the operator's word: rebuilt from the count.
            let m = at_open(&meta, found, || Ok(3), true).unwrap();
            assert_eq!((m.dir_id, m.records), (5, 3));
            assert!(m.applied_seq >= meta.checkpoint_seq);
            let msg = e.to_string();
            assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
            assert!(msg.contains(words) && msg.contains("idemkv import"), "{msg}");
        }
    }

    #[test]
    fn count_mismatches_say_which_way() {
        assert!(count_mismatch(7, 6).contains("1 record(s) were lost"));
        assert!(count_mismatch(7, 8).contains("more than written"));
    }
}
