//! `--list` and retention (`--keep`, `--keep-daily/weekly/monthly`,
//! `--dry-run`) on a repository written over two months by our binary and
//! by ZODB's repozo, with stray files that must survive. After every
//! retention, both tools must still recover every restore point left to
//! the same bytes, and `-V` must pass with both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use crate::common::Tool::{self, Ours, Theirs};
use crate::common::{Site, is_data_file, listing, ok, run, stderr, transaction_ends, zodb};

/// The backups of the test repository: stamp, tool, flags. Each one is
/// taken after the Data.fs grew by two transactions. Chains: A (Aug, week
/// 32), B (ZODB's, Aug, week 34), C (Sep, week 37), D (Sep, week 38, two
/// backups on 09-15, one of them ZODB's).
const HISTORY: &[(&str, Tool, &str)] = &[
    ("2026-08-03-01-00-00", Ours, "-BF"),
    ("2026-08-04-01-00-00", Ours, "-B"),
    ("2026-08-20-01-00-00", Theirs, "-BF"),
    ("2026-08-21-01-00-00", Theirs, "-Bz"),
    ("2026-09-07-01-00-00", Ours, "-BFz"),
    ("2026-09-08-01-00-00", Ours, "-B"),
    ("2026-09-09-01-00-00", Ours, "-Bz"),
    ("2026-09-14-01-00-00", Ours, "-BF"),
    ("2026-09-15-02-00-00", Ours, "-B"),
    ("2026-09-15-05-00-00", Theirs, "-B"),
    ("2026-09-16-01-00-00", Ours, "-BQ"),
];

const A: &str = "2026-08-03-01-00-00";
const B: &str = "2026-08-20-01-00-00";
const C: &str = "2026-09-07-01-00-00";
const D: &str = "2026-09-14-01-00-00";

/// Files that are not ours and must never be touched.
const STRAYS: &[&str] = &["notes.txt", "tmp.tmp", "unrelated.dat"];

/// A Data.fs grown once by ZODB, and the end of each of its transactions.
fn source() -> &'static (Vec<u8>, Vec<usize>) {
    static SOURCE: OnceLock<(Vec<u8>, Vec<usize>)> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grown.fs");
        zodb::grow(&path, 30, 11);
        let data = std::fs::read(&path).unwrap();
        let ends = transaction_ends(&data);
        assert_eq!(
            ends.last(),
            Some(&data.len()),
            "the grown Data.fs does not end on a transaction"
        );
        assert!(
            ends.len() > 2 * HISTORY.len(),
            "{} transactions",
            ends.len()
        );
        (data, ends)
    })
}

/// The Data.fs state each backup of [`HISTORY`] saw, by stamp.
fn state_at(stamp: &str) -> &'static [u8] {
    let (data, ends) = source();
    let i = HISTORY.iter().position(|(s, _, _)| *s == stamp).unwrap();
    &data[..ends[2 * i + 1]]
}

/// The list and retention tests' own steps on a [`Site`].
impl Site {
    /// A site with `Data.fs` (its final state) and `repo`, a copy of the
    /// repository [`HISTORY`] built once per test run, plus [`STRAYS`].
    fn with_history() -> Site {
        // Built once per test process, kept in memory, written out for
        // each test.
        static TEMPLATE: OnceLock<Vec<(PathBuf, Vec<u8>)>> = OnceLock::new();
        let template = TEMPLATE.get_or_init(|| {
            let scratch = build_history();
            let mut files = Vec::new();
            for sub in ["", "repo"] {
                for entry in std::fs::read_dir(scratch.path().join(sub)).unwrap() {
                    let entry = entry.unwrap();
                    if entry.file_type().unwrap().is_file() {
                        let rel = Path::new(sub).join(entry.file_name());
                        files.push((rel, std::fs::read(entry.path()).unwrap()));
                    }
                }
            }
            files
        });
        let site = Site::new();
        for (rel, bytes) in template {
            std::fs::write(site.dir().join(rel), bytes).unwrap();
        }
        site
    }

