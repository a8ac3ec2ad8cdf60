//! Transaction and data record headers, their sizes, and a positioned
//! reader that serves header-sized reads from a buffer.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Magic of a FileStorage written by Python 3 ZODB (pickle protocol 3).
pub const MAGIC_30: &[u8; 4] = b"FS30";
/// Magic of a FileStorage written by Python 2 ZODB; same record layout.
pub const MAGIC_21: &[u8; 4] = b"FS21";
/// Length of the file header (the magic); the first transaction starts here.
pub const FILE_HEADER_LEN: u64 = 4;
/// Fixed part of a transaction header: tid, tlen, status, ulen, dlen, elen.
pub const TXN_HEADER_LEN: u64 = 8 + 8 + 1 + 2 + 2 + 2;
/// Fixed data record header: oid, tid, prev, tloc, vlen, plen.
pub const DATA_HEADER_LEN: u64 = 8 + 8 + 8 + 8 + 2 + 8;
/// Size of the redundant transaction length after each transaction, and of
/// the backpointer of a data record without data.
pub const LEN_SIZE: u64 = 8;

/// A transaction header, decoded from [`TXN_HEADER_LEN`] bytes at `pos`.
///
/// Invariant: nothing here has been checked against the file; callers
/// validate `tlen` against the file size and the header lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnHeader {
    /// File position of the header.
    pub pos: u64,
    /// Transaction id (a timestamp; strictly increasing in a healthy file).
    pub tid: [u8; 8],
    /// Record length excluding the trailing redundant length; the next
    /// transaction starts at `pos + tlen + 8`.
    pub tlen: u64,
    /// `b' '` committed, `b'p'` packed, `b'c'` in progress, `b'u'` undone.
    pub status: u8,
    /// Length of the user name.
    pub ulen: u16,
    /// Length of the description.
    pub dlen: u16,
    /// Length of the extension.
    pub elen: u16,
}

impl TxnHeader {
    /// Decodes the header found at `pos`. `b` must hold at least
    /// [`TXN_HEADER_LEN`] bytes.
    pub fn decode(pos: u64, b: &[u8]) -> Self {
        TxnHeader {
            pos,
            tid: b[0..8].try_into().expect("8 bytes"),
            tlen: be64(&b[8..16]),
            status: b[16],
            ulen: be16(&b[17..19]),
            dlen: be16(&b[19..21]),
            elen: be16(&b[21..23]),
        }
    }

    /// Length of the header including user, description and extension:
    /// the first data record starts at `pos + header_len()`.
    pub fn header_len(&self) -> u64 {
        TXN_HEADER_LEN + u64::from(self.ulen) + u64::from(self.dlen) + u64::from(self.elen)
    }
}

/// A data record header, decoded from [`DATA_HEADER_LEN`] bytes at `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    /// File position of the record.
    pub pos: u64,
    /// Object id, as a big-endian integer.
    pub oid: u64,
    /// Position of the previous record of this object (0 = none).
    pub prev: u64,
    /// Position of the owning transaction's header.
    pub tloc: u64,
    /// Version length; always 0 in files ZODB can read.
    pub vlen: u16,
    /// Length of the pickle; 0 means an 8-byte backpointer follows.
    pub plen: u64,
}

impl DataHeader {
    /// Decodes the header found at `pos`. `b` must hold at least
    /// [`DATA_HEADER_LEN`] bytes.
    pub fn decode(pos: u64, b: &[u8]) -> Self {
        DataHeader {
            pos,
            oid: be64(&b[0..8]),
            prev: be64(&b[16..24]),
            tloc: be64(&b[24..32]),
            vlen: be16(&b[32..34]),
            plen: be64(&b[34..42]),
        }
    }

    /// Whole record length: header plus pickle, or header plus backpointer.
    /// Saturates instead of overflowing on a corrupt `plen`.
    pub fn record_len(&self) -> u64 {
        DATA_HEADER_LEN.saturating_add(if self.plen == 0 { LEN_SIZE } else { self.plen })
    }
}

/// Decodes a big-endian u64 from the first 8 bytes of `b`.
pub fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes(b[..2].try_into().expect("2 bytes"))
}

/// Positioned reads of small ranges through a read-ahead buffer, so a header
/// scan costs one system call per buffer, not one per record.
///
/// Invariant: `buf[..len]` holds the file's bytes starting at `start`.
pub struct PosReader<'a> {
    file: &'a File,
    buf: Vec<u8>,
    start: u64,
    len: usize,
}

impl<'a> PosReader<'a> {
    /// Read-ahead size. Large enough that small transactions cost no extra
    /// system calls; small enough that skipping big pickles wastes little.
    const BUF_SIZE: usize = 256 * 1024;

    /// A reader over `file`, which is never moved (reads are positioned).
    pub fn new(file: &'a File) -> Self {
        PosReader {
            file,
            buf: vec![0; Self::BUF_SIZE],
            start: 0,
            len: 0,
        }
    }

    /// Returns up to `n` bytes at `pos` (`n` is capped at the buffer size);
    /// fewer only where the file ends first, none at or past the end.
    pub fn read_at(&mut self, pos: u64, n: usize) -> io::Result<&[u8]> {
        let n = n.min(Self::BUF_SIZE);
        let Some(want_end) = pos.checked_add(n as u64) else {
            return Ok(&[]); // no file reaches that far
        };
        let end_in_buf = self.start + self.len as u64;
        let hit = pos >= self.start && want_end <= end_in_buf;
        if !hit {
            self.fill(pos)?;
        }
        let off = (pos - self.start) as usize;
        let avail = self.len.saturating_sub(off);
        Ok(&self.buf[off..off + avail.min(n)])
    }

    fn fill(&mut self, pos: u64) -> io::Result<()> {
        self.start = pos;
        self.len = 0;
        while self.len < self.buf.len() {
            match self
                .file
                .read_at(&mut self.buf[self.len..], pos + self.len as u64)
            {
                Ok(0) => break,
                Ok(k) => self.len += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
