//! Stopping cleanly on SIGINT (Ctrl-C) and SIGTERM.
//!
//! The front end calls [`install`]; from then on the signals only set a
//! flag, and the long loops (every chunk copied or hashed, the lock wait)
//! call [`check`], which turns it into [`Error::Interrupted`]. The error
//! unwinds like any other: temporary files are removed, nothing half-made
//! is renamed into place or recorded, and the process exits with 130.
//! Hand-written rather than a crate: an atomic store is all a handler may
//! safely do, and `libc` is already a dependency.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Routes SIGINT and SIGTERM to the flag [`check`] reads. Without it (a
/// library user's process) those signals keep their default action.
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` only stores to an atomic, which is
        // async-signal-safe; the struct is zeroed then filled as sigaction
        // expects. SA_RESTART keeps interrupted system calls going: the
        // loops notice the flag at their next check.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Whether SIGINT or SIGTERM has arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// `e`, or [`Error::Interrupted`] if a signal has arrived (whatever failed
/// then failed because of it: a read cut short, a copy stopped).
pub fn or(e: Error) -> Error {
    if interrupted() { Error::Interrupted } else { e }
}

/// [`Error::Interrupted`] once a signal has arrived.
pub fn check() -> Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}