    /// Every file of the repository with its bytes.
    fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        listing(&self.repo())
            .into_iter()
            .map(|n| {
                let b = std::fs::read(self.repo().join(&n)).unwrap();
                (n, b)
            })
            .collect()
    }

    /// `-R -D <date>` by `tool` into a fresh file; the bytes.
    fn recover(&self, tool: Tool, date: &str) -> Vec<u8> {
        let out = self.path(&format!("{tool:?}-{date}.fs"));
        let _ = std::fs::remove_file(&out);
        let args = ["-R", "-r", "repo", "-D", date, "-o", out.to_str().unwrap()];
        let c = match tool {
            Ours => self.ours(&args),
            Theirs => self.theirs(&args),
        };
        ok(run(c));
        std::fs::read(&out).unwrap()
    }

    /// Both tools recover the latest state to the Data.fs's bytes and
    /// both tools' `-V` pass.
    fn newest_recovers_and_verifies_with_both_tools(&self) {
        let newest = std::fs::read(self.path("Data.fs")).unwrap();
        for tool in [Ours, Theirs] {
            let now = "2030-01-01-00-00-00";
            assert!(
                self.recover(tool, now) == newest,
                "{tool:?} recovered other bytes than the newest state"
            );
        }
        ok(run(self.ours(&["-V", "-r", "repo"])));
        ok(run(self.theirs(&["-V", "-r", "repo"])));
    }

    /// Every restore point still in the repository recovers, by `tools`,
    /// to the state it was taken of.
    fn every_restore_point_recovers(&self, tools: &[Tool], what: &str) {
        for name in listing(&self.repo()) {
            if !is_data_file(&name) {
                continue;
            }
            let stamp = &name[..19];
            for &tool in tools {
                assert!(
                    self.recover(tool, stamp) == state_at(stamp),
                    "{what}: {tool:?} -R -D {stamp} gives other bytes than that backup's state"
                );
            }
        }
    }

    fn strays_survive(&self) {
        for s in STRAYS {
            assert_eq!(
                std::fs::read(self.repo().join(s)).unwrap(),
                format!("not ours: {s}").as_bytes(),
                "{s} was changed"
            );
        }
    }
}

fn build_history() -> tempfile::TempDir {
    let (data, ends) = source();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("repo")).unwrap();
    for (i, (stamp, tool, flags)) in HISTORY.iter().enumerate() {
        std::fs::write(dir.path().join("Data.fs"), &data[..ends[2 * i + 1]]).unwrap();
        let mut c = tool.command();
        c.current_dir(dir.path())
            .args([flags, "-r", "repo", "-f", "Data.fs"])
            .env("REPOZO_TEST_NOW", stamp);
        ok(run(c));
    }
    for s in STRAYS {
        std::fs::write(dir.path().join("repo").join(s), format!("not ours: {s}")).unwrap();
    }
    dir
}

/// The data files of the chains starting at `chains`, as [`HISTORY`]
/// wrote them.
fn data_files_of(chains: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = "";
    for (stamp, _, flags) in HISTORY {
        let full = flags.contains('F');
        if full {
            current = stamp;
        }
        if chains.contains(&current) {
            let ext = match (full, flags.contains('z')) {
                (true, false) => "fs",
                (true, true) => "fsz",
                (false, false) => "deltafs",
                (false, true) => "deltafsz",
            };
            out.push(format!("{stamp}.{ext}"));
        }
    }
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

// ---------------------------------------------------------------------
// --list

#[test]
fn the_text_list_shows_every_restore_point_by_chain_oldest_first() {
    let site = Site::with_history();
    let o = ok(run(site.ours(&["--list", "-r", "repo"])));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].trim_start().starts_with("stamp"), "{text}");
    let headers: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("chain "))
        .copied()
        .collect();
    assert_eq!(headers.len(), 4, "{text}");
    for (h, (stamp, n)) in headers.iter().zip([(A, 2), (B, 2), (C, 3), (D, 4)]) {
        let size: u64 = data_files_of(&[stamp])
            .iter()
            .map(|f| std::fs::metadata(site.repo().join(f)).unwrap().len())
            .sum();
        assert_eq!(
            *h,
            format!("chain {stamp}: {n} restore points, {size} bytes stored")
        );
    }
    let rows: Vec<Vec<&str>> = lines
        .iter()
        .filter(|l| l.starts_with("  2026-"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), HISTORY.len(), "{text}");
    for (row, (stamp, tool, flags)) in rows.iter().zip(HISTORY) {
        let name = site
            .data_files()
            .into_iter()
            .find(|n| n.starts_with(stamp))
            .unwrap();
        let stored = std::fs::metadata(site.repo().join(&name)).unwrap().len();
        let kind = if flags.contains('F') {
            "full"
        } else {
            "incremental"
        };
        let gzip = if flags.contains('z') { "yes" } else { "no" };
        let end = state_at(stamp).len().to_string();
        assert_eq!(
            row,
            &vec![
                *stamp,
                kind,
                gzip,
                &stored.to_string(),
                &end,
                "yes",
                // Only our backups write a sidecar.
                if *tool == Ours { "yes" } else { "no" }
            ],
            "{text}"
        );
    }
    let total: u64 = site
        .data_files()
        .iter()
        .map(|f| std::fs::metadata(site.repo().join(f)).unwrap().len())
        .sum();
    assert_eq!(
        *lines.last().unwrap(),
        format!("4 chains, 11 restore points, {total} bytes stored")
    );
    assert!(!text.contains('!'), "no problems expected: {text}");
    assert!(o.stderr.is_empty());
}

