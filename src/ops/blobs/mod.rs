//! The blob side of `-B`, `-R` and `-V` (`--blob-dir`), and the blob
//! store's garbage collection after `-k` and retention.
//!
//! **Backup.** After the Data.fs step has written the data file, its
//! `.dat` line and its `.index`, the blob records of the backed-up byte
//! range are read from the same open Data.fs ([`fs::blob_records`]), and
//! each named file `<blob dir>/<layout path>/<tid>.blob` is stored. A file
//! a concurrent pack has moved is taken from `<blob dir>.old/`; one found
//! nowhere is recorded as `gone` and the backup exits 3. Contents are
//! committed to the store before the manifest naming them is written. A
//! data file of the continued chain that has no manifest (a crash, a
//! backup without `--blob-dir`, or ZODB's repozo) gets one in the same
//! run, from the same Data.fs, whose prefix the backup decision has just
//! matched against the chain.
//!
//! **Restore.** The union of the selected chain's manifests is written as
//! a new tree beside the blob directory (`<dir>.repozo-new-<pid>`), every
//! content checked against its hash, the filesystem synced; only then is
//! the new Data.fs written and both swapped in. See [`StagedTree`].
//!
//! **Verify.** Every manifest of the chain is read (its last line checks
//! it is whole) and each object it names is checked: its size with `-Q`,
//! its BLAKE3 hash otherwise.
//!
//! The files, one concept each: `backup` (storing a byte
//! range's blob files and writing its manifest), `verify` (checking the
//! chain's manifests and stored objects), `collect` (the store's garbage
//! collection), `restore` ([`StagedTree`], a new tree swapped in) and
//! `sync` ([`TreeSync`], a standby's tree brought up to date in place).
//! This file holds what they share: the blob directory being backed up,
//! manifest names and loading, the chain's blob set and the checked copy
//! of one stored object into a file.

mod backup;
mod collect;
mod restore;
mod sync;
mod verify;

pub(in crate::ops) use backup::backup;
pub(in crate::ops) use collect::collect_garbage;
pub use restore::StagedTree;
pub use sync::TreeSync;
pub(in crate::ops) use verify::{compare_records, verify};

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::blob::manifest::MAX_LINE;
use crate::blob::store;
use crate::blob::{Entry, Hash, Kind, Layout, Manifest, Store};
use crate::error::{Error, IoContext, Result};
use crate::fs::BlobRecord;
use crate::repo::{self, Chain, Listing, Repository};

/// A blob directory being backed up (`--blob-dir`).
#[derive(Debug, Clone)]
pub struct BlobDir {
    dir: PathBuf,
    old: PathBuf,
    shown: String,
    layout: Layout,
}

impl BlobDir {
    /// Checks that `dir` is a directory and reads its layout. Called
    /// before the Data.fs step, so a wrong `--blob-dir` writes nothing.
    pub fn open(dir: &str) -> Result<BlobDir> {
        let path = PathBuf::from(dir);
        let meta = std::fs::metadata(&path).at(&path)?;
        if !meta.is_dir() {
            return Err(Error::Config(format!(
                "--blob-dir {dir} is not a directory: give the blob directory of the \
                 Data.fs (blob-dir in zope.conf or the ZEO configuration); nothing was written"
            )));
        }
        // Listed (ZODB's layout detection does) and entered (every blob
        // file is opened through it): found out here, the error names the
        // directory, not a file in it, and comes before the Data.fs step.
        std::fs::read_dir(&path).at(&path)?;
        std::fs::metadata(path.join(".")).at(&path)?;
        let layout = Layout::of_dir(&path)?;
        let trimmed = dir.trim_end_matches('/');
        Ok(BlobDir {
            old: PathBuf::from(format!("{trimmed}.old")),
            dir: path,
            shown: dir.to_string(),
            layout,
        })
    }

