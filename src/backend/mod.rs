//! Where a repository's files live: a local directory ([`local`]) or an
//! object store speaking the S3 API ([`s3`], cargo feature `s3`).
//!
//! [`Backend`] is the narrow, synchronous interface every repository is
//! read and written through; [`crate::repo::Repository`] always holds one.
//! Names are the repository's file names (`2026-01-02-03-04-05.fsz`,
//! `….dat`, `….index`, `….blobs`, see [`crate::names`]) and, for the blob
//! store, paths under it (`blobs/objects/ab/<hash>`, see [`objects`]),
//! always with `/` separators; the S3 backend stores each under
//! `<prefix>/<name>`, so a prefix synced down to a directory is a
//! repository ZODB's repozo reads.
//!
//! What replaces temporary file + fsync + rename:
//!
//! * small files ([`Backend::put_if_absent`]): created only if absent
//!   (local: temporary file, fsync, `link`, directory fsync; S3:
//!   `If-None-Match: *`);
//! * data files ([`Backend::create`]): a streaming [`Upload`] that appears
//!   under its name only at [`Upload::commit`] (local: [`AtomicFile`] with
//!   `O_DIRECT` where it pays; S3: a multipart upload, aborted when dropped
//!   uncommitted);
//! * whole small files that may replace an older one
//!   ([`Backend::write_whole`]) and the `.dat` append
//!   ([`Backend::append`]): by default a compare-and-swap rewrite
//!   ([`Backend::read_versioned`] + [`Backend::replace`]), which on S3 is
//!   the backup's commit point; a directory overrides both with a
//!   temporary file + rename and repozo's own synced append;
//! * content-addressed objects ([`Backend::object_writer`], [`objects`]).
//!
//! [`Backend::lock`] excludes other writers (local: `flock` on the
//! directory; S3: a leased lock object), and every writing operation should
//! call [`Held::check`] just before its commit point.
//!
//! Where a directory can do better than the object-store protocol
//! (`copy_file_range`, batched `syncfs`, a `stat` instead of a listing), the
//! trait has a method with the object-store behaviour as its default, which
//! [`Local`] overrides: callers never ask which kind of backend they hold.
//!
//! [`AtomicFile`]: crate::io::AtomicFile

pub mod local;
pub mod objects;
#[cfg(feature = "s3")]
pub mod s3;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::time::Duration;

use crate::error::{Error, Result};

pub use local::Local;
pub use objects::{Hash, ObjectWriter, Stored};

/// One stored object (file): its name relative to the repository and its
/// size in bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// The name, relative to the repository (`/`-separated).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

/// What [`Backend::put_if_absent`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The object was created with the given bytes.
    Created,
    /// An object of that name existed; it was left as it was.
    AlreadyExists,
}

/// The version of an object as read by [`Backend::read_versioned`], to be
/// handed back to [`Backend::replace`]. Opaque: an S3 ETag (and version id),
/// or a local file's identity and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub(crate) tag: String,
    pub(crate) extra: Option<String>,
}

/// A streaming writer of a new object, returned by [`Backend::create`]. The
/// object appears under its name only at [`Upload::commit`]; dropped
/// uncommitted (or after a failed write), nothing appears and whatever was
/// uploaded is discarded.
///
/// `write` errors are `io::Error`s carrying the message; the same failure
/// is returned again, as the crate's [`Error`], by `commit`.
pub trait Upload: Write + Send {
    /// Completes the object; returns its size. Fails with
    /// [`Error::Interrupted`] after a SIGINT or SIGTERM, leaving nothing.
    fn commit(self: Box<Self>) -> Result<u64>;
}

/// A held repository lock, released when dropped.
pub trait Held: Send + std::fmt::Debug {
    /// `Ok` while the lock is still this process's. A leased lock (S3)
    /// that could not be renewed in time, or that another process took
    /// over, fails with [`Error::LockLost`]: the caller must stop before
    /// its commit point.
    fn check(&self) -> Result<()>;
}

/// A repository's storage: the few operations repozo needs, synchronous.
///
/// Implementations are `Send + Sync`; reads may run from several threads.
pub trait Backend: Send + Sync {
    /// The repository as the user wrote it, for messages: `/path/repo` or
    /// `s3://bucket/prefix`.
    fn describe(&self) -> String;

