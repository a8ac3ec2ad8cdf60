//! Read-only access to a FileStorage (`Data.fs`).
//!
//! A FileStorage is one append-only file: a 4-byte magic (`FS30`, or
//! `FS21` for files written by Python 2 ZODB, same layout) followed by
//! transaction records. Each transaction is a 23-byte header, user,
//! description and extension strings, data records, then a redundant copy
//! of its length. Integers are big-endian. A transaction is first written
//! with status `c` and flipped to ` ` once committed, so the bytes before
//! the end of the last committed transaction never change until a pack
//! replaces the file; that is what makes byte-range incremental backups
//! sound.
//!
//! The reference is ZODB 6.4, `src/ZODB/FileStorage/format.py` and
//! `FileStorage.py` (`read_index`, `_check_sanity`, `_restore_index`),
//! documented byte by byte in the project's `repozo.md` §3. [`committed`]
//! reproduces `FileStorage(path, read_only=True)`: its position equals
//! `getSize()` and its index equals `_index` for every file ZODB opens.

mod blobs;
pub mod check;
pub mod packdiff;
mod record;
mod scan;

pub use blobs::{BlobRecord, blob_records, is_blob_pickle};
pub use check::Checker;
pub use record::{
    DATA_HEADER_LEN, DataHeader, FILE_HEADER_LEN, LEN_SIZE, MAGIC_21, MAGIC_30, PosReader,
    TXN_HEADER_LEN, TxnHeader,
};
pub use scan::{Committed, Hint, committed, committed_with_hint, scan_from};

pub use crate::error::FormatError;

/// Hint for a file that is not a FileStorage at all.
pub(crate) const HINT_NOT_FS: &str =
    "Check that -f names a FileStorage Data.fs; nothing was written to the repository";
/// Hint for a FileStorage with a damaged record before its committed end.
pub(crate) const HINT_CORRUPT: &str = "The Data.fs is damaged before its last committed \
     transaction: keep the last good backup, and repair a copy with ZODB's fstest/fsrecover; \
     nothing was written to the repository";
