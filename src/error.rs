//! The library's error type.
//!
//! Messages are part of the drop-in contract: where ZODB's repozo reports a
//! condition with a message (an `OSError`, "Cannot overwrite existing file",
//! "No files in repository", a verification failure), [`Error`]'s `Display`
//! is that message, word for word. Where repozo dies with a traceback
//! (a corrupt Data.fs, an unparsable `.dat`), the message names the file and
//! the byte offset or line and says what to do instead.

use std::io;
use std::path::{Path, PathBuf};

/// Exit code of a backup that gave up waiting for the repository lock, or
/// of an incremental recover whose output a ZODB has open.
pub const EXIT_LOCKED: u8 = 11;

/// Exit code when the repository directory does not exist.
pub const EXIT_NO_REPOSITORY: u8 = 10;

/// Exit code of `-V --max-age` when the verified repository's newest
/// backup is older than the limit, or there is none (the front end's
/// check; no [`Error`] has it). 12 is left free: restic uses it for a
/// wrong password.
pub const EXIT_STALE: u8 = 13;

/// Exit code when the process was interrupted (SIGINT; 128 + 2).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Exit code when a backup (or restore) is written but some blob files it
/// needed could not be found (restic's "some source data unreadable").
pub const EXIT_BLOBS_MISSING: u8 = 3;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Data.fs that is not a FileStorage, or whose records are inconsistent.
///
/// Always names the file and the byte offset of the record at fault.
/// Raised by [`crate::fs`], defined here so that the error type needs
/// nothing above it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: byte {pos}: {what}. {hint}")]
pub struct FormatError {
    /// The Data.fs as given on the command line.
    pub path: String,
    /// Offset of the offending record or field.
    pub pos: u64,
    /// What is wrong, in ZODB's terms.
    pub what: String,
    /// What the operator can do about it.
    pub hint: &'static str,
}

