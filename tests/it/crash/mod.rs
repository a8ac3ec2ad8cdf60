//! Power loss: every crash state of the write protocol, in the manner of
//! ALICE (Pillai et al., OSDI 2014). A real run of the binary is recorded
//! under strace ([`trace`]), split into the operations of a weak (POSIX)
//! and a strong (ext4 `data=ordered`-like) persistence model, and every
//! state ALICE explores ([`model::states`]) is built from the directory as
//! it was before the run and checked ([`check`]). docs/power-loss.md says
//! what this guarantees; docs/testing.md how long it takes.
//!
//! Size: `REPOZO_CRASH_STATES=full` explores every operation of
//! [`SCENARIOS`] in both models (`bash scripts/crash-states.sh`); the
//! default, `sample`, the operations marked for the normal suite. The
//! binary is `REPOZO_CRASH_BIN` if set (the script sets the release
//! build), else the test build's.
//!
//! Adding an operation is one line of [`SCENARIOS`].

mod check;
mod model;
mod trace;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::Site;
use check::{Expect, Kind};
use model::Model;

/// The site an operation runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prep {
    /// A Data.fs, a full backup and an incremental, then more commits.
    Plain,
    /// The same with blobs (`blobs/`, backups with `--blob-dir blobs`).
    Blobs,
    /// Two chains: a full backup, then another (`-F`), then more commits.
    Chains,
    /// As `Plain`, with an undo before the last backup, then a pack (so
    /// the next `-B --pack-delta` writes a pack delta).
    Packed,
}

/// One writing operation to explore: its name, its site, its arguments,
/// what it writes, and whether the in-suite sample runs it.
pub struct Scenario {
    pub name: &'static str,
    pub prep: Prep,
    pub kind: Kind,
    pub args: &'static [&'static str],
    pub sample: bool,
}

const fn backup(name: &'static str, prep: Prep, args: &'static [&'static str]) -> Scenario {
    Scenario {
        name,
        prep,
        kind: Kind::Backup,
        args,
        sample: false,
    }
}

const fn recover(name: &'static str, prep: Prep, args: &'static [&'static str]) -> Scenario {
    Scenario {
        name,
        prep,
        kind: Kind::Recover,
        args,
        sample: false,
    }
}

const fn sampled(s: Scenario) -> Scenario {
    Scenario { sample: true, ..s }
}

/// Every operation that writes to a local repository or output. S3 needs
/// no model: an object put is atomic (docs/power-loss.md).
#[rustfmt::skip]
pub const SCENARIOS: &[Scenario] = &[
    backup("backup-full", Prep::Plain, &["-B", "-F", "-f", "Data.fs", "-r", "repo"]),
    sampled(backup("backup-incremental", Prep::Plain, &["-B", "-f", "Data.fs", "-r", "repo"])),
    backup("backup-gzip", Prep::Plain, &["-B", "-z", "-f", "Data.fs", "-r", "repo"]),
    backup("backup-quick", Prep::Plain, &["-B", "-Q", "-f", "Data.fs", "-r", "repo"]),
    backup("backup-kill-old", Prep::Plain, &["-B", "-F", "-k", "-f", "Data.fs", "-r", "repo"]),
    backup("backup-keep", Prep::Plain, &["-B", "-F", "--keep=1", "-f", "Data.fs", "-r", "repo"]),
    backup("retention", Prep::Chains, &["-r", "repo", "--keep=1"]),
    backup("backup-blobs", Prep::Blobs, &["-B", "-f", "Data.fs", "-r", "repo", "--blob-dir", "blobs"]),
    backup("backup-blobs-full-kill-old", Prep::Blobs, &["-B", "-F", "-k", "-f", "Data.fs", "-r", "repo", "--blob-dir", "blobs"]),
    recover("recover", Prep::Plain, &["-R", "-r", "repo", "-o", "out.fs"]),
    recover("recover-blobs", Prep::Blobs, &["-R", "-r", "repo", "-o", "out.fs", "--blob-dir", "outblobs"]),
    sampled(recover("recover-incremental", Prep::Plain, &["-R", "--incremental", "-r", "repo", "-o", "out.fs"])),
    recover("recover-incremental-quick", Prep::Plain, &["-R", "--incremental", "-Q", "-r", "repo", "-o", "out.fs"]),
    recover("recover-incremental-blobs", Prep::Blobs, &["-R", "--incremental", "-r", "repo", "-o", "out.fs", "--blob-dir", "outblobs"]),    sampled(backup("backup-pack-delta", Prep::Packed, &["-B", "--pack-delta", "-f", "Data.fs", "-r", "repo"])),
    recover("recover-incremental-after-pack", Prep::Packed, &["-R", "--incremental", "-r", "repo", "-o", "out.fs"]),
];

/// The stamps of the site's earlier backups, and of the recorded run.
const STAMPS: [&str; 4] = [
    "2026-01-01-00-00-00",
    "2026-01-02-00-00-00",
    "2026-01-03-00-00-00",
    "2026-01-04-00-00-00",
];

/// The stamp of the runs made on a crash state.
pub const LATER: &str = "2026-02-01-00-00-00";

/// The binary under test.
pub fn bin() -> PathBuf {
    std::env::var_os("REPOZO_CRASH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_repozo")))
}

