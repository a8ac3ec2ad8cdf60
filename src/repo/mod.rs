//! A repository: its listing, its chains and their `.dat` files, read and
//! written through one storage [`Backend`].
//!
//! File names (stamps, extensions, `join`) are [`crate::names`]'s; the
//! chain reader, which streams a chain's files as one, is [`reader`];
//! which files a date needs is [`select`]: [`chain_for_date`] for an
//! operation's `-D`, [`Repository::chain`] and [`select_chain`] beneath it.

pub mod chain;
pub mod dat;
pub mod packdelta;
pub mod reader;
pub mod select;
pub mod sidecar;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{self, Backend, Held, Upload};
use crate::clock::Stamp;
use crate::error::Result;
use crate::report::{Event, Report};

pub use crate::names::{
    base_name, is_data_file, is_full, is_gzip_name, is_leftover, is_meta_file, join, split_ext,
    stamp_of, with_ext,
};
pub use chain::{Chain, ChainFile};
pub use dat::DatEntry;
pub use reader::{BaseHead, DataFile, DataFiles};
pub use select::{chain_for_date, select_chain};

/// A repository, named as the user gave it, over its storage [`Backend`]
/// (a local directory, or a prefix of an object store:
/// `s3://bucket/prefix`, see [`Repository::open`]).
///
/// A directory's name is kept verbatim because repozo records
/// `os.path.join(<-r as given>, name)` in `.dat` lines and prints paths
/// that way; an object store's is `s3://bucket/prefix` and its files'
/// paths `s3://bucket/prefix/<name>`.
///
/// Every read and write goes through the backend; what a directory does
/// faster (`O_DIRECT`, `copy_file_range`, `flock`, batched `syncfs`) are
/// the backend's overrides, never branches here or above.
#[derive(Clone)]
pub struct Repository {
    dir: String,
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("dir", &self.dir)
            .finish()
    }
}

impl PartialEq for Repository {
    fn eq(&self, other: &Self) -> bool {
        self.dir == other.dir
    }
}

impl Eq for Repository {}

/// The repository lock, held until dropped ([`Repository::lock`]).
#[derive(Debug)]
pub struct RepoGuard(Box<dyn Held>);

impl RepoGuard {
    /// `Ok` while the lock is still ours; call just before a commit point.
    pub fn check(&self) -> Result<()> {
        self.0.check()
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

    /// Whether the directory held the `.dat`, `.index`, `.blobs` or
    /// `.blake3` file `name`.
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
    /// The repository in the local directory `dir` (not checked for
    /// existence here).
    pub fn new(dir: impl Into<String>) -> Self {
        let dir = dir.into();
        Repository {
            backend: Arc::new(backend::Local::new(dir.clone())),
            dir,
        }
    }

    /// The repository `-r` names: `s3://bucket/prefix` (cargo feature
    /// `s3`; without it this fails saying how to build it) or a directory.
    /// Nothing is contacted yet.
    pub fn open(spec: &str) -> Result<Self> {
        let backend: Arc<dyn Backend> = Arc::from(backend::open(spec)?);
        Ok(Repository {
            dir: backend.describe(),
            backend,
        })
    }

    /// The directory as given (or `s3://bucket/prefix`).
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The storage the repository is in.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Takes the repository lock, waiting up to `wait` for another holder
    /// (local: `flock` on the directory; object store: a leased lock
    /// object). Both fail with exit code 11 when the wait runs out.
    pub fn lock(&self, wait: Duration) -> Result<RepoGuard> {
        self.backend.lock(wait).map(RepoGuard)
    }

    /// The size of `name`, `None` if it does not exist.
    pub fn size(&self, name: &str) -> Result<Option<u64>> {
        self.backend.size(name)
    }

    /// The size of `name` after opening it, as repozo's verify opens every
    /// file (a local file that cannot be opened is an error); `None` if it
    /// does not exist.
    pub fn size_readable(&self, name: &str) -> Result<Option<u64>> {
        self.backend.size_opened(name)
    }

    /// Whether something exists under `name`.
    pub fn exists(&self, name: &str) -> Result<bool> {
        self.backend.exists(name)
    }

    /// Reads `name` as a stream.
    pub fn open_read(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        self.backend.open(name)
    }

    /// Reads `name` as a stream; `None` if it does not exist.
    pub fn open_optional(&self, name: &str) -> Result<Option<Box<dyn Read + Send>>> {
        self.backend.open_optional(name)
    }

    /// `name` as a local file, for copies inside the kernel
    /// (`copy_file_range`); `None` where the backend has no local files.
    pub fn local_file(&self, name: &str) -> Option<Result<std::fs::File>> {
        self.backend.local_file(name)
    }

    /// Reads all of `name`.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        self.backend.read(name)
    }

