//! The `.index` file: fsIndex's save format, a stream of pickles.
//!
//! Grammar (each item an independent pickle, protocol 3, no memo):
//!
//! ```text
//! index  := pos entry* None
//! pos    := int                       (the position the index is valid at)
//! entry  := tuple(prefix: bytes[6], bucket: bytes[8·n])
//! bucket := suffix[2]·n  pos48[6]·n   (all suffixes, then all positions)
//! ```
//!
//! Hand-written because no pickle crate promises the exact opcodes ZODB's C
//! pickler chooses, and byte-identical `.index` files are the contract. The
//! reader accepts what ZODB of any age writes for this grammar (protocols
//! 1–3: `BINSTRING`, `MARK … TUPLE`, memo opcodes); anything else is an
//! [`IndexError`] naming the byte offset, and callers fall back to a scan.
//!
//! The reader streams ([`load_from`], [`load_file`]): the file is never
//! held in memory beside the index it decodes (an index is about 8 bytes
//! per object, 45 MB for 5 million objects), only one bucket at a time, and
//! no length read from the file is allocated before its bytes arrive.

use std::io::{self, BufRead, Read, Write};

use super::{Index, MAX_POS};

/// Why an `.index` file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The file uses the pre-2010 format (a pickled dict), which we do not read.
    #[error("{path}: old (pre-ZODB 3.9) index format; it will be ignored and the Data.fs scanned")]
    OldFormat {
        /// The index file.
        path: String,
    },
    /// The file cannot be opened or read.
    #[error("{path}: cannot be read ({why}); the index will be ignored and the Data.fs scanned")]
    Unreadable {
        /// The index file.
        path: String,
        /// The operating system's error.
        why: String,
    },
    /// The bytes are not a valid fsIndex pickle stream.
    #[error("{path}: byte {pos}: {what}; the index will be ignored and the Data.fs scanned")]
    Corrupt {
        /// The index file.
        path: String,
        /// Offset in the file where decoding failed.
        pos: usize,
        /// What was wrong.
        what: String,
    },
}

/// Writes `index`, valid at `pos`, in fsIndex's save format.
pub fn write_to(w: &mut (impl Write + ?Sized), pos: u64, index: &Index) -> io::Result<()> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&[PROTO, 3]);
    put_int(&mut out, pos);
    out.push(STOP);
    w.write_all(&out)?;
    let mut bucket_bytes = Vec::new();
    for (prefix, entries) in index.buckets() {
        bucket_bytes.clear();
        for e in entries {
            bucket_bytes.extend_from_slice(&((e >> 48) as u16).to_be_bytes());
        }
        for e in entries {
            bucket_bytes.extend_from_slice(&(e & MAX_POS).to_be_bytes()[2..]);
        }
        out.clear();
        out.extend_from_slice(&[PROTO, 3]);
        put_bytes(&mut out, prefix);
        put_bytes(&mut out, &bucket_bytes);
        out.extend_from_slice(&[TUPLE2, STOP]);
        w.write_all(&out)?;
    }
    w.write_all(&[PROTO, 3, NONE, STOP])
}

/// Returns the whole `.index` file for `index` valid at `pos`.
pub fn save(pos: u64, index: &Index) -> Vec<u8> {
    let mut v = Vec::new();
    write_to(&mut v, pos, index).expect("writing to a Vec cannot fail");
    v
}

/// The position an `.index` file is valid at (its first pickle), without
/// reading the rest; `None` if it does not start with an int pickle.
pub fn peek_pos(data: &[u8]) -> Option<u64> {
    peek_pos_from(&mut &data[..])
}

/// [`peek_pos`] of a stream (reads only the first pickle).
pub fn peek_pos_from(input: &mut dyn BufRead) -> Option<u64> {
    let mut r = Reader::new(input, "");
    match r.load().ok()? {
        Value::Int(p) => u64::try_from(p).ok(),
        _ => None,
    }
}

/// [`peek_pos`] of the file `path`; `None` also if it cannot be read.
pub fn peek_pos_file(path: &str) -> Option<u64> {
    let f = crate::io::open_regular(path).ok()?;
    peek_pos_from(&mut io::BufReader::new(f))
}

/// Reads an `.index` file's bytes; `path` is only used in errors.
/// Returns the position the index is valid at and the index.
pub fn load(data: &[u8], path: &str) -> Result<(u64, Index), IndexError> {
    load_from(&mut &data[..], path)
}

