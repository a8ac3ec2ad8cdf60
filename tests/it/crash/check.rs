//! What every crash state must satisfy ([`Expect::check`]).
//!
//! A backup (`Kind::Backup`): every restore point that existed before the
//! run and that the completed run keeps restores (`-R -D <stamp>`) to
//! exactly its bytes and blobs; the run's own restore point too if the
//! run was acknowledged (its exit 0 is inside the state: the tool prints
//! no success line before its last write, so the exit is the
//! acknowledgment); `-V` passes or names the file of this run it finds
//! damaged; the same command run again succeeds, `-V` then passes and the
//! newest restore point is the Data.fs.
//!
//! A recover (`Kind::Recover`): the output is the old file or the complete
//! new one (the new one if acknowledged), its index absent, old or new;
//! the blob directory beside it holds every blob of the Data.fs it sits
//! beside (old or new) with its bytes; the same command run again
//! succeeds and leaves the new output and blobs.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::Path;

use super::trace::{Fs, materialize};
use super::{LATER, repozo};

/// A directory's content: relative path → bytes (directories `None`).
pub type Tree = BTreeMap<String, Option<Vec<u8>>>;

/// What an operation writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// To the repository (`-B`, retention).
    Backup,
    /// To an output Data.fs and blob directory (`-R`).
    Recover,
}

pub trait TreeExt {
    fn of_dir(dir: &Path) -> Tree;
}

impl TreeExt for Tree {
    fn of_dir(dir: &Path) -> Tree {
        Fs::load(dir).tree()
    }
}

/// A hash of a tree, to check each distinct state once.
pub fn hash_tree(t: &Tree) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

/// The files under `prefix/` in a tree, by path below it.
fn files_under(t: &Tree, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let p = format!("{prefix}/");
    t.iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&p)?.to_string(), v.clone()?)))
        .collect()
}

