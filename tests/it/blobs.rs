//! Blob (blobstorage) backups: `-B --blob-dir`, `-R --blob-dir`, `-V` of
//! the manifests and objects, retention, crashes and the pack race, all
//! against histories written by real ZODB 6.4 (`tests/py/blobtool.py`,
//! which also checks every restored Data.fs + blob tree against a journal
//! of what ZODB wrote). ZODB's own repozo keeps working on the same
//! repositories.
//!
//! `REPOZO_BLOB_CASES` sets the number of random histories (default 3, of
//! 8 steps each).

use crate::common::blobsite;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{
    Paused, Site, crashed, is_data_file, listing, next_stamp, ok, run, stderr, stdout,
};
use blobsite::snapshot;

/// One line of a `<stamp>.blobs` manifest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Entry {
    Stored {
        oid: String,
        tid: String,
        size: u64,
        hash: String,
    },
    Gone {
        oid: String,
        tid: String,
    },
}

impl Entry {
    fn key(&self) -> (String, String) {
        match self {
            Entry::Stored { oid, tid, .. } | Entry::Gone { oid, tid } => (oid.clone(), tid.clone()),
        }
    }
}

#[derive(Debug)]
struct Manifest {
    layout: String,
    data: String,
    kind: String,
    start: u64,
    end: u64,
    entries: Vec<Entry>,
}

impl Manifest {
    fn gone(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .filter(|e| matches!(e, Entry::Gone { .. }))
            .map(Entry::key)
            .collect()
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses a manifest strictly (header, sorted entry lines, footer count),
/// panicking with the file's name and text on any deviation from the spec.
fn parse_manifest(path: &Path) -> Manifest {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("manifest {}: {e}", path.display()));
    let bad = |why: &str| -> ! { panic!("manifest {}: {why}\n{text}", path.display()) };
    if !text.ends_with('\n') {
        bad("does not end with a newline");
    }
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() < 2 {
        bad("shorter than a header and a footer");
    }
    let header: Vec<&str> = lines[0].split(' ').collect();
    if header.len() != 9 || header[..3] != ["#", "repozo-blobs", "1"] {
        bad("bad header line");
    }
    let mut fields = BTreeMap::new();
    for f in &header[3..] {
        let (k, v) = f.split_once('=').unwrap_or_else(|| bad("bad header field"));
        fields.insert(k, v.to_owned());
    }
    let field = |k: &str| fields.get(k).cloned().unwrap_or_else(|| bad(k));
    let num = |k: &str| field(k).parse::<u64>().unwrap_or_else(|_| bad(k));
    let m_layout = field("layout");
    if m_layout != "bushy" && m_layout != "lawn" {
        bad("bad layout");
    }
    let kind = field("kind");
    if kind != "full" && kind != "incremental" {
        bad("bad kind");
    }
    let mut entries = Vec::new();
    for line in &lines[1..lines.len() - 1] {
        let w: Vec<&str> = line.split(' ').collect();
        if w.len() != 4 || !is_hex(w[0], 16) || !is_hex(w[1], 16) {
            bad(&format!("bad entry line {line:?}"));
        }
        let (oid, tid) = (w[0].to_owned(), w[1].to_owned());
        if w[2] == "-" && w[3] == "gone" {
            entries.push(Entry::Gone { oid, tid });
        } else {
            let size = w[2]
                .parse()
                .unwrap_or_else(|_| bad(&format!("bad size in {line:?}")));
            if !is_hex(w[3], 64) {
                bad(&format!("bad hash in {line:?}"));
            }
            let hash = w[3].to_owned();
            entries.push(Entry::Stored {
                oid,
                tid,
                size,
                hash,
            });
        }
    }
    let keys: Vec<_> = entries.iter().map(Entry::key).collect();
    if keys.windows(2).any(|w| w[0] >= w[1]) {
        bad("entry lines not sorted or repeated");
    }
    let footer: Vec<&str> = lines[lines.len() - 1].split(' ').collect();
    if footer.len() != 4 || footer[..2] != ["#", "end"] || !is_hex(footer[3], 64) {
        bad("bad footer line");
    }
    if footer[2].parse::<usize>().ok() != Some(entries.len()) {
        bad("footer count differs from the number of entry lines");
    }
    let gone = entries
        .iter()
        .filter(|e| matches!(e, Entry::Gone { .. }))
        .count() as u64;
    if num("gone") != gone {
        bad("header gone= differs from the number of gone lines");
    }
    let body = &text[..text.len() - lines[lines.len() - 1].len() - 1];
    if repozo::blob::Hash::of(body.as_bytes()).to_string() != footer[3] {
        bad("footer hash is not the BLAKE3 of the lines above it");
    }
    Manifest {
        layout: m_layout,
        data: field("data"),
        kind,
        start: num("start"),
        end: num("end"),
        entries,
    }
}

fn is_full(name: &str) -> bool {
    name.ends_with(".fs") || name.ends_with(".fsz")
}

fn stamp_part(name: &str) -> &str {
    &name[..19]
}

/// The data files of the chain selected at `date` (the newest full backup
/// up to `date` and the incrementals after it up to `date`).
fn chain_at(repo: &Path, date: &str) -> Vec<String> {
    let files: Vec<String> = listing(repo)
        .into_iter()
        .filter(|n| is_data_file(n) && stamp_part(n) <= date)
        .collect();
    let start = files
        .iter()
        .rposition(|n| is_full(n))
        .unwrap_or_else(|| panic!("no full backup up to {date} in {files:?}"));
    files[start..].to_vec()
}

/// `data file name -> (start, end)` from every `.dat` in the repository.
fn dat_ranges(repo: &Path) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for name in listing(repo).into_iter().filter(|n| n.ends_with(".dat")) {
        for line in std::fs::read_to_string(repo.join(&name)).unwrap().lines() {
            let w: Vec<&str> = line.split(' ').collect();
            let file = Path::new(w[0]).file_name().unwrap().to_str().unwrap();
            out.insert(
                file.to_owned(),
                (w[1].parse().unwrap(), w[2].parse().unwrap()),
            );
        }
    }
    out
}

