//! A byte delta against a stream: the operations a pack delta is made of
//! (`repo::packdelta` frames them; `fs::packdiff` chooses them).
//!
//! A delta rebuilds an output stream from a *base* stream read once, front
//! to back, and a stream of operations. The base cursor only moves forward,
//! so the base can be any stream: a chain of plain or gzipped files, or
//! another delta. Operations, each a tag byte then LEB128 integers:
//!
//! | tag | operation | output | base cursor |
//! |---|---|---|---|
//! | 0 | end | – | – |
//! | 1 `n` | copy | the next `n` base bytes | `+n` |
//! | 2 `n` | skip | – | `+n` |
//! | 3 `n` bytes | add | the `n` literal bytes that follow | – |
//! | 4 `d` | subtract | the next 8 base bytes as a big-endian u64, minus `d` (wrapping) | `+8` |
//!
//! *Subtract* is for FileStorage positions: a pack moves every record
//! towards the start of the file by a distance that changes slowly, so
//! the same `d` repeats record after record and compresses to almost
//! nothing.
//!
//! Invariant: [`Apply`] produces exactly the length it is told, or fails;
//! it never allocates by a size read from the delta (literal bytes and
//! skipped base bytes pass through fixed buffers).

use std::io::{self, Read, Write};

const END: u8 = 0;
const COPY: u8 = 1;
const SKIP: u8 = 2;
const ADD: u8 = 3;
const SUB: u8 = 4;

/// Literal bytes are written in operations of at most this size.
const ADD_MAX: usize = 64 * 1024;

/// Counts of what a delta does, for reports and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeltaStats {
    /// Output bytes copied from the base (including subtracted fields).
    pub copied: u64,
    /// Output bytes given literally.
    pub literal: u64,
    /// Base bytes skipped.
    pub skipped: u64,
}

/// Writes operations to `W`, merging neighbours of the same kind.
pub struct DeltaWriter<W: Write> {
    out: W,
    /// A copy or skip run not yet written: (tag, length).
    run: Option<(u8, u64)>,
    /// Literal bytes not yet written.
    lit: Vec<u8>,
    stats: DeltaStats,
}

impl<W: Write> DeltaWriter<W> {
    /// A writer of operations to `out`.
    pub fn new(out: W) -> Self {
        DeltaWriter {
            out,
            run: None,
            lit: Vec::new(),
            stats: DeltaStats::default(),
        }
    }

    /// Output the next `n` base bytes.
    pub fn copy(&mut self, n: u64) -> io::Result<()> {
        self.stats.copied += n;
        self.run_of(COPY, n)
    }

    /// Pass over the next `n` base bytes.
    pub fn skip(&mut self, n: u64) -> io::Result<()> {
        self.stats.skipped += n;
        self.run_of(SKIP, n)
    }

    /// Output `bytes` literally.
    pub fn add(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.flush_run()?;
        self.stats.literal += bytes.len() as u64;
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = ADD_MAX - self.lit.len();
            let (now, later) = rest.split_at(rest.len().min(room));
            self.lit.extend_from_slice(now);
            rest = later;
            if self.lit.len() == ADD_MAX {
                self.flush_lit()?;
            }
        }
        Ok(())
    }

    /// Output the next 8 base bytes, read as a big-endian u64, minus `d`.
    pub fn sub(&mut self, d: u64) -> io::Result<()> {
        self.flush_run()?;
        self.flush_lit()?;
        self.stats.copied += 8;
        self.out.write_all(&[SUB])?;
        write_varint(&mut self.out, d)
    }

    /// Encodes the 8 output bytes `new` from the 8 base bytes `old`: a copy
    /// if they are equal, a subtraction otherwise.
    pub fn field(&mut self, old: &[u8; 8], new: &[u8; 8]) -> io::Result<()> {
        if old == new {
            self.copy(8)
        } else {
            self.sub(u64::from_be_bytes(*old).wrapping_sub(u64::from_be_bytes(*new)))
        }
    }

    /// Encodes output bytes `new` from as many base bytes `old`: copies
    /// where they agree, skip-and-add between the first and last
    /// difference.
    pub fn pair(&mut self, old: &[u8], new: &[u8]) -> io::Result<()> {
        debug_assert_eq!(old.len(), new.len());
        let Some(first) = old.iter().zip(new).position(|(a, b)| a != b) else {
            return self.copy(new.len() as u64);
        };
        let last = old
            .iter()
            .zip(new)
            .rposition(|(a, b)| a != b)
            .unwrap_or(first);
        self.copy(first as u64)?;
        self.skip((last + 1 - first) as u64)?;
        self.add(&new[first..=last])?;
        self.copy((new.len() - last - 1) as u64)
    }

    /// Writes the end operation and returns the writer and the counts.
    pub fn finish(mut self) -> io::Result<(W, DeltaStats)> {
        self.flush_run()?;
        self.flush_lit()?;
        self.out.write_all(&[END])?;
        Ok((self.out, self.stats))
    }

    fn run_of(&mut self, tag: u8, n: u64) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.flush_lit()?;
        match &mut self.run {
            Some((t, len)) if *t == tag => *len += n,
            _ => {
                self.flush_run()?;
                self.run = Some((tag, n));
            }
        }
        Ok(())
    }

    fn flush_run(&mut self) -> io::Result<()> {
        if let Some((tag, n)) = self.run.take() {
            self.out.write_all(&[tag])?;
            write_varint(&mut self.out, n)?;
        }
        Ok(())
    }

    fn flush_lit(&mut self) -> io::Result<()> {
        if !self.lit.is_empty() {
            self.out.write_all(&[ADD])?;
            write_varint(&mut self.out, self.lit.len() as u64)?;
            self.out.write_all(&self.lit)?;
            self.lit.clear();
        }
        Ok(())
    }
}

