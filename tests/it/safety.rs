//! Never lose data: crashes at every step, kills, concurrent and same-second
//! backups, damaged repositories and bad input. Every repository these tests
//! leave behind is also recovered by ZODB's repozo, to the same bytes.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output};

use crate::common::{Paused, Site, committed_prefix, crashed, ok, ours, run, stderr};

/// `recovered` is the first whole transactions of `data`.
fn assert_whole_txn_prefix(recovered: &[u8], data: &[u8], what: &str) {
    assert!(
        recovered.len() <= data.len() && recovered == &data[..recovered.len()],
        "{what}: recovered bytes are not a prefix of the Data.fs"
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.fs");
    std::fs::write(&p, recovered).unwrap();
    assert_eq!(
        committed_prefix(&p).len(),
        recovered.len(),
        "{what}: recovered file ends inside a transaction"
    );
}

#[test]
fn a_crash_at_every_backup_step_leaves_a_repository_that_recovers_and_continues() {
    let steps = [
        "backup:locked",
        "backup:data-copied",
        "backup:data-renamed",
        "backup:sidecar-written",
        "backup:dat-written",
        "backup:index-written",
    ];
    let modes: [&[&str]; 4] = [&["-F"], &[], &["-Q"], &["-Qz"]];
    for (i, step) in steps.iter().enumerate() {
        for (j, mode) in modes.iter().enumerate() {
            let what = format!("crash at {step} in mode {mode:?}");
            let site = Site::grown(3, (i * 10 + j) as u64);
            ok(run(site.ours(&["-BF", "-r", "repo", "-f", "Data.fs"])));
            site.grow(2, 99);
            let mut args = vec!["-B", "-r", "repo", "-f", "Data.fs"];
            args.extend_from_slice(mode);
            let mut c = site.ours(&args);
            c.env("REPOZO_FAILPOINT", step);
            let o = run(c);
            assert!(
                crashed(&o),
                "{what}: the failpoint did not fire: {}",
                stderr(&o)
            );
            let data = site.committed();
            let recovered = site.recover_both_after_crash(&what);
            assert_whole_txn_prefix(&recovered, &data, &what);
            // The next backup, plain or quick, continues correctly.
            let next = if j % 2 == 0 { "-B" } else { "-BQ" };
            ok(run(site.ours(&[next, "-r", "repo", "-f", "Data.fs"])));
            assert!(
                site.recover_both() == data,
                "{what}: wrong bytes after the next backup"
            );
            site.verify_both();
            assert!(
                !site.repo_listing().iter().any(|n| n.contains(".tmp-")),
                "{what}: temporary files survived the next backup"
            );
        }
    }
}

#[test]
fn a_crash_while_removing_old_backups_leaves_a_repository_that_recovers() {
    let site = Site::grown(3, 5);
    ok(run(site.ours(&["-BF", "-r", "repo", "-f", "Data.fs"])));
    site.grow(1, 6);
    ok(run(site.ours(&["-B", "-r", "repo", "-f", "Data.fs"])));
    site.grow(1, 7);
    let mut c = site.ours(&["-BFk", "-r", "repo", "-f", "Data.fs"]);
    c.env("REPOZO_FAILPOINT", "backup:removed-one-old");
    assert!(crashed(&run(c)));
    let data = site.committed();
    assert!(site.recover_both() == data);
    site.verify_both();
    ok(run(site.ours(&["-BFk", "-r", "repo", "-f", "Data.fs"])));
    let names = site.repo_listing();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".fs")).count(),
        1,
        "{names:?}"
    );
    assert!(site.recover_both() == data);
}