/// The first file of `want` that `have` lacks or holds other bytes of.
fn missing(want: &BTreeMap<String, Vec<u8>>, have: &BTreeMap<String, Vec<u8>>) -> Option<String> {
    want.iter()
        .find(|(k, v)| have.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
}

/// A restore point and what it restores to.
#[derive(Clone, Debug)]
pub struct Point {
    pub stamp: String,
    pub data: Vec<u8>,
    pub blobs: BTreeMap<String, Vec<u8>>,
}

/// The expectations of one operation's crash states.
pub struct Expect {
    kind: Kind,
    blobs: bool,
    args: Vec<String>,
    now: String,
    /// The site before the run.
    pub before: Tree,
    /// The site after the completed run.
    pub after: Option<Tree>,
    /// Restore points before the run that the completed run keeps.
    old_points: Vec<Point>,
    /// Restore points before the run that the completed run removes
    /// (retention, `-k`): after a crash `-R -D` of one restores it, or an
    /// earlier point still there (a chain is removed newest file first), or
    /// refuses; never other bytes.
    gone_points: Vec<Point>,
    /// The run's own restore point (a backup that made one).
    new_point: Option<Point>,
}

/// `-R -D stamp` of the repository in `dir` into a fresh directory.
fn restore(dir: &Path, stamp: Option<&str>, blobs: bool) -> Result<Point, String> {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("chk.fs");
    let bd = tmp.path().join("chkblobs");
    let mut args = vec![
        "-R".to_string(),
        "-r".into(),
        "repo".into(),
        "-o".into(),
        out.display().to_string(),
    ];
    if let Some(s) = stamp {
        args.extend(["-D".into(), s.to_string()]);
    }
    if blobs {
        args.extend(["--blob-dir".into(), bd.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = repozo(dir, LATER, &args).output().unwrap();
    if !o.status.success() {
        return Err(format!(
            "-R -D {} exits {}: {}",
            stamp.unwrap_or("(latest)"),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    let data = std::fs::read(&out).unwrap();
    let blobs = if blobs {
        files_under(&Tree::of_dir(tmp.path()), "chkblobs")
    } else {
        BTreeMap::new()
    };
    Ok(Point {
        stamp: stamp.unwrap_or("").to_string(),
        data,
        blobs,
    })
}

/// The bytes `-R -D stamp` restores from the repository in `dir`.
pub fn restore_bytes(dir: &Path, stamp: &str) -> Result<Vec<u8>, String> {
    restore(dir, Some(stamp), false).map(|p| p.data)
}

impl Expect {
    /// The expectations of running `args` at `now` on the site `dir` as it
    /// is now, whose restore points are at `stamps`.
    pub fn new(
        dir: &Path,
        kind: Kind,
        blobs: bool,
        args: &[&str],
        stamps: &[&str],
        now: &str,
    ) -> Expect {
        let before = Tree::of_dir(dir);
        let mut old_points = Vec::new();
        if kind == Kind::Backup {
            for s in stamps {
                let p = restore(dir, Some(s), blobs)
                    .unwrap_or_else(|e| panic!("{}: before the run: {e}", dir.display()));
                old_points.push(p);
            }
        }
        Expect {
            kind,
            blobs,
            args: args.iter().map(|s| s.to_string()).collect(),
            now: now.to_string(),
            before,
            after: None,
            old_points,
            gone_points: Vec::new(),
            new_point: None,
        }
    }

    /// Takes in the site after the completed run: the points it keeps and
    /// the one it made.
    pub fn finish(&mut self, dir: &Path) {
        self.after = Some(Tree::of_dir(dir));
        if self.kind != Kind::Backup {
            return;
        }
        let blobs = self.blobs;
        let (kept, gone) =
            std::mem::take(&mut self.old_points)
                .into_iter()
                .partition(|p: &Point| {
                    restore(dir, Some(&p.stamp), blobs)
                        .is_ok_and(|q| q.data == p.data && q.blobs == p.blobs)
                });
        self.old_points = kept;
        self.gone_points = gone;
        if self.args.iter().any(|a| a == "-B") {
            let p = restore(dir, Some(&self.now), blobs)
                .unwrap_or_else(|e| panic!("{}: after the run: {e}", dir.display()));
            let data_fs = std::fs::read(dir.join("Data.fs")).unwrap();
            assert!(
                data_fs.starts_with(&p.data),
                "{}: the run's restore point is not a prefix of Data.fs",
                dir.display()
            );
            self.new_point = Some(Point {
                stamp: self.now.clone(),
                ..p
            });
        }
    }

    /// Checks one crash state (`acked`: the run's exit 0 is in it).
    /// `torn_rename`: the state tears a rename (the weak model), which
    /// may lose the output's name or the blob directory's: accepted when
    /// not acknowledged (docs/power-loss.md), as the repository still
    /// holds everything and the next run restores it.
    pub fn check(&self, tree: &Tree, acked: bool, torn_rename: bool) -> Result<(), String> {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        materialize(tree, dir);
        match self.kind {
            Kind::Backup => self.check_backup(dir, acked),
            Kind::Recover => self.check_recover(tree, dir, acked, torn_rename && !acked),
        }
    }

    fn restores(&self, dir: &Path, p: &Point) -> Result<(), String> {
        let q = restore(dir, Some(&p.stamp), self.blobs)?;
        if q.data != p.data {
            return Err(format!(
                "-R -D {} restores {} bytes, not its {} bytes",
                p.stamp,
                q.data.len(),
                p.data.len()
            ));
        }
        if let Some(f) = missing(&p.blobs, &q.blobs) {
            return Err(format!(
                "-R -D {} --blob-dir restores blob {f} wrong or not at all",
                p.stamp
            ));
        }
        Ok(())
    }

    /// `-V`: passes; or, right after the crash (`crashed`), names a file
    /// of this run, or finds no backup where none was acknowledged.
    fn verify(&self, dir: &Path, crashed: Option<bool>) -> Result<(), String> {
        let o = repozo(dir, LATER, &["-V", "-r", "repo"]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        let empty = self.old_points.is_empty()
            && crashed == Some(false)
            && err.trim() == "No files in repository";
        if o.status.success() || (crashed.is_some() && err.contains(&self.now)) || empty {
            Ok(())
        } else {
            Err(format!("-V exits {}: {}", o.status, err.trim()))
        }
    }

    fn again(&self, dir: &Path) -> Result<(), String> {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let o = repozo(dir, LATER, &args).output().unwrap();
        if !o.status.success() {
            return Err(format!(
                "the same command run again exits {}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(())
    }

    fn check_backup(&self, dir: &Path, acked: bool) -> Result<(), String> {
        for p in &self.old_points {
            self.restores(dir, p)
                .map_err(|e| format!("an earlier restore point: {e}"))?;
        }
        if let (true, Some(p)) = (acked, &self.new_point) {
            self.restores(dir, p)
                .map_err(|e| format!("the acknowledged backup: {e}"))?;
        }
        for p in &self.gone_points {
            let earlier = |q: &Point| {
                self.old_points
                    .iter()
                    .chain(&self.gone_points)
                    .any(|r| r.stamp <= p.stamp && r.data == q.data)
            };
            if let Ok(q) = restore(dir, Some(&p.stamp), self.blobs)
                && !earlier(&q)
            {
                return Err(format!(
                    "-R -D {} of a point being removed restores {} bytes of no point at or before it (exit 0)",
                    p.stamp,
                    q.data.len()
                ));
            }
        }
        self.verify(dir, Some(acked))?;
        self.again(dir)?;
        self.verify(dir, None)
            .map_err(|e| format!("after the next run: {e}"))?;
        if let Some(p) = &self.new_point {
            let q =
                restore(dir, None, self.blobs).map_err(|e| format!("after the next run: {e}"))?;
            if q.data != std::fs::read(dir.join("Data.fs")).unwrap()[..q.data.len()]
                || q.data.len() < p.data.len()
            {
                return Err("after the next run, -R does not restore the Data.fs".into());
            }
            if let Some(f) = missing(&p.blobs, &q.blobs) {
                return Err(format!(
                    "after the next run, -R --blob-dir restores blob {f} wrong"
                ));
            }
        }
        Ok(())
    }

    fn check_recover(
        &self,
        tree: &Tree,
        dir: &Path,
        acked: bool,
        name_lost: bool,
    ) -> Result<(), String> {
        let after = self.after.as_ref().expect("finish() was called");
        let get = |t: &Tree, k: &str| t.get(k).cloned().flatten();
        let (old, new, out) = (
            get(&self.before, "out.fs"),
            get(after, "out.fs"),
            get(tree, "out.fs"),
        );
        let is_new = out == new;
        let incremental = self.args.iter().any(|a| a == "--incremental");
        // An incremental restore appends in place (docs/power-loss.md):
        // after a crash its output holds the new file's bytes, or zeros
        // where a write was lost, at each offset; the next run proves and
        // repairs it.
        let in_place = |o: &Vec<u8>, n: &Vec<u8>| {
            o.iter()
                .enumerate()
                .all(|(i, b)| *b == 0 || n.get(i) == Some(b))
        };
        let consistent = match (&out, &new) {
            (Some(o), Some(n)) if incremental => in_place(o, n),
            (None, _) => name_lost,
            _ => false,
        };
        if !is_new && out != old && !consistent {
            return Err(format!(
                "out.fs is neither the old file ({:?} bytes) nor the new one ({:?} bytes): {:?} bytes",
                old.map(|b| b.len()),
                new.map(|b| b.len()),
                out.map(|b| b.len())
            ));
        }
        if acked && !is_new {
            return Err("acknowledged, but out.fs is the old file".into());
        }
        let idx = get(tree, "out.fs.index");
        if idx.is_some()
            && idx != get(&self.before, "out.fs.index")
            && idx != get(after, "out.fs.index")
        {
            return Err("out.fs.index is neither absent, the old one nor the new one".into());
        }
        let blobs_lost = name_lost && !tree.contains_key("outblobs");
        if self.blobs && !blobs_lost {
            let want = if is_new {
                files_under(after, "outblobs")
            } else {
                files_under(&self.before, "outblobs")
            };
            if let Some(f) = missing(&want, &files_under(tree, "outblobs")) {
                return Err(format!(
                    "out.fs is the {} file but its blob {f} is missing or differs",
                    if is_new { "new" } else { "old" }
                ));
            }
        }
        self.again(dir)?;
        let now = Tree::of_dir(dir);
        if get(&now, "out.fs") != get(after, "out.fs") {
            return Err("after the same command run again, out.fs is not the new file".into());
        }
        if self.blobs
            && let Some(f) = missing(
                &files_under(after, "outblobs"),
                &files_under(&now, "outblobs"),
            )
        {
            return Err(format!(
                "after the same command run again, blob {f} is missing or differs"
            ));
        }
        Ok(())
    }
}
