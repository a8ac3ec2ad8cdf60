//! Long backup chains (issue 8): a site running `repozo -BQz` every hour
//! ends up with thousands of chain files. Recover, verify and a default
//! (non-quick) backup must stream the chain — one file open at a time, one
//! decoder pool — so they work under `ulimit -n 256` with a handful of
//! threads and descriptors, whatever the chain's length.
//!
//! The chains are written by ZODB's own repozo: `tests/py/zodbtool.py chain`
//! commits one small transaction through ZODB at a time and runs repozo's
//! `main(['-BQz' / '-BQ', ...])` after each, in one Python process, with
//! repozo's clock pinned a minute later each time. That gives a gzip
//! repository (`.fsz` + `.deltafsz`, one gzip stream per file, no `RZ`
//! field) and a plain one (`.fs` + `.deltafs`) of `REPOZO_LONG_CHAIN` files
//! each (default 2000). Our binary then appends a few `-BQz` / `-BQ`
//! backups, so the gzip chain also holds members with our `RZ` size field
//! and both gzip readers are exercised.
//!
//! Every run of our binary under test has `RLIMIT_NOFILE` = 256 (set in the
//! child before exec), and the test samples `/proc/<pid>/status` (`Threads:`)
//! and `/proc/<pid>/fd` about every millisecond while it runs.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::py::zodbtool;
use crate::common::{listing, ours, stamp_of, stderr, theirs, zodb};

/// The descriptor limit every run of our binary gets.
const NOFILE: libc::rlim_t = 256;

/// Open descriptors allowed at any sampled moment: stdin, stdout, stderr,
/// the chain file being read, the output (and its `.index`), the Data.fs,
/// the repository lock and a few to spare — not one per chain file.
const MAX_FDS: usize = 16;

/// Backups our binary appends to each chain after ZODB's repozo.
const OURS_EXTRA: u64 = 3;

/// 2021-03-01-09-00-00 UTC, the stamp of the full backup; backup `i` is
/// stamped `i` minutes later.
const START: u64 = 1_614_589_200;

/// Threads allowed at any sampled moment in a recover or verify: the main
/// thread, the md5 thread, and ONE gzip decode pool of one worker per core
/// (not one pool per `.deltafsz`), plus 2 to spare for a helper thread and
/// for a thread being replaced when sampled. That is 6 on 2 cores and 8 on
/// 4; a pool per chain file gives thousands.
fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    2 + cores + 2
}

/// Chain length written by ZODB's repozo: `REPOZO_LONG_CHAIN`, default 2000.
fn chain_len() -> u64 {
    match std::env::var("REPOZO_LONG_CHAIN") {
        Err(_) => 2000,
        Ok(v) => match v.trim().parse() {
            Ok(n) if n >= 2 => n,
            _ => panic!("REPOZO_LONG_CHAIN={v:?} is not a number of files >= 2"),
        },
    }
}

/// The stamp of backup number `minute` (0 is the full backup).
fn minute(minute: u64) -> String {
    stamp_of(START + 60 * minute)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

// ---------------------------------------------------------------------------
// The shared fixture: one Data.fs, a gzip and a plain repository
// ---------------------------------------------------------------------------

struct Chain {
    /// Held (never released before the process exits) so that two runs of
    /// this test binary on one target directory take turns on `root`.
    _lock: std::fs::File,
    /// Holds Data.fs, Data.fs.index, gz/ and plain/:
    /// `$CARGO_TARGET_TMPDIR/long_chain`, rebuilt by every run and left in
    /// place afterwards (a static is never dropped; it also lets one look at
    /// the repositories after a failure).
    root: PathBuf,
    /// Files ZODB's repozo wrote into each repository.
    len: u64,
}

impl Chain {
    fn data_fs(&self) -> PathBuf {
        self.root.join("Data.fs")
    }

    fn repo(&self, gzip: bool) -> PathBuf {
        self.root.join(if gzip { "gz" } else { "plain" })
    }

    /// Files in each repository's chain as built.
    fn files(&self) -> u64 {
        self.len + OURS_EXTRA
    }

    /// The minute after the fixture's last backup.
    fn next_minute(&self) -> u64 {
        self.files()
    }

    /// A clock well after every backup any test makes.
    fn later(&self) -> String {
        minute(self.files() + 60)
    }
}

static CHAIN: OnceLock<Result<Chain, String>> = OnceLock::new();

/// The message of a caught panic.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a non-string panic".to_string())
}

