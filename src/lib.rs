//! A drop-in replacement for ZODB's `repozo`: full and incremental backups
//! of a FileStorage `Data.fs` into a repository directory, recovery of the
//! state as of any date, and verification — with the same command line,
//! messages, exit codes and repository files as ZODB 6.4's repozo, so that
//! either tool reads what the other wrote.
//!
//! Layers, each depending only on those below it:
//!
//! * [`ops`] — the operations: [`ops::backup`], [`ops::recover`],
//!   [`ops::verify`], [`ops::list()`] and [`ops::retain()`] (retention by
//!   name). They never print; they report [`Event`]s through a [`Report`]
//!   and return data (a listing, a retention plan) for the front end to
//!   format.
//! * [`repo`] (names, chain selection, `.dat`), [`fs`] (reading a Data.fs up
//!   to its last committed transaction), [`index`] (the `.index` pickle).
//! * [`mod@io`] — checksummed copies, gzip, atomic file creation.
//!
//! The command-line front end (`src/main.rs`, [`cli`]) parses repozo's
//! arguments with Python getopt semantics and prints events as repozo's
//! `-v` lines.
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

pub use clock::{Clock, FixedClock, Stamp, SystemClock};
pub use error::{Error, Result};
pub use report::{Event, Phase, Progress, Report, Silent};
