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
use crate::io::gzip::{DecodePool, GzipReader};
use crate::io::hashing::{Digested, Digests, stream_with};

use super::dat::DatEntry;
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
    /// A pack delta whose base state starts with bytes read from a local
    /// file rather than the repository ([`DataFiles::with_base_head`]).
    base_head: Option<BaseHead>,
}

/// The first files of a pack delta's base state, read from a local file
/// that holds their bytes from its byte 0, instead of from the
/// repository: `-R --incremental` rebuilds a standby that holds the state
/// a pack delta is based on from its own bytes.
///
/// Invariant (the caller's): `file` was proved to hold `lines` (by their
/// md5 or sidecar BLAKE3). The bytes rebuilt are checked as always, by
/// the delta's own `.dat` line.
#[derive(Debug, Clone)]
pub struct BaseHead {
    /// The pack delta's file name (`<stamp>.fsz`).
    pub delta: String,
    /// The first lines of its base, as its header lists them.
    pub lines: Vec<DatEntry>,
    /// The local file holding their bytes.
    pub file: Arc<std::fs::File>,
    /// Its path, for errors.
    pub path: String,
}

impl BaseHead {
    /// Bytes of the base state it holds.
    pub fn len(&self) -> u64 {
        self.lines.last().map_or(0, |l| l.end)
    }

