//! Synthetic FileStorages for the never-panic properties, shared by
//! `never_panic` (the library's readers) and
//! `never_panic_bin` (the binary).
//!
//! A file is built from [`SynthTxn`]s whose lengths and back-references can
//! be slightly wrong, then optionally given a `Data.fs.index` that is valid
//! for a prefix of it ([`prefix_state`]), then mutated ([`Mutation`]).

use std::fs::File;

use proptest::prelude::*;
use proptest::sample::Index as Pick;

use repozo::index::{self, Index, MAX_POS};

#[derive(Debug, Clone)]
pub struct SynthRecord {
    pub oid: u64,
    /// 0 means a backpointer record.
    pub plen: u16,
    pub vlen: u16,
    pub tloc_delta: i8,
}

#[derive(Debug, Clone)]
pub struct SynthTxn {
    pub tid: u64,
    pub status: u8,
    /// Lengths of the user, description and extension strings.
    pub strings: (u8, u8, u8),
    pub records: Vec<SynthRecord>,
    pub tlen_delta: i8,
    pub trailer_delta: i8,
}

pub fn mostly_zero_i8() -> impl Strategy<Value = i8> {
    prop_oneof![9 => Just(0i8), 1 => any::<i8>()]
}

pub fn synth_txn() -> impl Strategy<Value = SynthTxn> {
    let record = (
        prop_oneof![0..8u64, any::<u64>()],
        prop_oneof![Just(0u16), 1..48u16],
        prop_oneof![9 => Just(0u16), 1 => any::<u16>()],
        mostly_zero_i8(),
    )
        .prop_map(|(oid, plen, vlen, tloc_delta)| SynthRecord {
            oid,
            plen,
            vlen,
            tloc_delta,
        });
    (
        prop_oneof![9 => 1..u64::MAX, 1 => Just(u64::MAX)],
        prop_oneof![
            4 => Just(b' '),
            2 => Just(b'p'),
            2 => Just(b'u'),
            1 => Just(b'c'),
            1 => any::<u8>()
        ],
        (0..6u8, 0..6u8, 0..6u8),
        prop::collection::vec(record, 0..5),
        mostly_zero_i8(),
        mostly_zero_i8(),
    )
        .prop_map(
            |(tid, status, strings, records, tlen_delta, trailer_delta)| SynthTxn {
                tid,
                status,
                strings,
                records,
                tlen_delta,
                trailer_delta,
            },
        )
}

/// A whole transaction without data records (committed, packed or undone),
/// with strings of up to 80 bytes each: what `_check_sanity` walks back
/// over without looking at the index. Four of them, or one with long
/// strings, put a `Data.fs.index` position at 100 bytes or more.
pub fn empty_txn() -> impl Strategy<Value = SynthTxn> {
    (
        1..u64::MAX,
        prop_oneof![3 => Just(b' '), 1 => Just(b'p'), 2 => Just(b'u')],
        (
            prop_oneof![0..6u8, 0..81u8],
            prop_oneof![0..6u8, 0..81u8],
            prop_oneof![0..6u8, 0..81u8],
        ),
    )
        .prop_map(|(tid, status, strings)| SynthTxn {
            tid,
            status,
            strings,
            records: Vec::new(),
            tlen_delta: 0,
            trailer_delta: 0,
        })
}

/// Transactions (first a run of empty ones, possibly none) and garbage to
/// append after them.
pub fn synth_data_fs() -> impl Strategy<Value = (Vec<SynthTxn>, Vec<u8>)> {
    (
        prop::collection::vec(empty_txn(), 0..6),
        prop::collection::vec(synth_txn(), 0..8),
        prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(any::<u8>(), 1..64)],
    )
        .prop_map(|(mut lead, rest, garbage)| {
            lead.extend(rest);
            (lead, garbage)
        })
}

/// A FileStorage built from `txns`, then `garbage` appended.
pub fn build(txns: &[SynthTxn], garbage: &[u8]) -> Vec<u8> {
    build_with_boundaries(txns, garbage).0
}

