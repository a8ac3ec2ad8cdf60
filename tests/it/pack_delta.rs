//! `-B --pack-delta` (issue 24, `src/repo/packdelta.rs`): after a pack,
//! the new chain's first file is a delta against the state backed up
//! before. Histories of real ZODB packs (a pack time in the middle of the
//! history, `pack_keep_old` on and off, `pack_gc=False`, undo records
//! before the pack, deltas of deltas, `-z`) restore at every date to the
//! bytes the Data.fs had then, and to the bytes ZODB's repozo restores
//! from a plain repository of the same history; ZODB opens them. ZODB's
//! repozo fails loudly on a pack-delta chain, a damaged delta is a clear
//! error and never wrong bytes, and a crash at any step of a pack-delta
//! backup leaves every restore point intact.

use std::path::Path;

use repozo::repo::packdelta::{Header, MAGIC};

use crate::common::{Rng, Site, crashed, next_stamp, ok, run, stderr, stdout, zodb};

/// A Data.fs that ZODB grows, undoes in and packs, backed up after each
/// change by ours with `-B --pack-delta` into `repo/` and, if asked, by
/// ZODB's repozo with `-B` into `zrepo/`, both at the same stamp.
struct History {
    site: Site,
    /// Our flags besides `-B --pack-delta` (`-z`, `-Q`).
    flags: &'static [&'static str],
    /// Whether ZODB's repozo backs up into `zrepo/` too.
    zodb: bool,
    /// Each backup's stamp and the Data.fs as it was then.
    states: Vec<(String, Vec<u8>)>,
    seed: u64,
}

impl History {
    fn new(flags: &'static [&'static str], zodb: bool, seed: u64) -> History {
        let site = Site::new();
        std::fs::create_dir(site.path("zrepo")).unwrap();
        History {
            site,
            flags,
            zodb,
            states: Vec::new(),
            seed,
        }
    }

    /// ZODB commits `txns` transactions over 2,000 keys, so a pack keeps
    /// much of the file.
    fn grow(&mut self, txns: u64) {
        self.seed += 1;
        zodb::grow_with(
            &self.site.data_fs(),
            txns,
            self.seed,
            &["--objects", "2000"],
        );
    }

    /// ZODB commits a transaction and undoes it (`db.undo(tid)`): the
    /// undo's records are backpointers.
    fn undo(&self) {
        zodb::undo(&self.site.data_fs());
    }

    /// ZODB packs with zodbtool's `pack` options `extra`.
    fn pack(&self, extra: &[&str]) {
        zodb::pack_with(&self.site.data_fs(), extra);
    }

    /// Backs up with both tools at one stamp and records the state.
    fn backup(&mut self) {
        let stamp = next_stamp();
        let mut args = vec!["-B", "--pack-delta", "-r", "repo", "-f", "Data.fs"];
        args.extend_from_slice(self.flags);
        let o = run(self.site.ours_at(&stamp, &args));
        assert!(o.status.success(), "ours {args:?}: {}", stderr(&o));
        if self.zodb {
            let o = run(self
                .site
                .theirs_at(&stamp, &["-B", "-r", "zrepo", "-f", "Data.fs"]));
            assert!(o.status.success(), "ZODB's repozo -B: {}", stderr(&o));
        }
        self.states.push((stamp, self.site.committed()));
    }

    /// Asserts that the newest data file of `repo/` is a pack delta.
    fn assert_newest_is_a_delta(&self, what: &str) {
        let newest = self.site.data_files().pop().unwrap();
        assert!(
            is_delta(&self.site, &newest),
            "{what}: the backup after the pack wrote {newest}, not a pack delta"
        );
    }

    /// Eleven backups across five packs: the first full and an
    /// incremental; after an undo, a pack as of the middle of the file
    /// (keeping `Data.fs.old`), based on that plain chain; an incremental;
    /// a pack with `pack_keep_old=False`, a delta based on a chain that
    /// starts with a delta; an incremental after an undo; a pack with
    /// `pack_gc=False`; at once another pack (with GC), a delta based on a
    /// chain of one delta; an incremental; after an undo, a pack to now;
    /// a last incremental.
    fn live(&mut self) {
        self.grow(100);
        self.backup();
        self.grow(15);
        self.backup();
        self.undo();
        self.pack(&["--at", "0.5"]);
        self.backup();
        self.assert_newest_is_a_delta("pack 1");
        self.grow(15);
        self.backup();
        self.pack(&["--at", "0.6", "--no-keep-old"]);
        self.backup();
        self.assert_newest_is_a_delta("pack 2");
        self.grow(10);
        self.undo();
        self.backup();
        self.pack(&["--at", "0.7", "--no-gc"]);
        self.backup();
        self.assert_newest_is_a_delta("pack 3");
        self.pack(&["--at", "0.9"]);
        self.backup();
        self.assert_newest_is_a_delta("pack 4");
        self.grow(10);
        self.backup();
        self.undo();
        self.pack(&[]);
        self.backup();
        self.assert_newest_is_a_delta("pack 5");
        self.grow(5);
        self.backup();
    }

    /// Restores every state from `repo/` with ours (`-R -D`), asserts
    /// each is the Data.fs as it was, and returns the restored files.
    fn assert_ours_restore_every_date(&self) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for (i, (stamp, data)) in self.states.iter().enumerate() {
            let name = format!("ours-{i}.fs");
            ok(run(self
                .site
                .ours(&["-R", "-r", "repo", "-D", stamp, "-o", &name])));
            assert!(
                self.site.read(&name) == *data,
                "state {i} ({stamp}): ours restored other bytes than the Data.fs had"
            );
            out.push(self.site.path(&name));
        }
        out
    }

    /// The pack deltas of `repo/`: (name, stored size, size it rebuilds).
    fn deltas(&self) -> Vec<(String, u64, u64)> {
        self.site
            .data_files()
            .into_iter()
            .filter(|n| is_delta(&self.site, n))
            .map(|n| {
                let bytes = self.site.read(&format!("repo/{n}"));
                let header = header(&bytes, &n).0;
                (n, bytes.len() as u64, header.size)
            })
            .collect()
    }
}

