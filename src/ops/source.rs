//! The Data.fs being backed up, opened once.
//!
//! Size, checksums, the committed-end scan and the copy all go through the
//! one file handle opened here, so a pack that renames a new Data.fs into
//! place mid-backup cannot pair one file's offsets with another's bytes.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::meter::Meter;
use crate::error::{Error, IoContext, Result};
use crate::io::{Digested, Digests, Hashed, stream_with};

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
    /// Python's `open()` refuses it, and anything else that is not a
    /// regular file (a FIFO, a device) is refused too; an empty file is refused because it
    /// holds no FileStorage (repozo fails on it with an AssertionError).
    pub fn open(path: &str) -> Result<Self> {
        let file = crate::io::open_regular(path).at(path)?;
        let meta = file.metadata().at(path)?;
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
             Run the backup again: it backs up the new file (in full if it was packed)",
            self.path
        )))
    }

    /// md5 hex of the bytes `[0, a)` and `[0, b)` in one pass (`a ≤ b`);
    /// both stop early at end of file, like repozo's `checksum(fp, n)`.
    pub fn md5_prefixes(&self, a: u64, b: u64, meter: &Meter) -> Result<(String, String)> {
        debug_assert!(a <= b);
        let h = self.stream(
            0,
            b,
            &mut |c| {
                meter.add(c.len() as u64);
                Ok(())
            },
            &[a],
        )?;
        let first = h
            .at_marks
            .into_iter()
            .next()
            .unwrap_or_else(|| h.md5.clone());
        Ok((first, h.md5))
    }

    /// md5 hex of `[start, end)`, stopping early at end of file.
    pub fn md5_range(&self, start: u64, end: u64) -> Result<String> {
        Ok(self.stream(start, end, &mut |_| Ok(()), &[])?.md5)
    }

    /// [`Source::md5_range`], counting the bytes on `meter`.
    pub fn md5_range_metered(&self, start: u64, end: u64, meter: &Meter) -> Result<String> {
        let mut count = |c: &[u8]| {
            meter.add(c.len() as u64);
            Ok(())
        };
        Ok(self.stream(start, end, &mut count, &[])?.md5)
    }

    /// `digests` of `[start, end)` (short at end of file: see `len`),
    /// counting the bytes on `meter`.
    pub fn digest_range(
        &self,
        start: u64,
        end: u64,
        digests: Digests,
        meter: Option<&Meter>,
    ) -> Result<Digested> {
        let mut count = |c: &[u8]| {
            if let Some(m) = meter {
                m.add(c.len() as u64);
            }
            Ok(())
        };
        self.stream_with(start, end, &mut count, &[], digests)
    }

    /// Streams exactly `[start, end)` to `sink`, computing `digests`.
    /// Fails if the file ends first (it was truncated or replaced
    /// meanwhile).
    pub fn copy_range_with(
        &self,
        start: u64,
        end: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
        digests: Digests,
    ) -> Result<Digested> {
        let h = self.stream_with(start, end, sink, &[], digests)?;
        if h.len != end - start {
            return Err(Error::Source(format!(
                "{}: the file ended at byte {} while bytes up to {end} were being copied; \
                 it was truncated or replaced (packed?) during the backup. Nothing was \
                 recorded; run the backup again",
                self.path,
                start + h.len
            )));
        }
        Ok(h)
    }

    /// Streams `[start, end)` (less at end of file) through [`stream`];
    /// `marks` are relative to `start`.
    fn stream(
        &self,
        start: u64,
        end: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
        marks: &[u64],
    ) -> Result<Hashed> {
        let d = self.stream_with(start, end, sink, marks, Digests::Md5)?;
        Ok(Hashed {
            len: d.len,
            md5: d.md5.unwrap_or_default(),
            at_marks: d.at_marks,
        })
    }

    /// [`Source::stream`], computing `digests`.
    fn stream_with(
        &self,
        start: u64,
        end: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
        marks: &[u64],
        digests: Digests,
    ) -> Result<Digested> {
        let mut pos = start;
        // Fills the whole buffer unless the range or the file ends, so
        // that chunks stay full-sized (and O_DIRECT-writable) to the end.
        let mut fill = |buf: &mut [u8]| -> Result<usize> {
            let want = (end.saturating_sub(pos)).min(buf.len() as u64) as usize;
            let mut got = 0;
            while got < want {
                match self.file.read_at(&mut buf[got..want], pos) {
                    Ok(0) => break,
                    Ok(n) => {
                        pos += n as u64;
                        got += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io(&self.path, e).with_pos(pos)),
                }
            }
            Ok(got)
        };
        stream_with(&mut fill, sink, marks, digests)
    }
}
