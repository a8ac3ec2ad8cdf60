//! The readers of untrusted input never panic.
//!
//! A Data.fs, its `.index`, a `.dat` line and a command line all come from
//! outside the program: a damaged disk, a half-copied file, an operator's
//! typo. Each reader must answer `Ok` or a clean `Err` for every input,
//! never unwind. These properties feed them arbitrary bytes, synthetic
//! FileStorages, and mutations of the real ZODB-written fixtures in
//! `tests/data`, and check the few invariants that hold whatever the input.
//! Synthetic FileStorages also get a `Data.fs.index` (or a backup's index
//! as the incremental's hint) valid for a prefix of them, then are mutated.
//! The generators live in `synth`, shared with
//! `never_panic_bin`, which runs the binary itself on such input.
//! `REPOZO_PROPTEST_CASES` sets the number of cases of the properties that
//! read it.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::{Index as Pick, select};

use repozo::cli::getopt::getopt;
use repozo::cli::{LONG_OPTS, SHORT_OPTS};
use repozo::fs::check::{Problem, Summary};
use repozo::fs::{Checker, Committed, committed, committed_with_hint};
use repozo::index::{self, Index, MAX_POS};
use repozo::repo::DatEntry;
use repozo::{Error, Event, Report};

use crate::synth;
use synth::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A [`Report`] that renders every event, so that the `Display` of the
/// warnings a damaged file provokes is exercised too.
#[derive(Default)]
struct Rendering {
    warnings: Cell<usize>,
}

impl Report for Rendering {
    fn event(&self, event: &Event) {
        let text = event.to_string();
        assert!(!text.is_empty(), "an event rendered as nothing: {event:?}");
        if event.is_warning() {
            self.warnings.set(self.warnings.get() + 1);
        }
    }
}

const FIXTURES: [&str; 3] = ["small.fs", "undo.fs", "packed.fs"];

/// The bytes of a fixture written by real ZODB, read once.
fn fixture(name: &str) -> &'static [u8] {
    static SMALL: OnceLock<Vec<u8>> = OnceLock::new();
    static UNDO: OnceLock<Vec<u8>> = OnceLock::new();
    static PACKED: OnceLock<Vec<u8>> = OnceLock::new();
    let read = |p: &str| std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    match name {
        "small.fs" => {
            SMALL.get_or_init(|| read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/small.fs")))
        }
        "undo.fs" => {
            UNDO.get_or_init(|| read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/undo.fs")))
        }
        "packed.fs" => PACKED
            .get_or_init(|| read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/packed.fs"))),
        other => panic!("no fixture {other}"),
    }
}

/// The `.index` ZODB itself wrote for `small.fs`.
fn small_index_by_zodb() -> &'static [u8] {
    static IX: OnceLock<Vec<u8>> = OnceLock::new();
    IX.get_or_init(|| {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/small.fs.index"
        ))
        .expect("small.fs.index")
    })
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

fn be16(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_be_bytes(b[at..at + 2].try_into().unwrap()))
}

/// Layout of a healthy FileStorage, walked independently of the crate's
/// reader: transaction boundaries (4, then the end of each transaction)
/// and the offsets of the integer fields worth overwriting.
struct Layout {
    boundaries: Vec<u64>,
    fields: Vec<usize>,
}

fn layout(b: &[u8]) -> Layout {
    let mut boundaries = vec![4u64];
    let mut fields = Vec::new();
    let mut pos = 4usize;
    while pos + 23 <= b.len() {
        let tlen = be64(b, pos + 8) as usize;
        let hlen = 23 + (be16(b, pos + 17) + be16(b, pos + 19) + be16(b, pos + 21)) as usize;
        // tid, tlen, status + string lengths, the redundant length.
        fields.extend([pos, pos + 8, pos + 16, pos + tlen]);
        let mut rec = pos + hlen;
        while rec < pos + tlen {
            // oid, serial, prev, tloc, vlen + plen, plen.
            fields.extend([rec, rec + 8, rec + 16, rec + 24, rec + 32, rec + 34]);
            let plen = be64(b, rec + 34) as usize;
            rec += 42 + if plen == 0 { 8 } else { plen };
        }
        pos += tlen + 8;
        boundaries.push(pos as u64);
    }
    Layout { boundaries, fields }
}

fn layout_of(name: &str) -> &'static Layout {
    static LAYOUTS: OnceLock<Vec<Layout>> = OnceLock::new();
    let all = LAYOUTS.get_or_init(|| FIXTURES.iter().map(|n| layout(fixture(n))).collect());
    &all[FIXTURES.iter().position(|n| *n == name).unwrap()]
}

/// Writes `data` as `Data.fs` (and `index` as `Data.fs.index`) in a fresh
/// directory and opens its committed state. The directory lives as long as
/// the returned guard.
fn open(data: &[u8], index: Option<&[u8]>) -> (tempfile::TempDir, u64, repozo::Result<Committed>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("Data.fs");
    std::fs::write(&path, data).unwrap();
    if let Some(ix) = index {
        std::fs::write(dir.path().join("Data.fs.index"), ix).unwrap();
    }
    let file = File::open(&path).unwrap();
    let size = file.metadata().unwrap().len();
    let result = committed(&path, &file, size, &Rendering::default());
    (dir, size, result)
}

/// What every answer of `committed` must satisfy: a position in
/// `[4, max(size, 4)]`, or a format error naming the file and an offset
/// inside it. An I/O error is not clean here: the file is readable.
fn check_clean(path_dir: &Path, size: u64, result: &repozo::Result<Committed>) {
    match result {
        Ok(c) => {
            assert!(c.pos >= 4, "pos {} below the magic", c.pos);
            assert!(c.pos <= size.max(4), "pos {} past the end ({size})", c.pos);
        }
        Err(Error::Format(f)) => {
            assert!(
                f.pos <= size,
                "error offset {} past the end ({size})",
                f.pos
            );
            assert!(Path::new(&f.path).starts_with(path_dir), "{}", f.path);
            assert!(!f.what.is_empty());
            let _ = result.as_ref().unwrap_err().to_string();
        }
        Err(other) => panic!("not a clean format error: {other:?}"),
    }
}

