//! Finding the end of the last committed transaction, and the index up to
//! it, exactly as `FileStorage(path, read_only=True)` does.

use std::fs::File;
use std::path::Path;

use super::record::{
    DATA_HEADER_LEN, DataHeader, FILE_HEADER_LEN, LEN_SIZE, MAGIC_21, MAGIC_30, PosReader,
    TXN_HEADER_LEN, TxnHeader, be64,
};
use super::{FormatError, HINT_CORRUPT, HINT_NOT_FS};
use crate::error::{Error, IoContext, Result};
use crate::index::{self, Index, MAX_POS};
use crate::report::{Event, Report};

/// The committed state of a Data.fs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Position just after the last committed transaction: ZODB's
    /// `getSize()`. Always ≥ 4 (even for an empty file, as in ZODB).
    pub pos: u64,
    /// oid → position of its latest data record before `pos`.
    pub index: Index,
    /// Whether `Data.fs.index` was used (it was sane) rather than a full scan.
    pub used_index: bool,
}

/// Opens the committed state of the FileStorage `file` (named `path`, whose
/// companion `<path>.index` is consulted), of size `size`.
///
/// Like ZODB: `<path>.index` is loaded and, if `_check_sanity` judges it
/// sane, the scan starts at its position; otherwise (missing, unreadable,
/// old format, insane) the whole file is scanned. Warnings ZODB logs
/// ("Ignoring index for …") go to `report`.
pub fn committed(path: &Path, file: &File, size: u64, report: &dyn Report) -> Result<Committed> {
    committed_with_hint(path, file, size, None, report)
}

/// An index known to describe a Data.fs's first `pos` bytes, loaded only
/// if it is used: an index takes 8 bytes per object in memory, and two at
/// once (the hint and `Data.fs.index`) would double a backup's peak.
pub struct Hint<'a> {
    /// The position the index is valid at.
    pub pos: u64,
    /// Loads it; `None` if it cannot be read (then it is not used).
    pub load: Box<dyn FnOnce() -> Option<Index> + 'a>,
}

impl<'a> Hint<'a> {
    /// A hint whose index is already in memory.
    pub fn loaded(pos: u64, index: Index) -> Hint<'a> {
        Hint {
            pos,
            load: Box::new(move || Some(index)),
        }
    }
}

