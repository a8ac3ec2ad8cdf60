//! A standby after a pack (issue 24, part 4): `-R --incremental` into a
//! Data.fs that holds the state a pack delta is based on rebuilds it from
//! its own bytes and the delta, instead of a full recover that reads the
//! whole base from the repository.
//!
//! Histories are written by real ZODB (`tests/py/zodbtool.py`: random
//! commits, then `db.pack()`); backups and catch-ups are our binary's.
//! The oracle is the packed Data.fs itself (its committed bytes, which
//! the pack delta stands for) and the repository's `.index`; the rebuilt
//! standby is also opened by ZODB. Which path a run took is read from its
//! `--json` summary (`kind`, `base_bytes_from_standby`,
//! `base_bytes_from_repository`) and its `-v` lines.

use std::collections::BTreeMap;
use std::process::Output;

use serde_json::Value;

use crate::common::{Site, crashed, ok, py, run, stderr, stdout, zodb};

/// The standby, relative to the site.
const OUT: &str = "standby/Data.fs";

/// What `-v` says when the standby path is taken.
const REBUILDING: &str = "rebuilding it from them and that pack delta";

/// A site whose standby saw the first `seen` of `backups` backups of
/// chain A; then ZODB packed the Data.fs and `-B --pack-delta` started
/// chain D with a pack delta based on all of chain A.
struct Packed {
    site: Site,
    /// Chain A's data files, oldest first.
    a: Vec<String>,
    /// The pack delta (chain D's first file).
    delta: String,
    /// `.dat` ends of chain A's files.
    ends: Vec<u64>,
}

fn packed(seed: u64, seen: usize, backups: usize) -> Packed {
    assert!(1 <= seen && seen <= backups);
    let site = Site::grown(40, seed).named(&format!("seed {seed}, standby at A{seen}"));
    std::fs::create_dir(site.path("standby")).unwrap();
    for i in 0..backups {
        if i > 0 {
            zodb::grow(&site.data_fs(), 10, seed * 100 + i as u64);
        }
        backup(&site, &[]);
        if i + 1 == seen {
            let sum = catch_up(&site, &[]);
            assert!(
                ["full", "incremental"].contains(&kind(&sum)),
                "{}: {sum}",
                site.name()
            );
        }
    }
    let a = site.data_files();
    assert_eq!(a.len(), backups);
    let ends = dat_ends(&site, &a[0]);
    let before = std::fs::metadata(site.path(OUT)).unwrap().len();
    assert_eq!(before, ends[seen - 1], "{}: the standby", site.name());
    zodb::pack(&site.data_fs());
    assert!(
        std::fs::metadata(site.data_fs()).unwrap().len() < *ends.last().unwrap(),
        "{}: the pack dropped nothing",
        site.name()
    );
    backup(&site, &["--pack-delta"]);
    let delta = site.data_files().pop().unwrap();
    assert!(delta.ends_with(".fsz") && !a.contains(&delta));
    assert!(
        site.read(&format!("repo/{delta}"))
            .starts_with(b"repozo-rs pack-delta 1\n"),
        "{}: {delta} is no pack delta",
        site.name()
    );
    Packed {
        site,
        a,
        delta,
        ends,
    }
}

/// `-BQ` into `repo/` (with `extra`), which must succeed.
fn backup(site: &Site, extra: &[&str]) {
    let mut args = vec!["-BQ", "-r", "repo", "-f", "Data.fs"];
    args.extend_from_slice(extra);
    ok(run(site.ours(&args)));
}

/// The `.dat` ends of the chain whose full backup is `full`.
fn dat_ends(site: &Site, full: &str) -> Vec<u64> {
    let stem = full.split_once('.').unwrap().0;
    String::from_utf8(site.read(&format!("repo/{stem}.dat")))
        .unwrap()
        .lines()
        .map(|l| l.split(' ').nth(2).unwrap().parse().unwrap())
        .collect()
}