    /// `name` as shown in messages: `/path/repo/name` or
    /// `s3://bucket/prefix/name`.
    fn url(&self, name: &str) -> String;

    /// The objects whose names start with `prefix`, sorted by name. `prefix`
    /// is `""` (the repository itself) or ends in `/` (`blobs/objects/`).
    /// Not `recursive`: only the objects directly in it (the repository's
    /// files; no directory, nothing under `blobs/`). `recursive`: every
    /// object below it. A missing local directory (or empty S3 prefix)
    /// lists nothing, except that a missing local repository is
    /// [`Error::NoRepository`].
    fn list(&self, prefix: &str, recursive: bool) -> Result<Vec<Entry>>;

    /// The names directly in the repository, each with its size where the
    /// listing gives it at no extra cost; what a repository listing is
    /// made of. Default: [`Backend::list`] of `""`. A directory overrides
    /// it to list every name, unstat'ed, as repozo's `os.listdir` does (a
    /// subdirectory named like a backup is then refused when it is read,
    /// as repozo refuses it).
    fn list_names(&self) -> Result<Vec<(String, Option<u64>)>> {
        Ok(self
            .list("", false)?
            .into_iter()
            .map(|e| (e.name, Some(e.size)))
            .collect())
    }

    /// The size of `name`, or `None` if there is no such object.
    fn size(&self, name: &str) -> Result<Option<u64>>;