/// [`committed`], also considering `hint`: an index known to describe the
/// file's first `hint.pos` bytes (the `.index` of the backup an incremental
/// continues, whose bytes were just checked by md5). Only the index tried
/// is in memory at a time.
///
/// Of the hint and `<path>.index`, the one valid at the later position is
/// tried first (`<path>.index` on a tie, as ZODB would use it), then the
/// other; each only if sane. Starting from the hint
/// scans only what was appended since the last backup, where ZODB rescans
/// everything since `<path>.index` was last written (at the last clean
/// shutdown). Both give the same index: that of the file's bytes.
pub fn committed_with_hint(
    path: &Path,
    file: &File,
    size: u64,
    hint: Option<Hint>,
    report: &dyn Report,
) -> Result<Committed> {
    let shown = path.display().to_string();
    let mut reader = PosReader::new(file);
    if size == 0 {
        // ZODB returns 4 without looking for a magic.
        return Ok(Committed {
            pos: FILE_HEADER_LEN,
            index: Index::new(),
            used_index: false,
        });
    }
    check_magic(&mut reader, &shown)?;
    let index_path = format!("{}.index", path.display());
    let companion_pos = index::peek_pos_file(&index_path);
    let hint_first = match (&hint, companion_pos) {
        (Some(h), Some(cpos)) => h.pos > cpos,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let load = |hint: Option<Hint>| hint.and_then(|h| (h.load)().map(|ix| (h.pos, ix)));
    let mut hint = hint;
    if hint_first
        && let Some(found) = try_start(&mut reader, &shown, size, load(hint.take()), report)?
    {
        return Ok(found);
    }
    if companion_pos.is_some()
        && let Some((ipos, index)) = load_companion_index(path, report)
    {
        if let Some(found) = try_start(&mut reader, &shown, size, Some((ipos, index)), report)? {
            return Ok(found);
        }
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        report.event(&Event::IgnoringIndex(abs.display().to_string()));
    }
    if let Some(found) = try_start(&mut reader, &shown, size, load(hint), report)? {
        return Ok(found);
    }
    let mut index = Index::new();
    let pos = scan_from(
        &mut reader,
        &shown,
        size,
        FILE_HEADER_LEN,
        &mut index,
        report,
    )?;
    Ok(Committed {
        pos,
        index,
        used_index: false,
    })
}

/// Scans on from `start` if it is given and sane.
fn try_start(
    reader: &mut PosReader,
    shown: &str,
    size: u64,
    start: Option<(u64, Index)>,
    report: &dyn Report,
) -> Result<Option<Committed>> {
    let Some((ipos, mut index)) = start else {
        return Ok(None);
    };
    if !is_sane(reader, size, ipos, &index) {
        return Ok(None);
    }
    let pos = scan_from(reader, shown, size, ipos, &mut index, report)?;
    Ok(Some(Committed {
        pos,
        index,
        used_index: true,
    }))
}

fn check_magic(reader: &mut PosReader, shown: &str) -> Result<()> {
    let magic = reader.read_at(0, 4).at_byte(shown, 0)?;
    if magic != MAGIC_30 && magic != MAGIC_21 {
        return Err(FormatError {
            path: shown.to_string(),
            pos: 0,
            what: format!(
                "not a FileStorage: the file starts with {:?}, not \"FS30\" or \"FS21\"",
                String::from_utf8_lossy(magic)
            ),
            hint: HINT_NOT_FS,
        }
        .into());
    }
    Ok(())
}

/// Loads `<path>.index`; `None` (with a warning where ZODB logs one) if it
/// is missing or unreadable.
fn load_companion_index(path: &Path, report: &dyn Report) -> Option<(u64, Index)> {
    let index_path = format!("{}.index", path.display());
    // Unreadable (or missing): ignored quietly, as ZODB ignores it.
    let file = crate::io::open_regular(&index_path).ok()?;
    let mut input = std::io::BufReader::with_capacity(1 << 16, file);
    match index::load_from(&mut input, &index_path) {
        Ok(loaded) => Some(loaded),
        Err(e) => {
            report.event(&Event::UnreadableIndex {
                path: index_path,
                why: e.to_string(),
            });
            None
        }
    }
}

/// Port of `FileStorage._check_sanity`: walks back from `pos` over up to
/// five data records (skipping undone and empty transactions) and checks
/// that the index points at them. Reads that fail or come up short make
/// the index insane (ZODB would raise there instead).
fn is_sane(reader: &mut PosReader, size: u64, mut pos: u64, index: &Index) -> bool {
    const MAX_CHECKED: usize = 5;
    if pos < 100 || size < pos {
        return false;
    }
    let mut checked = 0;
    while checked < MAX_CHECKED {
        let Some(tl) = pos
            .checked_sub(LEN_SIZE)
            .and_then(|at| read_u64(reader, at))
        else {
            return false;
        };
        let Some(tpos) = pos.checked_sub(tl).and_then(|p| p.checked_sub(LEN_SIZE)) else {
            return false;
        };
        pos = tpos;
        if pos < 4 {
            return false;
        }
        let Ok(b) = reader.read_at(pos, TXN_HEADER_LEN as usize) else {
            return false;
        };
        if b.len() < TXN_HEADER_LEN as usize {
            return false;
        }
        let h = TxnHeader::decode(pos, b);
        if h.tlen != tl {
            return false;
        }
        if h.status == b'u' {
            continue;
        }
        if h.status != b' ' && h.status != b'p' {
            return false;
        }
        if tl < h.header_len() {
            return false;
        }
        // pos + tl + 8 was the previous position, so these cannot overflow.
        let tend = pos + tl;
        let mut opos = pos + h.header_len();
        if opos == tend {
            continue;
        }
        while opos < tend && checked < MAX_CHECKED {
            let Ok(b) = reader.read_at(opos, DATA_HEADER_LEN as usize) else {
                return false;
            };
            if b.len() < DATA_HEADER_LEN as usize {
                return false;
            }
            let d = DataHeader::decode(opos, b);
            if opos.saturating_add(d.record_len()) > tend || d.tloc != pos {
                return false;
            }
            if index.get(d.oid).unwrap_or(0) != opos {
                return false;
            }
            checked += 1;
            opos += d.record_len();
        }
        return true;
    }
    true
}

fn read_u64(reader: &mut PosReader, pos: u64) -> Option<u64> {
    let b = reader.read_at(pos, 8).ok()?;
    (b.len() == 8).then(|| be64(b))
}

/// Port of ZODB's `read_index` in read-only mode: scans transactions from
/// `start` (a transaction boundary), adds each committed transaction's data
/// records to `index`, and returns the position just after the last
/// committed one.
///
/// A transaction is applied to `index` only as a whole. The scan stops
/// quietly, as ZODB does, at: end of file, a partial header, a transaction
/// that runs past the end of the file or has status `c`, a tid of all
/// 0xff bytes, or a header with impossible lengths when the file's last
/// 8 bytes do not look like a transaction length (trailing garbage).
/// Anything else that is inconsistent is a [`FormatError`] at its offset.
pub fn scan_from(
    reader: &mut PosReader,
    shown: &str,
    size: u64,
    start: u64,
    index: &mut Index,
    report: &dyn Report,
) -> Result<u64> {
    let corrupt = |pos: u64, what: String| -> Error {
        FormatError {
            path: shown.to_string(),
            pos,
            what,
            hint: HINT_CORRUPT,
        }
        .into()
    };
    let mut pos = start;
    let mut ltid = [0u8; 8];
    let mut tindex: Vec<(u64, u64)> = Vec::new();
    loop {
        let b = reader
            .read_at(pos, TXN_HEADER_LEN as usize)
            .at_byte(shown, pos)?;
        if b.len() < TXN_HEADER_LEN as usize {
            break;
        }
        let h = TxnHeader::decode(pos, b);
        if h.tid <= ltid && pos != start {
            report.event(&Event::TimeStampReduction {
                file: shown.to_string(),
                pos,
            });
        }
        ltid = h.tid;
        let past_end = pos
            .checked_add(h.tlen)
            .and_then(|e| e.checked_add(LEN_SIZE))
            .is_none_or(|e| e > size);
        if past_end || h.status == b'c' {
            break;
        }
        if !b" up".contains(&h.status) {
            report.event(&Event::InvalidStatus {
                file: shown.to_string(),
                status: h.status,
                pos,
            });
        }
        if h.tlen < h.header_len() {
            // Garbage at the end of the file, or damage in the middle?
            let rtl = size
                .checked_sub(LEN_SIZE)
                .and_then(|at| read_u64(reader, at))
                .unwrap_or(0);
            if rtl > size || size - rtl < pos || rtl < TXN_HEADER_LEN {
                report.event(&Event::InvalidTxnHeader {
                    file: shown.to_string(),
                    pos,
                });
                break;
            }
            return Err(corrupt(
                pos,
                "invalid transaction header (length shorter than its header)".into(),
            ));
        }
        if h.tid == [0xff; 8] {
            break;
        }
        let tend = pos + h.tlen;
        if h.status == b'u' {
            if read_u64(reader, tend) != Some(h.tlen) {
                return Err(corrupt(pos, "inconsistent transaction length".into()));
            }
            pos = tend + LEN_SIZE;
            continue;
        }
        tindex.clear();
        let mut p = pos + h.header_len();
        while p < tend {
            let b = reader
                .read_at(p, DATA_HEADER_LEN as usize)
                .at_byte(shown, p)?;
            if b.len() < DATA_HEADER_LEN as usize {
                return Err(corrupt(
                    p,
                    "data record header cut short by end of file".into(),
                ));
            }
            let d = DataHeader::decode(p, b);
            if d.vlen != 0 {
                return Err(corrupt(
                    p,
                    "data record has a non-zero version length".into(),
                ));
            }
            if p.saturating_add(d.record_len()) > tend || d.tloc != pos {
                return Err(corrupt(p, "data record exceeds transaction record".into()));
            }
            if p > MAX_POS {
                return Err(corrupt(p, "position beyond 2**48 cannot be indexed".into()));
            }
            tindex.push((d.oid, p));
            p += d.record_len();
        }
        if read_u64(reader, tend) != Some(h.tlen) {
            return Err(corrupt(
                tend,
                "redundant transaction length check failed".into(),
            ));
        }
        pos = tend + LEN_SIZE;
        for &(oid, at) in &tindex {
            index.insert(oid, at);
        }
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Silent;

    #[test]
    fn a_read_error_in_a_data_fs_names_the_file_and_the_byte_offset() {
        // Reading this process's own memory at offset 0 fails with EIO:
        // a real read error without a broken disk.
        let path = Path::new("/proc/self/mem");
        let file = File::open(path).expect("/proc/self/mem opens");
        let err = committed(path, &file, 100, &Silent)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("[Errno 5] ") && err.ends_with("'/proc/self/mem' (reading at byte 0)"),
            "{err}"
        );
    }

    #[test]
    fn an_index_position_reached_through_empty_transactions_is_judged_without_underflow() {
        // The magic and four empty transactions, each 23 + 8 bytes.
        let mut data = b"FS30".to_vec();
        for i in 0..4u8 {
            data.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, i + 1]);
            data.extend_from_slice(&23u64.to_be_bytes());
            data.extend_from_slice(b" \0\0\0\0\0\0");
            data.extend_from_slice(&23u64.to_be_bytes());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Data.fs");
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let size = data.len() as u64;
        let mut reader = PosReader::new(&file);
        assert!(!is_sane(&mut reader, size, size, &Index::new()));
        let got = committed_with_hint(
            &path,
            &file,
            size,
            Some(Hint::loaded(size, Index::new())),
            &Silent,
        );
        assert_eq!(got.unwrap().pos, size);
    }
}