fn write_varint(w: &mut impl Write, mut v: u64) -> io::Result<()> {
    let mut buf = [0u8; 10];
    let mut i = 0;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf[i] = b;
            i += 1;
            break;
        }
        buf[i] = b | 0x80;
        i += 1;
    }
    w.write_all(&buf[..i])
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// What [`Apply`] is in the middle of.
enum State {
    /// Between operations.
    Next,
    /// Copying this many more base bytes.
    Copy(u64),
    /// Passing on this many more literal bytes.
    Add(u64),
    /// Passing on the rest of a subtracted field.
    Field([u8; 8], usize),
    /// The end operation was read.
    Done,
}

/// The output of a delta: reads `base` and the operations `ops`, yields
/// exactly `len` bytes.
///
/// Errors are `InvalidData` naming the output offset where the delta went
/// wrong (an unknown operation, a base that ends too soon, more or fewer
/// bytes than `len`); a base or operations stream that fails passes its
/// error on.
pub struct Apply<B: Read, O: Read> {
    base: B,
    ops: O,
    len: u64,
    out: u64,
    state: State,
    scratch: Vec<u8>,
}

impl<B: Read, O: Read> Apply<B, O> {
    /// The delta `ops` against `base`, `len` bytes long.
    pub fn new(base: B, ops: O, len: u64) -> Self {
        Apply {
            base,
            ops,
            len,
            out: 0,
            state: State::Next,
            scratch: Vec::new(),
        }
    }

    fn byte(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        match self.ops.read_exact(&mut b) {
            Ok(()) => Ok(b[0]),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(bad(format!(
                "the delta's operations end before its end mark, at byte {} of its output",
                self.out
            ))),
            Err(e) => Err(self.ops_failed(e)),
        }
    }

    /// `e`, from reading the operations (a damaged deflate stream), saying
    /// where the output stood.
    fn ops_failed(&self, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!(
                "{e} in the delta's operations, at byte {} of its output",
                self.out
            ),
        )
    }

    fn varint(&mut self) -> io::Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                break;
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad(format!(
            "the delta holds a number too large at byte {} of its output",
            self.out
        )))
    }

    /// Reserves `n` more output bytes, failing if that passes `len`.
    fn grow(&mut self, n: u64) -> io::Result<()> {
        match self.out.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(bad(format!(
                "the delta makes more than the {} bytes it should, at byte {} of its output",
                self.len, self.out
            ))),
        }
    }

    fn base_short(&self) -> io::Error {
        bad(format!(
            "the delta reads past the end of the backup it is based on, at byte {} of its output",
            self.out
        ))
    }

    /// Reads and starts the next operation.
    fn next_op(&mut self) -> io::Result<()> {
        let tag = self.byte()?;
        self.state = match tag {
            END => {
                if self.out != self.len {
                    return Err(bad(format!(
                        "the delta ends after {} bytes of output, not the {} it should make",
                        self.out, self.len
                    )));
                }
                State::Done
            }
            COPY => {
                let n = self.varint()?;
                self.grow(n)?;
                State::Copy(n)
            }
            ADD => {
                let n = self.varint()?;
                self.grow(n)?;
                State::Add(n)
            }
            SKIP => {
                let mut n = self.varint()?;
                if self.scratch.is_empty() {
                    self.scratch = vec![0; 64 * 1024];
                }
                while n > 0 {
                    let k = n.min(self.scratch.len() as u64) as usize;
                    match self.base.read(&mut self.scratch[..k]) {
                        Ok(0) => return Err(self.base_short()),
                        Ok(got) => n -= got as u64,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                State::Next
            }
            SUB => {
                let d = self.varint()?;
                self.grow(8)?;
                let mut b = [0u8; 8];
                match self.base.read_exact(&mut b) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Err(self.base_short());
                    }
                    Err(e) => return Err(e),
                }
                State::Field(u64::from_be_bytes(b).wrapping_sub(d).to_be_bytes(), 0)
            }
            other => {
                return Err(bad(format!(
                    "the delta holds an unknown operation {other} at byte {} of its output",
                    self.out
                )));
            }
        };
        Ok(())
    }
}

