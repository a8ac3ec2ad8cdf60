//! Which data records of a Data.fs are blob records.
//!
//! ZODB keeps the bytes of a `ZODB.blob.Blob` outside the Data.fs, one
//! file per data record whose pickle is a Blob: `<layout(oid)>/<tid>.blob`
//! in the blob directory. So the blob files a backup of `Data.fs[start,
//! end)` needs are named by the records in that range, and finding them
//! costs a header walk of the range, never a walk of the blob tree.
//!
//! A record counts exactly when ZODB's `ZODB.blob.is_blob_record` says so:
//! the first pickle of its data (the class) loads as `ZODB.blob.Blob`
//! itself, not a subclass or a `(class, args)` tuple. A record without
//! data (an undo or a restore) is followed through its backpointer, as
//! `FileStorage.undo` copies the blob file under the new tid and ZODB's
//! iterator reports the resolved data. Data written by zc.zlibstorage
//! (`.z` + zlib) is inflated first. Transactions with status `u` are
//! skipped, as ZODB's iterator skips them.
//!
//! Only the first [`PREFIX`] bytes of a pickle are read: the class pickle
//! of a Blob is about 30 bytes in every pickle protocol ZODB writes.

use std::fs::File;

use super::record::{
    DATA_HEADER_LEN, DataHeader, FILE_HEADER_LEN, LEN_SIZE, PosReader, TXN_HEADER_LEN, TxnHeader,
    be64,
};
use super::{FormatError, HINT_CORRUPT};
use crate::error::{IoContext, Result};

/// Bytes of a record's data read to recognise a Blob class pickle.
pub const PREFIX: usize = 256;

/// How many backpointers are followed before a record is judged damaged.
const MAX_HOPS: usize = 64;

/// A blob record: the object and the transaction that named its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobRecord {
    /// Object id.
    pub oid: u64,
    /// Transaction id of the record (its file is `<tid>.blob`).
    pub tid: u64,
}

/// The blob records of the transactions in `[start, end)`, in file order.
///
/// `start` must be a transaction boundary and `end` the end of a committed
/// transaction (as a backup's range always is). Backpointers may point
/// anywhere before `end`. Errors name `shown` and the byte offset.
pub fn blob_records(file: &File, shown: &str, start: u64, end: u64) -> Result<Vec<BlobRecord>> {
    let mut reader = PosReader::new(file);
    let mut back = PosReader::new(file);
    let corrupt = |pos: u64, what: &str| bad(shown, pos, what);
    // A range past the end of the file would otherwise be read at offsets
    // the system refuses (EINVAL past i64::MAX): say what is wrong.
    let size = file.metadata().at(shown)?.len();
    if end > size {
        return Err(corrupt(
            size,
            &format!("the file ends before the backed-up range does (at byte {end})"),
        ));
    }
    let mut found = Vec::new();
    let mut pos = start.max(FILE_HEADER_LEN);
    while pos < end {
        let b = read_exact_at(
            &mut reader,
            shown,
            pos,
            TXN_HEADER_LEN,
            "transaction header",
        )?;
        let h = TxnHeader::decode(pos, b);
        let tend = pos
            .checked_add(h.tlen)
            .filter(|&e| e.checked_add(LEN_SIZE).is_some_and(|e| e <= end))
            .ok_or_else(|| corrupt(pos, "transaction runs past the backed-up range"))?;
        if h.tlen < h.header_len() {
            return Err(corrupt(pos, "transaction length shorter than its header"));
        }
        let tid = u64::from_be_bytes(h.tid);
        if h.status != b'u' {
            let mut p = pos + h.header_len();
            while p < tend {
                let b =
                    read_exact_at(&mut reader, shown, p, DATA_HEADER_LEN, "data record header")?;
                let d = DataHeader::decode(p, b);
                let rec_end = p
                    .checked_add(d.record_len())
                    .filter(|&e| e <= tend)
                    .ok_or_else(|| corrupt(p, "data record exceeds its transaction"))?;
                if is_blob_data(&mut back, shown, &d, end)? {
                    found.push(BlobRecord { oid: d.oid, tid });
                }
                p = rec_end;
            }
        }
        pos = tend + LEN_SIZE;
    }
    Ok(found)
}

/// Whether the record `d` (data or backpointer) holds a Blob pickle.
fn is_blob_data(r: &mut PosReader, shown: &str, d: &DataHeader, end: u64) -> Result<bool> {
    let mut d = *d;
    for _ in 0..MAX_HOPS {
        let data_at = d.pos + DATA_HEADER_LEN;
        if d.plen > 0 {
            let n = usize::try_from(d.plen).unwrap_or(PREFIX).min(PREFIX);
            let data = r.read_at(data_at, n).at_byte(shown, data_at)?;
            return Ok(is_blob_pickle(data));
        }
        let back = be64(read_exact_at(r, shown, data_at, LEN_SIZE, "backpointer")?);
        if back == 0 {
            return Ok(false); // the object does not exist in this revision
        }
        if back < FILE_HEADER_LEN || back.saturating_add(DATA_HEADER_LEN) > end {
            return Err(bad(shown, d.pos, "backpointer outside the file"));
        }
        let b = read_exact_at(r, shown, back, DATA_HEADER_LEN, "data record header")?;
        let target = DataHeader::decode(back, b);
        if target.oid != d.oid {
            return Err(bad(
                shown,
                d.pos,
                "backpointer to a record of another object",
            ));
        }
        d = target;
    }
    Err(bad(shown, d.pos, "backpointers form a loop"))
}

