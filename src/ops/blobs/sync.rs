//! `-R --incremental --blob-dir`: a standby's blob directory brought to
//! the chain's blob set in place ([`TreeSync`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{chain_blobs, restore_file};
use crate::blob::store;
use crate::blob::{Layout, Store};
use crate::error::{Error, IoContext, Result};
use crate::io::syncfs;
use crate::ops::Ctx;
use crate::ops::meter::Meter;
use crate::ops::workers::in_parallel;
use crate::repo::Chain;
use crate::report::{Event, Phase};

/// `-R --incremental --blob-dir`: brings an existing blob directory (a
/// standby's) to the blob set of `chain` in place, copying only what it
/// lacks. Revisions already there are kept when their size matches (`-Q`)
/// or their hash does (default, which reads them); others are written
/// from the store (checked against their hash) under a temporary name and
/// renamed over. Files the set does not name are removed only by
/// [`TreeSync::finish`], after the Data.fs is up to date, so that a crash
/// in between leaves extra files, never missing ones.
pub struct TreeSync {
    target: PathBuf,
    extras: Vec<PathBuf>,
    copied: u64,
    bytes: u64,
    kept: u64,
    gone: Vec<String>,
}

impl TreeSync {
    /// Adds and repairs what `target` lacks (see the type's doc).
    pub fn prepare(chain: &Chain, target: &str, quick: bool, ctx: Ctx) -> Result<TreeSync> {
        let (layout, entries, _) = chain_blobs(chain)?;
        let target = PathBuf::from(target.trim_end_matches('/'));
        std::fs::create_dir_all(&target).at(&target)?;
        let have = Layout::of_dir(&target)?;
        if have != layout {
            return Err(Error::Layout(format!(
                "{} is a {} blob directory, the backups are {}: recover without \
                 --incremental to rebuild it",
                target.display(),
                have.name(),
                layout.name()
            )));
        }
        let marker = target.join(crate::blob::layout::MARKER);
        if !marker.exists() {
            std::fs::write(&marker, layout.name()).at(&marker)?;
        }
        std::fs::create_dir_all(target.join("tmp")).at(target.join("tmp"))?;
        let store = Store::of(chain.repo());
        let meter = Meter::new(ctx.report, Phase::Blobs, None);
        let mut sync = TreeSync {
            target,
            extras: Vec::new(),
            copied: 0,
            bytes: 0,
            kept: 0,
            gone: Vec::new(),
        };
        let mut wanted = HashSet::new();
        let mut todo = Vec::with_capacity(entries.len());
        for e in &entries {
            let rel = layout.file(e.oid, e.tid);
            wanted.insert(PathBuf::from(&rel));
            match e.content {
                None => sync.gone.push(rel),
                Some(content) => todo.push((e, content, sync.target.join(&rel))),
            }
        }
        let target = &sync.target;
        // `Some(bytes)` when the revision was written, `None` when kept.
        let bring = |i: usize, buf: &mut [u8]| -> Result<Option<u64>> {
            let (e, (size, hash), dest) = &todo[i];
            let current = match std::fs::metadata(dest) {
                Ok(m) if m.len() == *size && quick => true,
                Ok(m) if m.len() == *size => {
                    let mut f = crate::io::open_regular(dest).at(dest)?;
                    store::hash_copy(&mut f, None, buf, dest, dest)?.0 == *hash
                }
                _ => false,
            };
            if current {
                return Ok(None);
            }
            let dir = target.join(layout.oid_dir(e.oid));
            std::fs::create_dir_all(&dir).at(&dir)?;
            let tmp = dest.with_extension("blob.repozo-tmp");
            let _ = std::fs::remove_file(&tmp);
            let n = restore_file(&store, e, (*size, *hash), &tmp, buf)?;
            std::fs::rename(&tmp, dest).at(dest)?;
            Ok(Some(n))
        };
        let done = in_parallel(todo.len(), store.parallelism(), bring, |n| {
            if let Some(n) = n {
                meter.add(*n);
            }
        })?;
        for n in done {
            match n {
                Some(n) => {
                    sync.copied += 1;
                    sync.bytes += n;
                }
                None => sync.kept += 1,
            }
        }
        syncfs(&sync.target)?;
        sync.extras = blob_files(&sync.target)?
            .into_iter()
            .filter(|rel| !wanted.contains(rel))
            .map(|rel| sync.target.join(rel))
            .collect();
        Ok(sync)
    }

    /// Removes the revisions the set does not name; reports. Returns the
    /// revisions the manifests record as missing.
    pub fn finish(self, ctx: Ctx) -> Result<Vec<String>> {
        for path in &self.extras {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        ctx.report.event(&Event::BlobsSynced {
            dir: self.target.display().to_string(),
            copied: self.copied,
            bytes: self.bytes,
            kept: self.kept,
            removed: self.extras.len() as u64,
        });
        Ok(self.gone)
    }
}

/// The `*.blob` files under a blob directory, relative to it (`tmp/` and
/// hidden entries at its top are not revisions).
fn blob_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            if rel.as_os_str().is_empty()
                && (name == "tmp" || name.as_encoded_bytes().starts_with(b"."))
            {
                continue;
            }
            let kind = entry.file_type().at(entry.path())?;
            if kind.is_dir() {
                stack.push(rel.join(&name));
            } else if name.as_encoded_bytes().ends_with(b".blob") {
                out.push(rel.join(&name));
            }
        }
    }
    Ok(out)
}