/// The binary at `now`, in `dir`.
pub fn repozo(dir: &Path, now: &str, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg0("repozo")
        .current_dir(dir)
        .args(args)
        .env("REPOZO_TEST_NOW", now)
        .env_remove("REPOZO_FAILPOINT");
    c
}

fn must(mut c: Command, what: &str) {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A site as `prep` makes it: backups at the first stamps, then more
/// commits; for a recover, a third backup and an output restored from
/// the first (`out.fs`, with blobs `outblobs/`).
fn prepare(prep: Prep, kind: Kind, seed: u64) -> (Site, Vec<&'static str>) {
    let blobs = prep == Prep::Blobs;
    let site = if blobs {
        Site::with_blobs("bushy", seed)
    } else {
        Site::grown(6, seed)
    };
    let grow = |i: u64| {
        if blobs {
            site.step(seed * 10 + i, &[]);
        } else {
            site.grow(4, seed * 10 + i);
        }
    };
    let mut b = vec!["-B", "-f", "Data.fs", "-r", "repo"];
    if blobs {
        b.extend(["--blob-dir", "blobs"]);
    }
    // A standby after a pack: two backups, the standby restored from
    // them, a pack, and the pack delta as the third backup.
    let standby = prep == Prep::Packed && kind == Kind::Recover;
    let n = if kind == Kind::Recover && !standby {
        3
    } else {
        2
    };
    for (i, stamp) in STAMPS[..n].iter().enumerate() {
        if prep == Prep::Chains && i > 0 {
            b.push("-F");
        }
        if prep == Prep::Packed && i + 1 == n {
            crate::common::zodb::undo(&site.data_fs());
        }
        must(repozo(site.dir(), stamp, &b), "a backup of the setup");
        grow(i as u64 + 1);
    }
    if standby {
        must(
            repozo(site.dir(), STAMPS[n], &["-R", "-r", "repo", "-o", "out.fs"]),
            "the setup's standby",
        );
    }
    if prep == Prep::Packed {
        // As of a transaction the last backup holds, so the pack keeps
        // backed-up records (the commits since are not in the base).
        crate::common::zodb::pack_with(&site.data_fs(), &["--at", "0.5"]);
        grow(n as u64 + 1);
    }
    if standby {
        let mut d = b.clone();
        d.push("--pack-delta");
        must(repozo(site.dir(), STAMPS[n], &d), "the setup's pack delta");
        return (site, STAMPS[..=n].to_vec());
    }
    if kind == Kind::Recover {
        let mut r = vec!["-R", "-r", "repo", "-D", STAMPS[0], "-o", "out.fs"];
        if blobs {
            r.extend(["--blob-dir", "outblobs"]);
        }
        must(
            repozo(site.dir(), STAMPS[n], &r),
            "the setup's first restore",
        );
    }
    (site, STAMPS[..n].to_vec())
}

/// What one operation's exploration found, per model.
pub struct Outcome {
    /// The recorded calls that changed something, numbered as the
    /// failures name them.
    pub calls: Vec<String>,
    pub states: usize,
    pub distinct: usize,
    pub failures: Vec<String>,
}

/// Records `cmd` on `site` and checks every crash state of both models
/// against `expect`.
pub fn explore(site: &Path, cmd: Command, expect: &mut Expect) -> Vec<(Model, Outcome)> {
    let rec = trace::record(site, cmd);
    assert!(
        rec.status == 0,
        "{}: the recorded run exited {}: {}",
        site.display(),
        rec.status,
        rec.stderr
    );
    expect.finish(site);
    let before = &rec.before;
    let mut out = Vec::new();
    for model in Model::BOTH {
        let ops = model::expand(&rec.calls, model);
        let deps = model::deps(&ops, model);
        let states = model::states(&ops, rec.calls.len(), &deps);
        // Distinct (tree, acknowledged, torn rename) are checked once.
        type Work = (BTreeMap<String, Option<Vec<u8>>>, String);
        let mut unique: HashMap<(u64, bool, bool), Work> = HashMap::new();
        for s in &states {
            let mut fs = before.clone();
            let mut acked = false;
            for (p, m) in ops.iter().enumerate() {
                if s.kept[p] {
                    fs.apply(&m.op);
                    if matches!(m.op, trace::Op::Exit { code: 0 }) {
                        acked = true;
                    }
                }
            }
            let tree = fs.tree();
            let key = (check::hash_tree(&tree), acked, s.torn_rename);
            unique.entry(key).or_insert((tree, s.how.clone()));
        }
        let work: Vec<_> = unique.into_iter().collect();
        let failures = Mutex::new(Vec::new());
        let next = AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for _ in 0..2 {
                sc.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(((_, acked, torn), (tree, how))) = work.get(i) else {
                            break;
                        };
                        if let Err(e) = expect.check(tree, *acked, *torn) {
                            failures.lock().unwrap().push(format!(
                                "{} model, {how} (acknowledged: {acked}): {e}",
                                model.name()
                            ));
                        }
                    }
                });
            }
        });
        let mut failures = failures.into_inner().unwrap();
        failures.sort();
        out.push((
            model,
            Outcome {
                calls: rec
                    .calls
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{i}: {}", c.line))
                    .collect(),
                states: states.len(),
                distinct: work.len(),
                failures,
            },
        ));
    }
    out
}

