//! `-R --blob-dir`: the chain's blob set written as a new tree beside the
//! blob directory, checked and synced, then swapped in with the Data.fs
//! ([`StagedTree`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{chain_blobs, restore_file};
use crate::blob::{Entry, Layout, Store};
use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::io::{exchange, syncfs};
use crate::ops::Ctx;
use crate::ops::meter::Meter;
use crate::ops::workers::in_parallel;
use crate::repo::Chain;
use crate::report::{Event, Phase};

/// A restored blob tree, complete and synced beside the blob directory,
/// waiting to be swapped in ([`StagedTree::swap_in`]). Dropping it without
/// swapping removes it.
pub struct StagedTree {
    new: PathBuf,
    target: PathBuf,
    files: u64,
    bytes: u64,
    gone: Vec<String>,
    swapped: bool,
}

impl StagedTree {
    /// Writes the blob set of `chain` as a tree beside `target`, checking
    /// every content against its hash. Nothing existing is touched.
    pub fn build(chain: &Chain, target: &str, ctx: Ctx) -> Result<StagedTree> {
        let (layout, entries, _) = chain_blobs(chain)?;
        let target = PathBuf::from(target.trim_end_matches('/'));
        // Something else under that name (a file given by mistake) would
        // be renamed aside and replaced by the tree.
        match std::fs::metadata(&target) {
            Ok(m) if !m.is_dir() => {
                return Err(Error::Config(format!(
                    "--blob-dir {} exists and is not a directory: give the blob directory to \
                     restore into (it is created if missing); nothing was restored",
                    target.display()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&target, e)),
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .ok_or_else(|| {
                Error::Config(format!(
                    "--blob-dir {} names no directory",
                    target.display()
                ))
            })?
            .to_string_lossy()
            .into_owned();
        let new = parent.join(format!("{name}.repozo-new-{}", std::process::id()));
        if new.exists() {
            std::fs::remove_dir_all(&new).at(&new)?;
        }
        std::fs::create_dir(&new).at(&new)?;
        let mut tree = StagedTree {
            new,
            target,
            files: 0,
            bytes: 0,
            gone: Vec::new(),
            swapped: false,
        };
        tree.fill(&Store::of(chain.repo()), layout, &entries, ctx)?;
        Ok(tree)
    }

    fn fill(&mut self, store: &Store, layout: Layout, entries: &[Entry], ctx: Ctx) -> Result<()> {
        std::fs::write(self.new.join(crate::blob::layout::MARKER), layout.name())
            .at(self.new.join(crate::blob::layout::MARKER))?;
        std::fs::create_dir(self.new.join("tmp")).at(self.new.join("tmp"))?;
        let meter = Meter::new(ctx.report, Phase::Blobs, None);
        let mut made: HashSet<String> = HashSet::new();
        let mut todo = Vec::with_capacity(entries.len());
        for e in entries {
            let rel = layout.file(e.oid, e.tid);
            let Some(content) = e.content else {
                self.gone.push(rel);
                continue;
            };
            let dir = layout.oid_dir(e.oid);
            if made.insert(dir.clone()) {
                let d = self.new.join(&dir);
                std::fs::create_dir_all(&d).at(&d)?;
            }
            todo.push((e, content, self.new.join(&rel)));
        }
        let restore = |i: usize, buf: &mut [u8]| {
            let (e, content, dest) = &todo[i];
            restore_file(store, e, *content, dest, buf)
        };
        let sizes = in_parallel(todo.len(), store.parallelism(), restore, |n| meter.add(*n))?;
        self.files += sizes.len() as u64;
        self.bytes += sizes.iter().sum::<u64>();
        syncfs(&self.new)
    }

    /// Swaps the new tree in: the old one (if any) is renamed aside, the
    /// new one into place, the parent synced. Call [`StagedTree::finish`]
    /// once the Data.fs is in place too, or [`StagedTree::roll_back`].
    ///
    /// Where the file system can, the two trees trade names in one atomic
    /// step (`RENAME_EXCHANGE`), so that no crash, power cut included,
    /// leaves the blob directory missing (two renames leave it missing
    /// between them: found by the crash-state explorer, tests/it/crash/).
    pub fn swap_in(&mut self) -> Result<()> {
        let aside = self.aside();
        if self.target.exists() {
            match exchange(&self.new, &self.target) {
                Ok(()) => {
                    // `new` names the old tree now: move it aside.
                    if let Err(e) = std::fs::rename(&self.new, &aside) {
                        let _ = exchange(&self.new, &self.target);
                        return Err(Error::io(&self.new, e));
                    }
                    self.swapped = true;
                    failpoint::hit("recover:blobs-swapped");
                    return syncfs(&self.target);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {}
                Err(e) => return Err(Error::io(&self.target, e)),
            }
            std::fs::rename(&self.target, &aside).at(&self.target)?;
        }
        if let Err(e) = std::fs::rename(&self.new, &self.target) {
            let _ = std::fs::rename(&aside, &self.target);
            return Err(Error::io(&self.target, e));
        }
        self.swapped = true;
        failpoint::hit("recover:blobs-swapped");
        syncfs(&self.target)
    }

    /// Puts the old tree back after a failed Data.fs step.
    pub fn roll_back(mut self) {
        if self.swapped {
            let _ = std::fs::rename(&self.target, &self.new);
            let _ = std::fs::rename(self.aside(), &self.target);
            self.swapped = false;
        }
    }

    /// Removes the old tree; reports what was restored. Returns the
    /// revisions the manifests record as missing (restored without them).
    pub fn finish(mut self, ctx: Ctx) -> Result<Vec<String>> {
        let aside = self.aside();
        if aside.exists() {
            remove_tree(&aside)?;
        }
        ctx.report.event(&Event::BlobsRestored {
            dir: self.target.display().to_string(),
            files: self.files,
            bytes: self.bytes,
        });
        self.swapped = false;
        self.new = PathBuf::new();
        Ok(std::mem::take(&mut self.gone))
    }

    fn aside(&self) -> PathBuf {
        let mut s = self.target.clone().into_os_string();
        s.push(format!(".repozo-old-{}", std::process::id()));
        PathBuf::from(s)
    }
}

impl Drop for StagedTree {
    fn drop(&mut self) {
        if !self.swapped && !self.new.as_os_str().is_empty() && self.new.exists() {
            let _ = remove_tree(&self.new);
        }
    }
}

/// Removes a tree whose files may be read-only.
fn remove_tree(path: &Path) -> Result<()> {
    std::fs::remove_dir_all(path).at(path)
}