/// Everything that can make an operation fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error on `path`; printed as Python prints an
    /// `OSError` (`[Errno 2] No such file or directory: 'path'`).
    #[error("{}", python_os_error(.source, .path))]
    Io {
        /// The file or directory the failed call was about.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An operating-system error reading `path` at byte `pos`, printed as
    /// [`Error::Io`] followed by the offset.
    #[error("{} (reading at byte {pos})", python_os_error(.source, .path))]
    IoAt {
        /// The file that was being read.
        path: PathBuf,
        /// Offset of the read that failed.
        pos: u64,
        /// The underlying error.
        source: io::Error,
    },
    /// The Data.fs is not a FileStorage or is structurally corrupt.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A backup would replace an existing repository file.
    #[error("Cannot overwrite existing file: {0}")]
    WouldOverwrite(String),
    /// Recover or verify found no backup to work from.
    #[error("{0}")]
    NoFiles(String),
    /// A repository file does not match what its `.dat` records, or a
    /// stored blob what its manifest records, in a way the variants below
    /// do not name (a gzip file that cannot be read, a structural problem
    /// found by `--deep`, a blob missing from the store or damaged).
    #[error("{0}")]
    Verification(String),
    /// A chain file whose uncompressed size is not the one its `.dat`
    /// line records (repozo's message; `note` is `""` or
    /// `" (when uncompressed)"`).
    #[error("{path} is {size} bytes{note}, should be {want} bytes")]
    SizeMismatch {
        /// The file as repozo names it (`<repository>/<name>`).
        path: String,
        /// Its size.
        size: u64,
        /// The size its `.dat` line records.
        want: u64,
        /// Said after the size: `""` or `" (when uncompressed)"`.
        note: &'static str,
    },
    /// A chain file whose md5 is not the one its `.dat` line records
    /// (repozo's message; `note` as in [`Error::SizeMismatch`]).
    #[error("{path} has checksum {got}{note} instead of {want}")]
    ChecksumMismatch {
        /// The file as repozo names it.
        path: String,
        /// Its md5, hex.
        got: String,
        /// The md5 its `.dat` line records.
        want: String,
        /// Said after the checksum: `""` or `" (when uncompressed)"`.
        note: &'static str,
    },
    /// A chain file whose bytes, as recovered, did not match the BLAKE3 of
    /// its sidecar, while a second read matched its `.dat` md5: the bytes
    /// written cannot be vouched for. A recover to a file starts again
    /// with md5 by itself; standard output cannot be taken back.
    #[error(
        "{path}: the bytes recovered do not match the BLAKE3 of its sidecar, but a second read \
         matches its .dat md5; nothing can vouch for what was written. Recover again with --md5"
    )]
    SidecarConflict {
        /// The file as repozo names it.
        path: String,
    },
    /// A chain file that recover would use but the chain's `.dat` does not
    /// list, so nothing recorded what it should hold.
    #[error("{path} {verb} {dat}; {hint}")]
    NotListed {
        /// The file.
        path: String,
        /// `"is not listed in"`, or how verify says it.
        verb: &'static str,
        /// The `.dat` file.
        dat: String,
        /// What to do.
        hint: String,
    },
    /// A checked recover found no `.dat` to check the chain's files
    /// against.
    #[error(
        "{0} is missing, so the backup files cannot be checked; recover with \
         --no-verify to restore them unchecked"
    )]
    DatMissing(String),
    /// The chain's `.dat` ranges leave a gap between two files, or make
    /// them overlap, so concatenating the files is not the Data.fs.
    #[error("{0}")]
    Coverage(String),
    /// A `-D` value that is not `yyyy-mm-dd[-hh[-mm[-ss]]]`.
    #[error(
        "-D {0:?} is not a date: use yyyy-mm-dd[-hh[-mm[-ss]]] in UTC, \
         e.g. 2026-11-26 or 2026-11-26-03-00-00"
    )]
    BadDate(String),
    /// A `.dat` line could not be parsed.
    #[error(
        "{path}: line {line}: {what}; the .dat file is damaged: restore it from a copy, \
         or make a full backup (-F) to start a new chain"
    )]
    Dat {
        /// The `.dat` file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        what: String,
    },
    /// The repository directory does not exist.
    #[error(
        "repository {0} does not exist: check -r, or create the directory first \
         (mkdir -p {0}); repozo never creates it"
    )]
    NoRepository(String),
    /// SIGINT or SIGTERM arrived; the operation stopped cleanly.
    #[error(
        "interrupted: stopped cleanly and removed its temporary files. A backup records no \
         file it had not finished; a recover keeps the old output unless the new one was \
         already in place; --incremental leaves the output at a backup-file boundary, from \
         which the next run continues"
    )]
    Interrupted,
    /// Another backup holds the repository lock.
    #[error(
        "repository {repo} is locked by another backup (waited {waited} s); try again when it \
         has finished (the lock is released when that process ends, so there is nothing to clean up)"
    )]
    Locked {
        /// The repository directory.
        repo: String,
        /// Seconds waited.
        waited: u64,
    },
    /// A process (a running ZODB) holds the FileStorage lock of a file to
    /// be written.
    #[error(
        "{file} is in use: {lock} is locked by a running ZODB (or another recover); stop it, \
         or recover into another file. Nothing was changed"
    )]
    InUse {
        /// The Data.fs.
        file: String,
        /// Its lock file.
        lock: String,
    },
    /// An incremental recover with `--no-fallback` found that the output
    /// cannot be continued.
    #[error(
        "{file}: cannot recover incrementally: {why}; run without --no-fallback to recover in full"
    )]
    CannotContinue {
        /// The output Data.fs.
        file: String,
        /// Why (the reason a full recover would be made).
        why: String,
    },
    /// The system could not start a worker thread (out of memory or of
    /// processes).
    #[error(
        "cannot start a worker thread ({0}): the system is out of memory or of processes; \
         free some and run it again"
    )]
    Thread(#[source] io::Error),
    /// The source changed while it was being read: the Data.fs was
    /// truncated or replaced (packed) during a backup, or a blob file
    /// changed; or the Data.fs given is empty, so holds no FileStorage.
    #[error("{0}")]
    Source(String),
    /// Options that cannot be used as given: one that needs another
    /// (`--blob-dir` without `-o`), or a path that names the wrong kind of
    /// file (a `--blob-dir` that is not a directory). Nothing was written.
    #[error("{0}")]
    Config(String),
    /// A repository or blob directory laid out so that the operation
    /// cannot go on: an unknown blob layout, a blob directory of another
    /// layout than the backups', a backup file dated so late that no later
    /// name exists.
    #[error("{0}")]
    Layout(String),
    /// The backup succeeded but the retention rules applied after it
    /// (`--keep-*` with `-B`) failed; exit code 1 whatever the cause.
    #[error("the backup succeeded, but applying the retention rules failed: {0}")]
    Retention(#[source] Box<Error>),
    /// A file a pack delta is based on is not in the repository (deleted
    /// by hand, or by a tool that does not know pack deltas), so the
    /// states of the delta's chain cannot be rebuilt.
    #[error(
        "{base} is missing, but the pack delta {delta} is based on it, so no state of that \
         chain can be rebuilt. Put the file back from a copy, restore an earlier date (-D) \
         whose chain is complete, or make a full backup (-B -F) to start a new chain"
    )]
    PackDeltaBaseMissing {
        /// The missing file (its path, the repository as given joined
        /// with its name).
        base: String,
        /// The pack delta (its path).
        delta: String,
    },
    /// A broken internal invariant (a bug): says which.
    #[error("{0}")]
    Internal(String),

    /// A request to an object store failed, or a repository URL is not
    /// usable; `url` names the bucket and key (`s3://bucket/prefix/name`),
    /// `message` what was asked and what the server answered.
    #[error("{url}: {message}")]
    Remote {
        /// `s3://bucket/key` (or the repository URL).
        url: String,
        /// The request and the server's message.
        message: String,
    },
    /// A compare-and-swap write found the object changed since it was read
    /// (or gone): another process wrote the repository meanwhile.
    #[error(
        "{0} was changed by another process since this run read it; nothing was committed. \
         Check that no other backup writes this repository without the lock, then run again"
    )]
    Changed(String),
    /// Another process holds an object-store repository's lock (exit code
    /// [`EXIT_LOCKED`]).
    #[error(
        "repository {repo} is locked by {owner} (waited {waited} s); try again when it has \
         finished. A lock whose owner died is taken over once it expires, or at once from \
         the same host"
    )]
    LockedBy {
        /// The repository URL.
        repo: String,
        /// Who holds it: user@host, pid, since when, lease end.
        owner: String,
        /// Seconds waited.
        waited: u64,
    },
    /// This run's object-store lock lease was lost (it could not be
    /// renewed in time, or another process took it over); the run stops
    /// before its commit point (exit code [`EXIT_LOCKED`]).
    #[error(
        "lost the lock of repository {repo}: {why}; stopped before committing anything, \
         run it again"
    )]
    LockLost {
        /// The repository URL.
        repo: String,
        /// What happened.
        why: String,
    },
    /// An object store that does not honour conditional writes
    /// (`If-None-Match: *`, `If-Match`), found by the probe on first use.
    #[error(
        "{url}: the server does not honour conditional writes ({why}), so a lock and the \
         create-only and compare-and-swap writes that keep a repository consistent cannot \
         work; refused. Use a server that honours them, such as AWS S3 (since 2024), a \
         recent MinIO, or moto"
    )]
    NoConditionalWrites {
        /// The repository URL.
        url: String,
        /// Which check failed.
        why: String,
    },

    /// A blob manifest (`<stamp>.blobs`) that cannot be read as one.
    #[error(
        "{path}: line {line}: {what}; the blob manifest is damaged: a new full backup with \
         --blob-dir (-F) writes a complete one"
    )]
    Manifest {
        /// The manifest.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: String,
    },

    /// The Data.fs backup and its manifest are written, but blob files the
    /// backed-up records name were found neither in the blob directory nor
    /// in `<blob dir>.old` (exit code [`EXIT_BLOBS_MISSING`]); a restore
    /// meets the same holes.
    #[error(
        "{count} blob file(s) named by the backed-up transactions were found neither in {dir} \
         nor in {dir}.old (first: {first}); they are recorded as missing in {manifest}. The \
         Data.fs backup is complete; the next backup will be a full one"
    )]
    BlobsMissing {
        /// How many.
        count: usize,
        /// The blob directory.
        dir: String,
        /// The first missing file.
        first: String,
        /// The manifest recording them.
        manifest: String,
    },

    /// A restore is in place, but the manifests record blob files that
    /// were missing when they were backed up (exit code
    /// [`EXIT_BLOBS_MISSING`]).
    #[error(
        "restored, without {count} blob file(s) the backups recorded as missing (first: \
         {first}); objects using them cannot be loaded. An earlier date (-D) may have them"
    )]
    BlobsNotRestored {
        /// How many.
        count: usize,
        /// The first, relative to the blob directory.
        first: String,
    },
}

