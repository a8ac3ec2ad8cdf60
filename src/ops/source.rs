//! The Data.fs being backed up, opened once.
//!
//! Size, checksums, the committed-end scan and the copy all go through the
//! one file handle opened here, so a pack that renames a new Data.fs into
//! place mid-backup cannot pair one file's offsets with another's bytes.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use md5::{Digest, Md5};

use crate::error::{Error, IoContext, Result};
use crate::io::{CHUNK, hex};

/// An open Data.fs and its size when opened.
pub struct Source {
    /// The path as given with `-f`.
    pub path: String,
    /// The one handle every read goes through.
    pub file: File,
    /// Size in bytes at open time (may include uncommitted bytes).
    pub size: u64,
}

impl Source {
    /// Opens `path` for reading. A directory is refused with EISDIR, as
    /// Python's `open()` refuses it; an empty file is refused because it
    /// holds no FileStorage (repozo fails on it with an AssertionError).
    pub fn open(path: &str) -> Result<Self> {
        let file = File::open(path).at(path)?;
        let meta = file.metadata().at(path)?;
        if meta.is_dir() {
            return Err(Error::io(path, io::Error::from_raw_os_error(21)));
        }
        if meta.len() == 0 {
            return Err(Error::Source(format!(
                "{path}: the file is empty, so it is not a FileStorage: check that -f names \
                 your Data.fs. Nothing was written to the repository"
            )));
        }
        Ok(Source {
            path: path.to_string(),
            file,
            size: meta.len(),
        })
    }

    /// Fails if `path` no longer names the file opened (a pack renamed a new
    /// Data.fs into place), so a backup of the replaced file is not
    /// recorded as a backup of the new one.
    pub fn check_not_replaced(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let open = self.file.metadata().at(&self.path)?;
        let same = std::fs::metadata(&self.path)
            .is_ok_and(|now| now.dev() == open.dev() && now.ino() == open.ino());
        if same {
            return Ok(());
        }
        Err(Error::Source(format!(
            "{}: the file was replaced (packed?) during the backup; nothing was recorded. \
             Run the backup again: it will make a full backup of the new file",
            self.path
        )))
    }

    /// md5 hex of the bytes `[0, a)` and `[0, b)` in one pass (`a ≤ b`);
    /// both stop early at end of file, like repozo's `checksum(fp, n)`.
    pub fn md5_prefixes(&self, a: u64, b: u64) -> Result<(String, String)> {
        debug_assert!(a <= b);
        let mut hasher = Md5::new();
        let mut first = None;
        let mut buf = vec![0u8; CHUNK];
        let mut pos = 0u64;
        loop {
            if pos == a && first.is_none() {
                first = Some(hex(&hasher.clone().finalize()));
            }
            let limit = if pos < a { a } else { b };
            let want = (limit - pos).min(CHUNK as u64) as usize;
            if want == 0 {
                break;
            }
            let n = self.read_at(&mut buf[..want], pos)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            pos += n as u64;
        }
        let whole = hex(&hasher.finalize());
        Ok((first.unwrap_or_else(|| whole.clone()), whole))
    }

    /// md5 hex of `[start, end)`, stopping early at end of file.
    pub fn md5_range(&self, start: u64, end: u64) -> Result<String> {
        let mut hasher = Md5::new();
        self.each_chunk(start, end, |c| {
            hasher.update(c);
            Ok(())
        })?;
        Ok(hex(&hasher.finalize()))
    }

    /// Copies exactly `[start, end)` to `out`, returning the md5 hex. Fails
    /// if the file ends first (it was truncated or replaced meanwhile).
    pub fn copy_range(
        &self,
        start: u64,
        end: u64,
        out: &mut dyn Write,
        dest: &str,
    ) -> Result<String> {
        let mut hasher = Md5::new();
        let done = self.each_chunk(start, end, |c| {
            hasher.update(c);
            out.write_all(c).at(dest)
        })?;
        if done != end - start {
            return Err(Error::Source(format!(
                "{}: the file ended at byte {} while bytes up to {end} were being copied; \
                 it was truncated or replaced (packed?) during the backup. Nothing was \
                 recorded; run the backup again",
                self.path,
                start + done
            )));
        }
        Ok(hex(&hasher.finalize()))
    }

    fn each_chunk(
        &self,
        start: u64,
        end: u64,
        mut f: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64> {
        let mut buf = vec![0u8; CHUNK];
        let mut pos = start;
        while pos < end {
            let want = (end - pos).min(CHUNK as u64) as usize;
            let n = self.read_at(&mut buf[..want], pos)?;
            if n == 0 {
                break;
            }
            f(&buf[..n])?;
            pos += n as u64;
        }
        Ok(pos - start)
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> Result<usize> {
        loop {
            match self.file.read_at(buf, pos) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r.at(&self.path),
            }
        }
    }
}
