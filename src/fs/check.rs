//! A streaming structural check of a FileStorage, fed byte chunks.
//!
//! [`Checker`] performs the checks of ZODB's `fstest.py` (ZODB 6.4,
//! `src/ZODB/scripts/fstest.py`) without reading pickles, on bytes handed to
//! it in order in chunks of any size, so that it works on a chain of
//! backup files read as one stream, gzipped or not:
//!
//! * the 4-byte magic (`FS30`, or `FS21`);
//! * transaction ids strictly increasing (from zero, as fstest starts);
//! * `pos + tlen + 8 ≤ size` for every transaction;
//! * the status one of `' '`, `'u'`, `'p'` (never `'c'`);
//! * user, description and extension lengths within `tlen`;
//! * every data record's `tloc` equal to its transaction's position, no
//!   version data, and no record past the end of its transaction;
//! * the redundant length after each transaction equal to `tlen`;
//!
//! and two checks fstest does not make:
//!
//! * every backpointer (`plen == 0`) is 0 (an undone creation) or the
//!   position of an earlier data record of the same oid;
//! * no transaction id is all `0xff` bytes (ZODB stops reading there);
//! * the caller can ask at any point whether the stream is at a
//!   transaction boundary ([`Checker::at_transaction_boundary`]).
//!
//! It also rebuilds the fsIndex (oid → latest data record position) exactly
//! as [`super::scan_from`] does — data records of undone (`'u'`)
//! transactions are not indexed, and a transaction is applied as a whole —
//! so the caller can compare it with a stored `.index`.
//!
//! Memory: 16 bytes per data record (its position and oid, kept in a
//! vector sorted by position, to check backpointers by binary search), plus
//! the index (8 bytes per object in fsIndex's bucket layout), plus a
//! header-sized buffer. Pickles are skipped, never buffered.
//!
//! One file though just over 600 lines: one pass over the Data.fs and the
//! checks made during it, which share that pass's state.

use super::blobs::{BlobRecord, PREFIX, is_blob_pickle};
use super::record::{
    DATA_HEADER_LEN, DataHeader, FILE_HEADER_LEN, LEN_SIZE, MAGIC_21, MAGIC_30, TXN_HEADER_LEN,
    TxnHeader, be64,
};
use crate::index::{Index, MAX_POS};

/// What is wrong, and where: `pos` is the offset in the Data.fs stream of
/// the record or field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {pos}: {what}")]
pub struct Problem {
    /// Offset in the stream (the Data.fs) of the record or field at fault.
    pub pos: u64,
    /// What is wrong, in fstest's terms.
    pub what: String,
}

/// What a successful check counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Bytes checked (the Data.fs size).
    pub size: u64,
    /// Transactions, undone ones included.
    pub transactions: u64,
    /// Data records in transactions that are not undone.
    pub records: u64,
    /// Backpointers (records without data) checked.
    pub backpointers: u64,
}

/// The item the checker is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// The file header, at 0.
    Magic,
    /// A transaction header (or the end of the stream).
    TxnHeader,
    /// A data record header inside the current transaction.
    DataHeader,
    /// The 8-byte backpointer of the record at `rec` (of object `oid`).
    Backpointer { rec: u64, oid: u64 },
    /// The first `n` bytes of the pickle of the record at `rec`, `rest`
    /// more following (only when blob records are tracked).
    Pickle {
        rec: u64,
        oid: u64,
        n: usize,
        rest: u64,
    },
    /// The redundant length at the end of the current transaction.
    RedundantLen,
}

/// The transaction being read.
#[derive(Debug, Clone, Copy)]
struct Txn {
    pos: u64,
    tlen: u64,
    /// `pos + tlen`: where its redundant length starts.
    end: u64,
    undone: bool,
    tid: u64,
}