    /// Whether `name` exists.
    fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.size(name)?.is_some())
    }

    /// Reads `name` as a stream, with bounded memory whatever its size
    /// (S3: one GET whose body is read as it arrives).
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>>;

    /// [`Backend::open`], or `None` if there is no such object (S3: one
    /// request, not a HEAD and a GET).
    fn open_optional(&self, name: &str) -> Result<Option<Box<dyn Read + Send>>> {
        match self.size(name)? {
            None => Ok(None),
            Some(_) => self.open(name).map(Some),
        }
    }

    /// Reads all of `name` (for small objects: `.dat`, manifests).
    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        self.open(name)?
            .read_to_end(&mut data)
            .map_err(|e| Error::Remote {
                url: self.url(name),
                message: format!("reading failed: {e}"),
            })?;
        Ok(data)
    }

    /// Reads `len` bytes of `name` from offset `start`; fewer only where
    /// the object ends first.
    fn read_range(&self, name: &str, start: u64, len: u64) -> Result<Vec<u8>>;

    /// Creates `name` holding `data` unless an object of that name exists,
    /// atomically: of two concurrent callers exactly one gets
    /// [`Put::Created`]. Durable when it returns.
    fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<Put>;

    /// Starts a new object `name` written as a stream. Fails with
    /// [`Error::WouldOverwrite`] if `name` exists now; the caller holds the
    /// lock, which keeps other writers from creating it meanwhile.
    fn create(&self, name: &str) -> Result<Box<dyn Upload>>;

    /// Reads all of `name` with its current [`Version`]; `None` if absent.
    fn read_versioned(&self, name: &str) -> Result<Option<(Vec<u8>, Version)>>;

    /// Replaces `name` with `data` if its version is still `expected`
    /// (compare-and-swap); returns the new version. Fails with
    /// [`Error::Changed`] if it changed or vanished since it was read, and
    /// with [`Error::LockLost`] if this backend's lock was lost. Atomic:
    /// readers see the old or the new content, never a mix.
    fn replace(&self, name: &str, data: &[u8], expected: &Version) -> Result<Version>;

    /// Removes `name`; an absent object is not an error. Returns whether
    /// it was there (an object store that cannot tell says `true`).
    fn delete(&self, name: &str) -> Result<bool>;

    /// Takes the repository lock, waiting up to `wait` for another holder;
    /// fails with [`Error::Locked`] (local) or [`Error::LockedBy`] (S3,
    /// naming the owner) when the wait runs out, both exit code 11.
    fn lock(&self, wait: Duration) -> Result<Box<dyn Held>>;

    /// Checks that the storage honours create-only and compare-and-swap
    /// writes, refusing it with [`Error::NoConditionalWrites`] otherwise.
    /// The S3 backend runs it once, on its first write or lock; calling it
    /// again does nothing. A local directory always passes.
    fn probe(&self) -> Result<()>;

    /// Reads all of `name`; `None` if it does not exist.
    fn read_optional(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(mut r) = self.open_optional(name)? else {
            return Ok(None);
        };
        let mut data = Vec::new();
        r.read_to_end(&mut data).map_err(|e| Error::Remote {
            url: self.url(name),
            message: format!("reading failed: {e}"),
        })?;
        Ok(Some(data))
    }

    /// The size of `name` as a reader finds it on opening it (a directory
    /// opens the file, as repozo's verify does, so one that cannot be
    /// opened is an error); `None` if it does not exist. Default:
    /// [`Backend::size`].
    fn size_opened(&self, name: &str) -> Result<Option<u64>> {
        self.size(name)
    }

    /// The size of `name` itself, as a removal frees it (a directory does
    /// not follow a symbolic link); `None` if it does not exist. Default:
    /// [`Backend::size`].
    fn entry_size(&self, name: &str) -> Result<Option<u64>> {
        self.size(name)
    }

    /// Writes `name` whole, atomically and durably, replacing any object
    /// of that name; `write` produces the bytes. Not stopped by a SIGINT:
    /// it completes what is already in place (the `.dat` and `.index` of
    /// a data file already stored). Default: the bytes are gathered, then
    /// a create-only put, or a compare-and-swap over what is there.
    fn write_whole(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<()> {
        let mut data = Vec::new();
        write(&mut data).map_err(|e| Error::io(self.url(name), e))?;
        loop {
            if self.put_if_absent(name, &data)? == Put::Created {
                return Ok(());
            }
            if let Some((_, version)) = self.read_versioned(name)? {
                self.replace(name, &data, &version)?;
                return Ok(());
            }
        }
    }

    /// Appends `line` to `name` (creating it), durably: a `.dat` line, the
    /// commit point of an incremental backup (`held` is checked just
    /// before). Default: read, then a compare-and-swap write of the whole.
    fn append(&self, name: &str, line: &str, held: &dyn Held) -> Result<()> {
        let (mut data, version) = match self.read_versioned(name)? {
            Some(v) => v,
            None => {
                held.check()?;
                return match self.put_if_absent(name, line.as_bytes())? {
                    Put::Created => Ok(()),
                    Put::AlreadyExists => Err(Error::Changed(self.url(name))),
                };
            }
        };
        data.extend_from_slice(line.as_bytes());
        held.check()?;
        self.replace(name, &data, &version).map(drop)
    }

    /// Makes the removals so far durable. Default: nothing to do (an
    /// object store's deletes are durable when done).
    fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// Removes `name`, a temporary file of ours left by an interrupted run
    /// (`<name>.tmp-<pid>-<n>`, see [`crate::names::is_leftover`]); returns
    /// whether it did. Default: nothing, as an object store's uploads leave
    /// no temporary objects (an object of such a name is not ours).
    fn remove_leftover(&self, name: &str) -> Result<bool> {
        let _ = name;
        Ok(false)
    }

    /// `name` as an open local file, for copies inside the kernel
    /// (`copy_file_range`); `None` where the backend has no local files
    /// (the default).
    fn local_file(&self, name: &str) -> Option<Result<std::fs::File>> {
        let _ = name;
        None
    }

    /// Whether asking for one object's size, or opening it, is a system
    /// call rather than a request (default: `false`, an object store).
    /// Decides whether a caller lists once instead of asking per object,
    /// and whether `-V -Q` opens every blob object.
    fn cheap_metadata(&self) -> bool {
        false
    }

    /// How many objects a caller should write at once: waiting for a
    /// request's round trip (default: 8) or creating files bounds a blob
    /// backup, not copying bytes.
    fn write_parallelism(&self) -> usize {
        8
    }

    /// Whether the backend has directories whose modification times
    /// wrappers read (a directory: `blobs/` is touched on every blob
    /// backup by rewriting `blobs/STATE`); default `false`.
    fn has_directory_times(&self) -> bool {
        false
    }

    /// Starts adding content-addressed objects ([`objects`]). Default:
    /// [`objects::PutEach`]. The caller holds the repository lock.
    fn object_writer(&self) -> Result<Box<dyn ObjectWriter + '_>> {
        Ok(Box::new(objects::PutEach::new(self)))
    }

    /// Removes every content-addressed object not in `keep` (and whatever
    /// an interrupted [`Backend::object_writer`] left); returns (objects,
    /// bytes) removed. The caller holds the repository lock. Default:
    /// [`objects::sweep`].
    fn sweep_objects(&self, keep: &HashSet<Hash>) -> Result<(u64, u64)> {
        objects::sweep(self, keep)
    }
}

