//! Blob backups (`--blob-dir`) and retention with an S3 repository
//! (`-r s3://BUCKET/PREFIX`, cargo feature `s3`), against a real S3
//! server: moto, started by the suite (tests/it/common/s3.rs). Nothing is
//! skipped: without the venv or moto the tests fail saying why.
//!
//! Every history is written by real ZODB with a blob directory
//! (tests/py/blobtool.py) and backed up by our binary twice under the
//! same pinned stamps: to S3 and to a local twin repository, whose blob
//! backups tests/it/blobs.rs checks against ZODB in depth. Here the S3
//! prefix must hold exactly the twin's files (manifests and
//! `blobs/objects/…` byte for byte), every state must restore from S3 to
//! what ZODB wrote (blobtool `check`) and to the same tree as from the
//! twin, and the prefix downloaded to a directory must be a repository
//! ZODB's repozo restores.

use crate::common;
use crate::common::blobsite;
use crate::common::s3 as s3server;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use blobsite::{snapshot, stdout};
use common::{ours, py, run, stderr, theirs};
use s3server::S3Server;

/// Distinct, increasing pinned stamps for every run of this process.
fn next_stamp() -> String {
    common::next_stamp_from(1_960_000_000)
}

/// A prefix of the shared server's bucket that no other test uses.
fn unique_prefix(what: &str) -> String {
    s3server::unique_prefix("s3blobs", what)
}

/// A Data.fs and blob directory written by ZODB (blobtool.py, with its
/// journal), a local twin repository `repo` and an S3 prefix.
struct Site {
    dir: tempfile::TempDir,
    server: &'static S3Server,
    prefix: String,
}

impl Site {
    fn new(what: &str, seed: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("repo")).unwrap();
        let site = Site {
            dir,
            server: S3Server::shared(),
            prefix: unique_prefix(what),
        };
        blobsite::init(site.dir.path(), seed, &[]);
        site
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn url(&self) -> String {
        self.server.url(&self.prefix)
    }

    /// blobtool.py ARGS in the site directory; panics unless it exits 0.
    fn blobtool(&self, args: &[&str]) -> Output {
        blobsite::blobtool(self.dir.path(), args)
    }

    fn blobtool_status(&self, args: &[&str]) -> Output {
        blobsite::blobtool_status(self.dir.path(), args)
    }

    /// One blobtool step; returns the journal step number it recorded.
    fn step(&self, seed: u64, extra: &[&str]) -> usize {
        blobsite::step(self.dir.path(), seed, extra)
    }

    /// blobtool `check` of a restored Data.fs and blob tree as of step `k`.
    fn check(&self, out: &str, blob_dir: &str, k: usize) {
        let k = k.to_string();
        let o = self.blobtool_status(&[
            "check",
            out,
            blob_dir,
            "--journal",
            "journal.json",
            "--step",
            &k,
        ]);
        assert!(
            o.status.success() && stdout(&o).starts_with("ok "),
            "{}: restored {out} + {blob_dir} (step {k}) fails blobtool check:\n{}{}",
            self.prefix,
            stdout(&o),
            stderr(&o)
        );
    }

    /// Our binary in the site directory, pointed at the S3 server.
    fn ours_at(&self, now: &str, args: &[&str]) -> Command {
        let mut c = ours();
        c.current_dir(self.dir.path())
            .args(args)
            .env("REPOZO_TEST_NOW", now)
            .env_remove("REPOZO_FAILPOINT")
            .envs(self.server.env());
        c
    }

    fn ours(&self, args: &[&str]) -> Command {
        self.ours_at(&next_stamp(), args)
    }

    /// `args` must exit 0.
    fn ok(&self, args: &[&str]) -> Output {
        let o = run(self.ours(args));
        assert!(
            o.status.success(),
            "{}: repozo {args:?} failed with {}: {}",
            self.prefix,
            o.status,
            stderr(&o)
        );
        o
    }