/// Whether `repo/<name>` starts with the pack-delta magic.
fn is_delta(site: &Site, name: &str) -> bool {
    let bytes = site.read(&format!("repo/{name}"));
    bytes.starts_with(MAGIC)
}

/// The header of the pack delta `bytes` and where its operations start.
fn header(bytes: &[u8], name: &str) -> (Header, usize) {
    assert!(bytes.starts_with(MAGIC), "{name} is not a pack delta");
    let mut r = &bytes[MAGIC.len()..];
    let h = Header::read_after_magic(&mut r, name).unwrap();
    (h, bytes.len() - r.len())
}

#[test]
fn every_date_across_five_packs_restores_as_the_data_fs_was_and_as_zodbs_repozo_restores_it() {
    let mut h = History::new(&[], true, 100);
    h.live();
    let ours = h.assert_ours_restore_every_date();
    for (i, (stamp, data)) in h.states.iter().enumerate() {
        let name = format!("zodb-{i}.fs");
        ok(run(h
            .site
            .theirs(&["-R", "-r", "zrepo", "-D", stamp, "-o", &name])));
        assert!(
            h.site.read(&name) == *data,
            "state {i} ({stamp}): ZODB's repozo restored other bytes than ours"
        );
    }
    zodb::assert_opens(&ours);
    for v in [
        &["-V"][..],
        &["-V", "-Q"],
        &["-V", "--deep"],
        &["-V", "--md5"],
    ] {
        let args = [v, &["-r", "repo"]].concat();
        ok(run(h.site.ours(&args)));
    }
    let list = stdout(&ok(run(h.site.ours(&["--list", "-r", "repo"]))));
    for (stamp, _) in &h.states {
        assert!(
            list.contains(stamp.as_str()),
            "--list lacks {stamp}:\n{list}"
        );
    }
    let deltas = h.deltas();
    assert_eq!(deltas.len(), 5, "{:?}", h.site.data_files());
    for (name, stored, size) in deltas {
        let ratio = stored as f64 / size as f64;
        println!("{name}: {stored} bytes stored for {size} packed, ratio {ratio:.4}");
        assert!(ratio <= 0.2, "{name}: {stored} bytes for {size}");
    }
}

