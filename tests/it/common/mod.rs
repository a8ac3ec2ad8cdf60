//! Helpers shared by the integration tests: our binary, the reference
//! repozo (ZODB 6.4 in the project's venv, provisioned on first use — a
//! missing Python or ZODB fails the test loudly, never skips it), and
//! fixture handling.

pub mod blobsite;
pub mod py;
#[cfg(feature = "s3")]
pub mod s3;
pub mod zodb;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Our `repozo` binary, started with `argv[0] = "repozo"` so its help text
/// names the program as the reference shim's does.
pub fn ours() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_repozo"));
    c.arg0("repozo");
    c.env_remove("REPOZO_TEST_NOW");
    c
}

/// ZODB 6.4's repozo (through `tests/py/repozo_shim.py`, which only pins
/// the clock when `REPOZO_TEST_NOW` is set).
pub fn theirs() -> Command {
    let mut c = py::reference_repozo();
    c.env_remove("REPOZO_TEST_NOW");
    c
}

/// Runs a command to completion.
pub fn run(mut c: Command) -> Output {
    c.output().expect("the command could not be started")
}

/// Copies a committed fixture from `tests/data` into `dir`, with its
/// `.index` if it has one; returns the copied Data.fs path.
pub fn fixture(name: &str, dir: &Path) -> PathBuf {
    let src = py::data_dir().join(name);
    let dst = dir.join(name);
    std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    let idx = py::data_dir().join(format!("{name}.index"));
    if idx.exists() {
        std::fs::copy(&idx, dir.join(format!("{name}.index"))).unwrap();
    }
    dst
}

/// Sorted names of the files in `dir`.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success, printing stderr otherwise.
pub fn ok(o: Output) -> Output {
    assert!(o.status.success(), "command failed: {}", stderr(&o));
    o
}

/// xorshift64*: a small seeded generator, the same sequence on every
/// platform, for reproducible random histories.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        (self.next() >> 11) % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// `YYYY-MM-DD-HH-MM-SS` (UTC) of a Unix time, as repozo names files.
pub fn stamp_of(secs: u64) -> String {
    repozo::Stamp::from_unix(secs).to_string()
}

/// A fresh stamp for every call in this test process, counting up from
/// `base` (Unix seconds) ten seconds at a time, so tests pin the clock of
/// each run (`REPOZO_TEST_NOW`) and never sleep.
pub fn next_stamp_from(base: u64) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    stamp_of(base + N.fetch_add(1, std::sync::atomic::Ordering::SeqCst) * 10)
}