#[test]
fn the_json_list_has_every_field_of_every_restore_point_and_a_summary() {
    let site = Site::with_history();
    let o = ok(run(site.ours(&["--list", "--json", "-r", "repo"])));
    let values: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(values.len(), HISTORY.len() + 1);
    let mut chain = "";
    let mut total = 0;
    for (v, (stamp, tool, flags)) in values.iter().zip(HISTORY) {
        let full = flags.contains('F');
        if full {
            chain = stamp;
        }
        let name = site
            .data_files()
            .into_iter()
            .find(|n| n.starts_with(stamp))
            .unwrap();
        let stored = std::fs::metadata(site.repo().join(&name)).unwrap().len();
        total += stored;
        let expected = serde_json::json!({
            "message_type": "restore_point",
            "chain": chain,
            "stamp": stamp,
            "kind": if full { "full" } else { "incremental" },
            "gzip": flags.contains('z'),
            "file": format!("repo/{name}"),
            "stored_size": stored,
            "end": state_at(stamp).len(),
            "index": true,
            "blake3": *tool == Ours,
            "blobs": null,
        });
        assert_eq!(v, &expected);
    }
    assert_eq!(
        values.last().unwrap(),
        &serde_json::json!({
            "message_type": "summary",
            "operation": "list",
            "chains": 4,
            "restore_points": 11,
            "stored_bytes": total,
        })
    );
}

#[test]
fn the_list_flags_unlisted_and_missing_files_and_a_missing_index() {
    let site = Site::with_history();
    let repo = site.repo();
    // D's last incremental loses its .dat line, C's middle file is gone,
    // and B's incremental has no .index.
    let d_dat = repo.join(format!("{D}.dat"));
    let text = std::fs::read_to_string(&d_dat).unwrap();
    let kept: Vec<&str> = text.lines().take(3).collect();
    std::fs::write(&d_dat, kept.join("\n") + "\n").unwrap();
    std::fs::remove_file(repo.join("2026-09-08-01-00-00.deltafs")).unwrap();
    std::fs::remove_file(repo.join("2026-08-21-01-00-00.index")).unwrap();
    // A path needing JSON escapes: the repository as given.
    let odd = site.path("re\"po\\x");
    std::fs::rename(&repo, &odd).unwrap();

    let o = ok(run(site.ours(&["--list", "-r", "re\"po\\x"])));
    let text = stdout(&o);
    assert!(
        text.contains("  ! 2026-09-16-01-00-00.deltafs is not listed in 2026-09-14-01-00-00.dat\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "  ! 2026-09-07-01-00-00.dat lists 2026-09-08-01-00-00.deltafs, which is missing\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("\n! 2026-09-08-01-00-00.index belongs to no backup file\n"),
        "{text}"
    );
    let row = |stamp: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("  {stamp}")))
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("2026-09-16-01-00-00")[4], "?");
    assert_eq!(row("2026-08-21-01-00-00")[5], "no");

    let o = ok(run(site.ours(&["--list", "--json", "-r", "re\"po\\x"])));
    let values: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let point = |stamp: &str| {
        values
            .iter()
            .find(|v| v["message_type"] == "restore_point" && v["stamp"] == stamp)
            .unwrap()
    };
    assert_eq!(point("2026-09-16-01-00-00")["end"], serde_json::Value::Null);
    assert_eq!(point("2026-08-21-01-00-00")["index"], false);
    assert_eq!(
        point("2026-09-09-01-00-00")["file"],
        "re\"po\\x/2026-09-09-01-00-00.deltafsz"
    );
    let warnings: Vec<&serde_json::Value> = values
        .iter()
        .filter(|v| v["message_type"] == "warning")
        .collect();
    // (The sidecar of the missing file is an orphan too.)
    assert_eq!(warnings.len(), 4, "{warnings:?}");
    assert_eq!(warnings[0]["chain"], C);
    assert_eq!(warnings[1]["chain"], D);
    // The sidecar and .index of the removed file are left without it.
    assert_eq!(warnings[2]["chain"], serde_json::Value::Null);
    assert_eq!(
        warnings[2]["message"],
        "2026-09-08-01-00-00.blake3 belongs to no backup file"
    );
    assert_eq!(
        warnings[3]["message"],
        "2026-09-08-01-00-00.index belongs to no backup file"
    );
    assert_eq!(values.last().unwrap()["restore_points"], 10);
}