/// [`build`], also returning where each transaction starts (4 first) and
/// where the last one ends, as written (whatever its lengths claim).
pub fn build_with_boundaries(txns: &[SynthTxn], garbage: &[u8]) -> (Vec<u8>, Vec<u64>) {
    let mut out = b"FS30".to_vec();
    let mut boundaries = vec![4u64];
    for t in txns {
        let pos = out.len() as u64;
        let (u, d, e) = t.strings;
        let strings = usize::from(u) + usize::from(d) + usize::from(e);
        let hlen = 23 + strings as u64;
        let body: u64 = t
            .records
            .iter()
            .map(|r| 42 + if r.plen == 0 { 8 } else { u64::from(r.plen) })
            .sum();
        let tlen = hlen + body;
        out.extend(t.tid.to_be_bytes());
        out.extend(tlen.wrapping_add_signed(t.tlen_delta.into()).to_be_bytes());
        out.push(t.status);
        for len in [u, d, e] {
            out.extend(u16::from(len).to_be_bytes());
        }
        out.extend(std::iter::repeat_n(b'x', strings));
        for r in &t.records {
            out.extend(r.oid.to_be_bytes());
            out.extend(t.tid.to_be_bytes());
            out.extend(0u64.to_be_bytes());
            out.extend(pos.wrapping_add_signed(r.tloc_delta.into()).to_be_bytes());
            out.extend(r.vlen.to_be_bytes());
            out.extend(u64::from(r.plen).to_be_bytes());
            if r.plen == 0 {
                out.extend(0u64.to_be_bytes());
            } else {
                out.extend(std::iter::repeat_n(b'p', usize::from(r.plen)));
            }
        }
        out.extend(
            tlen.wrapping_add_signed(t.trailer_delta.into())
                .to_be_bytes(),
        );
        boundaries.push(out.len() as u64);
    }
    out.extend_from_slice(garbage);
    (out, boundaries)
}

/// True if ZODB would read every transaction of `txns` as a whole.
pub fn all_readable(txns: &[SynthTxn]) -> bool {
    txns.iter().all(|t| {
        t.tlen_delta == 0
            && t.trailer_delta == 0
            && t.status != b'c'
            && t.tid != u64::MAX
            && t.records.iter().all(|r| r.vlen == 0 && r.tloc_delta == 0)
    })
}

/// Integers that sit on the edges a length or offset check cares about.
pub fn edgy_u64(size: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        Just(0u64),
        Just(u64::MAX),
        Just(u64::MAX - 7),
        Just(i64::MAX as u64),
        Just(MAX_POS),
        Just(MAX_POS + 1),
        0..64u64,
        size.saturating_sub(64)..size + 64,
    ]
}

/// Byte flips, as (where, which bits).
pub fn flips() -> impl Strategy<Value = Vec<(Pick, u8)>> {
    prop::collection::vec((any::<Pick>(), 1..=255u8), 1..8)
}

pub fn apply_flips(bytes: &mut [u8], flips: &[(Pick, u8)]) {
    if bytes.is_empty() {
        return;
    }
    for (at, mask) in flips {
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
    }
}

/// Where the `Data.fs.index` next to a synthetic file is valid: the state
/// our own scan finds in the file cut at any byte, or at a transaction
/// boundary as built.
#[derive(Debug, Clone)]
pub enum IndexAt {
    Cut(Pick),
    Boundary(Pick),
}

pub fn index_at() -> impl Strategy<Value = IndexAt> {
    prop_oneof![
        1 => any::<Pick>().prop_map(IndexAt::Cut),
        2 => any::<Pick>().prop_map(IndexAt::Boundary),
    ]
}

/// The length of the prefix `at` selects.
pub fn prefix_len(at: &IndexAt, data_len: usize, boundaries: &[u64]) -> usize {
    match at {
        IndexAt::Cut(p) => p.index(data_len + 1),
        IndexAt::Boundary(p) => {
            usize::try_from(boundaries[p.index(boundaries.len())]).expect("small file")
        }
    }
}

/// The committed position and index our scan (no `.index`) finds in
/// `prefix`, or `None` if it finds the prefix corrupt.
pub fn prefix_state(prefix: &[u8]) -> Option<(u64, Index)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Data.fs");
    std::fs::write(&path, prefix).expect("write prefix");
    let file = File::open(&path).expect("open prefix");
    let c = repozo::fs::committed(&path, &file, prefix.len() as u64, &repozo::Silent).ok()?;
    Some((c.pos, c.index))
}

/// `index::write_to` of `(pos, index)`.
pub fn index_file_bytes(pos: u64, ix: &Index) -> Vec<u8> {
    let mut out = Vec::new();
    index::write_to(&mut out, pos, ix).expect("writing to a Vec cannot fail");
    out
}

