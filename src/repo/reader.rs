//! Reading a chain of repository data files as one stream.
//!
//! A repository that takes a `-BQz` backup every hour holds chains of
//! thousands of files. [`DataFiles`] opens each file only when it is
//! reached and closes it when it is done, and gives every gzipped file the
//! same [`DecodePool`], so open files and threads stay bounded by a small
//! constant (one file, one pool of one thread per core and one stream
//! thread, the md5 thread) whatever the chain's length.

use std::io::{self, BufReader, Read, Write};
use std::rc::Rc;
use std::sync::Arc;

use crate::backend::Backend;
use crate::error::{Error, IoContext, Result};
use crate::io::CHUNK;
use crate::io::delta::Apply;
use crate::io::gzip::{DecodePool, GzipReader};
use crate::io::hashing::{Digested, Digests, stream_with};

use super::packdelta;

/// Buffer of a plain file's reader: no larger than the hashing loop's
/// chunks, so that their reads bypass it.
const PLAIN_BUF: usize = 256 * 1024;

/// One file of a chain, as [`DataFiles`] needs it: its path and whether
/// its bytes are gzipped (the repository's naming rule decides that, see
/// [`crate::names::is_gzip_name`]). It is opened by the last component of
/// its path, in the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataFile<'a> {
    /// Path, as errors name it.
    pub path: &'a str,
    /// Whether the file is gzip (read through all its members).
    pub gzip: bool,
}

/// Opens data files for reading their uncompressed bytes, one at a time,
/// sharing one decompression pool (started at the first gzipped file).
///
/// Invariant: a reader from [`DataFiles::open`] is dropped before the next
/// gzipped one is read (the pool serves one reader at a time).
pub struct DataFiles {
    pool: std::cell::OnceCell<Rc<DecodePool>>,
    /// Where the files are (opened by the base name of their path).
    backend: Arc<dyn Backend>,
    /// The copy buffer of [`DataFiles::copy`], allocated once: zeroing a
    /// [`CHUNK`] per file was 92% of the instructions of `-V -Q` over a
    /// 2,000-file gzip chain.
    buf: std::cell::RefCell<Vec<u8>>,
    /// How many pack deltas this opener reads the base of (0 at the top).
    depth: usize,
}

