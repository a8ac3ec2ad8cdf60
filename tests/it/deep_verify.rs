//! `-V -D <date>` and `-V --deep` on repositories written by ZODB 6.4's
//! repozo and by ours, from Data.fs files written by real ZODB.
//!
//! A healthy history passes `--deep` at every date, plain and gzipped,
//! with and without `-Q`. Repositories whose files all match their `.dat`
//! checksums but whose bytes are not a sound FileStorage — a Data.fs that
//! was already damaged when it was backed up, the gap ZODB's repozo leaves
//! after a full and an incremental backup in the same second — pass plain
//! `-V` (ours and ZODB's) and fail `--deep` with a message naming the
//! backup file, the offsets and what is wrong.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::Tool::{self, Ours, Theirs};
use common::py::{zodbtool, zodbtool_stdout};
use common::{repozo, run, stderr, zodb};

fn repozo_ok(tool: Tool, cwd: &Path, now: &str, args: &[&str]) -> Output {
    let o = repozo(tool, cwd, now, args);
    assert!(
        o.status.success(),
        "{tool:?} repozo {args:?} (now {now}) failed: {}",
        stderr(&o)
    );
    o
}

/// Our `-V` with `args` after `-r repo`, at a time after every backup.
fn verify(cwd: &Path, repo: &str, args: &[&str]) -> Output {
    let mut all = vec!["-V", "-r", repo];
    all.extend_from_slice(args);
    repozo(Ours, cwd, LATER, &all)
}

/// Asserts that our `-V … args` fails; returns its message.
fn verify_fails(cwd: &Path, repo: &str, args: &[&str]) -> String {
    let o = verify(cwd, repo, args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "-V {args:?} on {repo} should fail: {}",
        stderr(&o)
    );
    stderr(&o)
}

/// Asserts that plain `-V` passes for both tools (and `-V -Q` for ours).
fn plain_verify_passes(cwd: &Path, repo: &str) {
    for tool in [Ours, Theirs] {
        let o = repozo(tool, cwd, LATER, &["-V", "-r", repo]);
        assert!(o.status.success(), "{tool:?} -V {repo}: {}", stderr(&o));
    }
    let o = verify(cwd, repo, &["-Q"]);
    assert!(o.status.success(), "-VQ {repo}: {}", stderr(&o));
}

/// "Now" for every verify: after every backup stamp below.
const LATER: &str = "2030-01-01-00-00-00";

/// The `n`th backup stamp, a minute apart.
fn stamp(n: usize) -> String {
    format!("2026-03-01-10-{n:02}-00")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// One transaction or data record of a Data.fs, from `zodbtool.py scan`
/// (a listing that does not use ZODB).
#[derive(Debug, Clone, Copy)]
struct Rec {
    /// Offset of the transaction header, or of the data record.
    pos: u64,
    oid: Option<u64>,
    backpointer: Option<u64>,
}

fn scan(data_fs: &Path) -> Vec<Rec> {
    let out = zodbtool_stdout(&["scan", s(data_fs)]);
    let mut recs = Vec::new();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let field = |name: &str| words.iter().position(|w| *w == name).map(|i| words[i + 1]);
        match words.first() {
            Some(&"txn") => {
                recs.push(Rec {
                    pos: words[1].parse().unwrap(),
                    oid: None,
                    backpointer: None,
                });
            }
            Some(&"data") => recs.push(Rec {
                pos: words[1].parse().unwrap(),
                oid: field("oid").map(|o| u64::from_str_radix(o, 16).unwrap()),
                backpointer: field("backpointer").map(|b| b.parse().unwrap()),
            }),
            _ => {}
        }
    }
    recs
}

fn transactions(recs: &[Rec]) -> Vec<Rec> {
    recs.iter().filter(|r| r.oid.is_none()).copied().collect()
}

fn records(recs: &[Rec]) -> Vec<Rec> {
    recs.iter().filter(|r| r.oid.is_some()).copied().collect()
}

/// Overwrites bytes of `path` at `at`.
fn patch(path: &Path, at: u64, bytes: &[u8]) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, b).unwrap();
}