#[test]
fn listing_a_missing_repository_exits_10_like_any_mode_and_an_empty_one_lists_nothing() {
    let site = Site::with_history();
    let o = run(site.ours(&["--list", "-r", "nope"]));
    assert_eq!(o.status.code(), Some(10));
    assert_eq!(
        stderr(&o),
        "repository nope does not exist: check -r, or create the directory first (mkdir -p nope); \
         repozo never creates it\n"
    );
    assert!(o.stdout.is_empty());
    std::fs::create_dir(site.path("empty")).unwrap();
    let o = ok(run(site.ours(&["--list", "-r", "empty"])));
    assert_eq!(stdout(&o), "0 chains, 0 restore points, 0 bytes stored\n");
    let o = ok(run(site.ours(&["--list", "--json", "-r", "empty"])));
    assert_eq!(
        stdout(&o),
        "{\"message_type\":\"summary\",\"operation\":\"list\",\"chains\":0,\
         \"restore_points\":0,\"stored_bytes\":0}\n"
    );
    let o = run(site.ours(&["-r", "nope", "--keep=1"]));
    assert_eq!(o.status.code(), Some(10));
    assert_eq!(
        stderr(&o),
        "repository nope does not exist: check -r, or create the directory first (mkdir -p nope); \
         repozo never creates it\n"
    );
}

// ---------------------------------------------------------------------
// Retention

/// Runs a retention alone with `-v`; asserts what is left and that one
/// `removing` line was printed per removed file, plus the total.
fn retain_and_check(site: &Site, args: &[&str], kept_chains: &[&str]) {
    let before = site.snapshot();
    let mut full_args = vec!["-v", "-r", "repo"];
    full_args.extend_from_slice(args);
    let o = ok(run(site.ours(&full_args)));
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    let after = site.snapshot();
    let removed: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), removed.len() + 1, "{err}");
    for name in &removed {
        assert!(
            lines.iter().any(
                |l| l.starts_with(&format!("removing expired backup file repo/{name} (chain "))
            ),
            "{name} removed without a line: {err}"
        );
    }
    let bytes: usize = removed.iter().map(|n| before[*n].len()).sum();
    assert!(
        lines.last().unwrap().starts_with(&format!(
            "removed {} files ({bytes} bytes) of {} expired chain",
            removed.len(),
            4 - kept_chains.len()
        )),
        "{err}"
    );
    assert_eq!(site.data_files(), data_files_of(kept_chains), "{args:?}");
    // Every .dat and .index left belongs to a data file left, and kept
    // chains are byte for byte as they were.
    for (name, bytes) in &after {
        if STRAYS.contains(&name.as_str()) {
            continue;
        }
        assert!(
            site.data_files().iter().any(|d| d[..19] == name[..19]),
            "{name} was left behind"
        );
        assert_eq!(&before[name], bytes, "{name} changed");
    }
    site.strays_survive();
    site.newest_recovers_and_verifies_with_both_tools();
    site.every_restore_point_recovers(&[Ours, Theirs], &format!("{args:?}"));
}