fn committed_pos(result: &repozo::Result<Committed>) -> u64 {
    match result {
        Ok(c) => c.pos,
        Err(e) => panic!("expected the committed state, got {e}"),
    }
}

/// A valid `.index` for each fixture: ZODB's own for `small.fs`, ours
/// (from a full scan) for the others.
fn valid_index(name: &str) -> Vec<u8> {
    if name == "small.fs" {
        return small_index_by_zodb().to_vec();
    }
    let (_dir, _, result) = open(fixture(name), None);
    let c = result.expect("fixture opens");
    index::save(c.pos, &c.index)
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Arbitrary bytes; half of them start with the FileStorage magic so that
/// the scan gets past the first check.
fn arbitrary_data_fs() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..4096),
        prop::collection::vec(any::<u8>(), 0..4092).prop_map(|rest| {
            let mut v = b"FS30".to_vec();
            v.extend(rest);
            v
        }),
    ]
}

/// Tokens a repozo command line is made of, including malformed ones.
fn token() -> impl Strategy<Value = String> {
    let plausible = select(vec![
        "-B",
        "-R",
        "-V",
        "-Q",
        "-F",
        "-z",
        "-k",
        "-v",
        "-h",
        "-w",
        "-r",
        "-f",
        "-D",
        "-o",
        "-BQ",
        "-BQrx",
        "-Bz",
        "-Rw",
        "-rdir",
        "-x",
        "-:",
        "-é",
        "-",
        "--",
        "---",
        "--rep",
        "--rep=dir",
        "--repository",
        "--repository=",
        "--ver",
        "--verify",
        "--verbose",
        "--f",
        "--fi",
        "--full",
        "--full=1",
        "--file=Data.fs",
        "--date",
        "--date=",
        "--date=2026-11-26",
        "--quick",
        "--q",
        "--=",
        "--=x",
        "--é",
        "--help=",
        "x",
        "Data.fs",
        "repo dir",
        "",
        "=",
        "2026-11-26-03",
    ])
    .prop_map(str::to_string);
    prop_oneof![8 => plausible, 1 => any::<String>(), 1 => "-{1,2}[BQrx:=é]{0,4}"]
}

// ---------------------------------------------------------------------------
// The fixtures themselves (sanity of the helpers)
// ---------------------------------------------------------------------------

#[test]
fn every_fixture_is_committed_up_to_its_last_byte() {
    for name in FIXTURES {
        let data = fixture(name);
        let l = layout_of(name);
        assert_eq!(*l.boundaries.last().unwrap(), data.len() as u64, "{name}");
        let (_dir, size, result) = open(data, None);
        assert_eq!(committed_pos(&result), size, "{name}");
    }
}

#[test]
fn the_valid_companion_indexes_are_used_and_agree_with_a_full_scan() {
    for name in FIXTURES {
        let (_dir, size, result) = open(fixture(name), Some(&valid_index(name)));
        let c = result.expect("opens");
        assert!(c.used_index, "{name}: the valid index was ignored");
        assert_eq!(c.pos, size, "{name}");
    }
}

// ---------------------------------------------------------------------------
// Data.fs
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_as_a_data_fs_give_a_position_or_a_clean_error(
        data in arbitrary_data_fs(),
    ) {
        let (dir, size, result) = open(&data, None);
        check_clean(dir.path(), size, &result);
    }

    #[test]
    fn a_synthetic_data_fs_is_read_to_its_end_when_every_transaction_is_whole(
        txns in prop::collection::vec(synth_txn(), 0..8),
        garbage in prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(any::<u8>(), 1..64)],
    ) {
        let data = build(&txns, &garbage);
        let (dir, size, result) = open(&data, None);
        check_clean(dir.path(), size, &result);
        if all_readable(&txns) && garbage.is_empty() {
            let c = result.expect("a well-formed file opens");
            prop_assert_eq!(c.pos, size);
            let oids: BTreeSet<u64> = txns
                .iter()
                .filter(|t| t.status != b'u')
                .flat_map(|t| t.records.iter().map(|r| r.oid))
                .collect();
            prop_assert_eq!(c.index.len(), oids.len());
        }
    }

    #[test]
    fn a_fixture_with_flipped_bytes_gives_a_position_within_it_or_a_clean_error(
        name in select(FIXTURES.to_vec()),
        flips in flips(),
    ) {
        let mut data = fixture(name).to_vec();
        apply_flips(&mut data, &flips);
        let (dir, size, result) = open(&data, None);
        check_clean(dir.path(), size, &result);
    }

    #[test]
    fn a_truncated_fixture_is_committed_up_to_the_last_whole_transaction(
        name in select(FIXTURES.to_vec()),
        cut in any::<Pick>(),
    ) {
        let full = fixture(name);
        let len = cut.index(full.len() + 1);
        let (dir, size, result) = open(&full[..len], None);
        check_clean(dir.path(), size, &result);
        if len == 0 {
            prop_assert_eq!(committed_pos(&result), 4);
        } else if len < 4 {
            prop_assert!(result.is_err(), "a {}-byte file has no magic", len);
        } else {
            let want = layout_of(name)
                .boundaries
                .iter()
                .copied()
                .filter(|b| *b <= len as u64)
                .max()
                .unwrap();
            prop_assert_eq!(committed_pos(&result), want);
        }
    }

    #[test]
    fn a_fixture_with_bytes_appended_never_loses_its_committed_transactions(
        name in select(FIXTURES.to_vec()),
        tail in prop::collection::vec(any::<u8>(), 1..512),
    ) {
        let mut data = fixture(name).to_vec();
        let before = data.len() as u64;
        data.extend(tail);
        let (dir, size, result) = open(&data, None);
        check_clean(dir.path(), size, &result);
        if let Ok(c) = &result {
            prop_assert!(c.pos >= before, "pos {} < {}", c.pos, before);
        }
    }

    #[test]
    fn a_fixture_with_header_integers_overwritten_gives_a_position_or_a_clean_error(
        name in select(FIXTURES.to_vec()),
        writes in prop::collection::vec((any::<Pick>(), edgy_u64(20_000)), 1..4),
    ) {
        let mut data = fixture(name).to_vec();
        let fields = &layout_of(name).fields;
        for (field, value) in &writes {
            let at = fields[field.index(fields.len())].min(data.len() - 8);
            data[at..at + 8].copy_from_slice(&value.to_be_bytes());
        }
        let (dir, size, result) = open(&data, None);
        check_clean(dir.path(), size, &result);
    }
}