fn manifest_path(repo: &Path, data_file: &str) -> PathBuf {
    repo.join(format!("{}.blobs", stamp_part(data_file)))
}

fn object_path(repo: &Path, hash: &str) -> PathBuf {
    repo.join("blobs")
        .join("objects")
        .join(&hash[..2])
        .join(hash)
}

/// Every file under `repo/blobs/objects`, by name.
fn stored_objects(repo: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let objects = repo.join("blobs").join("objects");
    if !objects.exists() {
        return out;
    }
    for d in std::fs::read_dir(&objects).unwrap() {
        let d = d.unwrap();
        for f in std::fs::read_dir(d.path()).unwrap() {
            let name = f.unwrap().file_name().into_string().unwrap();
            assert!(
                name.starts_with(&*d.file_name().to_string_lossy()),
                "object {name} in directory {:?}",
                d.file_name()
            );
            out.insert(name);
        }
    }
    out
}

/// `-B -r repo -f Data.fs --blob-dir=blobs EXTRA`.
fn backup_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["-B", "-r", "repo", "-f", "Data.fs", "--blob-dir=blobs"];
    args.extend_from_slice(extra);
    args
}

/// The blob tests' own steps on a [`Site`] with blobs.
impl Site {
    /// The blob hashes (sha256) the journal recorded for step `k` that no
    /// earlier step had: blob contents new to the site.
    fn new_contents_at(&self, k: usize) -> usize {
        let j = self.journal();
        let steps = j["steps"].as_array().unwrap();
        let seen: BTreeSet<&str> = steps[..k]
            .iter()
            .flat_map(|s| s["current"].as_object().unwrap().values())
            .map(|v| v.as_str().unwrap())
            .collect();
        steps[k]["current"]
            .as_object()
            .unwrap()
            .values()
            .filter(|v| !seen.contains(v.as_str().unwrap()))
            .count()
    }

    /// Our `-B --blob-dir=blobs EXTRA`; must exit 0. Returns its stamp.
    fn backup(&self, extra: &[&str]) -> String {
        let stamp = next_stamp();
        let o = run(self.ours_at(&stamp, &backup_args(extra)));
        assert!(
            o.status.success(),
            "{}: backup {extra:?} at {stamp} failed with {}: {}",
            self.name(),
            o.status,
            stderr(&o)
        );
        assert!(
            self.repo().join("blobs").join("STATE").is_file(),
            "{}: no blobs/STATE after a blob backup",
            self.name()
        );
        stamp
    }