#[test]
fn a_crash_during_recover_keeps_the_old_output_untouched() {
    let site = Site::grown(3, 8);
    ok(run(site.ours(&["-BF", "-r", "repo", "-f", "Data.fs"])));
    std::fs::write(site.path("out.fs"), b"old output").unwrap();
    std::fs::write(site.path("out.fs.index"), b"old index").unwrap();
    let mut c = site.ours(&["-R", "-r", "repo", "-o", "out.fs"]);
    c.env("REPOZO_FAILPOINT", "recover:data-copied");
    assert!(crashed(&run(c)));
    assert_eq!(site.read("out.fs"), b"old output");
    assert_eq!(site.read("out.fs.index"), b"old index");
    // Crashing between the two renames leaves the new, complete Data.fs.
    let mut c = site.ours(&["-R", "-r", "repo", "-o", "out.fs"]);
    c.env("REPOZO_FAILPOINT", "recover:output-renamed");
    assert!(crashed(&run(c)));
    assert!(site.read("out.fs") == site.committed());
    ok(run(site.ours(&["-R", "-r", "repo", "-o", "out.fs"])));
    assert!(site.read("out.fs") == site.committed());
    assert!(!site.path("out.fs.part").exists());
}

#[test]
fn random_kills_during_large_backups_never_break_the_repository() {
    let site = Site::grown(0, 1);
    site.grow_big(40, 1);
    ok(run(site.ours(&["-BF", "-r", "repo", "-f", "Data.fs"])));
    let mut rng = 0x9e37_79b9_u64;
    for round in 0..6 {
        site.grow_big(40, round + 2);
        let gzip = round % 2 == 1;
        let args: &[&str] = if gzip {
            &["-Bz", "-r", "repo", "-f", "Data.fs"]
        } else {
            &["-B", "-r", "repo", "-f", "Data.fs"]
        };
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = std::time::Duration::from_millis(rng % 60);
        let mut child = site.ours(args).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let data = site.committed();
        let what = format!("kill round {round}");
        assert_whole_txn_prefix(&site.recover_both_after_crash(&what), &data, &what);
        ok(run(site.ours(&["-BQ", "-r", "repo", "-f", "Data.fs"])));
        assert!(
            site.recover_both() == data,
            "wrong bytes after the backup following kill {round}"
        );
        site.verify_both();
    }
}

#[test]
fn a_data_fs_replaced_during_the_backup_fails_cleanly_and_records_nothing() {
    let site = Site::grown(3, 90);
    ok(run(site.ours(&["-BF", "-r", "repo", "-f", "Data.fs"])));
    site.grow(2, 91);
    let before = site.repo_listing();
    let paused = Paused::at(
        "backup:data-copied",
        site.ours(&["-B", "-r", "repo", "-f", "Data.fs"]),
    );
    // What a pack does: a new file renamed over the old name.
    std::fs::copy(site.data_fs(), site.path("Data.fs.pack")).unwrap();
    std::fs::rename(site.path("Data.fs.pack"), site.data_fs()).unwrap();
    let o = paused.resume();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("was replaced"), "{}", stderr(&o));
    assert_eq!(site.repo_listing(), before);
    ok(run(site.ours(&["-B", "-r", "repo", "-f", "Data.fs"])));
    assert!(site.recover_both() == site.committed());
}

#[test]
fn concurrent_backups_into_one_repository_take_turns() {
    let site = Site::grown(3, 12);
    // Real clock here: the lock, not pinned stamps, keeps the runs apart.
    let backup = || {
        let mut c = ours();
        c.current_dir(site.dir())
            .args(["-B", "-r", "repo", "-f", "Data.fs"]);
        c
    };
    ok(run(backup()));
    site.grow(2, 13);
    let children: Vec<_> = (0..3).map(|_| backup().spawn().unwrap()).collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // One of them did the increment, the others found nothing to do.
    assert_eq!(
        site.repo_listing()
            .iter()
            .filter(|n| n.ends_with(".deltafs"))
            .count(),
        1
    );
    assert!(site.recover_both_now() == site.committed());
}

#[test]
fn a_backup_that_cannot_get_the_lock_fails_with_exit_code_11_and_changes_nothing() {
    let site = Site::grown(3, 14);
    ok(run(site.ours(&["-BF", "-r", "repo", "-f", "Data.fs"])));
    site.grow(1, 15);
    let before = site.repo_listing();
    let holder = File::open(site.repo()).unwrap();
    holder.lock().unwrap();
    let mut c = site.ours(&["-B", "-r", "repo", "-f", "Data.fs"]);
    c.env("REPOZO_LOCK_WAIT", "1");
    let o = run(c);
    assert_eq!(o.status.code(), Some(11));
    assert!(
        stderr(&o).contains("is locked by another backup"),
        "{}",
        stderr(&o)
    );
    assert_eq!(site.repo_listing(), before);
    drop(holder);
    ok(run(site.ours(&["-B", "-r", "repo", "-f", "Data.fs"])));
}

