//! The Data.fs reader against ZODB 6.4 itself: for every case of
//! repozo.md §3.4's table, our committed end equals
//! `FileStorage(path, read_only=True).getSize()`, and the index we build
//! saves to the same bytes as `fs._index.save(getSize(), …)` — with and
//! without a `Data.fs.index` next to the file.

use crate::common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{py, zodb};
use repozo::fs::{TXN_HEADER_LEN, TxnHeader, committed};
use repozo::{Silent, index};

/// A healthy Data.fs grown by real ZODB, its Data.fs.index, and the
/// positions of its transactions.
struct Base {
    bytes: Vec<u8>,
    index: Vec<u8>,
    txns: Vec<u64>,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let fs = dir.path().join("Data.fs");
        zodb::grow(&fs, 8, 11);
        let bytes = std::fs::read(&fs).unwrap();
        let index = std::fs::read(dir.path().join("Data.fs.index")).unwrap();
        let mut txns = Vec::new();
        let mut pos = 4u64;
        while pos < bytes.len() as u64 {
            let h = TxnHeader::decode(pos, &bytes[pos as usize..]);
            txns.push(pos);
            pos += h.tlen + 8;
        }
        assert!(txns.len() >= 6, "fixture too small: {txns:?}");
        Base { bytes, index, txns }
    })
}