/// `n` bytes at `pos`, or a format error saying `what` is cut short.
fn read_exact_at<'r>(
    r: &'r mut PosReader,
    shown: &str,
    pos: u64,
    n: u64,
    what: &str,
) -> Result<&'r [u8]> {
    let b = r.read_at(pos, n as usize).at_byte(shown, pos)?;
    if (b.len() as u64) < n {
        return Err(bad(shown, pos, &format!("{what} cut short")));
    }
    Ok(b)
}

fn bad(shown: &str, pos: u64, what: &str) -> crate::Error {
    FormatError {
        path: shown.to_string(),
        pos,
        what: what.to_string(),
        hint: HINT_CORRUPT,
    }
    .into()
}

/// Whether `data` (a record's pickles, or their first bytes) starts with
/// a pickle of the class `ZODB.blob.Blob`, as `is_blob_record` decides.
pub fn is_blob_pickle(data: &[u8]) -> bool {
    if let Some(z) = data.strip_prefix(b".z") {
        // zc.zlibstorage: inflate as much as the prefix allows.
        let mut out = [0u8; PREFIX];
        let mut inflater = flate2::Decompress::new(true);
        let _ = inflater.decompress(z, &mut out, flate2::FlushDecompress::Sync);
        let n = usize::try_from(inflater.total_out())
            .unwrap_or(0)
            .min(PREFIX);
        return class_pickle_is_blob(&out[..n]);
    }
    class_pickle_is_blob(data)
}

/// Parses the opcodes a pickler writes for a bare global reference:
/// optional PROTO and FRAME, then GLOBAL, or two strings and
/// STACK_GLOBAL, with memo puts anywhere, then STOP.
fn class_pickle_is_blob(p: &[u8]) -> bool {
    let mut i = 0;
    let mut strings: Vec<&[u8]> = Vec::new();
    let mut global: Option<(&[u8], &[u8])> = None;
    let take = |i: &mut usize, n: usize| -> Option<&[u8]> {
        let s = p.get(*i..i.checked_add(n)?)?;
        *i += n;
        Some(s)
    };
    let line = |i: &mut usize| -> Option<&[u8]> {
        let rest = p.get(*i..)?;
        let nl = rest.iter().position(|&c| c == b'\n')?;
        *i += nl + 1;
        Some(&rest[..nl])
    };
    loop {
        let Some(&op) = p.get(i) else { return false };
        i += 1;
        let ok = match op {
            0x80 => take(&mut i, 1).is_some(), // PROTO
            0x95 => take(&mut i, 8).is_some(), // FRAME
            0x94 => true,                      // MEMOIZE
            b'q' => take(&mut i, 1).is_some(), // BINPUT
            b'r' => take(&mut i, 4).is_some(), // LONG_BINPUT
            b'p' => line(&mut i).is_some(),    // PUT
            b'c' if global.is_none() => {
                // GLOBAL module\nname\n
                match (line(&mut i), line(&mut i)) {
                    (Some(m), Some(n)) => {
                        global = Some((m, n));
                        true
                    }
                    _ => false,
                }
            }
            0x8c => {
                // SHORT_BINUNICODE
                let n = take(&mut i, 1).map(|b| b[0] as usize);
                match n.and_then(|n| take(&mut i, n)) {
                    Some(s) => {
                        strings.push(s);
                        true
                    }
                    None => false,
                }
            }
            b'X' => {
                // BINUNICODE
                let n = take(&mut i, 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
                match n.and_then(|n| take(&mut i, n as usize)) {
                    Some(s) => {
                        strings.push(s);
                        true
                    }
                    None => false,
                }
            }
            0x93 if global.is_none() && strings.len() == 2 => {
                // STACK_GLOBAL
                global = Some((strings[0], strings[1]));
                strings.clear();
                true
            }
            b'.' => {
                return strings.is_empty() && global == Some((b"ZODB.blob", b"Blob"));
            }
            _ => false,
        };
        if !ok || strings.len() > 2 {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_pickle_zodb_writes_for_a_blob_is_recognised_in_every_protocol() {
        assert!(is_blob_pickle(
            b"\x80\x03cZODB.blob\nBlob\nq\x00.\x80\x03N."
        ));
        assert!(is_blob_pickle(b"cZODB.blob\nBlob\nq\x01.N."));
        assert!(is_blob_pickle(b"cZODB.blob\nBlob\np0\n.N."));
        assert!(is_blob_pickle(
            b"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00\x8c\tZODB.blob\x94\x8c\x04Blob\x94\x93\x94."
        ));
    }

    #[test]
    fn other_classes_subclasses_and_tuples_are_not_blobs() {
        assert!(!is_blob_pickle(b"\x80\x03cZODB.blob\nBlobX\nq\x00."));
        assert!(!is_blob_pickle(
            b"\x80\x03cplone.namedfile\nNamedBlobFile\nq\x00."
        ));
        assert!(!is_blob_pickle(
            b"\x80\x03cZODB.blob\nBlob\nq\x00N\x86q\x01."
        ));
        assert!(!is_blob_pickle(b"\x80\x03cZODB.blob\nBlob\n"));
        assert!(!is_blob_pickle(b""));
        assert!(!is_blob_pickle(
            b"\x80\x03cZODB.blob\nBlob\ncZODB.blob\nBlob\n."
        ));
    }

    #[test]
    fn a_zlibstorage_record_is_inflated_before_it_is_judged() {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"\x80\x03cZODB.blob\nBlob\nq\x00.\x80\x03N.")
            .unwrap();
        let mut data = b".z".to_vec();
        data.extend(z.finish().unwrap());
        assert!(is_blob_pickle(&data));
    }
}