/// A streaming fstest; see the module documentation.
///
/// Invariant: `pos` is the stream offset of the next byte [`Checker::feed`]
/// receives; `buf[..have]` are the first bytes of the item `want`, which
/// starts at `pos - have`; while `skip > 0`, that many bytes (user,
/// description, extension, a pickle, an undone transaction's body) are
/// passed over before `want` is collected. Once `problem` is set, nothing
/// more is read.
pub struct Checker {
    size: u64,
    pos: u64,
    want: Want,
    buf: [u8; BUF_LEN],
    have: usize,
    skip: u64,
    last_tid: [u8; 8],
    last_tid_pos: Option<u64>,
    txn: Option<Txn>,
    /// (oid, position) of the current transaction's records, applied to
    /// `index` when it ends.
    tindex: Vec<(u64, u64)>,
    index: Index,
    /// (position, oid) of every data record so far, ascending by position.
    records: Vec<(u64, u64)>,
    transactions: u64,
    backpointers: u64,
    problem: Option<Problem>,
    /// With [`Checker::tracking_blobs`]: positions of the blob records so
    /// far (a backpointer to one is a blob record too), and their (oid,
    /// tid).
    blobs: Option<(std::collections::HashSet<u64>, Vec<BlobRecord>)>,
}

/// Item buffer: a data record header, or a pickle's first bytes.
const BUF_LEN: usize = if PREFIX > DATA_HEADER_LEN as usize {
    PREFIX
} else {
    DATA_HEADER_LEN as usize
};

impl Checker {
    /// A checker that also finds the blob records, as
    /// [`super::blob_records`] does from a file: [`Checker::blob_records`]
    /// gives them at the end. Costs reading the first bytes of every
    /// pickle, and 8 bytes per blob record.
    pub fn tracking_blobs(size: u64) -> Self {
        let mut c = Checker::new(size);
        c.blobs = Some((Default::default(), Vec::new()));
        c
    }

    /// The blob records found (with [`Checker::tracking_blobs`]), in
    /// stream order.
    pub fn blob_records(&self) -> &[BlobRecord] {
        self.blobs.as_ref().map_or(&[], |b| &b.1)
    }

    /// A checker for a stream of exactly `size` bytes (the Data.fs size:
    /// transactions are checked against it as fstest checks them against
    /// the file size).
    pub fn new(size: u64) -> Self {
        let mut c = Checker {
            size,
            pos: 0,
            want: Want::Magic,
            buf: [0; BUF_LEN],
            have: 0,
            skip: 0,
            last_tid: [0; 8],
            last_tid_pos: None,
            txn: None,
            tindex: Vec::new(),
            index: Index::new(),
            records: Vec::new(),
            transactions: 0,
            backpointers: 0,
            problem: None,
            blobs: None,
        };
        if size < FILE_HEADER_LEN {
            c.fail(
                0,
                format!(
                    "the data is {size} bytes long, shorter than the 4-byte FileStorage header"
                ),
            );
        }
        c
    }

    /// The stream offset of the next byte expected.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// The first problem found, if any.
    pub fn problem(&self) -> Option<&Problem> {
        self.problem.as_ref()
    }

    /// Whether the bytes fed so far end exactly at a transaction boundary
    /// (or at the start of the stream): where a backup file may end.
    pub fn at_transaction_boundary(&self) -> bool {
        self.have == 0
            && self.skip == 0
            && (self.pos == 0 || (self.want == Want::TxnHeader && self.txn.is_none()))
    }

    /// Position of the transaction the stream is inside of, if any (for
    /// messages about a boundary that is not a transaction boundary).
    pub fn current_transaction(&self) -> Option<u64> {
        match self.txn {
            Some(t) => Some(t.pos),
            None if self.have > 0 && self.want == Want::TxnHeader => {
                Some(self.pos - self.have as u64)
            }
            None => None,
        }
    }