/// What happens to the file after its index was written.
#[derive(Debug, Clone)]
pub enum Mutation {
    None,
    Flips(Vec<(Pick, u8)>),
    /// An 8-byte big-endian integer written at a byte offset.
    Overwrite(Pick, u64),
    Truncate(Pick),
    Append(Vec<SynthTxn>),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::None),
        2 => flips().prop_map(Mutation::Flips),
        2 => (any::<Pick>(), edgy_u64(2_000)).prop_map(|(at, v)| Mutation::Overwrite(at, v)),
        1 => any::<Pick>().prop_map(Mutation::Truncate),
        1 => prop::collection::vec(synth_txn(), 1..3).prop_map(Mutation::Append),
    ]
}

impl Mutation {
    pub fn apply(&self, data: &[u8]) -> Vec<u8> {
        let mut out = data.to_vec();
        match self {
            Mutation::None => {}
            Mutation::Flips(f) => apply_flips(&mut out, f),
            Mutation::Overwrite(at, v) => {
                if out.len() >= 8 {
                    let i = at.index(out.len() - 7);
                    out[i..i + 8].copy_from_slice(&v.to_be_bytes());
                }
            }
            Mutation::Truncate(at) => out.truncate(at.index(out.len() + 1)),
            Mutation::Append(txns) => {
                // Built on their own, then spliced after the existing bytes:
                // their back-references point at the wrong place, which
                // is part of the point.
                out.extend_from_slice(&build(txns, &[])[4..]);
            }
        }
        out
    }
}

/// The first `n` empty committed transactions, exactly: `FS30` then `n`
/// 31-byte transactions. With `n = 4` the file is 128 bytes.
pub fn empty_transactions(n: u64) -> Vec<u8> {
    let txns: Vec<SynthTxn> = (1..=n)
        .map(|tid| SynthTxn {
            tid,
            status: b' ',
            strings: (0, 0, 0),
            records: Vec::new(),
            tlen_delta: 0,
            trailer_delta: 0,
        })
        .collect();
    build(&txns, &[])
}

