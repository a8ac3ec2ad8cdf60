//! The operations, each a function of its options and a [`Ctx`]:
//! [`backup()`], [`recover()`] (and [`recover_incremental()`]) and
//! [`verify()`].
//!
//! Operations never print; they report [`Event`](crate::Event)s and return
//! errors whose messages are repozo's where repozo has one.

mod backup;
mod incremental;
mod meter;
mod recover;
mod source;
mod verify;

pub use backup::{BackupOptions, BackupOutcome, backup};
pub use incremental::{
    FullReason as FullRecoverReason, IncrementalOptions, IncrementalOutcome, recover_incremental,
};
pub use recover::{RecoverOptions, recover};
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