/// What ZODB says about a file: `Ok((getSize, saved index bytes))` or
/// `Err(exception class name)`.
fn zodb_view(path: &Path) -> Result<(u64, Vec<u8>), String> {
    let out_index = path.with_extension("zodb-index");
    let o = py::zodbtool_status(&["getsize", path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if !o.status.success() {
        return Err(text.trim_start_matches("ERROR ").to_string());
    }
    let pos: u64 = text.parse().expect("getsize prints a number");
    py::zodbtool(&[
        "saveindex",
        path.to_str().unwrap(),
        out_index.to_str().unwrap(),
    ]);
    Ok((pos, std::fs::read(&out_index).unwrap()))
}

/// What we say about the same file.
fn our_view(path: &Path) -> Result<(u64, Vec<u8>), String> {
    let f = File::open(path).unwrap();
    let size = f.metadata().unwrap().len();
    committed(path, &f, size, &Silent)
        .map(|c| (c.pos, index::save(c.pos, &c.index)))
        .map_err(|e| e.to_string())
}

/// Writes `bytes` as `Data.fs` in a new directory, optionally with the
/// base file's `Data.fs.index` beside it.
fn case_file(bytes: &[u8], with_index: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("Data.fs");
    std::fs::write(&p, bytes).unwrap();
    if with_index {
        std::fs::write(dir.path().join("Data.fs.index"), &base().index).unwrap();
    }
    (dir, p)
}

fn set_status(b: &mut [u8], tpos: u64, status: u8) {
    b[tpos as usize + 16] = status;
}

fn set_u64(b: &mut [u8], at: u64, v: u64) {
    b[at as usize..at as usize + 8].copy_from_slice(&v.to_be_bytes());
}

/// The §3.4 cases: name, bytes, and whether ZODB accepts the file.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let b = base();
    let n = b.txns.len();
    let last = b.txns[n - 1];
    let middle = b.txns[n / 2];
    let mut v = vec![("clean", b.bytes.clone())];
    v.push(("cut mid last txn", b.bytes[..last as usize + 30].to_vec()));
    v.push((
        "cut inside last header",
        b.bytes[..last as usize + 10].to_vec(),
    ));
    let mut t = b.bytes.clone();
    t.extend_from_slice(b"0123456789");
    v.push(("ten trailing bytes", t));
    for k in [23usize, 31] {
        let mut t = b.bytes.clone();
        t.extend(std::iter::repeat_n(0u8, k));
        v.push((
            if k == 23 {
                "23 zero bytes"
            } else {
                "31 zero bytes"
            },
            t,
        ));
    }
    let mut t = b.bytes.clone();
    set_status(&mut t, last, b'c');
    v.push(("last status c", t));
    let mut t = b.bytes.clone();
    set_status(&mut t, middle, b'c');
    v.push(("middle status c", t));
    let mut t = b.bytes.clone();
    set_status(&mut t, last, b'x');
    v.push(("status x", t));
    let mut t = b.bytes.clone();
    set_status(&mut t, last, b'u');
    v.push(("last status u", t));
    let mut t = b.bytes.clone();
    set_status(&mut t, middle, b'u');
    v.push(("middle status u", t));
    let mut t = b.bytes.clone();
    set_u64(&mut t, last + 8, u64::MAX / 2);
    v.push(("tlen huge", t));
    let mut t = b.bytes.clone();
    let end = t.len() as u64;
    set_u64(&mut t, end - 8, 12345);
    v.push(("bad redundant length", t));
    let mut t = b.bytes.clone();
    set_u64(&mut t, middle + 8, 10); // shorter than its own header
    v.push(("tl below header length, sane tail", t));
    let mut t = b.bytes.clone();
    set_u64(&mut t, last + 8, 10);
    let end = t.len() as u64;
    set_u64(&mut t, end - 8, 1 << 40);
    v.push(("tl below header length, garbage tail", t));
    let mut t = b.bytes.clone();
    t[last as usize + TXN_HEADER_LEN as usize + 5] ^= 0xff; // inside first data header's tid
    v.push(("flipped byte in a data header tid", t));
    let mut t = b.bytes.clone();
    let first_data = b.txns[1] + {
        let h = TxnHeader::decode(b.txns[1], &b.bytes[b.txns[1] as usize..]);
        h.header_len()
    };
    set_u64(&mut t, first_data + 24, 999); // tloc
    v.push(("data record with a wrong tloc", t));
    v.push(("empty file", Vec::new()));
    v.push(("magic only", b"FS30".to_vec()));
    v.push(("bad magic", {
        let mut t = b.bytes.clone();
        t[..4].copy_from_slice(b"XY30");
        t
    }));
    v.push(("three bytes", b"FS3".to_vec()));
    v
}

#[test]
fn the_committed_end_and_index_match_zodb_for_every_case_of_the_table() {
    let mut failures = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for with_index in [false, true] {
        for (name, bytes) in cases() {
            let (_dir, p) = case_file(&bytes, with_index);
            let theirs = zodb_view(&p);
            let ours = our_view(&p);
            if !with_index {
                seen.insert(name, theirs.as_ref().map(|t| t.0).map_err(|e| e.clone()));
            }
            let same = match (&theirs, &ours) {
                (Ok(t), Ok(o)) => t == o,
                (Err(_), Err(msg)) => msg.contains("byte "),
                _ => false,
            };
            if !same {
                failures.push(format!(
                    "{name} (index: {with_index}): ZODB {:?} vs ours {:?}",
                    theirs.as_ref().map(|t| t.0),
                    ours.as_ref().map(|o| o.0)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
    // The table exercises every branch: accepted, stopped early, refused.
    let clean = seen["clean"].clone().unwrap();
    assert_eq!(seen["empty file"], Ok(4));
    assert_eq!(seen["magic only"], Ok(4));
    assert_eq!(seen["cut mid last txn"], Ok(*base().txns.last().unwrap()));
    assert_eq!(seen["ten trailing bytes"], Ok(clean));
    assert_eq!(
        seen["middle status c"],
        Ok(base().txns[base().txns.len() / 2])
    );
    for refused in [
        "bad redundant length",
        "tl below header length, sane tail",
        "bad magic",
        "three bytes",
        "data record with a wrong tloc",
    ] {
        assert!(
            seen[refused].is_err(),
            "{refused}: ZODB accepted it: {:?}",
            seen[refused]
        );
    }
}

#[test]
fn an_fs21_file_is_read_like_the_same_file_with_fs30_magic() {
    let mut t = base().bytes.clone();
    t[..4].copy_from_slice(b"FS21");
    let (_d, p) = case_file(&t, false);
    let (_d2, p30) = case_file(&base().bytes, false);
    assert!(zodb_view(&p).is_err(), "ZODB 6.4 refuses FS21");
    assert_eq!(our_view(&p).unwrap(), zodb_view(&p30).unwrap());
}

#[test]
fn a_stale_data_fs_index_is_used_and_gives_zodbs_index() {
    let dir = tempfile::tempdir().unwrap();
    let fs = dir.path().join("Data.fs");
    let p = fs.to_str().unwrap();
    zodb::grow(&fs, 5, 3);
    let stale = dir.path().join("stale.index");
    py::zodbtool(&["copy-index", p, stale.to_str().unwrap()]);
    zodb::grow(&fs, 5, 4);
    std::fs::copy(&stale, dir.path().join("Data.fs.index")).unwrap();
    let f = File::open(&fs).unwrap();
    let c = committed(&fs, &f, f.metadata().unwrap().len(), &Silent).unwrap();
    assert!(c.used_index, "a sane stale index is used, as ZODB uses it");
    assert_eq!(our_view(&fs).unwrap(), zodb_view(&fs).unwrap());
}

#[test]
fn an_insane_or_truncated_data_fs_index_is_ignored_like_zodb_ignores_it() {
    let b = base();
    for (name, idx) in [
        ("truncated", b.index[..b.index.len() / 2].to_vec()),
        ("wrong position", {
            let mut ix = b.index.clone();
            // The first pickle is `80 03 M lo hi .` or `J ...`: point it
            // somewhere inside the file.
            ix[3] = ix[3].wrapping_add(1);
            ix
        }),
        ("not a pickle", b"hello".to_vec()),
    ] {
        let (_dir, p) = case_file(&b.bytes, false);
        std::fs::write(p.with_file_name("Data.fs.index"), idx).unwrap();
        assert_eq!(our_view(&p), zodb_view(&p), "index {name}");
    }
}

#[test]
fn committed_fixtures_written_by_zodb_match_zodb() {
    for name in ["small.fs", "packed.fs", "undo.fs"] {
        let dir = tempfile::tempdir().unwrap();
        let p = common::fixture(name, dir.path());
        assert_eq!(our_view(&p), zodb_view(&p), "{name}");
    }
}