impl<B: Read, O: Read> Read for Apply<B, O> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.state {
                State::Done => return Ok(0),
                State::Next => self.next_op()?,
                State::Copy(0) | State::Add(0) => self.state = State::Next,
                State::Copy(rem) => {
                    let want = (*rem).min(buf.len() as u64) as usize;
                    let got = self.base.read(&mut buf[..want])?;
                    if got == 0 {
                        return Err(self.base_short());
                    }
                    if let State::Copy(rem) = &mut self.state {
                        *rem -= got as u64;
                    }
                    self.out += got as u64;
                    return Ok(got);
                }
                State::Add(rem) => {
                    let want = (*rem).min(buf.len() as u64) as usize;
                    let got = match self.ops.read(&mut buf[..want]) {
                        Ok(got) => got,
                        Err(e) => return Err(self.ops_failed(e)),
                    };
                    if got == 0 {
                        return Err(bad(format!(
                            "the delta's literal bytes end early, at byte {} of its output",
                            self.out
                        )));
                    }
                    if let State::Add(rem) = &mut self.state {
                        *rem -= got as u64;
                    }
                    self.out += got as u64;
                    return Ok(got);
                }
                State::Field(bytes, at) => {
                    let n = (8 - *at).min(buf.len());
                    buf[..n].copy_from_slice(&bytes[*at..*at + n]);
                    *at += n;
                    if *at == 8 {
                        self.state = State::Next;
                    }
                    self.out += n as u64;
                    return Ok(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(base: &[u8], ops: &[u8], len: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Apply::new(base, ops, len).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn every_operation_rebuilds_its_bytes_and_neighbours_merge() {
        let base: Vec<u8> = (0..100u8).chain(1000u64.to_be_bytes()).collect();
        let mut w = DeltaWriter::new(Vec::new());
        w.copy(10).unwrap();
        w.copy(5).unwrap();
        w.skip(80).unwrap();
        w.add(b"hello").unwrap();
        w.copy(5).unwrap();
        w.sub(1000 - 42).unwrap();
        let (ops, stats) = w.finish().unwrap();
        // 10 + 5 copied bytes are one operation.
        assert_eq!(ops[..2], [COPY, 15]);
        let mut want: Vec<u8> = (0..15u8).collect();
        want.extend(b"hello");
        want.extend(95..100u8);
        want.extend(42u64.to_be_bytes());
        assert_eq!(apply(&base, &ops, want.len() as u64).unwrap(), want);
        assert_eq!(stats.copied, 28);
        assert_eq!(stats.literal, 5);
        assert_eq!(stats.skipped, 80);
    }

    #[test]
    fn pair_and_field_encode_any_same_length_bytes() {
        let old = b"abcdefghij12345678".to_vec();
        let new = b"abXdeYghij12345679".to_vec();
        let mut w = DeltaWriter::new(Vec::new());
        w.pair(&old[..10], &new[..10]).unwrap();
        w.field(
            old[10..18].try_into().unwrap(),
            new[10..18].try_into().unwrap(),
        )
        .unwrap();
        let (ops, _) = w.finish().unwrap();
        assert_eq!(apply(&old, &ops, 18).unwrap(), new);
    }

    proptest::proptest! {
        /// Any operations against any base: bytes of exactly the stated
        /// length, or an error; never a panic.
        #[test]
        fn any_operations_give_the_stated_length_or_an_error(
            base in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            ops in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            len in 0u64..80,
        ) {
            if let Ok(out) = apply(&base, &ops, len) {
                proptest::prop_assert_eq!(out.len() as u64, len);
            }
        }
    }

    #[test]
    fn a_wrong_length_or_short_base_or_cut_delta_is_an_error_not_bytes() {
        let mut w = DeltaWriter::new(Vec::new());
        w.copy(4).unwrap();
        let (ops, _) = w.finish().unwrap();
        for (base, ops, len) in [
            (&b"abcd"[..], &ops[..], 3u64),
            (&b"abcd"[..], &ops[..], 5),
            (&b"ab"[..], &ops[..], 4),
            (&b"abcd"[..], &ops[..ops.len() - 1], 4),
            (&b"abcd"[..], &[9u8][..], 4),
            (
                &b"abcd"[..],
                &[
                    COPY, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
                ][..],
                4,
            ),
        ] {
            let err = apply(base, ops, len).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        }
    }
}