    /// `-B --blob-dir=blobs EXTRA` to S3 and to the twin at one stamp.
    fn backup_both(&self, extra: &[&str]) -> String {
        let now = next_stamp();
        let url = self.url();
        for repo in [url.as_str(), "repo"] {
            let mut args = vec!["-B", "-r", repo, "-f", "Data.fs", "--blob-dir=blobs"];
            args.extend_from_slice(extra);
            let o = run(self.ours_at(&now, &args));
            assert!(
                o.status.success(),
                "{}: backup {extra:?} -r {repo} failed with {}: {}",
                self.prefix,
                o.status,
                stderr(&o)
            );
        }
        now
    }

    /// Downloads every object under the prefix into `to`, keeping the
    /// `/`-separated names as paths (through boto3, which moto brings).
    fn download(&self, to: &Path) {
        let script = r#"
import os, sys, boto3
bucket, prefix, to = sys.argv[1], sys.argv[2].rstrip("/") + "/", sys.argv[3]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for o in page.get("Contents", []):
        dest = os.path.join(to, o["Key"][len(prefix):])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        s3.download_file(bucket, o["Key"], dest)
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

    /// Replaces the object `name` under the prefix with `data`.
    fn put_object(&self, name: &str, data: &[u8]) {
        let file = self.path("put-object.tmp");
        std::fs::write(&file, data).unwrap();
        let script = r#"
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
s3.upload_file(sys.argv[3], sys.argv[1], sys.argv[2])
"#;
        let mut c = Command::new(py::venv_python());
        c.arg("-c")
            .arg(script)
            .arg(s3server::BUCKET)
            .arg(format!("{}/{name}", self.prefix))
            .arg(&file)
            .envs(self.server.env());
        let o = run(c);
        assert!(o.status.success(), "the upload failed: {}", stderr(&o));
    }

    /// Every file under the prefix is the twin's file of the same path,
    /// and each side has nothing the other lacks, except `blobs/STATE`
    /// and `blobs/incoming/` (a directory store's only). `.dat` lines are
    /// compared by base name (their path fields name the repository).
    fn assert_same_as_twin(&self) {
        let down = tempfile::tempdir().unwrap();
        self.download(down.path());
        let mut remote = files(down.path());
        let mut local = files(&self.path("repo"));
        local.retain(|p, _| p != Path::new("blobs/STATE") && !p.starts_with("blobs/incoming"));
        for map in [&mut remote, &mut local] {
            for (p, bytes) in map.iter_mut() {
                if p.extension().is_some_and(|e| e == "dat") {
                    *bytes = dat_by_name(bytes);
                }
            }
        }
        assert_eq!(
            remote.keys().collect::<Vec<_>>(),
            local.keys().collect::<Vec<_>>(),
            "{}: the S3 prefix and the local twin hold different files",
            self.prefix
        );
        for (p, bytes) in &remote {
            assert!(
                *bytes == local[p],
                "{}: {} differs between S3 and the twin",
                self.prefix,
                p.display()
            );
        }
    }

    /// Names of the blob objects under the prefix.
    fn remote_objects(&self) -> Vec<PathBuf> {
        let down = tempfile::tempdir().unwrap();
        self.download(down.path());
        files(down.path())
            .into_keys()
            .filter(|p| p.starts_with("blobs/objects"))
            .collect()
    }
}

/// `.dat` bytes with each line's path field reduced to its base name.
fn dat_by_name(raw: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(raw)
        .lines()
        .map(|l| {
            let (path, rest) = l.split_once(' ').unwrap_or((l, ""));
            format!("{} {rest}\n", path.rsplit('/').next().unwrap_or(path))
        })
        .collect::<String>()
        .into_bytes()
}

/// Every regular file under `root` by relative path, with its bytes.
fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// One history: after every step a backup to both (plain, `-Q`, `-z`,
/// `-F` in turn; a pack halfway, ZODB keeping the old files in
/// `blobs.old`; one blob larger than a multipart part), then the twin
/// comparison, `-V` in its three modes from S3, every stamp restored from
/// S3 and checked against ZODB's journal and against the twin's restore,
/// and the downloaded prefix restored by ZODB's repozo and by us.
fn history(seed: u64) {
    let site = Site::new(&format!("history-{seed}"), seed);
    let modes: [&[&str]; 4] = [&[], &["-Q"], &["-z"], &["-F"]];
    let mut backups = vec![(site.backup_both(&[]), 0usize)];
    for i in 1..=6u64 {
        let big = (12 << 20).to_string();
        let k = match i {
            2 => site.step(seed * 100 + i, &["--action", "create", "--big", &big]),
            4 => site.step(
                seed * 100 + i,
                &["--action", "pack", "--pack-keep-old", "yes"],
            ),
            _ => site.step(seed * 100 + i, &["--no-pack"]),
        };
        backups.push((site.backup_both(modes[i as usize % 4]), k));
    }
    site.assert_same_as_twin();
    let url = site.url();
    for extra in [&[][..], &["-Q"], &["--deep"]] {
        let mut args = vec!["-V", "-r", url.as_str()];
        args.extend_from_slice(extra);
        site.ok(&args);
    }
    for (i, (stamp, k)) in backups.iter().enumerate() {
        let (out, bd) = (format!("s{i}.fs"), format!("s{i}-blobs"));
        let bda = format!("--blob-dir={bd}");
        site.ok(&["-R", "-r", &url, "-D", stamp, "-o", &out, &bda]);
        site.check(&out, &bd, *k);
        let (lout, lbd) = (format!("l{i}.fs"), format!("l{i}-blobs"));
        let lbda = format!("--blob-dir={lbd}");
        site.ok(&["-R", "-r", "repo", "-D", stamp, "-o", &lout, &lbda]);
        assert_eq!(
            std::fs::read(site.path(&out)).unwrap(),
            std::fs::read(site.path(&lout)).unwrap(),
            "{}: Data.fs at {stamp} differs between S3 and the twin",
            site.prefix
        );
        assert!(
            snapshot(&site.path(&bd)) == snapshot(&site.path(&lbd)),
            "{}: blob tree at {stamp} differs between S3 and the twin",
            site.prefix
        );
    }
    // The prefix as a directory is a repository: ZODB's repozo restores
    // its Data.fs, we restore Data.fs and blobs from it.
    let down = site.path("down");
    std::fs::create_dir(&down).unwrap();
    site.download(&down);
    let (last, k) = backups.last().unwrap();
    let mut c = theirs();
    c.current_dir(site.dir.path())
        .args(["-R", "-r", "down", "-D", last, "-o", "theirs.fs"]);
    let o = run(c);
    assert!(o.status.success(), "ZODB's repozo -R: {}", stderr(&o));
    let last_out = format!("s{}.fs", backups.len() - 1);
    assert_eq!(
        std::fs::read(site.path("theirs.fs")).unwrap(),
        std::fs::read(site.path(&last_out)).unwrap(),
        "ZODB's repozo restores other bytes from the downloaded prefix (as of {last})"
    );
    site.ok(&[
        "-R",
        "-r",
        "down",
        "-D",
        last,
        "-o",
        "d.fs",
        "--blob-dir=d-blobs",
    ]);
    site.check("d.fs", "d-blobs", *k);
}

#[test]
fn random_blob_histories_backed_up_to_s3_restore_at_every_stamp_as_zodb_wrote_them() {
    blobsite::run_histories(blobsite::cases("REPOZO_S3_BLOB_CASES", 1), history);
}

#[test]
fn kill_old_and_retention_on_s3_remove_the_same_files_and_objects_as_on_the_local_twin() {
    let site = Site::new("prune", 31);
    site.backup_both(&[]);
    for i in 0..3u64 {
        site.step(3100 + i, &["--action", "create"]);
        site.step(3110 + i, &["--action", "drop"]);
        site.backup_both(&[]);
    }
    let before = site.remote_objects().len();
    // A pack drops the unreferenced revisions; -F -k keeps only the new
    // full chain and sweeps the objects no manifest names any more.
    site.blobtool(&[
        "pack",
        "Data.fs",
        "blobs",
        "--pack-keep-old",
        "no",
        "--journal",
        "journal.json",
    ]);
    let k = site.step(3200, &["--action", "modify"]);
    site.backup_both(&["-F", "-k"]);
    site.assert_same_as_twin();
    let after = site.remote_objects().len();
    assert!(
        after < before,
        "-F -k swept no object ({before} before, {after} after)"
    );
    let url = site.url();
    site.ok(&["-R", "-r", &url, "-o", "k.fs", "--blob-dir=k-blobs"]);
    site.check("k.fs", "k-blobs", k);

    // Retention: two more chains, then --keep 1 on both repositories.
    for i in 0..2u64 {
        site.step(3300 + i, &["--action", "create"]);
        site.backup_both(&["-F"]);
    }
    let k = site.step(3400, &["--action", "modify"]);
    site.backup_both(&[]);
    for repo in [url.as_str(), "repo"] {
        site.ok(&["--keep=1", "-r", repo]);
    }
    site.assert_same_as_twin();
    site.ok(&["-V", "-r", &url]);
    site.ok(&["-R", "-r", &url, "-o", "r.fs", "--blob-dir=r-blobs"]);
    site.check("r.fs", "r-blobs", k);
}

#[test]
fn a_damaged_object_on_s3_fails_verify_and_the_restore_touches_nothing() {
    let site = Site::new("damaged", 41);
    site.step(4100, &["--action", "create"]);
    site.backup_both(&[]);
    let url = site.url();
    site.ok(&["-R", "-r", &url, "-o", "out.fs", "--blob-dir=out-blobs"]);
    let before = (
        std::fs::read(site.path("out.fs")).unwrap(),
        snapshot(&site.path("out-blobs")),
    );
    let victim = site
        .remote_objects()
        .into_iter()
        .next()
        .expect("the backup stored objects");
    let name = victim.to_str().unwrap().to_string();
    let down = tempfile::tempdir().unwrap();
    site.download(down.path());
    let mut bytes = std::fs::read(down.path().join(&victim)).unwrap();
    match bytes.first_mut() {
        Some(b) => *b ^= 0xff,
        None => bytes.push(1),
    }
    site.put_object(&name, &bytes);

    let o = run(site.ours(&["-V", "-r", &url]));
    assert_eq!(o.status.code(), Some(1), "-V: {}", stderr(&o));
    assert!(
        stderr(&o).contains(&name),
        "-V does not name the damaged object {name}: {}",
        stderr(&o)
    );
    // -V -Q checks sizes only: a flipped byte passes it.
    site.ok(&["-V", "-Q", "-r", &url]);
    let o = run(site.ours(&["-R", "-r", &url, "-o", "out.fs", "--blob-dir=out-blobs"]));
    assert_eq!(o.status.code(), Some(1), "-R: {}", stderr(&o));
    assert!(
        stderr(&o).contains("damaged"),
        "-R does not say the object is damaged: {}",
        stderr(&o)
    );
    let after = (
        std::fs::read(site.path("out.fs")).unwrap(),
        snapshot(&site.path("out-blobs")),
    );
    assert!(before == after, "a failed restore changed the output");
}

#[test]
fn a_standby_follows_incremental_recovers_from_s3_with_its_blobs() {
    let site = Site::new("standby", 51);
    let mut states = vec![(site.backup_both(&[]), 0usize)];
    for i in 0..3u64 {
        site.step(5100 + i, &["--action", "create"]);
        site.step(5110 + i, &["--action", "modify"]);
        let k = site.step(5120 + i, &["--action", "drop"]);
        states.push((site.backup_both(&["-Q"]), k));
    }
    let url = site.url();
    for (i, (stamp, k)) in states.iter().enumerate() {
        let mut args = vec![
            "-R",
            "-r",
            url.as_str(),
            "-o",
            "standby.fs",
            "--blob-dir=standby-blobs",
            "--incremental",
            "-D",
            stamp,
        ];
        if i % 2 == 1 {
            args.push("-Q");
        }
        site.ok(&args);
        site.check("standby.fs", "standby-blobs", *k);
    }
}

#[test]
fn a_blob_file_that_vanishes_is_recorded_gone_on_s3_with_exit_3_as_on_the_twin() {
    let site = Site::new("gone", 61);
    site.backup_both(&[]);
    site.step(6100, &["--action", "create"]);
    // Remove one blob file of the newest transaction by hand.
    let newest = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let mut blobs = Vec::new();
    let mut stack = vec![site.path("blobs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "blob") {
                blobs.push(p);
            }
        }
    }
    let victim = blobs
        .into_iter()
        .max_by_key(|p| newest(p))
        .expect("a blob file");
    std::fs::remove_file(&victim).unwrap();
    let url = site.url();
    // Twice: the second run after a gone blob is a full backup.
    for _ in 0..2 {
        let now = next_stamp();
        for repo in [url.as_str(), "repo"] {
            let o = run(site.ours_at(
                &now,
                &["-B", "-r", repo, "-f", "Data.fs", "--blob-dir=blobs"],
            ));
            assert_eq!(o.status.code(), Some(3), "-B -r {repo}: {}", stderr(&o));
        }
    }
    site.assert_same_as_twin();
    let o = run(site.ours(&["-R", "-r", &url, "-o", "g.fs", "--blob-dir=g-blobs"]));
    assert_eq!(o.status.code(), Some(3), "-R: {}", stderr(&o));
}

