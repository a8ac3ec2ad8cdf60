//! The backup wrappers Plone sites use, driving our binary by their own
//! code (installed into the test venv from the package index, pinned in
//! tests/py/requirements.txt), the way the README tells an operator to
//! set them up:
//!
//! - collective-backup 1.0.0a1 with `repozo = "repozo-rs"` in
//!   `[tool.collective-backup]` of a pyproject.toml: its `find_repozo`
//!   (collective/backup/scripts.py) looks a bare name up on PATH. Its own
//!   command line (`python -m collective.backup backup`, `restore`) backs
//!   up and restores a Data.fs and its blobs.
//! - collective.recipe.backup 6.0's `repozorunner` (collective/recipe/
//!   backup/repozorunner.py), called with the arguments its generated
//!   `bin/backup`, `bin/snapshotbackup` and `bin/restore` pass: it runs
//!   `<bin-directory>/repozo` with `os.system`, here a link to our
//!   binary, for a backup, a snapshot and restores at a date.
//!
//! The binary is the `repozo-rs` the wheel installs (the same program as
//! `repozo`), each run's clock pinned by `REPOZO_TEST_NOW`, which the
//! wrappers pass on. ZODB's own repozo is in the venv's bin/, never on
//! PATH here: the tests check the wrappers ran ours.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{Site, committed_prefix, listing, next_stamp, py, run, stderr, stdout};

/// Our binary as the wheel installs it.
const REPOZO_RS: &str = env!("CARGO_BIN_EXE_repozo-rs");

/// A directory `tools/` in the site holding a link `name` to our binary;
/// returns the directory.
fn link_ours(site: &Site, dir: &str, name: &str) -> PathBuf {
    let bin = site.path(dir);
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(REPOZO_RS, bin.join(name)).unwrap();
    bin
}

/// PATH with `first` in front of the test's own (for /bin/sh and the
/// like) and no directory that holds a `repozo` or `repozo-rs` besides.
fn path_with(first: &Path) -> String {
    let rest = std::env::var("PATH").unwrap_or_default();
    let mut dirs = vec![first.display().to_string()];
    dirs.extend(
        rest.split(':')
            .filter(|d| {
                !d.is_empty()
                    && !Path::new(d).join("repozo").exists()
                    && !Path::new(d).join("repozo-rs").exists()
            })
            .map(str::to_owned),
    );
    dirs.join(":")
}

/// Asserts a wrapper run succeeded, showing what it printed otherwise.
fn ok_run(what: &str, o: Output) -> Output {
    assert!(
        o.status.success(),
        "{what} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    o
}

/// The same command environment for every wrapper run: PATH with `bin`
/// first, our clock pinned at `now`, no failpoint.
fn wrapper_env(c: &mut Command, site: &Site, bin: &Path, now: &str) {
    c.current_dir(site.dir())
        .env("PATH", path_with(bin))
        .env("REPOZO_TEST_NOW", now)
        .env_remove("REPOZO_FAILPOINT")
        .env_remove("REPOZO_LOCK_WAIT");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("COLLECTIVE_BACKUP_") {
            c.env_remove(k);
        }
    }
}

/// `python -m collective.backup ARGS` in the site, at `now`.
fn collective_backup(site: &Site, bin: &Path, now: &str, args: &[&str]) -> Output {
    let mut c =
        py::python_code("import sys; from collective.backup.cli import main; sys.exit(main())");
    c.args(args);
    wrapper_env(&mut c, site, bin, now);
    ok_run(&format!("collective-backup {args:?}"), run(c))
}