fn read_at(path: &Path, at: u64, n: usize) -> Vec<u8> {
    std::fs::read(path).unwrap()[at as usize..at as usize + n].to_vec()
}

/// Runs ZODB's own `fstest.py` on `data_fs`: `Err(its message)` if it
/// finds a problem.
fn fstest(data_fs: &Path) -> Result<(), String> {
    let o = run({
        let mut c = std::process::Command::new(common::py::venv_python());
        c.args(["-m", "ZODB.scripts.fstest", s(data_fs)]);
        c
    });
    match o.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(stderr(&o)),
        other => panic!("fstest exited with {other:?}: {}", stderr(&o)),
    }
}

/// Recovers the state of `date` from `repo` with ours into `out`.
fn recover(cwd: &Path, repo: &str, date: &str, out: &str) {
    repozo_ok(Ours, cwd, LATER, &["-R", "-r", repo, "-D", date, "-o", out]);
}

/// Writes `Data.fs.index` as ZODB would for the file as it stands now, so
/// that after a later change in its middle (ZODB checks only the last
/// records of a `Data.fs.index`), ZODB and we back the file up as it is
/// instead of scanning it.
fn save_index(data_fs: &Path) {
    let index = format!("{}.index", s(data_fs));
    let _ = std::fs::remove_file(&index);
    zodbtool(&["saveindex", s(data_fs), &index]);
}

// ---------------------------------------------------------------------------
// A healthy history
// ---------------------------------------------------------------------------

