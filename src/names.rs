//! Repository file names: what repozo calls a data file, the `.dat`,
//! `.index` and `.blobs` beside it, our temporary files, and the path
//! arithmetic repozo does with them (Python's `os.path.join`, `splitext`,
//! `basename`).
//!
//! A backup at stamp `T` (UTC, `YYYY-MM-DD-HH-MM-SS`) writes `T.fs` (full),
//! `T.fsz` (full, gzip), `T.deltafs` or `T.deltafsz` (incremental), plus
//! `T.index`; a full one also starts `T.dat`, to which later incrementals of
//! its chain append, a backup with blobs writes `T.blobs`, and every data
//! file we write has its fast-hash sidecar `T.blake3`. Only names
//! matching repozo's pattern `\d{4}(-\d\d){5}\.(delta)?fsz?` are data files;
//! everything else in a repository is ignored by every operation.
//!
//! This module is at the bottom of the crate: pure functions of strings,
//! used by the storage backends, the chain reader and the operations alike.

use crate::clock::Stamp;

/// True if and only if `name` is one of our temporary files:
/// `<stamp>.<ext>.tmp-<pid>-<n>`.
pub fn is_leftover(name: &str) -> bool {
    let Some((head, tail)) = name.rsplit_once(".tmp-") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let tail_ok = tail
        .split_once('-')
        .is_some_and(|(a, b)| digits(a) && digits(b));
    let stamp_ok = head.len() > 20
        && head.as_bytes()[19] == b'.'
        && head.get(..19).and_then(Stamp::parse).is_some();
    tail_ok && stamp_ok
}

/// True if `name` starts with repozo's stamp pattern `\d{4}(-\d\d){5}`
/// (digits and dashes only; the calendar is not checked, as repozo does
/// not check it).
fn has_stamp_pattern(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 19
        && b[..19].iter().enumerate().all(|(i, &c)| match i {
            4 | 7 | 10 | 13 | 16 => c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// True if and only if `name` is a repozo data file name (repozo's
/// `is_data_file`).
pub fn is_data_file(name: &str) -> bool {
    has_stamp_pattern(name) && matches!(&name[19..], ".fs" | ".fsz" | ".deltafs" | ".deltafsz")
}

/// True if and only if `name` is a `.dat` or `.index` file as repozo names
/// them (`<stamp>.dat`, `<stamp>.index`), our blob manifest
/// `<stamp>.blobs` ([`crate::blob::manifest`]) or our fast-hash sidecar
/// `<stamp>.blake3` ([`crate::repo::sidecar`]).
pub fn is_meta_file(name: &str) -> bool {
    has_stamp_pattern(name) && matches!(&name[19..], ".dat" | ".index" | ".blobs" | ".blake3")
}

/// The last component of a path (`a/b/2026-01-02-00-00-00.fs` gives the
/// file name), as Python's `os.path.basename`.
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The stamp part (`YYYY-MM-DD-HH-MM-SS`) of a data, `.dat` or `.index`
/// file name.
pub fn stamp_of(name: &str) -> &str {
    name.get(..19).unwrap_or(name)
}

/// True if and only if repozo would gunzip this repository file: its name
/// ends with `fsz` (`.fsz`, `.deltafsz`).
pub fn is_gzip_name(name: &str) -> bool {
    name.ends_with("fsz")
}

/// True if and only if `path` names a full backup (`.fs` or `.fsz`).
pub fn is_full(path: &str) -> bool {
    matches!(split_ext(path).1, ".fs" | ".fsz")
}

/// Python's `os.path.splitext` for the names and paths repozo handles:
/// `(root, ext)` split at the last dot of the last path component.
pub fn split_ext(path: &str) -> (&str, &str) {
    let base_start = path.rfind('/').map_or(0, |i| i + 1);
    let base = &path[base_start..];
    let lead = base.len() - base.trim_start_matches('.').len();
    match base[lead..].rfind('.') {
        Some(i) => path.split_at(base_start + lead + i),
        None => (path, ""),
    }
}

/// `root` of a data file path with another extension (e.g. `.dat`).
pub fn with_ext(path: &str, ext: &str) -> String {
    format!("{}{ext}", split_ext(path).0)
}

/// Python's `os.path.join(dir, name)` for a relative `name`.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() || dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The extension of a new data file: full or incremental, gzip or not.
pub fn data_ext(full: bool, gzip: bool) -> &'static str {
    match (full, gzip) {
        (true, false) => ".fs",
        (true, true) => ".fsz",
        (false, false) => ".deltafs",
        (false, true) => ".deltafsz",
    }
}

/// `<stamp>.dat`: the chain's list of files, started by its full backup.
pub fn dat_name(stamp: &str) -> String {
    format!("{stamp}.dat")
}

/// `<stamp>.index`: the FileStorage index as of the backup at `stamp`.
pub fn index_name(stamp: &str) -> String {
    format!("{stamp}.index")
}

/// `<stamp>.blobs`: the blob manifest of the backup at `stamp`.
pub fn blobs_name(stamp: &str) -> String {
    format!("{stamp}.blobs")
}

/// `<stamp>.blake3`: the fast-hash sidecar of the data file of `stamp`
/// ([`crate::repo::sidecar`]).
pub fn sidecar_name(stamp: &str) -> String {
    format!("{stamp}.blake3")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stamped_backup_names_are_data_files() {
        assert!(is_data_file("2026-11-26-02-10-03.fs"));
        assert!(is_data_file("2026-11-26-02-10-03.deltafsz"));
        assert!(!is_data_file("2026-11-26-02-10-03.dat"));
        assert!(!is_data_file("2026-11-26-02-10-03.fs.tmp-1-0"));
        assert!(!is_data_file("2026-11-26-02-1x-03.fs"));
        assert!(!is_data_file("tmp.tmp"));
    }

    #[test]
    fn only_our_temporary_files_count_as_leftovers() {
        assert!(is_leftover("2026-11-26-02-10-03.fs.tmp-123-0"));
        assert!(is_leftover("2026-11-26-02-10-03.index.tmp-1-22"));
        assert!(!is_leftover("tmp.tmp"));
        assert!(!is_leftover("2026-11-26-02-10-03.fs"));
        assert!(!is_leftover("notes.tmp-1-2"));
        assert!(!is_leftover("aaaaaaaaaaaaaaaaaaéxx.tmp-1-2"));
        assert!(!is_leftover("2026-11-26-02-10-0é.fs.tmp-1-2"));
    }

    #[test]
    fn paths_split_and_join_like_python() {
        assert_eq!(
            split_ext("r/2026-01-01-00-00-00.fs"),
            ("r/2026-01-01-00-00-00", ".fs")
        );
        assert_eq!(split_ext("a.b/c"), ("a.b/c", ""));
        assert_eq!(split_ext(".hidden"), (".hidden", ""));
        assert_eq!(join("r/", "x"), "r/x");
        assert_eq!(join("r", "x"), "r/x");
        assert_eq!(join("", "x"), "x");
    }
}
