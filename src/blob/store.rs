//! `blobs/objects/`: blob contents, each stored once under its BLAKE3 hash.
//!
//! An object is `blobs/objects/<first two hex digits>/<64 hex digits>`,
//! read-only, never rewritten: equal contents (the same file under two
//! oids, or unchanged across backups and chains) are stored once.
//!
//! New objects are written as `blobs/incoming/<pid>-<n>` while their hash
//! is computed, then, a batch at a time, made durable with one `syncfs`,
//! renamed to their names, and made durable again. So an object under its
//! final name always has its whole content, even after a power loss,
//! without paying one `fsync` per file (a blob store holds hundreds of
//! thousands of small files; an fsync each cost more than the copy). The
//! manifests that name objects are written only after their batch is
//! committed. Files left in `incoming/` by a crash are removed by the
//! next run that holds the repository lock.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::backend::{Backend, Put};
use crate::error::{Error, IoContext, Result};
use crate::repo::Repository;

/// A BLAKE3 hash of a blob's content.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The hash of `data`.
    pub fn of(data: &[u8]) -> Hash {
        Hash(*blake3::hash(data).as_bytes())
    }

    /// Parses 64 lowercase hex digits.
    pub fn from_hex(s: &str) -> Option<Hash> {
        if s.len() != 64
            || !s
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Hash(out))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

/// A batch is committed when it holds this many objects…
const BATCH_OBJECTS: usize = 16_384;
/// …or this many bytes.
const BATCH_BYTES: u64 = 4 << 30;
/// In an object store, a blob file up to this size is read into memory
/// and sent with one create-only put; a larger one is hashed first, then
/// streamed up as a multipart upload (one at a time, see [`Writer`]).
const SMALL_REMOTE: u64 = 8 << 20;

/// The object name of `hash` relative to the repository.
pub fn object_name(hash: &Hash) -> String {
    let hex = hash.to_string();
    format!("blobs/objects/{}/{hex}", &hex[..2])
}

/// The blob store of a repository: `<repo>/blobs` in a directory, or the
/// objects `blobs/objects/…` of an object-store repository.
///
/// The two differ only in how a new object becomes durable: a directory
/// batches (`incoming/`, `syncfs`, renames; see the module doc), an
/// object store makes each object durable with its own create-only put,
/// so nothing is ever half-written under an object's name there either.
#[derive(Clone)]
pub struct Store {
    at: At,
}

#[derive(Clone)]
enum At {
    Dir(PathBuf),
    Remote(Arc<dyn Backend>),
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            At::Dir(root) => write!(f, "Store({})", root.display()),
            At::Remote(b) => write!(f, "Store({}/blobs)", b.describe()),
        }
    }
}

impl Store {
    /// The store of the repository directory `repo_dir` (not created).
    pub fn new(repo_dir: &str) -> Store {
        Store {
            at: At::Dir(Path::new(repo_dir).join("blobs")),
        }
    }

    /// The store of `repo`, wherever it is.
    pub fn of(repo: &Repository) -> Store {
        match repo.remote() {
            Some(b) => Store {
                at: At::Remote(Arc::clone(b)),
            },
            None => Store::new(repo.dir()),
        }
    }

    /// `<repo>/blobs` for a directory repository; `None` in an object store.
    pub fn local_root(&self) -> Option<&Path> {
        match &self.at {
            At::Dir(root) => Some(root),
            At::Remote(_) => None,
        }
    }

    /// Whether the store may hold objects (a directory: `blobs/` exists;
    /// an object store: always, as prefixes need no creating).
    pub fn exists(&self) -> bool {
        match &self.at {
            At::Dir(root) => root.exists(),
            At::Remote(_) => true,
        }
    }