#[test]
fn deltas_of_deltas_in_a_gzip_repository_restore_exactly_at_every_date() {
    let mut h = History::new(&["-Qz"], false, 200);
    h.live();
    h.assert_ours_restore_every_date();
    // Each delta after the first is based on a chain that starts with
    // the delta before it; every other file is gzip.
    let deltas = h.deltas();
    assert_eq!(deltas.len(), 5, "{:?}", h.site.data_files());
    for pair in deltas.windows(2) {
        let bytes = h.site.read(&format!("repo/{}", pair[1].0));
        let base = header(&bytes, &pair[1].0).0.base;
        assert_eq!(
            base[0].file, pair[0].0,
            "{} is not based on {}",
            pair[1].0, pair[0].0
        );
    }
    for name in h.site.data_files() {
        if !is_delta(&h.site, &name) {
            assert!(
                h.site
                    .read(&format!("repo/{name}"))
                    .starts_with(&[0x1f, 0x8b]),
                "{name} is not gzip"
            );
        }
    }
    ok(run(h.site.ours(&["-V", "--deep", "-r", "repo"])));
}

/// A site whose repository holds a plain chain (full, incremental) and,
/// after a pack, a pack-delta chain (the delta, an incremental): the
/// four stamps and the Data.fs at each.
fn delta_site(seed: u64) -> (Site, Vec<(String, Vec<u8>)>) {
    let site = Site::new();
    zodb::grow_with(&site.data_fs(), 40, seed, &["--objects", "500"]);
    let mut states = Vec::new();
    let mut backup = |site: &Site| {
        let stamp = next_stamp();
        ok(run(site.ours_at(
            &stamp,
            &["-B", "--pack-delta", "-r", "repo", "-f", "Data.fs"],
        )));
        states.push((stamp, site.committed()));
    };
    backup(&site);
    zodb::grow_with(&site.data_fs(), 10, seed + 1, &["--objects", "500"]);
    backup(&site);
    zodb::undo(&site.data_fs());
    zodb::pack_with(&site.data_fs(), &["--at", "0.5"]);
    backup(&site);
    zodb::grow_with(&site.data_fs(), 3, seed + 2, &["--objects", "500"]);
    backup(&site);
    assert!(is_delta(&site, &site.data_files()[2]));
    (site, states)
}

