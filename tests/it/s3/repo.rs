//! Repositories on S3 (`-r s3://BUCKET/PREFIX`, cargo feature `s3`),
//! against a real S3 server: moto, started by the suite
//! (tests/it/common/s3.rs). Nothing here is skipped: without the venv or
//! moto the tests fail saying why.
//!
//! Random histories grown by ZODB are backed up by our binary both to S3
//! and to a local twin repository under the same pinned stamps; every
//! object under the prefix must be the twin's file of the same name (the
//! `.dat` up to its path field), every state must recover from S3 as the
//! Data.fs was then, and the prefix downloaded to a directory must be a
//! repository ZODB's own repozo recovers and verifies.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::s3::S3Site;
use crate::common::{Paused, Rng, Site, next_stamp, ok, run, stderr, zodb};

#[test]
fn random_histories_backed_up_to_s3_recover_at_every_stamp_as_the_data_fs_was_then() {
    for seed in [1u64, 2] {
        let site = S3Site::new(Site::grown(5, seed * 100), "history");
        let mut rng = Rng::new(seed);
        let mut states: Vec<(String, Vec<u8>)> = Vec::new();
        let modes = ["-B", "-BQ", "-Bz", "-BF", "-BQz", "-BzF"];
        for step in 0..7u64 {
            if step > 0 {
                if rng.chance(20) {
                    zodb::pack(&site.data_fs());
                }
                if !rng.chance(15) {
                    site.grow(1 + rng.below(6), seed * 100 + step + 1);
                }
            }
            let mode = modes[rng.below(modes.len() as u64) as usize];
            let stamp = site.backup_both(&[mode]);
            states.push((stamp, site.committed()));
        }
        site.assert_same_as_twin();
        let url = site.url();
        for (i, (stamp, data)) in states.iter().enumerate() {
            for (repo, out) in [(url.as_str(), "s3.fs"), ("repo", "local.fs")] {
                ok(run(site.ours(&["-R", "-r", repo, "-D", stamp, "-o", out])));
            }
            assert!(
                site.read("s3.fs") == *data,
                "seed {seed}, state {i} ({stamp}): recovered from S3 unlike the Data.fs then"
            );
            assert!(
                site.read("s3.fs.index") == site.read("local.fs.index"),
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
        ok(run(site.theirs(&["-R", "-r", "down", "-o", "zodb.fs"])));
        assert!(site.read("zodb.fs") == states.last().unwrap().1);
        assert!(site.read("zodb.fs.index") == site.read("s3.fs.index"));
        ok(run(site.theirs(&["-V", "-r", "down"])));
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
        let site = S3Site::new(Site::grown(4, 30), "crash");
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
        let got = site.read("after-crash.fs");
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
            site.read("next.fs") == site.committed(),
            "{step} {flags}: the next backup did not continue"
        );
        ok(run(site.ours(&["-V", "-r", &url])));
        assert!(
            !site.objects().contains_key("lock"),
            "{step} {flags}: the lock object was left behind"
        );
    }
}

#[test]
fn two_backups_to_one_prefix_are_serialised_by_the_lock_and_a_third_gives_up_naming_the_owner() {
    let site = S3Site::new(Site::grown(4, 40), "lock");
    let url = site.url();
    ok(run(site.ours(&["-B", "-r", &url, "-f", "Data.fs"])));
    site.grow(3, 41);
    let first = Paused::at(
        "backup:data-copied",
        site.ours(&["-B", "-r", &url, "-f", "Data.fs"]),
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
    let o = first.resume();
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
    assert!(site.read("out.fs") == site.committed());
}

// ---------------------------------------------------------------------------
// Data files of several multipart parts: SIGKILL, aborts, -k, --incremental
// ---------------------------------------------------------------------------

/// The size of one multipart part (the backend's [`PART`]): data files
/// above it go up as multipart uploads.
///
/// [`PART`]: repozo::backend::s3::PART
const PART: u64 = repozo::backend::s3::PART as u64;

/// Rounds of the SIGKILL test: `REPOZO_S3_KILLS`, default 3 (one each of
/// `-B`, `-BF`, `-BQ`).
fn kill_rounds() -> u64 {
    match std::env::var("REPOZO_S3_KILLS") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|&n: &u64| n >= 1)
            .unwrap_or_else(|| panic!("REPOZO_S3_KILLS={v:?}: expected a number >= 1")),
        Err(_) => 3,
    }
}