impl DataFiles {
    /// An opener of the files in `backend`, with no pool yet.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        DataFiles {
            pool: std::cell::OnceCell::new(),
            backend,
            buf: std::cell::RefCell::default(),
            depth: 0,
        }
    }

    /// Opens `file` for reading its uncompressed bytes: gunzipped (all
    /// members, as Python's gzip reads them) if it is gzip, raw otherwise.
    ///
    /// A `.fsz` full that starts with [`packdelta::MAGIC`] is a pack delta:
    /// its bytes are those it rebuilds from its base files.
    pub fn open(&self, file: DataFile) -> Result<Box<dyn Read>> {
        let mut r = self.backend.open(crate::names::base_name(file.path))?;
        Ok(if file.gzip {
            // Put back the bytes looked at: gzip reads them again.
            let mut head = [0u8; packdelta::MAGIC.len()];
            let got = read_up_to(&mut r, &mut head).map_err(|e| Error::io(file.path, e))?;
            let r: Box<dyn Read + Send> = Box::new(io::Cursor::new(head[..got].to_vec()).chain(r));
            if packdelta::is_pack_delta(&head[..got]) {
                self.open_pack_delta(r, file.path)?
            } else {
                Box::new(GzipReader::from_reader(r, self.pool()?))
            }
        } else {
            // Reads of a whole hashing chunk (or of `copy`'s CHUNK) are
            // larger than this buffer and go straight into the caller's
            // (aligned) buffer instead of being copied through it.
            Box::new(BufReader::with_capacity(PLAIN_BUF, r))
        })
    }

    /// The bytes a pack delta rebuilds: `r` reads the delta from its first
    /// byte, `path` names it. Its base files are read through an opener
    /// one level deeper, which shares this one's pool.
    fn open_pack_delta(&self, r: Box<dyn Read + Send>, path: &str) -> Result<Box<dyn Read>> {
        if self.depth >= packdelta::DEPTH_MAX {
            return Err(Error::Layout(format!(
                "{path}: pack deltas are based on each other more than {} deep (or in a \
                 circle); restore from a full backup, or make one (-B -F)",
                packdelta::DEPTH_MAX
            )));
        }
        let mut r = BufReader::with_capacity(64 * 1024, r);
        let mut magic = [0u8; packdelta::MAGIC.len()];
        r.read_exact(&mut magic).map_err(|e| Error::io(path, e))?;
        let header = packdelta::Header::read_after_magic(&mut r, path)?;
        let dir = &path[..path.len() - crate::names::base_name(path).len()];
        if let Some(first) = header.base.first() {
            // Without its .dat, the base chain cannot be compared; the
            // rebuilt bytes are still checked against the delta's line.
            let dat = crate::names::dat_name(crate::names::stamp_of(&first.file));
            if let Some(raw) = self.backend.read_optional(&dat)? {
                packdelta::check_base(&header, &raw, path, &format!("{dir}{dat}"))?;
            }
        }
        let base = Concat {
            files: DataFiles {
                pool: self.pool.clone(),
                backend: Arc::clone(&self.backend),
                buf: std::cell::RefCell::default(),
                depth: self.depth + 1,
            },
            paths: header
                .base
                .iter()
                .rev()
                .map(|e| format!("{dir}{}", e.file))
                .collect(),
            current: None,
            needed_by: Some(path.to_string()),
        };
        let ops = BufReader::with_capacity(64 * 1024, flate2::bufread::DeflateDecoder::new(r));
        Ok(Box::new(Apply::new(base, ops, header.size)))
    }

    /// The uncompressed bytes of the files at `paths` (repository paths,
    /// opened by their last component), one after the other, opened one
    /// at a time: a chain's state as a stream.
    pub fn into_concat(self, paths: Vec<String>) -> impl Read {
        Concat {
            files: self,
            paths: paths.into_iter().rev().collect(),
            current: None,
            needed_by: None,
        }
    }

    /// The shared decompression pool, started on first use.
    fn pool(&self) -> Result<Rc<DecodePool>> {
        Ok(match self.pool.get() {
            Some(p) => Rc::clone(p),
            None => {
                let p = Rc::new(DecodePool::new().map_err(Error::Thread)?);
                Rc::clone(self.pool.get_or_init(|| p))
            }
        })
    }

    /// Size and md5 hex of the uncompressed concatenation of `files`, also
    /// written to `out` (named `to` in errors) if given. Each file is
    /// opened when the previous one is done, and closed at its end.
    pub fn concat<'a>(
        &self,
        files: impl IntoIterator<Item = DataFile<'a>>,
        out: Option<&mut dyn Write>,
        to: &str,
    ) -> Result<(u64, String)> {
        let d = self.concat_with(files, out, to, Digests::Md5)?;
        Ok((d.len, d.md5.unwrap_or_default()))
    }

    /// [`DataFiles::concat`], computing `digests`.
    pub fn concat_with<'a>(
        &self,
        files: impl IntoIterator<Item = DataFile<'a>>,
        mut out: Option<&mut dyn Write>,
        to: &str,
        digests: Digests,
    ) -> Result<Digested> {
        let mut files = files.into_iter();
        let mut current: Option<(Box<dyn Read>, &str)> = None;
        // Fills the whole buffer (short only at the end), so that the
        // chunks written are aligned and of full size: a writer in
        // O_DIRECT mode takes them as they are, without staging copies.
        let mut fill = |buf: &mut [u8]| -> Result<usize> {
            let mut got = 0;
            while got < buf.len() {
                let Some((r, name)) = current.as_mut() else {
                    match files.next() {
                        Some(f) => current = Some((self.open(f)?, f.path)),
                        None => break,
                    }
                    continue;
                };
                match r.read(&mut buf[got..]) {
                    Ok(0) => current = None,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io(name, e)),
                }
            }
            Ok(got)
        };
        let mut sink = |chunk: &[u8]| -> Result<()> {
            match out.as_mut() {
                Some(o) => o.write_all(chunk).at(to),
                None => Ok(()),
            }
        };
        stream_with(&mut fill, &mut sink, &[], digests)
    }

    /// Size and md5 hex of one file's uncompressed bytes, also written to
    /// `out` (named `to`) if given.
    pub fn hash(
        &self,
        file: DataFile,
        out: Option<&mut dyn Write>,
        to: &str,
    ) -> Result<(u64, String)> {
        self.concat([file], out, to)
    }

    /// Size and `digests` of one file's uncompressed bytes, also written
    /// to `out` (named `to`) if given.
    pub fn digest(
        &self,
        file: DataFile,
        out: Option<&mut dyn Write>,
        to: &str,
        digests: Digests,
    ) -> Result<Digested> {
        self.concat_with([file], out, to, digests)
    }

    /// Copies one file's uncompressed bytes to `out` (named `to`) without
    /// hashing them; stops at a SIGINT/SIGTERM ([`crate::interrupt`]).
    pub fn copy(&self, file: DataFile, out: &mut dyn Write, to: &str) -> Result<u64> {
        let mut r = self.open(file)?;
        let mut buf = self.buf.take();
        buf.resize(CHUNK, 0);
        let copied = Self::copy_with(&mut *r, &mut buf, file, out, to);
        self.buf.replace(buf);
        copied
    }

    fn copy_with(
        r: &mut dyn Read,
        buf: &mut [u8],
        file: DataFile,
        out: &mut dyn Write,
        to: &str,
    ) -> Result<u64> {
        let mut total = 0u64;
        loop {
            crate::interrupt::check()?;
            let n = match r.read(buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(file.path, e)),
            };
            out.write_all(&buf[..n]).at(to)?;
            total += n as u64;
        }
    }
}