/// The fixture, built once per test process; a failure to build it fails
/// every test that needs it, loudly, with the same message.
fn chain() -> &'static Chain {
    let built =
        CHAIN.get_or_init(|| std::panic::catch_unwind(build_chain).map_err(|p| panic_text(&*p)));
    match built {
        Ok(c) => c,
        Err(e) => panic!("the long-chain fixture could not be built:\n{e}"),
    }
}

fn build_chain() -> Chain {
    let t0 = Instant::now();
    let len = chain_len();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(tmp).unwrap();
    let lock_path = tmp.join("long_chain.lock");
    let lock = std::fs::File::create(&lock_path)
        .unwrap_or_else(|e| panic!("create {}: {e}", lock_path.display()));
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        panic!(
            "flock {}: {}",
            lock_path.display(),
            std::io::Error::last_os_error()
        );
    }
    let root = tmp.join("long_chain");
    if root.exists() {
        std::fs::remove_dir_all(&root).unwrap();
    }
    std::fs::create_dir(&root).unwrap();
    let c = Chain {
        _lock: lock,
        root,
        len,
    };
    for gzip in [true, false] {
        std::fs::create_dir(c.repo(gzip)).unwrap();
    }
    zodbtool(&[
        "chain",
        s(&c.data_fs()),
        "--count",
        &len.to_string(),
        "--start",
        &minute(0),
        "--seed",
        "8",
        "--gzip-repo",
        s(&c.repo(true)),
        "--plain-repo",
        s(&c.repo(false)),
    ]);
    eprintln!(
        "long_chain: ZODB's repozo wrote 2 x {len} files in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    for i in 0..OURS_EXTRA {
        zodb::commit(&c.data_fs(), 100 + i);
        let now = minute(len + i);
        for (gzip, args) in [(true, "-BQz"), (false, "-BQ")] {
            let mut cmd = ours();
            cmd.env("REPOZO_TEST_NOW", &now).args([
                args,
                "-r",
                s(&c.repo(gzip)),
                "-f",
                s(&c.data_fs()),
            ]);
            let o = cmd.output().expect("our binary starts");
            assert!(
                o.status.success(),
                "fixture: our repozo {args} at {now} failed: {}",
                stderr(&o)
            );
        }
    }
    // Both chains must be complete, and the gzip one must really hold both
    // kinds of gzip file.
    for gzip in [true, false] {
        let (full, delta) = if gzip {
            (".fsz", ".deltafsz")
        } else {
            (".fs", ".deltafs")
        };
        let names: Vec<String> = listing(&c.repo(gzip))
            .into_iter()
            .filter(|n| n.ends_with(full) || n.ends_with(delta))
            .collect();
        let mut want = vec![format!("{}{full}", minute(0))];
        want.extend((1..c.files()).map(|m| format!("{}{delta}", minute(m))));
        assert_eq!(
            names,
            want,
            "fixture: the chain in {}",
            c.repo(gzip).display()
        );
    }
    let gz = c.repo(true);
    assert!(
        !has_rz_field(&gz.join(format!("{}.deltafsz", minute(1)))),
        "fixture: ZODB's repozo wrote an RZ field?"
    );
    assert!(
        has_rz_field(&gz.join(format!("{}.deltafsz", minute(c.files() - 1)))),
        "fixture: our -BQz wrote no RZ field: the parallel gzip reader is not exercised"
    );
    eprintln!(
        "long_chain: fixture of 2 x {} files ready in {:.1} s in {}",
        c.files(),
        t0.elapsed().as_secs_f64(),
        c.root.display()
    );
    c
}

/// Whether the gzip file starts with a member carrying our `RZ` extra
/// subfield (FLG.FEXTRA, then subfield id "RZ").
fn has_rz_field(path: &Path) -> bool {
    let head = std::fs::read(path).unwrap();
    head.len() >= 14 && head[..4] == [0x1f, 0x8b, 8, 4] && &head[12..14] == b"RZ"
}

/// A private copy of the fixture's Data.fs (with its index) and of one
/// repository, for a test that changes them.
struct Copy {
    _dir: tempfile::TempDir,
    data_fs: PathBuf,
    repo: PathBuf,
}