// ---------------------------------------------------------------------------
// The structural check of -V --deep (fed in chunks)
// ---------------------------------------------------------------------------

fn deep_check(data: &[u8], chunk: usize) -> Result<(Summary, Index), Problem> {
    let mut c = Checker::new(data.len() as u64);
    for piece in data.chunks(chunk.max(1)) {
        c.feed(piece);
    }
    c.finish()
}

/// A Data.fs to check: arbitrary bytes, a fixture with flipped bytes, or a
/// synthetic file.
fn data_fs_to_check() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        arbitrary_data_fs(),
        (select(FIXTURES.to_vec()), flips()).prop_map(|(name, flips)| {
            let mut data = fixture(name).to_vec();
            apply_flips(&mut data, &flips);
            data
        }),
        prop::collection::vec(synth_txn(), 0..8).prop_map(|txns| build(&txns, &[])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_structural_check_gives_one_verdict_in_any_chunking_and_a_sound_file_reads_to_its_end(
        data in data_fs_to_check(),
        chunk in prop_oneof![1usize..64, 64usize..20_000],
    ) {
        let whole = deep_check(&data, data.len());
        prop_assert_eq!(&deep_check(&data, chunk), &whole);
        if let Ok((summary, index)) = whole {
            // What the check accepts, ZODB's read_index reads whole, with
            // the same index.
            let (dir, size, result) = open(&data, None);
            check_clean(dir.path(), size, &result);
            let c = result.expect("a file that passes the check opens");
            prop_assert_eq!(c.pos, size);
            prop_assert_eq!(summary.size, size);
            prop_assert_eq!(c.index, index);
        }
    }
}

// ---------------------------------------------------------------------------
// Data.fs.index next to a Data.fs
// ---------------------------------------------------------------------------

/// Bytes put in `Data.fs.index`: noise, or a valid index damaged.
#[derive(Debug, Clone)]
enum IndexFile {
    Noise(Vec<u8>),
    Flipped(Vec<(Pick, u8)>),
    Truncated(Pick),
    /// The right entries, claimed valid at another position.
    Moved(u64),
    /// Another fixture's valid index.
    Foreign(&'static str),
    /// Random entries at the fixture's true end.
    Random(Vec<(u64, u64)>),
}

fn index_file() -> impl Strategy<Value = IndexFile> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512).prop_map(IndexFile::Noise),
        flips().prop_map(IndexFile::Flipped),
        any::<Pick>().prop_map(IndexFile::Truncated),
        edgy_u64(20_000).prop_map(IndexFile::Moved),
        select(FIXTURES.to_vec()).prop_map(IndexFile::Foreign),
        prop::collection::vec((0..64u64, 0..20_000u64), 0..16).prop_map(IndexFile::Random),
    ]
}