#[test]
fn a_full_and_an_incremental_in_the_same_second_both_recover() {
    let site = Site::grown(3, 16);
    let same = "2026-01-01-00-00-00";
    ok(run(
        site.ours_at(same, &["-BF", "-r", "repo", "-f", "Data.fs"])
    ));
    site.grow(2, 17);
    ok(run(
        site.ours_at(same, &["-B", "-r", "repo", "-f", "Data.fs"])
    ));
    let names = site.repo_listing();
    assert!(
        names.contains(&"2026-01-01-00-00-01.deltafs".to_string()),
        "{names:?}"
    );
    // Both tools, asked for the state as of a later time, see everything.
    assert!(site.recover_both() == site.committed());
    site.verify_both();
}

#[test]
fn trailing_uncommitted_bytes_make_no_empty_increment() {
    let site = Site::grown(3, 18);
    ok(run(site.ours(&["-BF", "-r", "repo", "-f", "Data.fs"])));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(site.data_fs())
        .unwrap();
    std::io::Write::write_all(&mut f, &[0u8; 40]).unwrap();
    drop(f);
    let before = site.repo_listing();
    ok(run(site.ours(&["-BQ", "-r", "repo", "-f", "Data.fs"])));
    ok(run(site.ours(&["-B", "-r", "repo", "-f", "Data.fs"])));
    assert_eq!(site.repo_listing(), before);
}

/// A repository with a plain full, a gzip increment and a plain increment.
fn damaged_site(seed: u64) -> Site {
    let site = Site::grown(3, seed);
    ok(run(site.ours(&["-BF", "-r", "repo", "-f", "Data.fs"])));
    site.grow(2, seed + 1);
    ok(run(site.ours(&["-Bz", "-r", "repo", "-f", "Data.fs"])));
    site.grow(2, seed + 2);
    ok(run(site.ours(&["-B", "-r", "repo", "-f", "Data.fs"])));
    site
}

fn find(site: &Site, suffix: &str) -> PathBuf {
    site.repo().join(
        site.repo_listing()
            .into_iter()
            .find(|n| n.ends_with(suffix))
            .unwrap(),
    )
}

/// `-V` (and optionally `-V -Q`) fail with both tools, and `-R -w` fails
/// leaving the old output exactly as it was and no `.part`.
fn assert_damage_caught(site: &Site, quick_catches: bool) {
    for args in [&["-V", "-r", "repo"][..], &["-VQ", "-r", "repo"][..]] {
        let quick = args[0] == "-VQ";
        let o = run(site.ours(args));
        assert_eq!(
            o.status.success(),
            quick && !quick_catches,
            "{args:?}: {}",
            stderr(&o)
        );
        if !o.status.success() {
            assert!(!stderr(&o).contains("Traceback"));
        }
    }
    std::fs::write(site.path("out.fs"), b"the live database").unwrap();
    // Recover verifies with or without -w, to a file and to stdout.
    for args in [
        &["-R", "-w", "-r", "repo", "-o", "out.fs"][..],
        &["-R", "-r", "repo", "-o", "out.fs"][..],
        &["-R", "-r", "repo"][..],
    ] {
        let o = run(site.ours(args));
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert_eq!(site.read("out.fs"), b"the live database", "{args:?}");
        assert!(!site.path("out.fs.part").exists(), "{args:?}");
    }
}

#[test]
fn a_flipped_byte_is_caught_by_verify_and_by_recover_with_verify() {
    let site = damaged_site(20);
    let victim = find(&site, ".deltafs");
    let mut b = std::fs::read(&victim).unwrap();
    b[10] ^= 0x01;
    std::fs::write(&victim, b).unwrap();
    assert_damage_caught(&site, false);
    // ZODB's repozo agrees that it is damaged.
    assert!(!run(site.theirs(&["-V", "-r", "repo"])).status.success());
}