/// Number of cases for a property: `REPOZO_PROPTEST_CASES` if set (to run
/// more, or fewer, everywhere at once), else `default`.
pub fn cases(default: u32) -> u32 {
    match std::env::var("REPOZO_PROPTEST_CASES") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("REPOZO_PROPTEST_CASES={v:?} is not a number")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------
// FileStorages with blob records
// ---------------------------------------------------------------------------

/// Class pickles ZODB writes for a `ZODB.blob.Blob` (protocols 1 to 4).
pub const BLOB_PICKLES: [&[u8]; 4] = [
    b"\x80\x03cZODB.blob\nBlob\nq\x00.",
    b"cZODB.blob\nBlob\nq\x01.",
    b"cZODB.blob\nBlob\np0\n.",
    b"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00\x8c\tZODB.blob\x94\x8c\x04Blob\x94\x93\x94.",
];

/// Class pickles that are not a Blob: a subclass, another class, and the
/// `(class, args)` tuple form `is_blob_record` refuses.
pub const OTHER_PICKLES: [&[u8]; 3] = [
    b"\x80\x03cplone.namedfile.file\nNamedBlobFile\nq\x00.",
    b"\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.",
    b"\x80\x03cZODB.blob\nBlob\nq\x00N\x86q\x01.",
];

/// One data record of a [`BlobTxn`].
#[derive(Debug, Clone)]
pub enum BlobRec {
    /// A class pickle (a Blob one or another), a state padded by `pad`
    /// bytes (past the 256 bytes read when large), zlib'd as
    /// zc.zlibstorage writes it when `zlib`.
    Data {
        blob: bool,
        /// Which pickle of the list (modulo its length).
        form: usize,
        zlib: bool,
        pad: u16,
    },
    /// A backpointer (undo) to an earlier record of the same object (which
    /// one: modulo their number), or 0 (the object does not exist) when
    /// `None` or there is none.
    Back(Option<usize>),
}

#[derive(Debug, Clone)]
pub struct BlobTxn {
    pub status: u8,
    pub records: Vec<(u64, BlobRec)>,
}

pub fn blob_txn() -> impl Strategy<Value = BlobTxn> {
    let rec = prop_oneof![
        3 => (any::<bool>(), any::<usize>(), any::<bool>(), prop_oneof![0..16u16, 200..400u16])
            .prop_map(|(blob, form, zlib, pad)| BlobRec::Data { blob, form, zlib, pad }),
        1 => prop::option::weighted(0.9, any::<usize>()).prop_map(BlobRec::Back),
    ];
    (
        prop_oneof![6 => Just(b' '), 1 => Just(b'p'), 1 => Just(b'u')],
        prop::collection::vec((0..4u64, rec), 0..4),
    )
        .prop_map(|(status, records)| BlobTxn { status, records })
}

/// A FileStorage built from [`BlobTxn`]s, and what ZODB's iterator with
/// `is_blob_record` reports in it.
#[derive(Debug, Clone)]
pub struct BlobFs {
    pub bytes: Vec<u8>,
    /// 4, then the end of each transaction.
    pub boundaries: Vec<u64>,
    /// Per transaction, its blob records as (oid, tid) in file order
    /// (none for an undone one).
    pub blobs: Vec<Vec<(u64, u64)>>,
}

impl BlobFs {
    /// The blob records of the transactions in `[boundaries[a], boundaries[b])`.
    pub fn blobs_between(&self, a: usize, b: usize) -> Vec<(u64, u64)> {
        self.blobs[a..b].concat()
    }
}

/// The tid of the `i`-th (0-based) transaction of a [`BlobFs`].
pub fn blob_tid(i: usize) -> u64 {
    0x03d0_0000_0000_0000 + 0x1000 * (i as u64 + 1)
}

pub fn build_blob_fs(txns: &[BlobTxn]) -> BlobFs {
    let mut out = b"FS30".to_vec();
    let mut boundaries = vec![4u64];
    let mut blobs = Vec::new();
    // Every record written so far: (position, oid, whether it is a blob).
    let mut written: Vec<(u64, u64, bool)> = Vec::new();
    for (i, t) in txns.iter().enumerate() {
        let tid = blob_tid(i);
        let pos = out.len() as u64;
        let mut body = Vec::new();
        let mut found = Vec::new();
        let mut mine = Vec::new();
        for (oid, rec) in &t.records {
            let at = pos + 23 + body.len() as u64;
            let (payload, back, is_blob) = match rec {
                BlobRec::Data {
                    blob,
                    form,
                    zlib,
                    pad,
                } => {
                    let class = if *blob {
                        BLOB_PICKLES[form % BLOB_PICKLES.len()]
                    } else {
                        OTHER_PICKLES[form % OTHER_PICKLES.len()]
                    };
                    let mut p = class.to_vec();
                    p.extend_from_slice(b"\x80\x03}q\x01(X\x01\x00\x00\x00xq\x02X");
                    p.extend((u32::from(*pad)).to_le_bytes());
                    p.extend(std::iter::repeat_n(b'x', usize::from(*pad)));
                    p.extend_from_slice(b"q\x03u.");
                    if *zlib {
                        use std::io::Write;
                        let mut z = flate2::write::ZlibEncoder::new(
                            b".z".to_vec(),
                            flate2::Compression::default(),
                        );
                        z.write_all(&p).unwrap();
                        p = z.finish().unwrap();
                    }
                    (p, 0, *blob)
                }
                BlobRec::Back(pick) => {
                    let same: Vec<&(u64, u64, bool)> =
                        written.iter().filter(|w| w.1 == *oid).collect();
                    match pick {
                        Some(p) if !same.is_empty() => {
                            let w = same[p % same.len()];
                            (Vec::new(), w.0, w.2)
                        }
                        _ => (Vec::new(), 0, false),
                    }
                }
            };
            body.extend(oid.to_be_bytes());
            body.extend(tid.to_be_bytes());
            body.extend(0u64.to_be_bytes());
            body.extend(pos.to_be_bytes());
            body.extend(0u16.to_be_bytes());
            body.extend((payload.len() as u64).to_be_bytes());
            if payload.is_empty() {
                body.extend(back.to_be_bytes());
            } else {
                body.extend(&payload);
            }
            mine.push((at, *oid, is_blob));
            if is_blob {
                found.push((*oid, tid));
            }
        }
        written.extend(mine);
        let tlen = 23 + body.len() as u64;
        out.extend(tid.to_be_bytes());
        out.extend(tlen.to_be_bytes());
        out.push(t.status);
        out.extend([0u8; 6]);
        out.extend(body);
        out.extend(tlen.to_be_bytes());
        boundaries.push(out.len() as u64);
        blobs.push(if t.status == b'u' { Vec::new() } else { found });
    }
    BlobFs {
        bytes: out,
        boundaries,
        blobs,
    }
}