    /// How many blob files a backup should store at once: creating files
    /// (local) or waiting for a request's round trip (object store), not
    /// copying bytes, bounds a blob backup; both overlap.
    pub fn parallelism(&self) -> usize {
        match &self.at {
            At::Dir(_) => std::thread::available_parallelism()
                .map_or(2, |k| k.get())
                .clamp(2, 4),
            At::Remote(_) => 8,
        }
    }

    /// Where the object `hash` lives, for messages: a path or an URL.
    pub fn shown(&self, hash: &Hash) -> String {
        match &self.at {
            At::Dir(_) => self.object_path(hash).display().to_string(),
            At::Remote(b) => b.url(&object_name(hash)),
        }
    }

    /// Where the object `hash` lives: its path in a directory store, its
    /// name ([`object_name`]) in an object store.
    pub fn object_path(&self, hash: &Hash) -> PathBuf {
        let hex = hash.to_string();
        match &self.at {
            At::Dir(root) => root.join("objects").join(&hex[..2]).join(hex),
            At::Remote(_) => PathBuf::from(object_name(hash)),
        }
    }

    fn incoming(&self) -> Option<PathBuf> {
        self.local_root().map(|r| r.join("incoming"))
    }

    /// The size of object `hash`, or `None` if it is not stored.
    pub fn size_of(&self, hash: &Hash) -> Result<Option<u64>> {
        match &self.at {
            At::Dir(_) => {
                let path = self.object_path(hash);
                match std::fs::metadata(&path) {
                    Ok(m) => Ok(Some(m.len())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io(&path, e)),
                }
            }
            At::Remote(b) => b.size(&object_name(hash)),
        }
    }

    /// Opens object `hash` for reading (as a stream, bounded memory);
    /// `None` if it is not stored.
    pub fn open(&self, hash: &Hash) -> Result<Option<Box<dyn Read + Send>>> {
        match &self.at {
            At::Dir(_) => {
                let path = self.object_path(hash);
                match crate::io::open_regular(&path) {
                    Ok(f) => Ok(Some(Box::new(f))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io(&path, e)),
                }
            }
            At::Remote(b) => b.open_optional(&object_name(hash)),
        }
    }

    /// Starts writing new objects. In a directory, removes what a crashed
    /// run left in `incoming/`; the caller holds the repository lock.
    pub fn writer(&self) -> Result<Writer<'_>> {
        if let Some(incoming) = self.incoming() {
            std::fs::create_dir_all(&incoming).at(&incoming)?;
            for entry in std::fs::read_dir(&incoming).at(&incoming)? {
                let path = entry.at(&incoming)?.path();
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(Writer {
            store: self,
            pending: Mutex::new(Pending::default()),
            next: AtomicU64::new(0),
            large: Mutex::new(()),
        })
    }

    /// Removes every object not in `keep`, and what a crashed run left in
    /// `incoming/`; returns (objects, bytes) removed. The caller holds the
    /// repository lock, so no backup is adding objects meanwhile. Names
    /// that are not objects of ours are left alone.
    pub fn sweep(&self, keep: &HashSet<Hash>) -> Result<(u64, u64)> {
        let (mut n, mut bytes) = (0u64, 0u64);
        let backend = match &self.at {
            At::Dir(_) => return self.sweep_dir(keep),
            At::Remote(b) => b,
        };
        for entry in backend.list("blobs/objects/", true)? {
            let Some(hash) = hash_of_name(&entry.name) else {
                continue;
            };
            if keep.contains(&hash) {
                continue;
            }
            crate::interrupt::check()?;
            backend.delete(&entry.name)?;
            n += 1;
            bytes += entry.size;
        }
        Ok((n, bytes))
    }

    /// Every stored object with its size, from one listing, where that is
    /// cheaper than asking per object: in an object store (one request per
    /// thousand objects instead of one per object); `None` for a
    /// directory, where [`Store::size_of`] is a `stat`.
    pub fn sizes(&self) -> Result<Option<HashMap<Hash, u64>>> {
        match &self.at {
            At::Dir(_) => Ok(None),
            At::Remote(b) => Ok(Some(
                b.list("blobs/objects/", true)?
                    .into_iter()
                    .filter_map(|e| Some((hash_of_name(&e.name)?, e.size)))
                    .collect(),
            )),
        }
    }

    fn sweep_dir(&self, keep: &HashSet<Hash>) -> Result<(u64, u64)> {
        let Some(root) = self.local_root() else {
            return Ok((0, 0));
        };
        let objects = root.join("objects");
        let (mut n, mut bytes) = (0u64, 0u64);
        let _ = self.writer()?; // clears incoming/
        let dirs = match std::fs::read_dir(&objects) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(Error::io(&objects, e)),
        };
        for dir in dirs {
            let dir = dir.at(&objects)?.path();
            if !dir.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&dir).at(&dir)? {
                let entry = entry.at(&dir)?;
                let name = entry.file_name();
                let Some(hash) = name.to_str().and_then(Hash::from_hex) else {
                    continue; // not ours: leave it
                };
                if keep.contains(&hash) {
                    continue;
                }
                let path = entry.path();
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                std::fs::remove_file(&path).at(&path)?;
                n += 1;
                bytes += len;
            }
        }
        Ok((n, bytes))
    }
}

