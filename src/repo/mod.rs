//! The repository directory: file names, chain selection and `.dat` files.
//!
//! A backup at stamp `T` (UTC, `YYYY-MM-DD-HH-MM-SS`) writes `T.fs` (full),
//! `T.fsz` (full, gzip), `T.deltafs` or `T.deltafsz` (incremental), plus
//! `T.index`; a full one also starts `T.dat`, to which later incrementals of
//! its chain append. Only names matching repozo's pattern
//! `\d{4}(-\d\d){5}\.(delta)?fsz?` are data files; everything else in the
//! directory is ignored by every operation.

pub mod chain;
pub mod dat;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{self, Backend, Held, Put, Upload};
use crate::clock::Stamp;
use crate::error::{Error, IoContext, Result};
use crate::io::AtomicFile;
use crate::lock::RepoLock;
use crate::report::{Event, Report};

pub use chain::{Chain, ChainFile};
pub use dat::DatEntry;

/// A repository directory, named as the user gave it, or a prefix of an
/// object store (`s3://bucket/prefix`, see [`Repository::open`]).
///
/// A directory's name is kept verbatim because repozo records
/// `os.path.join(<-r as given>, name)` in `.dat` lines and prints paths
/// that way; an object store's is `s3://bucket/prefix` and its files'
/// paths `s3://bucket/prefix/<name>`.
///
/// This is where the operations meet the storage: a local directory is
/// read and written here as it always was (the operations' own fast
/// paths, `O_DIRECT`, `copy_file_range`, `flock`, stay theirs), an object
/// store through its [`Backend`].
#[derive(Clone)]
pub struct Repository {
    dir: String,
    remote: Option<Arc<dyn Backend>>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("dir", &self.dir)
            .field("remote", &self.remote.is_some())
            .finish()
    }
}

impl PartialEq for Repository {
    fn eq(&self, other: &Self) -> bool {
        self.dir == other.dir && self.remote.is_some() == other.remote.is_some()
    }
}

impl Eq for Repository {}

/// The repository lock, held until dropped ([`Repository::lock`]).
#[derive(Debug)]
pub enum RepoGuard {
    /// `flock` on the directory.
    Local(RepoLock),
    /// The object store's leased lock.
    Remote(Box<dyn Held>),
}

impl RepoGuard {
    /// `Ok` while the lock is still ours; call just before a commit point.
    pub fn check(&self) -> Result<()> {
        match self {
            RepoGuard::Local(_) => Ok(()),
            RepoGuard::Remote(held) => held.check(),
        }
    }
}

/// A new data file being written ([`Repository::create_data`]); it appears
/// under its name only when committed.
pub enum DataOut {
    /// A local file: temporary file, fsync, rename.
    Local(AtomicFile),
    /// An object store upload (multipart when large).
    Remote(Box<dyn Upload>),
}

impl DataOut {
    /// Makes the file appear under its name.
    pub fn commit(self) -> Result<()> {
        match self {
            DataOut::Local(f) => f.commit(),
            DataOut::Remote(u) => u.commit().map(drop),
        }
    }
}

/// What a repository directory held when it was listed: each operation
/// lists it once ([`Repository::list`]) and works from this.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Data file names, ascending (= chronological).
    data: Vec<String>,
    /// Our temporary files left by an interrupted run ([`is_leftover`]).
    leftovers: Vec<String>,
    /// `<stamp>.dat`, `<stamp>.index` and `<stamp>.blobs` names
    /// ([`is_meta_file`]), ascending.
    meta: Vec<String>,
    /// The size of every file listed, when the listing gave it (an object
    /// store's does; a directory's is not stat'ed).
    sizes: std::collections::BTreeMap<String, u64>,
}