    /// Opens the file of `rec`: in the blob directory, else in `.old`.
    fn open_file(&self, rec: &BlobRecord) -> Result<Option<(File, PathBuf)>> {
        let rel = self.layout.file(rec.oid, rec.tid);
        for base in [&self.dir, &self.old] {
            let path = base.join(&rel);
            match crate::io::open_regular(&path) {
                Ok(f) => return Ok(Some((f, path))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {}
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Ok(None)
    }
}

/// A byte range of the Data.fs that needs a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Range {
    /// The data file's base name.
    pub data: String,
    /// Full or incremental.
    pub kind: Kind,
    /// Range start.
    pub start: u64,
    /// Range end.
    pub end: u64,
}

/// The manifest name of a data file name.
pub(super) fn manifest_name(data: &str) -> String {
    repo::with_ext(data, ".blobs")
}

/// The ranges of `chain`'s data files that have no manifest in `listing`,
/// or one that is not whole ([`Manifest::looks_whole`]: empty, cut short
/// or garbage), which a restore would refuse: the backup writes it again.
pub(super) fn unmanifested(chain: &mut Chain, listing: &Listing) -> Result<Vec<Range>> {
    let names: HashSet<String> = chain
        .files()
        .iter()
        .filter(|f| {
            let name = manifest_name(&f.name);
            !listing.has_meta(&name) || !looks_whole(chain.repo(), &name)
        })
        .map(|f| f.name.clone())
        .collect();
    let Some(entries) = chain.entries()? else {
        return Ok(Vec::new());
    };
    Ok(entries
        .iter()
        .filter(|e| names.contains(e.base_name()))
        .map(|e| Range {
            data: e.base_name().to_string(),
            kind: if repo::is_full(e.base_name()) {
                Kind::Full
            } else {
                Kind::Incremental
            },
            start: e.start,
            end: e.end,
        })
        .collect())
}

/// Whether any manifest of `chain` records missing blob files (reads
/// only their first lines).
pub(super) fn chain_has_holes(chain: &Chain, listing: &Listing) -> bool {
    chain.files().iter().any(|f| {
        let name = manifest_name(&f.name);
        listing.has_meta(&name) && peek_gone(chain.repo(), &name).is_some_and(|n| n > 0)
    })
}

/// How many revisions the manifest `name` of `repo` records as missing,
/// from its first line ([`Manifest::peek_gone_in`]); `None` if it cannot
/// be read as a manifest.
pub(super) fn peek_gone(repo: &Repository, name: &str) -> Option<u64> {
    Manifest::peek_gone_in(&repo.read_range(name, 0, MAX_LINE).ok()?)
}

/// Whether the manifest `name` of `repo` looks whole, from its first and
/// last lines ([`Manifest::looks_whole_parts`]).
fn looks_whole(repo: &Repository, name: &str) -> bool {
    let ends = || -> Result<(Vec<u8>, Vec<u8>)> {
        let len = repo.size(name)?.unwrap_or(0);
        let head = repo.read_range(name, 0, MAX_LINE)?;
        let tail = repo.read_range(name, len.saturating_sub(MAX_LINE), MAX_LINE)?;
        Ok((head, tail))
    };
    ends().is_ok_and(|(head, tail)| Manifest::looks_whole_parts(&head, &tail))
}

/// Reads and checks the manifest `name` of `repo`; `None` if there is no
/// such file.
fn load_manifest(repo: &Repository, name: &str) -> Result<Option<Manifest>> {
    match repo.open_optional(name)? {
        None => Ok(None),
        Some(r) => Manifest::parse(r, &repo.path(name)).map(Some),
    }
}

/// The blob set of `chain`: the union of its manifests, and the layout of
/// the newest. Fails, naming the data file, when one has no manifest.
pub(super) fn chain_blobs(chain: &Chain) -> Result<(Layout, Vec<Entry>, usize)> {
    let mut union: Vec<Entry> = Vec::new();
    let mut layout = Layout::Bushy;
    let mut count = 0;
    for file in chain.files() {
        let name = manifest_name(&file.name);
        let path = chain.path_of(&name);
        let m = match load_manifest(chain.repo(), &name)? {
            Some(m) => m,
            None => {
                return Err(Error::Verification(format!(
                    "{} has no blob manifest ({path}): it was backed up without --blob-dir or \
                     by ZODB's repozo. Run a backup with --blob-dir to add it, or recover \
                     without --blob-dir",
                    file.path
                )));
            }
        };
        if m.data != file.name {
            return Err(Error::Verification(format!(
                "{path} describes {}, not {}: the manifest was renamed or copied; make a new \
                 full backup with --blob-dir (-F)",
                m.data, file.name
            )));
        }
        layout = m.layout;
        union.extend(m.entries);
        count += 1;
    }
    union.sort();
    union.dedup_by_key(|e| (e.oid, e.tid));
    Ok((layout, union, count))
}

/// Whether the chain has at least one manifest (then `-V` checks blobs).
pub(super) fn chain_has_manifests(chain: &Chain) -> bool {
    chain.files().iter().any(|f| {
        chain
            .repo()
            .exists(&manifest_name(&f.name))
            .unwrap_or(false)
    })
}

/// Exit 3 ([`Error::BlobsNotRestored`]) when a restore left out blob
/// files the manifests record as missing.
pub(super) fn all_restored(gone: &[String]) -> Result<()> {
    match gone.first() {
        None => Ok(()),
        Some(first) => Err(Error::BlobsNotRestored {
            count: gone.len(),
            first: first.clone(),
        }),
    }
}

/// Writes stored object `content` of revision `e` to the new read-only
/// file `dest`, checking it against its hash; returns its size. A
/// damaged object leaves no `dest`.
fn restore_file(
    store: &Store,
    e: &Entry,
    (size, hash): (u64, Hash),
    dest: &Path,
    buf: &mut [u8],
) -> Result<u64> {
    let src_path = PathBuf::from(store.shown(&hash));
    let Some(mut src) = store.open(&hash)? else {
        return Err(Error::Verification(format!(
            "{} (blob {:016x} {:016x}) is missing from the blob store. Nothing was restored; \
             restore an earlier date, or make a new full backup with --blob-dir if the blob \
             directory still has the file",
            src_path.display(),
            e.oid,
            e.tid
        )));
    };
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(dest)
        .at(dest)?;
    let copied = store::hash_copy(&mut src, Some(&mut out), buf, &src_path, dest);
    match copied {
        Ok((got, n)) if got == hash && n == size => Ok(n),
        failed => {
            let _ = std::fs::remove_file(dest);
            Err(failed.err().unwrap_or_else(|| damaged_object(&src_path, e)))
        }
    }
}

/// The error for a stored object whose content no longer matches its hash.
fn damaged_object(path: &Path, e: &Entry) -> Error {
    Error::Verification(format!(
        "{} (blob {:016x} {:016x}) is damaged: its content no longer matches the hash it is \
         stored under. Nothing was restored; restore an earlier date, or make a new full \
         backup with --blob-dir if the blob directory still has the file",
        path.display(),
        e.oid,
        e.tid
    ))
}