/// Explores one operation of [`SCENARIOS`]; returns per model the
/// number of states and the failures.
pub fn run_scenario(s: &Scenario, seed: u64) -> Vec<(Model, Outcome)> {
    let (site, points) = prepare(s.prep, s.kind, seed);
    let now = STAMPS[points.len()];
    let mut expect = Expect::new(
        site.dir(),
        s.kind,
        s.prep == Prep::Blobs,
        s.args,
        &points,
        now,
    );
    if s.prep == Prep::Packed && s.kind == Kind::Recover {
        // The run explored must be the standby's rebuild from its own
        // bytes: try it on a copy of the site first.
        let copy = tempfile::tempdir().unwrap();
        let cp = Command::new("cp")
            .args(["-a", "."])
            .arg(copy.path())
            .current_dir(site.dir())
            .status()
            .unwrap();
        assert!(cp.success());
        let out = repozo(copy.path(), now, s.args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.contains("rebuilt"),
            "the standby was not rebuilt from its own bytes: {err}"
        );
    }
    let cmd = repozo(site.dir(), now, s.args);
    let outcome = explore(site.dir(), cmd, &mut expect);
    if s.prep == Prep::Packed && s.kind == Kind::Backup {
        // The recorded run must have written what it is meant to test.
        let delta = site.repo().join(format!("{now}.fsz"));
        let head = std::fs::read(&delta).unwrap_or_default();
        assert!(
            head.starts_with(b"repozo-rs pack-delta 1\n"),
            "{}: the recorded run wrote no pack delta",
            delta.display()
        );
    }
    outcome
}

