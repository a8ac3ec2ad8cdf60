//! The fast-hash sidecar (`<stamp>.blake3`, `src/repo/sidecar.rs`): every
//! backup writes one per data file, `-R`, `-V` and `--incremental` check
//! with it when every file they read has a usable one and with md5
//! otherwise, and a damaged, missing or foreign sidecar never decides
//! anything: md5 does. ZODB's repozo reads, verifies and `-k`s a
//! repository that holds them.

use repozo::repo::sidecar::Sidecar;

use crate::common::{Site, ok, run, stderr, stdout};

/// The sidecars in `repo/`, sorted.
fn sidecars(site: &Site) -> Vec<String> {
    site.repo_listing()
        .into_iter()
        .filter(|n| n.ends_with(".blake3"))
        .collect()
}

/// The sidecar of the data file `name`, parsed.
fn sidecar_of(site: &Site, name: &str) -> Sidecar {
    let bytes = site.read(&format!("repo/{}.blake3", &name[..19]));
    Sidecar::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Asserts that every data file has a sound sidecar whose BLAKE3 is that
/// of its bytes of the Data.fs, and whose md5 and range are its `.dat`
/// line's.
fn assert_sidecars_describe_the_data(site: &Site, what: &str) {
    let data = site.committed();
    let dats: String = site
        .repo_listing()
        .iter()
        .filter(|n| n.ends_with(".dat"))
        .map(|n| String::from_utf8(site.read(&format!("repo/{n}"))).unwrap())
        .collect();
    for name in site.data_files() {
        let s = sidecar_of(site, &name);
        assert_eq!(s.file, name, "{what}");
        let want = blake3::hash(&data[s.start as usize..s.end as usize]);
        assert_eq!(s.blake3, want.to_hex().to_string(), "{what}: {name}");
        let line = format!("repo/{name} {} {} {}", s.start, s.end, s.md5);
        assert!(
            dats.lines().any(|l| l == line),
            "{what}: {line} not in {dats}"
        );
    }
}

/// How `-V --json` of ours checked the files (its summary's
/// `checked_with`), asserting success.
fn verify_ours(site: &Site, extra: &[&str]) -> String {
    let mut args = vec!["-V", "--json", "-r", "repo"];
    args.extend_from_slice(extra);
    checked_with(&ok(run(site.ours(&args))))
}

/// The `checked_with` field of a `--json` run's summary line.
fn checked_with(o: &std::process::Output) -> String {
    let out = stdout(o);
    let summary = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message_type"] == "summary")
        .unwrap_or_else(|| panic!("no summary in {out}"));
    summary["checked_with"]
        .as_str()
        .unwrap_or("none")
        .to_string()
}

/// A site with a full and two incrementals by ours.
fn chain_of_three(seed: u64, gzip: bool) -> Site {
    let site = Site::grown(4, seed);
    let z = if gzip { "-BzF" } else { "-BF" };
    ok(run(site.ours(&[z, "-r", "repo", "-f", "Data.fs"])));
    for (i, mode) in ["-B", "-BQ"].iter().enumerate() {
        site.grow(2, seed + 1 + i as u64);
        let mut args = vec![*mode, "-r", "repo", "-f", "Data.fs"];
        if gzip {
            args.push("-z");
        }
        ok(run(site.ours(&args)));
    }
    site
}

#[test]
fn every_backup_full_incremental_gzip_and_quick_writes_a_sidecar_of_its_bytes() {
    for gzip in [false, true] {
        let site = chain_of_three(10, gzip);
        assert_eq!(site.data_files().len(), 3);
        assert_eq!(sidecars(&site).len(), 3, "{:?}", site.repo_listing());
        assert_sidecars_describe_the_data(&site, &format!("gzip {gzip}"));
        assert_eq!(verify_ours(&site, &[]), "blake3");
    }
}

#[test]
fn a_backup_with_blobs_writes_the_sidecar_of_its_data_file() {
    let site = Site::with_blobs("bushy", 3);
    ok(run(site.ours(&[
        "-BF",
        "-r",
        "repo",
        "-f",
        "Data.fs",
        "--blob-dir=blobs",
    ])));
    site.step(4, &[]);
    ok(run(site.ours(&[
        "-B",
        "-r",
        "repo",
        "-f",
        "Data.fs",
        "--blob-dir=blobs",
    ])));
    assert_eq!(sidecars(&site).len(), 2);
    assert_sidecars_describe_the_data(&site, "blobs");
}

#[test]
fn zodbs_repozo_reads_verifies_and_kills_old_in_a_repository_with_sidecars() {
    let site = chain_of_three(20, false);
    site.verify_both();
    assert_eq!(site.recover_both(), site.committed());
    // ZODB's -k removes the old chain's files but not their sidecars.
    site.grow(2, 23);
    ok(run(site.theirs(&["-BFk", "-r", "repo", "-f", "Data.fs"])));
    assert_eq!(site.data_files().len(), 1);
    assert_eq!(sidecars(&site).len(), 3, "left by ZODB's -k");
    site.verify_both();
    assert_eq!(site.recover_both(), site.committed());
    let list = stdout(&ok(run(site.ours(&["--list", "-r", "repo"]))));
    assert!(list.contains("belongs to no backup file"), "{list}");
    // Our next backup continues ZODB's chain; our -k removes the orphans.
    site.grow(2, 24);
    ok(run(site.ours(&["-B", "-r", "repo", "-f", "Data.fs"])));
    site.verify_both();
    ok(run(site.ours(&["-BFk", "-r", "repo", "-f", "Data.fs"])));
    assert_eq!(sidecars(&site).len(), 1, "{:?}", site.repo_listing());
    assert_eq!(site.recover_both(), site.committed());
}

#[test]
fn a_flipped_byte_in_a_data_file_fails_with_the_sidecar_as_with_md5() {
    for gzip in [false, true] {
        let site = chain_of_three(30, gzip);
        let victim = site.data_files()[1].clone();
        let path = site.repo().join(&victim);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let with_md5 = run(site.ours(&["-V", "-r", "repo", "--md5"]));
        let with_sidecar = run(site.ours(&["-V", "-r", "repo"]));
        assert_eq!(with_md5.status.code(), Some(1), "{}", stderr(&with_md5));
        assert_eq!(with_sidecar.status.code(), Some(1));
        let last = |o: &std::process::Output| stderr(o).lines().last().unwrap_or("").to_string();
        // The same verdict, by md5 (the sidecar only says where to look).
        assert_eq!(last(&with_sidecar), last(&with_md5), "gzip {gzip}");
        let o = run(site.ours(&["-R", "-r", "repo", "-o", "out.fs"]));
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(!site.path("out.fs").exists(), "no output after a failure");
        assert!(stderr(&o).contains(&victim), "{}", stderr(&o));
    }
}

/// Replaces the sidecar of the second data file with `bytes`.
fn replace_second_sidecar(site: &Site, bytes: &[u8]) -> String {
    let name = site.data_files()[1].clone();
    std::fs::write(site.repo().join(format!("{}.blake3", &name[..19])), bytes).unwrap();
    name
}

/// `-V`, `-R` and `-R --incremental` succeed on `site` by md5, each
/// saying `warning` on stderr (if given) and restoring the right bytes.
fn md5_decides(site: &Site, warning: Option<&str>, what: &str) {
    let data = site.committed();
    let o = ok(run(site.ours(&["-V", "-r", "repo"])));
    let log = stderr(&o);
    if let Some(w) = warning {
        assert!(log.contains(w), "{what}: -V said {log}");
    }
    let o = ok(run(site.ours(&["-R", "-r", "repo", "-o", "out.fs"])));
    if let Some(w) = warning {
        assert!(stderr(&o).contains(w), "{what}: -R said {}", stderr(&o));
    }
    assert!(
        site.read("out.fs") == data,
        "{what}: -R restored other bytes"
    );
    // A standby one file behind catches up.
    let first = site.data_files()[0].clone();
    let end = sidecar_of_or_dat_end(site, &first);
    std::fs::write(site.path("standby.fs"), &data[..end]).unwrap();
    ok(run(site.ours(&[
        "-R",
        "--incremental",
        "-r",
        "repo",
        "-o",
        "standby.fs",
    ])));
    assert!(site.read("standby.fs") == data, "{what}: --incremental");
    assert_eq!(site.recover_both(), data, "{what}");
}

/// Where the data file `name` ends in the Data.fs, by its `.dat` line.
fn sidecar_of_or_dat_end(site: &Site, name: &str) -> usize {
    let dats: Vec<String> = site
        .repo_listing()
        .into_iter()
        .filter(|n| n.ends_with(".dat"))
        .collect();
    for d in dats {
        for line in String::from_utf8(site.read(&format!("repo/{d}")))
            .unwrap()
            .lines()
        {
            let f: Vec<&str> = line.split(' ').collect();
            if f[0].ends_with(name) {
                return f[2].parse().unwrap();
            }
        }
    }
    panic!("{name} is in no .dat")
}

#[test]
fn a_flipped_byte_in_a_sidecar_is_reported_and_md5_decides() {
    let site = chain_of_three(40, false);
    let name = site.data_files()[1].clone();
    let mut bytes = site.read(&format!("repo/{}.blake3", &name[..19]));
    for at in [0, bytes.len() / 2, bytes.len() - 3] {
        bytes[at] ^= 0x04;
        replace_second_sidecar(&site, &bytes);
        md5_decides(&site, Some("cannot be used"), &format!("flipped at {at}"));
        bytes[at] ^= 0x04;
    }
}

#[test]
fn a_truncated_or_missing_sidecar_means_md5() {
    let site = chain_of_three(50, true);
    let name = site.data_files()[1].clone();
    let bytes = site.read(&format!("repo/{}.blake3", &name[..19]));
    for cut in [0, 10, bytes.len() - 1] {
        replace_second_sidecar(&site, &bytes[..cut]);
        md5_decides(&site, Some("cannot be used"), &format!("cut at {cut}"));
    }
    std::fs::remove_file(site.repo().join(format!("{}.blake3", &name[..19]))).unwrap();
    md5_decides(&site, None, "missing");
    assert_eq!(verify_ours(&site, &[]), "md5");
}

#[test]
fn a_sidecar_belonging_to_another_file_is_foreign_and_md5_decides() {
    let site = chain_of_three(60, false);
    let files = site.data_files();
    let other = site.read(&format!("repo/{}.blake3", &files[2][..19]));
    replace_second_sidecar(&site, &other);
    md5_decides(&site, Some("it was written for"), "another file's sidecar");
}

#[test]
fn a_sound_sidecar_with_a_wrong_digest_is_overruled_by_md5() {
    let site = chain_of_three(70, false);
    let name = site.data_files()[1].clone();
    let mut s = sidecar_of(&site, &name);
    s.blake3 = "0".repeat(64);
    replace_second_sidecar(&site, &s.to_bytes());
    md5_decides(&site, Some("BLAKE3 sidecar is wrong"), "wrong digest");
}

#[test]
fn md5_forced_by_the_option_ignores_the_sidecars() {
    let site = chain_of_three(80, false);
    assert_eq!(verify_ours(&site, &[]), "blake3");
    assert_eq!(verify_ours(&site, &["--md5"]), "md5");
    let o =
        ok(run(site.ours(&[
            "-R", "--json", "--md5", "-r", "repo", "-o", "out.fs",
        ])));
    assert_eq!(checked_with(&o), "md5");
    assert!(site.read("out.fs") == site.committed());
    let o = run(site.ours(&["-B", "--md5", "-r", "repo", "-f", "Data.fs"]));
    assert_eq!(o.status.code(), Some(1), "--md5 is not a backup option");
}

#[test]
fn mixed_chains_of_zodb_files_without_sidecars_and_ours_with_verify_and_recover() {
    // ZODB's full, our incrementals; then our full, ZODB's incremental.
    let site = Site::grown(3, 90);
    ok(run(site.theirs(&["-BF", "-r", "repo", "-f", "Data.fs"])));
    site.grow(2, 91);
    ok(run(site.ours(&["-B", "-r", "repo", "-f", "Data.fs"])));
    assert_eq!(sidecars(&site).len(), 1);
    assert_eq!(verify_ours(&site, &[]), "md5");
    site.verify_both();
    assert_eq!(site.recover_both(), site.committed());
    site.grow(2, 92);
    ok(run(site.ours(&["-BF", "-r", "repo", "-f", "Data.fs"])));
    site.grow(2, 93);
    ok(run(site.theirs(&["-B", "-r", "repo", "-f", "Data.fs"])));
    site.verify_both();
    assert_eq!(site.recover_both(), site.committed());
    // Restore points before ZODB's incremental have sidecars for every
    // file: they are checked with BLAKE3.
    let ours_full = site.data_files()[2].clone();
    let date = &ours_full[..19];
    assert_eq!(verify_ours(&site, &["-D", date]), "blake3");
}

#[test]
fn a_crash_between_the_sidecar_and_the_dat_line_leaves_nothing_misread() {
    for step in ["backup:data-renamed", "backup:sidecar-written"] {
        let site = Site::grown(3, 100);
        ok(run(site.ours(&["-BF", "-r", "repo", "-f", "Data.fs"])));
        site.grow(2, 101);
        let mut c = site.ours(&["-B", "-r", "repo", "-f", "Data.fs"]);
        c.env("REPOZO_FAILPOINT", step);
        assert!(crate::common::crashed(&run(c)), "{step}");
        // The next backup records the file, with a sound sidecar.
        let o = ok(run(site.ours(&["-B", "-r", "repo", "-f", "Data.fs"])));
        assert!(
            stderr(&o).contains("recorded it now"),
            "{step}: {}",
            stderr(&o)
        );
        assert_sidecars_describe_the_data(&site, step);
        assert_eq!(verify_ours(&site, &[]), "blake3", "{step}");
        site.verify_both();
        assert_eq!(site.recover_both(), site.committed(), "{step}");
    }
}

#[test]
fn retention_removes_a_sidecar_with_its_data_file() {
    let site = Site::grown(3, 110);
    for i in 0..3 {
        site.grow(1, 111 + i);
        ok(run(site.ours(&["-BF", "-r", "repo", "-f", "Data.fs"])));
    }
    assert_eq!(sidecars(&site).len(), 3);
    ok(run(site.ours(&["--keep=1", "-r", "repo"])));
    assert_eq!(site.data_files().len(), 1);
    assert_eq!(sidecars(&site).len(), 1, "{:?}", site.repo_listing());
    assert_sidecars_describe_the_data(&site, "after retention");
}

#[test]
fn the_listing_says_which_backups_have_a_sidecar() {
    let site = Site::grown(3, 120);
    ok(run(site.theirs(&["-BF", "-r", "repo", "-f", "Data.fs"])));
    site.grow(1, 121);
    ok(run(site.ours(&["-B", "-r", "repo", "-f", "Data.fs"])));
    let o = ok(run(site.ours(&["--list", "--json", "-r", "repo"])));
    let values: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(values[0]["blake3"], false);
    assert_eq!(values[1]["blake3"], true);
}
