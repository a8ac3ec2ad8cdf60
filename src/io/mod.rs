//! Checksummed streaming, gzip, and atomic file creation: the bottom layer,
//! which knows files and bytes but not repositories (no module here uses
//! anything of the crate but [`crate::error`] and [`crate::interrupt`]).
//!
//! Every checksum in a repository is the md5 of the *uncompressed* bytes,
//! as lowercase hex (Python's `hashlib.md5().hexdigest()`). All copying goes
//! through [`hashing::stream`], which hashes on a second thread.
//!
//! * [`atomic`] — files that appear under their final name only when
//!   complete; synced appends; `syncfs`.
//! * [`direct`] — where `O_DIRECT` writes are used, and aligned staging.
//! * [`gzip`], [`huffman`] — parallel gzip members, written and read;
//!   `isal_inflate` (feature `isal`) — ISA-L's inflate for the streamed
//!   files.
//! * [`hashing`], [`md5`] — the copy loop and the md5 it runs.

pub mod atomic;
pub mod delta;
pub mod direct;
pub mod gzip;
mod gzip_whole;
pub mod hashing;
pub mod huffman;
#[cfg(feature = "isal")]
mod isal_inflate;
pub mod md5;

pub use atomic::{AtomicFile, append_synced, exchange, sync_dir, syncfs, temp_path};
pub use direct::{STAGE, Staged};
pub use gzip::{DecodePool, GzipReader, ParallelGzip};
pub use hashing::{DIRECT_ALIGN, Digested, Digests, Hashed, Md5Hasher, stream, stream_with};

/// Reads into `buf` until it is full or `r` ends; returns how many bytes
/// it holds (fewer only at the end).
pub fn read_full(r: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The bytes `[pos, end)` of an open file as a stream, read with `pread`
/// (the file's offset is not used); a file that ends first is an error
/// naming `path`, never a short stream.
pub struct FileRange<F: std::borrow::Borrow<std::fs::File>> {
    /// The file (`&File` or `Arc<File>`).
    pub file: F,
    /// Its path, for errors.
    pub path: String,
    /// The next byte read.
    pub pos: u64,
    /// Where the stream ends.
    pub end: u64,
}

impl<F: std::borrow::Borrow<std::fs::File>> std::io::Read for FileRange<F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = (self.end.saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.borrow().read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{} ends at byte {}, before byte {} (it was cut short meanwhile?)",
                    self.path, self.pos, self.end
                ),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Opens `path` for reading only if it is a regular file (symbolic links
/// followed). A FIFO is opened without blocking and refused, as are
/// devices and sockets (an `InvalidInput` error saying so), so that a
/// hostile repository cannot make a read hang or run forever; a directory
/// gives `EISDIR`, as Python's `open()` does.
pub fn open_regular(path: impl AsRef<std::path::Path>) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_dir() {
        return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
    }
    if !kind.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or socket); a backup file must be a regular file",
        ));
    }
    // Regular files ignore O_NONBLOCK; clear it all the same.
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a valid descriptor with integer arguments only.
    unsafe {
        let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(file)
}

/// Reads all of `path`, which must be a regular file ([`open_regular`]).
pub fn read_regular(path: impl AsRef<std::path::Path>) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::new();
    open_regular(path)?.read_to_end(&mut data)?;
    Ok(data)
}

/// Reads `path` as UTF-8 text of at most `max` bytes; a larger file is an
/// `InvalidData` error saying so, never an allocation sized by the file
/// (configuration and state files: AWS profiles, an old metrics file).
pub fn read_text_at_most(path: impl AsRef<std::path::Path>, max: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max} bytes, which is not a file of this kind"),
        ));
    }
    Ok(text)
}

/// Size of the buffers used for copying and hashing.
pub const CHUNK: usize = 1 << 20;

/// Lowercase hex of a digest.
pub fn hex(digest: &[u8]) -> String {
    use std::fmt::Write as _;
    digest.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The md5 hex of no bytes at all.
pub fn md5_empty() -> String {
    Md5Hasher::new().finish_hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking_and_a_directory_is_eisdir() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.fs");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = open_regular(&fifo).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        assert_eq!(
            open_regular(dir.path()).unwrap_err().raw_os_error(),
            Some(libc::EISDIR)
        );
        assert!(open_regular("/dev/zero").is_err());
    }

    #[test]
    fn a_text_file_over_its_limit_is_an_error_not_an_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, "x".repeat(11)).unwrap();
        assert_eq!(read_text_at_most(&path, 11).unwrap().len(), 11);
        let err = read_text_at_most(&path, 10).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    }

    #[test]
    fn md5_of_nothing_is_pythons() {
        assert_eq!(md5_empty(), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
