//! Repositories on S3 (`-r s3://BUCKET/PREFIX`, cargo feature `s3`),
//! against a real S3 server: moto, started by the suite
//! (tests/common/s3.rs). Nothing here is skipped: without the venv or
//! moto the tests fail saying why.
//!
//! Random histories grown by ZODB are backed up by our binary both to S3
//! and to a local twin repository under the same pinned stamps; every
//! object under the prefix must be the twin's file of the same name (the
//! `.dat` up to its path field), every state must recover from S3 as the
//! Data.fs was then, and the prefix downloaded to a directory must be a
//! repository ZODB's own repozo recovers and verifies.
#![cfg(feature = "s3")]

mod common;
#[path = "common/s3.rs"]
mod s3server;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use common::py::{self, zodbtool};
use common::{Rng, ok, ours, run, stderr, theirs};
use s3server::S3Server;

/// Distinct, increasing pinned stamps for every run of this process.
fn next_stamp() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let secs = 1_900_000_000 + N.fetch_add(1, Ordering::SeqCst) * 10;
    repozo::Stamp::from_unix(secs).to_string()
}

/// A prefix of the shared server's bucket that no other test uses.
fn unique_prefix(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "s3repo-{}/{what}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A Data.fs grown by ZODB in a temporary directory, a local twin
/// repository `repo` and an S3 repository under a fresh prefix.
struct Site {
    dir: tempfile::TempDir,
    server: &'static S3Server,
    prefix: String,
}

impl Site {
    fn new(what: &str, txns: u32, seed: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("repo")).unwrap();
        let site = Site {
            dir,
            server: S3Server::shared(),
            prefix: unique_prefix(what),
        };
        site.grow(txns, seed);
        site
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn url(&self) -> String {
        self.server.url(&self.prefix)
    }

    fn grow(&self, txns: u32, seed: u32) {
        let data_fs = self.path("Data.fs");
        let (t, s) = (txns.to_string(), seed.to_string());
        zodbtool(&[
            "grow",
            data_fs.to_str().unwrap(),
            "--txns",
            &t,
            "--seed",
            &s,
        ]);
    }

    fn pack(&self) {
        zodbtool(&["pack", self.path("Data.fs").to_str().unwrap()]);
    }

    /// The Data.fs bytes up to its last committed transaction.
    fn committed(&self) -> Vec<u8> {
        let path = self.path("Data.fs");
        let f = File::open(&path).unwrap();
        let size = f.metadata().unwrap().len();
        let c = repozo::fs::committed(&path, &f, size, &repozo::Silent).unwrap();
        let mut b = std::fs::read(&path).unwrap();
        b.truncate(c.pos as usize);
        b
    }

    /// Our binary in the site directory, pointed at the S3 server, with
    /// the clock pinned at `now`.
    fn ours_at(&self, now: &str, args: &[&str]) -> Command {
        let mut c = ours();
        c.current_dir(self.dir.path())
            .args(args)
            .env("REPOZO_TEST_NOW", now)
            .envs(self.server.env());
        c
    }

    fn ours(&self, args: &[&str]) -> Command {
        self.ours_at(&next_stamp(), args)
    }

    /// Backs up with `flags` to S3 and to the local twin at the same
    /// stamp; returns the stamp.
    fn backup_both(&self, flags: &str) -> String {
        let now = next_stamp();
        let url = self.url();
        for repo in [url.as_str(), "repo"] {
            let o = run(self.ours_at(&now, &[flags, "-r", repo, "-f", "Data.fs"]));
            assert!(
                o.status.success(),
                "repozo {flags} -r {repo} failed: {}",
                stderr(&o)
            );
        }
        now
    }

    /// The objects directly under the prefix, by name, with their bytes
    /// (through boto3, which the venv has for moto).
    fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        let down = tempfile::tempdir().unwrap();
        self.download(down.path());
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(down.path()).unwrap() {
            let e = e.unwrap();
            out.insert(
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            );
        }
        out
    }

    /// Downloads every object directly under the prefix into `to`.
    fn download(&self, to: &Path) {
        let script = r#"
import os, sys, boto3
bucket, prefix, to = sys.argv[1], sys.argv[2].rstrip("/") + "/", sys.argv[3]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
    for o in page.get("Contents", []):
        s3.download_file(bucket, o["Key"], os.path.join(to, o["Key"][len(prefix):]))
"#;
        let mut c = Command::new(py::venv_python());
        c.arg("-c")
            .arg(script)
            .arg(s3server::BUCKET)
            .arg(&self.prefix)
            .arg(to)
            .envs(self.server.env());
        let o = run(c);
        assert!(o.status.success(), "the download failed: {}", stderr(&o));
    }
}