#[test]
fn collective_backup_backs_up_and_restores_data_fs_and_blobs_through_repozo_rs() {
    let site = Site::with_blobs("bushy", 2101);
    let bin = link_ours(&site, "tools", "repozo-rs");
    // The one line an operator changes (README), beside the site's own
    // paths: its Data.fs and blobs are not in var/, and there is no rsync.
    std::fs::write(
        site.path("pyproject.toml"),
        "[tool.collective-backup]\n\
         repozo = \"repozo-rs\"\n\
         datafs = \"Data.fs\"\n\
         blob_storage = \"blobs\"\n\
         use_rsync = false\n",
    )
    .unwrap();

    // It resolves the setting on PATH to our binary, not ZODB's repozo
    // beside its own Python.
    let shown = stdout(&collective_backup(&site, &bin, &next_stamp(), &["show"]));
    let ours = bin.join("repozo-rs").display().to_string();
    assert!(
        shown.contains(&format!("'repozo': '{ours}'")),
        "collective-backup did not pick repozo-rs on PATH:\n{shown}"
    );

    // A full backup, then ZODB writes more blobs and records, and an
    // incremental one.
    let t1 = next_stamp();
    collective_backup(&site, &bin, &t1, &["backup"]);
    let step1 = site.current_step();
    let state1 = committed_prefix(&site.data_fs());
    site.step(2102, &[]);
    site.step(2103, &[]);
    let t2 = next_stamp();
    collective_backup(&site, &bin, &t2, &["backup"]);
    let state2 = committed_prefix(&site.data_fs());
    let backups = listing(&site.path("var/backups"));
    assert_eq!(
        backups
            .iter()
            .filter(|n| n.ends_with(".fsz") || n.ends_with(".deltafsz"))
            .count(),
        2,
        "{backups:?}"
    );
    assert!(
        backups
            .iter()
            .any(|n| n.starts_with(&t1) && n.ends_with(".fsz")),
        "{backups:?}"
    );
    assert!(
        backups
            .iter()
            .any(|n| n.starts_with(&t2) && n.ends_with(".deltafsz")),
        "{backups:?}"
    );
    // ZODB's repozo reads what ours wrote (at a later "now": its
    // repository is from 2030).
    crate::common::ok(run(site.theirs(&["-V", "-r", "var/backups"])));

    // The site is lost; `restore` brings back the newest state, Data.fs
    // and blobs.
    std::fs::remove_file(site.data_fs()).unwrap();
    std::fs::remove_dir_all(site.path("blobs")).unwrap();
    collective_backup(&site, &bin, &next_stamp(), &["restore", "--no-prompt"]);
    assert!(
        site.read("Data.fs") == state2,
        "restored Data.fs differs from the backed-up one"
    );
    site.check("Data.fs", "blobs", None);

    // And the state at the first backup's date.
    collective_backup(&site, &bin, &next_stamp(), &["restore", "--no-prompt", &t1]);
    assert!(
        site.read("Data.fs") == state1,
        "Data.fs restored at {t1} differs"
    );
    site.check("Data.fs", "blobs", Some(step1));
}

/// collective.recipe.backup's repozorunner, called as its generated
/// scripts call it: `sys.argv[1]` is a JSON object with the operation and
/// its arguments.
const RECIPE_RUNNER: &str = r#"
import json, logging, sys
from collective.recipe.backup import config, repozorunner
logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
a = json.loads(sys.argv[1])
storage = {
    "storage": "1",
    "datafs": a["datafs"],
    "backup_location": a["backups"],
    "snapshot_location": a["snapshots"],
    "zip_location": a["zips"],
}
if a["op"] == "backup":
    result = repozorunner.backup_main(
        a["bin_dir"], storage, keep=2, full=False, verbose=True,
        backup_method=config.STANDARD_BACKUP)
elif a["op"] == "snapshot":
    result = repozorunner.backup_main(
        a["bin_dir"], storage, keep=2, full=True, verbose=True,
        backup_method=config.SNAPSHOT_BACKUP)
else:
    result = repozorunner.restore_main(
        a["bin_dir"], storage, verbose=True, date=a.get("date"),
        restore_snapshot=a["op"] == "snapshotrestore")
sys.exit(1 if result else 0)
"#;

/// collective.recipe.backup's repozorunner: `op` (`backup`, `snapshot`,
/// `restore` or `snapshotrestore`) of the site's Data.fs with the
/// repository `var/backups` (snapshots `var/snapshotbackups`), restores
/// into `restored/Data.fs`, at `now`, `date` for a restore.
fn recipe(site: &Site, bin: &Path, now: &str, op: &str, date: Option<&str>) -> Output {
    let args = serde_json::json!({
        "op": op,
        "bin_dir": bin,
        "datafs": if op.ends_with("restore") {
            site.path("restored/Data.fs")
        } else {
            site.data_fs()
        },
        "backups": site.path("var/backups"),
        "snapshots": site.path("var/snapshotbackups"),
        "zips": site.path("var/zipbackups"),
        "date": date,
    });
    let mut c = py::python_code(RECIPE_RUNNER);
    c.arg(args.to_string());
    wrapper_env(&mut c, site, bin, now);
    ok_run(&format!("collective.recipe.backup {op} {date:?}"), run(c))
}

