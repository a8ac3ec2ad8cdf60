//! Helpers of the blob tests (tests/it/blobs.rs, tests/it/s3/blobs.rs): the
//! ZODB oracle tests/py/blobtool.py, the number of random histories, a
//! runner of histories on parallel threads, and snapshots of blob trees.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{py, stderr};

/// A command's stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `tests/py/blobtool.py ARGS` in `dir`, whatever its exit status.
pub fn blobtool_status(dir: &Path, args: &[&str]) -> Output {
    let script = py::repo_root().join("tests").join("py").join("blobtool.py");
    py::python_script(&script)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run blobtool.py {args:?}: {e}"))
}

/// `tests/py/blobtool.py ARGS` in `dir`; panics unless it exits 0.
pub fn blobtool(dir: &Path, args: &[&str]) -> Output {
    let o = blobtool_status(dir, args);
    assert!(
        o.status.success(),
        "blobtool.py {args:?} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    o
}

/// The journal `journal.json` that blobtool keeps in the site `dir`.
pub fn journal(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("journal.json")).unwrap()).unwrap()
}

/// One blobtool `init` (with `extra` options) of a site in `dir`:
/// `Data.fs`, `blobs/` and the journal `journal.json`.
pub fn init(dir: &Path, seed: u64, extra: &[&str]) {
    site_command(dir, "init", seed, extra);
}

/// One blobtool `step` (with `extra` options) on the site in `dir`
/// (`Data.fs`, `blobs/`, `journal.json`); returns the journal step number
/// it recorded.
pub fn step(dir: &Path, seed: u64, extra: &[&str]) -> usize {
    site_command(dir, "step", seed, extra);
    journal(dir)["steps"].as_array().unwrap().len() - 1
}

/// blobtool `command` on the site in `dir`, seeded, journalled.
fn site_command(dir: &Path, command: &str, seed: u64, extra: &[&str]) {
    let seed = seed.to_string();
    let mut args = vec![
        command,
        "Data.fs",
        "blobs",
        "--seed",
        &seed,
        "--journal",
        "journal.json",
    ];
    args.extend_from_slice(extra);
    blobtool(dir, &args);
}

pub fn cases(var: &str, default: u64) -> u64 {
    let n = match std::env::var(var) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?} is not a number")),
        Err(_) => default,
    };
    assert!(n > 0, "{var}=0 would test nothing");
    n
}

/// Runs `history(seed)` for seeds 1..=n, each on its own thread (they
/// wait mostly for ZODB and our binary); a failure fails the caller.
pub fn run_histories(n: u64, history: fn(u64)) {
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..=n).map(|seed| s.spawn(move || history(seed))).collect();
        for h in handles {
            if let Err(e) = h.join() {
                std::panic::resume_unwind(e);
            }
        }
    });
}

/// Everything under `root` (itself included, as ""): mode bits, and the
/// bytes of each non-directory.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Option<Vec<u8>>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u32, Option<Vec<u8>>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_owned();
            if md.is_dir() {
                out.insert(rel, (md.permissions().mode(), None));
                walk(root, &p, out);
            } else {
                out.insert(
                    rel,
                    (md.permissions().mode(), Some(std::fs::read(&p).unwrap())),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(md) = std::fs::symlink_metadata(root) {
        if md.is_dir() {
            out.insert(PathBuf::new(), (md.permissions().mode(), None));
            walk(root, root, &mut out);
        } else {
            out.insert(
                PathBuf::new(),
                (md.permissions().mode(), Some(std::fs::read(root).unwrap())),
            );
        }
    }
    out
}