/// Whether a `-r` argument names an object-store repository (`s3://…`).
pub fn is_remote(spec: &str) -> bool {
    spec.starts_with("s3://")
}

/// Opens the backend of the repository `spec`: a local directory path, or
/// `s3://BUCKET/PREFIX` (endpoint, region and credentials from the `AWS_*`
/// environment variables and the shared AWS files, `s3::profile`; in a
/// build without the cargo feature `s3`, which the default build has, an
/// error). Nothing is checked or contacted yet.
pub fn open(spec: &str) -> Result<Box<dyn Backend>> {
    if is_remote(spec) {
        #[cfg(feature = "s3")]
        {
            return Ok(Box::new(s3::S3::from_url(spec, &[])?));
        }
        #[cfg(not(feature = "s3"))]
        {
            return Err(Error::Remote {
                url: spec.to_string(),
                message: "this repozo was built without S3 support \
                          (--no-default-features)"
                    .into(),
            });
        }
    }
    Ok(Box::new(Local::new(spec)))
}

/// Splits `s3://bucket/prefix` into bucket and prefix (without leading or
/// trailing `/`; possibly empty).
pub fn parse_s3_url(url: &str) -> Result<(String, String)> {
    let bad = |why: &str| Error::Remote {
        url: url.to_string(),
        message: format!("not a repository URL: {why}; use s3://BUCKET/PREFIX"),
    };
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| bad("it does not start with s3://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("the bucket name is empty"));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|s| s == "." || s == "..")
        || (!prefix.is_empty() && prefix.split('/').any(str::is_empty))
    {
        return Err(bad("the prefix has an empty, '.' or '..' component"));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// A random version-4 UUID (lock owners, probe names), from the system's
/// random source.
#[cfg(any(feature = "s3", test))]
pub(crate) fn uuid() -> String {
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        // No /dev/urandom: time and pid still make clashes unlikely.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b[..8].copy_from_slice(&(t as u64).to_le_bytes());
        b[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::io::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_url_splits_into_bucket_and_prefix() {
        assert_eq!(
            parse_s3_url("s3://b/x/y/").unwrap(),
            ("b".into(), "x/y".into())
        );
        assert_eq!(parse_s3_url("s3://b").unwrap(), ("b".into(), "".into()));
        assert!(parse_s3_url("s3:///x").is_err());
        assert!(parse_s3_url("s3://b/x//y").is_err());
        assert!(parse_s3_url("s3://b/../y").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_repository_url_parses_or_is_an_error_never_a_panic(
            tail in "[a-z0-9./%\\-]{0,40}|\\PC{0,40}"
        ) {
            let url = format!("s3://{tail}");
            if let Ok((bucket, prefix)) = parse_s3_url(&url) {
                proptest::prop_assert!(!bucket.is_empty());
                proptest::prop_assert!(!prefix.split('/').any(|p| p == ".."));
            }
        }
    }

    #[test]
    fn uuids_are_version_4_and_differ() {
        let (a, b) = (uuid(), uuid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[cfg(not(feature = "s3"))]
    #[test]
    fn an_s3_repository_without_the_feature_says_the_build_lacks_it() {
        let err = open("s3://b/p").err().unwrap();
        assert!(err.to_string().contains("without S3 support"), "{err}");
    }

    #[cfg(feature = "s3")]
    #[test]
    fn the_default_build_opens_an_s3_repository_without_contacting_it() {
        let backend = open("s3://b/p").unwrap();
        assert_eq!(backend.describe(), "s3://b/p");
    }
}
