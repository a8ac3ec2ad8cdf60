//! Pack deltas and what removes backups: `-k`, retention (`--keep…`,
//! `--dry-run`), `--list`, and a base removed by hand. A repository holds
//! an old plain chain Z, a chain A (full and incrementals) and, after ZODB
//! packs the Data.fs, a chain B written by `-B --pack-delta`, whose first
//! file is a delta against A's state. Whatever keeps B must keep A whole;
//! every restore point left must restore to exactly the state it was taken
//! of; nothing that a kept delta needs may go.

use std::collections::BTreeMap;

use crate::common::{Site, next_stamp, ok, run, stderr, stdout, zodb};

/// The first bytes of a pack delta (`repozo::repo::packdelta::MAGIC`).
const MAGIC: &[u8] = b"repozo-rs pack-delta 1\n";

/// A site with chains Z, A and B (see the module doc), and the Data.fs
/// state each data file completes, by file name.
struct Packed {
    site: Site,
    /// Chain Z: one plain full.
    z: Vec<String>,
    /// Chain A: a full and two incrementals.
    a: Vec<String>,
    /// Chain B: the pack delta and one incremental.
    b: Vec<String>,
    /// The committed Data.fs bytes each data file restores, by name.
    states: BTreeMap<String, Vec<u8>>,
}

impl Packed {
    fn new(seed: u64) -> Packed {
        let site = Site::grown(12, seed);
        let mut states = BTreeMap::new();
        let mut backup = |site: &Site, args: &[&str]| -> String {
            let before = site.data_files();
            let mut all = vec!["-r", "repo", "-f", "Data.fs"];
            all.extend_from_slice(args);
            ok(run(site.ours_at(&next_stamp(), &all)));
            let new: Vec<String> = site
                .data_files()
                .into_iter()
                .filter(|n| !before.contains(n))
                .collect();
            assert_eq!(new.len(), 1, "{args:?} wrote {new:?}");
            states.insert(new[0].clone(), site.committed());
            new[0].clone()
        };
        let z = vec![backup(&site, &["-B", "-F"])];
        site.grow(4, seed + 1);
        let mut a = vec![backup(&site, &["-B", "-F", "-z"])];
        site.grow(3, seed + 2);
        a.push(backup(&site, &["-B"]));
        site.grow(3, seed + 3);
        a.push(backup(&site, &["-B", "-z"]));
        zodb::pack(&site.data_fs());
        let mut b = vec![backup(&site, &["-B", "--pack-delta"])];
        site.grow(2, seed + 4);
        b.push(backup(&site, &["-B", "-z"]));
        let first = site.read(&format!("repo/{}", b[0]));
        assert!(
            first.starts_with(MAGIC),
            "-B --pack-delta after a pack did not write a pack delta"
        );
        assert!(!a[0].ends_with(".deltafsz") && b[1].ends_with(".deltafsz"));
        Packed {
            site,
            z,
            a,
            b,
            states,
        }
    }

    /// `-R -D <stamp of name>` into a fresh file: the bytes restored.
    fn restore(&self, name: &str) -> Vec<u8> {
        let out = format!("restored-{}.fs", &name[..19]);
        let _ = std::fs::remove_file(self.site.path(&out));
        ok(run(self.site.ours(&[
            "-R",
            "-r",
            "repo",
            "-D",
            &name[..19],
            "-o",
            &out,
        ])));
        self.site.read(&out)
    }

    /// Every data file still in the repository restores to its state,
    /// exactly; `-V` passes.
    fn every_restore_point_restores_exactly(&self, what: &str) {
        for name in self.site.data_files() {
            let Some(state) = self.states.get(&name) else {
                continue;
            };
            assert!(
                self.restore(&name) == *state,
                "{what}: -R -D {} does not give the state {name} was taken of",
                &name[..19]
            );
        }
        ok(run(self.site.ours(&["-V", "-r", "repo"])));
    }

    /// The names in `repo/` that belong to data files `files`: the files
    /// and their `.dat`, `.index` and `.blake3`.
    fn files_of(&self, files: &[String]) -> Vec<String> {
        self.site
            .repo_listing()
            .into_iter()
            .filter(|n| files.iter().any(|f| n[..19] == f[..19]))
            .collect()
    }
}