#[test]
fn zodbs_repozo_fails_loudly_on_a_pack_delta_chain_and_still_restores_the_chain_before() {
    let (site, states) = delta_site(300);
    let wrong = |out: &str, want: &[u8]| {
        let p = site.path(out);
        p.exists() && std::fs::read(&p).unwrap() != want
    };
    // -R to a file, latest and at both dates of the delta chain.
    for (date, want) in [
        (None, &states[3].1),
        (Some(&states[2].0), &states[2].1),
        (Some(&states[3].0), &states[3].1),
    ] {
        let mut args = vec!["-R", "-r", "repo", "-o", "zodb.fs"];
        if let Some(d) = date {
            args.extend(["-D", d.as_str()]);
        }
        let o = run(site.theirs(&args));
        assert!(!o.status.success(), "ZODB's repozo {args:?} succeeded");
        assert!(
            !wrong("zodb.fs", want),
            "ZODB's repozo {args:?} wrote wrong bytes"
        );
        // To standard output: nothing.
        let args: Vec<&str> = args
            .into_iter()
            .filter(|a| *a != "-o" && *a != "zodb.fs")
            .collect();
        let o = run(site.theirs(&args));
        assert!(!o.status.success(), "ZODB's repozo {args:?} succeeded");
        assert!(
            o.stdout.is_empty(),
            "ZODB's repozo {args:?} wrote {} bytes",
            o.stdout.len()
        );
    }
    // The dates before the delta chain restore as they were.
    for (stamp, data) in &states[..2] {
        ok(run(site.theirs(&[
            "-R", "-r", "repo", "-D", stamp, "-o", "old.fs",
        ])));
        assert!(
            site.read("old.fs") == *data,
            "ZODB's repozo restored {stamp} wrong"
        );
    }
    let o = run(site.theirs(&["-V", "-r", "repo"]));
    assert_eq!(o.status.code(), Some(1), "ZODB's repozo -V: {}", stderr(&o));
    // Its backup reads the chain to compare: it stops and writes nothing.
    zodb::grow(&site.data_fs(), 2, 301);
    let before = site.repo_listing();
    let o = run(site.theirs(&["-B", "-r", "repo", "-f", "Data.fs"]));
    assert!(!o.status.success(), "ZODB's repozo -B succeeded");
    assert_eq!(
        site.repo_listing(),
        before,
        "ZODB's repozo -B wrote into the repository"
    );
    // Ours continues the chain.
    ok(run(site.ours(&[
        "-B",
        "--pack-delta",
        "-r",
        "repo",
        "-f",
        "Data.fs",
    ])));
    ok(run(site.ours(&["-R", "-r", "repo", "-o", "ours.fs"])));
    assert!(site.read("ours.fs") == site.committed());
}

/// `site` with the repository `good/` copied over `repo/` (whatever a
/// case did to it), and no `out.fs*`.
fn reset(site: &Site) {
    let repo = site.repo();
    std::fs::remove_dir_all(&repo).unwrap();
    copy_dir(&site.path("good"), &repo);
    for out in ["out.fs", "out.fs.index", "out.fs.part"] {
        let _ = std::fs::remove_file(site.path(out));
    }
}