impl Listing {
    /// The listing of a directory holding `names`, classified as
    /// [`Repository::list`] classifies them (everything else is ignored).
    pub fn from_names<I, S>(names: I) -> Listing
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut listing = Listing::default();
        for name in names {
            listing.add(name.into());
        }
        listing.sort();
        listing
    }

    fn add(&mut self, name: String) {
        if is_data_file(&name) {
            self.data.push(name);
        } else if is_leftover(&name) {
            self.leftovers.push(name);
        } else if is_meta_file(&name) {
            self.meta.push(name);
        }
    }

    fn sort(&mut self) {
        self.data.sort();
        self.leftovers.sort();
        self.meta.sort();
    }

    /// Data file names, ascending (= chronological).
    pub fn data_files(&self) -> &[String] {
        &self.data
    }

    /// Names of our temporary files left by an interrupted run.
    pub fn leftovers(&self) -> &[String] {
        &self.leftovers
    }

    /// `<stamp>.dat`, `<stamp>.index` and `<stamp>.blobs` names, ascending.
    pub fn meta_files(&self) -> &[String] {
        &self.meta
    }

    /// Whether the directory held the `.dat`, `.index` or `.blobs` file
    /// `name`.
    pub fn has_meta(&self, name: &str) -> bool {
        self.meta.binary_search_by(|m| m.as_str().cmp(name)).is_ok()
    }

    /// The data files grouped into chains, oldest first: each full backup
    /// with the incrementals after it up to the next full. Incrementals
    /// before the first full (left when a full was deleted by hand) form a
    /// group of their own, first.
    pub fn chains(&self) -> Vec<&[String]> {
        split_chains(&self.data)
    }

    /// The size of `name` if the listing recorded it (object stores).
    pub fn size_of(&self, name: &str) -> Option<u64> {
        self.sizes.get(name).copied()
    }

    /// Stamp of the newest data file, if any.
    pub fn newest_stamp(&self) -> Option<Stamp> {
        self.data.last().and_then(|n| Stamp::parse(n.get(..19)?))
    }

    /// Records a data file this operation has just added (its stamp is
    /// newer than every other, so it sorts last).
    pub fn push(&mut self, name: String) {
        self.data.push(name);
        self.data.sort();
    }
}

impl Repository {
    /// The repository at `dir` (not checked for existence here).
    pub fn new(dir: impl Into<String>) -> Self {
        Repository {
            dir: dir.into(),
            remote: None,
        }
    }

    /// The repository `-r` names: `s3://bucket/prefix` (cargo feature
    /// `s3`; without it this fails saying how to build it) or a directory.
    /// Nothing is contacted yet.
    pub fn open(spec: &str) -> Result<Self> {
        if !backend::is_remote(spec) {
            return Ok(Self::new(spec));
        }
        let remote: Arc<dyn Backend> = Arc::from(backend::open(spec)?);
        Ok(Repository {
            dir: remote.describe(),
            remote: Some(remote),
        })
    }

    /// The directory as given (or `s3://bucket/prefix`).
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Whether the repository is in an object store.
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// The object store, if the repository is in one.
    pub(crate) fn remote(&self) -> Option<&Arc<dyn Backend>> {
        self.remote.as_ref()
    }

    /// Takes the repository lock, waiting up to `wait` for another holder
    /// (local: `flock` on the directory; object store: a leased lock
    /// object). Both fail with exit code 11 when the wait runs out.
    pub fn lock(&self, wait: Duration) -> Result<RepoGuard> {
        match &self.remote {
            None => RepoLock::acquire(&self.dir, wait).map(RepoGuard::Local),
            Some(b) => b.lock(wait).map(RepoGuard::Remote),
        }
    }

    /// The size of `name`, `None` if it does not exist.
    pub fn size(&self, name: &str) -> Result<Option<u64>> {
        match &self.remote {
            None => {
                let path = self.path(name);
                len_if_found(&path, std::fs::metadata(&path))
            }
            Some(b) => b.size(name),
        }
    }

    /// The size of `name` after opening it, as repozo's verify opens every
    /// file (a local file that cannot be opened is an error); `None` if it
    /// does not exist.
    pub fn size_readable(&self, name: &str) -> Result<Option<u64>> {
        match &self.remote {
            None => {
                let path = self.path(name);
                len_if_found(
                    &path,
                    crate::io::open_regular(&path).and_then(|f| f.metadata()),
                )
            }
            Some(b) => b.size(name),
        }
    }

    /// Whether `name` exists (locally as `Path::exists` says).
    pub fn exists(&self, name: &str) -> Result<bool> {
        match &self.remote {
            None => Ok(std::path::Path::new(&self.path(name)).exists()),
            Some(b) => b.exists(name),
        }
    }

    /// Reads `name` as a stream.
    pub fn open_read(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        match &self.remote {
            None => {
                let path = self.path(name);
                Ok(Box::new(crate::io::open_regular(&path).at(&path)?))
            }
            Some(b) => b.open(name),
        }
    }

    /// Reads `name` as a stream; `None` if it does not exist.
    pub fn open_optional(&self, name: &str) -> Result<Option<Box<dyn Read + Send>>> {
        match &self.remote {
            None => {
                let path = self.path(name);
                match crate::io::open_regular(&path) {
                    Ok(f) => Ok(Some(Box::new(f))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io(&path, e)),
                }
            }
            Some(b) => b.open_optional(name),
        }
    }

