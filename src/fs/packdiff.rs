//! A packed Data.fs as a delta against the state before the pack.
//!
//! FileStorage's pack copies the surviving data records, pickles unchanged,
//! in the original transaction order; it rewrites the positions in record
//! headers (`prev`, `tloc`), transaction lengths, sometimes a status byte,
//! and turns backpointers to dropped records into copies of the data. So
//! [`diff`] walks both files in transaction order: a transaction of the
//! new file is matched with the old transaction of the same tid (older
//! ones are skipped), and within it each data record with the next old
//! record of the same oid. Matched bytes are compared, never assumed: a
//! copy is written only for bytes found equal, a position field that
//! differs becomes a subtraction, and anything else is literal. The delta
//! therefore rebuilds the new file exactly whatever the files hold; the
//! walk only decides how small it is (a file that is not a pack of the old
//! one comes out as literal bytes).
//!
//! Both files are read once, front to back, through fixed buffers: the old
//! state can be a stream (a chain of gzipped files).

use std::io::{self, BufReader, Read, Write};

use super::record::{DATA_HEADER_LEN, DataHeader, FILE_HEADER_LEN, LEN_SIZE, TXN_HEADER_LEN};
use crate::io::delta::{DeltaStats, DeltaWriter};

/// Read-ahead of each file.
const BUF: usize = 1024 * 1024;
/// Compared and copied in pieces of this size.
const PIECE: usize = 64 * 1024;

/// One of the two files, read front to back.
struct Side<'a> {
    r: BufReader<&'a mut dyn Read>,
    /// Bytes consumed.
    pos: u64,
    /// Length of the file.
    len: u64,
}

impl<'a> Side<'a> {
    fn new(r: &'a mut dyn Read, len: u64) -> Self {
        Side {
            r: BufReader::with_capacity(BUF, r),
            pos: 0,
            len,
        }
    }

    fn left(&self) -> u64 {
        self.len - self.pos
    }

    /// Reads exactly `buf.len()` bytes (the caller checked they exist).
    fn take(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.r.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the file ended at byte {} before its stated length {}",
                        self.pos, self.len
                    ),
                )
            } else {
                e
            }
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Passes over `n` bytes.
    fn pass(&mut self, mut n: u64, scratch: &mut [u8]) -> io::Result<()> {
        while n > 0 {
            let k = n.min(scratch.len() as u64) as usize;
            self.take(&mut scratch[..k])?;
            n -= k as u64;
        }
        Ok(())
    }
}

/// A transaction header of the old file, read but not yet encoded.
struct OldTxn {
    head: [u8; TXN_HEADER_LEN as usize],
    tid: [u8; 8],
    /// `tlen`: the next transaction starts `tlen + 8` after the header.
    tlen: u64,
    ext: u64,
}

fn parse_txn(head: &[u8; TXN_HEADER_LEN as usize], left: u64) -> Option<OldTxn> {
    let t = super::record::TxnHeader::decode(0, head);
    let ext = t.header_len() - TXN_HEADER_LEN;
    // The header, strings and trailing length must fit in what is left.
    let whole = t.tlen.checked_add(LEN_SIZE)?;
    (t.tlen >= t.header_len() && whole <= left + TXN_HEADER_LEN).then_some(OldTxn {
        head: *head,
        tid: t.tid,
        tlen: t.tlen,
        ext,
    })
}

/// The walk of [`diff`]: both files and the writer.
struct Walk<'a, W: Write> {
    old: Side<'a>,
    new: Side<'a>,
    w: DeltaWriter<W>,
    /// The old file's next transaction header, read ahead.
    pending: Option<OldTxn>,
    /// The old file cannot be followed any more (damaged or at its end).
    old_done: bool,
    a: Vec<u8>,
    b: Vec<u8>,
}