/// Copies the files of directory `from` into a new directory `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_damaged_pack_delta_is_a_clear_error_naming_the_file_and_never_wrong_bytes() {
    let (site, states) = delta_site(400);
    copy_dir(&site.repo(), &site.path("good"));
    let files = site.data_files();
    let delta = files[2].clone();
    let full = files[0].clone();
    let path = format!("repo/{delta}");
    let bytes = site.read(&path);
    let ops = header(&bytes, &delta).1;
    let len = bytes.len();
    let edit = |site: &Site, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = site.read(&format!("repo/{delta}"));
        f(&mut b);
        std::fs::write(site.path(&format!("repo/{delta}")), b).unwrap();
    };
    // Replaces the first `old` in the header by `new`.
    let in_header = |b: &mut Vec<u8>, old: &str, new: &str| {
        let text = String::from_utf8_lossy(&b[..ops]).into_owned();
        let at = text
            .find(old)
            .unwrap_or_else(|| panic!("{old:?} not in {text}"));
        b.splice(at..at + old.len(), new.bytes());
    };
    let base = header(&bytes, &delta).0.base;
    let md5 = base[0].md5.clone();
    let other_md5 = format!(
        "{}{}",
        if md5.starts_with('0') { '1' } else { '0' },
        &md5[1..]
    );
    let end = format!(" {} ", base[0].end);
    let other_end = format!(" {} ", base[0].end + 1);
    // What each case does to the delta, and what the error must say
    // besides the delta's name.
    type Damage<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
    let cases: Vec<(&str, Damage, Option<&str>)> = vec![
        (
            "a byte flipped in its operations",
            // An unknown operation (at byte …) or other bytes, which the
            // checksum refuses.
            Box::new(move |b: &mut Vec<u8>| b[ops + (len - ops) / 2] ^= 0xff),
            None,
        ),
        (
            "a byte flipped in its header",
            Box::new(|b: &mut Vec<u8>| in_header(b, "\nbase ", "\nBase ")),
            Some("at byte"),
        ),
        (
            "cut short in its operations",
            Box::new(move |b: &mut Vec<u8>| b.truncate(ops + (len - ops) / 2)),
            Some("at byte"),
        ),
        (
            "cut short in its header",
            Box::new(move |b: &mut Vec<u8>| b.truncate(ops - 5)),
            Some("at byte"),
        ),
        (
            "a wrong md5 listed for a base file",
            Box::new(|b: &mut Vec<u8>| in_header(b, &md5, &other_md5)),
            None,
        ),
        (
            "a wrong size listed for a base file",
            Box::new(|b: &mut Vec<u8>| in_header(b, &end, &other_end)),
            None,
        ),
    ];
    let run_case = |what: &str, name: &str, extra: Option<&str>| {
        std::fs::write(site.path("out.fs"), b"old output").unwrap();
        std::fs::write(site.path("out.fs.index"), b"old index").unwrap();
        let o = run(site.ours(&["-R", "-r", "repo", "-o", "out.fs"]));
        let err = stderr(&o);
        println!("{what}: {}", err.trim());
        assert_eq!(o.status.code(), Some(1), "{what}: -R: {err}");
        assert!(err.contains(name), "{what}: -R does not name {name}: {err}");
        if let Some(extra) = extra {
            assert!(
                err.contains(extra),
                "{what}: -R does not say {extra:?}: {err}"
            );
        }
        assert_eq!(site.read("out.fs"), b"old output", "{what}");
        assert_eq!(site.read("out.fs.index"), b"old index", "{what}");
        assert!(
            !site.path("out.fs.part").exists(),
            "{what}: out.fs.part left"
        );
        let o = run(site.ours(&["-V", "-r", "repo"]));
        assert_eq!(o.status.code(), Some(1), "{what}: -V: {}", stderr(&o));
    };
    for (what, damage, extra) in &cases {
        reset(&site);
        edit(&site, damage.as_ref());
        run_case(what, &delta, *extra);
    }
    reset(&site);
    std::fs::remove_file(site.path(&format!("repo/{full}"))).unwrap();
    run_case("a base file removed", &full, None);
    // The dates before the delta are untouched by any of it.
    reset(&site);
    ok(run(site.ours(&[
        "-R",
        "-r",
        "repo",
        "-D",
        &states[1].0,
        "-o",
        "out.fs",
    ])));
    assert!(site.read("out.fs") == states[1].1);
}

#[test]
fn no_single_byte_flip_in_a_pack_delta_restores_wrong_bytes() {
    let (site, states) = delta_site(500);
    copy_dir(&site.repo(), &site.path("good"));
    let delta = site.data_files()[2].clone();
    let path = format!("repo/{delta}");
    let good = site.read(&path);
    let want = &states[3].1;
    let mut rng = Rng::new(24);
    let (mut failed, mut restored) = (0, 0);
    for _ in 0..50 {
        let at = rng.below(good.len() as u64) as usize;
        let mut b = good.clone();
        b[at] ^= 1 + rng.below(255) as u8;
        std::fs::write(site.path(&path), &b).unwrap();
        let _ = std::fs::remove_file(site.path("out.fs"));
        let o = run(site.ours(&["-R", "-r", "repo", "-o", "out.fs"]));
        if o.status.success() {
            assert!(
                site.read("out.fs") == *want,
                "byte {at} flipped: -R succeeded with wrong bytes"
            );
            restored += 1;
        } else {
            assert_eq!(o.status.code(), Some(1), "byte {at}: {}", stderr(&o));
            assert!(!site.path("out.fs").exists(), "byte {at}: output written");
            failed += 1;
        }
    }
    println!("50 flips: {failed} refused, {restored} restored the right bytes");
}

/// A copy of `site`'s Data.fs (and its index) and repository in a new
/// site.
fn copy_site(site: &Site) -> Site {
    let copy = Site::new();
    std::fs::remove_dir(copy.repo()).unwrap();
    copy_dir(&site.repo(), &copy.repo());
    for f in ["Data.fs", "Data.fs.index"] {
        std::fs::copy(site.path(f), copy.path(f)).unwrap();
    }
    copy
}

