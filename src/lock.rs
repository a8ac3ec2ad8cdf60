//! The repository lock: one backup at a time per repository.
//!
//! A backup (and `-k`) holds an exclusive `flock` on the repository
//! directory itself for its whole run, so no lock file is ever left behind
//! and a crashed run's lock vanishes with its process. ZODB's repozo takes
//! no lock; it is not excluded by this one.

use std::fs::File;
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// How long a backup waits for another one by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// An exclusive lock on a repository directory, released on drop.
#[derive(Debug)]
pub struct RepoLock {
    _dir: File,
}

impl RepoLock {
    /// Takes the lock on `dir`, waiting up to `wait` for another holder.
    /// Fails with [`Error::Locked`] when the wait runs out.
    pub fn acquire(dir: &str, wait: Duration) -> Result<Self> {
        let file = match File::open(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoRepository(dir.to_string()));
            }
            r => r.at(dir)?,
        };
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(RepoLock { _dir: file }),
                Err(std::fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= wait {
                        return Err(Error::Locked {
                            repo: dir.to_string(),
                            waited: wait.as_secs(),
                        });
                    }
                    crate::interrupt::check()?;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(dir, e)),
            }
        }
    }
}

/// The lock a running ZODB holds on its FileStorage: an exclusive `flock`
/// on `<Data.fs>.lock` (zc.lockfile, which FileStorage takes on open and
/// keeps until close). Holding it keeps a ZODB from opening the file while
/// it is written, and failing to take it means one has it open.
#[derive(Debug)]
pub struct StorageLock {
    _file: File,
}

impl StorageLock {
    /// Takes the lock of the FileStorage `data_fs` without waiting,
    /// creating `<data_fs>.lock` if needed (as zc.lockfile does). Fails with
    /// [`Error::InUse`] if a process holds it.
    pub fn acquire(data_fs: &str) -> Result<Self> {
        let path = format!("{data_fs}.lock");
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .at(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(StorageLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::InUse {
                file: data_fs.to_string(),
                lock: path,
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_repository_times_out() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_str().unwrap();
        let first = RepoLock::acquire(p, Duration::ZERO).unwrap();
        let err = RepoLock::acquire(p, Duration::from_millis(150)).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        drop(first);
        RepoLock::acquire(p, Duration::ZERO).unwrap();
    }

    #[test]
    fn a_storage_lock_held_elsewhere_means_the_file_is_in_use() {
        let d = tempfile::tempdir().unwrap();
        let fs = d.path().join("Data.fs");
        let fs = fs.to_str().unwrap();
        let first = StorageLock::acquire(fs).unwrap();
        let err = StorageLock::acquire(fs).unwrap_err();
        assert!(matches!(err, Error::InUse { .. }), "{err}");
        assert_eq!(err.exit_code(), crate::error::EXIT_LOCKED);
        drop(first);
        StorageLock::acquire(fs).unwrap();
    }
}
