//! A repository in a local directory: the [`Backend`] over the file system
//! (temporary file, fsync, rename or link, directory fsync; `flock` on the
//! directory), with the directory's fast paths as overrides of the trait's
//! defaults: data files written with `O_DIRECT` where the filesystem suits
//! it ([`crate::io::direct`]), repozo's synced `.dat` append, files handed
//! out for `copy_file_range`, and blob objects made durable a batch at a
//! time ([`Batched`]).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::objects::{self, Hash, ObjectWriter, Stored};
use super::{Backend, Entry, Held, Put, Upload, Version};
use crate::error::{Error, IoContext, Result};
use crate::io::{AtomicFile, Staged, open_regular, sync_dir, syncfs};
use crate::lock::RepoLock;

/// A repository directory.
#[derive(Debug, Clone)]
pub struct Local {
    dir: String,
}

impl Local {
    /// The repository in `dir` (not checked yet).
    pub fn new(dir: impl Into<String>) -> Local {
        Local { dir: dir.into() }
    }

    /// The directory as given.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(crate::names::join(&self.dir, name))
    }

    /// `blobs/incoming/`, where [`Batched`] writes new objects.
    fn incoming(&self) -> PathBuf {
        self.path("blobs/incoming")
    }

    /// Removes what an interrupted [`Batched`] writer left in `incoming/`
    /// (creating the directory).
    fn clear_incoming(&self) -> Result<PathBuf> {
        let incoming = self.incoming();
        fs::create_dir_all(&incoming).at(&incoming)?;
        for entry in fs::read_dir(&incoming).at(&incoming)? {
            let path = entry.at(&incoming)?.path();
            let _ = fs::remove_file(&path);
        }
        Ok(incoming)
    }

    /// Lists `dir` (a directory under the repository, named `prefix`
    /// relative to it) into `out`, descending if `recursive`.
    fn walk(&self, dir: &Path, prefix: &str, recursive: bool, out: &mut Vec<Entry>) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if prefix.is_empty() {
                    return Err(Error::NoRepository(self.dir.clone()));
                }
                return Ok(());
            }
            r => r.at(dir)?,
        };
        for entry in entries {
            let entry = entry.at(dir)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not UTF-8: neither a repository file nor ours
            };
            let path = entry.path();
            // Symbolic links are followed, as repozo's os.listdir + open do.
            let Ok(meta) = fs::metadata(&path) else {
                continue; // a dangling link
            };
            let full = format!("{prefix}{name}");
            if meta.is_file() {
                out.push(Entry {
                    name: full,
                    size: meta.len(),
                });
            } else if meta.is_dir() && recursive {
                self.walk(&path, &format!("{full}/"), true, out)?;
            }
        }
        Ok(())
    }

    fn make_parent(&self, name: &str, path: &Path) -> Result<()> {
        if name.contains('/')
            && let Some(parent) = path.parent()
        {
            fs::create_dir_all(parent).at(parent)?;
        }
        Ok(())
    }
}