fn copy_of(c: &Chain, gzip: bool) -> Copy {
    let dir = tempfile::tempdir().unwrap();
    let data_fs = dir.path().join("Data.fs");
    std::fs::copy(c.data_fs(), &data_fs).unwrap();
    std::fs::copy(
        c.root.join("Data.fs.index"),
        dir.path().join("Data.fs.index"),
    )
    .unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    for name in listing(&c.repo(gzip)) {
        std::fs::copy(c.repo(gzip).join(&name), repo.join(&name)).unwrap();
    }
    Copy {
        _dir: dir,
        data_fs,
        repo,
    }
}

/// Independent checks of one test: each runs to its end, and the test then
/// fails once, listing every check that failed (so one run shows which
/// operations break, not just the first).
#[derive(Default)]
struct Steps {
    failed: Vec<String>,
}

impl Steps {
    fn check(&mut self, name: &str, f: impl FnOnce()) {
        if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            self.failed.push(format!("{name}: {}", panic_text(&*p)));
        }
    }

    fn finish(self) {
        assert!(
            self.failed.is_empty(),
            "{} check(s) failed:\n\n{}",
            self.failed.len(),
            self.failed.join("\n\n")
        );
    }
}

// ---------------------------------------------------------------------------
// Running our binary under the limit, watching it
// ---------------------------------------------------------------------------

/// One run: its output and the peaks seen in `/proc/<pid>`.
struct Watched {
    what: String,
    out: Output,
    max_threads: usize,
    max_fds: usize,
    samples: usize,
    elapsed: Duration,
}

impl Watched {
    fn ok(self) -> Self {
        assert!(
            self.out.status.success(),
            "{} failed ({}) under ulimit -n {NOFILE}, peak {} threads and {} descriptors:\n{}",
            self.what,
            self.out.status,
            self.max_threads,
            self.max_fds,
            stderr(&self.out)
        );
        self
    }

    /// Asserts the descriptor bound (every run) and that sampling saw the
    /// process at all.
    fn few_fds(self) -> Self {
        assert!(self.samples > 0, "{}: never sampled", self.what);
        assert!(
            self.max_fds <= MAX_FDS,
            "{} had {} descriptors open at once (bound {MAX_FDS})",
            self.what,
            self.max_fds
        );
        self
    }

    /// Asserts the thread bound (see [`max_threads`]).
    fn few_threads(self) -> Self {
        assert!(
            self.max_threads >= 1,
            "{}: no thread count was sampled",
            self.what
        );
        assert!(
            self.max_threads <= max_threads(),
            "{} ran {} threads at once (bound {}: main + md5 + one pool of one per core + 2)",
            self.what,
            self.max_threads,
            max_threads()
        );
        self
    }
}

/// Runs our binary with `args` under `RLIMIT_NOFILE` = [`NOFILE`] and the
/// clock at `now`, sampling its threads and descriptors about every ms.
fn ours_limited(now: &str, args: &[&str]) -> Watched {
    let mut cmd = ours();
    cmd.env("REPOZO_TEST_NOW", now).args(args);
    // SAFETY: the closure runs in the forked child before exec and only
    // calls setrlimit, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: NOFILE,
                rlim_max: NOFILE,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    watch(format!("our repozo {}", args.join(" ")), cmd)
}