    /// Our `-R -o OUT --blob-dir=BLOB_DIR [-D DATE]`, whatever its status.
    fn restore_status(&self, date: Option<&str>, out: &str, blob_dir: &str) -> Output {
        let bd = format!("--blob-dir={blob_dir}");
        let mut args = vec!["-R", "-r", "repo", "-o", out, &bd];
        if let Some(d) = date {
            args.extend(["-D", d]);
        }
        run(self.ours(&args))
    }

    /// Like [`Site::restore_status`]; must exit 0.
    fn restore(&self, date: Option<&str>, out: &str, blob_dir: &str) {
        let o = self.restore_status(date, out, blob_dir);
        assert!(
            o.status.success(),
            "{}: restore -D {date:?} -o {out} --blob-dir={blob_dir} failed with {}: {}",
            self.name(),
            o.status,
            stderr(&o)
        );
    }

    /// Blob records of `data_fs` per ZODB: (oid, tid) -> transaction pos.
    fn records(&self, data_fs: &str) -> BTreeMap<(String, String), u64> {
        let o = self.blobtool(&["records", data_fs, "--with-pos"]);
        stdout(&o)
            .lines()
            .map(|l| {
                let w: Vec<&str> = l.split(' ').collect();
                ((w[0].to_owned(), w[1].to_owned()), w[2].parse().unwrap())
            })
            .collect()
    }

    /// Checks the manifests of the chain selected at `date` against the
    /// Data.fs restored for that date (`restored`): every chain file has a
    /// manifest naming it, of its kind and with the byte range of its `.dat`
    /// line, listing exactly the blob records of that range, each stored
    /// (no `gone` line) as a read-only object of the recorded size; their
    /// union is every blob record of the restored Data.fs.
    fn check_manifests(&self, date: &str, restored: &str) {
        let repo = self.repo();
        let records = self.records(restored);
        let ranges = dat_ranges(&repo);
        let mut union = BTreeSet::new();
        let what = format!("{} at {date}", self.name());
        for f in chain_at(&repo, date) {
            let mp = manifest_path(&repo, &f);
            assert!(mp.is_file(), "{what}: {f} has no manifest");
            let m = parse_manifest(&mp);
            assert_eq!(
                m.data,
                f,
                "{what}: manifest {} names another file",
                mp.display()
            );
            let kind = if is_full(&f) { "full" } else { "incremental" };
            assert_eq!(m.kind, kind, "{what}: manifest of {f}");
            let (start, end) = ranges[&f];
            assert_eq!(
                (m.start, m.end),
                (start, end),
                "{what}: manifest range of {f} differs from its .dat line"
            );
            let want: BTreeSet<(String, String)> = records
                .iter()
                .filter(|&(_, &pos)| pos >= start && pos < end)
                .map(|(k, _)| k.clone())
                .collect();
            let have: BTreeSet<(String, String)> = m.entries.iter().map(Entry::key).collect();
            assert_eq!(
                have, want,
                "{what}: manifest of {f} differs from ZODB's blob records in [{start}, {end})"
            );
            for e in &m.entries {
                match e {
                    Entry::Gone { oid, tid } => {
                        panic!("{what}: manifest of {f} has {oid} {tid} gone")
                    }
                    Entry::Stored { size, hash, .. } => {
                        let p = object_path(&repo, hash);
                        let md = std::fs::metadata(&p)
                            .unwrap_or_else(|e| panic!("{what}: object {}: {e}", p.display()));
                        assert_eq!(md.len(), *size, "{what}: size of object {hash}");
                        assert_eq!(
                            md.permissions().mode() & 0o222,
                            0,
                            "{what}: object {hash} is writable"
                        );
                    }
                }
            }
            union.extend(have);
        }
        let all: BTreeSet<(String, String)> = records.keys().cloned().collect();
        assert_eq!(
            union, all,
            "{what}: the chain's manifests differ from the blob records"
        );
    }

    /// The `gone` lines of the manifest of the data file written at `stamp`.
    fn manifest_at(&self, stamp: &str) -> Manifest {
        parse_manifest(&self.repo().join(format!("{stamp}.blobs")))
    }

    fn latest_chain(&self) -> Vec<String> {
        chain_at(&self.repo(), "9999-99-99-99-99-99")
    }

    /// Our `-V` (with `extra`), must pass.
    fn verify(&self, extra: &[&str]) {
        let mut args = vec!["-V", "-r", "repo"];
        args.extend_from_slice(extra);
        let o = run(self.ours(&args));
        assert!(
            o.status.success(),
            "{}: -V {extra:?} failed with {}: {}",
            self.name(),
            o.status,
            stderr(&o)
        );
    }
}