/// Adds objects to a [`Store`]; see the module doc for the order of
/// writes. In a directory, objects become visible under their names only
/// at [`Writer::commit`] (or when a batch fills up); in an object store,
/// each is durable when [`Writer::put`] returns. Large files go up to an
/// object store one at a time (each a multipart upload with its own
/// bounded parallelism), so memory stays bounded: at most
/// [`Store::parallelism`] small files of [`SMALL_REMOTE`] bytes and one
/// upload's parts.
pub struct Writer<'s> {
    store: &'s Store,
    pending: Mutex<Pending>,
    next: AtomicU64,
    large: Mutex<()>,
}

/// Objects put and not yet committed.
#[derive(Default)]
struct Pending {
    objects: Vec<(PathBuf, Hash)>,
    bytes: u64,
}

impl Writer<'_> {
    /// Copies `src` (named `shown` in errors) into the store unless an
    /// object with its content exists; returns its hash, its size, and
    /// whether it is new to the store. `buf` is the copy buffer. Safe to
    /// call from several threads at once.
    pub fn put(&self, src: &mut File, shown: &Path, buf: &mut [u8]) -> Result<(Hash, u64, bool)> {
        match &self.store.at {
            At::Dir(root) => self.put_dir(&root.join("incoming"), src, shown, buf),
            At::Remote(b) => self.put_remote(b.as_ref(), src, shown, buf),
        }
    }

    fn put_remote(
        &self,
        backend: &dyn Backend,
        src: &mut File,
        shown: &Path,
        buf: &mut [u8],
    ) -> Result<(Hash, u64, bool)> {
        let len = src.metadata().at(shown)?.len();
        if len <= SMALL_REMOTE {
            let data = read_small(src, len, shown)?;
            let hash = Hash::of(&data);
            let size = data.len() as u64;
            let name = object_name(&hash);
            let new = match backend.put_if_absent(&name, &data)? {
                Put::Created => true,
                // Stored before: keep it unless it is damaged (another size).
                Put::AlreadyExists if backend.size(&name)? == Some(size) => false,
                Put::AlreadyExists => {
                    backend.delete(&name)?;
                    backend.put_if_absent(&name, &data)? == Put::Created
                }
            };
            crate::failpoint::hit("backup:blob-stored");
            return Ok((hash, size, new));
        }
        // Hash first (the name is the hash), then stream it up, checking
        // that what went up hashes the same.
        let (hash, size) = hash_copy(src, None, buf, shown, Path::new(""))?;
        let name = object_name(&hash);
        match backend.size(&name)? {
            Some(s) if s == size => return Ok((hash, size, false)),
            Some(_) => backend.delete(&name)?,
            None => {}
        }
        let _one_at_a_time = self
            .large
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        src.seek(SeekFrom::Start(0)).at(shown)?;
        let mut up = backend.create(&name)?;
        let (again, n) = hash_copy(src, Some(&mut up), buf, shown, Path::new(&name))?;
        if again != hash || n != size {
            // Dropped uncommitted: nothing appears under the name.
            return Err(changed_meanwhile(shown));
        }
        up.commit()?;
        crate::failpoint::hit("backup:blob-stored");
        Ok((hash, size, true))
    }

    fn put_dir(
        &self,
        incoming: &Path,
        src: &mut File,
        shown: &Path,
        buf: &mut [u8],
    ) -> Result<(Hash, u64, bool)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let tmp = incoming.join(format!("{}-{n}", std::process::id()));
        // Created read-only, as objects are kept: no chmod per object.
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(&tmp)
            .at(&tmp)?;
        let copied = hash_copy(src, Some(&mut out), buf, shown, &tmp);
        let (hash, size) = match copied {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        drop(out);
        let stored = self.store.size_of(&hash)? == Some(size)
            || self.lock().objects.iter().any(|(_, h)| *h == hash);
        if stored {
            std::fs::remove_file(&tmp).at(&tmp)?;
        } else {
            let full = {
                let mut p = self.lock();
                p.objects.push((tmp, hash));
                p.bytes += size;
                p.objects.len() >= BATCH_OBJECTS || p.bytes >= BATCH_BYTES
            };
            if full {
                self.commit()?;
            }
        }
        Ok((hash, size, !stored))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic elsewhere cannot leave the list inconsistent: use it.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes every object put so far durable under its name (in an object
    /// store they already are).
    pub fn commit(&self) -> Result<()> {
        let mut p = self.lock();
        let Some(incoming) = self.store.incoming() else {
            return Ok(());
        };
        if p.objects.is_empty() {
            return Ok(());
        }
        syncfs(&incoming)?;
        let mut dirs = HashSet::new();
        let objects = std::mem::take(&mut p.objects);
        for (i, (tmp, hash)) in objects.iter().enumerate() {
            if let Err(e) = self.store_one(tmp, hash, &mut dirs) {
                // What is not renamed yet is removed by `drop`.
                p.objects = objects[i..].to_vec();
                return Err(e);
            }
        }
        p.bytes = 0;
        syncfs(&incoming)
    }

    fn store_one(&self, tmp: &Path, hash: &Hash, dirs: &mut HashSet<PathBuf>) -> Result<()> {
        let dest = self.store.object_path(hash);
        let dir = dest.parent().expect("objects/xx").to_path_buf();
        if dirs.insert(dir.clone()) {
            std::fs::create_dir_all(&dir).at(&dir)?;
        }
        std::fs::rename(tmp, &dest).at(&dest)?;
        crate::failpoint::hit("backup:blob-stored");
        Ok(())
    }
}

impl Drop for Writer<'_> {
    /// Removes the objects put but not committed, so that a backup that
    /// fails (an unreadable blob file) or is interrupted leaves nothing in
    /// `incoming/`.
    fn drop(&mut self) {
        for (tmp, _) in self.lock().objects.drain(..) {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// The hash an object name `blobs/objects/<xx>/<hash>` stands for;
/// `None` for any other name (not ours: left alone).
fn hash_of_name(name: &str) -> Option<Hash> {
    name.strip_prefix("blobs/objects/")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(dir, hex)| hex.get(..2) == Some(*dir))
        .and_then(|(_, hex)| Hash::from_hex(hex))
}

/// Reads all of `src`, which `fstat` said is `len` bytes (at most
/// [`SMALL_REMOTE`]); a file that grew or shrank meanwhile is an error.
fn read_small(src: &mut File, len: u64, shown: &Path) -> Result<Vec<u8>> {
    let mut data = Vec::with_capacity(len.min(SMALL_REMOTE) as usize);
    Read::by_ref(src)
        .take(SMALL_REMOTE + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::io(shown, e))?;
    crate::interrupt::check()?;
    if data.len() as u64 != len {
        return Err(changed_meanwhile(shown));
    }
    Ok(data)
}

/// A blob file whose content changed while it was read.
fn changed_meanwhile(shown: &Path) -> Error {
    Error::Source(format!(
        "{} changed while it was being backed up (ZODB never rewrites a blob file); \
         nothing was stored for it. Run the backup again",
        shown.display()
    ))
}

/// Hashes `src`, writing it to `out` if given; returns (hash, bytes).
pub fn hash_copy(
    src: &mut dyn Read,
    mut out: Option<&mut dyn Write>,
    buf: &mut [u8],
    shown: &Path,
    out_path: &Path,
) -> Result<(Hash, u64)> {
    let mut h = blake3::Hasher::new();
    let mut n = 0u64;
    loop {
        let k = match src.read(buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(shown, e).with_pos(n)),
        };
        h.update(&buf[..k]);
        if let Some(o) = out.as_mut() {
            o.write_all(&buf[..k]).at(out_path)?;
        }
        n += k as u64;
        crate::interrupt::check()?;
    }
    Ok((Hash(*h.finalize().as_bytes()), n))
}

/// Flushes the whole filesystem holding `path` to stable storage.
pub fn syncfs(path: &Path) -> Result<()> {
    let dir = File::open(path).at(path)?;
    // SAFETY: syncfs only reads the descriptor, which `dir` keeps open.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(Error::io(path, std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_contents_are_stored_once_and_unreferenced_ones_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().to_str().unwrap();
        let store = Store::new(repo);
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, b"same").unwrap();
        std::fs::write(&b, b"other").unwrap();
        let w = store.writer().unwrap();
        let mut buf = vec![0; 16];
        let (ha, na, new) = w.put(&mut File::open(&a).unwrap(), &a, &mut buf).unwrap();
        assert!(new);
        let (ha2, _, new) = w.put(&mut File::open(&a).unwrap(), &a, &mut buf).unwrap();
        assert!(!new);
        let (hb, _, _) = w.put(&mut File::open(&b).unwrap(), &b, &mut buf).unwrap();
        w.commit().unwrap();
        assert_eq!(ha, ha2);
        assert_eq!(ha, Hash::of(b"same"));
        assert_eq!(na, 4);
        assert_eq!(store.size_of(&ha).unwrap(), Some(4));
        let mut stored = store.open(&hb).unwrap().unwrap();
        assert_eq!(
            hash_copy(&mut stored, None, &mut buf, Path::new("b"), Path::new("")).unwrap(),
            (hb, 5)
        );
        assert_eq!(
            std::fs::read_dir(store.incoming().unwrap())
                .unwrap()
                .count(),
            0
        );
        let keep: HashSet<Hash> = [hb].into_iter().collect();
        assert_eq!(store.sweep(&keep).unwrap(), (1, 4));
        assert_eq!(store.size_of(&ha).unwrap(), None);
        assert_eq!(store.size_of(&hb).unwrap(), Some(5));
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let h = Hash::of(b"x");
        assert_eq!(Hash::from_hex(&h.to_string()), Some(h));
        assert_eq!(Hash::from_hex("zz"), None);
    }

    proptest::proptest! {
        /// Names listed by an object store are anyone's: any name gives a
        /// hash or `None`, never a panic; an object's own name its hash.
        #[test]
        fn any_listed_name_gives_a_hash_or_none_never_a_panic(name in "\\PC{0,90}") {
            let _ = hash_of_name(&name);
            let h = Hash::of(name.as_bytes());
            proptest::prop_assert_eq!(hash_of_name(&object_name(&h)), Some(h));
        }
    }
}