/// What `r` got, `None` if `path` was not found, else the error naming
/// `path`.
fn found<T>(path: &Path, r: io::Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The identity and state of an open file: it changes when the file is
/// replaced (inode) or written (size, modification time).
fn version_of(meta: &fs::Metadata) -> Version {
    Version {
        tag: format!(
            "{}:{}:{}:{}.{}",
            meta.dev(),
            meta.ino(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        ),
        extra: None,
    }
}

impl Backend for Local {
    fn describe(&self) -> String {
        self.dir.clone()
    }

    fn url(&self, name: &str) -> String {
        crate::names::join(&self.dir, name)
    }

    fn list(&self, prefix: &str, recursive: bool) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        let dir = if prefix.is_empty() {
            PathBuf::from(&self.dir)
        } else {
            self.path(prefix.trim_end_matches('/'))
        };
        if !prefix.is_empty() && !Path::new(&self.dir).is_dir() {
            return Err(Error::NoRepository(self.dir.clone()));
        }
        self.walk(&dir, prefix, recursive, &mut out)?;
        out.sort();
        Ok(out)
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        let path = self.path(name);
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => {
                Err(Error::io(&path, io::Error::from_raw_os_error(libc::EISDIR)))
            }
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        let path = self.path(name);
        Ok(Box::new(open_regular(&path).at(&path)?))
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.path(name);
        crate::io::read_regular(&path).at(&path)
    }

    fn read_range(&self, name: &str, start: u64, len: u64) -> Result<Vec<u8>> {
        let path = self.path(name);
        let file = open_regular(&path).at(&path)?;
        let size = file.metadata().at(&path)?.len();
        let want = len.min(size.saturating_sub(start)) as usize;
        let mut buf = vec![0; want];
        let mut got = 0;
        while got < want {
            let pos = start + got as u64;
            match file.read_at(&mut buf[got..], pos) {
                Ok(0) => break, // truncated meanwhile
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Error::IoAt {
                        path,
                        pos,
                        source: e,
                    });
                }
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<Put> {
        let dest = self.path(name);
        self.make_parent(name, &dest)?;
        let tmp = crate::io::temp_path(&dest);
        let written = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(&tmp, e));
        }
        // link(2) fails with EEXIST instead of replacing: create-only.
        let linked = fs::hard_link(&tmp, &dest);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(&dest)?;
                Ok(Put::Created)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Put::AlreadyExists),
            Err(e) => Err(Error::io(&dest, e)),
        }
    }

    fn create(&self, name: &str) -> Result<Box<dyn Upload>> {
        let dest = self.path(name);
        if self.size(name)?.is_some() {
            return Err(Error::WouldOverwrite(dest.to_string_lossy().into_owned()));
        }
        self.make_parent(name, &dest)?;
        let mut file = AtomicFile::create(&dest)?;
        file.try_direct();
        Ok(Box::new(LocalUpload {
            file: Some(Staged::new(file)),
            dest,
            written: 0,
        }))
    }

    fn read_versioned(&self, name: &str) -> Result<Option<(Vec<u8>, Version)>> {
        let path = self.path(name);
        let mut file = match open_regular(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            r => r.at(&path)?,
        };
        let mut data = Vec::new();
        file.read_to_end(&mut data).at(&path)?;
        let meta = file.metadata().at(&path)?;
        Ok(Some((data, version_of(&meta))))
    }

    fn replace(&self, name: &str, data: &[u8], expected: &Version) -> Result<Version> {
        let path = self.path(name);
        let changed = || Error::Changed(path.to_string_lossy().into_owned());
        match fs::metadata(&path) {
            Ok(m) if version_of(&m) == *expected => {}
            Ok(_) => return Err(changed()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(changed()),
            Err(e) => return Err(Error::io(&path, e)),
        }
        let mut f = AtomicFile::create(&path)?;
        f.write_all(data).at(&path)?;
        f.commit()?;
        let meta = fs::metadata(&path).at(&path)?;
        Ok(version_of(&meta))
    }

    fn delete(&self, name: &str) -> Result<bool> {
        let path = self.path(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn lock(&self, wait: Duration) -> Result<Box<dyn Held>> {
        Ok(Box::new(LocalHeld {
            _lock: RepoLock::acquire(&self.dir, wait)?,
        }))
    }

    fn probe(&self) -> Result<()> {
        Ok(())
    }

    fn list_names(&self) -> Result<Vec<(String, Option<u64>)>> {
        let entries = match fs::read_dir(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NoRepository(self.dir.clone()));
            }
            r => r.at(&self.dir)?,
        };
        let mut names = Vec::new();
        for entry in entries {
            // Not UTF-8: neither a repository file nor ours.
            if let Ok(name) = entry.at(&self.dir)?.file_name().into_string() {
                names.push((name, None));
            }
        }
        Ok(names)
    }

    fn exists(&self, name: &str) -> Result<bool> {
        // Anything under the name counts, a directory too: it is in the way.
        let path = self.path(name);
        match fs::metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn open_optional(&self, name: &str) -> Result<Option<Box<dyn Read + Send>>> {
        let path = self.path(name);
        Ok(found(&path, open_regular(&path))?.map(|f| Box::new(f) as Box<dyn Read + Send>))
    }

    fn read_optional(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(name);
        found(&path, crate::io::read_regular(&path))
    }

    fn size_opened(&self, name: &str) -> Result<Option<u64>> {
        let path = self.path(name);
        Ok(found(&path, open_regular(&path).and_then(|f| f.metadata()))?.map(|m| m.len()))
    }

    fn entry_size(&self, name: &str) -> Result<Option<u64>> {
        let path = self.path(name);
        Ok(found(&path, fs::symlink_metadata(&path))?.map(|m| m.len()))
    }

    /// Streams into a temporary file, then fsync, rename, directory fsync,
    /// even after a SIGINT.
    fn write_whole(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<()> {
        let path = self.path(name);
        let mut f = AtomicFile::create(&path)?;
        {
            let mut w = io::BufWriter::with_capacity(crate::io::CHUNK, &mut f);
            write(&mut w).at(&path)?;
            w.flush().at(&path)?;
        }
        f.commit_even_if_interrupted()
    }

    /// As repozo appends an incremental's `.dat` line: `O_APPEND`, fsync.
    fn append(&self, name: &str, line: &str, _held: &dyn Held) -> Result<()> {
        crate::io::append_synced(&self.path(name).to_string_lossy(), line)
    }

    /// fsync of the directory.
    fn sync(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .at(&self.dir)
    }

    fn remove_leftover(&self, name: &str) -> Result<bool> {
        Ok(fs::remove_file(self.path(name)).is_ok())
    }

    fn local_file(&self, name: &str) -> Option<Result<File>> {
        let path = self.path(name);
        Some(open_regular(&path).at(&path))
    }

    fn cheap_metadata(&self) -> bool {
        true
    }

    /// Creating files, not copying bytes, bounds a local blob backup: a
    /// few threads overlap it.
    fn write_parallelism(&self) -> usize {
        std::thread::available_parallelism()
            .map_or(2, |k| k.get())
            .clamp(2, 4)
    }

    fn has_directory_times(&self) -> bool {
        true
    }

    fn object_writer(&self) -> Result<Box<dyn ObjectWriter + '_>> {
        let incoming = self.clear_incoming()?;
        Ok(Box::new(Batched {
            local: self,
            incoming,
            pending: Mutex::new(Pending::default()),
            next: AtomicU64::new(0),
        }))
    }

    fn sweep_objects(&self, keep: &HashSet<Hash>) -> Result<(u64, u64)> {
        if !Path::new(&self.dir).join("blobs").exists() {
            return Ok((0, 0));
        }
        self.clear_incoming()?;
        objects::sweep(self, keep)
    }
}

/// The local lock: `flock` on the repository directory, which no other
/// process can take from us; dropped with the process.
#[derive(Debug)]
struct LocalHeld {
    _lock: RepoLock,
}

impl Held for LocalHeld {
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// [`Backend::create`] on a directory: an [`AtomicFile`] in direct mode
/// where the filesystem suits it, written through aligned staging.
struct LocalUpload {
    file: Option<Staged<AtomicFile>>,
    dest: PathBuf,
    written: u64,
}

impl Write for LocalUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.as_mut().expect("not committed").write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("not committed").flush()
    }
}

