//! A drop-in replacement for ZODB's `repozo`: full and incremental backups
//! of a FileStorage `Data.fs` into a repository directory, recovery of the
//! state as of any date, and verification — with the same command line,
//! messages, exit codes and repository files as ZODB 6.4's repozo, so that
//! either tool reads what the other wrote.
//!
//! Layers, each using only those below it (checked by a unit test,
//! `layers.rs`, from the sources):
//!
//! 1. [`cli`] — repozo's arguments with Python getopt semantics, the help
//!    text, the `--list` table and JSON lines; `src/main.rs` prints
//!    [`Event`]s as repozo's `-v` lines.
//! 2. [`ops`] — the operations: [`ops::backup`], [`ops::recover`],
//!    [`ops::verify`], [`ops::list()`], [`ops::retain()`] and the blob side
//!    of each. They never print; they report [`Event`]s through a
//!    [`Report`] and return data for the front end to format.
//! 3. [`blob`] — blob manifests, ZODB's blob directory layouts, the blob
//!    store over the repository's backend.
//! 4. [`repo`] — a repository over its backend: its listing, chains,
//!    `.dat` files, chain selection and the chain reader; [`fs`] — reading
//!    a Data.fs up to its last committed transaction, and its checks.
//! 5. [`backend`] — where a repository's files live: one [`backend::Backend`]
//!    trait, a local directory and S3; [`index`] — the `.index` pickle.
//! 6. [`mod@io`] — checksummed copies, gzip, atomic files, `O_DIRECT`;
//!    [`lock`] — `flock` on a repository or a Data.fs.
//! 7. [`names`] — repository file names; [`interrupt`] — SIGINT/SIGTERM.
//! 8. [`error`], [`clock`], [`report`] (the events), [`failpoint`].
//!
//! ```no_run
//! use repozo::{SystemClock, Silent, ops};
//! let opts = ops::BackupOptions {
//!     repository: "backups".into(),
//!     file: "var/filestorage/Data.fs".into(),
//!     quick: true,
//!     ..Default::default()
//! };
//! let outcome = ops::backup(&opts, ops::Ctx { clock: &SystemClock, report: &Silent })?;
//! println!("{outcome:?}");
//! # Ok::<(), repozo::Error>(())
//! ```
#![deny(missing_docs)]

pub mod backend;
pub mod blob;
pub mod cli;
pub mod clock;
pub mod error;
pub mod failpoint;
pub mod fs;
pub mod index;
pub mod interrupt;
pub mod io;
pub mod lock;
pub mod names;
pub mod ops;
pub mod repo;
pub mod report;

#[cfg(test)]
mod layers;

pub use clock::{Clock, FixedClock, Stamp, SystemClock};
pub use error::{Error, Result};
pub use report::{Event, Phase, Progress, Report, Silent};
