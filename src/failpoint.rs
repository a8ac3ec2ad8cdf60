//! Test-only crash injection.
//!
//! When the environment variable `REPOZO_FAILPOINT` names a step, the
//! process aborts (SIGABRT, no cleanup, as if the machine had crashed or
//! the process had been killed) when it reaches that step. The fault
//! injection tests use it to prove that every step leaves a repository that
//! recovers and that the next backup continues. Never set it in production.

/// The environment variable naming the step to crash at.
pub const VAR: &str = "REPOZO_FAILPOINT";

/// Aborts the process if `REPOZO_FAILPOINT` equals `step`.
pub fn hit(step: &str) {
    if std::env::var_os(VAR).is_some_and(|v| v == step) {
        std::process::abort();
    }
}