const STEPS: u64 = 8;

/// One random history: after every step a backup (plain, -Q, -z, -F in
/// turn), then every backup restored as of its stamp and checked.
fn random_history(seed: u64) {
    let site = Site::with_blobs("bushy", seed).named(&format!("history {seed}"));
    let modes: [&[&str]; 4] = [&[], &["-Q"], &["-z"], &["-F"]];
    let mut backups = vec![(site.backup(&[]), site.current_step())];
    for i in 1..=STEPS {
        let k = if i % 4 == 0 {
            // Packs at fixed places, alternating whether ZODB keeps the
            // removed files in blobs.old.
            let keep = if i % 8 == 0 { "no" } else { "yes" };
            site.step(
                seed * 1000 + i,
                &["--action", "pack", "--pack-keep-old", keep],
            )
        } else {
            site.step(seed * 1000 + i, &["--no-pack"])
        };
        let stamp = site.backup(modes[i as usize % 4]);
        backups.push((stamp, k));
    }
    site.verify(&[]);
    site.verify(&["-Q"]);
    site.verify(&["--deep"]);
    for (i, (stamp, k)) in backups.iter().enumerate() {
        let (out, bd) = (format!("r{i}.fs"), format!("r{i}-blobs"));
        site.restore(Some(stamp), &out, &bd);
        site.check(&out, &bd, Some(*k));
        site.check_manifests(stamp, &out);
    }
    // Restoring over an existing tree (and Data.fs) replaces it.
    site.restore(None, "r0.fs", "r0-blobs");
    site.check("r0.fs", "r0-blobs", Some(site.current_step()));
}

#[test]
fn random_blob_histories_restore_at_every_stamp_to_what_zodb_wrote() {
    blobsite::run_histories(blobsite::cases("REPOZO_BLOB_CASES", 3), random_history);
}

#[test]
fn zodbs_repozo_restores_verifies_and_prunes_a_repository_with_blobs() {
    let site = Site::with_blobs("bushy", 21).named("interop");
    let mut stamps = vec![site.backup(&[])];
    for (i, mode) in [&[][..], &["-z"], &["-Q"], &[]].iter().enumerate() {
        site.step(2100 + i as u64, &["--no-pack"]);
        stamps.push(site.backup(mode));
    }
    for (i, stamp) in stamps.iter().enumerate() {
        let (o, t) = (format!("o{i}.fs"), format!("t{i}.fs"));
        site.restore(Some(stamp), &o, &format!("o{i}-blobs"));
        ok(run(
            site.theirs(&["-R", "-r", "repo", "-D", stamp, "-o", &t])
        ));
        assert!(
            site.read(&o) == site.read(&t),
            "ours and ZODB's repozo restored different Data.fs bytes at {stamp}"
        );
    }
    ok(run(site.theirs(&["-V", "-r", "repo"])));

    let manifests = |site: &Site| -> BTreeMap<String, Vec<u8>> {
        listing(&site.repo())
            .into_iter()
            .filter(|n| n.ends_with(".blobs"))
            .map(|n| {
                let b = std::fs::read(site.repo().join(&n)).unwrap();
                (n, b)
            })
            .collect()
    };
    let blobs_before = snapshot(&site.repo().join("blobs"));
    let manifests_before = manifests(&site);

    // Its -B -k making an incremental deletes nothing.
    site.step(2150, &["--no-pack"]);
    let inc = next_stamp();
    ok(run(site.theirs_at(
        &inc,
        &["-B", "-k", "-r", "repo", "-f", "Data.fs"],
    )));
    assert!(site.repo().join(format!("{inc}.deltafs")).is_file());
    assert!(
        snapshot(&site.repo().join("blobs")) == blobs_before,
        "ZODB's -B -k changed blobs/"
    );
    assert_eq!(manifests(&site), manifests_before);

    // Its -BF -k drops the old chain and leaves our files alone.
    site.step(2160, &["--no-pack"]);
    let full = next_stamp();
    ok(run(site.theirs_at(
        &full,
        &["-BF", "-k", "-r", "repo", "-f", "Data.fs"],
    )));
    assert_eq!(site.data_files(), vec![format!("{full}.fs")]);
    assert!(
        snapshot(&site.repo().join("blobs")) == blobs_before,
        "ZODB's -BF -k changed blobs/"
    );
    assert_eq!(manifests(&site), manifests_before);

    // Our next blob backup gives ZODB's full backup its manifest.
    let k = site.current_step();
    site.backup(&[]);
    assert!(
        manifest_path(&site.repo(), &format!("{full}.fs")).is_file(),
        "no manifest for the full backup written by ZODB's repozo"
    );
    site.restore(None, "last.fs", "last-blobs");
    site.check("last.fs", "last-blobs", Some(k));
    site.check_manifests(&next_stamp(), "last.fs");
    site.verify(&[]);
    ok(run(site.theirs(&["-V", "-r", "repo"])));
}

