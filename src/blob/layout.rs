//! Blob directory layouts, as ZODB 6.4's `ZODB/blob.py` defines them.
//!
//! A committed blob revision lives at `<dir>/<oid path>/<tid>.blob`, where
//! the tid (and, in `lawn`, the oid) is written as `0x` and its hex digits
//! without leading zeros, padded to an even count (`utils.oid_repr`).
//! `bushy` (the default) makes one directory per oid byte, big-endian
//! (`0x00/0x00/0x00/0x00/0x00/0x00/0x01/0x2c`); `lawn` one directory per
//! oid (`0x012c`). The name is kept in `<dir>/.layout`; a directory
//! without it is `lawn` if it holds any entry not starting with a dot, and
//! `bushy` otherwise (`auto_layout_select`).

use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// A blob directory layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Eight directory levels, one per oid byte (ZODB's default).
    Bushy,
    /// One directory per oid (deprecated by ZODB, still found).
    Lawn,
}

/// The file ZODB keeps the layout name in.
pub const MARKER: &str = ".layout";

impl Layout {
    /// The name ZODB writes into `.layout`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Bushy => "bushy",
            Layout::Lawn => "lawn",
        }
    }

    /// The layout called `name` (as in `.layout`, whitespace stripped).
    pub fn from_name(name: &str) -> Option<Layout> {
        match name.trim() {
            "bushy" => Some(Layout::Bushy),
            "lawn" => Some(Layout::Lawn),
            _ => None,
        }
    }

    /// The layout of the blob directory `dir`, decided as ZODB decides it.
    pub fn of_dir(dir: &Path) -> Result<Layout> {
        let marker = dir.join(MARKER);
        match std::fs::read_to_string(&marker) {
            Ok(s) => Layout::from_name(&s).ok_or_else(|| {
                Error::Layout(format!(
                    "{}: unknown blob layout {:?}; ZODB knows \"bushy\" and \"lawn\"",
                    marker.display(),
                    s.trim()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut used = false;
                for entry in std::fs::read_dir(dir).at(dir)? {
                    let entry = entry.at(dir)?;
                    if !entry.file_name().as_encoded_bytes().starts_with(b".") {
                        used = true;
                        break;
                    }
                }
                Ok(if used { Layout::Lawn } else { Layout::Bushy })
            }
            Err(e) => Err(Error::io(&marker, e)),
        }
    }

    /// The directory of `oid`'s revisions, relative to the blob directory.
    pub fn oid_dir(self, oid: u64) -> String {
        match self {
            Layout::Bushy => oid
                .to_be_bytes()
                .iter()
                .map(|b| format!("0x{b:02x}"))
                .collect::<Vec<_>>()
                .join("/"),
            Layout::Lawn => repr(oid),
        }
    }

    /// The path of the revision `(oid, tid)`, relative to the blob
    /// directory.
    pub fn file(self, oid: u64, tid: u64) -> String {
        format!("{}/{}.blob", self.oid_dir(oid), repr(tid))
    }
}

/// ZODB's `oid_repr`/`tid_repr` of a 64-bit id: `0x` and the hex digits
/// without leading zeros, padded to an even count (`0x00` for zero).
pub fn repr(id: u64) -> String {
    let hex = format!("{id:x}");
    if hex.len() % 2 == 1 {
        format!("0x0{hex}")
    } else {
        format!("0x{hex}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_written_as_zodb_writes_them() {
        assert_eq!(repr(0), "0x00");
        assert_eq!(repr(1), "0x01");
        assert_eq!(repr(0x12c), "0x012c");
        assert_eq!(repr(0x040d461ffeab9600), "0x040d461ffeab9600");
    }

    #[test]
    fn bushy_and_lawn_paths_match_zodb() {
        assert_eq!(
            Layout::Bushy.file(0x12c, 0x040d461ffeab9600),
            "0x00/0x00/0x00/0x00/0x00/0x00/0x01/0x2c/0x040d461ffeab9600.blob"
        );
        assert_eq!(Layout::Lawn.file(7, 0x3), "0x07/0x03.blob");
    }

    #[test]
    fn a_directory_without_marker_is_lawn_only_if_it_holds_visible_entries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".hidden")).unwrap();
        assert_eq!(Layout::of_dir(dir.path()).unwrap(), Layout::Bushy);
        std::fs::create_dir(dir.path().join("0x01")).unwrap();
        assert_eq!(Layout::of_dir(dir.path()).unwrap(), Layout::Lawn);
        std::fs::write(dir.path().join(".layout"), "bushy\n").unwrap();
        assert_eq!(Layout::of_dir(dir.path()).unwrap(), Layout::Bushy);
        std::fs::write(dir.path().join(".layout"), "flat").unwrap();
        assert!(Layout::of_dir(dir.path()).is_err());
    }
}