    /// `name` as a local file, for the local fast paths (`copy_file_range`);
    /// `None` for an object store.
    pub fn open_local(&self, name: &str) -> Option<Result<std::fs::File>> {
        if self.remote.is_some() {
            return None;
        }
        let path = self.path(name);
        Some(crate::io::open_regular(&path).at(&path))
    }

    /// Reads all of `name`.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        match &self.remote {
            None => {
                let path = self.path(name);
                crate::io::read_regular(&path).at(&path)
            }
            Some(b) => b.read(name),
        }
    }

    /// Reads `len` bytes of `name` from offset `start`, fewer where it
    /// ends first (`len` bounds the allocation, not the file).
    pub fn read_range(&self, name: &str, start: u64, len: u64) -> Result<Vec<u8>> {
        match &self.remote {
            None => {
                use std::os::unix::fs::FileExt;
                let path = self.path(name);
                let file = crate::io::open_regular(&path).at(&path)?;
                let size = file.metadata().at(&path)?.len();
                let mut buf = vec![0u8; size.saturating_sub(start).min(len) as usize];
                file.read_exact_at(&mut buf, start)
                    .map_err(|e| Error::io(&path, e).with_pos(start))?;
                Ok(buf)
            }
            Some(b) => b.read_range(name, start, len),
        }
    }

    /// Reads all of `name`; `None` if it does not exist.
    pub fn read_optional(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match &self.remote {
            None => {
                let path = self.path(name);
                match crate::io::read_regular(&path) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io(&path, e)),
                }
            }
            Some(b) => Ok(b.read_versioned(name)?.map(|(data, _)| data)),
        }
    }

    /// Starts the new data file `name` (local: [`AtomicFile`]; object
    /// store: an upload, which fails if `name` exists).
    pub fn create_data(&self, name: &str) -> Result<DataOut> {
        match &self.remote {
            None => AtomicFile::create(self.path(name)).map(DataOut::Local),
            Some(b) => b.create(name).map(DataOut::Remote),
        }
    }

    /// Writes the small file `name` (a `.dat`, an `.index`) holding `data`
    /// whole, atomically, replacing any file of that name (local:
    /// temporary file, fsync, rename even after a SIGINT; object store: a
    /// create-only put, or a compare-and-swap over what is there).
    pub fn write_whole(&self, name: &str, data: &[u8]) -> Result<()> {
        match &self.remote {
            None => {
                let path = self.path(name);
                let mut f = AtomicFile::create(&path)?;
                f.write_all(data).at(&path)?;
                f.commit_even_if_interrupted()
            }
            Some(b) => loop {
                if b.put_if_absent(name, data)? == Put::Created {
                    return Ok(());
                }
                if let Some((_, version)) = b.read_versioned(name)? {
                    b.replace(name, data, &version)?;
                    return Ok(());
                }
            },
        }
    }

    /// Appends `line` to the `.dat` `name` (creating it) durably: locally
    /// as repozo appends (`append_synced`); in an object store by reading
    /// it and writing it back with compare-and-swap, the commit point of a
    /// backup (`held` is checked just before).
    pub fn append_line(&self, name: &str, line: &str, held: &RepoGuard) -> Result<()> {
        match &self.remote {
            None => crate::io::append_synced(&self.path(name), line),
            Some(b) => {
                let (mut data, version) = match b.read_versioned(name)? {
                    Some(v) => v,
                    None => {
                        held.check()?;
                        return match b.put_if_absent(name, line.as_bytes())? {
                            Put::Created => Ok(()),
                            Put::AlreadyExists => Err(Error::Changed(b.url(name))),
                        };
                    }
                };
                data.extend_from_slice(line.as_bytes());
                held.check()?;
                b.replace(name, &data, &version).map(drop)
            }
        }
    }

    /// Removes `name` (an absent one is not an error in an object store;
    /// locally it is, as `remove_file` says).
    pub fn remove(&self, name: &str) -> Result<()> {
        match &self.remote {
            None => {
                let path = self.path(name);
                std::fs::remove_file(&path).at(&path)
            }
            Some(b) => b.delete(name),
        }
    }

    /// The size of `name` itself (locally without following a symlink:
    /// the link is what a removal removes); `None` if it does not exist.
    pub fn entry_size(&self, name: &str) -> Result<Option<u64>> {
        match &self.remote {
            None => {
                let path = self.path(name);
                len_if_found(&path, std::fs::symlink_metadata(&path))
            }
            Some(b) => b.size(name),
        }
    }

    /// Removes `name`; `false` if it was not there.
    pub fn remove_if_present(&self, name: &str) -> Result<bool> {
        match &self.remote {
            None => {
                let path = self.path(name);
                match std::fs::remove_file(&path) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(Error::io(&path, e)),
                }
            }
            Some(b) => b.delete(name).map(|()| true),
        }
    }

    /// Makes the removals and renames so far durable (locally: fsync of
    /// the directory; an object store's deletes are durable when done).
    pub fn sync(&self) -> Result<()> {
        match &self.remote {
            None => std::fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .at(&self.dir),
            Some(_) => Ok(()),
        }
    }

    /// `name` inside the repository, joined as Python's `os.path.join` does.
    pub fn path(&self, name: &str) -> String {
        join(&self.dir, name)
    }

    /// Lists the directory once. Names that are not UTF-8 are neither data
    /// files nor ours (both are ASCII by construction) and are ignored, as
    /// is everything else that does not match. Errors if the directory
    /// cannot be listed.
    pub fn list(&self) -> Result<Listing> {
        let mut listing = Listing::default();
        if let Some(b) = &self.remote {
            for entry in b.list("", false)? {
                listing.sizes.insert(entry.name.clone(), entry.size);
                listing.add(entry.name);
            }
            listing.sort();
            return Ok(listing);
        }
        let entries = match std::fs::read_dir(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(crate::Error::NoRepository(self.dir.clone()));
            }
            r => r.at(&self.dir)?,
        };
        for entry in entries {
            let Ok(name) = entry.at(&self.dir)?.file_name().into_string() else {
                continue;
            };
            listing.add(name);
        }
        listing.sort();
        Ok(listing)
    }

    /// All data file names in the repository, in ascending (= chronological)
    /// order. Errors if the directory cannot be listed.
    pub fn data_files(&self) -> Result<Vec<String>> {
        Ok(self.list()?.data)
    }

    /// repozo's `find_files`: the chain that reproduces the state as of
    /// `when` — the newest full backup whose stamp is ≤ `when` plus every
    /// later incremental ≤ `when` — or `None` if no data file is ≤ `when`.
    ///
    /// `when` is compared as a *string*, as repozo does: a partial date such
    /// as `2026-11-26` sorts before every stamp of that day, so it selects
    /// backups strictly before it. If no full backup is ≤ `when`, every
    /// incremental ≤ `when` is returned (repozo's behaviour).
    ///
    /// Reports that it looks for files before it lists the directory (so a
    /// missing repository fails after that line, as in repozo), then lists
    /// it once; returns the listing too.
    pub fn chain(&self, when: &str, report: &dyn Report) -> Result<(Listing, Option<Chain>)> {
        report.event(&Event::LookingForFiles {
            when: when.to_string(),
        });
        let listing = self.list()?;
        let chain = self.select(&listing, when, report);
        Ok((listing, chain))
    }

    /// [`Repository::chain`] from a listing already made.
    pub fn chain_in(&self, listing: &Listing, when: &str, report: &dyn Report) -> Option<Chain> {
        report.event(&Event::LookingForFiles {
            when: when.to_string(),
        });
        self.select(listing, when, report)
    }

    fn select(&self, listing: &Listing, when: &str, report: &dyn Report) -> Option<Chain> {
        let chain = Chain::new(self, &select_chain(&listing.data, when));
        report.event(&match &chain {
            None => Event::NoFilesFound,
            Some(c) => Event::FilesNeeded {
                when: when.to_string(),
                files: c.paths(),
            },
        });
        chain
    }

    /// Removes the temporary files of `listing` left by an interrupted run
    /// of ours (`<name>.tmp-<pid>-<n>`), reporting each. Only call this
    /// while holding the repository lock. repozo's own `tmp.tmp` is left
    /// alone.
    pub fn remove_leftovers(&self, listing: &Listing, report: &dyn Report) {
        if self.remote.is_some() {
            // An object store has no temporary files of ours.
            return;
        }
        for name in &listing.leftovers {
            let path = self.path(name);
            if std::fs::remove_file(&path).is_ok() {
                report.event(&Event::RemovedLeftover(path));
            }
        }
    }
}