/// Reads into `buf` until it is full or the stream ends; returns how
/// many bytes it holds.
fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Files read one after the other ([`DataFiles::into_concat`]).
struct Concat {
    files: DataFiles,
    /// Paths still to open, last first.
    paths: Vec<String>,
    current: Option<Box<dyn Read>>,
    /// The pack delta these files are the base of, if they are.
    needed_by: Option<String>,
}

impl Concat {
    /// `e`, the error opening `path`, or, if `path` is the base of a
    /// pack delta and does not exist, the error saying so.
    fn missing_base(&self, path: &str, e: Error) -> Error {
        let Some(delta) = &self.needed_by else {
            return e;
        };
        match self.files.backend.exists(crate::names::base_name(path)) {
            Ok(false) => Error::PackDeltaBaseMissing {
                base: path.to_string(),
                delta: delta.clone(),
            },
            _ => e,
        }
    }
}

impl Read for Concat {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(r) = self.current.as_mut() else {
                let Some(path) = self.paths.pop() else {
                    return Ok(0);
                };
                let file = DataFile {
                    path: &path,
                    gzip: crate::names::is_gzip_name(&path),
                };
                // The error already names the file; a base file that is
                // gone says which delta needs it. (`Error::io` takes the
                // error out again.)
                let r = match self.files.open(file) {
                    Ok(r) => r,
                    Err(e) => return Err(io::Error::other(self.missing_base(&path, e))),
                };
                self.current = Some(r);
                continue;
            };
            match r.read(buf)? {
                0 if !buf.is_empty() => self.current = None,
                n => return Ok(n),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Local;
    use crate::io::{AtomicFile, ParallelGzip};

    fn files_in(dir: &std::path::Path) -> DataFiles {
        DataFiles::new(Arc::new(Local::new(dir.to_str().unwrap())))
    }

    fn plain(path: &str) -> DataFile<'_> {
        DataFile { path, gzip: false }
    }

    #[test]
    fn a_gzip_file_of_ours_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.fsz");
        let mut f = AtomicFile::create(&dest).unwrap();
        let mut gz = ParallelGzip::new(&mut f).unwrap();
        gz.write_chunk(b"hel").unwrap();
        gz.write_chunk(b"lo").unwrap();
        gz.finish().unwrap();
        f.commit().unwrap();
        let path = dest.to_str().unwrap();
        let (n, sum) = files_in(dir.path())
            .hash(DataFile { path, gzip: true }, None, "")
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(sum, "5d41402abc4b2a76b9719d911017c592");
    }

    #[test]
    fn a_long_chain_is_read_with_one_file_open_and_one_pool() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        let mut expected = Vec::new();
        for i in 0..300u32 {
            let gzip = i % 2 == 1;
            let p = dir
                .path()
                .join(format!("{i:04}.{}", if gzip { "fsz" } else { "fs" }));
            let data: Vec<u8> = (0..(i * 37 % 5000)).map(|j| (j * i % 251) as u8).collect();
            if gzip {
                let mut out = Vec::new();
                let mut gz = ParallelGzip::new(&mut out).unwrap();
                gz.write_chunk(&data).unwrap();
                gz.finish().unwrap();
                std::fs::write(&p, out).unwrap();
            } else {
                std::fs::write(&p, &data).unwrap();
            }
            expected.extend_from_slice(&data);
            paths.push((p.to_str().unwrap().to_string(), gzip));
        }
        let files = files_in(dir.path());
        let mut out = Vec::new();
        let (n, _) = files
            .concat(
                paths.iter().map(|(p, g)| DataFile { path: p, gzip: *g }),
                Some(&mut out),
                "out",
            )
            .unwrap();
        assert_eq!(n, expected.len() as u64);
        assert!(out == expected);
        assert!(files.pool.get().is_some_and(|p| Rc::strong_count(p) == 1));
    }

    #[test]
    fn a_missing_file_in_the_middle_names_that_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.fs");
        std::fs::write(&a, b"abc").unwrap();
        let b = dir.path().join("b.fs");
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        let err = files_in(dir.path())
            .concat([plain(a), plain(b)], None, "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("[Errno 2]") && err.contains("b.fs"), "{err}");
    }
}