fn is_data(name: &str) -> bool {
    [".fs", ".fsz", ".deltafs", ".deltafsz"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// A name a repository of ours holds: `<stamp>.<ext>` or the lock.
fn is_repository_name(name: &str) -> bool {
    if name == "lock" {
        return true;
    }
    let Some((stamp, ext)) = name.split_once('.') else {
        return false;
    };
    stamp.len() == 19
        && stamp.bytes().all(|c| c.is_ascii_digit() || c == b'-')
        && ["fs", "fsz", "deltafs", "deltafsz", "dat", "index", "blake3"].contains(&ext)
}

/// The stamp of the newest data file of a listing.
fn newest_data_stamp(listing: &BTreeMap<String, u64>) -> String {
    let name = listing.keys().rfind(|n| is_data(n)).expect("a data file");
    name[..19].to_string()
}

/// The pending multipart uploads and the objects under the prefix, once
/// two looks 300 ms apart agree (the server may still be serving requests
/// of a process that was just killed).
fn settled(site: &S3Site) -> (usize, BTreeMap<String, u64>) {
    let mut last = (site.uploads_pending(), site.listing());
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(300));
        let now = (site.uploads_pending(), site.listing());
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the server kept changing for 15 s after the kill");
}

/// The pid recorded in the lock object, if there is one.
fn lock_pid(site: &S3Site) -> Option<u64> {
    use repozo::backend::Backend;
    let (data, _) = site.backend().read_versioned("lock").unwrap()?;
    let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
    Some(v["pid"].as_u64().expect("the lock names a pid"))
}

/// Waits until `site` has more than `pending` multipart uploads under way;
/// panics if `child` ends first.
fn wait_for_upload(site: &S3Site, child: &mut std::process::Child, pending: usize, what: &str) {
    let start = Instant::now();
    while site.uploads_pending() <= pending {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what}: the backup ended ({status}) before a multipart upload was seen");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{what}: no multipart upload began within 120 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// After a backup that did not finish: `-R` gives the last recorded state
/// or, where the new data object was recorded, the new one; where it is
/// complete but not yet recorded, `-R` refuses saying how to go on,
/// `--no-verify` gives the new state and `-V` fails naming it. `-R -D`
/// the last recorded stamp gives that state in every case. Returns which
/// of the three it found.
fn assert_recovers_after_failure(
    site: &S3Site,
    recorded: &str,
    backed: &[u8],
    data: &[u8],
    new_data: Option<&str>,
    what: &str,
) -> &'static str {
    let url = site.url();
    let _ = std::fs::remove_file(site.path("after.fs"));
    let o = run(site.ours(&["-R", "-r", &url, "-o", "after.fs"]));
    let outcome;
    if o.status.success() {
        let got = site.read("after.fs");
        assert!(
            got == backed || (new_data.is_some() && got == data),
            "{what}: -R gave neither the recorded nor the new state"
        );
        assert!(
            new_data.is_some() || got == backed,
            "{what}: -R did not give the recorded state"
        );
        ok(run(site.ours(&["-V", "-r", &url])));
        outcome = if got == backed {
            "the old state"
        } else {
            "the new state, recorded"
        };
    } else {
        outcome = "a complete new file, not yet recorded";
        let new = new_data.unwrap_or_else(|| {
            panic!(
                "{what}: -R failed with no new object in the repository: {}",
                stderr(&o)
            )
        });
        // Its stamp: a new full without its `.dat` is named by the `.dat`.
        let stamp = &new[..19];
        assert!(
            stderr(&o).contains("--no-verify") && stderr(&o).contains(stamp),
            "{what}: -R failed without naming {stamp} and saying how to go on: {}",
            stderr(&o)
        );
        assert!(
            !site.path("after.fs").exists(),
            "{what}: output left behind"
        );
        ok(run(site.ours(&[
            "-R",
            "--no-verify",
            "-r",
            &url,
            "-o",
            "after.fs",
        ])));
        assert!(
            site.read("after.fs") == data,
            "{what}: -R --no-verify did not give the new state"
        );
        let v = run(site.ours(&["-V", "-r", &url]));
        assert!(
            !v.status.success() && stderr(&v).contains(stamp),
            "{what}: -V does not name the unrecorded {new}: {}",
            stderr(&v)
        );
    }
    ok(run(site.ours(&[
        "-R",
        "-r",
        &url,
        "-D",
        recorded,
        "-o",
        "recorded.fs",
    ])));
    assert!(
        site.read("recorded.fs") == backed,
        "{what}: -R -D {recorded} did not give the last recorded state"
    );
    outcome
}

/// The next backup after a failure: takes the lock at once
/// (`REPOZO_LOCK_WAIT=0`), records or completes what is there, releases
/// the lock; the repository then recovers the Data.fs and verifies, and
/// `--list` finds nothing unrecorded.
fn assert_next_backup_repairs(site: &S3Site, what: &str) {
    let url = site.url();
    let mut c = site.ours(&["-B", "-r", &url, "-f", "Data.fs"]);
    c.env("REPOZO_LOCK_WAIT", "0");
    let o = run(c);
    assert!(
        o.status.success(),
        "{what}: the next backup did not take the lock at once or failed: {}",
        stderr(&o)
    );
    assert!(
        !site.listing().contains_key("lock"),
        "{what}: the lock was left"
    );
    ok(run(site.ours(&["-R", "-r", &url, "-o", "next.fs"])));
    assert!(
        site.read("next.fs") == site.committed(),
        "{what}: the repository does not recover the Data.fs after the next backup"
    );
    ok(run(site.ours(&["-V", "-r", &url])));
    let list = ok(run(site.ours(&["--list", "-r", &url])));
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with('!')),
        "{what}: --list finds problems after the next backup:\n{text}"
    );
}

