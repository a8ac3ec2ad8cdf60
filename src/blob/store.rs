//! `blobs/objects/`: blob contents, each stored once under its BLAKE3
//! hash, in the repository's backend ([`crate::backend::objects`] says how
//! objects are named, added durably and swept).
//!
//! Equal contents (the same file under two oids, or unchanged across
//! backups and chains) are stored once. The manifests that name objects
//! are written only after the objects are committed.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::sync::Arc;

use crate::backend::objects::{OBJECTS, hash_of_name};
use crate::backend::{Backend, ObjectWriter};
use crate::error::Result;
use crate::repo::Repository;

pub use crate::backend::objects::{Hash, Stored, hash_copy, object_name};

/// The blob store of a repository: the objects `blobs/objects/…` of its
/// backend.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Store({})", self.backend.url("blobs"))
    }
}

impl Store {
    /// The store of `repo`.
    pub fn of(repo: &Repository) -> Store {
        Store {
            backend: Arc::clone(repo.backend()),
        }
    }

    /// How many blob files a backup or restore should handle at once.
    pub fn parallelism(&self) -> usize {
        self.backend.write_parallelism()
    }

    /// Where the object `hash` lives, for messages: a path or an URL.
    pub fn shown(&self, hash: &Hash) -> String {
        self.backend.url(&object_name(hash))
    }

    /// The size of object `hash`, or `None` if it is not stored.
    pub fn size_of(&self, hash: &Hash) -> Result<Option<u64>> {
        self.backend.size(&object_name(hash))
    }

    /// Opens object `hash` for reading (as a stream, bounded memory);
    /// `None` if it is not stored.
    pub fn open(&self, hash: &Hash) -> Result<Option<Box<dyn Read + Send>>> {
        self.backend.open_optional(&object_name(hash))
    }

    /// Whether checking an object is as cheap as opening it (a directory),
    /// so that `-V -Q` opens each; otherwise a listing-level check is what
    /// `-Q` does.
    pub fn opening_is_cheap(&self) -> bool {
        self.backend.cheap_metadata()
    }

    /// Starts writing new objects; the caller holds the repository lock.
    pub fn writer(&self) -> Result<Box<dyn ObjectWriter + '_>> {
        self.backend.object_writer()
    }

    /// Removes every object not in `keep`, and what a crashed run left
    /// behind; returns (objects, bytes) removed. The caller holds the
    /// repository lock, so no backup is adding objects meanwhile. Names
    /// that are not objects of ours are left alone.
    pub fn sweep(&self, keep: &HashSet<Hash>) -> Result<(u64, u64)> {
        self.backend.sweep_objects(keep)
    }

    /// Every stored object with its size, from one listing, where that is
    /// cheaper than asking per object (an object store: one request per
    /// thousand objects instead of one per object); `None` where
    /// [`Store::size_of`] is a `stat`.
    pub fn sizes(&self) -> Result<Option<HashMap<Hash, u64>>> {
        if self.backend.cheap_metadata() {
            return Ok(None);
        }
        Ok(Some(
            self.backend
                .list(OBJECTS, true)?
                .into_iter()
                .filter_map(|e| Some((hash_of_name(&e.name)?, e.size)))
                .collect(),
        ))
    }

    /// Writes `blobs/STATE`, naming the last manifest, where the backend
    /// has directory times: rewritten on every blob backup, so the `blobs`
    /// directory's modification time stays that of the last backup
    /// (wrappers that prune a repository by age then leave it alone).
    pub fn touch_state(&self, last_manifest_for: &str) -> Result<()> {
        if !self.backend.has_directory_times() {
            return Ok(());
        }
        let state = format!("repozo blob store 1\nlast manifest for {last_manifest_for}\n");
        self.backend
            .write_whole("blobs/STATE", &mut |w| w.write_all(state.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::path::Path;

    #[test]
    fn equal_contents_are_stored_once_and_unreferenced_ones_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::of(&Repository::new(dir.path().to_str().unwrap()));
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, b"same").unwrap();
        std::fs::write(&b, b"other").unwrap();
        let w = store.writer().unwrap();
        let mut buf = vec![0; 16];
        let sa = w.put(&mut File::open(&a).unwrap(), &a, &mut buf).unwrap();
        assert!(sa.new);
        let sa2 = w.put(&mut File::open(&a).unwrap(), &a, &mut buf).unwrap();
        assert!(!sa2.new);
        let sb = w.put(&mut File::open(&b).unwrap(), &b, &mut buf).unwrap();
        w.commit().unwrap();
        drop(w);
        assert_eq!(sa.hash, sa2.hash);
        assert_eq!(sa.hash, Hash::of(b"same"));
        assert_eq!(sa.size, 4);
        assert_eq!(store.size_of(&sa.hash).unwrap(), Some(4));
        let mut stored = store.open(&sb.hash).unwrap().unwrap();
        assert_eq!(
            hash_copy(&mut stored, None, &mut buf, Path::new("b"), Path::new("")).unwrap(),
            (sb.hash, 5)
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/incoming"))
                .unwrap()
                .count(),
            0
        );
        let keep: HashSet<Hash> = [sb.hash].into_iter().collect();
        assert_eq!(store.sweep(&keep).unwrap(), (1, 4));
        assert_eq!(store.size_of(&sa.hash).unwrap(), None);
        assert_eq!(store.size_of(&sb.hash).unwrap(), Some(5));
    }
}