#[test]
fn a_pack_during_the_blob_copy_is_caught_by_blobs_old_or_reported_as_gone() {
    for keep in ["yes", "no"] {
        let site = Site::with_blobs("bushy", 31).named(&format!("pack race keep-old {keep}"));
        site.step(3100, &["--action", "modify"]);
        let k = site.current_step();
        let stamp = next_stamp();
        let paused = Paused::at(
            "backup:blobs-start",
            site.ours_at(&stamp, &backup_args(&[])),
        );
        let o = site.blobtool(&[
            "modify-and-pack",
            "Data.fs",
            "blobs",
            "--pack-keep-old",
            keep,
            "--journal",
            "journal.json",
        ]);
        let text = stdout(&o);
        let modified: Vec<&str> = text
            .lines()
            .find_map(|l| l.strip_prefix("modified "))
            .expect("modify-and-pack names the blob it modified")
            .split(' ')
            .collect();
        let modified = (modified[0].to_owned(), modified[1].to_owned());
        let o = paused.resume();
        if keep == "yes" {
            assert!(
                o.status.success(),
                "keep-old yes: the backup failed with {}: {}",
                o.status,
                stderr(&o)
            );
            assert!(site.manifest_at(&stamp).gone().is_empty());
            site.restore(Some(&stamp), "r.fs", "r-blobs");
            site.check("r.fs", "r-blobs", Some(k));
            site.check_manifests(&stamp, "r.fs");
            site.verify(&[]);
        } else {
            assert_eq!(
                o.status.code(),
                Some(3),
                "keep-old no: the backup should exit 3: {}",
                stderr(&o)
            );
            assert!(
                site.path(&format!("repo/{stamp}.fs")).is_file(),
                "no data file written"
            );
            let gone = site.manifest_at(&stamp).gone();
            assert!(
                gone.contains(&modified),
                "the manifest does not list {modified:?} as gone: {gone:?}"
            );
            let v = run(site.ours(&["-V", "-r", "repo"]));
            assert_eq!(
                v.status.code(),
                Some(1),
                "-V with a gone line: {}",
                stderr(&v)
            );
            assert!(
                stderr(&v).contains("gone") || stderr(&v).contains(&modified.0),
                "-V does not name the problem: {}",
                stderr(&v)
            );
            let before = site.data_files();
            let next = site.backup(&[]);
            let made: Vec<String> = site
                .data_files()
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            assert_eq!(
                made,
                vec![format!("{next}.fs")],
                "the next backup is not full"
            );
            site.verify(&[]);
            site.restore(None, "r.fs", "r-blobs");
            site.check("r.fs", "r-blobs", Some(site.current_step()));
            site.check_manifests(&next, "r.fs");
        }
    }
}