/// The length `meta` gives, `None` if `path` was not found, else the
/// error naming `path`.
fn len_if_found(path: &str, meta: std::io::Result<std::fs::Metadata>) -> Result<Option<u64>> {
    match meta {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// True if and only if `name` is one of our temporary files:
/// `<stamp>.<ext>.tmp-<pid>-<n>`.
pub fn is_leftover(name: &str) -> bool {
    let Some((head, tail)) = name.rsplit_once(".tmp-") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let tail_ok = tail
        .split_once('-')
        .is_some_and(|(a, b)| digits(a) && digits(b));
    let stamp_ok = head.len() > 20
        && head.as_bytes()[19] == b'.'
        && head.get(..19).and_then(Stamp::parse).is_some();
    tail_ok && stamp_ok
}

/// Selects the chain for `when` from `names` sorted ascending; returns
/// names oldest first. See [`Repository::chain`].
pub fn select_chain<'a>(names: &'a [String], when: &str) -> Vec<&'a str> {
    let mut needed = Vec::new();
    for name in names.iter().rev() {
        let (root, ext) = split_ext(name);
        if root <= when {
            needed.push(name.as_str());
            if ext == ".fs" || ext == ".fsz" {
                break;
            }
        }
    }
    needed.reverse();
    needed
}

/// Splits data file names (ascending) into chains: a new chain starts at
/// every full backup; incrementals before the first full form a chain of
/// their own. Never returns an empty chain.
pub fn split_chains(names: &[String]) -> Vec<&[String]> {
    let mut chains = Vec::new();
    let mut start = 0;
    for (i, name) in names.iter().enumerate() {
        if i > start && is_full(name) {
            chains.push(&names[start..i]);
            start = i;
        }
    }
    if start < names.len() {
        chains.push(&names[start..]);
    }
    chains
}