#[test]
fn a_healthy_history_backed_up_by_both_tools_plain_and_gzipped_passes_deep_verify_at_every_date() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let data_fs = d.join("Data.fs");
    let repos: [(Tool, bool, &str); 4] = [
        (Ours, false, "ours"),
        (Ours, true, "ours-z"),
        (Theirs, false, "theirs"),
        (Theirs, true, "theirs-z"),
    ];
    for (_, _, name) in repos {
        std::fs::create_dir(d.join(name)).unwrap();
    }
    // (what ZODB does to the Data.fs, then the backup flags)
    let steps: [(&[&str], &[&str]); 7] = [
        (&["grow", "--txns", "6", "--seed", "11"], &["-B"]),
        (&["undo", "--count", "2"], &["-B"]),
        (
            &["grow", "--txns", "3", "--seed", "12", "--blobby"],
            &["-BQ"],
        ),
        (&["pack"], &["-B"]),
        (&["undo"], &["-BQ"]),
        (&["grow", "--txns", "4", "--seed", "13"], &["-BF"]),
        (
            &["grow", "--txns", "2", "--seed", "14", "--blobby"],
            &["-B"],
        ),
    ];
    for (i, (change, flags)) in steps.iter().enumerate() {
        let mut zodb = vec![change[0], s(&data_fs)];
        zodb.extend_from_slice(&change[1..]);
        zodbtool(&zodb);
        for (tool, gzip, name) in repos {
            let mut args = flags.to_vec();
            if gzip {
                args.push("-z");
            }
            args.extend(["-r", name, "-f", "Data.fs"]);
            repozo_ok(tool, d, &stamp(i), &args);
        }
    }
    for (_, _, name) in repos {
        plain_verify_passes(d, name);
        let o = verify(d, name, &["--deep", "-v"]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let log = stderr(&o);
        assert!(
            log.contains("Checked the chain as one FileStorage: "),
            "{log}"
        );
        assert!(log.contains(" matches the chain\n"), "{log}");
        // Every date, with the md5 pass (-V) and without it (-VQ).
        for i in 0..steps.len() {
            for quick in [false, true] {
                let date = stamp(i);
                let mut args = vec!["--deep", "-v", "-D", &date];
                if quick {
                    args.push("-Q");
                }
                let o = verify(d, name, &args);
                assert!(o.status.success(), "{name} {args:?}: {}", stderr(&o));
                assert!(
                    stderr(&o).contains(" matches the chain\n"),
                    "{}",
                    stderr(&o)
                );
            }
        }
        // ZODB's fstest agrees that every state is sound.
        if name == "theirs-z" {
            for i in 0..steps.len() {
                recover(d, name, &stamp(i), "state.fs");
                fstest(&d.join("state.fs")).unwrap_or_else(|e| panic!("{}: {e}", stamp(i)));
            }
        }
        // A partial date selects the backups before it: none here.
        let o = verify(d, name, &["--deep", "-D", "2026-03-01-10"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("No files in repository before 2026-03-01-10"));
    }
}

// ---------------------------------------------------------------------------
// Damaged before the backup
// ---------------------------------------------------------------------------

/// One way a Data.fs can be damaged without ZODB noticing when it opens
/// it with a valid `Data.fs.index`.
struct Damage {
    what: &'static str,
    /// Changes the Data.fs (scanned as `recs`); returns the Data.fs offset
    /// `--deep` must report.
    apply: fn(&Path, &[Rec]) -> u64,
    /// Part of the message.
    says: &'static str,
    /// Whether ZODB's fstest.py finds it too (it does not follow
    /// backpointers).
    fstest_finds: bool,
}

const DAMAGES: &[Damage] = &[
    Damage {
        what: "a transaction id lower than the one before",
        apply: |fs, recs| {
            let txns = transactions(recs);
            let earlier = read_at(fs, txns[1].pos, 8);
            patch(fs, txns[2].pos, &earlier);
            txns[2].pos
        },
        says: "(time-stamp reduction)",
        fstest_finds: true,
    },
    Damage {
        what: "a data record whose tloc is not its transaction",
        apply: |fs, recs| {
            let r = records(recs)[2];
            patch(fs, r.pos + 24, &4u64.to_be_bytes());
            r.pos
        },
        says: "(tloc), but it is in the transaction at byte",
        fstest_finds: true,
    },
    Damage {
        what: "a backpointer to a later record of the same object",
        apply: |fs, recs| {
            let recs = records(recs);
            let (i, r) = recs
                .iter()
                .enumerate()
                .find(|(_, r)| r.backpointer.is_some_and(|b| b > 0))
                .expect("undo.fs has backpointers");
            let later = recs[i + 1..]
                .iter()
                .find(|l| l.oid == r.oid)
                .expect("a later record of the same oid");
            patch(fs, r.pos + 42, &later.pos.to_be_bytes());
            r.pos
        },
        says: "which is not before the record",
        fstest_finds: false,
    },
    Damage {
        what: "a backpointer to a record of another object",
        apply: |fs, recs| {
            let recs = records(recs);
            let r = *recs
                .iter()
                .find(|r| r.backpointer.is_some_and(|b| b > 0))
                .expect("undo.fs has backpointers");
            let other = recs
                .iter()
                .find(|o| o.pos < r.pos && o.oid != r.oid)
                .expect("an earlier record of another oid");
            patch(fs, r.pos + 42, &other.pos.to_be_bytes());
            r.pos
        },
        says: "a backpointer must point to an earlier data record of the same object",
        fstest_finds: false,
    },
    Damage {
        what: "a wrong redundant transaction length",
        apply: |fs, recs| {
            let txns = transactions(recs);
            let end = txns[2].pos - 8;
            let mut len = read_at(fs, end, 8);
            len[7] ^= 1;
            patch(fs, end, &len);
            end
        },
        says: "the redundant length of the transaction at byte",
        fstest_finds: true,
    },
];

#[test]
fn a_data_fs_damaged_before_its_full_backup_passes_plain_verify_and_fails_deep_verify() {
    for (n, damage) in DAMAGES.iter().enumerate() {
        for (tool, gzip) in [(Theirs, false), (Ours, true), (Theirs, true), (Ours, false)] {
            let t = tempfile::tempdir().unwrap();
            let d = t.path();
            let data_fs = common::fixture("undo.fs", d);
            let data_fs = {
                let to = d.join("Data.fs");
                std::fs::rename(&data_fs, &to).unwrap();
                to
            };
            save_index(&data_fs);
            let at = (damage.apply)(&data_fs, &scan(&data_fs));
            std::fs::create_dir(d.join("repo")).unwrap();
            let mut args = vec!["-BF", "-r", "repo", "-f", "Data.fs"];
            if gzip {
                args.push("-z");
            }
            repozo_ok(tool, d, &stamp(0), &args);
            let context = format!("{} ({tool:?}, gzip {gzip})", damage.what);
            plain_verify_passes(d, "repo");
            let ext = if gzip { "fsz" } else { "fs" };
            let want = format!(
                "repo/{}.{ext}: byte {at} of the file (Data.fs byte {at}): ",
                stamp(0)
            );
            for quick in [&[][..], &["-Q"]] {
                let mut args = vec!["--deep"];
                args.extend_from_slice(quick);
                let msg = verify_fails(d, "repo", &args);
                assert!(msg.starts_with(&want), "{context}: {msg}");
                assert!(msg.contains(damage.says), "{context}: {msg}");
                assert!(msg.contains("full backup (-F)"), "{msg}");
                assert!(msg.contains("fsrecover"), "{msg}");
            }
            recover(d, "repo", &stamp(0), "state.fs");
            let oracle = fstest(&d.join("state.fs"));
            assert_eq!(
                oracle.is_err(),
                damage.fstest_finds,
                "{context}: {oracle:?}"
            );
            if n > 0 {
                break; // every damage once, the first with every tool
            }
        }
    }
}

#[test]
fn damage_in_an_incremental_backup_is_reported_at_its_offset_in_that_file() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let data_fs = common::fixture("small.fs", d);
    std::fs::create_dir(d.join("repo")).unwrap();
    let r = |tool, n, flags: &[&str]| {
        let mut args = flags.to_vec();
        args.extend(["-r", "repo", "-f", s(&data_fs)]);
        repozo_ok(tool, d, &stamp(n), &args);
    };
    r(Ours, 0, &["-BF"]);
    let full_len = std::fs::metadata(&data_fs).unwrap().len();
    zodb::grow(&data_fs, 5, 21);
    save_index(&data_fs);
    // The second transaction after the full backup gets the first one's id.
    let new: Vec<Rec> = transactions(&scan(&data_fs))
        .into_iter()
        .filter(|t| t.pos >= full_len)
        .collect();
    let earlier = read_at(&data_fs, new[0].pos, 8);
    patch(&data_fs, new[1].pos, &earlier);
    r(Theirs, 1, &["-B", "-z"]);
    plain_verify_passes(d, "repo");
    let msg = verify_fails(d, "repo", &["--deep"]);
    let want = format!(
        "repo/{}.deltafsz: byte {} of the file (Data.fs byte {}): transaction id ",
        stamp(1),
        new[1].pos - full_len,
        new[1].pos
    );
    assert!(msg.starts_with(&want), "{msg}");
    assert!(msg.contains("time-stamp reduction"), "{msg}");
    // The chain of the full backup alone is sound.
    let o = verify(d, "repo", &["--deep", "-D", &stamp(0)]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_backup_file_that_does_not_start_at_a_transaction_boundary_fails_deep_verify() {
    use md5::{Digest, Md5};
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let data_fs = common::fixture("small.fs", d);
    std::fs::create_dir(d.join("repo")).unwrap();
    repozo_ok(
        Ours,
        d,
        &stamp(0),
        &["-BF", "-r", "repo", "-f", s(&data_fs)],
    );
    zodb::grow(&data_fs, 2, 51);
    repozo_ok(Ours, d, &stamp(1), &["-B", "-r", "repo", "-f", s(&data_fs)]);
    // Move the increment's first 10 bytes to the end of the full backup,
    // and record both files as they now are: every size and md5 matches.
    let (full, delta) = (
        d.join(format!("repo/{}.fs", stamp(0))),
        d.join(format!("repo/{}.deltafs", stamp(1))),
    );
    let (mut a, mut b) = (
        std::fs::read(&full).unwrap(),
        std::fs::read(&delta).unwrap(),
    );
    let boundary = a.len() as u64;
    a.extend(b.drain(..10));
    std::fs::write(&full, &a).unwrap();
    std::fs::write(&delta, &b).unwrap();
    let hex = |bytes: &[u8]| {
        Md5::digest(bytes)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    let split = boundary + 10;
    let end = split + b.len() as u64;
    std::fs::write(
        d.join(format!("repo/{}.dat", stamp(0))),
        format!(
            "repo/{}.fs 0 {split} {}\nrepo/{}.deltafs {split} {end} {}\n",
            stamp(0),
            hex(&a),
            stamp(1),
            hex(&b)
        ),
    )
    .unwrap();
    // The sidecars describe the ranges the .dat had: gone with them (a
    // rewritten .dat is what this test is about, not its warnings).
    for i in 0..2 {
        let _ = std::fs::remove_file(d.join(format!("repo/{}.blake3", stamp(i))));
    }
    plain_verify_passes(d, "repo");
    for quick in [&[][..], &["-Q"]] {
        let mut args = vec!["--deep"];
        args.extend_from_slice(quick);
        let msg = verify_fails(d, "repo", &args);
        assert!(
            msg.starts_with(&format!(
                "repo/{}.deltafs: byte 0 of the file (Data.fs byte {split}): this backup file \
                 starts at Data.fs byte {split}, inside the transaction at byte {boundary}: \
                 every backup file must start and end at a transaction boundary.",
                stamp(1)
            )),
            "{msg}"
        );
    }
}

#[test]
fn a_wrong_entry_copied_from_data_fs_index_into_a_full_backup_fails_deep_verify() {
    // FileStorage trusts a Data.fs.index whose last records check out, and
    // a full backup (ZODB's repozo's, and ours, which opens the Data.fs as
    // FileStorage does) saves that index as the backup's .index: recover
    // installs it.
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let data_fs = common::fixture("small.fs", d);
    let index_path = d.join("small.fs.index");
    let (pos, mut index) =
        repozo::index::load(&std::fs::read(&index_path).unwrap(), "small.fs.index").unwrap();
    let mut entries: Vec<(u64, u64)> = index.iter().collect();
    entries.sort_by_key(|&(_, p)| p);
    let ((oid, right), (_, wrong)) = (entries[0], entries[1]);
    index.insert(oid, wrong);
    std::fs::write(&index_path, repozo::index::save(pos, &index)).unwrap();
    for (tool, repo) in [(Theirs, "theirs"), (Ours, "ours")] {
        std::fs::create_dir(d.join(repo)).unwrap();
        repozo_ok(tool, d, &stamp(0), &["-BF", "-r", repo, "-f", s(&data_fs)]);
        plain_verify_passes(d, repo);
        let msg = verify_fails(d, repo, &["--deep"]);
        assert!(
            msg.starts_with(&format!(
                "{repo}/{}.index differs from the index rebuilt from the chain (first at byte ",
                stamp(0)
            )),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "oid 0x{oid:016x} is at byte {wrong} there, at byte {right} in the chain. \
                 Recover installs it as <output>.index"
            )),
            "{msg}"
        );
    }
}

// ---------------------------------------------------------------------------
// ZODB's repozo: a full and an incremental backup in the same second
// ---------------------------------------------------------------------------

#[test]
fn the_gap_zodbs_repozo_leaves_after_a_same_second_full_and_incremental_fails_deep_verify() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let data_fs = common::fixture("small.fs", d);
    std::fs::create_dir(d.join("repo")).unwrap();
    let theirs_backup = |now: &str, flags: &[&str]| {
        let mut args = flags.to_vec();
        args.extend(["-r", "repo", "-f", s(&data_fs)]);
        repozo_ok(Theirs, d, now, &args);
    };
    let same = stamp(0);
    theirs_backup(&same, &["-BF"]);
    let full_end = std::fs::metadata(&data_fs).unwrap().len();
    zodb::grow(&data_fs, 3, 31);
    theirs_backup(&same, &["-B"]);
    let delta_end = std::fs::metadata(&data_fs).unwrap().len();
    assert!(d.join(format!("repo/{same}.deltafs")).is_file());
    // The chain is the full backup alone (repozo's own selection drops the
    // increment of the same second), but its .index is the increment's.
    plain_verify_passes(d, "repo");
    let msg = verify_fails(d, "repo", &["--deep"]);
    assert!(
        msg.starts_with(&format!(
            "repo/{same}.index differs from the index rebuilt from the chain"
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "it is the index of a Data.fs of {delta_end} bytes, but the chain holds {full_end} bytes"
        )),
        "{msg}"
    );
    // The next -Q backup continues after the dropped increment: a gap.
    zodb::grow(&data_fs, 2, 32);
    theirs_backup(&stamp(1), &["-BQ"]);
    plain_verify_passes(d, "repo");
    for args in [
        &["--deep"][..],
        &["--deep", "-Q"],
        &["--deep", "-D", &stamp(1)],
    ] {
        let msg = verify_fails(d, "repo", args);
        assert!(
            msg.starts_with(&format!(
                "repo/{}.deltafs starts at Data.fs byte {delta_end} according to repo/{same}.dat, \
                 but the previous file of the chain, repo/{same}.fs, ends at byte {full_end}: \
                 bytes {full_end} to {delta_end} are missing from the chain (repo/{same}.dat \
                 records them in {same}.deltafs, which recover does not use).",
                stamp(1)
            )),
            "{args:?}: {msg}"
        );
        assert!(msg.contains("full backup (-F)"), "{msg}");
    }
    // Ours never writes such a chain: it takes the next second.
}

