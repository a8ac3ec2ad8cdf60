//! [`Site`], the fixture most tests stand on: a temporary directory with a
//! `Data.fs`, a local repository `repo/` and whatever else a test puts
//! there. Both tools run in it with relative paths (so messages name
//! `Data.fs` and `repo/…`), each run pinned at a fresh stamp
//! ([`next_stamp`]) unless a test pins its own.
//!
//! Tests with more to a site build on it: blob sites (`blobsite.rs`), S3
//! sites (`s3.rs`) and the unprivileged user's sites of `permissions.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{is_data_file, listing, next_stamp, ok, ours, run, stderr, theirs, zodb};

/// A temporary directory with a `Data.fs` and a repository `repo/`.
pub struct Site {
    dir: tempfile::TempDir,
    name: String,
}

impl Site {
    /// An empty `repo/` and no `Data.fs` yet.
    pub fn new() -> Site {
        Site::in_dir(tempfile::tempdir().unwrap())
    }

    /// A `Data.fs` of `txns` random transactions committed by ZODB
    /// (`seed` picks them), and an empty `repo/`.
    pub fn grown(txns: u64, seed: u64) -> Site {
        let site = Site::new();
        site.grow(txns, seed);
        site
    }

    /// A site in `dir`, made as the caller needs it: adds an empty `repo/`.
    pub fn in_dir(dir: tempfile::TempDir) -> Site {
        std::fs::create_dir(dir.path().join("repo")).unwrap();
        let name = dir.path().display().to_string();
        Site { dir, name }
    }

    /// Names the site in failure messages (by default its directory):
    /// which history, which round.
    pub fn named(mut self, name: &str) -> Site {
        self.name = name.to_owned();
        self
    }

    /// What failure messages call the site.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The site's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `rel` in the site.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn data_fs(&self) -> PathBuf {
        self.path("Data.fs")
    }

    pub fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    /// The bytes of `rel`; panics naming it if it cannot be read.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        let path = self.path(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The names in `repo/`, sorted.
    pub fn repo_listing(&self) -> Vec<String> {
        listing(&self.repo())
    }

    /// The data files in `repo/` (`.fs`, `.fsz`, `.deltafs`, `.deltafsz`),
    /// oldest first.
    pub fn data_files(&self) -> Vec<String> {
        self.repo_listing()
            .into_iter()
            .filter(|n| is_data_file(n))
            .collect()
    }

    /// ZODB commits `txns` more random transactions (small values).
    pub fn grow(&self, txns: u64, seed: u64) {
        zodb::grow(&self.data_fs(), txns, seed);
    }

    /// ZODB commits `txns` more transactions of mostly 16-64 KB values
    /// (about 0.6 MB each), so a few dozen make a data file of several
    /// S3 parts.
    pub fn grow_big(&self, txns: u64, seed: u64) {
        zodb::grow_big(&self.data_fs(), txns, seed);
    }

    /// The Data.fs bytes up to its last committed transaction.
    pub fn committed(&self) -> Vec<u8> {
        committed_prefix(&self.data_fs())
    }

    /// Our binary in the site, at a fresh stamp.
    pub fn ours(&self, args: &[&str]) -> Command {
        self.ours_at(&next_stamp(), args)
    }

    /// Our binary in the site, its clock pinned at `now`.
    pub fn ours_at(&self, now: &str, args: &[&str]) -> Command {
        let mut c = ours();
        c.current_dir(self.dir())
            .args(args)
            .env("REPOZO_TEST_NOW", now);
        c
    }

    /// ZODB's repozo in the site, at a fresh stamp.
    pub fn theirs(&self, args: &[&str]) -> Command {
        self.theirs_at(&next_stamp(), args)
    }

    /// ZODB's repozo in the site, its clock pinned at `now`.
    pub fn theirs_at(&self, now: &str, args: &[&str]) -> Command {
        let mut c = theirs();
        c.current_dir(self.dir())
            .args(args)
            .env("REPOZO_TEST_NOW", now);
        c
    }

    /// Recovers `repo` with both tools to separate files; asserts they
    /// agree and returns the bytes.
    pub fn recover_both(&self) -> Vec<u8> {
        self.remove_outputs();
        ok(run(self.ours(&["-R", "-r", "repo", "-o", "ours.fs"])));
        ok(run(self.theirs(&["-R", "-r", "repo", "-o", "theirs.fs"])));
        self.same_outputs("")
    }

    /// Like [`Site::recover_both`] after a crash: our recover verifies
    /// every file against the `.dat`, so a file renamed into place but
    /// not yet recorded makes it refuse, saying how to restore it
    /// unchecked; then `--no-verify` must give ZODB's repozo's bytes.
    pub fn recover_both_after_crash(&self, what: &str) -> Vec<u8> {
        self.remove_outputs();
        let o = run(self.ours(&["-R", "-r", "repo", "-o", "ours.fs"]));
        if !o.status.success() {
            assert!(
                stderr(&o).contains("--no-verify"),
                "{what}: recover failed without saying how to go on: {}",
                stderr(&o)
            );
            assert!(!self.path("ours.fs").exists(), "{what}: output left behind");
            ok(run(self.ours(&[
                "-R",
                "--no-verify",
                "-r",
                "repo",
                "-o",
                "ours.fs",
            ])));
        }
        ok(run(self.theirs(&["-R", "-r", "repo", "-o", "theirs.fs"])));
        self.same_outputs(&format!("{what}: "))
    }

    /// Like [`Site::recover_both`], on the real clock (for backups taken
    /// on it).
    pub fn recover_both_now(&self) -> Vec<u8> {
        self.remove_outputs();
        for (mut c, out) in [(ours(), "ours.fs"), (theirs(), "theirs.fs")] {
            c.current_dir(self.dir())
                .args(["-R", "-r", "repo", "-o", out]);
            ok(run(c));
        }
        self.same_outputs("")
    }

    /// Both tools' `-V` of `repo` pass.
    pub fn verify_both(&self) {
        ok(run(self.ours(&["-V", "-r", "repo"])));
        ok(run(self.theirs(&["-V", "-r", "repo"])));
    }

    fn remove_outputs(&self) {
        for out in ["ours.fs", "theirs.fs"] {
            let _ = std::fs::remove_file(self.path(out));
        }
    }

    /// `ours.fs`, asserted equal to `theirs.fs`.
    fn same_outputs(&self, what: &str) -> Vec<u8> {
        let a = self.read("ours.fs");
        assert!(
            a == self.read("theirs.fs"),
            "{what}ours and ZODB's repozo recovered different bytes"
        );
        a
    }
}

/// The bytes of the FileStorage `path` up to its last committed
/// transaction, as our reader finds it.
pub fn committed_prefix(path: &Path) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap();
    let size = f.metadata().unwrap().len();
    let c = repozo::fs::committed(path, &f, size, &repozo::Silent).unwrap();
    let mut b = std::fs::read(path).unwrap();
    b.truncate(c.pos as usize);
    b
}