/// Writes to `out` the delta that rebuilds the first `new_len` bytes of
/// `new` from the first `old_len` bytes of `old` (see the module doc), and
/// returns what it did. Fails only if a file cannot be read or ends before
/// its stated length.
pub fn diff<W: Write>(
    old: &mut dyn Read,
    old_len: u64,
    new: &mut dyn Read,
    new_len: u64,
    out: W,
) -> io::Result<(W, DeltaStats)> {
    let mut walk = Walk {
        old: Side::new(old, old_len),
        new: Side::new(new, new_len),
        w: DeltaWriter::new(out),
        pending: None,
        old_done: false,
        a: vec![0; PIECE],
        b: vec![0; PIECE],
    };
    walk.run()?;
    walk.w.finish()
}

impl<W: Write> Walk<'_, W> {
    fn run(&mut self) -> io::Result<()> {
        if self.new.len < FILE_HEADER_LEN || self.old.len < FILE_HEADER_LEN {
            return self.literal(self.new.left());
        }
        self.same_length(FILE_HEADER_LEN)?;
        while self.new.left() > 0 {
            if self.new.left() < TXN_HEADER_LEN + LEN_SIZE {
                return self.literal(self.new.left());
            }
            let mut head = [0u8; TXN_HEADER_LEN as usize];
            self.new.take(&mut head)?;
            let Some(txn) = parse_txn(&head, self.new.left()) else {
                self.w.add(&head)?;
                return self.literal(self.new.left());
            };
            match self.old_txn(&txn.tid)? {
                Some(old) => self.txn(old, txn)?,
                None => {
                    self.w.add(&head)?;
                    self.literal(txn.tlen + LEN_SIZE - TXN_HEADER_LEN)?;
                }
            }
        }
        Ok(())
    }

    /// The old transaction with this tid, passing over older ones; `None`
    /// if the old file has none (a newer old transaction stays pending).
    fn old_txn(&mut self, tid: &[u8; 8]) -> io::Result<Option<OldTxn>> {
        loop {
            if self.pending.is_none() && !self.old_done {
                if self.old.left() < TXN_HEADER_LEN + LEN_SIZE {
                    self.old_done = true;
                } else {
                    let mut head = [0u8; TXN_HEADER_LEN as usize];
                    self.old.take(&mut head)?;
                    match parse_txn(&head, self.old.left()) {
                        Some(t) => self.pending = Some(t),
                        None => {
                            // The old file cannot be followed: the rest of
                            // it is never used.
                            self.w.skip(TXN_HEADER_LEN)?;
                            self.old_done = true;
                        }
                    }
                }
            }
            let Some(old) = self.pending.take() else {
                return Ok(None);
            };
            if old.tid < *tid {
                self.w.skip(old.tlen + LEN_SIZE)?;
                self.pass_old(old.tlen + LEN_SIZE - TXN_HEADER_LEN)?;
                continue;
            }
            if old.tid == *tid {
                return Ok(Some(old));
            }
            self.pending = Some(old);
            return Ok(None);
        }
    }

    /// Encodes the new transaction `new` (header already read) from the
    /// old one with the same tid (header read, not yet encoded).
    fn txn(&mut self, old: OldTxn, new: OldTxn) -> io::Result<()> {
        let (oh, nh) = (old.head, new.head);
        self.w.copy(8)?; // the tid, equal by construction
        self.w.field(
            oh[8..16].try_into().expect("8"),
            nh[8..16].try_into().expect("8"),
        )?;
        self.w.pair(&oh[16..], &nh[16..])?;
        if old.ext == new.ext && oh[17..] == nh[17..] {
            self.same_length(new.ext)?;
        } else {
            self.w.skip(old.ext)?;
            self.pass_old(old.ext)?;
            self.literal(new.ext)?;
        }
        let mut old_left = old.tlen - TXN_HEADER_LEN - old.ext;
        let mut new_left = new.tlen - TXN_HEADER_LEN - new.ext;
        while new_left > 0 {
            let mut nd = [0u8; DATA_HEADER_LEN as usize];
            let ndh = if new_left >= DATA_HEADER_LEN {
                self.new.take(&mut nd)?;
                Some(DataHeader::decode(0, &nd))
                    .filter(|h| h.vlen == 0 && h.record_len() <= new_left)
            } else {
                None
            };
            let Some(ndh) = ndh else {
                // Not a record this walk understands: the rest of the
                // transaction is literal.
                let read = if new_left >= DATA_HEADER_LEN {
                    DATA_HEADER_LEN
                } else {
                    0
                };
                self.w.add(&nd[..read as usize])?;
                self.literal(new_left - read)?;
                new_left = 0;
                break;
            };
            new_left -= ndh.record_len();
            match self.old_record(ndh.oid, &mut old_left)? {
                Some((od, odh)) => {
                    self.w.pair(&od[..16], &nd[..16])?;
                    self.w.field(
                        od[16..24].try_into().expect("8"),
                        nd[16..24].try_into().expect("8"),
                    )?;
                    self.w.field(
                        od[24..32].try_into().expect("8"),
                        nd[24..32].try_into().expect("8"),
                    )?;
                    self.w.pair(&od[32..], &nd[32..])?;
                    let (ob, nb) = (
                        odh.record_len() - DATA_HEADER_LEN,
                        ndh.record_len() - DATA_HEADER_LEN,
                    );
                    if odh.plen == 0 && ndh.plen == 0 {
                        let mut o8 = [0u8; 8];
                        let mut n8 = [0u8; 8];
                        self.old.take(&mut o8)?;
                        self.new.take(&mut n8)?;
                        self.w.field(&o8, &n8)?;
                    } else if ob == nb {
                        self.same_length(nb)?;
                    } else {
                        self.w.skip(ob)?;
                        self.pass_old(ob)?;
                        self.literal(nb)?;
                    }
                }
                None => {
                    self.w.add(&nd)?;
                    self.literal(ndh.record_len() - DATA_HEADER_LEN)?;
                }
            }
        }
        debug_assert_eq!(new_left, 0);
        // Old records the pack dropped from the end of the transaction.
        self.w.skip(old_left)?;
        self.pass_old(old_left)?;
        let mut o8 = [0u8; 8];
        let mut n8 = [0u8; 8];
        self.old.take(&mut o8)?;
        self.new.take(&mut n8)?;
        self.w.field(&o8, &n8)
    }

    /// The next old record of `oid` in the current old transaction, whose
    /// unread record bytes are `left`, passing over others; its header is
    /// read, its body not. `None` (with the transaction's records all
    /// passed over) if there is none.
    fn old_record(
        &mut self,
        oid: u64,
        left: &mut u64,
    ) -> io::Result<Option<([u8; DATA_HEADER_LEN as usize], DataHeader)>> {
        while *left >= DATA_HEADER_LEN {
            let mut od = [0u8; DATA_HEADER_LEN as usize];
            self.old.take(&mut od)?;
            let h = DataHeader::decode(0, &od);
            if h.vlen != 0 || h.record_len() > *left {
                self.w.skip(DATA_HEADER_LEN)?;
                *left -= DATA_HEADER_LEN;
                break;
            }
            *left -= h.record_len();
            if h.oid == oid {
                return Ok(Some((od, h)));
            }
            self.w.skip(h.record_len())?;
            self.pass_old(h.record_len() - DATA_HEADER_LEN)?;
        }
        self.w.skip(*left)?;
        self.pass_old(*left)?;
        *left = 0;
        Ok(None)
    }

    /// Encodes the next `n` new bytes from the next `n` old bytes.
    fn same_length(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            let k = n.min(PIECE as u64) as usize;
            self.old.take(&mut self.a[..k])?;
            self.new.take(&mut self.b[..k])?;
            self.w.pair(&self.a[..k], &self.b[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    /// The next `n` new bytes, literally.
    fn literal(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            let k = n.min(PIECE as u64) as usize;
            self.new.take(&mut self.b[..k])?;
            self.w.add(&self.b[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    fn pass_old(&mut self, n: u64) -> io::Result<()> {
        self.old.pass(n, &mut self.a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::delta::Apply;

    /// A data record: oid, pickle, prev.
    type Rec<'a> = (u64, &'a [u8], u64);

    fn txn(tid: u64, records: &[Rec], pos: u64) -> Vec<u8> {
        let mut body = Vec::new();
        for (oid, data, prev) in records {
            body.extend(oid.to_be_bytes());
            body.extend(tid.to_be_bytes());
            body.extend(prev.to_be_bytes());
            body.extend(pos.to_be_bytes());
            body.extend(0u16.to_be_bytes());
            body.extend((data.len() as u64).to_be_bytes());
            body.extend(*data);
        }
        let tlen = TXN_HEADER_LEN + 2 + body.len() as u64;
        let mut t = Vec::new();
        t.extend(tid.to_be_bytes());
        t.extend(tlen.to_be_bytes());
        t.push(b' ');
        t.extend(2u16.to_be_bytes());
        t.extend(0u16.to_be_bytes());
        t.extend(0u16.to_be_bytes());
        t.extend(b"me");
        t.extend(body);
        t.extend(tlen.to_be_bytes());
        t
    }

    fn file(txns: &[(u64, Vec<Rec>)]) -> Vec<u8> {
        let mut f = b"FS30".to_vec();
        for (tid, recs) in txns {
            let pos = f.len() as u64;
            f.extend(txn(*tid, recs, pos));
        }
        f
    }

    fn roundtrip(old: &[u8], new: &[u8]) -> DeltaStats {
        let (ops, stats) = diff(
            &mut &old[..],
            old.len() as u64,
            &mut &new[..],
            new.len() as u64,
            Vec::new(),
        )
        .unwrap();
        let mut out = Vec::new();
        Apply::new(old, &ops[..], new.len() as u64)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, new);
        stats
    }

    #[test]
    fn a_pack_that_drops_records_and_transactions_rebuilds_exactly_mostly_by_copies() {
        let big = vec![7u8; 5000];
        let old = file(&[
            (1, vec![(1, &big[..], 0), (2, b"two", 0)]),
            (2, vec![(1, b"one again", 4), (3, &big[..], 0)]),
            (3, vec![(2, b"two again", 0)]),
            (4, vec![(4, &big[..], 0)]),
        ]);
        let new = file(&[
            (1, vec![(2, b"two", 0)]),
            (2, vec![(1, b"one again", 0), (3, &big[..], 0)]),
            (4, vec![(4, &big[..], 0)]),
        ]);
        let stats = roundtrip(&old, &new);
        assert!(stats.literal < 40, "{stats:?}");
        assert!(stats.copied > 10_000, "{stats:?}");
    }

    proptest::proptest! {
        /// Random edits of a small FileStorage (bytes overwritten, the
        /// file cut) on either side: the delta still rebuilds the new file
        /// exactly, and nothing panics.
        #[test]
        fn any_two_files_rebuild_exactly(
            edits in proptest::collection::vec((0usize..400, proptest::num::u8::ANY), 0..6),
            cut in 0usize..400,
            old_side in proptest::bool::ANY,
        ) {
            let recs: Vec<Rec> = vec![(1, b"one", 0), (2, b"two two", 0)];
            let a = file(&[(1, recs.clone()), (2, recs[..1].to_vec()), (3, recs)]);
            let mut b = a.clone();
            for (at, v) in edits {
                let n = b.len();
                b[at % n] = v;
            }
            b.truncate(cut.min(b.len()));
            if old_side {
                roundtrip(&b, &a);
            } else {
                roundtrip(&a, &b);
            }
        }
    }

    #[test]
    fn unrelated_damaged_or_empty_files_still_rebuild_exactly() {
        let a = file(&[(1, vec![(1, b"x", 0)])]);
        let b = file(&[(9, vec![(5, b"other", 0)])]);
        let mut cut = a.clone();
        cut.truncate(30);
        let mut garbage = a.clone();
        garbage[12] = 0xff;
        for (old, new) in [
            (&a, &b),
            (&b, &a),
            (&a, &cut),
            (&cut, &a),
            (&garbage, &a),
            (&a, &garbage),
            (&Vec::new(), &a),
            (&a, &Vec::new()),
        ] {
            roundtrip(old, new);
        }
    }
}