    /// Reads `len` bytes of `name` from offset `start`, fewer where it
    /// ends first (`len` bounds the allocation, not the file).
    pub fn read_range(&self, name: &str, start: u64, len: u64) -> Result<Vec<u8>> {
        self.backend.read_range(name, start, len)
    }

    /// Reads all of `name`; `None` if it does not exist.
    pub fn read_optional(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.backend.read_optional(name)
    }

    /// Starts the new data file `name`, which appears only when the
    /// returned upload is committed; fails if `name` exists.
    pub fn create_data(&self, name: &str) -> Result<Box<dyn Upload>> {
        self.backend.create(name)
    }

    /// Writes the small file `name` (a `.dat`, a manifest) holding `data`
    /// whole, atomically, replacing any file of that name, even after a
    /// SIGINT ([`Backend::write_whole`]).
    pub fn write_whole(&self, name: &str, data: &[u8]) -> Result<()> {
        self.backend.write_whole(name, &mut |w| w.write_all(data))
    }

    /// [`Repository::write_whole`] of what `write` produces (streamed
    /// where the backend can: an `.index` of millions of objects).
    pub fn write_with(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<()> {
        self.backend.write_whole(name, write)
    }

    /// Appends `line` to the `.dat` `name` (creating it) durably, the
    /// commit point of an incremental backup ([`Backend::append`]).
    pub fn append_line(&self, name: &str, line: &str, held: &RepoGuard) -> Result<()> {
        self.backend.append(name, line, held.0.as_ref())
    }

    /// Removes `name`; `false` if it was not there.
    pub fn remove(&self, name: &str) -> Result<bool> {
        self.backend.delete(name)
    }

    /// The size of `name` itself (locally without following a symlink:
    /// the link is what a removal removes); `None` if it does not exist.
    pub fn entry_size(&self, name: &str) -> Result<Option<u64>> {
        self.backend.entry_size(name)
    }

    /// Makes the removals and renames so far durable.
    pub fn sync(&self) -> Result<()> {
        self.backend.sync()
    }

    /// `name` inside the repository, joined as Python's `os.path.join` does.
    pub fn path(&self, name: &str) -> String {
        join(&self.dir, name)
    }

    /// Lists the repository once ([`Backend::list_names`]). Names that are
    /// not UTF-8 are neither data files nor ours (both are ASCII by
    /// construction) and are ignored, as is everything else that does not
    /// match. Errors if the repository cannot be listed.
    pub fn list(&self) -> Result<Listing> {
        let mut listing = Listing::default();
        for (name, size) in self.backend.list_names()? {
            if let Some(size) = size {
                listing.sizes.insert(name.clone(), size);
            }
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

    /// Removes the temporary files of `listing` left by an interrupted run
    /// of ours (`<name>.tmp-<pid>-<n>`), reporting each. Only call this
    /// while holding the repository lock. repozo's own `tmp.tmp` is left
    /// alone.
    pub fn remove_leftovers(&self, listing: &Listing, report: &dyn Report) {
        for name in &listing.leftovers {
            if self.backend.remove_leftover(name).unwrap_or(false) {
                report.event(&Event::RemovedLeftover(self.path(name)));
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
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
}
