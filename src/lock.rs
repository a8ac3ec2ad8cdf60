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
        let file = File::open(dir).at(dir)?;
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
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(dir, e)),
            }
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
}
