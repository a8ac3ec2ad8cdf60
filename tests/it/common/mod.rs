//! Helpers shared by the integration tests: our binary, the reference
//! repozo (ZODB 6.4 in the project's venv, provisioned on first use — a
//! missing Python or ZODB fails the test loudly, never skips it), pinned
//! stamps, runs paused at a failpoint, and fixture handling. The fixture
//! most tests stand on is [`Site`] (`site.rs`); what ZODB does to a
//! Data.fs is in `zodb.rs`.

pub mod blobsite;
pub mod py;
#[cfg(feature = "s3")]
pub mod s3;
mod site;
pub mod zodb;

pub use site::{Site, committed_prefix};

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// Our `repozo` binary, started with `argv[0] = "repozo"` so its help text
/// names the program as the reference shim's does.
pub fn ours() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_repozo"));
    c.arg0("repozo");
    c.env_remove("REPOZO_TEST_NOW");
    c.env_remove("REPOZO_FAILPOINT");
    c
}

/// ZODB 6.4's repozo (through `tests/py/repozo_shim.py`, which only pins
/// the clock when `REPOZO_TEST_NOW` is set).
pub fn theirs() -> Command {
    let mut c = py::reference_repozo();
    c.env_remove("REPOZO_TEST_NOW");
    c
}

/// Which repozo runs: ours or ZODB's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tool {
    Ours,
    Theirs,
}

impl Tool {
    pub const BOTH: [Tool; 2] = [Tool::Ours, Tool::Theirs];

    /// `ours` or `theirs`, for file names and messages.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Ours => "ours",
            Tool::Theirs => "theirs",
        }
    }

    /// The other tool.
    pub fn other(self) -> Tool {
        match self {
            Tool::Ours => Tool::Theirs,
            Tool::Theirs => Tool::Ours,
        }
    }

    /// Its command: [`ours`] or [`theirs`].
    pub fn command(self) -> Command {
        match self {
            Tool::Ours => ours(),
            Tool::Theirs => theirs(),
        }
    }
}

/// Runs `tool ARGS` in `cwd` with the clock pinned at `now`.
pub fn repozo(tool: Tool, cwd: &Path, now: &str, args: &[&str]) -> Output {
    let mut c = tool.command();
    c.current_dir(cwd).env("REPOZO_TEST_NOW", now).args(args);
    run(c)
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

/// `names` without our fast-hash sidecars (`<stamp>.blake3`), which ZODB's
/// repozo does not write: for comparing a repository of ours with one of
/// ZODB's (tests/it/sidecar.rs checks the sidecars themselves).
pub fn without_sidecars(names: Vec<String>) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| !n.ends_with(".blake3"))
        .collect()
}

/// Whether `name` is a repozo data file (`<stamp>.fs`, `.fsz`,
/// `.deltafs` or `.deltafsz`).
pub fn is_data_file(name: &str) -> bool {
    let Some((stamp, ext)) = name.split_once('.') else {
        return false;
    };
    stamp.len() == 19 && matches!(ext, "fs" | "fsz" | "deltafs" | "deltafsz")
}

/// Offsets just past each transaction of a FileStorage file (each
/// transaction is its header's length plus the 8-byte redundant length
/// after it).
pub fn transaction_ends(data: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut pos = 4;
    while pos + 16 <= data.len() {
        let tlen = u64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap()) as usize;
        pos += tlen + 8;
        ends.push(pos);
    }
    ends
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether the run ended by a signal (a failpoint's abort, a kill).
pub fn crashed(o: &Output) -> bool {
    o.status.signal().is_some()
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
/// 2030-03-17 ten seconds at a time, so tests pin the clock of each run
/// (`REPOZO_TEST_NOW`) and never sleep: every run of a site comes after
/// the one before.
pub fn next_stamp() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    stamp_of(1_900_000_000 + N.fetch_add(1, Ordering::SeqCst) * 10)
}

/// A run of our binary stopped at a failpoint
/// (`REPOZO_FAILPOINT=<step>:pause`): it said `failpoint <step> reached`
/// and waits for a line on its standard input.
pub struct Paused {
    child: Child,
    stderr: BufReader<ChildStderr>,
    /// What it printed on stderr before it got there.
    before: String,
}

impl Paused {
    /// Starts `c` (stdout discarded) and returns once it has reached
    /// `step`; panics if it ends first.
    pub fn at(step: &str, mut c: Command) -> Paused {
        c.env("REPOZO_FAILPOINT", format!("{step}:pause"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut before = String::new();
        let want = format!("failpoint {step} reached\n");
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                let status = child.wait().unwrap();
                panic!("the run never reached failpoint {step} ({status}); stderr:\n{before}");
            }
            if line == want {
                break;
            }
            before.push_str(&line);
        }
        Paused {
            child,
            stderr,
            before,
        }
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends it `signal` (it acts on it once resumed).
    pub fn signal(&self, signal: i32) {
        // SAFETY: a plain system call on our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(self.id() as libc::pid_t, signal) }, 0);
    }

    /// Lets it go on and waits for its end: its status and all it printed
    /// on stderr (no stdout).
    pub fn resume(mut self) -> Output {
        self.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let mut stderr = self.before;
        self.stderr.read_to_string(&mut stderr).unwrap();
        Output {
            status: self.child.wait().unwrap(),
            stdout: Vec::new(),
            stderr: stderr.into_bytes(),
        }
    }
}