#[test]
fn keep_n_removes_the_older_chains_whole_and_both_tools_still_recover_and_verify() {
    retain_and_check(&Site::with_history(), &["--keep=2"], &[C, D]);
}

#[test]
fn keep_daily_keeps_the_newest_point_of_each_of_the_last_days_that_have_backups() {
    // Days with backups, newest first: 09-16, 09-15, 09-14 (all D), then
    // 09-09 (C): the fourth day keeps C.
    retain_and_check(&Site::with_history(), &["--keep-daily=4"], &[C, D]);
    retain_and_check(&Site::with_history(), &["--keep-daily", "3"], &[D]);
}

#[test]
fn keep_weekly_counts_iso_weeks_that_have_backups() {
    // Weeks 38 (D), 37 (C), 34 (B); A's week 32 is the fourth.
    retain_and_check(&Site::with_history(), &["--keep-weekly=3"], &[B, C, D]);
}

#[test]
fn keep_monthly_can_remove_a_chain_between_two_kept_ones() {
    // September's newest point is D's, August's is B's: C, between them,
    // goes, and every restore point of B and D still recovers.
    retain_and_check(&Site::with_history(), &["--keep-monthly=2"], &[B, D]);
}

#[test]
fn rules_add_up_and_a_chain_is_kept_when_any_rule_keeps_one_of_its_points() {
    retain_and_check(
        &Site::with_history(),
        &["--keep=1", "--keep-monthly=2", "--keep-daily=4"],
        &[B, C, D],
    );
}

#[test]
fn a_second_run_of_the_same_rules_removes_nothing() {
    let site = Site::with_history();
    ok(run(site.ours(&["-r", "repo", "--keep=2"])));
    let before = site.snapshot();
    let o = ok(run(site.ours(&["-r", "repo", "--keep=2"])));
    assert!(o.stderr.is_empty() && o.stdout.is_empty(), "{}", stderr(&o));
    assert_eq!(site.snapshot(), before);
    let o = ok(run(site.ours(&["-v", "-r", "repo", "--keep=2"])));
    assert_eq!(
        stderr(&o),
        "removed 0 files (0 bytes) of 0 expired chains; kept 2 chains\n"
    );
}