#[test]
fn a_crash_during_the_blob_backup_leaves_a_restorable_repository_that_the_next_backup_completes() {
    let steps = [
        "backup:blobs-start",
        "backup:blob-stored",
        "backup:manifest-written",
    ];
    for (i, fp) in steps.iter().enumerate() {
        let site = Site::with_blobs("bushy", 40 + i as u64).named(&format!("crash at {fp}"));
        site.backup(&[]);
        let k = site.step(4000 + i as u64, &["--action", "create"]);
        assert!(
            site.new_contents_at(k) > 0,
            "test setup: step {k} made no new blob contents, nothing to store"
        );
        let stamp = next_stamp();
        let mut c = site.ours_at(&stamp, &backup_args(&[]));
        c.env("REPOZO_FAILPOINT", fp);
        let o = run(c);
        assert!(
            crashed(&o),
            "{fp}: the backup did not stop at the failpoint ({}): {}",
            o.status,
            stderr(&o)
        );
        // The Data.fs backup is complete: both tools restore it.
        let data = site.read("Data.fs");
        ok(run(site.ours(&["-R", "-r", "repo", "-o", "ours.fs"])));
        ok(run(site.theirs(&["-R", "-r", "repo", "-o", "theirs.fs"])));
        assert!(
            site.read("ours.fs") == data,
            "{fp}: ours restored other bytes"
        );
        assert!(
            site.read("theirs.fs") == data,
            "{fp}: ZODB's repozo restored other bytes"
        );
        let has_manifest = site.repo().join(format!("{stamp}.blobs")).is_file();
        if *fp == "backup:manifest-written" {
            assert!(has_manifest, "{fp}: no manifest");
        } else {
            assert!(
                !has_manifest,
                "{fp}: a manifest before the failpoint's step"
            );
            // A blob restore needs every manifest: it refuses, touching nothing.
            let o = site.restore_status(None, "x.fs", "x-blobs");
            assert_eq!(
                o.status.code(),
                Some(1),
                "{fp}: restore without a manifest: {}",
                stderr(&o)
            );
            assert!(!site.path("x.fs").exists() && !site.path("x-blobs").exists());
        }
        // The next backup writes what is missing (odd rounds after more
        // commits, so it also makes an incremental).
        if i % 2 == 1 {
            site.step(4100 + i as u64, &["--no-pack"]);
        }
        let next = site.backup(&[]);
        for f in site.latest_chain() {
            assert!(
                manifest_path(&site.repo(), &f).is_file(),
                "{fp}: {f} still has no manifest"
            );
        }
        site.verify(&[]);
        site.restore(None, "r.fs", "r-blobs");
        site.check("r.fs", "r-blobs", Some(site.current_step()));
        site.check_manifests(&next, "r.fs");
    }
}

#[test]
fn a_damaged_object_fails_verify_and_restore_and_the_restore_touches_nothing() {
    let site = Site::with_blobs("bushy", 51).named("damaged object");
    site.step(5100, &["--action", "create"]);
    site.backup(&[]);
    site.step(5101, &["--action", "modify"]);
    site.backup(&[]);
    // Pre-existing output and blob tree, with other content.
    std::fs::write(site.path("out.fs"), b"FS21 not really a database").unwrap();
    let old = site.path("restored");
    std::fs::create_dir_all(old.join("tmp")).unwrap();
    std::fs::create_dir_all(old.join("0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x01")).unwrap();
    std::fs::write(old.join(".layout"), "bushy").unwrap();
    let f = old.join("0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x01/0x01.blob");
    std::fs::write(&f, b"old blob").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o444)).unwrap();
    let site_before = listing(site.dir());
    let (out_before, old_before) = (snapshot(&site.path("out.fs")), snapshot(&old));

    // Objects by size, biggest first.
    let mut objects: Vec<(u64, String)> = stored_objects(&site.repo())
        .into_iter()
        .map(|h| {
            (
                std::fs::metadata(object_path(&site.repo(), &h))
                    .unwrap()
                    .len(),
                h,
            )
        })
        .collect();
    objects.sort();
    objects.reverse();
    assert!(
        objects.len() >= 2 && objects[1].0 > 0,
        "test setup: not two non-empty objects: {objects:?}"
    );
    let damage = |hash: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let p = object_path(&site.repo(), hash);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut b = std::fs::read(&p).unwrap();
        f(&mut b);
        std::fs::write(&p, b).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let flipped = objects[0].1.clone();
    damage(&flipped, &|b| {
        let mid = b.len() / 2;
        b[mid] ^= 0x20;
    });

    let v = run(site.ours(&["-V", "-r", "repo"]));
    assert_eq!(
        v.status.code(),
        Some(1),
        "-V with a flipped byte: {}",
        stderr(&v)
    );
    assert!(
        stderr(&v).contains(&flipped[..16]) || stderr(&v).contains("blob"),
        "-V does not name the damaged object: {}",
        stderr(&v)
    );
    // -Q checks sizes only.
    site.verify(&["-Q"]);

    let o = site.restore_status(None, "out.fs", "restored");
    assert_eq!(
        o.status.code(),
        Some(1),
        "restore from a damaged object: {}",
        stderr(&o)
    );
    assert!(
        snapshot(&site.path("out.fs")) == out_before,
        "the restore changed out.fs"
    );
    assert!(
        snapshot(&old) == old_before,
        "the restore changed the blob directory"
    );
    assert_eq!(
        listing(site.dir()),
        site_before,
        "the restore left files behind"
    );

    // A truncated object fails even the quick check.
    damage(&objects[1].1, &|b| {
        b.pop();
    });
    let v = run(site.ours(&["-V", "-Q", "-r", "repo"]));
    assert_eq!(
        v.status.code(),
        Some(1),
        "-V -Q with a short object: {}",
        stderr(&v)
    );
}

