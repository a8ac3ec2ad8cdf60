//! Test-only crash injection, compiled into debug builds only.
//!
//! When the environment variable `REPOZO_FAILPOINT` names a step, the
//! process aborts (SIGABRT, no cleanup, as if the machine had crashed or
//! the process had been killed) when it reaches that step. With
//! `<step>:pause` it stops there instead: it writes the line
//! `failpoint <step> reached` to standard error and waits until a line
//! (or end of file) arrives on standard input, so a test can change the
//! world (replace the Data.fs) at that exact point and then let it go on.
//! The fault injection tests use this to prove that every step leaves a
//! repository that recovers and that the next backup continues.
//!
//! Release builds (`cargo build --release`, `cargo install`: what operators
//! run) contain no failpoints at all: [`hit`] is empty there, so a stray
//! `REPOZO_FAILPOINT` in an operator's environment cannot abort a real
//! backup. `cargo test` builds the debug profile, where they are active.

/// The environment variable naming the step to crash or pause at.
pub const VAR: &str = "REPOZO_FAILPOINT";

/// Whether this build honours [`VAR`] (debug builds only).
pub const ENABLED: bool = cfg!(debug_assertions);

/// In debug builds: aborts the process if `REPOZO_FAILPOINT` equals
/// `step`; pauses (see the module doc) if it equals `<step>:pause`.
/// In release builds: nothing.
pub fn hit(step: &str) {
    if !ENABLED {
        return;
    }
    let Some(v) = std::env::var_os(VAR) else {
        return;
    };
    if v == step {
        std::process::abort();
    }
    if v.to_str().and_then(|v| v.strip_suffix(":pause")) == Some(step) {
        use std::io::{BufRead, Write};
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "failpoint {step} reached");
        let _ = err.flush();
        drop(err);
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    }
}