/// The operations `REPOZO_CRASH_STATES` selects: `full`, `sample` (the
/// default), or the name of one operation.
fn selected() -> Vec<&'static Scenario> {
    let pick = std::env::var("REPOZO_CRASH_STATES").unwrap_or_default();
    let chosen: Vec<_> = SCENARIOS
        .iter()
        .filter(|s| match pick.as_str() {
            "full" => true,
            "sample" | "" => s.sample,
            name => s.name == name,
        })
        .collect();
    assert!(
        !chosen.is_empty(),
        "REPOZO_CRASH_STATES={pick:?}: give full, sample or one of the operations of \
         tests/it/crash/mod.rs's SCENARIOS"
    );
    chosen
}

#[test]
fn every_acknowledged_backup_survives_every_crash_state_of_its_run() {
    let t0 = std::time::Instant::now();
    let mut total = 0;
    let mut failed = Vec::new();
    for s in selected() {
        // The site's seed follows the operation, whatever else runs.
        let i = SCENARIOS.iter().position(|x| x.name == s.name).unwrap();
        for (model, o) in run_scenario(s, 100 + i as u64) {
            eprintln!(
                "crash-states: {} ({} model): {} states ({} distinct), {} failures",
                s.name,
                model.name(),
                o.states,
                o.distinct,
                o.failures.len()
            );
            total += o.states;
            for f in o.failures.iter().take(5) {
                eprintln!("  FAIL {}: {f}", s.name);
            }
            if !o.failures.is_empty() {
                eprintln!("  the recorded calls of {}:", s.name);
                for c in &o.calls {
                    eprintln!("    {c}");
                }
            }
            failed.extend(o.failures.into_iter().map(|f| format!("{}: {f}", s.name)));
        }
    }
    eprintln!("explored in {:.0} s", t0.elapsed().as_secs_f64());
    eprintln!("crash-states: {total} states, {} failures", failed.len());
    assert!(failed.is_empty(), "{} crash states fail", failed.len());
}