impl Error {
    /// The process exit code for this error: 1, as repozo uses for every
    /// error, except [`Error::Locked`], [`Error::LockedBy`],
    /// [`Error::LockLost`] and [`Error::InUse`] ([`EXIT_LOCKED`]),
    /// [`Error::NoRepository`] ([`EXIT_NO_REPOSITORY`]) and
    /// [`Error::Interrupted`] ([`EXIT_INTERRUPTED`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Locked { .. }
            | Error::LockedBy { .. }
            | Error::LockLost { .. }
            | Error::InUse { .. } => EXIT_LOCKED,
            Error::NoRepository(_) => EXIT_NO_REPOSITORY,
            Error::Interrupted => EXIT_INTERRUPTED,
            Error::BlobsMissing { .. } | Error::BlobsNotRestored { .. } => EXIT_BLOBS_MISSING,
            _ => 1,
        }
    }

    /// Adds the offset that was being read to an [`Error::Io`]; other
    /// errors are returned unchanged.
    pub fn with_pos(self, pos: u64) -> Self {
        match self {
            Error::Io { path, source } => Error::IoAt { path, pos, source },
            e => e,
        }
    }

    /// Wraps an I/O error with the path it concerns. An I/O error that
    /// carries one of ours (a reader of several files passes on the
    /// error of the file it could not open as `io::Error::other`) is that
    /// error: it already names its file.
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> Self {
        match carried(source) {
            Ok(e) => e,
            Err(source) => Error::Io {
                path: path.as_ref().to_path_buf(),
                source,
            },
        }
    }
}