/// True if `name` starts with repozo's stamp pattern `\d{4}(-\d\d){5}`
/// (digits and dashes only; the calendar is not checked, as repozo does
/// not check it).
fn has_stamp_pattern(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 19
        && b[..19].iter().enumerate().all(|(i, &c)| match i {
            4 | 7 | 10 | 13 | 16 => c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// True if and only if `name` is a repozo data file name (repozo's
/// `is_data_file`).
pub fn is_data_file(name: &str) -> bool {
    has_stamp_pattern(name) && matches!(&name[19..], ".fs" | ".fsz" | ".deltafs" | ".deltafsz")
}

/// True if and only if `name` is a `.dat` or `.index` file as repozo names
/// them (`<stamp>.dat`, `<stamp>.index`), or our blob manifest
/// `<stamp>.blobs` ([`crate::blob::manifest`]).
pub fn is_meta_file(name: &str) -> bool {
    has_stamp_pattern(name) && matches!(&name[19..], ".dat" | ".index" | ".blobs")
}

/// The last component of a path (`a/b/2026-01-02-00-00-00.fs` gives the
/// file name), as Python's `os.path.basename`.
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The stamp part (`YYYY-MM-DD-HH-MM-SS`) of a data, `.dat` or `.index`
/// file name.
pub fn stamp_of(name: &str) -> &str {
    name.get(..19).unwrap_or(name)
}

/// True if and only if repozo would gunzip this repository file: its name
/// ends with `fsz` (`.fsz`, `.deltafsz`).
pub fn is_gzip_name(name: &str) -> bool {
    name.ends_with("fsz")
}

/// True if and only if `path` names a full backup (`.fs` or `.fsz`).
pub fn is_full(path: &str) -> bool {
    matches!(split_ext(path).1, ".fs" | ".fsz")
}

/// Python's `os.path.splitext` for the names and paths repozo handles:
/// `(root, ext)` split at the last dot of the last path component.
pub fn split_ext(path: &str) -> (&str, &str) {
    let base_start = path.rfind('/').map_or(0, |i| i + 1);
    let base = &path[base_start..];
    let lead = base.len() - base.trim_start_matches('.').len();
    match base[lead..].rfind('.') {
        Some(i) => path.split_at(base_start + lead + i),
        None => (path, ""),
    }
}

/// `root` of a data file path with another extension (e.g. `.dat`).
pub fn with_ext(path: &str, ext: &str) -> String {
    format!("{}{ext}", split_ext(path).0)
}

/// Python's `os.path.join(dir, name)` for a relative `name`.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() || dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn only_stamped_backup_names_are_data_files() {
        assert!(is_data_file("2026-11-26-02-10-03.fs"));
        assert!(is_data_file("2026-11-26-02-10-03.deltafsz"));
        assert!(!is_data_file("2026-11-26-02-10-03.dat"));
        assert!(!is_data_file("2026-11-26-02-10-03.fs.tmp-1-0"));
        assert!(!is_data_file("2026-11-26-02-1x-03.fs"));
        assert!(!is_data_file("tmp.tmp"));
    }

    #[test]
    fn the_chain_is_the_newest_full_up_to_the_date_plus_later_deltas() {
        let n = names(&[
            "2026-01-01-00-00-00.fs",
            "2026-01-02-00-00-00.deltafs",
            "2026-01-03-00-00-00.fsz",
            "2026-01-04-00-00-00.deltafsz",
            "2026-01-05-00-00-00.deltafs",
        ]);
        assert_eq!(
            select_chain(&n, "2026-01-04-00-00-00"),
            vec!["2026-01-03-00-00-00.fsz", "2026-01-04-00-00-00.deltafsz"]
        );
        assert_eq!(
            select_chain(&n, "2026-01-02-12-00-00"),
            vec!["2026-01-01-00-00-00.fs", "2026-01-02-00-00-00.deltafs"]
        );
        assert!(select_chain(&n, "2025").is_empty());
    }

    #[test]
    fn a_partial_date_selects_backups_strictly_before_that_period() {
        let n = names(&["2026-01-01-00-00-00.fs", "2026-01-02-00-00-00.fs"]);
        assert_eq!(
            select_chain(&n, "2026-01-02"),
            vec!["2026-01-01-00-00-00.fs"]
        );
    }

    #[test]
    fn without_a_full_every_delta_up_to_the_date_is_chained() {
        let n = names(&["2026-01-02-00-00-00.deltafs", "2026-01-03-00-00-00.deltafs"]);
        assert_eq!(select_chain(&n, "9").len(), 2);
    }

    #[test]
    fn a_chain_starts_at_every_full_and_leading_incrementals_form_their_own() {
        let n = names(&[
            "2026-01-01-00-00-00.deltafs",
            "2026-01-02-00-00-00.fs",
            "2026-01-03-00-00-00.deltafsz",
            "2026-01-04-00-00-00.fsz",
            "2026-01-05-00-00-00.fs",
            "2026-01-06-00-00-00.deltafs",
        ]);
        let lens: Vec<usize> = split_chains(&n).iter().map(|c| c.len()).collect();
        assert_eq!(lens, vec![1, 2, 1, 2]);
        assert!(split_chains(&[]).is_empty());
    }

    #[test]
    fn a_listing_from_names_classifies_them_as_a_directory_listing_does() {
        let l = Listing::from_names([
            "notes.txt",
            "2026-01-02-00-00-00.index",
            "2026-01-02-00-00-00.fs",
            "2026-01-02-00-00-00.dat",
            "unrelated.dat",
            "2026-01-02-00-00-00.fs.tmp-1-2",
            "tmp.tmp",
        ]);
        assert_eq!(l.data_files(), ["2026-01-02-00-00-00.fs"]);
        assert_eq!(
            l.meta_files(),
            ["2026-01-02-00-00-00.dat", "2026-01-02-00-00-00.index"]
        );
        assert!(l.has_meta("2026-01-02-00-00-00.dat"));
        assert!(!l.has_meta("unrelated.dat"));
        assert_eq!(l.leftovers().len(), 1);
    }

    #[test]
    fn only_our_temporary_files_count_as_leftovers() {
        assert!(is_leftover("2026-11-26-02-10-03.fs.tmp-123-0"));
        assert!(is_leftover("2026-11-26-02-10-03.index.tmp-1-22"));
        assert!(!is_leftover("tmp.tmp"));
        assert!(!is_leftover("2026-11-26-02-10-03.fs"));
        assert!(!is_leftover("notes.tmp-1-2"));
        assert!(!is_leftover("aaaaaaaaaaaaaaaaaaéxx.tmp-1-2"));
        assert!(!is_leftover("2026-11-26-02-10-0é.fs.tmp-1-2"));
    }

    #[test]
    fn paths_split_and_join_like_python() {
        assert_eq!(
            split_ext("r/2026-01-01-00-00-00.fs"),
            ("r/2026-01-01-00-00-00", ".fs")
        );
        assert_eq!(split_ext("a.b/c"), ("a.b/c", ""));
        assert_eq!(split_ext(".hidden"), (".hidden", ""));
        assert_eq!(join("r/", "x"), "r/x");
        assert_eq!(join("r", "x"), "r/x");
        assert_eq!(join("", "x"), "x");
    }
}