#[test]
fn a_lawn_blob_directory_round_trips_as_lawn() {
    let site = Site::with_blobs("lawn", 61).named("lawn");
    site.backup(&[]);
    site.step(6100, &["--action", "modify"]);
    site.step(6101, &["--action", "undo"]);
    let stamp = site.backup(&["-z"]);
    assert_eq!(site.manifest_at(&stamp).layout, "lawn");
    site.verify(&[]);
    site.restore(None, "r.fs", "r-blobs");
    assert_eq!(
        std::fs::read_to_string(site.path("r-blobs/.layout"))
            .unwrap()
            .trim(),
        "lawn"
    );
    site.check("r.fs", "r-blobs", Some(site.current_step()));
    site.check_manifests(&stamp, "r.fs");
}

#[test]
fn a_full_backup_with_kill_old_keeps_only_the_objects_its_manifest_references() {
    let site = Site::with_blobs("bushy", 71).named("kill old");
    site.backup(&[]);
    site.step(7100, &["--action", "modify"]);
    site.backup(&["-z"]);
    site.step(7101, &["--action", "modify"]);
    site.step(7102, &["--action", "drop"]);
    site.backup(&[]);
    site.step(7103, &["--action", "pack", "--pack-keep-old", "no"]);
    let before = stored_objects(&site.repo());
    let stamp = site.backup(&["-F", "-k"]);
    assert_eq!(site.data_files(), vec![format!("{stamp}.fs")]);
    let blobs: Vec<String> = listing(&site.repo())
        .into_iter()
        .filter(|n| n.ends_with(".blobs"))
        .collect();
    assert_eq!(
        blobs,
        vec![format!("{stamp}.blobs")],
        "manifests of dropped files remain"
    );
    let referenced: BTreeSet<String> = site
        .manifest_at(&stamp)
        .entries
        .iter()
        .map(|e| match e {
            Entry::Stored { hash, .. } => hash.clone(),
            Entry::Gone { oid, tid } => panic!("{oid} {tid} gone"),
        })
        .collect();
    let after = stored_objects(&site.repo());
    assert_eq!(
        after, referenced,
        "objects left differ from those referenced"
    );
    assert!(
        after.len() < before.len(),
        "test setup: the pack dropped no object ({} before)",
        before.len()
    );
    site.verify(&[]);
    site.restore(None, "r.fs", "r-blobs");
    site.check("r.fs", "r-blobs", Some(site.current_step()));
}

#[test]
fn a_chain_written_by_zodbs_repozo_or_by_us_without_blob_dir_gets_manifests_on_our_first_blob_backup()
 {
    let site = Site::with_blobs("bushy", 81).named("theirs first");
    let mut stamps = Vec::new();
    for (i, flags) in ["-B", "-Bz", "-BQ"].iter().enumerate() {
        if i > 0 {
            site.step(8100 + i as u64, &["--no-pack"]);
        }
        let stamp = next_stamp();
        ok(run(site.theirs_at(
            &stamp,
            &[flags, "-r", "repo", "-f", "Data.fs"],
        )));
        stamps.push((stamp, site.current_step()));
    }
    assert_eq!(site.data_files().len(), 3);
    // Ours without --blob-dir writes no manifest either.
    site.step(8110, &["--no-pack"]);
    let stamp = next_stamp();
    ok(run(
        site.ours_at(&stamp, &["-B", "-r", "repo", "-f", "Data.fs"])
    ));
    stamps.push((stamp, site.current_step()));
    assert_eq!(site.data_files().len(), 4);
    // Without manifests a blob restore refuses and touches nothing.
    let o = site.restore_status(None, "x.fs", "x-blobs");
    assert_eq!(
        o.status.code(),
        Some(1),
        "restore without manifests: {}",
        stderr(&o)
    );
    assert!(!site.path("x.fs").exists() && !site.path("x-blobs").exists());

    let files = site.data_files();
    site.backup(&[]);
    assert_eq!(
        site.data_files(),
        files,
        "nothing new to back up, yet a new data file"
    );
    for f in &files {
        assert!(
            manifest_path(&site.repo(), f).is_file(),
            "{f} has no manifest"
        );
    }
    site.verify(&[]);
    for (i, (stamp, k)) in stamps.iter().enumerate() {
        let (out, bd) = (format!("r{i}.fs"), format!("r{i}-blobs"));
        site.restore(Some(stamp), &out, &bd);
        site.check(&out, &bd, Some(*k));
        site.check_manifests(stamp, &out);
    }
}