#[test]
fn collective_recipe_backup_runs_bin_repozo_linked_to_ours_for_backup_snapshot_and_restore_at_a_date()
 {
    let site = Site::grown(6, 2111);
    // bin/repozo replaced by a link to repozo-rs (README).
    let bin = link_ours(&site, "bin", "repozo");
    for dir in ["var/backups", "var/snapshotbackups"] {
        std::fs::create_dir_all(site.path(dir)).unwrap();
    }

    let t1 = next_stamp();
    let o = recipe(&site, &bin, &t1, "backup", None);
    assert!(
        stderr(&o).contains("--backup -f ") && stderr(&o).contains("--quick --verbose --gzip"),
        "the recipe logs other repozo arguments: {}",
        stderr(&o)
    );
    let state1 = site.committed();
    site.grow(4, 2112);
    let t2 = next_stamp();
    recipe(&site, &bin, &t2, "backup", None);
    let state2 = site.committed();
    site.grow(3, 2113);
    let t3 = next_stamp();
    recipe(&site, &bin, &t3, "snapshot", None);
    let state3 = site.committed();

    let backups = listing(&site.path("var/backups"));
    assert!(backups.contains(&format!("{t1}.fsz")), "{backups:?}");
    assert!(backups.contains(&format!("{t2}.deltafsz")), "{backups:?}");
    let snapshots = listing(&site.path("var/snapshotbackups"));
    assert!(snapshots.contains(&format!("{t3}.fsz")), "{snapshots:?}");

    // Restores into restored/ (the recipe creates the directory).
    let restored = || site.read("restored/Data.fs");
    recipe(&site, &bin, &next_stamp(), "restore", Some(&t1));
    assert!(
        restored() == state1,
        "restore at {t1} differs from the first backup"
    );
    recipe(&site, &bin, &next_stamp(), "restore", None);
    assert!(
        restored() == state2,
        "restore of the newest differs from the second backup"
    );
    recipe(&site, &bin, &next_stamp(), "restore", Some(&t2));
    assert!(
        restored() == state2,
        "restore at {t2} differs from the second backup"
    );
    recipe(&site, &bin, &next_stamp(), "snapshotrestore", None);
    assert!(
        restored() == state3,
        "snapshot restore differs from the snapshot"
    );

    // ZODB's repozo agrees on what ours wrote.
    crate::common::ok(run(site.theirs(&[
        "-R",
        "-r",
        "var/backups",
        "-D",
        &t1,
        "-o",
        "theirs.fs",
    ])));
    assert!(
        site.read("theirs.fs") == state1,
        "ZODB's repozo recovers another state at {t1}"
    );
}

#[test]
fn repozo_rs_is_repozo_under_another_name() {
    let out = |exe: &str, argv0: &str, args: &[&str]| {
        let mut c = Command::new(exe);
        std::os::unix::process::CommandExt::arg0(&mut c, argv0);
        c.args(args);
        run(c)
    };
    let repozo = env!("CARGO_BIN_EXE_repozo");
    // Invoked through a link named repozo (collective.recipe.backup's
    // bin/repozo), it prints what repozo prints, usage errors included.
    for args in [&["-h"][..], &[], &["-B"], &["--nonsense"]] {
        let (a, b) = (out(repozo, "repozo", args), out(REPOZO_RS, "repozo", args));
        assert_eq!(
            (a.status.code(), &a.stdout, &a.stderr),
            (b.status.code(), &b.stdout, &b.stderr),
            "{args:?}"
        );
    }
    // What names the command itself names repozo-rs.
    let version = |exe| stdout(&out(exe, "x", &["--version"]));
    let v = env!("CARGO_PKG_VERSION");
    assert!(version(repozo).starts_with(&format!("repozo {v} (repozo in Rust;")));
    assert!(version(REPOZO_RS).starts_with(&format!("repozo-rs {v} (repozo in Rust;")));
    let bash = stdout(&out(REPOZO_RS, "repozo-rs", &["--completions=bash"]));
    assert!(bash.ends_with("-F _repozo_rs repozo-rs\n"), "{bash}");
    let man = stdout(&out(REPOZO_RS, "repozo-rs", &["--man"]));
    assert!(man.starts_with(".TH REPOZO\\-RS 1 "), "{man}");
    assert!(man.contains("Usage: repozo\\-rs [options]"), "{man}");
}