#[test]
fn a_truncated_gzip_file_is_caught_by_verify_quick_verify_and_recover_with_verify() {
    let site = damaged_site(30);
    let victim = find(&site, ".deltafsz");
    let b = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &b[..b.len() / 2]).unwrap();
    assert_damage_caught(&site, true);
}

#[test]
fn a_truncated_plain_file_is_caught_by_quick_verify_too() {
    let site = damaged_site(40);
    let victim = find(&site, ".fs");
    let b = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &b[..b.len() - 1]).unwrap();
    assert_damage_caught(&site, true);
}

#[test]
fn verify_reports_a_data_file_recover_would_use_but_the_dat_does_not_list() {
    let site = damaged_site(50);
    let extra = site.repo().join("2040-01-01-00-00-00.deltafs");
    std::fs::write(&extra, b"stray").unwrap();
    let o = run(site.ours_at("2041-01-01-00-00-00", &["-V", "-r", "repo"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not listed in"), "{}", stderr(&o));
}

#[test]
fn a_repository_path_with_spaces_works_and_zodb_reads_it_with_plain_recover() {
    let site = Site::grown(3, 60);
    std::fs::create_dir(site.path("my backups")).unwrap();
    let r = "my backups";
    ok(run(site.ours(&["-BF", "-r", r, "-f", "Data.fs"])));
    site.grow(2, 61);
    ok(run(site.ours(&["-BQ", "-r", r, "-f", "Data.fs"])));
    ok(run(site.ours(&["-V", "-r", r])));
    ok(run(site.ours(&["-R", "-w", "-r", r, "-o", "ours.fs"])));
    ok(run(site.theirs(&["-R", "-r", r, "-o", "theirs.fs"])));
    let data = site.committed();
    assert!(site.read("ours.fs") == data);
    assert!(site.read("theirs.fs") == data);
}

#[test]
fn bad_input_gives_a_clear_error_exit_1_or_10_and_leaves_the_repository_unchanged() {
    let site = Site::grown(3, 70);
    ok(run(site.ours(&["-BF", "-r", "repo", "-f", "Data.fs"])));
    std::fs::write(site.path("empty.fs"), b"").unwrap();
    std::fs::write(site.path("text.fs"), b"this is not a FileStorage at all").unwrap();
    std::fs::create_dir(site.path("adir")).unwrap();
    let before = site.repo_listing();
    let cases: &[(&[&str], &str, i32)] = &[
        (&["-B", "-r", "repo", "-f", "empty.fs"], "empty", 1),
        (
            &["-BF", "-r", "repo", "-f", "text.fs"],
            "not a FileStorage",
            1,
        ),
        (
            &["-B", "-r", "repo", "-f", "text.fs"],
            "not a FileStorage",
            1,
        ),
        (&["-B", "-r", "repo", "-f", "adir"], "Is a directory", 1),
        (&["-B", "-r", "repo", "-f", "missing.fs"], "No such file", 1),
        (
            &["-B", "-r", "norepo", "-f", "Data.fs"],
            "does not exist",
            10,
        ),
        (
            &["-B", "-r", "Data.fs", "-f", "Data.fs"],
            "Not a directory",
            1,
        ),
        (
            &["-R", "-r", "repo", "-D", "2026-02-30", "-o", "x.fs"],
            "is not a date",
            1,
        ),
        (
            &["-R", "-r", "repo", "-D", "yesterday", "-o", "x.fs"],
            "is not a date",
            1,
        ),
        (&["-R", "-r", "repo", "-o", "nodir/x.fs"], "No such file", 1),
    ];
    for (args, msg, code) in cases {
        let o = run(site.ours(args));
        assert_eq!(o.status.code(), Some(*code), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(msg), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line expected: {err}");
        assert_eq!(
            site.repo_listing(),
            before,
            "{args:?} changed the repository"
        );
    }
    assert!(!site.path("x.fs").exists());
}

/// Runs `c` to the pause at `step`, sends it `signal`, lets it go on, and
/// returns its end.
fn signal_at_pause(c: Command, step: &str, signal: i32) -> Output {
    let paused = Paused::at(step, c);
    paused.signal(signal);
    paused.resume()
}

#[test]
fn ctrl_c_or_sigterm_during_a_backup_exits_130_and_leaves_the_repository_as_it_was() {
    for (signal, seed) in [(libc::SIGINT, 95), (libc::SIGTERM, 97)] {
        let site = Site::grown(3, seed);
        ok(run(site.ours(&["-BF", "-r", "repo", "-f", "Data.fs"])));
        let backed_up = site.committed();
        site.grow(2, seed + 1);
        let before = site.repo_listing();
        let o = signal_at_pause(
            site.ours(&["-B", "-r", "repo", "-f", "Data.fs"]),
            "backup:data-copied",
            signal,
        );
        assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
        assert!(stderr(&o).starts_with("interrupted: "), "{}", stderr(&o));
        assert_eq!(
            site.repo_listing(),
            before,
            "nothing new, no temporary file"
        );
        assert!(site.recover_both() == backed_up);
        site.verify_both();
    }
}

#[test]
fn ctrl_c_during_a_recover_exits_130_and_keeps_the_old_output() {
    let site = Site::grown(3, 99);
    ok(run(site.ours(&["-BF", "-r", "repo", "-f", "Data.fs"])));
    std::fs::write(site.path("out.fs"), b"the live database").unwrap();
    let o = signal_at_pause(
        site.ours(&["-R", "-r", "repo", "-o", "out.fs"]),
        "recover:data-copied",
        libc::SIGINT,
    );
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert_eq!(site.read("out.fs"), b"the live database");
    assert!(!site.path("out.fs.part").exists());
    assert!(!site.path("out.fs.index").exists());
}

#[test]
fn a_chain_with_a_deleted_incremental_is_refused_by_recover_and_keeps_the_old_output() {
    // Each remaining file still matches its own .dat line; only the order
    // of the lines shows the gap (ZODB's repozo restores it silently).
    let site = damaged_site(70);
    std::fs::remove_file(find(&site, ".deltafsz")).unwrap();
    std::fs::write(site.path("out.fs"), b"the live database").unwrap();
    for args in [
        &["-R", "-r", "repo", "-o", "out.fs"][..],
        &["-R", "-r", "repo"][..],
        &["-R", "-w", "-r", "repo", "-o", "out.fs"][..],
    ] {
        let o = run(site.ours(args));
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("are missing from the chain"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(o.stdout.is_empty(), "{args:?}: nothing recovered to stdout");
        assert_eq!(site.read("out.fs"), b"the live database");
        assert!(!site.path("out.fs.part").exists());
    }
    // --incremental does not fall back to a full recover of the gap either.
    ok(run(site.ours(&[
        "-R",
        "--no-verify",
        "-r",
        "repo",
        "-o",
        "standby.fs",
    ])));
    let before = site.read("standby.fs");
    let o = run(site.ours(&["-R", "--incremental", "-r", "repo", "-o", "standby.fs"]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(site.read("standby.fs"), before);
}

#[test]
fn a_signal_after_the_data_file_is_in_place_lets_the_backup_and_recover_finish_their_metadata() {
    let site = Site::grown(3, 71);
    ok(run(site.ours(&["-BF", "-r", "repo", "-f", "Data.fs"])));
    site.grow(2, 72);
    let o = signal_at_pause(
        site.ours(&["-B", "-r", "repo", "-f", "Data.fs"]),
        "backup:dat-written",
        libc::SIGINT,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names = site.repo_listing();
    let delta = names.iter().find(|n| n.ends_with(".deltafs")).unwrap();
    let index = delta.replace(".deltafs", ".index");
    assert!(names.contains(&index), "{names:?}");
    site.verify_both();
    std::fs::write(site.path("out.fs"), b"the live database").unwrap();
    let o = signal_at_pause(
        site.ours(&["-R", "-r", "repo", "-o", "out.fs"]),
        "recover:output-renamed",
        libc::SIGINT,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(site.read("out.fs") == site.committed());
    assert_eq!(
        site.read("out.fs.index"),
        std::fs::read(site.repo().join(&index)).unwrap()
    );
}
