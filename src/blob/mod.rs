//! Blobs: the files a ZODB blob directory holds beside its Data.fs, and
//! how a repository keeps them.
//!
//! * [`layout`] — where ZODB puts the file of a blob record (`bushy` or
//!   `lawn`, as `.layout` says).
//! * [`manifest`] — `<stamp>.blobs`, one per data file: the blob revisions
//!   its byte range names, with size and BLAKE3 content hash.
//! * [`store`] — `blobs/objects/`, the contents, stored once each under
//!   their hash.
//!
//! Which records are blob records is decided from the Data.fs
//! ([`crate::fs::blob_records`]); the operations that use all three are in
//! [`crate::ops`].
//!
//! ZODB's repozo sees none of this: its file pattern
//! (`\d{4}(-\d\d){5}\.(delta)?fsz?$`) matches neither `.blobs` nor the
//! `blobs/` directory, and its `-k` removes only the data file, `.dat`
//! and `.index` of a stamp.

pub mod layout;
pub mod manifest;
pub mod store;

pub use layout::Layout;
pub use manifest::{Entry, Kind, Manifest};
pub use store::{Hash, Store};