// ---------------------------------------------------------------------------
// -V -D
// ---------------------------------------------------------------------------

#[test]
fn verify_with_a_date_checks_the_chain_recover_would_use_for_that_date() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let data_fs = common::fixture("small.fs", d);
    std::fs::create_dir(d.join("repo")).unwrap();
    let backup = |tool, n, flags: &[&str]| {
        let mut args = flags.to_vec();
        args.extend(["-r", "repo", "-f", s(&data_fs)]);
        repozo_ok(tool, d, &stamp(n), &args);
    };
    // Two chains: 0 (full) + 1, then 2 (full) + 3.
    backup(Theirs, 0, &["-BF"]);
    zodb::grow(&data_fs, 2, 41);
    backup(Ours, 1, &["-B"]);
    zodb::grow(&data_fs, 2, 42);
    backup(Ours, 2, &["-BF", "-z"]);
    zodb::grow(&data_fs, 2, 43);
    backup(Theirs, 3, &["-B"]);
    // Damage the older chain's increment (same size, another md5).
    let older = d.join(format!("repo/{}.deltafs", stamp(1)));
    let mut bytes = std::fs::read(&older).unwrap();
    bytes[30] ^= 0xff;
    std::fs::write(&older, bytes).unwrap();
    plain_verify_passes(d, "repo");
    for date in [stamp(1), "2026-03-01-10-02".to_string()] {
        let msg = verify_fails(d, "repo", &["-D", &date]);
        assert!(
            msg.starts_with(&format!("repo/{}.deltafs has checksum ", stamp(1))),
            "{msg}"
        );
    }
    // As of the full backup alone, the damaged increment (listed in the
    // same .dat, but of a later date) is not part of the state.
    let o = verify(d, "repo", &["-v", "-D", &stamp(0)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("ignored"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(&format!("Verifying repo/{}", stamp(1))));
    let o = verify(d, "repo", &["--deep", "-D", &stamp(0)]);
    assert!(o.status.success(), "{}", stderr(&o));
    for date in [stamp(2), stamp(3)] {
        let o = verify(d, "repo", &["--deep", "-D", &date]);
        assert!(o.status.success(), "{date}: {}", stderr(&o));
    }
    // Dates are validated as recover validates them.
    let msg = verify_fails(d, "repo", &["-D", "2026-02-30"]);
    assert!(msg.contains("is not a date"), "{msg}");
    let msg = verify_fails(d, "repo", &["-D", "2020-01-01"]);
    assert_eq!(msg, "No files in repository before 2020-01-01\n");
}

#[test]
fn deep_is_an_option_of_verify_only_and_matches_by_its_exact_name() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::create_dir(d.join("repo")).unwrap();
    for args in [
        &["-B", "-r", "repo", "-f", "Data.fs", "--deep"][..],
        &["-R", "-r", "repo", "--deep"],
    ] {
        let o = repozo(Ours, d, LATER, args);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).ends_with("\n--deep only applies to -V/--verify\n"),
            "{}",
            stderr(&o)
        );
    }
    let o = repozo(Ours, d, LATER, &["-V", "-r", "repo", "--dee"]);
    assert!(stderr(&o).ends_with("\noption --dee not recognized\n"));
}