/// Reads the `.index` file `path`, streaming. A file that cannot be
/// opened or read is an [`IndexError::Unreadable`].
pub fn load_file(path: &str) -> Result<(u64, Index), IndexError> {
    let f = crate::io::open_regular(path).map_err(|e| IndexError::Unreadable {
        path: path.to_string(),
        why: e.to_string(),
    })?;
    load_from(&mut io::BufReader::with_capacity(1 << 16, f), path)
}

/// [`load`] from a stream; `path` is only used in errors.
pub fn load_from(input: &mut dyn BufRead, path: &str) -> Result<(u64, Index), IndexError> {
    let mut r = Reader::new(input, path);
    let pos = match r.load()? {
        Value::Int(p) if p >= 0 => p as u64,
        Value::Int(_) => return Err(r.corrupt("negative position")),
        _ => {
            return Err(IndexError::OldFormat {
                path: path.to_string(),
            });
        }
    };
    let mut index = Index::new();
    loop {
        let start = r.at;
        match r.load()? {
            Value::None => break,
            Value::Tuple(items) => {
                let [Value::Bytes(prefix), Value::Bytes(bucket)] = items.as_slice() else {
                    return Err(r.corrupt_at(start, "entry is not a (bytes, bytes) pair"));
                };
                let prefix: [u8; 6] = prefix
                    .as_slice()
                    .try_into()
                    .map_err(|_| r.corrupt_at(start, "oid prefix is not 6 bytes"))?;
                if bucket.len() % 8 != 0 {
                    return Err(r.corrupt_at(start, "bucket length is not a multiple of 8"));
                }
                let n = bucket.len() / 8;
                let (keys, vals) = bucket.split_at(2 * n);
                let mut entries = Vec::with_capacity(n);
                for i in 0..n {
                    let suffix = u16::from_be_bytes([keys[2 * i], keys[2 * i + 1]]);
                    let mut p = [0u8; 8];
                    p[2..].copy_from_slice(&vals[6 * i..6 * i + 6]);
                    entries.push(u64::from(suffix) << 48 | u64::from_be_bytes(p));
                }
                if entries.windows(2).any(|w| w[0] >> 48 >= w[1] >> 48) {
                    return Err(r.corrupt_at(start, "bucket keys are not in ascending order"));
                }
                index.put_bucket(prefix, entries);
            }
            _ => return Err(r.corrupt_at(start, "unexpected object in index stream")),
        }
    }
    Ok((pos, index))
}

const PROTO: u8 = 0x80;
const STOP: u8 = b'.';
const NONE: u8 = b'N';
const TUPLE2: u8 = 0x86;
const SHORT_BINBYTES: u8 = b'C';
const BINBYTES: u8 = b'B';

