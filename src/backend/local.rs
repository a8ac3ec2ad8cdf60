//! A repository in a local directory: the [`Backend`] over the file system,
//! with the same guarantees as the rest of the crate (temporary file,
//! fsync, rename or link, directory fsync; `flock` on the directory).

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{Backend, Entry, Held, Put, Upload, Version};
use crate::error::{Error, IoContext, Result};
use crate::io::{AtomicFile, open_regular, sync_dir};
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

    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(crate::repo::join(&self.dir, name))
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

    /// A temporary name next to `dest` that repository readers ignore
    /// (`<name>.tmp-<pid>-<n>`, as [`AtomicFile`] uses).
    fn temp_for(dest: &Path) -> PathBuf {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let mut tmp = dest.as_os_str().to_owned();
        tmp.push(format!(
            ".tmp-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        PathBuf::from(tmp)
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
        crate::repo::join(&self.dir, name)
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
        let tmp = Self::temp_for(&dest);
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
        Ok(Box::new(LocalUpload {
            file: Some(AtomicFile::create(&dest)?),
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

    fn delete(&self, name: &str) -> Result<()> {
        let path = self.path(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(&path, e)),
            _ => Ok(()),
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

/// [`Backend::create`] on a directory: an [`AtomicFile`].
struct LocalUpload {
    file: Option<AtomicFile>,
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
        self.file.take().expect("not committed").commit()?;
        Ok(self.written)
    }
}