impl Upload for LocalUpload {
    fn commit(mut self: Box<Self>) -> Result<u64> {
        let staged = self.file.take().expect("not committed");
        // The tail is written even after a SIGINT; commit then refuses.
        let file = staged.finish().at(&self.dest)?;
        file.commit()?;
        Ok(self.written)
    }
}

/// Objects put and not yet committed.
#[derive(Default)]
struct Pending {
    objects: Vec<(PathBuf, Hash)>,
    bytes: u64,
}

/// A batch is committed when it holds this many objects…
const BATCH_OBJECTS: usize = 16_384;
/// …or this many bytes.
const BATCH_BYTES: u64 = 4 << 30;

/// The directory's [`ObjectWriter`]: new objects are written as
/// `blobs/incoming/<pid>-<n>` while their hash is computed, then, a batch
/// at a time, made durable with one `syncfs`, renamed to their names, and
/// made durable again. So an object under its final name always has its
/// whole content, even after a power loss, without paying one `fsync` per
/// file (an fsync each cost more than the copy). Objects become visible
/// under their names only at [`ObjectWriter::commit`] (or when a batch
/// fills up); files left in `incoming/` by a crash are removed by the next
/// writer or sweep, which hold the repository lock.
struct Batched<'l> {
    local: &'l Local,
    incoming: PathBuf,
    pending: Mutex<Pending>,
    next: AtomicU64,
}

impl Batched<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic elsewhere cannot leave the list inconsistent: use it.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn store_one(&self, tmp: &Path, hash: &Hash, dirs: &mut HashSet<PathBuf>) -> Result<()> {
        let dest = self.local.path(&objects::object_name(hash));
        let dir = dest.parent().expect("objects/xx").to_path_buf();
        if dirs.insert(dir.clone()) {
            fs::create_dir_all(&dir).at(&dir)?;
        }
        fs::rename(tmp, &dest).at(&dest)?;
        crate::failpoint::hit("backup:blob-stored");
        Ok(())
    }
}

impl ObjectWriter for Batched<'_> {
    fn put(&self, src: &mut File, shown: &Path, buf: &mut [u8]) -> Result<Stored> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let tmp = self.incoming.join(format!("{}-{n}", std::process::id()));
        // Created read-only, as objects are kept: no chmod per object.
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(&tmp)
            .at(&tmp)?;
        let copied = objects::hash_copy(src, Some(&mut out), buf, shown, &tmp);
        let (hash, size) = match copied {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        drop(out);
        let stored = self.local.size(&objects::object_name(&hash))? == Some(size)
            || self.lock().objects.iter().any(|(_, h)| *h == hash);
        if stored {
            fs::remove_file(&tmp).at(&tmp)?;
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
        Ok(Stored {
            hash,
            size,
            new: !stored,
        })
    }

    fn commit(&self) -> Result<()> {
        let mut p = self.lock();
        if p.objects.is_empty() {
            return Ok(());
        }
        syncfs(&self.incoming)?;
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
        syncfs(&self.incoming)
    }
}

impl Drop for Batched<'_> {
    /// Removes the objects put but not committed, so that a backup that
    /// fails (an unreadable blob file) or is interrupted leaves nothing in
    /// `incoming/`.
    fn drop(&mut self) {
        for (tmp, _) in self.lock().objects.drain(..) {
            let _ = fs::remove_file(&tmp);
        }
    }
}
