//! Helpers of the blob tests (tests/it/blobs.rs, tests/it/s3/blobs.rs,
//! tests/it/permissions.rs): sites whose blobs ZODB writes and checks
//! (the oracle tests/py/blobtool.py), the number of random histories, a
//! runner of histories on parallel threads, and snapshots of blob trees.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use super::{Site, py, stderr, stdout};

/// `tests/py/blobtool.py ARGS` in `dir`, whatever its exit status.
fn blobtool_status(dir: &Path, args: &[&str]) -> Output {
    let script = py::repo_root().join("tests").join("py").join("blobtool.py");
    py::python_script(&script)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run blobtool.py {args:?}: {e}"))
}

/// A site with blobs: a `Data.fs` and a blob directory `blobs/` that
/// ZODB writes (blobtool.py, which journals what it wrote in
/// `journal.json`, so that a restore can be checked against any step).
impl Site {
    /// A site whose `Data.fs` and `blobs/` (layout `layout`, `bushy` or
    /// `lawn`) ZODB wrote: journal step 0.
    pub fn with_blobs(layout: &str, seed: u64) -> Site {
        let site = Site::new();
        site.init_blobs(layout, seed);
        site
    }

    /// blobtool `init`: a new `Data.fs` and `blobs/` (layout `layout`),
    /// journal step 0.
    pub fn init_blobs(&self, layout: &str, seed: u64) {
        self.blobtool_site("init", seed, &["--layout", layout]);
    }

    /// One blobtool `step` (with `extra` options: an action, a pack, …);
    /// returns the journal step number it recorded.
    pub fn step(&self, seed: u64, extra: &[&str]) -> usize {
        self.blobtool_site("step", seed, extra);
        self.current_step()
    }

    /// blobtool `command` on the site's `Data.fs` and `blobs/`, seeded,
    /// journalled.
    fn blobtool_site(&self, command: &str, seed: u64, extra: &[&str]) {
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
        self.blobtool(&args);
    }

    /// blobtool.py ARGS in the site; panics unless it exits 0.
    pub fn blobtool(&self, args: &[&str]) -> Output {
        let o = blobtool_status(self.dir(), args);
        assert!(
            o.status.success(),
            "{}: blobtool.py {args:?} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.name(),
            o.status,
            stdout(&o),
            stderr(&o)
        );
        o
    }

    /// The journal `journal.json`.
    pub fn journal(&self) -> serde_json::Value {
        serde_json::from_slice(&self.read("journal.json")).unwrap()
    }

    /// The number of the journal's newest step (the state Data.fs holds).
    pub fn current_step(&self) -> usize {
        self.journal()["steps"].as_array().unwrap().len() - 1
    }

    /// blobtool `check` of a restored Data.fs `out` and blob directory
    /// `blob_dir`: they hold journal step `k` (by default the newest).
    pub fn check(&self, out: &str, blob_dir: &str, k: Option<usize>) {
        let ks;
        let mut args = vec!["check", out, blob_dir, "--journal", "journal.json"];
        if let Some(k) = k {
            ks = k.to_string();
            args.extend(["--step", &ks]);
        }
        let o = blobtool_status(self.dir(), &args);
        assert!(
            o.status.success() && stdout(&o).starts_with("ok "),
            "{}: restored {out} + {blob_dir} (step {k:?}) fails blobtool check:\n{}{}",
            self.name(),
            stdout(&o),
            stderr(&o)
        );
    }
}

/// The number of random histories: `$var`, else `default`.
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
