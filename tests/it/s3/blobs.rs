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

use std::path::Path;
use std::process::{Command, Output};

use crate::common::blobsite::{self, snapshot};
use crate::common::s3::{BUCKET, S3Site};
use crate::common::{Site, next_stamp, py, run, stderr};

/// `-B --blob-dir=blobs EXTRA`, the flags of a blob backup.
fn blob_backup<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    [&["-B", "--blob-dir=blobs"], extra].concat()
}

/// The S3 blob tests' own steps on an [`S3Site`].
impl S3Site {
    /// A site with blobs ZODB wrote (journal step 0) and a fresh prefix.
    fn with_blobs(what: &str, seed: u64) -> S3Site {
        S3Site::new(Site::with_blobs("bushy", seed), what)
    }

    /// Our `args` (at a fresh stamp, pointed at the server) must exit 0.
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
            .arg(BUCKET)
            .arg(format!("{}/{name}", self.prefix))
            .arg(&file)
            .envs(self.server.env());
        let o = run(c);
        assert!(o.status.success(), "the upload failed: {}", stderr(&o));
    }

    /// Names of the blob objects under the prefix.
    fn remote_objects(&self) -> Vec<String> {
        self.objects()
            .into_keys()
            .filter(|p| p.starts_with("blobs/objects/"))
            .collect()
    }
}

/// One history: after every step a backup to both (plain, `-Q`, `-z`,
/// `-F` in turn; a pack halfway, ZODB keeping the old files in
/// `blobs.old`; one blob larger than a multipart part), then the twin
/// comparison, `-V` in its three modes from S3, every stamp restored from
/// S3 and checked against ZODB's journal and against the twin's restore,
/// and the downloaded prefix restored by ZODB's repozo and by us.
fn history(seed: u64) {
    let site = S3Site::with_blobs(&format!("history-{seed}"), seed);
    let modes: [&[&str]; 4] = [&[], &["-Q"], &["-z"], &["-F"]];
    let mut backups = vec![(site.backup_both(&blob_backup(&[])), 0usize)];
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
        backups.push((site.backup_both(&blob_backup(modes[i as usize % 4])), k));
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
        site.check(&out, &bd, Some(*k));
        let (lout, lbd) = (format!("l{i}.fs"), format!("l{i}-blobs"));
        let lbda = format!("--blob-dir={lbd}");
        site.ok(&["-R", "-r", "repo", "-D", stamp, "-o", &lout, &lbda]);
        assert_eq!(
            site.read(&out),
            site.read(&lout),
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
    let o = run(site.theirs(&["-R", "-r", "down", "-D", last, "-o", "theirs.fs"]));
    assert!(o.status.success(), "ZODB's repozo -R: {}", stderr(&o));
    let last_out = format!("s{}.fs", backups.len() - 1);
    assert_eq!(
        site.read("theirs.fs"),
        site.read(&last_out),
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
    site.check("d.fs", "d-blobs", Some(*k));
}

#[test]
fn random_blob_histories_backed_up_to_s3_restore_at_every_stamp_as_zodb_wrote_them() {
    blobsite::run_histories(blobsite::cases("REPOZO_S3_BLOB_CASES", 1), history);
}

#[test]
fn kill_old_and_retention_on_s3_remove_the_same_files_and_objects_as_on_the_local_twin() {
    let site = S3Site::with_blobs("prune", 31);
    site.backup_both(&blob_backup(&[]));
    for i in 0..3u64 {
        site.step(3100 + i, &["--action", "create"]);
        site.step(3110 + i, &["--action", "drop"]);
        site.backup_both(&blob_backup(&[]));
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
    site.backup_both(&blob_backup(&["-F", "-k"]));
    site.assert_same_as_twin();
    let after = site.remote_objects().len();
    assert!(
        after < before,
        "-F -k swept no object ({before} before, {after} after)"
    );
    let url = site.url();
    site.ok(&["-R", "-r", &url, "-o", "k.fs", "--blob-dir=k-blobs"]);
    site.check("k.fs", "k-blobs", Some(k));

    // Retention: two more chains, then --keep 1 on both repositories.
    for i in 0..2u64 {
        site.step(3300 + i, &["--action", "create"]);
        site.backup_both(&blob_backup(&["-F"]));
    }
    let k = site.step(3400, &["--action", "modify"]);
    site.backup_both(&blob_backup(&[]));
    for repo in [url.as_str(), "repo"] {
        site.ok(&["--keep=1", "-r", repo]);
    }
    site.assert_same_as_twin();
    site.ok(&["-V", "-r", &url]);
    site.ok(&["-R", "-r", &url, "-o", "r.fs", "--blob-dir=r-blobs"]);
    site.check("r.fs", "r-blobs", Some(k));
}

#[test]
fn a_damaged_object_on_s3_fails_verify_and_the_restore_touches_nothing() {
    let site = S3Site::with_blobs("damaged", 41);
    site.step(4100, &["--action", "create"]);
    site.backup_both(&blob_backup(&[]));
    let url = site.url();
    site.ok(&["-R", "-r", &url, "-o", "out.fs", "--blob-dir=out-blobs"]);
    let before = (site.read("out.fs"), snapshot(&site.path("out-blobs")));
    let victim = site
        .remote_objects()
        .into_iter()
        .next()
        .expect("the backup stored objects");
    let name = victim.clone();
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
    let after = (site.read("out.fs"), snapshot(&site.path("out-blobs")));
    assert!(before == after, "a failed restore changed the output");
}

#[test]
fn a_standby_follows_incremental_recovers_from_s3_with_its_blobs() {
    let site = S3Site::with_blobs("standby", 51);
    let mut states = vec![(site.backup_both(&blob_backup(&[])), 0usize)];
    for i in 0..3u64 {
        site.step(5100 + i, &["--action", "create"]);
        site.step(5110 + i, &["--action", "modify"]);
        let k = site.step(5120 + i, &["--action", "drop"]);
        states.push((site.backup_both(&blob_backup(&["-Q"])), k));
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
        site.check("standby.fs", "standby-blobs", Some(*k));
    }
}

#[test]
fn a_blob_file_that_vanishes_is_recorded_gone_on_s3_with_exit_3_as_on_the_twin() {
    let site = S3Site::with_blobs("gone", 61);
    site.backup_both(&blob_backup(&[]));
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
        let site = S3Site::with_blobs(&format!("crash-{i}"), 70 + i as u64);
        site.backup_both(&blob_backup(&[]));
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
            site.read("crashed.fs") == site.read("Data.fs"),
            "{fp}: the Data.fs restored from S3 differs"
        );
        // The next backup (its lock taken over at once: same host, dead
        // pid) completes the blobs; S3 and the twin end up the same.
        if i % 2 == 1 {
            site.step(7100 + i as u64, &["--no-pack"]);
        }
        let k = site.step(7200 + i as u64, &["--action", "nonblob"]);
        site.backup_both(&blob_backup(&[]));
        site.assert_same_as_twin();
        site.ok(&["-V", "-r", &url]);
        site.ok(&["-R", "-r", &url, "-o", "r.fs", "--blob-dir=r-blobs"]);
        site.check("r.fs", "r-blobs", Some(k));
    }
}