/// The [`Error`] an `io::Error` carries, or the `io::Error` itself.
fn carried(source: io::Error) -> std::result::Result<Error, io::Error> {
    if !source.get_ref().is_some_and(|e| e.is::<Error>()) {
        return Err(source);
    }
    match source.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(e)) => Ok(*e),
        // Checked just above; keep the message if it ever happens.
        Some(Err(inner)) => Err(io::Error::other(inner)),
        None => Err(io::Error::other("an I/O error without its cause")),
    }
}

/// Extension to attach a path to `io::Result`s.
pub(crate) trait IoContext<T> {
    /// Converts the error into [`Error::Io`] naming `path`.
    fn at(self, path: impl AsRef<Path>) -> Result<T>;

    /// Converts the error into [`Error::IoAt`] naming `path` and the
    /// offset `pos` that was being read.
    fn at_byte(self, path: impl AsRef<Path>, pos: u64) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }

    fn at_byte(self, path: impl AsRef<Path>, pos: u64) -> Result<T> {
        self.map_err(|source| match carried(source) {
            Ok(e) => e,
            Err(source) => Error::IoAt {
                path: path.as_ref().to_path_buf(),
                pos,
                source,
            },
        })
    }
}

/// Formats an I/O error the way Python's `str(OSError)` does:
/// `[Errno N] strerror: 'path'`. Errors without an OS code fall back to
/// `message: 'path'`.
fn python_os_error(err: &io::Error, path: &Path) -> String {
    let quoted = python_repr(&path.to_string_lossy());
    match err.raw_os_error() {
        Some(code) => {
            let text = err.to_string();
            let strerror = text
                .strip_suffix(&format!(" (os error {code})"))
                .unwrap_or(&text);
            format!("[Errno {code}] {strerror}: {quoted}")
        }
        None => format!("{err}: {quoted}"),
    }
}