/// The lines of `text` that start with `prefix`.
fn lines_starting<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn a_pack_delta_backup_with_k_keeps_the_chain_it_is_based_on_whole_and_says_why() {
    let mut p = Packed::new(101);
    let site = &p.site;
    let a_files = p.files_of(&p.a);
    assert!(a_files.len() >= 3 * 3, "{a_files:?}");
    // Another pack, another delta, with -k: B (its base) and A (B's base)
    // stay; Z goes.
    zodb::pack(&site.data_fs());
    site.grow(2, 777);
    zodb::pack(&site.data_fs());
    let stamp = next_stamp();
    let o = ok(run(site.ours_at(
        &stamp,
        &[
            "-B",
            "--pack-delta",
            "-k",
            "-v",
            "-r",
            "repo",
            "-f",
            "Data.fs",
        ],
    )));
    let c = format!("{stamp}.fsz");
    assert!(site.read(&format!("repo/{c}")).starts_with(MAGIC));
    let err = stderr(&o);
    for (files, delta) in [(&p.a, &p.b[0]), (&p.b, &c)] {
        for f in files {
            let line = format!(
                "keeping backup file repo/{f}: the pack delta repo/{delta} is based on its chain"
            );
            assert!(err.lines().any(|l| l == line), "no {line:?} in:\n{err}");
        }
    }
    assert_eq!(
        lines_starting(&err, "removing old backup file"),
        vec![format!(
            "removing old backup file {} (and .dat / .index)",
            p.z[0]
        )],
        "{err}"
    );
    let mut expected: Vec<String> = [p.a.clone(), p.b.clone(), vec![c.clone()]].concat();
    expected.sort();
    assert_eq!(site.data_files(), expected);
    // The kept chains are whole: every file with its .dat, .index, sidecar.
    for f in &a_files {
        assert!(site.repo().join(f).exists(), "{f} was removed");
    }
    p.states.insert(c.clone(), site.committed());
    p.every_restore_point_restores_exactly("after -B --pack-delta -k");
    // Not a warning: without -v the same run says nothing.
    site.grow(1, 778);
    zodb::pack(&site.data_fs());
    let o = ok(run(site.ours(&[
        "-B",
        "--pack-delta",
        "-k",
        "-r",
        "repo",
        "-f",
        "Data.fs",
    ])));
    assert_eq!(stderr(&o), "");
    assert_eq!(site.data_files().len(), expected.len() + 1);
}

#[test]
fn a_plain_full_backup_with_k_removes_every_older_chain_and_restores_exactly() {
    let p = Packed::new(202);
    let site = &p.site;
    site.grow(2, 999);
    let stamp = next_stamp();
    let o = ok(run(site.ours_at(
        &stamp,
        &["-B", "-F", "-k", "-v", "-r", "repo", "-f", "Data.fs"],
    )));
    let err = stderr(&o);
    assert!(
        lines_starting(&err, "keeping backup file").is_empty(),
        "{err}"
    );
    assert_eq!(site.data_files(), vec![format!("{stamp}.fs")]);
    let left: Vec<String> = site
        .repo_listing()
        .into_iter()
        .filter(|n| !n.starts_with(&stamp))
        .collect();
    assert!(left.is_empty(), "older files left: {left:?}");
    // The new chain stands alone: both tools restore the Data.fs exactly.
    assert!(site.recover_both() == site.committed());
    site.verify_both();
}

#[test]
fn keep_1_keeps_the_base_of_the_newest_pack_delta_and_the_dry_run_says_why() {
    let p = Packed::new(303);
    let site = &p.site;
    let before = site.repo_listing();
    let b0 = &p.b[0];
    for rule in ["--keep=1", "--keep-daily=1"] {
        let o = ok(run(site.ours(&["-r", "repo", rule, "--dry-run"])));
        let out = stdout(&o);
        let kept = lines_starting(&out, "keep   chain");
        assert_eq!(kept.len(), 2, "{rule}:\n{out}");
        assert_eq!(
            kept[0],
            format!(
                "keep   chain {} (3 data files): needed by {b0} (a kept pack delta based on \
                 this chain)",
                &p.a[0][..19]
            ),
            "{rule}:\n{out}"
        );
        assert!(
            kept[1].starts_with(&format!("keep   chain {} (2 data files): ", &b0[..19])),
            "{rule}:\n{out}"
        );
        assert_eq!(
            lines_starting(&out, "remove chain"),
            vec![format!(
                "remove chain {} (1 data file): no rule keeps it",
                &p.z[0][..19]
            )],
            "{rule}:\n{out}"
        );
        assert!(
            out.lines().last().unwrap().ends_with("; keeping 2 chains"),
            "{out}"
        );
        assert_eq!(
            site.repo_listing(),
            before,
            "{rule} --dry-run removed files"
        );
    }
    let o = ok(run(site.ours(&["-v", "-r", "repo", "--keep=1"])));
    let err = stderr(&o);
    for f in &p.a {
        let line =
            format!("keeping backup file repo/{f}: the pack delta repo/{b0} is based on its chain");
        assert!(err.lines().any(|l| l == line), "no {line:?} in:\n{err}");
    }
    let mut expected: Vec<String> = [p.a.clone(), p.b.clone()].concat();
    expected.sort();
    assert_eq!(site.data_files(), expected);
    assert!(p.files_of(&p.z).is_empty());
    p.every_restore_point_restores_exactly("after --keep=1");
    // Once a plain full is kept, the delta chain and its base go by the
    // rules like any other chain.
    site.grow(1, 31);
    ok(run(site.ours(&[
        "-B", "-F", "-r", "repo", "-f", "Data.fs", "--keep=1",
    ])));
    assert_eq!(site.data_files().len(), 1);
    assert!(site.recover_both() == site.committed());
}

