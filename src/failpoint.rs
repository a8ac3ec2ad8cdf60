//! Test-only crash injection.
//!
//! When the environment variable `REPOZO_FAILPOINT` names a step, the
//! process aborts (SIGABRT, no cleanup, as if the machine had crashed or
//! the process had been killed) when it reaches that step. `<step>:pause`
//! sleeps three seconds there instead, so a test can change the world
//! (replace the Data.fs) at that exact point. The fault
//! injection tests use it to prove that every step leaves a repository that
//! recovers and that the next backup continues. Never set it in production.

/// The environment variable naming the step to crash at.
pub const VAR: &str = "REPOZO_FAILPOINT";

/// Aborts the process if `REPOZO_FAILPOINT` equals `step`; pauses if it
/// equals `<step>:pause`.
pub fn hit(step: &str) {
    let Some(v) = std::env::var_os(VAR) else {
        return;
    };
    if v == step {
        std::process::abort();
    }
    if v.to_str().and_then(|v| v.strip_suffix(":pause")) == Some(step) {
        std::thread::sleep(std::time::Duration::from_secs(3));
    }
}