#[test]
fn a_crash_at_every_step_of_a_pack_delta_backup_keeps_every_restore_point_and_the_next_backup_restores()
 {
    // A plain chain of two backups, then a pack not yet backed up.
    let before = Site::new();
    zodb::grow_with(&before.data_fs(), 40, 600, &["--objects", "500"]);
    let mut states = Vec::new();
    for seed in [601, 602] {
        let stamp = next_stamp();
        ok(run(
            before.ours_at(&stamp, &["-B", "-r", "repo", "-f", "Data.fs"])
        ));
        states.push((stamp, before.committed()));
        zodb::grow_with(&before.data_fs(), 10, seed, &["--objects", "500"]);
    }
    let stamp = next_stamp();
    ok(run(
        before.ours_at(&stamp, &["-B", "-r", "repo", "-f", "Data.fs"])
    ));
    states.push((stamp, before.committed()));
    zodb::undo(&before.data_fs());
    zodb::pack_with(&before.data_fs(), &["--at", "0.5"]);
    let backup = ["-B", "--pack-delta", "-r", "repo", "-f", "Data.fs"];
    for step in [
        "backup:data-copied",
        "backup:data-renamed",
        "backup:sidecar-written",
        "backup:dat-written",
        "backup:index-written",
    ] {
        let site = copy_site(&before);
        let packed = site.committed();
        let mut c = site.ours(&backup);
        c.env("REPOZO_FAILPOINT", step);
        let o = run(c);
        assert!(
            crashed(&o),
            "{step}: the failpoint did not fire: {}",
            stderr(&o)
        );
        // The newest backup's stamp (its data file or its .dat).
        let newest = site.data_files().pop().unwrap()[..19].to_string();
        let restore_points = |when: &str| {
            for (stamp, data) in &states {
                ok(run(
                    site.ours(&["-R", "-r", "repo", "-D", stamp, "-o", "then.fs"])
                ));
                assert!(
                    site.read("then.fs") == *data,
                    "{step}, {when}: {stamp} restored other bytes"
                );
            }
        };
        restore_points("after the crash");
        let (stamp, data) = states.last().unwrap();
        ok(run(site.theirs(&[
            "-R", "-r", "repo", "-D", stamp, "-o", "zodb.fs",
        ])));
        assert!(
            site.read("zodb.fs") == *data,
            "{step}: ZODB's repozo restored {stamp} wrong"
        );
        // Now: the packed state, the one before, or a refusal naming the
        // newest backup; the same for -V.
        let o = run(site.ours(&["-R", "-r", "repo", "-o", "now.fs"]));
        if o.status.success() {
            let got = site.read("now.fs");
            assert!(
                got == packed || got == *data,
                "{step}: -R restored other bytes"
            );
        } else {
            assert!(stderr(&o).contains(&newest), "{step}: -R: {}", stderr(&o));
        }
        let o = run(site.ours(&["-V", "-r", "repo"]));
        assert!(
            o.status.success() || stderr(&o).contains(&newest),
            "{step}: -V: {}",
            stderr(&o)
        );
        // The next backup makes the repository whole.
        zodb::grow(&site.data_fs(), 2, 603);
        ok(run(site.ours(&backup)));
        ok(run(site.ours(&["-R", "-r", "repo", "-o", "now.fs"])));
        assert!(
            site.read("now.fs") == site.committed(),
            "{step}: the next backup restores other bytes"
        );
        ok(run(site.ours(&["-V", "-r", "repo"])));
        restore_points("after the next backup");
        assert!(
            !site.repo_listing().iter().any(|n| n.contains(".tmp")),
            "{step}: temporary files survived the next backup: {:?}",
            site.repo_listing()
        );
    }
}

