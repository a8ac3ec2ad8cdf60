//! The operations, each a function of its options and a [`Ctx`]:
//! [`backup()`] (and [`backup_and_retain()`]), [`recover()`] (and
//! [`recover_incremental()`]), [`verify()`], [`list()`] and [`retain()`].
//!
//! Operations never print; they report [`Event`](crate::Event)s and return
//! errors whose messages are repozo's where repozo has one.

mod backup;
pub mod blobs;
mod incremental;
pub mod list;
mod meter;
mod output;
mod recover;
pub mod retention;
mod source;
mod verify;
mod workers;

pub use backup::{BackupOptions, BackupOutcome, backup, backup_and_retain};
pub use incremental::{
    FullReason as FullRecoverReason, IncrementalOptions, IncrementalOutcome, recover_incremental,
};
pub use list::{ListOptions, list};
pub use recover::{RecoverOptions, recover};
pub use retention::{RetainOptions, Retention, RetentionOutcome, retain};
pub use verify::{VerifyOptions, verify};

use crate::clock::Clock;
use crate::report::Report;

/// What every operation needs from its caller besides options.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// Source of "now": file names and the default recover/verify date.
    pub clock: &'a dyn Clock,
    /// Where events go.
    pub report: &'a dyn Report,
}