/// Regression state found by the explorer (weak model, backup-incremental:
/// the `.dat` append torn, its size on disk before its data): the `.dat`
/// ends in zeros without a newline. `-B` dropped that tail; `-V` and `-R`
/// refused the whole chain. Now every reader leaves it out, with a warning.
#[test]
fn a_dat_ending_in_zeros_after_a_power_cut_still_verifies_and_restores_every_point() {
    let (site, stamps) = prepare(Prep::Plain, Kind::Backup, 7);
    let dat = site.repo().join(format!("{}.dat", stamps[0]));
    let mut raw = std::fs::read(&dat).unwrap();
    let want: Vec<Vec<u8>> = stamps
        .iter()
        .map(|s| check::restore_bytes(site.dir(), s).unwrap())
        .collect();
    raw.extend([0u8; 77]);
    std::fs::write(&dat, &raw).unwrap();
    let o = repozo(site.dir(), LATER, &["-V", "-r", "repo"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "-V: {err}");
    assert!(
        err.contains("ignored an incomplete last line left by an interrupted backup"),
        "-V does not warn: {err}"
    );
    for (s, w) in stamps.iter().zip(&want) {
        assert_eq!(
            &check::restore_bytes(site.dir(), s).unwrap(),
            w,
            "-R -D {s}"
        );
    }
    must(
        repozo(site.dir(), LATER, &["-B", "-f", "Data.fs", "-r", "repo"]),
        "-B",
    );
    must(
        repozo(site.dir(), LATER, &["-V", "-r", "repo"]),
        "-V after -B",
    );
}

/// A shell program that writes a full backup of `Data.fs` as `stamp` by
/// the protocol `steps` (a shell fragment with `$S` the stamp and `$LINE`
/// the `.dat` line), recorded and checked as the binary's backups are.
fn explore_script(steps: &str) -> Vec<(Model, Outcome)> {
    let site = Site::grown(6, 3);
    let data = std::fs::read(site.data_fs()).unwrap();
    let md5: String = <md5::Md5 as md5::Digest>::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let stamp = STAMPS[0];
    let line = format!("repo/{stamp}.fs 0 {} {md5}", data.len());
    let args = ["-B", "-f", "Data.fs", "-r", "repo"];
    let mut expect = Expect::new(site.dir(), Kind::Backup, false, &args, &[], stamp);
    let mut cmd = Command::new("sh");
    cmd.args(["-euc", steps])
        .current_dir(site.dir())
        .env("S", stamp)
        .env("LINE", line);
    explore(site.dir(), cmd, &mut expect)
}

fn failures(found: &[(Model, Outcome)], model: Model) -> usize {
    found
        .iter()
        .filter(|(m, _)| *m == model)
        .map(|(_, o)| o.failures.len())
        .sum()
}

#[test]
fn the_explorer_passes_a_backup_written_by_a_safe_protocol() {
    let found = explore_script(
        "cp Data.fs repo/$S.fs.tmp; sync repo/$S.fs.tmp; mv repo/$S.fs.tmp repo/$S.fs; sync repo; \
         echo \"$LINE\" > repo/$S.dat.tmp; sync repo/$S.dat.tmp; mv repo/$S.dat.tmp repo/$S.dat; \
         sync repo",
    );
    for (m, o) in &found {
        assert!(
            o.failures.is_empty(),
            "{} model: {:#?}",
            m.name(),
            o.failures
        );
        assert!(
            o.states > 10,
            "{} model: only {} states",
            m.name(),
            o.states
        );
    }
}

#[test]
fn the_explorer_catches_a_data_file_renamed_into_place_before_it_was_synced() {
    let found = explore_script(
        "cp Data.fs repo/$S.fs.tmp; mv repo/$S.fs.tmp repo/$S.fs; sync repo; \
         echo \"$LINE\" > repo/$S.dat.tmp; sync repo/$S.dat.tmp; mv repo/$S.dat.tmp repo/$S.dat; \
         sync repo",
    );
    assert!(
        failures(&found, Model::Weak) > 0,
        "the weak model misses it"
    );
    assert!(
        failures(&found, Model::Strong) > 0,
        "the strong model misses it"
    );
}

#[test]
fn the_explorer_catches_a_dat_line_appended_before_its_data_file_was_durable() {
    let found = explore_script(
        "cp Data.fs repo/$S.fs; echo \"$LINE\" >> repo/$S.dat; sync repo/$S.dat; sync repo",
    );
    assert!(
        failures(&found, Model::Weak) > 0,
        "the weak model misses it"
    );
    assert!(
        failures(&found, Model::Strong) > 0,
        "the strong model misses it"
    );
}

/// Regression state found by the explorer (recover-blobs, both models):
/// `-R --blob-dir` over an existing blob directory renamed the old tree
/// aside and then the new one into place, so a crash between the two
/// renames (a SIGKILL too) left no blob directory beside the Data.fs. The
/// trees now trade names in one `RENAME_EXCHANGE`: in no crash state of the
/// strong model is the blob directory missing.
#[test]
fn a_blob_restore_over_a_blob_directory_never_leaves_it_missing_after_a_crash() {
    let (site, _) = prepare(Prep::Blobs, Kind::Recover, 11);
    let args = ["-R", "-r", "repo", "-o", "out.fs", "--blob-dir", "outblobs"];
    let rec = trace::record(site.dir(), repozo(site.dir(), STAMPS[3], &args));
    assert_eq!(rec.status, 0, "{}", rec.stderr);
    let ops = model::expand(&rec.calls, Model::Strong);
    let deps = model::deps(&ops, Model::Strong);
    let states = model::states(&ops, rec.calls.len(), &deps);
    for s in &states {
        let mut fs = rec.before.clone();
        for (p, m) in ops.iter().enumerate() {
            if s.kept[p] {
                fs.apply(&m.op);
            }
        }
        let tree = fs.tree();
        assert!(
            tree.contains_key("outblobs/.layout"),
            "{}: no blob directory beside out.fs",
            s.how
        );
    }
}
