//! Checksummed streaming, gzip, and atomic file creation.
//!
//! Every checksum in a repository is the md5 of the *uncompressed* bytes,
//! as lowercase hex (Python's `hashlib.md5().hexdigest()`). All copying goes
//! through [`hashing::stream`], which hashes on a second thread.
//!
//! * [`atomic`] — files that appear under their final name only when
//!   complete; synced appends.
//! * [`direct`] — where `O_DIRECT` writes are used, and aligned staging.
//! * [`chain`] — a chain of data files read as one stream, one file open
//!   at a time, one decompression pool.
//! * [`gzip`], [`huffman`] — parallel gzip members, written and read.
//! * [`hashing`], [`md5`] — the copy loop and the md5 it runs.

pub mod atomic;
pub mod chain;
pub mod direct;
pub mod gzip;
pub mod hashing;
pub mod huffman;
pub mod md5;

pub use atomic::{AtomicFile, append_synced, sync_dir};
pub use chain::{DataFile, DataFiles};
pub use direct::{STAGE, Staged};
pub use gzip::{DecodePool, GzipReader, ParallelGzip};
pub use hashing::{DIRECT_ALIGN, Hashed, Md5Hasher, stream};

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
    fn md5_of_nothing_is_pythons() {
        assert_eq!(md5_empty(), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