#[test]
fn blob_dir_without_an_output_file_is_refused() {
    let site = Site::with_blobs("bushy", 91).named("no -o");
    site.backup(&[]);
    let o = run(site.ours(&["-R", "-r", "repo", "--blob-dir=r-blobs"]));
    assert!(
        matches!(o.status.code(), Some(1) | Some(2)),
        "-R --blob-dir without -o: {} {}",
        o.status,
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("-o"),
        "message does not mention -o: {}",
        stderr(&o)
    );
    assert!(!site.path("r-blobs").exists());
}

#[test]
fn a_standby_blob_directory_follows_incremental_recovers_forward_and_back() {
    let site = Site::with_blobs("bushy", 101).named("standby");
    let mut states = Vec::new();
    states.push((site.backup(&[]), site.current_step()));
    for i in 0..3u64 {
        site.step(10100 + i, &["--action", "create"]);
        site.step(10110 + i, &["--action", "modify"]);
        site.step(10120 + i, &["--action", "drop"]);
        states.push((site.backup(&["-Q"]), site.current_step()));
    }
    let incremental = |date: &str, quick: bool| {
        let mut args = vec![
            "-R",
            "-r",
            "repo",
            "-o",
            "standby.fs",
            "--blob-dir=standby-blobs",
            "--incremental",
            "-D",
            date,
        ];
        if quick {
            args.push("-Q");
        }
        let o = run(site.ours(&args));
        assert!(
            o.status.success(),
            "--incremental --blob-dir -D {date}: {} {}",
            o.status,
            stderr(&o)
        );
    };
    // Forward one state at a time (the first is a full recover), then
    // back to the first and forward to the last, in both proof modes.
    for (i, (stamp, k)) in states.iter().enumerate() {
        incremental(stamp, i % 2 == 1);
        site.check("standby.fs", "standby-blobs", Some(*k));
    }
    let (first, k0) = &states[0];
    incremental(first, false);
    site.check("standby.fs", "standby-blobs", Some(*k0));
    let (last, kn) = states.last().unwrap();
    incremental(last, true);
    site.check("standby.fs", "standby-blobs", Some(*kn));
    // The same bytes as a full restore of that state.
    site.restore(Some(last), "full.fs", "full-blobs");
    assert_eq!(site.read("standby.fs"), site.read("full.fs"));
    assert_eq!(
        snapshot(&site.path("standby-blobs")),
        snapshot(&site.path("full-blobs")),
        "the standby's blob tree differs from a full restore's"
    );
    // A damaged file in the standby's tree is repaired by the default
    // (hashing) mode.
    let victim = walk_blobs(&site.path("standby-blobs"))
        .into_iter()
        .next()
        .expect("the standby has blob files");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    if let Some(b) = bytes.first_mut() {
        *b ^= 0xff;
    } else {
        bytes.push(1);
    }
    std::fs::write(&victim, &bytes).unwrap();
    incremental(last, false);
    site.check("standby.fs", "standby-blobs", Some(*kn));
}

/// Every `*.blob` file under `root`.
fn walk_blobs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "blob") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn deep_verify_finds_a_blob_record_missing_from_the_manifests() {
    let site = Site::with_blobs("bushy", 111).named("deep");
    site.backup(&[]);
    site.step(11100, &["--action", "create"]);
    let stamp = site.backup(&[]);
    site.verify(&["--deep"]);
    // A manifest that lost a line but is otherwise intact (its checksum
    // recomputed): -V cannot tell, -V --deep can.
    let path = manifest_path(&site.repo(), &site.data_files().pop().unwrap());
    let p = path.to_str().unwrap();
    let mut m = repozo::blob::Manifest::read(p).unwrap();
    assert!(!m.entries.is_empty(), "the step created no blob in {stamp}");
    m.entries.remove(0);
    std::fs::write(&path, m.to_bytes()).unwrap();
    site.verify(&[]);
    let o = run(site.ours(&["-V", "-r", "repo", "--deep"]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("in no manifest"),
        "message: {}",
        stderr(&o)
    );
}