#[test]
fn a_dry_run_says_what_would_go_and_why_and_leaves_the_repository_byte_identical() {
    let site = Site::with_history();
    let before = site.snapshot();
    let o = ok(run(site.ours(&[
        "-r",
        "repo",
        "--keep-monthly=2",
        "--dry-run",
        "-v",
    ])));
    assert_eq!(site.snapshot(), before);
    let text = stdout(&o);
    let expected_head = [
        format!("remove chain {A} (2 data files): no rule keeps it"),
        "  would remove repo/2026-08-04-01-00-00.blake3 (".into(),
        "  would remove repo/2026-08-04-01-00-00.index (".into(),
        "  would remove repo/2026-08-04-01-00-00.deltafs (".into(),
        format!("  would remove repo/{A}.blake3 ("),
        format!("  would remove repo/{A}.index ("),
        format!("  would remove repo/{A}.fs ("),
        format!("  would remove repo/{A}.dat ("),
        format!(
            "keep   chain {B} (2 data files): 2026-08-21-01-00-00 is the newest of month 2026-08 \
             (--keep-monthly=2)"
        ),
        format!("remove chain {C} (3 data files): no rule keeps it"),
    ];
    let lines: Vec<&str> = text.lines().collect();
    for (line, want) in lines.iter().zip(&expected_head) {
        assert!(
            line.starts_with(want.as_str()),
            "{line:?} vs {want:?}\n{text}"
        );
    }
    assert!(
        text.contains(&format!(
            "keep   chain {D} (4 data files): the newest chain; 2026-09-16-01-00-00 is the newest \
             of month 2026-09 (--keep-monthly=2)\n"
        )),
        "{text}"
    );
    let would: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("  would remove "))
        .copied()
        .collect();
    // A: 2 data files, their sidecars and .index, its .dat; C: 3 such.
    assert_eq!(would.len(), 7 + 10, "{text}");
    for l in &would {
        // The size printed is the file's.
        let (path, size) = l["  would remove ".len()..].split_once(" (").unwrap();
        let size: usize = size.trim_end_matches(" bytes)").parse().unwrap();
        assert_eq!(before[&path["repo/".len()..]].len(), size, "{l}");
    }
    let bytes: usize = would
        .iter()
        .map(|l| &l["  would remove repo/".len()..l.find(" (").unwrap()])
        .map(|n| before[n].len())
        .sum();
    assert_eq!(
        *lines.last().unwrap(),
        format!(
            "dry run: would remove 17 files ({bytes} bytes) of 2 expired chains; keeping 2 chains"
        )
    );
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn a_backup_with_keep_removes_old_chains_only_after_the_new_backup_is_written() {
    let site = Site::with_history();
    // The Data.fs grows by a transaction; a forced full starts chain E.
    let (data, ends) = source();
    let n = 2 * HISTORY.len() + 1;
    std::fs::write(site.path("Data.fs"), &data[..ends[n]]).unwrap();
    let now = "2026-10-05-01-00-00";
    let o = ok(run(
        site.ours_at(now, &["-BF", "-r", "repo", "-f", "Data.fs", "--keep=2"])
    ));
    assert!(o.stdout.is_empty());
    // A (7 files, 2 of them sidecars), B (5, ZODB's: none) and C (10, 3)
    // go; D and the new chain stay.
    assert!(
        stderr(&o).starts_with("removed 22 files ("),
        "{}",
        stderr(&o)
    );
    let mut expected = data_files_of(&[D]);
    expected.push(format!("{now}.fs"));
    assert_eq!(site.data_files(), expected);
    site.strays_survive();
    site.newest_recovers_and_verifies_with_both_tools();

    // Nothing to back up: retention still runs (a dry run here), after it.
    let before = site.snapshot();
    let o = ok(run(site.ours_at(
        "2026-10-06-01-00-00",
        &["-B", "-r", "repo", "-f", "Data.fs", "--keep=1", "--dry-run"],
    )));
    assert_eq!(site.snapshot(), before);
    assert!(
        stdout(&o).contains("\ndry run: would remove 12 files ("),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_failed_backup_applies_no_retention() {
    let site = Site::with_history();
    let before = site.snapshot();
    let o = run(site.ours_at(
        "2026-10-05-01-00-00",
        &["-B", "-r", "repo", "-f", "missing.fs", "--keep=1"],
    ));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "[Errno 2] No such file or directory: 'missing.fs'\n"
    );
    assert_eq!(site.snapshot(), before);
}

#[test]
fn a_retention_run_waits_for_the_repository_lock_and_gives_up_with_exit_11() {
    let site = Site::with_history();
    let before = site.snapshot();
    let dir = std::fs::File::open(site.repo()).unwrap();
    dir.lock().unwrap();
    let mut c = site.ours(&["-r", "repo", "--keep=1"]);
    c.env("REPOZO_LOCK_WAIT", "0");
    let o = run(c);
    assert_eq!(o.status.code(), Some(11), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("repository repo is locked"),
        "{}",
        stderr(&o)
    );
    assert_eq!(site.snapshot(), before);
    // A dry run takes the lock too: it reports what a run would do now.
    let mut c = site.ours(&["-r", "repo", "--keep=1", "--dry-run"]);
    c.env("REPOZO_LOCK_WAIT", "0");
    assert_eq!(run(c).status.code(), Some(11));
    drop(dir);
    ok(run(site.ours(&["-r", "repo", "--keep=1"])));
    assert_eq!(site.data_files(), data_files_of(&[D]));
}

#[test]
fn a_crash_after_any_removal_leaves_every_remaining_restore_point_recoverable() {
    // --keep-monthly=2 removes A and C, C lying between kept chains: were
    // C's full removed before its incrementals, these would be recovered
    // on top of B's chain.
    let site = Site::with_history();
    let mut crashes = 0;
    loop {
        let mut c = site.ours(&["-r", "repo", "--keep-monthly=2"]);
        c.env("REPOZO_FAILPOINT", "retain:removed-one");
        let o = run(c);
        if o.status.success() {
            break;
        }
        use std::os::unix::process::ExitStatusExt;
        assert!(o.status.signal().is_some(), "{}", stderr(&o));
        crashes += 1;
        // Ours at every crash, ZODB's every third (it is slower).
        let tools: &[Tool] = if crashes % 3 == 0 {
            &[Ours, Theirs]
        } else {
            &[Ours]
        };
        site.every_restore_point_recovers(tools, &format!("after crash {crashes}"));
        assert!(crashes < 50, "the retention never finishes");
    }
    assert_eq!(crashes, 17);
    assert_eq!(site.data_files(), data_files_of(&[B, D]));
    site.strays_survive();
    site.newest_recovers_and_verifies_with_both_tools();
    site.every_restore_point_recovers(&[Theirs], "after the last run");
}

// ---------------------------------------------------------------------
// Usage errors

#[test]
fn bad_values_and_combinations_are_usage_errors_that_change_nothing() {
    let site = Site::with_history();
    let before = site.snapshot();
    let cases: &[(&[&str], &str)] = &[
        (
            &["-r", "repo", "--keep=0"],
            "--keep takes a positive whole number, not \"0\"",
        ),
        (
            &["-r", "repo", "--keep-daily=-2"],
            "--keep-daily takes a positive whole number, not \"-2\"",
        ),
        (
            &["-r", "repo", "--keep-weekly=two"],
            "--keep-weekly takes a positive whole number, not \"two\"",
        ),
        (
            &["-r", "repo", "--keep-monthly="],
            "--keep-monthly takes a positive whole number, not \"\"",
        ),
        (
            &["-B", "-k", "-r", "repo", "-f", "Data.fs", "--keep=1"],
            "-k/--kill-old-on-full cannot be combined with --keep, --keep-daily, --keep-weekly and \
             --keep-monthly: -k removes every backup but the newest full one",
        ),
        (
            &["-R", "-r", "repo", "-o", "x.fs", "--keep=1"],
            "--keep, --keep-daily, --keep-weekly and --keep-monthly apply to -B/--backup, or \
             alone with -r",
        ),
        (
            &["-V", "-r", "repo", "--keep=1"],
            "--keep, --keep-daily, --keep-weekly and --keep-monthly apply to -B/--backup, or \
             alone with -r",
        ),
        (
            &["--list", "-r", "repo", "--keep=1"],
            "--keep, --keep-daily, --keep-weekly and --keep-monthly apply to -B/--backup, or \
             alone with -r",
        ),
        (
            &["-r", "repo", "--dry-run"],
            "Either --backup, --recover or --verify is required",
        ),
        (
            &["-V", "-r", "repo", "--dry-run"],
            "--dry-run only applies to --keep, --keep-daily, --keep-weekly and --keep-monthly",
        ),
        (
            &["-r", "repo", "--keep=1", "--json"],
            "--json cannot be combined with --keep, --keep-daily, --keep-weekly and \
             --keep-monthly: their report is text",
        ),
        (
            &["--list", "-V", "-r", "repo"],
            "--list cannot be combined with -B, -R or -V",
        ),
        (&["--list"], "--repository is required"),
        (&["--keep=1"], "--repository is required"),
        (&["--kee=1", "-r", "repo"], "option --kee not recognized"),
        (&["--lis", "-r", "repo"], "option --lis not recognized"),
    ];
    for (args, msg) in cases {
        let o = run(site.ours(args));
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        let help = repozo::cli::usage::help_text("repozo");
        assert!(err.starts_with(&help), "{args:?}: no help first: {err}");
        assert!(err.ends_with(&format!("\n{msg}\n")), "{args:?}: {err}");
        assert!(o.stdout.is_empty());
    }
    assert_eq!(site.snapshot(), before);
}

#[test]
fn the_test_repository_is_what_the_history_says() {
    // Guards the other tests' expectations: all four chains are there,
    // each backup holds the state it was taken of, every one has an
    // .index and every full a .dat.
    let site = Site::with_history();
    assert_eq!(site.data_files(), data_files_of(&[A, B, C, D]));
    for name in site.data_files() {
        assert!(site.repo().join(format!("{}.index", &name[..19])).exists());
    }
    for chain in [A, B, C, D] {
        assert!(site.repo().join(format!("{chain}.dat")).exists());
    }
    site.every_restore_point_recovers(&[Ours], "as written");
}