fn index_bytes(name: &str, kind: &IndexFile) -> Vec<u8> {
    let valid = valid_index(name);
    match kind {
        IndexFile::Noise(b) => b.clone(),
        IndexFile::Flipped(f) => {
            let mut b = valid;
            apply_flips(&mut b, f);
            b
        }
        IndexFile::Truncated(cut) => valid[..cut.index(valid.len())].to_vec(),
        IndexFile::Moved(pos) => {
            let (_, ix) = index::load(&valid, "valid").unwrap();
            index::save(*pos, &ix)
        }
        IndexFile::Foreign(other) => valid_index(other),
        IndexFile::Random(entries) => {
            let mut ix = Index::new();
            for (oid, pos) in entries {
                ix.insert(*oid, *pos);
            }
            index::save(fixture(name).len() as u64, &ix)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_damaged_index_never_changes_the_committed_position_of_a_healthy_data_fs(
        name in select(FIXTURES.to_vec()),
        kind in index_file(),
    ) {
        let data = fixture(name);
        let ix = index_bytes(name, &kind);
        let (dir, size, with_index) = open(data, Some(&ix));
        check_clean(dir.path(), size, &with_index);
        prop_assert_eq!(committed_pos(&with_index), data.len() as u64);
    }

    #[test]
    fn any_index_next_to_a_damaged_data_fs_gives_a_position_or_a_clean_error(
        name in select(FIXTURES.to_vec()),
        kind in index_file(),
        flips in flips(),
    ) {
        let mut data = fixture(name).to_vec();
        apply_flips(&mut data, &flips);
        let ix = index_bytes(name, &kind);
        let (dir, size, result) = open(&data, Some(&ix));
        check_clean(dir.path(), size, &result);
    }
}

// ---------------------------------------------------------------------------
// A Data.fs.index valid for a prefix of a synthetic Data.fs
// ---------------------------------------------------------------------------

/// Writes `data` as `Data.fs` (no `Data.fs.index`) and opens its committed
/// state with `hint` as the index of the backup an incremental continues:
/// the route `-B` takes with the chain's last `.index`.
fn open_hinted(
    data: &[u8],
    hint: (u64, Index),
) -> (tempfile::TempDir, u64, repozo::Result<Committed>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("Data.fs");
    std::fs::write(&path, data).unwrap();
    let file = File::open(&path).unwrap();
    let size = file.metadata().unwrap().len();
    let hint = repozo::fs::Hint::loaded(hint.0, hint.1);
    let result = committed_with_hint(&path, &file, size, Some(hint), &Rendering::default());
    (dir, size, result)
}

/// The state our scan gives the prefix `at` selects; if the scan finds the
/// prefix corrupt, an empty index claimed valid at the cut (still a
/// well-formed `.index`, so the sanity check is what has to refuse it).
fn prefix_index(data: &[u8], boundaries: &[u64], at: &IndexAt) -> (u64, Index) {
    let cut = prefix_len(at, data.len(), boundaries);
    prefix_state(&data[..cut]).unwrap_or((cut as u64, Index::new()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn a_synthetic_data_fs_next_to_an_index_valid_for_a_prefix_gives_a_position_or_a_clean_error(
        (txns, garbage) in synth_data_fs(),
        at in index_at(),
        mutation in mutation(),
    ) {
        let (data, boundaries) = build_with_boundaries(&txns, &garbage);
        let (pos, ix) = prefix_index(&data, &boundaries, &at);
        let mutated = mutation.apply(&data);
        let (dir, size, with_index) = open(&mutated, Some(&index_file_bytes(pos, &ix)));
        check_clean(dir.path(), size, &with_index);
        let (dir, size, with_hint) = open_hinted(&mutated, (pos, ix));
        check_clean(dir.path(), size, &with_hint);
        if matches!(mutation, Mutation::None) && garbage.is_empty() && all_readable(&txns) {
            // An index of an unchanged prefix only saves work: the answer
            // is that of a full scan.
            let (_dir, _, scanned) = open(&data, None);
            let scanned = scanned.expect("a well-formed file opens");
            for (route, result) in [("Data.fs.index", with_index), ("hint", with_hint)] {
                let c = result.expect("a well-formed file opens");
                prop_assert_eq!(c.pos, scanned.pos, "{}", route);
                prop_assert_eq!(&c.index, &scanned.index, "{}", route);
            }
        }
    }
}

/// `FS30`, one junk byte, then an empty transaction at byte 5 with an
/// 80-byte user name, ending at 116: walking back from 116 lands on a
/// transaction header at 5, between the magic's end and 8.
fn empty_transaction_at_byte_5() -> Vec<u8> {
    let tlen = 23u64 + 80;
    let mut v = b"FS30\0".to_vec();
    v.extend(7u64.to_be_bytes());
    v.extend(tlen.to_be_bytes());
    v.push(b' ');
    v.extend([0, 80, 0, 0, 0, 0]);
    v.extend([b'x'; 80]);
    v.extend(tlen.to_be_bytes());
    assert_eq!(v.len(), 116);
    v
}

/// Undone transactions of one data record each, `n` of them.
fn undone_transactions(n: u64) -> Vec<u8> {
    let txns: Vec<SynthTxn> = (1..=n)
        .map(|tid| SynthTxn {
            tid,
            status: b'u',
            strings: (0, 0, 0),
            records: vec![SynthRecord {
                oid: tid,
                plen: 20,
                vlen: 0,
                tloc_delta: 0,
            }],
            tlen_delta: 0,
            trailer_delta: 0,
        })
        .collect();
    build(&txns, &[])
}

/// One empty transaction whose strings take it past 100 bytes.
fn one_long_empty_transaction() -> Vec<u8> {
    build(
        &[SynthTxn {
            tid: 1,
            status: b' ',
            strings: (80, 0, 0),
            records: Vec::new(),
            tlen_delta: 0,
            trailer_delta: 0,
        }],
        &[],
    )
}

#[test]
fn an_index_reached_through_four_empty_transactions_gives_their_end() {
    let data = empty_transactions(4);
    assert_eq!(data.len(), 128);
    let (dir, size, result) = open(&data, Some(&index_file_bytes(128, &Index::new())));
    check_clean(dir.path(), size, &result);
    assert_eq!(committed_pos(&result), 128);
}

#[test]
fn an_index_reached_through_one_long_empty_transaction_gives_its_end() {
    let data = one_long_empty_transaction();
    let end = data.len() as u64;
    assert!(end >= 100, "{end}");
    let (dir, size, result) = open(&data, Some(&index_file_bytes(end, &Index::new())));
    check_clean(dir.path(), size, &result);
    assert_eq!(committed_pos(&result), end);
}

#[test]
fn an_index_reached_through_undone_transactions_gives_their_end() {
    let data = undone_transactions(2);
    let end = data.len() as u64;
    assert!(end >= 100, "{end}");
    let (dir, size, result) = open(&data, Some(&index_file_bytes(end, &Index::new())));
    check_clean(dir.path(), size, &result);
    assert_eq!(committed_pos(&result), end);
}

#[test]
fn an_index_reached_through_a_transaction_at_byte_5_gives_a_position_or_a_clean_error() {
    let data = empty_transaction_at_byte_5();
    let (dir, size, result) = open(&data, Some(&index_file_bytes(116, &Index::new())));
    check_clean(dir.path(), size, &result);
    let (dir, size, result) = open_hinted(&data, (116, Index::new()));
    check_clean(dir.path(), size, &result);
}

#[test]
fn the_index_of_a_backup_of_empty_transactions_as_a_hint_gives_the_new_end() {
    // A full backup of four empty transactions writes an `.index` valid at
    // 128; the next incremental starts from it after a fifth one.
    let data = empty_transactions(5);
    let (dir, size, result) = open_hinted(&data, (128, Index::new()));
    check_clean(dir.path(), size, &result);
    assert_eq!(committed_pos(&result), data.len() as u64);
}

// ---------------------------------------------------------------------------
// index::load / save
// ---------------------------------------------------------------------------

fn oid() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0..1000u64,
        // A few prefixes, so buckets hold many entries.
        (0..4u64, any::<u16>()).prop_map(|(p, s)| p << 16 | u64::from(s)),
    ]
}

/// Opcodes (with plausible arguments) of the pickles an index holds, and of
/// the old dict format, in any order; the stack-shaping ones (pushes, MARK,
/// TUPLE*) weighted up so that their interplay is explored.
fn pickle_soup() -> impl Strategy<Value = Vec<u8>> {
    fn ops(v: Vec<&'static [u8]>) -> impl Strategy<Value = Vec<u8>> {
        select(v).prop_map(<[u8]>::to_vec)
    }
    let push = ops(vec![
        b"K\x07",
        b"M\x00\x01",
        b"J\xff\xff\xff\xff",
        b"\x8a\x01\x80",
        b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01",
        b"\x8b\x02\x00\x00\x00\x01\x00",
        b"I42\n",
        b"L-1L\n",
        b"I00\n",
        b"C\x06\x00\x00\x00\x00\x00\x00",
        b"C\x08\x00\x01\x00\x00\x00\x00\x00\x64",
        b"U\x02ab",
        b"B\x02\x00\x00\x00ab",
        b"\x8e\x01\x00\x00\x00\x00\x00\x00\x00z",
        b")",
        b"N",
        b"}",
    ]);
    let shape = prop_oneof![
        4 => ops(vec![b"(", b"t"]),
        1 => ops(vec![b"\x85"]),
        2 => ops(vec![b"\x86", b"\x87"]),
    ];
    let other = ops(vec![
        b"\x80\x03",
        b"\x80\x02",
        b"q\x01",
        b"r\x00\x00\x00\x00",
        b"\x94",
        b"\x95\x00\x00\x00\x00\x00\x00\x00\x00",
        b".",
    ]);
    let op = prop_oneof![
        8 => push,
        7 => shape,
        2 => other,
        1 => any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(op, 0..40).prop_map(|ops| ops.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn loading_arbitrary_bytes_as_an_index_gives_an_index_or_a_clean_error(
        data in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        if let Err(e) = index::load(&data, "Data.fs.index") {
            prop_assert!(e.to_string().starts_with("Data.fs.index: "), "{}", e);
        }
    }

    #[test]
    fn loading_a_damaged_valid_index_gives_an_index_or_a_clean_error(
        name in select(FIXTURES.to_vec()),
        kind in index_file(),
    ) {
        let data = index_bytes(name, &kind);
        if let Err(e) = index::load(&data, "Data.fs.index") {
            prop_assert!(e.to_string().starts_with("Data.fs.index: "), "{}", e);
        }
    }

    #[test]
    fn a_saved_index_loads_back_unchanged(
        pos in prop_oneof![any::<u64>(), 0..70_000u64, Just(u64::MAX)],
        entries in prop::collection::vec((oid(), 0..=MAX_POS), 0..200),
    ) {
        let mut ix = Index::new();
        for (oid, at) in &entries {
            ix.insert(*oid, *at);
        }
        let (back_pos, back) = index::load(&index::save(pos, &ix), "x.index").unwrap();
        prop_assert_eq!(back_pos, pos);
        prop_assert_eq!(back, ix);
    }
}

proptest! {
    // Ignored until src/index/pickle.rs stops panicking on a MARK that a
    // TUPLE1/2/3 popped past (see the regression tests below). Cases are
    // cheap (a few dozen opcodes) and the stack shapes that matter are rare
    // (under 1% of cases), hence the higher count. The known failure is
    // pinned by the regression tests, so no regression file is written.
    #![proptest_config(ProptestConfig {
        cases: 4096,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn loading_any_sequence_of_pickle_opcodes_gives_an_index_or_a_clean_error(
        data in pickle_soup(),
    ) {
        if let Err(e) = index::load(&data, "Data.fs.index") {
            prop_assert!(e.to_string().starts_with("Data.fs.index: "), "{}", e);
        }
    }
}

/// Minimal input: two ints, MARK, TUPLE2 (pops both, below the mark),
/// TUPLE (splits the stack at the mark, which is now past its end).
const MARK_BELOW_STACK: &[u8] = b"K\x00K\x00(\x86t";

#[test]
fn an_index_whose_mark_was_popped_is_a_clean_error() {
    assert!(index::load(MARK_BELOW_STACK, "x.index").is_err());
}

#[test]
fn a_data_fs_next_to_an_index_whose_mark_was_popped_is_scanned_in_full() {
    let data = fixture("small.fs");
    let (_dir, size, result) = open(data, Some(MARK_BELOW_STACK));
    assert_eq!(committed_pos(&result), size);
}

// ---------------------------------------------------------------------------
// .dat lines
// ---------------------------------------------------------------------------

/// A file name as repozo records it: no whitespace at either end, possibly
/// spaces or tabs inside.
fn dat_file_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^\\s]",
        "[^\\s]([^\\s]|[ \t]){0,30}[^\\s]",
        "[A-Za-z0-9_./-]{1,12}( [A-Za-z0-9_./-]{1,12}){0,3}",
    ]
}

fn dat_entry() -> impl Strategy<Value = DatEntry> {
    (
        dat_file_name(),
        any::<u64>(),
        any::<u64>(),
        prop_oneof!["[0-9a-f]{32}", "[^\\s]{1,40}"],
    )
        .prop_map(|(file, a, b, md5)| DatEntry {
            file,
            start: a.min(b),
            end: a.max(b),
            md5,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parsing_any_dat_line_gives_an_entry_or_a_clean_error(
        line in prop_oneof![
            any::<String>(),
            "[ -~\t\r\n]{0,80}",
            "[ a-z/.]{0,12}[ \t]{1,2}[-+0-9]{0,21}[ \t]{1,2}[-+0-9]{0,21}[ \t]{1,2}[0-9a-f]{0,32}[\r\n]{0,2}",
        ],
        lineno in 1..10_000usize,
    ) {
        match DatEntry::parse(&line, "r/x.dat", lineno) {
            Ok(e) => {
                prop_assert!(e.start <= e.end);
                prop_assert!(!e.file.is_empty() && e.file.trim() == e.file);
                prop_assert!(!e.md5.is_empty() && !e.md5.contains(char::is_whitespace));
                // What we would write back reads as the same entry.
                let again = DatEntry::parse(&e.to_line(), "r/x.dat", lineno).unwrap();
                prop_assert_eq!(again, e);
            }
            Err(err) => {
                let text = err.to_string();
                let prefix = format!("r/x.dat: line {lineno}: ");
                prop_assert!(text.starts_with(&prefix), "{}", text);
            }
        }
    }

    #[test]
    fn a_dat_entry_reads_back_from_the_line_it_writes(entry in dat_entry()) {
        let line = entry.to_line();
        let back = DatEntry::parse(&line, "x.dat", 1).unwrap();
        prop_assert_eq!(back, entry);
    }
}

// ---------------------------------------------------------------------------
// Repository file names
// ---------------------------------------------------------------------------

/// Names of files repozo and we write, and of our temporary files.
const STAMPED_NAMES: [&str; 6] = [
    "2026-11-26-02-10-03.fs",
    "2026-11-26-02-10-03.deltafsz",
    "2026-11-26-02-10-03.dat",
    "2026-11-26-02-10-03.fs.tmp-1-2",
    "2026-11-26-02-10-03.index.tmp-12-0",
    "aaaaaaaaaaaaaaaaaaaxx.tmp-1-2",
];

/// A stamped name with up to three characters (most of them multi-byte)
/// inserted at character boundaries, most often around byte 19, where the
/// stamp ends.
fn stamp_like_name() -> impl Strategy<Value = String> {
    let insert = (
        prop_oneof![2 => 16..24usize, 1 => 0..40usize],
        select(vec!['é', '€', '😀', '\u{301}', '.', '-', '0']),
    );
    (
        select(STAMPED_NAMES.to_vec()),
        prop::collection::vec(insert, 0..3),
    )
        .prop_map(|(name, inserts)| {
            let mut s = name.to_string();
            for (at, c) in inserts {
                let mut at = at.min(s.len());
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                s.insert(at, c);
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1024)))]

    #[test]
    fn any_file_name_is_classified_without_panicking(
        name in prop_oneof![any::<String>(), stamp_like_name()],
    ) {
        let leftover = repozo::repo::is_leftover(&name);
        let data = repozo::repo::is_data_file(&name);
        prop_assert!(!(leftover && data), "{} is both", name);
        if leftover {
            prop_assert!(name.is_char_boundary(19) && name.contains(".tmp-"), "{}", name);
        }
        let (root, ext) = repozo::repo::split_ext(&name);
        prop_assert_eq!(format!("{root}{ext}"), name.clone());
        let names = vec![name.clone()];
        let chain = repozo::repo::select_chain(&names, "2026-12-01-00-00-00");
        prop_assert!(chain.len() <= 1);
    }
}

#[test]
fn a_multibyte_character_across_byte_19_makes_no_name_a_leftover() {
    for name in [
        "aaaaaaaaaaaaaaaaaaéxx.tmp-1-2",
        "2026-11-26-02-10-0é.fs.tmp-1-2",
    ] {
        assert!(!repozo::repo::is_leftover(name), "{name}");
    }
    for template in STAMPED_NAMES {
        for at in 0..=template.len() {
            for c in ['é', '€', '😀'] {
                let mut name = template.to_string();
                name.insert(at, c);
                let leftover = repozo::repo::is_leftover(&name);
                // Only a character after the stamp's dot can leave a
                // name of the form <stamp>.<ext>.tmp-<pid>-<n>.
                if at <= 19 {
                    assert!(!leftover, "{name}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// getopt
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn getopt_on_any_repozo_command_line_gives_options_or_an_error_message(
        args in prop::collection::vec(token(), 0..8),
    ) {
        check_getopt(&args, SHORT_OPTS, LONG_OPTS)?;
    }

    #[test]
    fn getopt_with_any_option_declarations_gives_options_or_an_error_message(
        args in prop::collection::vec(token(), 0..8),
        shortopts in "[BQrxé:]{0,8}",
        longopts in prop::collection::vec(
            select(vec!["rep", "repository=", "ver", "verify", "verbose", "", "=", "date=", "é"]),
            0..5,
        ),
    ) {
        check_getopt(&args, &shortopts, &longopts)?;
    }
}

/// Whatever `getopt` accepts is declared, and the operands are the tail of
/// the arguments; whatever it refuses, it says which option.
fn check_getopt(args: &[String], shortopts: &str, longopts: &[&str]) -> Result<(), TestCaseError> {
    match getopt(args, shortopts, longopts) {
        Ok((opts, operands)) => {
            prop_assert!(args.ends_with(&operands));
            for o in &opts {
                if let Some(long) = o.name.strip_prefix("--") {
                    // An exact declaration without `=` wins, as in Python.
                    let takes = !longopts.contains(&long)
                        && longopts.contains(&format!("{long}=").as_str());
                    prop_assert!(takes || longopts.contains(&long), "{:?}", o);
                    prop_assert_eq!(o.value.is_some(), takes, "{:?}", o);
                } else {
                    let c = o.name.strip_prefix('-').unwrap();
                    prop_assert_eq!(c.chars().count(), 1, "{:?}", o);
                    prop_assert!(c != ":" && shortopts.contains(c), "{:?}", o);
                }
            }
        }
        Err(msg) => prop_assert!(msg.starts_with("option -"), "{}", msg),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Blobs: manifests, Blob class pickles, blob records of a Data.fs
// ---------------------------------------------------------------------------

use repozo::blob::{Entry as BlobEntry, Hash, Kind, Layout as BlobLayout, Manifest};
use repozo::fs::{blob_records, is_blob_pickle};

fn blob_entry() -> impl Strategy<Value = BlobEntry> {
    (
        prop_oneof![0..4u64, any::<u64>()],
        prop_oneof![0..4u64, any::<u64>()],
        prop::option::weighted(0.8, (edgy_u64(1 << 20), any::<[u8; 32]>())),
    )
        .prop_map(|(oid, tid, content)| BlobEntry {
            oid,
            tid,
            content: content.map(|(size, h)| (size, Hash(h))),
        })
}

fn manifest() -> impl Strategy<Value = Manifest> {
    (
        any::<bool>(),
        "[0-9A-Za-z._=-]{0,30}",
        any::<bool>(),
        edgy_u64(1 << 30),
        edgy_u64(1 << 30),
        prop::collection::vec(blob_entry(), 0..12),
    )
        .prop_map(|(lawn, data, full, a, b, entries)| Manifest {
            layout: if lawn {
                BlobLayout::Lawn
            } else {
                BlobLayout::Bushy
            },
            data,
            kind: if full { Kind::Full } else { Kind::Incremental },
            start: a.min(b),
            end: a.max(b),
            entries,
        })
}

/// `m` as [`Manifest::parse`] returns it: entries sorted, one per revision.
fn normalized(m: &Manifest) -> Manifest {
    let mut m = m.clone();
    m.entries.sort();
    m.entries.dedup_by_key(|e| (e.oid, e.tid));
    m
}

/// What every answer of [`Manifest::parse`] must satisfy: a manifest whose
/// entries are strictly sorted, that writes and reads back unchanged, or
/// an error naming the file and a line.
fn check_manifest(bytes: &[u8]) -> Option<Manifest> {
    match Manifest::parse(bytes, "x.blobs") {
        Ok(m) => {
            assert!(
                m.entries
                    .windows(2)
                    .all(|w| (w[0].oid, w[0].tid) < (w[1].oid, w[1].tid)),
                "entries not strictly sorted: {:?}",
                m.entries
            );
            assert!(m.start <= m.end, "start {} > end {}", m.start, m.end);
            let again = Manifest::parse(&m.to_bytes()[..], "y.blobs")
                .unwrap_or_else(|e| panic!("a parsed manifest does not read back: {e}"));
            assert_eq!(again, m, "a parsed manifest reads back changed");
            Some(m)
        }
        Err(e @ Error::Manifest { .. }) => {
            let text = e.to_string();
            assert!(text.starts_with("x.blobs: line "), "{text}");
            None
        }
        Err(other) => panic!("not a clean manifest error: {other:?}"),
    }
}

/// Replaces the `# end` line of `bytes` (if any) by a correct one for the
/// lines above it, so that a mutation reaches the entry parser.
fn reseal(bytes: &[u8]) -> Vec<u8> {
    let mut body = bytes.to_vec();
    if let Some(at) = body
        .windows(7)
        .rposition(|w| w == b"\n# end ")
        .map(|i| i + 1)
    {
        body.truncate(at);
    }
    if !body.is_empty() && !body.ends_with(b"\n") {
        body.push(b'\n');
    }
    let lines = body.iter().filter(|&&c| c == b'\n').count();
    let hash = Hash::of(&body);
    body.extend(format!("# end {} {hash}\n", lines.saturating_sub(1)).bytes());
    body
}

#[derive(Debug, Clone)]
enum ManifestEdit {
    Flips(Vec<(Pick, u8)>),
    Truncate(Pick),
    Append(Vec<u8>),
    DropLine(Pick),
    RepeatLine(Pick),
    SwapLines(Pick, Pick),
    ReplaceLine(Pick, String),
}

fn manifest_edit() -> impl Strategy<Value = ManifestEdit> {
    let line = prop_oneof![
        "[0-9a-f]{16} [0-9a-f]{16} [0-9+-]{0,21} [0-9a-f]{62,66}",
        "[0-9a-f+]{15,17} [0-9a-f]{16} - gone",
        "# repozo-blobs 1( [a-z]{0,6}=[0-9a-z-]{0,8}){0,8}",
        any::<String>(),
    ];
    prop_oneof![
        flips().prop_map(ManifestEdit::Flips),
        any::<Pick>().prop_map(ManifestEdit::Truncate),
        prop::collection::vec(any::<u8>(), 1..80).prop_map(ManifestEdit::Append),
        any::<Pick>().prop_map(ManifestEdit::DropLine),
        any::<Pick>().prop_map(ManifestEdit::RepeatLine),
        (any::<Pick>(), any::<Pick>()).prop_map(|(a, b)| ManifestEdit::SwapLines(a, b)),
        (any::<Pick>(), line).prop_map(|(a, l)| ManifestEdit::ReplaceLine(a, l)),
    ]
}

fn edit_manifest(bytes: &[u8], edit: &ManifestEdit) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = bytes
        .split_inclusive(|&c| c == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    let n = lines.len();
    match edit {
        _ if n == 0 => return bytes.to_vec(),
        ManifestEdit::Flips(f) => {
            let mut out = bytes.to_vec();
            apply_flips(&mut out, f);
            return out;
        }
        ManifestEdit::Truncate(at) => return bytes[..at.index(bytes.len() + 1)].to_vec(),
        ManifestEdit::Append(tail) => return [bytes, tail].concat(),
        ManifestEdit::DropLine(at) => {
            lines.remove(at.index(n));
        }
        ManifestEdit::RepeatLine(at) => {
            let i = at.index(n);
            lines.insert(i, lines[i].clone());
        }
        ManifestEdit::SwapLines(a, b) => lines.swap(a.index(n), b.index(n)),
        ManifestEdit::ReplaceLine(at, l) => lines[at.index(n)] = format!("{l}\n").into_bytes(),
    }
    lines.concat()
}

/// What every answer of [`blob_records`] must satisfy: records whose tids
/// are those of transactions in the file, or a format error naming the
/// file and a byte offset.
fn check_blob_records(data: &[u8], start: u64, end: u64) -> Option<Vec<(u64, u64)>> {
    let mut file = tempfile::tempfile().expect("tempfile");
    std::io::Write::write_all(&mut file, data).unwrap();
    match blob_records(&file, "Data.fs", start, end) {
        Ok(recs) => {
            assert!(
                recs.len() as u64 <= end.saturating_sub(start) / 42,
                "{} records in {} bytes",
                recs.len(),
                end.saturating_sub(start)
            );
            Some(recs.iter().map(|r| (r.oid, r.tid)).collect())
        }
        Err(Error::Format(f)) => {
            assert_eq!(f.path, "Data.fs");
            assert!(!f.what.is_empty());
            let limit = end.max(data.len() as u64);
            assert!(f.pos <= limit, "error offset {} past {limit}", f.pos);
            let text = Error::Format(f.clone()).to_string();
            assert!(
                text.starts_with(&format!("Data.fs: byte {}: ", f.pos)),
                "{text}"
            );
            None
        }
        Err(other) => panic!("not a clean format error: {other:?}"),
    }
}

/// A range of a file: its whole length, transaction boundaries, or any
/// two offsets.
#[derive(Debug, Clone)]
enum Span {
    Whole,
    Boundaries(Pick, Pick),
    Any(u64, u64),
}

fn span() -> impl Strategy<Value = Span> {
    prop_oneof![
        2 => Just(Span::Whole),
        2 => (any::<Pick>(), any::<Pick>()).prop_map(|(a, b)| Span::Boundaries(a, b)),
        1 => (edgy_u64(4096), edgy_u64(4096)).prop_map(|(a, b)| Span::Any(a, b)),
    ]
}

impl Span {
    fn resolve(&self, len: usize, boundaries: &[u64]) -> (u64, u64) {
        match self {
            Span::Whole => (4, len as u64),
            Span::Boundaries(a, b) => {
                let a = boundaries[a.index(boundaries.len())];
                let b = boundaries[b.index(boundaries.len())];
                (a.min(b), a.max(b))
            }
            Span::Any(a, b) => (*a, *b),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(synth::cases(256)))]

    #[test]
    fn arbitrary_bytes_as_a_blob_manifest_give_sorted_entries_or_an_error_naming_the_line(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..600),
            prop::collection::vec(any::<u8>(), 0..600)
                .prop_map(|b| reseal(&[&b"# repozo-blobs 1 "[..], &b].concat())),
        ],
    ) {
        check_manifest(&bytes);
    }

    #[test]
    fn a_written_blob_manifest_reads_back_sorted_and_unchanged(m in manifest()) {
        let back = check_manifest(&m.to_bytes()).expect("a written manifest reads back");
        prop_assert_eq!(back, normalized(&m));
    }

    #[test]
    fn a_changed_blob_manifest_is_an_error_unless_resealed_then_never_a_panic(
        m in manifest(),
        edits in prop::collection::vec(manifest_edit(), 1..4),
        resealed in any::<bool>(),
    ) {
        let original = m.to_bytes();
        let mut bytes = original.clone();
        for edit in &edits {
            bytes = edit_manifest(&bytes, edit);
        }
        if resealed {
            check_manifest(&reseal(&bytes));
        } else {
            let got = check_manifest(&bytes);
            if bytes != original {
                prop_assert!(got.is_none(), "a changed manifest was accepted: {:?}", got);
            }
        }
    }

    #[test]
    fn is_blob_pickle_never_panics_and_needs_the_blob_class_named(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            (any::<Pick>(), flips()).prop_map(|(form, f)| {
                let mut b = BLOB_PICKLES[form.index(BLOB_PICKLES.len())].to_vec();
                apply_flips(&mut b, &f);
                b
            }),
            (any::<Pick>(), any::<Pick>()).prop_map(|(form, cut)| {
                let b = BLOB_PICKLES[form.index(BLOB_PICKLES.len())];
                b[..cut.index(b.len() + 1)].to_vec()
            }),
        ],
        zlib in prop_oneof![
            Just(None),
            Just(Some(Vec::new())),
            flips().prop_map(Some),
        ],
    ) {
        let plain = is_blob_pickle(&bytes);
        if plain {
            let has = |n: &[u8]| bytes.windows(n.len()).any(|w| w == n);
            prop_assert!(has(b"ZODB.blob") && has(b"Blob"), "{:?}", bytes);
        }
        if let Some(z) = zlib {
            use std::io::Write;
            let mut enc = flate2::write::ZlibEncoder::new(
                b".z".to_vec(),
                flate2::Compression::default(),
            );
            enc.write_all(&bytes).unwrap();
            let mut packed = enc.finish().unwrap();
            if z.is_empty() {
                prop_assert_eq!(is_blob_pickle(&packed), plain);
            } else {
                apply_flips(&mut packed[2..], &z);
                is_blob_pickle(&packed);
            }
            let mut raw = b".z".to_vec();
            raw.extend(&bytes);
            is_blob_pickle(&raw);
        }
    }

    #[test]
    fn blob_records_of_a_synthetic_data_fs_are_those_zodb_would_report(
        txns in prop::collection::vec(blob_txn(), 0..10),
        a in any::<Pick>(),
        b in any::<Pick>(),
    ) {
        let fs = build_blob_fs(&txns);
        let n = fs.boundaries.len();
        let (a, b) = (a.index(n), b.index(n));
        let (a, b) = (a.min(b), a.max(b));
        let got = check_blob_records(&fs.bytes, fs.boundaries[a], fs.boundaries[b])
            .expect("a well-formed file reads");
        prop_assert_eq!(got, fs.blobs_between(a, b));
    }

    #[test]
    fn blob_records_of_a_damaged_synthetic_data_fs_never_panic_and_errors_name_the_offset(
        txns in prop::collection::vec(blob_txn(), 1..10),
        mutation in mutation(),
        span in span(),
    ) {
        let fs = build_blob_fs(&txns);
        let data = mutation.apply(&fs.bytes);
        let (start, end) = span.resolve(data.len(), &fs.boundaries);
        check_blob_records(&data, start, end);
    }

    #[test]
    fn blob_records_of_a_damaged_fixture_never_panic_and_errors_name_the_offset(
        name in select(FIXTURES.to_vec()),
        mutation in prop_oneof![
            flips().prop_map(Mutation::Flips),
            (any::<Pick>(), edgy_u64(20_000)).prop_map(|(at, v)| Mutation::Overwrite(at, v)),
            any::<Pick>().prop_map(Mutation::Truncate),
        ],
        span in span(),
    ) {
        let data = mutation.apply(fixture(name));
        let (start, end) = span.resolve(data.len(), &layout_of(name).boundaries);
        check_blob_records(&data, start, end);
    }
}

#[test]
fn every_fixture_reads_as_a_list_of_blob_records_from_end_to_end() {
    for name in FIXTURES {
        let data = fixture(name);
        let b = &layout_of(name).boundaries;
        for (i, &start) in b.iter().enumerate() {
            for &end in &b[i..] {
                check_blob_records(data, start, end)
                    .unwrap_or_else(|| panic!("{name} [{start}, {end}) does not read"));
            }
        }
    }
}

#[test]
fn a_blob_manifest_header_with_a_field_repeated_or_missing_is_refused() {
    let good = "layout=bushy data=x.fs kind=full start=0 end=5 gone=0";
    let sealed = |header: &str| reseal(format!("# repozo-blobs 1 {header}\n").as_bytes());
    assert!(check_manifest(&sealed(good)).is_some(), "{good}");
    assert!(check_manifest(&sealed(&format!("{good} future=1"))).is_some());
    for bad in [
        "layout=bushy layout=lawn data=x.fs kind=full start=0 end=5",
        "layout=bushy data=x.fs kind=full start=0 end=5 gone=0 end=6",
        "layout=bushy data=x.fs kind=full start=0 end=5",
        "layout=bushy data=x.fs kind=full start=6 end=5 gone=0",
    ] {
        assert!(check_manifest(&sealed(bad)).is_none(), "accepted: {bad}");
    }
}