#[test]
fn a_pack_delta_based_on_a_gzip_chain_zodbs_repozo_wrote_restores_exactly_when_the_file_grew_past_it()
 {
    // ZODB's repozo writes the base chain (its gzip files are one deflate
    // stream each); after the pack, the Data.fs grows past the size
    // backed up, so the backup finds it changed rather than shrunk.
    let site = Site::new();
    zodb::grow_with(&site.data_fs(), 40, 800, &["--objects", "500"]);
    let mut states = Vec::new();
    for seed in [801, 0] {
        let stamp = next_stamp();
        ok(run(site.theirs_at(
            &stamp,
            &["-Bz", "-r", "repo", "-f", "Data.fs"],
        )));
        states.push((stamp, site.committed()));
        if seed > 0 {
            zodb::grow_with(&site.data_fs(), 10, seed, &["--objects", "500"]);
        }
    }
    zodb::undo(&site.data_fs());
    zodb::pack_with(&site.data_fs(), &["--at", "0.8"]);
    let before = states[1].1.len();
    let mut seed = 802;
    while site.committed().len() <= before {
        zodb::grow_with(&site.data_fs(), 10, seed, &["--objects", "500"]);
        seed += 1;
    }
    let stamp = next_stamp();
    let o = ok(run(site.ours_at(
        &stamp,
        &["-B", "--pack-delta", "-v", "-r", "repo", "-f", "Data.fs"],
    )));
    let said = stderr(&o);
    assert!(
        said.contains("file changed") && said.contains("pack delta"),
        "{said}"
    );
    states.push((stamp, site.committed()));
    assert!(is_delta(&site, site.data_files().last().unwrap()));
    for (stamp, data) in &states {
        ok(run(
            site.ours(&["-R", "-r", "repo", "-D", stamp, "-o", "out.fs"])
        ));
        assert!(
            site.read("out.fs") == *data,
            "{stamp}: restored other bytes"
        );
    }
    ok(run(site.ours(&["-V", "--deep", "-r", "repo"])));
}

#[test]
fn a_data_fs_replaced_by_another_database_gets_a_plain_full_backup_not_a_pack_delta() {
    // Not a pack: another database under the same name shares (almost)
    // no bytes with the last backup, so a delta would only keep the old
    // chain alive; a plain full backup is written, and nothing is left of
    // the delta that was tried.
    let site = Site::new();
    zodb::grow_with(&site.data_fs(), 30, 900, &["--objects", "500"]);
    let first = next_stamp();
    ok(run(site.ours_at(
        &first,
        &["-B", "--pack-delta", "-r", "repo", "-f", "Data.fs"],
    )));
    let old = site.committed();
    std::fs::remove_file(site.data_fs()).unwrap();
    let _ = std::fs::remove_file(site.path("Data.fs.index"));
    zodb::grow_with(&site.data_fs(), 20, 901, &["--objects", "300"]);
    let second = next_stamp();
    let o = ok(run(site.ours_at(
        &second,
        &[
            "-B",
            "--pack-delta",
            "-v",
            "--json",
            "-r",
            "repo",
            "-f",
            "Data.fs",
        ],
    )));
    let said = stderr(&o);
    assert!(
        said.contains("full backup instead of a pack delta")
            && said.contains("writing full backup"),
        "{said}"
    );
    assert!(stdout(&o).contains("\"kind\":\"full\""), "{}", stdout(&o));
    let newest = site.data_files().last().unwrap().clone();
    assert_eq!(newest, format!("{second}.fs"), "{:?}", site.repo_listing());
    assert!(
        site.repo_listing().iter().all(|n| !n.contains(".tmp")),
        "{:?}",
        site.repo_listing()
    );
    for (stamp, data) in [(&first, &old), (&second, &site.committed())] {
        ok(run(
            site.ours(&["-R", "-r", "repo", "-D", stamp, "-o", "out.fs"])
        ));
        assert!(
            site.read("out.fs") == *data,
            "{stamp}: restored other bytes"
        );
    }
    // ZODB's repozo reads the new chain: nothing of ours is in it.
    ok(run(site.theirs(&["-V", "-r", "repo"])));
}