#[test]
fn a_backup_killed_by_sigkill_mid_upload_leaves_a_restorable_repository_whose_lock_the_next_backup_takes_at_once()
 {
    let site = S3Site::new(Site::grown(2, 90), "kill");
    site.grow_big(20, 91);
    let url = site.url();
    ok(run(site.ours(&["-BF", "-r", &url, "-f", "Data.fs"])));
    let mut backed = site.committed();
    let mut rng = Rng::new(90);
    let mut mid_upload = 0;
    // Where the kills landed: cut off, complete but unrecorded, recorded.
    let mut outcomes = BTreeMap::<&str, u32>::new();
    let modes = ["-B", "-BF", "-BQ"];
    for round in 0..kill_rounds() {
        // 12 to 17 MB: two or three parts.
        site.grow_big(20 + rng.below(8), 92 + round);
        let data = site.committed();
        let before = site.listing();
        let recorded = newest_data_stamp(&before);
        let mode = modes[(round % 3) as usize];
        let pending = site.uploads_pending();
        let mut child = site
            .ours(&[mode, "-r", &url, "-f", "Data.fs"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let what = format!("kill round {round} ({mode})");
        wait_for_upload(&site, &mut child, pending, &what);
        // At once in round 0; later anywhere in the upload or after it.
        let delay = if round == 0 { 0 } else { rng.below(1200) };
        std::thread::sleep(Duration::from_millis(delay));
        let pid = u64::from(child.id());
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        let killed = status.signal() == Some(libc::SIGKILL);
        let what = format!("{what}, killed {delay} ms into the upload: {status}");
        // Requests the process sent before it died (a part, the completion)
        // are still being served: look once the server is done with them.
        let (uploads, after) = settled(&site);
        let cut_off = uploads > pending;
        mid_upload += usize::from(cut_off);

        // Only repository files; what was there is still there; a new data
        // object is the whole new range (no part of an upload shows).
        for name in after.keys() {
            assert!(is_repository_name(name), "{what}: stray object {name}");
        }
        for (name, size) in before.iter().filter(|(n, _)| is_data(n)) {
            assert_eq!(after.get(name), Some(size), "{what}: {name} changed");
        }
        let new_data: Vec<&String> = after
            .keys()
            .filter(|n| is_data(n) && !before.contains_key(*n))
            .collect();
        assert!(new_data.len() <= 1, "{what}: {new_data:?}");
        if cut_off {
            assert!(new_data.is_empty(), "{what}: an object of a cut-off upload");
        }
        if let Some(name) = new_data.first() {
            use repozo::backend::Backend;
            let bytes = site.backend().read(name).unwrap();
            let want = if name.ends_with(".fs") {
                &data[..]
            } else {
                &data[backed.len()..]
            };
            assert!(bytes == want, "{what}: {name} is not the whole new range");
        }
        // The lock of the killed process is still there, naming it.
        if killed && cut_off {
            assert_eq!(lock_pid(&site), Some(pid), "{what}: the lock");
        }
        if let Some(p) = lock_pid(&site) {
            assert_eq!(p, pid, "{what}: a lock of another process");
        }

        let new_data = new_data.first().map(|s| s.as_str());
        let outcome =
            assert_recovers_after_failure(&site, &recorded, &backed, &data, new_data, &what);
        *outcomes.entry(outcome).or_default() += 1;
        assert_next_backup_repairs(&site, &what);
        backed = data;
    }
    eprintln!("kills: {mid_upload} cut off an upload; outcomes {outcomes:?}");
    assert!(
        mid_upload >= 1,
        "no kill landed in the middle of a multipart upload"
    );
}

#[test]
fn an_abort_between_the_multipart_upload_and_the_dat_update_is_recorded_by_the_next_backup() {
    for flags in ["-B", "-BF"] {
        let site = S3Site::new(Site::grown(2, 100), "datfail");
        site.grow_big(4, 101);
        let url = site.url();
        let first = next_stamp();
        ok(run(
            site.ours_at(&first, &["-B", "-r", &url, "-f", "Data.fs"])
        ));
        let backed = site.committed();
        site.grow_big(20, 102);
        let data = site.committed();
        assert!(data.len() - backed.len() > PART as usize);
        let mut c = site.ours(&[flags, "-r", &url, "-f", "Data.fs"]);
        c.env("REPOZO_FAILPOINT", "backup:data-renamed");
        let o = run(c);
        assert!(
            o.status.code().is_none(),
            "{flags}: the failpoint did not fire: {}",
            stderr(&o)
        );
        let names = site.listing();
        let new: Vec<&String> = names
            .keys()
            .filter(|n| is_data(n) && &n[..19] > first.as_str())
            .collect();
        assert_eq!(new.len(), 1, "{flags}: {names:?}");
        assert_eq!(site.uploads_pending(), 0, "{flags}: the upload is complete");
        let outcome =
            assert_recovers_after_failure(&site, &first, &backed, &data, Some(new[0]), flags);
        assert_eq!(outcome, "a complete new file, not yet recorded", "{flags}");
        assert_next_backup_repairs(&site, flags);
        let data_files = site.listing().into_keys().filter(|n| is_data(n)).count();
        assert_eq!(data_files, 2, "{flags}: the next backup uploaded again");
    }
}

#[test]
fn a_backup_that_fails_or_is_interrupted_mid_upload_aborts_its_multipart_upload() {
    let site = S3Site::new(Site::grown(2, 110), "abort");
    site.grow_big(4, 111);
    let url = site.url();
    ok(run(site.ours(&["-B", "-r", &url, "-f", "Data.fs"])));
    site.grow_big(20, 112);
    let before = site.listing();
    // The Data.fs replaced (as a pack does) while the upload is under way:
    // exit 1, and the upload is aborted on the server.
    let paused = Paused::at(
        "backup:data-copied",
        site.ours(&["-B", "-r", &url, "-f", "Data.fs"]),
    );
    assert_eq!(site.uploads_pending(), 1, "the upload is under way");
    std::fs::copy(site.path("Data.fs"), site.path("Data.fs.pack")).unwrap();
    std::fs::rename(site.path("Data.fs.pack"), site.path("Data.fs")).unwrap();
    let o = paused.resume();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("was replaced"), "{}", stderr(&o));
    assert_eq!(
        site.uploads_pending(),
        0,
        "the failed upload was not aborted"
    );
    assert_eq!(site.listing(), before, "something was left");

    // SIGTERM anywhere in the upload: exit 130, the upload aborted, the
    // lock released, nothing new (or, once the upload is complete, the
    // backup recorded).
    let mut rng = Rng::new(110);
    let mut interrupted = 0;
    for round in 0..3 {
        let before = site.listing();
        let mut child = site
            .ours(&["-B", "-r", &url, "-f", "Data.fs"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let what = format!("SIGTERM round {round}");
        wait_for_upload(&site, &mut child, 0, &what);
        let delay = if round == 0 { 0 } else { rng.below(1200) };
        std::thread::sleep(Duration::from_millis(delay));
        // SAFETY: a signal to the child we started and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            site.uploads_pending(),
            0,
            "{what}: the upload was not aborted"
        );
        assert!(
            o.status.success() || o.status.code() == Some(130),
            "{what}: {}",
            stderr(&o)
        );
        let after = site.listing();
        assert!(!after.contains_key("lock"), "{what}: the lock was left");
        if after == before {
            assert_eq!(o.status.code(), Some(130), "{what}: {}", stderr(&o));
            interrupted += 1;
        } else {
            // The signal came after the upload was complete: what is
            // there is recorded.
            let list = ok(run(site.ours(&["--list", "-r", &url])));
            let text = String::from_utf8_lossy(&list.stdout);
            assert!(
                !text.lines().any(|l| l.trim_start().starts_with('!')),
                "{what}: {text}"
            );
        }
        site.grow_big(16, 113 + round);
    }
    assert!(interrupted >= 1, "no SIGTERM landed during an upload");
    ok(run(site.ours(&["-B", "-r", &url, "-f", "Data.fs"])));
    ok(run(site.ours(&["-R", "-r", &url, "-o", "out.fs"])));
    assert!(site.read("out.fs") == site.committed());
    ok(run(site.ours(&["-V", "-r", &url])));
}

#[test]
fn histories_whose_files_exceed_the_multipart_part_size_recover_byte_for_byte_from_s3() {
    let site = S3Site::new(Site::grown(2, 120), "big");
    site.grow_big(20, 121);
    let mut rng = Rng::new(120);
    let mut states: Vec<(String, Vec<u8>)> = Vec::new();
    let modes = ["-B", "-BQ", "-BzF", "-Bz", "-BF"];
    for step in 0..5u64 {
        if step > 0 {
            if step == 3 {
                zodb::pack(&site.data_fs());
            }
            site.grow_big(18 + rng.below(8), 122 + step);
        }
        let stamp = site.backup_both(&[modes[step as usize]]);
        states.push((stamp, site.committed()));
    }
    // Several objects of several parts each, plain and gzip, full and
    // incremental.
    let listing = site.listing();
    let big = |ext: &str| {
        listing
            .iter()
            .filter(|(n, size)| n.ends_with(ext) && **size > PART)
            .count()
    };
    assert!(
        big(".fs") >= 1 && big(".deltafs") >= 1 && big(".fsz") >= 1,
        "too few data files above one part ({PART} bytes): {listing:?}"
    );
    site.assert_same_as_twin();
    let url = site.url();
    // (The objects are the twin's files, .index included: recovering
    // from S3 is enough.)
    for (i, (stamp, data)) in states.iter().enumerate() {
        ok(run(
            site.ours(&["-R", "-r", &url, "-D", stamp, "-o", "s3.fs"])
        ));
        assert!(
            site.read("s3.fs") == *data,
            "state {i} ({stamp}): recovered from S3 unlike the Data.fs then"
        );
        assert!(
            site.read("s3.fs.index") == site.read(&format!("repo/{stamp}.index")),
            "state {i}: the .index recovered from S3 is not the backup's"
        );
    }
    ok(run(site.ours(&["-V", "-r", &url])));
    ok(run(site.ours(&["-V", "-Q", "-r", &url])));
    std::fs::create_dir(site.path("down")).unwrap();
    site.download(&site.path("down"));
    ok(run(site.theirs(&["-R", "-r", "down", "-o", "zodb.fs"])));
    assert!(site.read("zodb.fs") == states.last().unwrap().1);
}

#[test]
fn kill_old_on_full_to_s3_removes_the_older_chains_and_keeps_the_newest_full_as_a_local_twin_does()
{
    let site = S3Site::new(Site::grown(4, 60), "killold");
    let url = site.url();
    site.backup_both(&["-B"]);
    site.grow(2, 61);
    site.backup_both(&["-B"]);
    site.grow(2, 62);
    site.backup_both(&["-BzF"]);
    site.grow(2, 63);
    site.backup_both(&["-Bz"]);
    // -k with an incremental: nothing is removed.
    site.grow(2, 64);
    site.backup_both(&["-Bk"]);
    let data_files = |site: &S3Site| {
        site.listing()
            .into_keys()
            .filter(|n| is_data(n))
            .collect::<Vec<_>>()
    };
    assert_eq!(data_files(&site).len(), 5);
    site.assert_same_as_twin();
    // -B -F -k: only the new full and its .dat and .index are left.
    site.grow(3, 65);
    let stamp = site.backup_both(&["-BFk"]);
    site.assert_same_as_twin();
    assert_eq!(
        site.listing().into_keys().collect::<Vec<_>>(),
        [".blake3", ".dat", ".fs", ".index"].map(|e| format!("{stamp}{e}")),
    );
    ok(run(site.ours(&["-R", "-r", &url, "-o", "out.fs"])));
    assert!(site.read("out.fs") == site.committed());
    ok(run(site.ours(&["-V", "-r", &url])));

    // Again with gzip, and a crash after the first removal: the repository
    // still recovers, and the rerun finishes the job.
    site.grow(2, 66);
    site.backup_both(&["-B"]);
    site.grow(2, 67);
    site.backup_both(&["-BQ"]);
    site.grow(2, 68);
    let mut c = site.ours(&["-BzFk", "-r", &url, "-f", "Data.fs"]);
    c.env("REPOZO_FAILPOINT", "backup:removed-one-old");
    assert!(run(c).status.code().is_none(), "the failpoint did not fire");
    ok(run(site.ours(&["-R", "-r", &url, "-o", "out.fs"])));
    assert!(site.read("out.fs") == site.committed());
    ok(run(site.ours(&["-V", "-r", &url])));
    site.grow(1, 69);
    let stamp = site.backup_both(&["-BzFk"]);
    let names = site.listing().into_keys().collect::<Vec<_>>();
    assert_eq!(
        names,
        [".blake3", ".dat", ".fsz", ".index"].map(|e| format!("{stamp}{e}")),
    );
    ok(run(site.ours(&["-R", "-r", &url, "-o", "out.fs"])));
    assert!(site.read("out.fs") == site.committed());
    ok(run(site.ours(&["-R", "-r", "repo", "-o", "local.fs"])));
    assert!(site.read("out.fs.index") == site.read("local.fs.index"));
    ok(run(site.ours(&["-V", "-r", &url])));
}

/// The one line `-R --incremental` prints, without the output's name.
fn incremental_summary(o: &Output, what: &str) -> String {
    let err = stderr(o);
    assert!(o.status.success(), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: {err}");
    err.trim_end()
        .strip_prefix("standby/Data.fs: ")
        .unwrap_or_else(|| panic!("{what}: {err}"))
        .to_string()
}

#[test]
fn an_incremental_recover_from_s3_steps_a_standby_forward_as_new_backups_arrive_with_and_without_q()
{
    let site = S3Site::new(Site::grown(4, 70), "standby");
    let url = site.url();
    std::fs::create_dir(site.path("standby")).unwrap();
    let mut rng = Rng::new(70);
    let mut states: Vec<(String, Vec<u8>)> = Vec::new();
    // (grow, backup flags, -Q for the recover, the summary expected)
    let steps: [(&str, &str, bool, &str); 8] = [
        ("", "-B", false, "full recover because"),
        ("small", "-B", false, "appended "),
        ("big", "-BQ", true, "appended "),
        ("", "-B", true, "already current"),
        ("small", "-Bz", true, "appended "),
        ("big", "-B", false, "appended "),
        ("pack", "-B", true, "full recover because"),
        ("small", "-BQz", true, "appended "),
    ];
    for (i, (grow, flags, quick, expect)) in steps.iter().enumerate() {
        let seed = 71 + i as u64;
        match *grow {
            "small" => site.grow(1 + rng.below(4), seed),
            "big" => site.grow_big(16, seed),
            "pack" => {
                zodb::pack(&site.data_fs());
                site.grow(2, seed);
            }
            _ => {}
        }
        let stamp = site.backup_both(&[flags]);
        let data = site.committed();
        let before = std::fs::metadata(site.path("standby/Data.fs")).map(|m| m.len());
        let mut args = vec!["-R", "--incremental", "-r", &url, "-o", "standby/Data.fs"];
        if *quick {
            args.push("-Q");
        }
        let what = format!("step {i} ({grow} {flags}, -Q {quick})");
        let line = incremental_summary(&run(site.ours(&args)), &what);
        assert!(line.starts_with(expect), "{what}: {line}");
        if expect.starts_with("appended") {
            let added = data.len() as u64 - before.unwrap();
            assert!(
                line.starts_with(&format!("appended {added} bytes from 1 file")),
                "{what}: {line}"
            );
        }
        assert!(
            site.read("standby/Data.fs") == data,
            "{what}: the standby is not the Data.fs"
        );
        // Its index is the one a full recover from the local twin writes.
        ok(run(site.ours(&["-R", "-r", "repo", "-o", "ref.fs"])));
        assert!(
            site.read("standby/Data.fs.index") == site.read("ref.fs.index"),
            "{what}: the standby's .index"
        );
        states.push((stamp, data));
    }
    // Back to an earlier state of the last chain (a truncation), then
    // forward again with -Q.
    let (stamp, data) = &states[states.len() - 2];
    let line = incremental_summary(
        &run(site.ours(&[
            "-R",
            "--incremental",
            "-r",
            &url,
            "-D",
            stamp,
            "-o",
            "standby/Data.fs",
        ])),
        "rewind",
    );
    assert_eq!(line, format!("truncated to {} bytes", data.len()));
    assert!(site.read("standby/Data.fs") == *data);
    let line = incremental_summary(
        &run(site.ours(&[
            "-R",
            "--incremental",
            "-Q",
            "-r",
            &url,
            "-o",
            "standby/Data.fs",
        ])),
        "forward again",
    );
    assert!(line.starts_with("appended "), "{line}");
    assert!(site.read("standby/Data.fs") == states.last().unwrap().1);
}

#[test]
fn sidecars_are_written_to_s3_like_the_twins_and_used_for_checks_there() {
    use repozo::backend::Backend;
    let site = S3Site::new(Site::grown(4, 700), "sidecars");
    for (i, mode) in ["-BF", "-B", "-Bz"].iter().enumerate() {
        if i > 0 {
            site.grow(2, 700 + i as u64);
        }
        site.backup_both(&[mode]);
    }
    let objects = site.listing();
    let sidecars: Vec<&String> = objects.keys().filter(|n| n.ends_with(".blake3")).collect();
    assert_eq!(sidecars.len(), 3, "{objects:?}");
    for name in &sidecars {
        assert_eq!(
            site.backend().read(name).unwrap(),
            site.read(&format!("repo/{name}")),
            "{name} differs from the twin's"
        );
    }
    let url = site.url();
    let o = ok(run(site.ours(&["-V", "--json", "-r", &url])));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(r#""checked_with":"blake3""#),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // A damaged sidecar object: reported, and md5 decides.
    let mut bad = site.backend().read(sidecars[1]).unwrap();
    bad[5] ^= 1;
    site.backend()
        .write_whole(sidecars[1], &mut |w| w.write_all(&bad))
        .unwrap();
    let o = ok(run(site.ours(&["-R", "-r", &url, "-o", "s3.fs"])));
    assert!(stderr(&o).contains("cannot be used"), "{}", stderr(&o));
    assert!(site.read("s3.fs") == site.committed());
}