#[test]
fn list_shows_the_pack_delta_and_what_it_needs_in_text_and_json() {
    let p = Packed::new(404);
    let site = &p.site;
    let (a0, b0) = (&p.a[0], &p.b[0]);
    let text = stdout(&ok(run(site.ours(&["--list", "-r", "repo"]))));
    let row = |name: &str| -> String {
        let rows = lines_starting(&text, &format!("  {}", &name[..19]));
        assert_eq!(rows.len(), 1, "{name}:\n{text}");
        rows[0].to_string()
    };
    assert!(row(b0).contains("  pack delta   yes"), "{text}");
    assert!(row(b0).ends_with(&format!("  based on {a0}")), "{text}");
    for f in &p.a {
        assert!(row(f).ends_with(&format!("  needed by {b0}")), "{text}");
    }
    for f in [&p.z[0], &p.b[1]] {
        assert!(
            !row(f).contains("needed by") && !row(f).contains("based on"),
            "{text}"
        );
    }
    assert!(row(&p.z[0]).contains("  full  "), "{text}");
    assert!(!text.contains("\n  !") && !text.starts_with('!'), "{text}");

    let json = stdout(&ok(run(site.ours(&["--list", "--json", "-r", "repo"]))));
    let points: BTreeMap<String, serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["message_type"] == "restore_point")
        .map(|v| (v["file"].as_str().unwrap()[5..].to_string(), v))
        .collect();
    assert_eq!(points.len(), 6, "{json}");
    assert_eq!(points[b0]["kind"], "pack delta", "{json}");
    assert_eq!(points[b0]["pack_delta_base"], a0.as_str(), "{json}");
    for f in &p.a {
        assert_eq!(points[f]["needed_by"], b0.as_str(), "{json}");
        assert!(points[f].get("pack_delta_base").is_none(), "{json}");
    }
    for f in [&p.z[0], &p.b[1]] {
        let v = &points[f];
        assert!(v.get("needed_by").is_none() && v.get("pack_delta_base").is_none());
    }
    assert_eq!(points[&p.z[0]]["kind"], "full");
    assert_eq!(points[&p.b[1]]["kind"], "incremental");
}

#[test]
fn a_missing_base_file_is_a_clear_error_for_restore_and_verify_and_the_next_backup_starts_a_new_chain()
 {
    let p = Packed::new(505);
    let site = &p.site;
    let (gone, b0) = (&p.a[1], &p.b[0]);
    std::fs::remove_file(site.repo().join(gone)).unwrap();
    let says = format!(
        "repo/{gone} is missing, but the pack delta repo/{b0} is based on it, so no state of \
         that chain can be rebuilt. Put the file back from a copy, restore an earlier date (-D) \
         whose chain is complete, or make a full backup (-B -F) to start a new chain\n"
    );
    for date in [&p.b[0][..19], &p.b[1][..19]] {
        let o = run(site.ours(&["-R", "-r", "repo", "-D", date, "-o", "out.fs"]));
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert_eq!(stderr(&o), says);
        assert!(!site.path("out.fs").exists(), "-R left an output");
        let o = run(site.ours(&["-R", "-r", "repo", "-D", date]));
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(o.stdout.is_empty(), "-R wrote {} bytes", o.stdout.len());
        assert_eq!(stderr(&o), says);
        let o = run(site.ours(&["-V", "-r", "repo", "-D", date]));
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert_eq!(stderr(&o), says);
    }
    // --list says so on B's chain; Z still restores.
    let text = stdout(&ok(run(site.ours(&["--list", "-r", "repo"]))));
    let note = format!(
        "  ! the pack delta {b0} is based on {gone}, which is missing: -R and -V at this chain's \
         dates fail; make a full backup (-B -F)"
    );
    assert!(text.lines().any(|l| l == note), "{text}");
    assert!(p.restore(&p.z[0]) == p.states[&p.z[0]]);
    // A backup cannot continue that chain, even by the .dat alone (-Q):
    // it says why and starts a new one.
    site.grow(1, 506);
    let o = ok(run(site.ours(&["-B", "-Q", "-r", "repo", "-f", "Data.fs"])));
    assert_eq!(
        stderr(&o),
        format!(
            "repo/{gone} is missing, but the pack delta repo/{b0} is based on it; making a full \
             backup to start a consistent chain\n"
        )
    );
    let newest = site.data_files().pop().unwrap();
    assert!(newest.ends_with(".fs"), "{newest}");
    assert!(site.recover_both() == site.committed());
}

