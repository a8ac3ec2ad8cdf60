//! The integration tests, one test crate so that the suite links once.
//! Each module was a test crate of its own; `common` holds what they
//! share, `synth` the synthetic FileStorages of the never-panic
//! properties. The tests that need the cargo feature `s3` (in the default
//! build; `--no-default-features` leaves it out) are under [`s3`], so
//! that `cargo test --test it -- s3::` runs exactly them.
//!
//! proptest keeps the seeds of failed cases in
//! `tests/proptest-regressions/<module>.txt`: its default persistence
//! walks up from the source file to the directory holding `main.rs`
//! (this one) and writes beside it.

mod common;
mod synth;

mod backend;
mod blobs;
mod cli_parity;
mod crash;
mod deep_verify;
mod getopt_vs_python;
mod incremental_recover;
mod interop;
mod list_and_retention;
mod long_chain;
mod metrics;
mod never_panic;
mod never_panic_bin;
mod operator_ux;
mod pack_delta;
mod pack_delta_retention;
mod pack_delta_standby;
mod permissions;
#[cfg(feature = "s3")]
mod s3;
mod safety;
mod sidecar;
mod storage_compat;
mod wrappers;