    /// Whether it holds no base bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl DataFiles {
    /// An opener of the files in `backend`, with no pool yet.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        DataFiles {
            pool: std::cell::OnceCell::new(),
            backend,
            buf: std::cell::RefCell::default(),
            depth: 0,
            base_head: None,
        }
    }

    /// This opener, reading the pack delta `head.delta` with its base
    /// state's first files from `head` (see [`BaseHead`]).
    pub fn with_base_head(mut self, head: BaseHead) -> Self {
        self.base_head = Some(head);
        self
    }

    /// Opens `file` for reading its uncompressed bytes: gunzipped (all
    /// members, as Python's gzip reads them) if it is gzip, raw otherwise.
    ///
    /// A `.fsz` full that starts with [`packdelta::MAGIC`] is a pack delta:
    /// its bytes are those it rebuilds from its base files.
    pub fn open(&self, file: DataFile) -> Result<Box<dyn Read>> {
        if let Some(head) = self
            .base_head
            .as_ref()
            .filter(|h| h.delta == crate::names::base_name(file.path))
        {
            return self.open_pack_delta_on(file.path, head);
        }
        let mut r = self.backend.open(crate::names::base_name(file.path))?;
        Ok(if file.gzip {
            // Put back the bytes looked at: gzip reads them again.
            let mut head = [0u8; packdelta::MAGIC.len()];
            let got =
                crate::io::read_full(&mut r, &mut head).map_err(|e| Error::io(file.path, e))?;
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
    /// byte, `path` names it. Its base files are read from the repository
    /// ([`DataFiles::base_of`]).
    fn open_pack_delta(&self, r: Box<dyn Read + Send>, path: &str) -> Result<Box<dyn Read>> {
        let delta = packdelta::open(r, path)?;
        let base = self.base_of(path, &delta.header, 0)?;
        Ok(Box::new(delta.rebuild(base)))
    }

    /// The bytes the pack delta at `path` rebuilds, its base state's first
    /// files read from `head`, the rest from the repository.
    fn open_pack_delta_on(&self, path: &str, head: &BaseHead) -> Result<Box<dyn Read>> {
        let r = self.backend.open(crate::names::base_name(path))?;
        let delta = packdelta::open(r, path)?;
        let k = head.lines.len();
        if delta.header.base.get(..k) != Some(&head.lines[..]) {
            return Err(Error::Layout(format!(
                "{path}: its base is not the state {} was found to hold (was the pack delta \
                 replaced meanwhile?); run the recover again",
                head.path
            )));
        }
        let rest = self.base_of(path, &delta.header, k)?;
        let held = crate::io::FileRange {
            file: Arc::clone(&head.file),
            path: head.path.clone(),
            pos: 0,
            end: head.len(),
        };
        // Buffered as a plain repository file is: the operations read the
        // base a record (or an 8-byte field) at a time.
        let held = BufReader::with_capacity(PLAIN_BUF, held);
        Ok(Box::new(delta.rebuild(held.chain(rest))))
    }

    /// The base files of the pack delta at `path` (whose header is
    /// `header`) from its `from`-th on, from the repository, as one stream.
    /// The header's base must be the lines of its chain's `.dat`
    /// ([`packdelta::check_base`]); the files are read through an opener
    /// one level deeper, which shares this one's pool, and a file that is
    /// gone is an error naming the delta that needs it.
    pub fn base_of(
        &self,
        path: &str,
        header: &packdelta::Header,
        from: usize,
    ) -> Result<impl Read + use<>> {
        if self.depth >= packdelta::DEPTH_MAX {
            return Err(Error::Layout(format!(
                "{path}: pack deltas are based on each other more than {} deep (or in a \
                 circle); restore from a full backup, or make one (-B -F)",
                packdelta::DEPTH_MAX
            )));
        }
        let dir = &path[..path.len() - crate::names::base_name(path).len()];
        if let Some(first) = header.base.first() {
            // Without its .dat, the base chain cannot be compared; the
            // rebuilt bytes are still checked against the delta's line.
            let dat = crate::names::dat_name(crate::names::stamp_of(&first.file));
            if let Some(raw) = self.backend.read_optional(&dat)? {
                packdelta::check_base(header, &raw, path, &format!("{dir}{dat}"))?;
            }
        }
        Ok(Concat {
            files: DataFiles {
                pool: self.pool.clone(),
                backend: Arc::clone(&self.backend),
                buf: std::cell::RefCell::default(),
                depth: self.depth + 1,
                base_head: None,
            },
            paths: header.base[from.min(header.base.len())..]
                .iter()
                .rev()
                .map(|e| format!("{dir}{}", e.file))
                .collect(),
            current: None,
            needed_by: Some(path.to_string()),
        })
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

    /// Backup file names of the base files and the delta.
    const A: &str = "2026-01-01-00-00-00.fs";
    const B: &str = "2026-01-02-00-00-00.deltafs";
    const D: &str = "2026-01-03-00-00-00.fsz";

    /// A repository with the base files [`A`] and [`B`] and the pack delta
    /// [`D`], which rebuilds `xyz` and A's bytes after the first two from
    /// them; returns those bytes and the delta's base lines.
    fn delta_repo(dir: &std::path::Path) -> (Vec<u8>, Vec<DatEntry>) {
        use crate::io::delta::DeltaWriter;
        let (a, b) = (b"0123456789".to_vec(), b"abcdef".to_vec());
        std::fs::write(dir.join(A), &a).unwrap();
        std::fs::write(dir.join(B), &b).unwrap();
        let line = |file: &str, start, end, bytes: &[u8]| DatEntry {
            file: file.into(),
            start,
            end,
            md5: {
                let mut h = crate::io::Md5Hasher::new();
                h.update(bytes);
                h.finish_hex()
            },
        };
        let base = vec![line(A, 0, 10, &a), line(B, 10, 16, &b)];
        // The base is read forwards: A's first 2 bytes skipped, the rest
        // copied, B skipped.
        let mut ops = DeltaWriter::new(Vec::new());
        ops.add(b"xyz").unwrap();
        ops.skip(2).unwrap();
        ops.copy(8).unwrap();
        ops.skip(6).unwrap();
        let (ops, _) = ops.finish().unwrap();
        let header = packdelta::Header {
            size: 11,
            base: base.clone(),
        };
        let mut file = header.encode();
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&ops).unwrap();
        file.extend(z.finish().unwrap());
        std::fs::write(dir.join(D), file).unwrap();
        (b"xyz23456789".to_vec(), base)
    }

    #[test]
    fn a_pack_delta_reads_the_same_with_its_base_head_from_a_local_file() {
        let dir = tempfile::tempdir().unwrap();
        let (want, base) = delta_repo(dir.path());
        let d = dir.path().join(D);
        let d = DataFile {
            path: d.to_str().unwrap(),
            gzip: true,
        };
        let mut got = Vec::new();
        files_in(dir.path())
            .open(d)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, want);
        // A's bytes from a local file (the repository's is gone), B
        // still from the repository.
        let local = dir.path().join("standby.fs");
        std::fs::write(&local, b"0123456789").unwrap();
        std::fs::remove_file(dir.path().join(A)).unwrap();
        let head = BaseHead {
            delta: D.into(),
            lines: base[..1].to_vec(),
            file: Arc::new(std::fs::File::open(&local).unwrap()),
            path: local.to_str().unwrap().into(),
        };
        let files = files_in(dir.path()).with_base_head(head.clone());
        let mut got = Vec::new();
        files.open(d).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got, want);
        // Without B, the rest of the base, it fails naming it.
        std::fs::rename(dir.path().join(B), dir.path().join("b.old")).unwrap();
        let err = files.concat([d], None, "").unwrap_err().to_string();
        assert!(err.contains(B), "{err}");
        std::fs::rename(dir.path().join("b.old"), dir.path().join(B)).unwrap();
        // A head whose lines are not the delta's base is refused.
        let mut other = head.clone();
        other.lines[0].md5 = "0".repeat(32);
        let err = files_in(dir.path())
            .with_base_head(other)
            .open(d)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("its base is not the state"), "{err}");
        // A local file cut short is an error, never short bytes.
        std::fs::write(&local, b"01234").unwrap();
        let err = files.concat([d], None, "").unwrap_err().to_string();
        assert!(err.contains("ends at byte 5, before byte 10"), "{err}");
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