#[test]
fn zodbs_k_removes_a_pack_delta_chain_and_its_base_together() {
    // ZODB's repozo runs -k only after a full backup of its own, a plain
    // one, and then removes every older file: a delta and its base go
    // together, never one without the other.
    for (seed, flags) in [
        (707, &["-B", "-F", "-k"][..]),
        (708, &["-B", "-Q", "-k"][..]),
    ] {
        let p = Packed::new(seed);
        let site = &p.site;
        // After a pack, ZODB's -BQ sees the Data.fs shrunk: a full.
        zodb::pack(&site.data_fs());
        let mut args = flags.to_vec();
        args.extend(["-r", "repo", "-f", "Data.fs"]);
        ok(run(site.theirs(&args)));
        let left = site.data_files();
        assert_eq!(left.len(), 1, "{flags:?}: {left:?}");
        assert!(!p.a.contains(&left[0]) && !p.b.contains(&left[0]));
        assert!(site.recover_both() == site.committed(), "{flags:?}");
    }
}

/// `--list` of an S3 repository reads no more of a `.fsz` full than its
/// first bytes, once: one ranged GET each (moto logs every request).
#[cfg(feature = "s3")]
#[test]
fn list_on_s3_reads_only_the_first_bytes_of_each_fsz_full_once() {
    use crate::common::s3::S3Site;
    let site = S3Site::new(Site::grown(12, 606), "pack-delta-list");
    site.backup_both(&["-B", "-F", "-z"]);
    site.grow(3, 607);
    site.backup_both(&["-B", "-z"]);
    zodb::pack(&site.data_fs());
    site.backup_both(&["-B", "--pack-delta"]);
    site.grow(2, 608);
    site.backup_both(&["-B", "-z"]);
    site.grow(2, 609);
    site.backup_both(&["-B", "-F", "-z"]);
    let log = || std::fs::read_to_string(&site.server.log).unwrap();
    let before = log().len();
    let url = site.url();
    let json = stdout(&ok(run(site.ours(&["--list", "--json", "-r", &url]))));
    assert_eq!(json.matches("\"kind\":\"pack delta\"").count(), 1, "{json}");
    assert_eq!(json.matches("\"needed_by\":").count(), 2, "{json}");
    let requests: Vec<String> = log()[before..]
        .lines()
        .filter(|l| l.contains(&format!("/{}/", site.prefix)))
        .map(str::to_string)
        .collect();
    let fulls: Vec<String> = site
        .listing()
        .into_keys()
        .filter(|n| n.ends_with(".fsz"))
        .collect();
    assert_eq!(fulls.len(), 3, "{fulls:?}");
    for name in &fulls {
        let gets: Vec<&String> = requests
            .iter()
            .filter(|l| {
                l.contains(&format!(
                    "GET /{}/{}/{name} ",
                    crate::common::s3::BUCKET,
                    site.prefix
                ))
            })
            .collect();
        assert_eq!(gets.len(), 1, "{name}: {gets:?}");
        // 206 Partial Content: a ranged GET, not the whole object.
        assert!(gets[0].trim_end().ends_with(" 206 -"), "{}", gets[0]);
    }
    // No other data file is read at all.
    for l in &requests {
        assert!(
            !(l.contains("GET ") && (l.contains(".deltafs") || l.contains(".fs "))),
            "{l}"
        );
    }
}