    /// Checks the next `data` bytes of the stream. After a problem is
    /// found, further bytes are ignored.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.problem.is_none() {
            if self.skip > 0 {
                let n = self.skip.min(data.len() as u64);
                self.skip -= n;
                self.pos += n;
                data = &data[n as usize..];
                if self.skip == 0 {
                    self.next_in_txn();
                }
                continue;
            }
            let need = self.need();
            let n = (need - self.have).min(data.len());
            self.buf[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            self.pos += n as u64;
            data = &data[n..];
            if self.have == need {
                let at = self.pos - need as u64;
                self.have = 0;
                self.item(at, need);
            }
        }
    }

    /// Ends the stream: returns the counts, or the first problem
    /// (including a stream that ended before `size` bytes, or inside a
    /// record).
    pub fn finish(self) -> Result<(Summary, Index), Problem> {
        self.finish_with_blobs().map(|(s, i, _)| (s, i))
    }

    /// [`Checker::finish`], also returning the blob records found (none
    /// unless [`Checker::tracking_blobs`]).
    pub fn finish_with_blobs(self) -> Result<(Summary, Index, Vec<BlobRecord>), Problem> {
        if let Some(p) = self.problem {
            return Err(p);
        }
        if self.pos != self.size {
            return Err(Problem {
                pos: self.pos,
                what: format!(
                    "the data ends after {} bytes, {} were expected",
                    self.pos, self.size
                ),
            });
        }
        if !self.at_transaction_boundary() || self.want == Want::Magic {
            // Unreachable with the size checks above; kept as a guard.
            return Err(Problem {
                pos: self.pos - self.have as u64,
                what: "the data ends inside a record".into(),
            });
        }
        Ok((
            Summary {
                size: self.size,
                transactions: self.transactions,
                records: self.records.len() as u64,
                backpointers: self.backpointers,
            },
            self.index,
            self.blobs.map(|b| b.1).unwrap_or_default(),
        ))
    }

    /// Bytes of the item `want`.
    fn need(&self) -> usize {
        match self.want {
            Want::Magic => 4,
            Want::TxnHeader => TXN_HEADER_LEN as usize,
            Want::DataHeader => DATA_HEADER_LEN as usize,
            Want::Backpointer { .. } | Want::RedundantLen => LEN_SIZE as usize,
            Want::Pickle { n, .. } => n,
        }
    }

    fn fail(&mut self, pos: u64, what: String) {
        if self.problem.is_none() {
            self.problem = Some(Problem { pos, what });
        }
    }

    /// Handles the complete item `want`, which started at `at`.
    fn item(&mut self, at: u64, len: usize) {
        let b = self.buf;
        let b = &b[..len];
        match self.want {
            Want::Magic => {
                if b != MAGIC_30 && b != MAGIC_21 {
                    return self.fail(
                        at,
                        format!(
                            "not a FileStorage: it starts with {:?}, not \"FS30\" or \"FS21\"",
                            String::from_utf8_lossy(b)
                        ),
                    );
                }
                self.expect_txn_header();
            }
            Want::TxnHeader => self.txn_header(TxnHeader::decode(at, b)),
            Want::DataHeader => self.data_header(DataHeader::decode(at, b)),
            Want::Backpointer { rec, oid } => self.backpointer(rec, oid, at, be64(b)),
            Want::Pickle { rec, oid, rest, .. } => {
                if is_blob_pickle(b) {
                    self.blob_found(rec, oid);
                }
                self.skip = rest;
                if rest == 0 {
                    self.next_in_txn();
                }
            }
            Want::RedundantLen => self.redundant_len(at, be64(b)),
        }
    }

    /// Waits for the next transaction header at `pos`, unless the stream
    /// ends there.
    fn expect_txn_header(&mut self) {
        self.want = Want::TxnHeader;
        self.txn = None;
        let left = self.size.saturating_sub(self.pos);
        if left > 0 && left < TXN_HEADER_LEN {
            self.fail(
                self.pos,
                format!(
                    "only {left} bytes follow the last transaction, less than a \
                     transaction header ({TXN_HEADER_LEN} bytes)"
                ),
            );
        }
    }

    fn txn_header(&mut self, h: TxnHeader) {
        let at = h.pos;
        if h.tid <= self.last_tid {
            let previous = match self.last_tid_pos {
                Some(p) => format!("that of the transaction at byte {p}"),
                None => "zero".to_string(),
            };
            return self.fail(
                at,
                format!(
                    "transaction id {} is not greater than {previous}, {} (time-stamp reduction)",
                    hex8(&h.tid),
                    hex8(&self.last_tid)
                ),
            );
        }
        if h.tid == [0xff; 8] {
            // ZODB's read_index stops there: what follows is not read.
            return self.fail(
                at,
                "transaction id ffffffffffffffff is reserved: ZODB stops reading the file there"
                    .into(),
            );
        }
        self.last_tid = h.tid;
        self.last_tid_pos = Some(at);
        let end = at.checked_add(h.tlen);
        if end
            .and_then(|e| e.checked_add(LEN_SIZE))
            .is_none_or(|e| e > self.size)
        {
            return self.fail(
                at,
                format!(
                    "transaction length {} runs past the end of the data at byte {} \
                     (truncated, or a damaged length)",
                    h.tlen, self.size
                ),
            );
        }
        let end = at + h.tlen;
        match h.status {
            b'c' => {
                return self.fail(
                    at,
                    "transaction status is 'c': it was never committed (the checkpoint flag \
                     was not cleared)"
                        .into(),
                );
            }
            b' ' | b'p' | b'u' => {}
            s => {
                return self.fail(
                    at,
                    format!("invalid transaction status {:?} (0x{s:02x})", char::from(s)),
                );
            }
        }
        if h.header_len() > h.tlen {
            return self.fail(
                at,
                format!(
                    "transaction header lengths (user {}, description {}, extension {}) \
                     exceed the transaction length {}",
                    h.ulen, h.dlen, h.elen, h.tlen
                ),
            );
        }
        let undone = h.status == b'u';
        self.txn = Some(Txn {
            pos: at,
            tlen: h.tlen,
            end,
            undone,
            tid: u64::from_be_bytes(h.tid),
        });
        self.tindex.clear();
        // fstest does not look into an undone transaction, and ZODB does not
        // index it: skip to its redundant length.
        self.skip = if undone {
            h.tlen - TXN_HEADER_LEN
        } else {
            h.header_len() - TXN_HEADER_LEN
        };
        if self.skip == 0 {
            self.next_in_txn();
        }
    }

    /// After the transaction header or a record: the next record, or the
    /// redundant length.
    fn next_in_txn(&mut self) {
        let Some(t) = self.txn else {
            return;
        };
        if self.pos == t.end {
            self.want = Want::RedundantLen;
            return;
        }
        let left = t.end - self.pos;
        if left < DATA_HEADER_LEN {
            return self.fail(
                self.pos,
                format!(
                    "only {left} bytes are left in the transaction at byte {}, less than a \
                     data record header ({DATA_HEADER_LEN} bytes): the data records don't add up",
                    t.pos
                ),
            );
        }
        self.want = Want::DataHeader;
    }

    fn data_header(&mut self, d: DataHeader) {
        let Some(t) = self.txn else {
            return;
        };
        let at = d.pos;
        if d.tloc != t.pos {
            return self.fail(
                at,
                format!(
                    "data record of oid {} says its transaction is at byte {} (tloc), but it \
                     is in the transaction at byte {}",
                    oid_hex(d.oid),
                    d.tloc,
                    t.pos
                ),
            );
        }
        if d.vlen != 0 {
            return self.fail(
                at,
                format!(
                    "data record of oid {} has a version length of {} (ZODB cannot read it)",
                    oid_hex(d.oid),
                    d.vlen
                ),
            );
        }
        if at.saturating_add(d.record_len()) > t.end {
            return self.fail(
                at,
                format!(
                    "data record of oid {} ({} bytes of data) runs past the end of its \
                     transaction at byte {}",
                    oid_hex(d.oid),
                    d.plen,
                    t.end
                ),
            );
        }
        if at > MAX_POS {
            return self.fail(at, "position beyond 2**48 cannot be indexed".into());
        }
        self.records.push((at, d.oid));
        self.tindex.push((d.oid, at));
        if d.plen == 0 {
            self.want = Want::Backpointer {
                rec: at,
                oid: d.oid,
            };
        } else if self.blobs.is_some() {
            let n = usize::try_from(d.plen).unwrap_or(PREFIX).min(PREFIX);
            self.want = Want::Pickle {
                rec: at,
                oid: d.oid,
                n,
                rest: d.plen - n as u64,
            };
        } else {
            self.skip = d.plen;
        }
    }

    /// The record at `rec` (of `oid`, in the current transaction) is a
    /// blob record.
    fn blob_found(&mut self, rec: u64, oid: u64) {
        let tid = self.txn.map_or(0, |t| t.tid);
        if let Some((positions, found)) = self.blobs.as_mut() {
            positions.insert(rec);
            found.push(BlobRecord { oid, tid });
        }
    }

    fn backpointer(&mut self, rec: u64, oid: u64, at: u64, back: u64) {
        self.backpointers += 1;
        if back != 0 {
            let wrong = if back >= rec {
                Some("which is not before the record".to_string())
            } else {
                match self.records.binary_search_by_key(&back, |&(p, _)| p) {
                    Err(_) => Some("where no data record starts".to_string()),
                    Ok(i) if self.records[i].1 != oid => Some(format!(
                        "a data record of oid {}",
                        oid_hex(self.records[i].1)
                    )),
                    Ok(_) => None,
                }
            };
            if let Some(wrong) = wrong {
                return self.fail(
                    rec,
                    format!(
                        "data record of oid {} has a backpointer (at byte {at}) to byte \
                         {back}, {wrong}: a backpointer must point to an earlier data record \
                         of the same object",
                        oid_hex(oid)
                    ),
                );
            }
            if self.blobs.as_ref().is_some_and(|(p, _)| p.contains(&back)) {
                self.blob_found(rec, oid);
            }
        }
        self.next_in_txn();
    }

    fn redundant_len(&mut self, at: u64, tlen: u64) {
        let Some(t) = self.txn else {
            return;
        };
        if tlen != t.tlen {
            return self.fail(
                at,
                format!(
                    "the redundant length of the transaction at byte {} is {tlen}, not its \
                     length {}",
                    t.pos, t.tlen
                ),
            );
        }
        self.transactions += 1;
        if !t.undone {
            for &(oid, pos) in &self.tindex {
                self.index.insert(oid, pos);
            }
        }
        self.expect_txn_header();
    }
}