/// `-R --incremental -v --json` into the standby (with `flags`).
fn catch_up_run(site: &Site, flags: &[&str]) -> Output {
    let mut args = vec![
        "-R",
        "-r",
        "repo",
        "-o",
        OUT,
        "--incremental",
        "-v",
        "--json",
    ];
    args.extend_from_slice(flags);
    run(site.ours(&args))
}

/// The `summary` object of a `--json` run.
fn summary(o: &Output) -> Value {
    stdout(o)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message_type"] == "summary")
        .unwrap_or_else(|| panic!("no summary:\n{}\n{}", stdout(o), stderr(o)))
}

/// A catch-up that must succeed: its summary (stderr in `_stderr`).
fn catch_up(site: &Site, flags: &[&str]) -> Value {
    let o = catch_up_run(site, flags);
    assert!(
        o.status.success(),
        "{}: --incremental {flags:?} failed: {}",
        site.name(),
        stderr(&o)
    );
    let mut sum = summary(&o);
    sum["_stderr"] = stderr(&o).into();
    sum
}

fn kind(sum: &Value) -> &str {
    sum["kind"].as_str().unwrap_or_default()
}

fn num(sum: &Value, key: &str) -> u64 {
    sum[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {sum}"))
}

/// The standby holds the packed Data.fs (its committed bytes) and the
/// `.index` of the newest backup, and ZODB opens it at that size.
fn assert_standby_is_current(site: &Site, what: &str) {
    let want = site.committed();
    let got = site.read(OUT);
    assert!(
        got == want,
        "{what}: the standby ({} bytes) is not the Data.fs ({} bytes)",
        got.len(),
        want.len()
    );
    let newest = site.data_files().pop().unwrap();
    let stem = newest.split_once('.').unwrap().0;
    assert!(
        site.read(&format!("{OUT}.index")) == site.read(&format!("repo/{stem}.index")),
        "{what}: the standby's .index is not {stem}.index"
    );
    assert!(
        site.path(&format!("{OUT}.repozo-state")).exists(),
        "{what}: no state file"
    );
    assert!(
        !site.path(&format!("{OUT}.part")).exists(),
        "{what}: .part left"
    );
    let copy = tempfile::tempdir().unwrap();
    let fs = copy.path().join("Data.fs");
    std::fs::copy(site.path(OUT), &fs).unwrap();
    std::fs::copy(
        site.path(&format!("{OUT}.index")),
        copy.path().join("Data.fs.index"),
    )
    .unwrap();
    let size = py::zodbtool_stdout(&["getsize", fs.to_str().unwrap()]);
    assert_eq!(size, want.len().to_string(), "{what}: ZODB's getSize");
}

#[test]
fn a_standby_of_the_state_before_a_pack_is_rebuilt_from_its_own_bytes_and_the_delta() {
    for (seed, quick) in [(1, false), (2, true)] {
        let p = packed(seed, 3, 3);
        let site = &p.site;
        let what = format!("{} -Q {quick}", site.name());
        let flags: &[&str] = if quick { &["-Q"] } else { &[] };
        let sum = catch_up(site, flags);
        assert_eq!(kind(&sum), "rebuilt", "{what}: {sum}");
        let base = *p.ends.last().unwrap();
        assert_eq!(num(&sum, "base_bytes_from_standby"), base, "{what}");
        assert_eq!(num(&sum, "base_bytes_from_repository"), 0, "{what}");
        let err = sum["_stderr"].as_str().unwrap();
        assert!(err.contains(REBUILDING), "{what}: {err}");
        let proved = if quick {
            "(proved by the state file)"
        } else {
            "(proved by md5)"
        };
        assert!(
            err.contains(&format!(
                "the first 3 files of the state repo/{} is based on {proved}",
                p.delta
            )),
            "{what}: {err}"
        );
        assert!(
            err.contains(&format!(
                "{OUT}: rebuilt ({} bytes) from its own first {base} bytes and the pack delta",
                site.committed().len()
            )),
            "{what}: {err}"
        );
        assert_standby_is_current(site, &what);
        // The same bytes as a recover from the repository.
        ok(run(site.ours(&["-R", "-r", "repo", "-o", "full.fs"])));
        assert!(site.read("full.fs") == site.read(OUT), "{what}: -R differs");
        // And the standby is now simply current.
        let sum = catch_up(site, &["-Q"]);
        assert_eq!(kind(&sum), "none", "{what}: {sum}");
    }
}

#[test]
fn the_rebuild_reads_from_the_repository_only_the_base_files_the_standby_lacks() {
    let p = packed(3, 2, 4);
    let site = &p.site;
    // The standby holds A0 and A1. With every byte of them inverted in
    // the repository (same sizes, so nothing notices before reading them),
    // a recover from the repository rebuilds wrong bytes and fails its
    // check; the standby's rebuild, which does not read them, succeeds.
    for f in &p.a[..2] {
        let path = site.path(&format!("repo/{f}"));
        let bytes: Vec<u8> = std::fs::read(&path).unwrap().iter().map(|b| !b).collect();
        std::fs::write(&path, bytes).unwrap();
    }
    let o = run(site.ours(&["-R", "-r", "repo", "-o", "full.fs"]));
    assert!(
        !o.status.success(),
        "-R from the inverted A0 and A1 succeeded"
    );
    assert!(stderr(&o).contains(&p.delta), "{}", stderr(&o));
    assert!(!site.path("full.fs").exists());
    let standby = site.read(OUT);
    // First proved by the state file the catch-up to A1 wrote, then, from
    // the same bytes put back, by md5.
    for flags in [&["-Q"][..], &[]] {
        let what = format!("standby at A1 of A0..A3, A0 and A1 inverted, {flags:?}");
        if flags.is_empty() {
            std::fs::write(site.path(OUT), &standby).unwrap();
        }
        let sum = catch_up(site, flags);
        assert_eq!(kind(&sum), "rebuilt", "{what}: {sum}");
        assert_eq!(num(&sum, "base_bytes_from_standby"), p.ends[1], "{what}");
        assert_eq!(
            num(&sum, "base_bytes_from_repository"),
            p.ends[3] - p.ends[1],
            "{what}"
        );
        let err = sum["_stderr"].as_str().unwrap();
        let proved = if flags.is_empty() {
            "md5"
        } else {
            "the state file"
        };
        assert!(
            err.contains(&format!(
                "the first 2 files of the state repo/{} is based on (proved by {proved})",
                p.delta
            )) && err.contains(&format!(
                "with the {} bytes of the 2 files after them from the repository",
                p.ends[3] - p.ends[1]
            )),
            "{what}: {err}"
        );
        assert_standby_is_current(site, &what);
    }
}

#[test]
fn a_standby_with_a_changed_byte_is_recovered_in_full_and_exactly_or_refused() {
    let p = packed(4, 3, 3);
    let site = &p.site;
    let mut bytes = site.read(OUT);
    let at = (p.ends[0] / 2) as usize;
    bytes[at] ^= 0x20;
    std::fs::write(site.path(OUT), &bytes).unwrap();
    let index_before = site.read(&format!("{OUT}.index"));
    // --no-fallback: refused, nothing touched.
    for flags in [&["--no-fallback"][..], &["--no-fallback", "-Q"]] {
        let o = catch_up_run(site, flags);
        assert_eq!(o.status.code(), Some(1), "{flags:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("cannot recover incrementally"),
            "{flags:?}: {}",
            stderr(&o)
        );
        assert!(site.read(OUT) == bytes, "{flags:?}: the standby changed");
        assert!(site.read(&format!("{OUT}.index")) == index_before);
    }
    let sum = catch_up(site, &[]);
    assert_eq!(kind(&sum), "full", "{sum}");
    let err = sum["_stderr"].as_str().unwrap();
    assert!(
        err.contains(&format!(
            "the output cannot be rebuilt from its own bytes with the pack delta repo/{}: its \
             bytes 0..{} differ from repo/{}",
            p.delta, p.ends[0], p.a[0]
        )),
        "{err}"
    );
    assert!(!err.contains(REBUILDING), "{err}");
    assert_standby_is_current(site, "after the full recover");
}

#[test]
fn after_the_rebuild_incrementals_append_and_the_next_pack_rebuilds_again() {
    let p = packed(5, 2, 2);
    let site = &p.site;
    assert_eq!(kind(&catch_up(site, &[])), "rebuilt");
    for round in 0..2 {
        zodb::grow(&site.data_fs(), 6, 500 + round);
        backup(site, &["--pack-delta"]); // an incremental: nothing was packed
        let sum = catch_up(site, &["-Q"]);
        assert_eq!(kind(&sum), "incremental", "round {round}: {sum}");
        assert!(
            sum["outcome"].as_str().unwrap().ends_with("from 1 file"),
            "round {round}: {sum}"
        );
        assert_standby_is_current(site, &format!("round {round}"));
    }
    // A second pack: its delta is based on chain D, which starts with the
    // first delta; the standby holds all of chain D.
    let d_ends = dat_ends(site, &p.delta);
    assert_eq!(d_ends.len(), 3);
    zodb::pack(&site.data_fs());
    backup(site, &["--pack-delta"]);
    let second = site.data_files().pop().unwrap();
    assert_ne!(second, p.delta);
    let sum = catch_up(site, &[]);
    assert_eq!(kind(&sum), "rebuilt", "{sum}");
    assert_eq!(num(&sum, "base_bytes_from_standby"), d_ends[2]);
    let err = sum["_stderr"].as_str().unwrap();
    assert!(
        err.contains(&format!("the state repo/{second} is based on")),
        "{err}"
    );
    assert_standby_is_current(site, "after the second pack");
}

#[test]
fn a_crash_at_every_step_of_the_rebuild_leaves_the_old_or_the_new_standby() {
    let p = packed(6, 2, 3);
    let site = &p.site;
    let keep = ["", ".index", ".repozo-state"].map(|s| {
        let path = site.path(&format!("{OUT}{s}"));
        (path.clone(), std::fs::read(&path).unwrap())
    });
    let old = keep[0].1.clone();
    let new = site.committed();
    let steps = [
        "incremental:locked",
        "incremental:proved",
        "recover:data-copied",
        "recover:output-renamed",
    ];
    let mut reached = BTreeMap::new();
    for step in steps {
        for (path, bytes) in &keep {
            std::fs::write(path, bytes).unwrap();
        }
        let mut c = site.ours(&["-R", "-r", "repo", "-o", OUT, "--incremental", "-v"]);
        c.env("REPOZO_FAILPOINT", step);
        let o = run(c);
        assert!(crashed(&o), "{step}: no crash: {}", stderr(&o));
        reached.insert(step, ());
        let now = site.read(OUT);
        if step == "recover:output-renamed" {
            assert!(
                now == new,
                "{step}: the renamed standby is not the packed Data.fs"
            );
        } else {
            assert!(now == old, "{step}: the standby changed before the rename");
        }
        if step.starts_with("recover:") {
            assert!(stderr(&o).contains(REBUILDING), "{step}: {}", stderr(&o));
        }
        // The run again completes it.
        let sum = catch_up(site, &[]);
        let want = if step == "recover:output-renamed" {
            "none"
        } else {
            "rebuilt"
        };
        assert_eq!(kind(&sum), want, "{step}: rerun {sum}");
        assert_standby_is_current(site, &format!("{step}: rerun"));
    }
    assert_eq!(reached.len(), steps.len());
}