/// Appends the pickle opcodes for a non-negative int, choosing the opcode
/// exactly as CPython's pickler does for protocol ≥ 2.
fn put_int(out: &mut Vec<u8>, n: u64) {
    if n <= 0xff {
        out.extend_from_slice(&[b'K', n as u8]);
    } else if n <= 0xffff {
        out.push(b'M');
        out.extend_from_slice(&(n as u16).to_le_bytes());
    } else if n <= 0x7fff_ffff {
        out.push(b'J');
        out.extend_from_slice(&(n as u32).to_le_bytes());
    } else {
        // LONG1: minimal little-endian two's complement, one sign byte spare.
        let nbytes = (64 - n.leading_zeros()) as usize / 8 + 1;
        out.extend_from_slice(&[0x8a, nbytes as u8]);
        let le = (u128::from(n)).to_le_bytes();
        out.extend_from_slice(&le[..nbytes]);
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    if b.len() < 256 {
        out.extend_from_slice(&[SHORT_BINBYTES, b.len() as u8]);
    } else {
        out.push(BINBYTES);
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(b);
}

/// The few object kinds an index stream contains.
#[derive(Debug, Clone)]
enum Value {
    None,
    Int(i128),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    Dict,
}

struct Reader<'a> {
    input: &'a mut dyn BufRead,
    /// Bytes consumed so far (offsets in errors).
    at: usize,
    path: &'a str,
    stack: Vec<Value>,
    marks: Vec<usize>,
    /// The bytes of the last [`Reader::take`].
    scratch: Vec<u8>,
}

impl<'a> Reader<'a> {
    fn new(input: &'a mut dyn BufRead, path: &'a str) -> Self {
        Reader {
            input,
            at: 0,
            path,
            stack: Vec::new(),
            marks: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn corrupt(&self, what: &str) -> IndexError {
        self.corrupt_at(self.at, what)
    }

    fn corrupt_at(&self, pos: usize, what: &str) -> IndexError {
        IndexError::Corrupt {
            path: self.path.to_string(),
            pos,
            what: what.to_string(),
        }
    }

    fn read_error(&self, e: io::Error) -> IndexError {
        self.corrupt(&format!("cannot be read ({e})"))
    }

    /// The next `n` bytes. Memory grows with the bytes that arrive, not
    /// with `n`: a length field claiming gigabytes in a short file costs
    /// only the file.
    fn take(&mut self, n: usize) -> Result<&[u8], IndexError> {
        self.scratch.clear();
        let got = (&mut self.input)
            .take(n as u64)
            .read_to_end(&mut self.scratch)
            .map_err(|e| self.read_error(e))?;
        self.at += got;
        if got < n {
            return Err(self.corrupt("file ends inside a pickle"));
        }
        Ok(&self.scratch)
    }

    fn u8(&mut self) -> Result<u8, IndexError> {
        Ok(self.take(1)?[0])
    }

    fn len_le(&mut self, n: usize) -> Result<usize, IndexError> {
        let b = self.take(n)?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(b);
        usize::try_from(u64::from_le_bytes(v)).map_err(|_| self.corrupt("length too large"))
    }

    fn line(&mut self) -> Result<String, IndexError> {
        self.scratch.clear();
        let got = self
            .input
            .read_until(b'\n', &mut self.scratch)
            .map_err(|e| self.read_error(e))?;
        self.at += got;
        if self.scratch.last() != Some(&b'\n') {
            return Err(self.corrupt("unterminated text argument"));
        }
        self.scratch.pop();
        Ok(String::from_utf8_lossy(&self.scratch).into_owned())
    }

    fn pop(&mut self) -> Result<Value, IndexError> {
        self.stack
            .pop()
            .ok_or_else(|| self.corrupt("stack underflow"))
    }

    /// Runs the pickle machine until STOP; returns the object on top.
    fn load(&mut self) -> Result<Value, IndexError> {
        self.stack.clear();
        self.marks.clear();
        loop {
            let op_at = self.at;
            let op = self.u8()?;
            let v = match op {
                PROTO => {
                    self.u8()?;
                    continue;
                }
                b'\x95' => {
                    // FRAME (protocol 4): an 8-byte length we do not need.
                    self.take(8)?;
                    continue;
                }
                STOP => return self.pop(),
                NONE => Value::None,
                b'K' => Value::Int(i128::from(self.u8()?)),
                b'M' => Value::Int(self.len_le(2)? as i128),
                b'J' => {
                    let b = self.take(4)?;
                    Value::Int(i128::from(i32::from_le_bytes(b.try_into().expect("4"))))
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.len_le(4)?
                    };
                    if n > 16 {
                        return Err(self.corrupt_at(op_at, "integer too large"));
                    }
                    let b = self.take(n)?.to_vec();
                    let mut v: i128 = 0;
                    for (i, byte) in b.iter().enumerate() {
                        v |= i128::from(*byte) << (8 * i);
                    }
                    if n > 0 && n < 16 && b[n - 1] & 0x80 != 0 {
                        v -= 1i128 << (8 * n);
                    }
                    Value::Int(v)
                }
                b'I' | b'L' => {
                    let text = self.line()?;
                    let t = text.trim_end_matches('L');
                    match t {
                        "00" => Value::Int(0),
                        "01" => Value::Int(1),
                        _ => Value::Int(
                            t.parse()
                                .map_err(|_| self.corrupt_at(op_at, "bad integer text"))?,
                        ),
                    }
                }
                SHORT_BINBYTES | b'U' | 0x8c => {
                    let n = self.u8()? as usize;
                    Value::Bytes(self.take(n)?.to_vec())
                }
                BINBYTES | b'T' | b'X' => {
                    let n = self.len_le(4)?;
                    Value::Bytes(self.take(n)?.to_vec())
                }
                0x8e => {
                    let n = self.len_le(8)?;
                    Value::Bytes(self.take(n)?.to_vec())
                }
                b'(' => {
                    self.marks.push(self.stack.len());
                    continue;
                }
                b't' => {
                    let m = self
                        .marks
                        .pop()
                        .ok_or_else(|| self.corrupt_at(op_at, "TUPLE without MARK"))?;
                    if m > self.stack.len() {
                        return Err(self.corrupt_at(op_at, "MARK below the stack"));
                    }
                    Value::Tuple(self.stack.split_off(m))
                }
                b')' => Value::Tuple(Vec::new()),
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err(self.corrupt_at(op_at, "stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    Value::Tuple(items)
                }
                b'}' => Value::Dict,
                b'q' => {
                    self.u8()?;
                    continue;
                }
                b'r' => {
                    self.take(4)?;
                    continue;
                }
                0x94 => continue, // MEMOIZE
                _ => {
                    // Anything else (dict contents, globals, memo gets) only
                    // appears in the old dict format or in damaged files.
                    if matches!(self.stack.first(), Some(Value::Dict)) {
                        return Ok(Value::Dict);
                    }
                    return Err(
                        self.corrupt_at(op_at, &format!("unexpected pickle opcode 0x{op:02x}"))
                    );
                }
            };
            self.stack.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn positions_are_pickled_with_the_opcodes_cpython_picks() {
        for (pos, want) in [
            (4u64, "80034b042e"),
            (1154, "80034d82042e"),
            (70000, "80034a701101002e"),
            (5_000_000_000, "80038a0500f2052a012e"),
            (0x8000_0000, "80038a0500000080002e"),
        ] {
            let mut out = vec![PROTO, 3];
            put_int(&mut out, pos);
            out.push(STOP);
            assert!(hex(&out).starts_with(want), "{pos}: {}", hex(&out));
        }
    }

    #[test]
    fn an_empty_index_saves_as_nine_bytes() {
        assert_eq!(hex(&save(4, &Index::new())), "80034b042e80034e2e");
    }

    #[test]
    fn a_two_object_index_matches_zodbs_bytes() {
        let mut ix = Index::new();
        ix.insert(0, 0xbd);
        ix.insert(1, 0x3ae);
        assert_eq!(
            hex(&save(1154, &ix)),
            "80034d82042e80034306000000000000431000000001\
             0000000000bd0000000003ae862e80034e2e"
        );
    }

    #[test]
    fn saved_indexes_load_back_unchanged() {
        let mut ix = Index::new();
        for oid in 0..70_000u64 {
            ix.insert(oid * 3, oid * 7 + 4);
        }
        let bytes = save(123_456_789_012, &ix);
        let (pos, back) = load(&bytes, "x.index").unwrap();
        assert_eq!(pos, 123_456_789_012);
        assert_eq!(back, ix);
    }

    #[test]
    fn a_length_claiming_4_gib_in_a_short_file_is_an_error_not_an_allocation() {
        // pos 0, then an entry whose first bytes object claims 2**32 - 1.
        let mut data = save(0, &Index::new());
        data.truncate(data.len() - 4); // drop the final None pickle
        data.extend_from_slice(&[PROTO, 3, BINBYTES, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        let err = load(&data, "x.index").unwrap_err().to_string();
        assert!(err.contains("file ends inside a pickle"), "{err}");
    }

    #[test]
    fn loading_a_file_streams_the_same_index_as_loading_its_bytes() {
        let mut ix = Index::new();
        for oid in 0..70_000u64 {
            ix.insert(oid * 3, 4 + oid * 100);
        }
        let bytes = save(123_456, &ix);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        std::fs::write(&path, &bytes).unwrap();
        let path = path.to_str().unwrap();
        let (pos, back) = load_file(path).unwrap();
        assert_eq!(pos, 123_456);
        assert_eq!(save(pos, &back), bytes);
        assert_eq!(peek_pos_file(path), Some(123_456));
        assert!(matches!(
            load_file("/nonexistent/x.index"),
            Err(IndexError::Unreadable { .. })
        ));
    }

    #[test]
    fn a_truncated_index_is_an_error_with_an_offset() {
        let mut ix = Index::new();
        ix.insert(1, 100);
        let bytes = save(200, &ix);
        let err = load(&bytes[..bytes.len() - 3], "x.index").unwrap_err();
        assert!(err.to_string().starts_with("x.index: byte "), "{err}");
    }
}