fn watch(what: String, mut cmd: Command) -> Watched {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t0 = Instant::now();
    // spawn() returns once the child has exec'd (or failed to), so what is
    // sampled below is the binary, not the forked test process.
    let mut child = cmd.spawn().expect("our binary starts");
    let pid = child.id();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            r.read_to_end(&mut v).map(|_| v)
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr_ = drain(Box::new(child.stderr.take().unwrap()));
    let status_path = format!("/proc/{pid}/status");
    let fd_dir = format!("/proc/{pid}/fd");
    let (mut max_threads, mut max_fds, mut samples) = (0, 0, 0);
    let status: ExitStatus = loop {
        if let Some(n) = std::fs::read_to_string(&status_path)
            .ok()
            .and_then(|st| threads_of(&st))
        {
            max_threads = max_threads.max(n);
            samples += 1;
        }
        if let Ok(entries) = std::fs::read_dir(&fd_dir) {
            max_fds = max_fds.max(entries.count());
        }
        if let Some(status) = child.try_wait().expect("waiting for our binary") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let elapsed = t0.elapsed();
    let out = Output {
        status,
        stdout: stdout.join().unwrap().expect("reading stdout"),
        stderr: stderr_.join().unwrap().expect("reading stderr"),
    };
    Watched {
        what,
        out,
        max_threads,
        max_fds,
        samples,
        elapsed,
    }
}

/// The `Threads:` line of a `/proc/<pid>/status`.
fn threads_of(status: &str) -> Option<usize> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// ZODB's repozo with the clock at `now`; asserts success.
fn theirs_ok(now: &str, args: &[&str]) -> Output {
    let o = theirs()
        .env("REPOZO_TEST_NOW", now)
        .args(args)
        .output()
        .expect("ZODB's repozo starts");
    assert!(
        o.status.success(),
        "ZODB's repozo {} failed ({}):\n{}",
        args.join(" "),
        o.status,
        stderr(&o)
    );
    o
}

/// Asserts `got` is exactly `want`, naming the first difference.
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    panic!(
        "{what}: {} bytes recovered, {} expected; first difference at {}",
        got.len(),
        want.len(),
        first.map_or("the end of the shorter one".to_string(), |p| p.to_string())
    );
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn report(w: &Watched) {
    eprintln!(
        "long_chain: {} took {:.2} s, peak {} threads, {} descriptors ({} samples)",
        w.what,
        w.elapsed.as_secs_f64(),
        w.max_threads,
        w.max_fds,
        w.samples
    );
}

// ---------------------------------------------------------------------------
// Recover and verify (both chains share the checks)
// ---------------------------------------------------------------------------

/// `-R -o`, `-R` to stdout and `-R -w -o` by ours under the limit, and
/// `-R -o` by ZODB's repozo, each recover exactly `want`.
fn recovers_under_the_limit(steps: &mut Steps, repo: &Path, now: &str, want: &[u8]) {
    let out_dir = tempfile::tempdir().unwrap();
    let out_dir = out_dir.path();
    steps.check("our -R -o", || {
        let out = out_dir.join("out.fs");
        let w = ours_limited(now, &["-R", "-r", s(repo), "-o", s(&out)])
            .ok()
            .few_fds()
            .few_threads();
        report(&w);
        assert_same_bytes(&read(&out), want, &w.what);
        let last_index = listing(repo)
            .into_iter()
            .rfind(|n| n.ends_with(".index"))
            .expect("the chain has .index files");
        assert_eq!(
            read(&out_dir.join("out.fs.index")),
            read(&repo.join(last_index)),
            "{}: out.fs.index is not the chain's last .index",
            w.what
        );
    });
    steps.check("our -R to stdout", || {
        let w = ours_limited(now, &["-R", "-r", s(repo)])
            .ok()
            .few_fds()
            .few_threads();
        report(&w);
        assert_same_bytes(&w.out.stdout, want, &w.what);
    });
    steps.check("our -R -w -o", || {
        let out2 = out_dir.join("out2.fs");
        let w = ours_limited(now, &["-R", "-w", "-r", s(repo), "-o", s(&out2)])
            .ok()
            .few_fds()
            .few_threads();
        report(&w);
        assert_same_bytes(&read(&out2), want, &w.what);
    });
    steps.check("ZODB's -R -o", || {
        let theirs_out = out_dir.join("theirs.fs");
        theirs_ok(now, &["-R", "-r", s(repo), "-o", s(&theirs_out)]);
        assert_same_bytes(&read(&theirs_out), want, "ZODB's repozo -R");
    });
}

/// `-V` and `-V -Q` by ours under the limit pass, silently.
fn verifies_under_the_limit(steps: &mut Steps, repo: &Path, now: &str) {
    for quick in [false, true] {
        let name = if quick { "our -V -Q" } else { "our -V" };
        steps.check(name, || {
            let mut args = vec!["-V", "-r", s(repo)];
            if quick {
                args.insert(1, "-Q");
            }
            let w = ours_limited(now, &args).ok().few_fds().few_threads();
            report(&w);
            assert!(
                w.out.stdout.is_empty() && w.out.stderr.is_empty(),
                "{} printed something:\n{}{}",
                w.what,
                String::from_utf8_lossy(&w.out.stdout),
                stderr(&w.out)
            );
        });
    }
}

/// A default (non-quick) backup by ours under the limit after one more
/// commit makes exactly one new incremental; run again with nothing new,
/// it succeeds and writes nothing. Both tools then recover the Data.fs and
/// ZODB's repozo verifies the repository.
fn backs_up_under_the_limit(c: &Chain, gzip: bool) {
    let copy = copy_of(c, gzip);
    let repo = &copy.repo;
    let later = c.later();
    zodb::commit(&copy.data_fs, 200);
    let before = listing(repo);
    let dat = repo.join(format!("{}.dat", minute(0)));
    let dat_lines = read(&dat).iter().filter(|&&b| b == b'\n').count();

    let now = minute(c.next_minute());
    let args: &[&str] = if gzip { &["-B", "-z"] } else { &["-B"] };
    let mut argv = args.to_vec();
    argv.extend(["-r", s(repo), "-f", s(&copy.data_fs)]);
    let w = ours_limited(&now, &argv).ok().few_fds();
    report(&w);
    let delta = format!("{now}.deltafs{}", if gzip { "z" } else { "" });
    let mut want = before.clone();
    want.extend([
        delta.clone(),
        format!("{now}.index"),
        format!("{now}.blake3"),
    ]);
    want.sort();
    assert_eq!(
        listing(repo),
        want,
        "{} did not add exactly one incremental, its .index and its sidecar",
        w.what
    );
    let dat_text = String::from_utf8(read(&dat)).unwrap();
    assert_eq!(dat_text.lines().count(), dat_lines + 1, "{}: .dat", w.what);
    assert!(
        dat_text.lines().last().unwrap().contains(&delta),
        "{}: the .dat's last line does not name {delta}",
        w.what
    );

    // Nothing new: exit 0, silent (the notice needs -v), no new file.
    let again = minute(c.next_minute() + 1);
    argv.clear();
    argv.extend(args);
    argv.extend(["-r", s(repo), "-f", s(&copy.data_fs)]);
    let w = ours_limited(&again, &argv).ok().few_fds();
    report(&w);
    assert!(
        w.out.stdout.is_empty() && w.out.stderr.is_empty(),
        "{} with nothing new printed something:\n{}",
        w.what,
        stderr(&w.out)
    );
    assert_eq!(
        listing(repo),
        want,
        "{} with nothing new wrote files",
        w.what
    );

    let data = read(&copy.data_fs);
    let out_dir = tempfile::tempdir().unwrap();
    let theirs_out = out_dir.path().join("theirs.fs");
    theirs_ok(&later, &["-R", "-r", s(repo), "-o", s(&theirs_out)]);
    assert_same_bytes(&read(&theirs_out), &data, "ZODB's repozo -R after our -B");
    theirs_ok(&later, &["-V", "-r", s(repo)]);
    let out = out_dir.path().join("ours.fs");
    ours_limited(&later, &["-R", "-r", s(repo), "-o", s(&out)])
        .ok()
        .few_fds();
    assert_same_bytes(&read(&out), &data, "our -R after our -B");
    let mut steps = Steps::default();
    verifies_under_the_limit(&mut steps, repo, &later);
    steps.finish();
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[test]
fn a_two_thousand_file_gzip_chain_recovers_byte_for_byte_under_ulimit_256_with_few_threads_and_descriptors()
 {
    let c = chain();
    let mut steps = Steps::default();
    recovers_under_the_limit(&mut steps, &c.repo(true), &c.later(), &read(&c.data_fs()));
    steps.finish();
}

#[test]
fn a_two_thousand_file_gzip_chain_verifies_under_ulimit_256_with_few_threads_and_descriptors() {
    let c = chain();
    let mut steps = Steps::default();
    verifies_under_the_limit(&mut steps, &c.repo(true), &c.later());
    steps.check("ZODB's -V", || {
        theirs_ok(&c.later(), &["-V", "-r", s(&c.repo(true))]);
    });
    steps.finish();
}

#[test]
fn a_default_backup_onto_a_two_thousand_file_gzip_chain_adds_one_incremental_under_ulimit_256_then_finds_nothing_to_do()
 {
    backs_up_under_the_limit(chain(), true);
}

#[test]
fn a_two_thousand_file_plain_chain_recovers_verifies_and_backs_up_under_ulimit_256() {
    let c = chain();
    let mut steps = Steps::default();
    recovers_under_the_limit(&mut steps, &c.repo(false), &c.later(), &read(&c.data_fs()));
    verifies_under_the_limit(&mut steps, &c.repo(false), &c.later());
    steps.check("our default -B, then nothing to do", || {
        backs_up_under_the_limit(c, false)
    });
    steps.finish();
}

#[test]
fn the_test_clock_names_backups_a_minute_apart_from_the_full_one() {
    assert_eq!(minute(0), "2021-03-01-09-00-00");
    assert_eq!(minute(1), "2021-03-01-09-01-00");
    assert_eq!(minute(1999), "2021-03-02-18-19-00");
    assert_eq!(threads_of("Name:\trepozo\nThreads:\t7\n"), Some(7));
}