#[test]
fn a_crash_in_the_blob_step_on_s3_leaves_a_restorable_repository_that_the_next_backup_completes() {
    let steps = [
        "backup:blobs-start",
        "backup:blob-stored",
        "backup:manifest-written",
    ];
    for (i, fp) in steps.iter().enumerate() {
        let site = Site::new(&format!("crash-{i}"), 70 + i as u64);
        site.backup_both(&[]);
        site.step(7000 + i as u64, &["--action", "create"]);
        let url = site.url();
        // The S3 backup dies at the failpoint (SIGABRT: no clean-up, as
        // SIGKILL); the twin's, at the same stamp, completes.
        let now = next_stamp();
        let mut c = site.ours_at(
            &now,
            &["-B", "-r", &url, "-f", "Data.fs", "--blob-dir=blobs"],
        );
        c.env("REPOZO_FAILPOINT", fp);
        let o = run(c);
        assert!(
            std::os::unix::process::ExitStatusExt::signal(&o.status).is_some(),
            "{fp}: the backup did not stop at the failpoint ({}): {}",
            o.status,
            stderr(&o)
        );
        let o = run(site.ours_at(
            &now,
            &["-B", "-r", "repo", "-f", "Data.fs", "--blob-dir=blobs"],
        ));
        assert!(o.status.success(), "twin: {}", stderr(&o));
        // The Data.fs backup is recorded: it restores from S3 (taking over
        // the dead process's lock is not needed to read).
        site.ok(&["-R", "-r", &url, "-o", "crashed.fs"]);
        assert!(
            std::fs::read(site.path("crashed.fs")).unwrap()
                == std::fs::read(site.path("Data.fs")).unwrap(),
            "{fp}: the Data.fs restored from S3 differs"
        );
        // The next backup (its lock taken over at once: same host, dead
        // pid) completes the blobs; S3 and the twin end up the same.
        if i % 2 == 1 {
            site.step(7100 + i as u64, &["--no-pack"]);
        }
        let k = site.step(7200 + i as u64, &["--action", "nonblob"]);
        site.backup_both(&[]);
        site.assert_same_as_twin();
        site.ok(&["-V", "-r", &url]);
        site.ok(&["-R", "-r", &url, "-o", "r.fs", "--blob-dir=r-blobs"]);
        site.check("r.fs", "r-blobs", k);
    }
}