/// Python's `repr()` of a plain string: single quotes unless the text holds
/// a single quote and no double quote.
fn python_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_print_like_python_oserror() {
        let e = Error::io("nonexist", io::Error::from_raw_os_error(2));
        assert_eq!(
            e.to_string(),
            "[Errno 2] No such file or directory: 'nonexist'"
        );
    }

    #[test]
    fn configuration_layout_and_internal_errors_print_their_message_and_exit_1() {
        for e in [
            Error::Config("--blob-dir needs -o/--output".into()),
            Error::Layout("x: unknown blob layout".into()),
            Error::Internal("a blob worker stopped early".into()),
        ] {
            let text = e.to_string();
            assert!(!text.is_empty() && !text.contains("Config"), "{text}");
            assert_eq!(e.exit_code(), 1, "{text}");
        }
    }

    #[test]
    fn a_failed_retention_after_a_backup_says_the_backup_succeeded_and_exits_1_whatever_the_cause()
    {
        let e = Error::Retention(Box::new(Error::Interrupted));
        assert!(
            e.to_string().starts_with(
                "the backup succeeded, but applying the retention rules failed: interrupted:"
            ),
            "{e}"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn typed_mismatches_print_repozos_messages() {
        let size = Error::SizeMismatch {
            path: "repo/a.fs".into(),
            size: 3,
            want: 4,
            note: "",
        };
        assert_eq!(size.to_string(), "repo/a.fs is 3 bytes, should be 4 bytes");
        let sum = Error::ChecksumMismatch {
            path: "repo/a.fsz".into(),
            got: "ab".into(),
            want: "cd".into(),
            note: " (when uncompressed)",
        };
        assert_eq!(
            sum.to_string(),
            "repo/a.fsz has checksum ab (when uncompressed) instead of cd"
        );
        let dat = Error::DatMissing("repo/a.dat".into());
        assert_eq!(
            dat.to_string(),
            "repo/a.dat is missing, so the backup files cannot be checked; recover with \
             --no-verify to restore them unchecked"
        );
    }

    #[test]
    fn an_error_passed_through_a_reader_comes_out_as_itself() {
        let inner = Error::PackDeltaBaseMissing {
            base: "repo/a.fs".into(),
            delta: "repo/b.fsz".into(),
        };
        let text = inner.to_string();
        let passed = Error::io("repo/c.fsz", io::Error::other(inner));
        assert_eq!(passed.to_string(), text);
        assert!(text.starts_with("repo/a.fs is missing, but the pack delta repo/b.fsz"));
        let at = Err::<(), _>(io::Error::other(Error::Interrupted)).at_byte("x", 3);
        assert!(matches!(at, Err(Error::Interrupted)));
        // Any other I/O error still names the file it was about.
        let plain = Error::io("repo/c.fsz", io::Error::other("boom"));
        assert_eq!(plain.to_string(), "boom: 'repo/c.fsz'");
    }

    #[test]
    fn a_path_with_a_single_quote_is_double_quoted_like_python_repr() {
        assert_eq!(python_repr("it's"), "\"it's\"");
        assert_eq!(python_repr("a\\b"), "'a\\\\b'");
    }
}