/// The lines of a `.dat` with each path field reduced to its base name
/// (all a reader uses), so an S3 `.dat` compares with a local one.
fn dat_by_name(raw: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(raw)
        .lines()
        .map(|l| {
            let (path, rest) = l.split_once(' ').unwrap();
            format!("{} {rest}", path.rsplit('/').next().unwrap())
        })
        .collect()
}

/// Every object under the prefix is the twin's file of the same name, and
/// the prefix holds nothing else (no lock, no probe left behind).
fn assert_same_as_twin(site: &Site) {
    let remote = site.objects();
    let local: BTreeMap<String, Vec<u8>> = std::fs::read_dir(site.path("repo"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        remote.keys().collect::<Vec<_>>(),
        local.keys().collect::<Vec<_>>(),
        "the S3 prefix and the local repository hold different names"
    );
    for (name, bytes) in &remote {
        if name.ends_with(".dat") {
            assert_eq!(dat_by_name(bytes), dat_by_name(&local[name]), "{name}");
            let text = String::from_utf8_lossy(bytes);
            assert!(
                text.lines()
                    .all(|l| l.starts_with(&format!("{}/", site.url()))),
                "{name} does not record s3://bucket/prefix/<name> paths:\n{text}"
            );
        } else {
            assert!(bytes == &local[name], "{name} differs from the local twin");
        }
    }
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn random_histories_backed_up_to_s3_recover_at_every_stamp_as_the_data_fs_was_then() {
    for seed in [1u32, 2] {
        let site = Site::new("history", 5, seed * 100);
        let mut rng = Rng::new(u64::from(seed));
        let mut states: Vec<(String, Vec<u8>)> = Vec::new();
        let modes = ["-B", "-BQ", "-Bz", "-BF", "-BQz", "-BzF"];
        for step in 0..7u32 {
            if step > 0 {
                if rng.chance(20) {
                    site.pack();
                }
                if !rng.chance(15) {
                    site.grow(1 + rng.below(6) as u32, seed * 100 + step + 1);
                }
            }
            let mode = modes[rng.below(modes.len() as u64) as usize];
            let stamp = site.backup_both(mode);
            states.push((stamp, site.committed()));
        }
        assert_same_as_twin(&site);
        let url = site.url();
        for (i, (stamp, data)) in states.iter().enumerate() {
            for (repo, out) in [(url.as_str(), "s3.fs"), ("repo", "local.fs")] {
                ok(run(site.ours(&["-R", "-r", repo, "-D", stamp, "-o", out])));
            }
            assert!(
                read(site.path("s3.fs")) == *data,
                "seed {seed}, state {i} ({stamp}): recovered from S3 unlike the Data.fs then"
            );
            assert!(
                read(site.path("s3.fs.index")) == read(site.path("local.fs.index")),
                "seed {seed}, state {i}: the .index recovered from S3 differs"
            );
        }
        // Recover to standard output, verify and list from S3.
        let o = ok(run(site.ours(&["-R", "-r", &url])));
        assert!(o.stdout == states.last().unwrap().1);
        ok(run(site.ours(&["-V", "-r", &url])));
        ok(run(site.ours(&["-V", "--deep", "-r", &url])));
        let theirs_list = ok(run(site.ours(&["--list", "-r", "repo"])));
        let list = ok(run(site.ours(&["--list", "-r", &url])));
        assert_eq!(
            String::from_utf8_lossy(&list.stdout),
            String::from_utf8_lossy(&theirs_list.stdout),
            "--list from S3 differs from the local twin's"
        );
        // The prefix synced down is a repository ZODB's repozo reads.
        std::fs::create_dir(site.path("down")).unwrap();
        site.download(&site.path("down"));
        // (Its clock pinned after our pinned stamps.)
        let mut c = theirs();
        c.current_dir(site.dir.path())
            .env("REPOZO_TEST_NOW", next_stamp())
            .args(["-R", "-r", "down", "-o", "zodb.fs"]);
        ok(run(c));
        assert!(read(site.path("zodb.fs")) == states.last().unwrap().1);
        assert!(read(site.path("zodb.fs.index")) == read(site.path("s3.fs.index")));
        let mut c = theirs();
        c.current_dir(site.dir.path())
            .env("REPOZO_TEST_NOW", next_stamp())
            .args(["-V", "-r", "down"]);
        ok(run(c));
    }
}

#[test]
fn a_crash_mid_backup_leaves_an_s3_repository_that_recovers_and_whose_next_backup_continues() {
    for (step, flags) in [
        ("backup:data-copied", "-B"),
        ("backup:dat-written", "-B"),
        ("backup:data-copied", "-BF"),
        ("backup:dat-written", "-BzF"),
    ] {
        let site = Site::new("crash", 4, 30);
        let url = site.url();
        ok(run(site.ours(&["-B", "-r", &url, "-f", "Data.fs"])));
        let before = site.committed();
        site.grow(3, 31);
        let mut c = site.ours(&[flags, "-r", &url, "-f", "Data.fs"]);
        c.env("REPOZO_FAILPOINT", step);
        let o = run(c);
        assert!(
            o.status.code().is_none() && !o.status.success(),
            "{step} {flags}: the failpoint did not fire: {}",
            stderr(&o)
        );
        // What the repository holds now recovers: the old state, or the
        // new one if the .dat was written.
        ok(run(site.ours(&["-R", "-r", &url, "-o", "after-crash.fs"])));
        let got = read(site.path("after-crash.fs"));
        let want = if step == "backup:dat-written" {
            site.committed()
        } else {
            before.clone()
        };
        assert!(got == want, "{step} {flags}: recovered the wrong state");
        ok(run(site.ours(&["-V", "-r", &url])));
        // The lock of the crashed run (its process is gone) does not stop
        // the next backup, which brings the repository up to date.
        site.grow(2, 32);
        let mut c = site.ours(&["-B", "-r", &url, "-f", "Data.fs"]);
        c.env("REPOZO_LOCK_WAIT", "1");
        ok(run(c));
        ok(run(site.ours(&["-R", "-r", &url, "-o", "next.fs"])));
        assert!(
            read(site.path("next.fs")) == site.committed(),
            "{step} {flags}: the next backup did not continue"
        );
        ok(run(site.ours(&["-V", "-r", &url])));
        assert!(
            !site.objects().contains_key("lock"),
            "{step} {flags}: the lock object was left behind"
        );
    }
}

/// Starts `c` paused at `step` (`REPOZO_FAILPOINT=<step>:pause`), waits
/// until it says it got there, and returns it with its stderr reader.
fn paused(mut c: Command, step: &str) -> (std::process::Child, impl std::io::BufRead) {
    c.env("REPOZO_FAILPOINT", format!("{step}:pause"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    assert_eq!(line, format!("failpoint {step} reached\n"));
    (child, err)
}

fn finish(mut child: std::process::Child, mut err: impl std::io::BufRead) -> Output {
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    Output {
        status: child.wait().unwrap(),
        stdout: Vec::new(),
        stderr: rest.into_bytes(),
    }
}

#[test]
fn two_backups_to_one_prefix_are_serialised_by_the_lock_and_a_third_gives_up_naming_the_owner() {
    let site = Site::new("lock", 4, 40);
    let url = site.url();
    ok(run(site.ours(&["-B", "-r", &url, "-f", "Data.fs"])));
    site.grow(3, 41);
    let (first, first_err) = paused(
        site.ours(&["-B", "-r", &url, "-f", "Data.fs"]),
        "backup:data-copied",
    );
    // One that may not wait: exit 11, naming the holder (its pid).
    let mut c = site.ours(&["-B", "-r", &url, "-f", "Data.fs"]);
    c.env("REPOZO_LOCK_WAIT", "1");
    let o = run(c);
    assert_eq!(o.status.code(), Some(11), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("pid {}", first.id())) && stderr(&o).contains(&url),
        "the message does not name the owner and the repository: {}",
        stderr(&o)
    );
    // One that waits: it finishes only after the first one is done.
    let mut c = site.ours(&["-B", "-r", &url, "-f", "Data.fs"]);
    c.env("REPOZO_LOCK_WAIT", "60").stderr(Stdio::piped());
    let mut second = c.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        second.try_wait().unwrap().is_none(),
        "the second backup did not wait for the lock"
    );
    let o = finish(first, first_err);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = second.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // The first did the increment; the second found nothing to do.
    let names: Vec<String> = site.objects().into_keys().collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".deltafs")).count(),
        1,
        "{names:?}"
    );
    ok(run(site.ours(&["-R", "-r", &url, "-o", "out.fs"])));
    assert!(read(site.path("out.fs")) == site.committed());
}