/// Hex of a transaction id, as ZODB prints one.
fn hex8(b: &[u8; 8]) -> String {
    crate::io::hex(b)
}

/// An oid as `0x…`, the way ZODB's tools print them.
pub fn oid_hex(oid: u64) -> String {
    format!("0x{oid:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic FileStorage, built transaction by transaction.
    struct Fs {
        bytes: Vec<u8>,
        tid: u64,
    }

    /// One data record to write: oid and pickle, or a backpointer.
    enum Rec {
        Data(u64, &'static [u8]),
        Back(u64, u64),
    }

    impl Fs {
        fn new() -> Self {
            Fs {
                bytes: b"FS30".to_vec(),
                tid: 0x03_00_00_00_00_00_00_00,
            }
        }

        fn pos(&self) -> u64 {
            self.bytes.len() as u64
        }

        /// Appends a transaction; returns the position of each record.
        fn txn(&mut self, status: u8, user: &[u8], recs: &[Rec]) -> Vec<u64> {
            self.tid += 1;
            let tpos = self.pos();
            let mut body = Vec::new();
            let mut at = Vec::new();
            let first = tpos + TXN_HEADER_LEN + user.len() as u64;
            for r in recs {
                at.push(first + body.len() as u64);
                let (oid, data, back) = match r {
                    Rec::Data(o, d) => (*o, *d, None),
                    Rec::Back(o, b) => (*o, &b""[..], Some(*b)),
                };
                body.extend_from_slice(&oid.to_be_bytes());
                body.extend_from_slice(&self.tid.to_be_bytes());
                body.extend_from_slice(&0u64.to_be_bytes());
                body.extend_from_slice(&tpos.to_be_bytes());
                body.extend_from_slice(&0u16.to_be_bytes());
                body.extend_from_slice(&(data.len() as u64).to_be_bytes());
                body.extend_from_slice(data);
                if let Some(b) = back {
                    body.extend_from_slice(&b.to_be_bytes());
                }
            }
            let tlen = TXN_HEADER_LEN + user.len() as u64 + body.len() as u64;
            self.bytes.extend_from_slice(&self.tid.to_be_bytes());
            self.bytes.extend_from_slice(&tlen.to_be_bytes());
            self.bytes.push(status);
            self.bytes
                .extend_from_slice(&(user.len() as u16).to_be_bytes());
            self.bytes.extend_from_slice(&[0, 0, 0, 0]);
            self.bytes.extend_from_slice(user);
            self.bytes.extend_from_slice(&body);
            self.bytes.extend_from_slice(&tlen.to_be_bytes());
            at
        }
    }

    /// Checks `bytes` fed in chunks of every size in `sizes`; all must agree.
    fn check(bytes: &[u8]) -> Result<(Summary, Index), Problem> {
        let mut results = Vec::new();
        for chunk in [1, 3, 7, 23, 42, 4096, bytes.len().max(1)] {
            let mut c = Checker::new(bytes.len() as u64);
            for piece in bytes.chunks(chunk) {
                c.feed(piece);
            }
            results.push(c.finish());
        }
        for r in &results[1..] {
            assert_eq!(r, &results[0]);
        }
        results.pop().unwrap()
    }

    fn problem(bytes: &[u8]) -> Problem {
        check(bytes).expect_err("the check should fail")
    }

    fn healthy() -> (Fs, Vec<u64>) {
        let mut fs = Fs::new();
        let mut at = fs.txn(b' ', b"", &[Rec::Data(0, b"root")]);
        at.extend(fs.txn(
            b' ',
            b"/ bob",
            &[Rec::Data(1, b"one"), Rec::Data(2, b"two")],
        ));
        at.extend(fs.txn(b'p', b"", &[Rec::Data(1, b"one again")]));
        at.extend(fs.txn(b' ', b"", &[Rec::Back(1, at[1]), Rec::Back(2, 0)]));
        (fs, at)
    }

    #[test]
    fn a_healthy_file_passes_in_chunks_of_any_size_and_gives_the_scans_index() {
        let (fs, at) = healthy();
        let (summary, index) = check(&fs.bytes).unwrap();
        assert_eq!(summary.transactions, 4);
        assert_eq!(summary.records, 6);
        assert_eq!(summary.backpointers, 2);
        assert_eq!(index.get(0), Some(at[0]));
        assert_eq!(index.get(1), Some(at[4]));
        assert_eq!(index.get(2), Some(at[5]));
        // The same index as the committed-end scan.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Data.fs");
        std::fs::write(&path, &fs.bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let got = super::super::committed(&path, &file, fs.pos(), &crate::Silent).unwrap();
        assert_eq!(got.pos, fs.pos());
        assert_eq!(got.index, index);
    }

    #[test]
    fn the_magic_only_is_a_valid_empty_storage_and_less_is_not() {
        assert_eq!(check(b"FS21").unwrap().0.transactions, 0);
        assert!(problem(b"FS3").what.contains("shorter than the 4-byte"));
        assert!(problem(b"").what.contains("shorter than the 4-byte"));
        let p = problem(b"FS99");
        assert_eq!(p.pos, 0);
        assert!(p.what.contains("not a FileStorage"), "{}", p.what);
    }

    #[test]
    fn a_transaction_id_that_does_not_increase_is_named_with_both_positions() {
        let mut fs = Fs::new();
        fs.txn(b' ', b"", &[Rec::Data(0, b"a")]);
        let second = fs.pos();
        fs.tid -= 1;
        fs.txn(b' ', b"", &[Rec::Data(0, b"b")]);
        let p = problem(&fs.bytes);
        assert_eq!(p.pos, second);
        assert!(p.what.contains("time-stamp reduction"), "{}", p.what);
        assert!(p.what.contains("at byte 4"), "{}", p.what);
    }

    #[test]
    fn a_transaction_running_past_the_end_is_reported_at_its_header() {
        let (mut fs, _) = healthy();
        let last = fs.pos();
        fs.txn(b' ', b"", &[Rec::Data(3, b"cut")]);
        fs.bytes.truncate(fs.bytes.len() - 5);
        let p = problem(&fs.bytes);
        assert_eq!(p.pos, last);
        assert!(p.what.contains("runs past the end"), "{}", p.what);
        // A few stray bytes after the last transaction.
        let (mut fs, _) = healthy();
        let end = fs.pos();
        fs.bytes.extend_from_slice(b"xyz");
        let p = problem(&fs.bytes);
        assert_eq!(p.pos, end);
        assert!(p.what.contains("only 3 bytes follow"), "{}", p.what);
    }

    #[test]
    fn the_reserved_transaction_id_is_refused() {
        let (mut fs, _) = healthy();
        let t = fs.pos();
        fs.tid = u64::MAX - 1;
        fs.txn(b' ', b"", &[Rec::Data(3, b"x")]);
        let p = problem(&fs.bytes);
        assert_eq!(p.pos, t);
        assert!(p.what.contains("reserved"), "{}", p.what);
    }

    #[test]
    fn checkpoint_and_unknown_statuses_are_refused() {
        for (status, says) in [
            (b'c', "never committed"),
            (b'x', "invalid transaction status"),
        ] {
            let (mut fs, _) = healthy();
            let t = fs.pos();
            fs.txn(status, b"", &[Rec::Data(3, b"x")]);
            let p = problem(&fs.bytes);
            assert_eq!(p.pos, t);
            assert!(p.what.contains(says), "{}", p.what);
        }
    }

    #[test]
    fn header_lengths_beyond_the_transaction_length_are_refused() {
        let (mut fs, _) = healthy();
        let t = fs.pos() as usize;
        fs.txn(b' ', b"", &[]);
        fs.bytes[t + 17..t + 19].copy_from_slice(&100u16.to_be_bytes());
        let p = problem(&fs.bytes);
        assert_eq!(p.pos, t as u64);
        assert!(
            p.what.contains("exceed the transaction length"),
            "{}",
            p.what
        );
    }

    #[test]
    fn a_wrong_tloc_names_the_record_and_both_positions() {
        let (mut fs, at) = healthy();
        let r = at[2] as usize;
        fs.bytes[r + 24..r + 32].copy_from_slice(&4u64.to_be_bytes());
        let p = problem(&fs.bytes);
        assert_eq!(p.pos, at[2]);
        assert!(p.what.contains("(tloc)"), "{}", p.what);
        assert!(p.what.contains("oid 0x0000000000000002"), "{}", p.what);
    }

    #[test]
    fn a_record_past_its_transaction_and_records_that_dont_add_up_are_refused() {
        let (mut fs, at) = healthy();
        let r = at[0] as usize;
        fs.bytes[r + 34..r + 42].copy_from_slice(&1000u64.to_be_bytes());
        let p = problem(&fs.bytes);
        assert_eq!(p.pos, at[0]);
        assert!(
            p.what.contains("runs past the end of its transaction"),
            "{}",
            p.what
        );
        // One record 10 bytes short of its transaction's end.
        let mut fs = Fs::new();
        let at = fs.txn(b' ', b"", &[Rec::Data(0, b"0123456789abcdef")]);
        let r = at[0] as usize;
        fs.bytes[r + 34..r + 42].copy_from_slice(&6u64.to_be_bytes());
        let p = problem(&fs.bytes);
        assert_eq!(p.pos, at[0] + 42 + 6);
        assert!(p.what.contains("don't add up"), "{}", p.what);
    }

    #[test]
    fn a_version_length_is_refused() {
        let (mut fs, at) = healthy();
        let r = at[1] as usize;
        fs.bytes[r + 32..r + 34].copy_from_slice(&1u16.to_be_bytes());
        assert!(problem(&fs.bytes).what.contains("version length"));
    }

    #[test]
    fn a_wrong_redundant_length_is_reported_where_it_is() {
        let (mut fs, _) = healthy();
        let end = fs.bytes.len();
        fs.bytes[end - 1] ^= 1;
        let p = problem(&fs.bytes);
        assert_eq!(p.pos, end as u64 - 8);
        assert!(p.what.contains("redundant length"), "{}", p.what);
    }

    #[test]
    fn backpointers_must_point_to_an_earlier_record_of_the_same_oid() {
        // (which of [first record, oid 1, oid 2, the record itself], offset, message)
        let cases = [
            (2, 0, "a data record of oid 0x0000000000000002"),
            (1, 1, "where no data record starts"),
            (3, 0, "which is not before the record"),
        ];
        for (which, offset, says) in cases {
            let mut fs = Fs::new();
            let mut at = fs.txn(b' ', b"", &[Rec::Data(0, b"root")]);
            at.extend(fs.txn(b' ', b"", &[Rec::Data(1, b"one"), Rec::Data(2, b"two")]));
            at.push(fs.pos() + TXN_HEADER_LEN);
            let t = at[which] + offset;
            let rec = fs.txn(b' ', b"", &[Rec::Back(1, t)]);
            let p = problem(&fs.bytes);
            assert_eq!(p.pos, rec[0], "{says}");
            assert!(p.what.contains(says), "{}", p.what);
        }
    }

    #[test]
    fn an_undone_transaction_is_skipped_and_not_indexed() {
        let mut fs = Fs::new();
        let at = fs.txn(b' ', b"", &[Rec::Data(0, b"root")]);
        fs.txn(b'u', b"", &[Rec::Data(0, b"undone"), Rec::Data(5, b"x")]);
        let (summary, index) = check(&fs.bytes).unwrap();
        assert_eq!(summary.transactions, 2);
        assert_eq!(summary.records, 1);
        assert_eq!(index.get(0), Some(at[0]));
        assert_eq!(index.get(5), None);
    }

    #[test]
    fn boundaries_are_known_between_transactions_only() {
        let (fs, at) = healthy();
        let mut c = Checker::new(fs.pos());
        assert!(c.at_transaction_boundary());
        c.feed(&fs.bytes[..4]);
        assert!(c.at_transaction_boundary());
        let inside = at[3] as usize + 3;
        c.feed(&fs.bytes[4..inside]);
        assert!(!c.at_transaction_boundary());
        assert_eq!(c.current_transaction(), Some(at[3] - TXN_HEADER_LEN));
        c.feed(&fs.bytes[inside..]);
        assert!(c.at_transaction_boundary());
        assert!(c.finish().is_ok());
    }

    #[test]
    fn the_committed_fixtures_written_by_zodb_pass_and_small_gives_zodbs_index() {
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        for name in ["small.fs", "packed.fs", "undo.fs"] {
            let bytes = std::fs::read(data.join(name)).unwrap();
            let (summary, index) = check(&bytes).unwrap_or_else(|p| panic!("{name}: {p}"));
            assert!(summary.transactions >= 4, "{name}");
            if name == "undo.fs" {
                assert!(summary.backpointers > 0);
            }
            if name == "small.fs" {
                let stored = std::fs::read(data.join("small.fs.index")).unwrap();
                assert!(crate::index::save(bytes.len() as u64, &index) == stored);
            }
        }
    }
}
