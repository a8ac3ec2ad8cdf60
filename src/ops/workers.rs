//! A pool of worker threads for many small independent jobs (blob files:
//! creating them, or waiting for an object store's round trips, bounds
//! the work, not copying bytes, and those overlap).

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use crate::error::{Error, Result};

/// Runs `work(i, buffer)` for every `i` in `0..n` on up to `workers`
/// threads (each with its own 1 MiB buffer) and returns the results in
/// order of `i`; `done` sees each result on this thread as it arrives
/// (progress). Blob work is many small files: creating them, or waiting
/// for an object store's round trips, not copying bytes, bounds it, and
/// those overlap. Stops at the first error (the others at their next
/// item) and returns it.
pub(super) fn in_parallel<T: Send>(
    n: usize,
    workers: usize,
    work: impl Fn(usize, &mut [u8]) -> Result<T> + Sync,
    mut done: impl FnMut(&T),
) -> Result<Vec<T>> {
    let workers = workers.clamp(1, n.max(1));
    let next = AtomicUsize::new(0);
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<T>)>();
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, work) = (&next, &work);
            std::thread::Builder::new()
                .spawn_scoped(scope, move || {
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let i = next.fetch_add(1, AtomicOrdering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let got = crate::interrupt::check().and_then(|()| work(i, &mut buf));
                        let failed = got.is_err();
                        if tx.send((i, got)).is_err() || failed {
                            break;
                        }
                    }
                })
                .map_err(Error::Thread)?;
        }
        drop(tx);
        let mut first_error = None;
        for (i, got) in rx {
            match got {
                Ok(got) => {
                    done(&got);
                    out[i] = Some(got);
                }
                Err(e) => {
                    // Stop the others at their next item.
                    next.store(n, AtomicOrdering::Relaxed);
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    })?;
    out.into_iter()
        .map(|g| g.ok_or_else(|| Error::Internal("a blob worker stopped early".into())))
        .collect()
}
