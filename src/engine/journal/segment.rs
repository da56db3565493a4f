//! Segment files on disk: naming, listing, recovery and removal.
//!
//! A segment is named after the sequence number of its first frame,
//! `{first_seq:020}.log`, so a directory listing sorted by name is sorted by
//! sequence. Recovery reads segments in order and stops at the first damage.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::core::RecoveryReport;
use crate::error::{Error, Result};
use crate::format::entry::{
    Frame, HeaderError, Mutation, SEGMENT_HEADER_LEN, SEGMENT_VERSION, check_segment_header,
    decode_frame,
};

const SUFFIX: &str = ".log";

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}{SUFFIX}"))
}

/// `(first_seq, path)` of every segment in `dir`, in sequence order.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::io("listing journal segments", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing journal segments", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        if let Ok(first) = stem.parse::<u64>() {
            out.push((first, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Replays every intact entry with a sequence number above `checkpoint`,
/// in order, through `apply`. At the first torn or corrupt frame it stops,
/// truncates that segment there and deletes the segments after it.
pub(crate) fn recover(
    dir: &Path,
    checkpoint: u64,
    apply: &mut dyn FnMut(u64, Mutation) -> Result<()>,
) -> Result<RecoveryReport> {
    let segments = list_segments(dir)?;
    let mut report = RecoveryReport { last_seq: checkpoint, ..Default::default() };
    // The sequence number the next frame must carry, once one has been seen.
    let mut expect: Option<u64> = None;
    for (i, (first, path)) in segments.iter().enumerate() {
        let bytes =
            fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        report.segments += 1;
        let damage = match check_segment_header(&bytes) {
            Err(HeaderError::Version(v)) => {
                return Err(crate::format::unsupported(
                    &format!("journal segment {}", path.display()),
                    v,
                    SEGMENT_VERSION,
                ));
            }
            Err(HeaderError::Damaged) => Some((0, "damaged segment header".to_string())),
            Ok(()) => scan(&bytes, *first, checkpoint, &mut expect, &mut report, apply)?,
        };
        if let Some((at, why)) = damage {
            let mut dropped = (bytes.len() - at) as u64;
            cut(path, at)?;
            for (_, later) in &segments[i + 1..] {
                dropped += fs::metadata(later).map(|m| m.len()).unwrap_or(0);
                fs::remove_file(later)
                    .map_err(|e| Error::io(format!("removing {}", later.display()), e))?;
            }
            sync_dir(dir)?;
            report.bytes_dropped = dropped;
            report.damage = Some(format!("{why} in {} at byte {at}", path.display()));
            break;
        }
    }
    Ok(report)
}

/// Scans the frames of one segment; returns where damage starts, if any.
fn scan(
    bytes: &[u8],
    first: u64,
    checkpoint: u64,
    expect: &mut Option<u64>,
    report: &mut RecoveryReport,
    apply: &mut dyn FnMut(u64, Mutation) -> Result<()>,
) -> Result<Option<(usize, String)>> {
    let mut at = SEGMENT_HEADER_LEN;
    let mut want = expect.unwrap_or(first);
    if want != first {
        return Ok(Some((at, format!("segment starts at {first}, expected {want}"))));
    }
    if expect.is_none() && first > checkpoint.saturating_add(1) {
        return Err(Error::Corrupt {
            key: b"journal".to_vec(),
            reason: format!(
                "journal starts at entry {first} but the checkpoint covers only up to \
                 {checkpoint}: entries are missing; restore the journal directory"
            ),
        });
    }
    while at < bytes.len() {
        match decode_frame(&bytes[at..]) {
            Frame::Ok { seq, mutation, len } => {
                if seq != want {
                    return Ok(Some((at, format!("entry {seq} where {want} was expected"))));
                }
                if seq > checkpoint {
                    apply(seq, mutation)?;
                    report.entries_replayed += 1;
                    report.last_seq = seq;
                } else {
                    report.entries_skipped += 1;
                }
                want += 1;
                *expect = Some(want);
                at += len;
            }
            Frame::Torn => return Ok(Some((at, "torn entry".into()))),
            Frame::Corrupt(why) => return Ok(Some((at, why))),
        }
    }
    *expect = Some(want);
    Ok(None)
}

/// Truncates a damaged segment at `at`, or removes it if not even its header
/// survives.
fn cut(path: &Path, at: usize) -> Result<()> {
    let ctx = || format!("truncating damaged journal segment {}", path.display());
    if at < SEGMENT_HEADER_LEN {
        return fs::remove_file(path).map_err(|e| Error::io(ctx(), e));
    }
    let f = OpenOptions::new().write(true).open(path).map_err(|e| Error::io(ctx(), e))?;
    f.set_len(at as u64).map_err(|e| Error::io(ctx(), e))?;
    f.sync_all().map_err(|e| Error::io(ctx(), e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}

#[cfg(any(test, feature = "testing"))]
/// Scans one segment image in memory, as recovery would with no checkpoint:
/// returns the intact entries before the first damage, and the damage. For
/// fuzzing; never panics on any input.
pub fn scan_segment_image(bytes: &[u8]) -> (Vec<(u64, Mutation)>, Option<String>) {
    use crate::format::entry::check_segment_header;
    if let Err(e) = check_segment_header(bytes) {
        return (Vec::new(), Some(format!("{e:?}")));
    }
    let first = match crate::format::entry::decode_frame(&bytes[SEGMENT_HEADER_LEN..]) {
        Frame::Ok { seq, .. } => seq,
        _ => 1,
    };
    let mut out = Vec::new();
    let mut report = RecoveryReport::default();
    let mut expect = None;
    let damage = scan(bytes, first, 0, &mut expect, &mut report, &mut |seq, m| {
        out.push((seq, m));
        Ok(())
    });
    match damage {
        Ok(d) => (out, d.map(|(at, why)| format!("{why} at byte {at}"))),
        Err(e) => (out, Some(e.to_string())),
    }
}

/// Deletes the segments whose every entry is `<= checkpoint`. The newest
/// segment is never deleted: the writer may be appending to it.
pub(crate) fn remove_segments_below(dir: &Path, checkpoint: u64) -> Result<usize> {
    let segments = list_segments(dir)?;
    let mut removed = 0;
    for pair in segments.windows(2) {
        let (next_first, _) = pair[1];
        if next_first <= checkpoint.saturating_add(1) {
            fs::remove_file(&pair[0].1)
                .map_err(|e| Error::io(format!("removing {}", pair[0].1.display()), e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Deletes the segments named from `first` on: segments left without an
/// entry by a crash right after their creation, whose names the next
/// segment would take.
pub(crate) fn remove_segments_from(dir: &Path, first: u64) -> Result<()> {
    let mut removed = false;
    for (start, path) in list_segments(dir)? {
        if start >= first {
            fs::remove_file(&path)
                .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Fsyncs every segment: entries recovery read may have been only in the
/// page cache of a process that died before its fsync, and are about to be
/// served as durable.
pub(crate) fn sync_segments(dir: &Path) -> Result<()> {
    for (_, path) in list_segments(dir)? {
        File::open(&path)
            .and_then(|f| f.sync_data())
            .map_err(|e| Error::io(format!("fsyncing {}", path.display()), e))?;
    }
    Ok(())
}

/// Deletes every segment (after a checkpoint that covers them all).
pub(crate) fn remove_all_segments(dir: &Path) -> Result<()> {
    for (_, path) in list_segments(dir)? {
        fs::remove_file(&path).map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
    }
    sync_dir(dir)
}
