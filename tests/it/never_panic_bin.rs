//! The `repozo` binary never panics and never aborts.
//!
//! Whatever the repository holds (odd file names, garbage in files named
//! like backups, a damaged `.dat`, gzip members whose headers lie), whatever
//! the Data.fs and its `Data.fs.index` say, and whatever bytes the arguments
//! are, the process exits 0 or 1 — with its message on stderr — never 101
//! (a panic) nor by a signal (an abort, e.g. when an allocation sized by a
//! file's contents fails).
//!
//! Every process runs with its address space limited ([`memory_limit`]:
//! 512 MiB on a machine of up to 2 cores, `RLIMIT_AS`), so that an
//! allocation a file's contents ask for fails here as it would on a small
//! machine instead of being quietly overcommitted, and with a timeout. The properties run
//! [`DEFAULT_CASES`] cases each, several processes per case;
//! `REPOZO_PROPTEST_CASES=<n>` runs `n` instead.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use md5::{Digest, Md5};
use proptest::prelude::*;
use proptest::sample::{Index as Pick, select};
use proptest::test_runner::{Config, TestRunner};

use crate::synth;
use synth::*;

/// Address-space limit of every process started here: 512 MiB, plus 8 MiB
/// per core beyond two for the worker threads' stacks and buffers, at most
/// 3 GiB — always below the 4 GiB a lying gzip header asks for. A healthy
/// run on these small files needs under 16 MiB on 2 cores.
fn memory_limit() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        ((512 << 20) + cores.saturating_sub(2) * (8 << 20)).min(3 << 30)
    })
}

/// How long one process may take before it counts as hung.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Cases per property unless `REPOZO_PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: u32 = 32;

/// "Now" for every process (`REPOZO_TEST_NOW`), after every stamp the
/// tests write unless a test says otherwise.
const NOW: &str = "2026-12-01-00-00-00";
/// Stamps of the template backups: a full one of a prefix of `small.fs`,
/// then an incremental one of the rest.
const T_FULL: &str = "2026-11-25-00-00-00";
const T_DELTA: &str = "2026-11-25-00-00-10";

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// Our binary, in `cwd`, under the memory limit, at [`NOW`].
fn repozo<S: AsRef<OsStr>>(cwd: &Path, args: &[S]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_repozo"));
    c.arg0("repozo")
        .args(args)
        .current_dir(cwd)
        .env("REPOZO_TEST_NOW", NOW)
        .env("REPOZO_LOCK_WAIT", "10")
        .env("RUST_BACKTRACE", "0")
        // Few malloc arenas: each reserves 64 MiB of address space.
        .env("MALLOC_ARENA_MAX", "2")
        .env_remove("REPOZO_FAILPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let limit = memory_limit() as libc::rlim_t;
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the
    // parent; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}

/// Runs `c` to completion, killing it (and failing) after [`TIMEOUT`].
fn run(mut c: Command) -> Output {
    let child = c.spawn().expect("start repozo");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(out) => out.expect("wait for repozo"),
        Err(_) => {
            // SAFETY: plain system call; `pid` is our own child, not yet
            // reaped (the waiting thread has not returned).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let _ = rx.recv();
            panic!("repozo hung for {} s: {c:?}", TIMEOUT.as_secs());
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a clean exit: 0, or 1 (10 for a missing repository) with a
/// message on stderr; never 101 (a panic), another code, or a signal.
/// Returns the code.
fn clean_exit(what: &str, o: &Output) -> i32 {
    let err = stderr(o);
    assert!(
        !err.contains("panicked at"),
        "{what}: panicked (exit {:?}):\n{err}",
        o.status.code()
    );
    match o.status.code() {
        Some(0) => 0,
        // 10: the repository does not exist (a documented exit code).
        Some(c @ (1 | 10)) => {
            assert!(!err.trim().is_empty(), "{what}: exit {c} without a message");
            c
        }
        Some(101) => panic!("{what}: exit 101, a panic:\n{err}"),
        Some(c) => panic!("{what}: unexpected exit code {c}:\n{err}"),
        None => {
            use std::os::unix::process::ExitStatusExt;
            panic!(
                "{what}: killed by signal {:?} (6 = SIGABRT: an abort, e.g. a failed \
                 allocation under the {} MiB limit):\n{err}",
                o.status.signal(),
                memory_limit() >> 20
            )
        }
    }
}

/// Runs `args` in `cwd` and asserts a clean exit; returns it and the output.
fn clean<S: AsRef<OsStr> + std::fmt::Debug>(cwd: &Path, args: &[S]) -> (i32, Output) {
    let o = run(repozo(cwd, args));
    (clean_exit(&format!("repozo {args:?}"), &o), o)
}

/// Like [`clean`] at another "now".
fn clean_at<S: AsRef<OsStr> + std::fmt::Debug>(cwd: &Path, now: &str, args: &[S]) -> (i32, Output) {
    let mut c = repozo(cwd, args);
    c.env("REPOZO_TEST_NOW", now);
    let o = run(c);
    (clean_exit(&format!("repozo {args:?} at {now}"), &o), o)
}

/// Runs `args` and asserts exit 0.
fn success<S: AsRef<OsStr> + std::fmt::Debug>(cwd: &Path, args: &[S]) -> Output {
    let (code, o) = clean(cwd, args);
    assert_eq!(code, 0, "repozo {args:?} failed:\n{}", stderr(&o));
    o
}

fn success_at<S: AsRef<OsStr> + std::fmt::Debug>(cwd: &Path, now: &str, args: &[S]) -> Output {
    let (code, o) = clean_at(cwd, now, args);
    assert_eq!(code, 0, "repozo {args:?} at {now} failed:\n{}", stderr(&o));
    o
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: synth::cases(cases),
        failure_persistence: None,
        // Each shrinking step runs processes again.
        max_shrink_iters: 256,
        ..Config::default()
    })
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// `tests/data/small.fs`, written by ZODB.
fn small() -> &'static [u8] {
    static SMALL: OnceLock<Vec<u8>> = OnceLock::new();
    SMALL.get_or_init(|| {
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/small.fs"))
            .expect("tests/data/small.fs")
    })
}

/// The first half of `small.fs`, cut at a transaction boundary.
fn small_prefix() -> &'static [u8] {
    static END: OnceLock<usize> = OnceLock::new();
    let end = *END.get_or_init(|| {
        let (pos, _) = prefix_state(&small()[..small().len() / 2]).expect("small.fs scans");
        assert!(pos > 4, "no transaction in the first half of small.fs");
        pos as usize
    });
    &small()[..end]
}

fn md5_hex(b: &[u8]) -> String {
    Md5::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// A working directory holding `Data.fs` (all of `small.fs`) and `repo/`
/// with a chain of two backups made by our binary: a full one of
/// [`small_prefix`] at [`T_FULL`] and an incremental one of the rest at
/// [`T_DELTA`], gzipped if `gzip`.
fn template(gzip: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir(d.join("repo")).unwrap();
    std::fs::write(d.join("Data.fs"), small_prefix()).unwrap();
    let z: &[&str] = if gzip { &["-z"] } else { &[] };
    let mut args = vec!["-B", "-f", "Data.fs", "-r", "repo"];
    args.extend(z);
    success_at(d, T_FULL, &args);
    std::fs::write(d.join("Data.fs"), small()).unwrap();
    success_at(d, T_DELTA, &args);
    dir
}

fn ext(gzip: bool, full: bool) -> &'static str {
    match (full, gzip) {
        (true, false) => ".fs",
        (true, true) => ".fsz",
        (false, false) => ".deltafs",
        (false, true) => ".deltafsz",
    }
}

/// Copies the files of `from` (one level) into a new directory `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Recovers the newest state of `repo` (relative to `cwd`) into `name` and
/// returns the bytes. The newest: backups made in [`NOW`]'s second are
/// stamped in the following seconds.
fn recovered(cwd: &Path, repo: &str, name: &str) -> Vec<u8> {
    success(cwd, &["-R", "-r", repo, "-D", "9999-12-31", "-o", name]);
    std::fs::read(cwd.join(name)).unwrap()
}

/// [`recovered`] with `--no-verify`.
fn recovered_unchecked(cwd: &Path, repo: &str, name: &str) -> Vec<u8> {
    success(
        cwd,
        &[
            "-R",
            "--no-verify",
            "-r",
            repo,
            "-D",
            "9999-12-31",
            "-o",
            name,
        ],
    );
    std::fs::read(cwd.join(name)).unwrap()
}

// ---------------------------------------------------------------------------
// Known panics, one input each
// ---------------------------------------------------------------------------

#[test]
fn a_backup_into_a_repository_holding_aaaaaaaaaaaaaaaaaaéxx_tmp_1_2_succeeds() {
    // `é` takes bytes 18 and 19: the leftover check sliced the name at 19.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("repo")).unwrap();
    std::fs::write(d.join("Data.fs"), small()).unwrap();
    std::fs::write(d.join("repo/aaaaaaaaaaaaaaaaaaéxx.tmp-1-2"), b"").unwrap();
    success(d, &["-B", "-f", "Data.fs", "-r", "repo"]);
    assert_eq!(recovered(d, "repo", "out.fs"), small());
    assert!(d.join("repo/aaaaaaaaaaaaaaaaaaéxx.tmp-1-2").exists());
}

/// `template` with `c` inserted at byte `at` (an ASCII template, so every
/// byte is a character boundary).
fn with_char_at(template: &str, at: usize, c: char) -> String {
    let mut s = template.to_string();
    s.insert(at, c);
    s
}

#[test]
fn backups_succeed_whatever_multibyte_character_sits_anywhere_in_a_stamp_like_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("repo")).unwrap();
    std::fs::write(d.join("Data.fs"), small()).unwrap();
    let mut names = Vec::new();
    for template in [
        "2026-11-26-02-10-03.fs.tmp-1-2",
        "2026-11-26-02-10-03.index.tmp-12-0",
        "2026-11-26-02-10-03.fs",
        "2026-11-26-02-10-03.deltafsz",
    ] {
        for at in 0..=template.len() {
            for c in ['é', '€', '😀'] {
                names.push(with_char_at(template, at, c));
            }
        }
    }
    for n in &names {
        std::fs::write(d.join("repo").join(n), b"garbage").unwrap();
    }
    for args in [
        &["-B", "-f", "Data.fs", "-r", "repo"][..],
        &["-B", "-Q", "-f", "Data.fs", "-r", "repo"],
        &["-V", "-r", "repo"],
        &["-V", "-Q", "-r", "repo"],
        &["-B", "-F", "-k", "-f", "Data.fs", "-r", "repo"],
    ] {
        success(d, args);
    }
    assert_eq!(recovered(d, "repo", "out.fs"), small());
}

#[test]
fn a_full_backup_of_four_empty_transactions_next_to_their_index_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("repo")).unwrap();
    let data = empty_transactions(4);
    std::fs::write(d.join("Data.fs"), &data).unwrap();
    std::fs::write(
        d.join("Data.fs.index"),
        index_file_bytes(128, &repozo::index::Index::new()),
    )
    .unwrap();
    success(d, &["-B", "-F", "-f", "Data.fs", "-r", "repo"]);
    assert_eq!(recovered(d, "repo", "out.fs"), data);
}

#[test]
fn an_incremental_backup_after_a_full_one_of_empty_transactions_succeeds() {
    // No damaged file at all: the full backup's own `.index` (valid at 128)
    // is the incremental's starting point.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("repo")).unwrap();
    std::fs::write(d.join("Data.fs"), empty_transactions(4)).unwrap();
    success_at(d, T_FULL, &["-B", "-f", "Data.fs", "-r", "repo"]);
    let data = empty_transactions(5);
    std::fs::write(d.join("Data.fs"), &data).unwrap();
    success_at(d, T_DELTA, &["-B", "-f", "Data.fs", "-r", "repo"]);
    success(d, &["-V", "-r", "repo"]);
    assert_eq!(recovered(d, "repo", "out.fs"), data);
}

#[test]
fn a_dat_ending_near_u64_max_before_an_unrecorded_increment_gives_exit_0_or_1() {
    // The `.dat` lists the full backup only, ending at u64::MAX; the
    // increment it lacks is recorded as starting there.
    for args in [
        &["-B", "-f", "Data.fs", "-r", "repo"][..],
        &["-B", "-Q", "-f", "Data.fs", "-r", "repo"],
    ] {
        for end in [u64::MAX, u64::MAX - 1, u64::MAX - 16] {
            let t = template(false);
            let d = t.path();
            let line = format!("repo/{T_FULL}.fs 0 {end} {}\n", md5_hex(small_prefix()));
            std::fs::write(d.join(format!("repo/{T_FULL}.dat")), line).unwrap();
            clean(d, args);
        }
    }
}

/// Our gzip member header: magic, deflate, FEXTRA, mtime 0, XFL 0, OS 255,
/// XLEN 8, subfield `RZ` of 4 bytes: the member's total size.
const RZ_HEADER: [u8; 16] = [0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255, 8, 0, b'R', b'Z', 4, 0];

/// How a gzip member of ours lies about a size.
#[derive(Debug, Clone, Copy)]
enum GzipLie {
    /// The `RZ` size field claims `n` bytes.
    SizeField(u32),
    /// The ISIZE trailer claims `n` uncompressed bytes.
    Trailer(u32),
}

/// Rewrites the first member of the gzip file `path` (one of ours) to lie.
fn make_gzip_lie(path: &Path, lie: GzipLie) {
    let mut b = std::fs::read(path).unwrap();
    assert_eq!(
        b[..16],
        RZ_HEADER,
        "{} is not one of our members",
        path.display()
    );
    match lie {
        GzipLie::SizeField(n) => b[16..20].copy_from_slice(&n.to_le_bytes()),
        GzipLie::Trailer(n) => {
            let total = u32::from_le_bytes(b[16..20].try_into().unwrap()) as usize;
            b[total - 4..total].copy_from_slice(&n.to_le_bytes());
        }
    }
    std::fs::write(path, b).unwrap();
}

/// Every command that reads the chain's data files, and what exit code
/// each may give when a file of the chain is `readable` as gzip or not.
fn check_every_reader(d: &Path, readable: bool, what: &str) {
    for args in [
        &["-V", "-r", "repo"][..],
        &["-V", "-Q", "-r", "repo"],
        &["-R", "-r", "repo", "-o", "out.fs"],
        &["-R", "-w", "-r", "repo", "-o", "out.fs"],
        &["-R", "-v", "-r", "repo", "-o", "out.fs"],
        &["-R", "-r", "repo"],
    ] {
        let _ = std::fs::remove_file(d.join("out.fs"));
        let (code, o) = clean(d, args);
        if code == 0 {
            assert!(
                readable,
                "{what}: repozo {args:?} accepted a broken gzip file"
            );
            if args.contains(&"-o") {
                assert_eq!(std::fs::read(d.join("out.fs")).unwrap(), small(), "{what}");
            } else if args[0] == "-R" {
                assert_eq!(o.stdout, small(), "{what}");
            }
        }
    }
    // A backup reads the chain (to compare it) or only the `.dat` (-Q).
    for args in [
        &["-B", "-f", "Data.fs", "-r", "repo"][..],
        &["-B", "-Q", "-f", "Data.fs", "-r", "repo"],
    ] {
        clean(d, args);
    }
}

#[test]
fn a_gzip_member_whose_size_field_claims_4_gib_is_not_allocated() {
    for claim in [u32::MAX, 0xffff_fff0, 0x8000_0000, 600 << 20] {
        for member in [T_FULL, T_DELTA] {
            let t = template(true);
            let full = member == T_FULL;
            make_gzip_lie(
                &t.path().join(format!("repo/{member}{}", ext(true, full))),
                GzipLie::SizeField(claim),
            );
            // The size field is ours alone: any other gzip reader ignores
            // it, so the file is still valid gzip.
            check_every_reader(t.path(), true, &format!("{member} claims {claim} bytes"));
        }
    }
}

#[test]
fn a_gzip_member_whose_trailer_claims_4_gib_is_not_allocated() {
    for claim in [u32::MAX, 0xffff_fff0, 0x8000_0000, 600 << 20] {
        for member in [T_FULL, T_DELTA] {
            let t = template(true);
            let full = member == T_FULL;
            make_gzip_lie(
                &t.path().join(format!("repo/{member}{}", ext(true, full))),
                GzipLie::Trailer(claim),
            );
            check_every_reader(
                t.path(),
                false,
                &format!("{member} trailer claims {claim} bytes"),
            );
        }
    }
}

#[test]
fn a_healthy_gzip_chain_verifies_and_recovers_under_the_memory_limit() {
    // The limit itself is no reason to fail: the tests above rely on it.
    let t = template(true);
    success(t.path(), &["-V", "-r", "repo"]);
    success(t.path(), &["-R", "-w", "-r", "repo", "-o", "out.fs"]);
    assert_eq!(std::fs::read(t.path().join("out.fs")).unwrap(), small());
    success(t.path(), &["-B", "-f", "Data.fs", "-r", "repo"]);
    success(t.path(), &["-B", "-F", "-z", "-f", "Data.fs", "-r", "repo"]);
}

// ---------------------------------------------------------------------------
// Arguments and paths
// ---------------------------------------------------------------------------

fn os(b: &[u8]) -> OsString {
    OsStr::from_bytes(b).to_os_string()
}

#[test]
fn non_utf8_arguments_are_refused_with_exit_1_and_a_message() {
    let t = template(false);
    let d = t.path();
    // The non-UTF-8 names exist, so only the encoding is in the way.
    std::fs::copy(d.join("Data.fs"), d.join(OsStr::from_bytes(b"D\xffta.fs"))).unwrap();
    std::fs::create_dir(d.join(OsStr::from_bytes(b"re\xffpo"))).unwrap();
    let before = listing(&d.join("repo"));
    let cases: Vec<Vec<OsString>> = vec![
        vec![
            "-B".into(),
            "-f".into(),
            os(b"D\xffta.fs"),
            "-r".into(),
            "repo".into(),
        ],
        vec![
            "-B".into(),
            "-f".into(),
            "Data.fs".into(),
            "-r".into(),
            os(b"re\xffpo"),
        ],
        vec![
            "-B".into(),
            os(b"--file=D\xffta.fs"),
            "--repository=repo".into(),
        ],
        vec![
            "-R".into(),
            "-r".into(),
            "repo".into(),
            "-o".into(),
            os(b"o\xffut.fs"),
        ],
        vec![
            "-R".into(),
            "-r".into(),
            os(b"re\xffpo"),
            "-o".into(),
            "out.fs".into(),
        ],
        vec![
            "-R".into(),
            "-r".into(),
            "repo".into(),
            "-D".into(),
            os(b"2026-11-25\xff"),
        ],
        vec!["-V".into(), "-r".into(), os(b"\xff")],
        vec![os(b"-\xff")],
        vec![os(b"--\xff")],
        vec!["-V".into(), "-r".into(), "repo".into(), os(b"\xc3")],
    ];
    for args in &cases {
        let (code, o) = clean(d, args);
        assert_eq!(code, 1, "{args:?} was accepted:\n{}", stderr(&o));
    }
    assert_eq!(listing(&d.join("repo")), before, "a refused command wrote");
    assert!(!d.join(OsStr::from_bytes(b"o\xffut.fs")).exists());
}

fn listing(dir: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    v.sort();
    v
}

#[test]
fn non_ascii_paths_work_end_to_end() {
    for gzip in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("dätä")).unwrap();
        std::fs::create_dir(d.join("répo")).unwrap();
        std::fs::write(d.join("dätä/Dätä.fs"), small_prefix()).unwrap();
        let mut b = vec!["-B", "-f", "dätä/Dätä.fs", "-r", "répo"];
        if gzip {
            b.push("-z");
        }
        success_at(d, T_FULL, &b);
        std::fs::write(d.join("dätä/Dätä.fs"), small()).unwrap();
        success_at(d, T_DELTA, &b);
        let mut q = b.clone();
        q.push("-Q");
        success(d, &q); // nothing to do
        success(d, &["-V", "-r", "répo"]);
        success(d, &["-V", "-Q", "-r", "répo"]);
        assert_eq!(recovered(d, "répo", "öut.fs"), small(), "gzip {gzip}");
        assert!(d.join("öut.fs.index").exists(), "gzip {gzip}");
        success(d, &["-R", "-w", "-r", "répo", "-o", "öut-w.fs"]);
        assert_eq!(std::fs::read(d.join("öut-w.fs")).unwrap(), small());
        success(d, &["-R", "-r", "répo", "-D", T_FULL, "-o", "öut-früh.fs"]);
        assert_eq!(
            std::fs::read(d.join("öut-früh.fs")).unwrap(),
            small_prefix()
        );
        // The recovered file backs up again, elsewhere.
        std::fs::create_dir(d.join("ŕepo2")).unwrap();
        success(d, &["-B", "-f", "öut.fs", "-r", "ŕepo2"]);
        assert_eq!(recovered(d, "ŕepo2", "øut2.fs"), small());
        // Errors name the path; still exit 1.
        let (code, o) = clean(d, &["-V", "-r", "rëpo-missing"]);
        assert_eq!(code, 10);
        assert!(stderr(&o).contains("rëpo-missing"), "{}", stderr(&o));
    }
}

// ---------------------------------------------------------------------------
// .dat lines
// ---------------------------------------------------------------------------

/// The commands that read the `.dat`, each on its own copy of the
/// repository in `d`. A successful plain `-B` (which compares the whole
/// chain with the Data.fs) and every successful recover must still give
/// `small.fs`; nothing may panic.
fn check_dat_readers(d: &Path, what: &str) {
    for (i, args) in [
        &["-B", "-Q", "-f", "Data.fs", "-r", "r"][..],
        &["-B", "-f", "Data.fs", "-r", "r"],
        &["-V", "-r", "r"],
        &["-V", "-Q", "-r", "r"],
        &["-R", "-w", "-r", "r", "-o", "out.fs"],
        &["-R", "-r", "r", "-o", "out.fs"],
    ]
    .iter()
    .enumerate()
    {
        let r = d.join("r");
        let _ = std::fs::remove_dir_all(&r);
        let _ = std::fs::remove_file(d.join("out.fs"));
        copy_dir(&d.join("repo"), &r);
        let (code, o) = clean(d, args);
        if code != 0 {
            continue;
        }
        match args[0] {
            "-R" => assert_eq!(
                std::fs::read(d.join("out.fs")).unwrap(),
                small(),
                "{what}: {args:?}"
            ),
            "-B" if i == 1 => {
                // The .dat was damaged on purpose; recover's check of every
                // file against it may refuse (the safety tests assert that),
                // so the bytes are compared unchecked.
                let back = recovered_unchecked(d, "r", "out.fs");
                assert!(back == small(), "{what}: after {args:?}: {}", stderr(&o));
            }
            _ => {}
        }
    }
}

#[test]
fn dat_lines_with_extreme_offsets_give_exit_0_or_1() {
    let p = small_prefix().len() as u64;
    let f = small().len() as u64;
    let mp = md5_hex(small_prefix());
    let md = md5_hex(&small()[p as usize..]);
    let full = format!("repo/{T_FULL}.fs");
    let delta = format!("repo/{T_DELTA}.deltafs");
    let max = u64::MAX;
    let cases = [
        format!("{full} 0 {max} {mp}\n"),
        format!("{full} 0 {max} {mp}\n{delta} {max} {max} {md}\n"),
        format!("{full} {max} {max} {mp}\n"),
        format!("{full} {} {max} {mp}\n{delta} {max} {max} {md}\n", max - 1),
        format!("{full} 0 {p} {mp}\n{delta} {p} {max} {md}\n"),
        format!("{full} 0 {p} {mp}\n{delta} {max} {p} {md}\n"),
        format!("{full} 5 3 {mp}\n"),
        format!("{full} 0 {p} {mp}\n{delta} {f} {p} {md}\n"),
        format!("{full} 999999 1000000 {mp}\n"),
        format!("{full} 0 {p} {mp}\n{delta} 999999 1000000 {md}\n"),
        format!("{full} 0 18446744073709551616 {mp}\n"),
        format!("{full} -1 {p} {mp}\n"),
        format!("{full} 0 {p} {mp}\n{delta} {p} {f} {md}\n{delta} {f} {max} {md}\n"),
        format!("{full} 0 {p} {mp}\n"),
        format!("{full} 0 {p} {mp}\n{delta} {p} {f}"),
        format!("{full} 0 {p} {mp}\n\n"),
        format!("{full} 0 {} {mp}\n", max / 2),
        format!("{full} 0 {p}\n"),
        String::new(),
        "\u{0}\u{ff}\n".to_string(),
    ];
    let t = template(false);
    let dat = t.path().join(format!("repo/{T_FULL}.dat"));
    let original = std::fs::read(&dat).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&original),
        format!("{full} 0 {p} {mp}\n{delta} {p} {f} {md}\n"),
        "the template's .dat"
    );
    for case in &cases {
        std::fs::write(&dat, case).unwrap();
        check_dat_readers(t.path(), &format!("{case:?}"));
    }
}

/// One line of a generated `.dat`.
#[derive(Debug, Clone)]
enum DatLine {
    Entry {
        /// Which chain file (0 full, 1 delta, 2 one that does not exist).
        file: usize,
        /// Without the repository directory in front.
        bare: bool,
        start: u64,
        end: u64,
        md5: Md5Choice,
        sep: &'static str,
    },
    Junk(String),
}

#[derive(Debug, Clone)]
enum Md5Choice {
    /// The md5 of `small.fs[start..end]` (clipped to the file).
    OfRange,
    /// The md5 recorded for a chain file.
    OfFile(Pick),
    Hex(String),
}

fn offset() -> impl Strategy<Value = u64> {
    let p = small_prefix().len() as u64;
    let f = small().len() as u64;
    prop_oneof![
        2 => select(vec![0, p, f, p - 1, f + 1]),
        1 => edgy_u64(f),
    ]
}

fn dat_line() -> impl Strategy<Value = DatLine> {
    let md5 = prop_oneof![
        2 => Just(Md5Choice::OfRange),
        2 => any::<Pick>().prop_map(Md5Choice::OfFile),
        1 => "[0-9a-f]{32}|[^\\s]{1,8}".prop_map(Md5Choice::Hex),
    ];
    prop_oneof![
        8 => (
            prop_oneof![4 => 0..2usize, 1 => Just(2usize)],
            any::<bool>(),
            offset(),
            offset(),
            md5,
            prop_oneof![6 => Just(" "), 1 => Just("\t"), 1 => Just("  ")],
        )
            .prop_map(|(file, bare, start, end, md5, sep)| DatLine::Entry {
                file,
                bare,
                start,
                end,
                md5,
                sep,
            }),
        1 => "[^\n]{0,40}".prop_map(DatLine::Junk),
    ]
}

/// The line the template's `.dat` has for chain file `i` (0 or 1).
fn true_line(i: usize) -> DatLine {
    let (p, f) = (small_prefix().len() as u64, small().len() as u64);
    let (start, end) = [(0, p), (p, f)][i];
    DatLine::Entry {
        file: i,
        bare: false,
        start,
        end,
        md5: Md5Choice::OfRange,
        sep: " ",
    }
}

/// Random lines, or the true ones with one line inserted, replaced or cut
/// off.
fn dat_lines() -> impl Strategy<Value = Vec<DatLine>> {
    prop_oneof![
        1 => prop::collection::vec(dat_line(), 0..4),
        2 => (any::<Pick>(), dat_line(), 0..3u8).prop_map(|(at, line, op)| {
            let mut v = vec![true_line(0), true_line(1)];
            let i = at.index(v.len() + 1);
            match op {
                0 => v.insert(i, line),
                1 if i < v.len() => v[i] = line,
                _ => v.truncate(i),
            }
            v
        }),
    ]
}

fn render_dat(lines: &[DatLine], torn: bool, crlf: bool, gzip: bool) -> Vec<u8> {
    let names = [
        format!("{T_FULL}{}", ext(gzip, true)),
        format!("{T_DELTA}{}", ext(gzip, false)),
        format!("2026-11-25-00-00-20{}", ext(gzip, false)),
    ];
    let p = small_prefix().len();
    let recorded = [md5_hex(small_prefix()), md5_hex(&small()[p..])];
    let mut out = String::new();
    for l in lines {
        match l {
            DatLine::Entry {
                file,
                bare,
                start,
                end,
                md5,
                sep,
            } => {
                let name = if *bare {
                    names[*file].clone()
                } else {
                    format!("repo/{}", names[*file])
                };
                let sum = match md5 {
                    Md5Choice::OfRange => {
                        let len = small().len() as u64;
                        let (a, b) = ((*start).min(len) as usize, (*end).min(len) as usize);
                        md5_hex(&small()[a.min(b)..b])
                    }
                    Md5Choice::OfFile(i) => recorded[i.index(2)].clone(),
                    Md5Choice::Hex(h) => h.clone(),
                };
                out.push_str(&format!("{name}{sep}{start}{sep}{end}{sep}{sum}"));
            }
            DatLine::Junk(j) => out.push_str(j),
        }
        out.push_str(if crlf { "\r\n" } else { "\n" });
    }
    let mut out = out.into_bytes();
    if torn && !out.is_empty() {
        // Cut inside the last line (possibly inside a character).
        let end = out.trim_ascii_end().len();
        out.truncate(end.saturating_sub(1));
    }
    out
}

#[test]
fn any_dat_gives_exit_0_or_1_to_every_command_that_reads_it() {
    let templates = [template(false), template(true)];
    let strategy = (
        any::<bool>(),
        dat_lines(),
        prop_oneof![5 => Just(false), 1 => Just(true)],
        prop_oneof![5 => Just(false), 1 => Just(true)],
    );
    runner(DEFAULT_CASES)
        .run(&strategy, |(gzip, lines, torn, crlf)| {
            let t = &templates[usize::from(gzip)];
            let case = tempfile::tempdir().unwrap();
            let d = case.path();
            std::fs::copy(t.path().join("Data.fs"), d.join("Data.fs")).unwrap();
            copy_dir(&t.path().join("repo"), &d.join("repo"));
            let dat = render_dat(&lines, torn, crlf, gzip);
            std::fs::write(d.join(format!("repo/{T_FULL}.dat")), &dat).unwrap();
            check_dat_readers(d, &String::from_utf8_lossy(&dat));
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------
// Odd names and garbage in the repository
// ---------------------------------------------------------------------------

/// Names a repository file is made from before edits.
const NAME_TEMPLATES: &[&str] = &[
    "2026-11-26-02-10-03.fs",
    "2026-11-26-02-10-03.fsz",
    "2026-11-26-02-10-03.deltafs",
    "2026-11-26-02-10-03.deltafsz",
    "2026-11-26-02-10-03.dat",
    "2026-11-26-02-10-03.index",
    "2026-12-24-00-00-00.fs",
    "2026-02-30-00-00-00.deltafs",
    "2026-11-26-02-10-03.fs.tmp-1-2",
    "2026-11-26-02-10-03.index.tmp-12-0",
    "2026-11-26-02-10-03.deltafsz.tmp-1-2",
    "2026-11-26-02-10-03..tmp-1-2",
    "aaaaaaaaaaaaaaaaaaaxx.tmp-1-2",
    "tmp.tmp",
    ".fs",
];

#[derive(Debug, Clone)]
enum NameEdit {
    /// A multi-byte character inserted at a byte offset (which may split
    /// an earlier one: then the name is not UTF-8).
    InsertChar(usize, char),
    /// A byte that is never valid UTF-8 on its own.
    InsertByte(usize, u8),
    ReplaceByte(usize, u8),
    Truncate(usize),
}

fn name_position() -> impl Strategy<Value = usize> {
    prop_oneof![2 => 16..24usize, 1 => 0..40usize]
}

fn name_edit() -> impl Strategy<Value = NameEdit> {
    prop_oneof![
        4 => (
            name_position(),
            select(vec!['é', '€', '😀', '\u{301}', 'ß', '\u{a0}', 'Ω'])
        )
            .prop_map(|(at, c)| NameEdit::InsertChar(at, c)),
        2 => (name_position(), 0x80..=0xffu8).prop_map(|(at, b)| NameEdit::InsertByte(at, b)),
        1 => (name_position(), 0x80..=0xffu8).prop_map(|(at, b)| NameEdit::ReplaceByte(at, b)),
        1 => name_position().prop_map(NameEdit::Truncate),
    ]
}

fn repo_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (select(NAME_TEMPLATES.to_vec()), prop::collection::vec(name_edit(), 0..3))
            .prop_map(|(t, edits)| {
                let mut n = t.as_bytes().to_vec();
                for e in edits {
                    match e {
                        NameEdit::InsertChar(at, c) => {
                            let mut buf = [0u8; 4];
                            let at = at.min(n.len());
                            n.splice(at..at, c.encode_utf8(&mut buf).bytes());
                        }
                        NameEdit::InsertByte(at, b) => n.insert(at.min(n.len()), b),
                        NameEdit::ReplaceByte(at, b) => {
                            if !n.is_empty() {
                                let i = at.min(n.len() - 1);
                                n[i] = b;
                            }
                        }
                        NameEdit::Truncate(at) => n.truncate(at.max(1)),
                    }
                }
                n
            }),
        1 => prop::collection::vec(1..=255u8, 1..30),
    ]
    .prop_map(|mut n| {
        // A file name: no NUL, no '/', not "." or "..".
        for b in &mut n {
            if *b == b'/' {
                *b = b'_';
            }
        }
        if n == b"." || n == b".." {
            n.push(b'x');
        }
        n
    })
}

#[derive(Debug, Clone)]
enum Contents {
    Empty,
    Bytes(Vec<u8>),
    /// Our gzip member header claiming `total` bytes, then `rest`.
    GzipHeader(u32, Vec<u8>),
    /// A real backup file of the template chain.
    CopyOf(Pick),
    Dir,
}

fn contents() -> impl Strategy<Value = Contents> {
    prop_oneof![
        2 => Just(Contents::Empty),
        3 => prop::collection::vec(any::<u8>(), 1..256).prop_map(Contents::Bytes),
        2 => (
            prop_oneof![any::<u32>(), Just(u32::MAX), 0..64u32],
            prop::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(n, rest)| Contents::GzipHeader(n, rest)),
        2 => any::<Pick>().prop_map(Contents::CopyOf),
        1 => Just(Contents::Dir),
    ]
}

/// The real files a [`Contents::CopyOf`] picks from: the plain and gzip
/// templates' data files, `.dat` and `.index` files.
fn real_files(templates: &[tempfile::TempDir]) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for t in templates {
        for e in std::fs::read_dir(t.path().join("repo")).unwrap() {
            v.push(e.unwrap().path());
        }
    }
    v.sort();
    v
}

#[test]
fn repositories_holding_odd_names_and_garbage_give_exit_0_or_1_to_every_command() {
    let templates = [template(false), template(true)];
    let real = real_files(&templates);
    let strategy = (
        prop_oneof![Just(None), Just(Some(false)), Just(Some(true))],
        prop::collection::vec((repo_name(), contents()), 1..8),
    );
    runner(DEFAULT_CASES)
        .run(&strategy, |(base, entries)| {
            let case = tempfile::tempdir().unwrap();
            let d = case.path();
            let repo = d.join("repo");
            match base {
                Some(gzip) => copy_dir(&templates[usize::from(gzip)].path().join("repo"), &repo),
                None => std::fs::create_dir(&repo).unwrap(),
            }
            std::fs::write(d.join("Data.fs"), small()).unwrap();
            for (name, contents) in &entries {
                let path = repo.join(OsStr::from_bytes(name));
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_dir(&path);
                match contents {
                    Contents::Empty => std::fs::write(&path, b"").unwrap(),
                    Contents::Bytes(b) => std::fs::write(&path, b).unwrap(),
                    Contents::GzipHeader(n, rest) => {
                        let mut b = RZ_HEADER.to_vec();
                        b.extend(n.to_le_bytes());
                        b.extend(rest);
                        std::fs::write(&path, b).unwrap();
                    }
                    Contents::CopyOf(i) => {
                        std::fs::copy(&real[i.index(real.len())], &path).unwrap();
                    }
                    Contents::Dir => std::fs::create_dir(&path).unwrap(),
                }
            }
            for args in [
                &["-V", "-r", "repo"][..],
                &["-V", "-Q", "-r", "repo"],
                &["-R", "-r", "repo", "-o", "out.fs"],
                &["-R", "-w", "-r", "repo", "-o", "out.fs"],
                &["-B", "-f", "Data.fs", "-r", "repo"],
                &["-B", "-Q", "-f", "Data.fs", "-r", "repo"],
            ] {
                clean(d, args);
            }
            let (code, _) = clean(d, &["-B", "-F", "-k", "-f", "Data.fs", "-r", "repo"]);
            if code == 0 {
                // Only the new full backup is left of the chain.
                let back = recovered(d, "repo", "final.fs");
                prop_assert!(back == small(), "after -B -F -k the chain is not Data.fs");
            }
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------
// A synthetic Data.fs with a Data.fs.index valid for a prefix of it
// ---------------------------------------------------------------------------

#[test]
fn backups_of_a_synthetic_data_fs_with_an_index_valid_for_a_prefix_give_exit_0_or_1() {
    let strategy = (synth_data_fs(), index_at(), mutation());
    runner(DEFAULT_CASES)
        .run(&strategy, |((txns, garbage), at, mutation)| {
            let (data, boundaries) = build_with_boundaries(&txns, &garbage);
            let cut = prefix_len(&at, data.len(), &boundaries);
            let (pos, ix) =
                prefix_state(&data[..cut]).unwrap_or((cut as u64, repozo::index::Index::new()));
            let mutated = mutation.apply(&data);
            let case = tempfile::tempdir().unwrap();
            let d = case.path();

            // -B -F with the index next to the mutated file.
            std::fs::write(d.join("Data.fs"), &mutated).unwrap();
            std::fs::write(d.join("Data.fs.index"), index_file_bytes(pos, &ix)).unwrap();
            std::fs::create_dir(d.join("r1")).unwrap();
            let (code, _) = clean(d, &["-B", "-F", "-f", "Data.fs", "-r", "r1"]);
            if code == 0 {
                success(d, &["-V", "-r", "r1"]);
                clean(d, &["-R", "-w", "-r", "r1", "-o", "out.fs"]);
            }

            // A full backup of the prefix, then -B and -B -Q of the mutated
            // file: the chain's `.index` is where the incremental starts.
            std::fs::remove_file(d.join("Data.fs.index")).unwrap();
            std::fs::write(d.join("Data.fs"), &data[..cut]).unwrap();
            std::fs::create_dir(d.join("r2")).unwrap();
            let (code, _) = clean_at(d, T_FULL, &["-B", "-F", "-f", "Data.fs", "-r", "r2"]);
            if code == 0 {
                std::fs::write(d.join("Data.fs"), &mutated).unwrap();
                copy_dir(&d.join("r2"), &d.join("r3"));
                let (code, _) = clean_at(d, T_DELTA, &["-B", "-f", "Data.fs", "-r", "r2"]);
                if code == 0 {
                    success(d, &["-V", "-r", "r2"]);
                }
                clean_at(d, T_DELTA, &["-B", "-Q", "-f", "Data.fs", "-r", "r3"]);
            }
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------
// Files that are not regular files, and a stamp with no successor
// ---------------------------------------------------------------------------

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[test]
fn a_fifo_or_a_device_among_the_chain_files_is_refused_without_hanging() {
    for gzip in [false, true] {
        let site = template(gzip);
        let d = site.path();
        let delta = format!("{T_DELTA}{}", ext(gzip, false));
        let path = d.join("repo").join(&delta);
        std::fs::remove_file(&path).unwrap();
        mkfifo(&path);
        for args in [
            &["-V", "-r", "repo"][..],
            &["-V", "-Q", "-r", "repo"],
            &["-R", "-r", "repo", "-o", "out.fs"],
            &["-R", "-w", "-r", "repo", "-o", "out.fs"],
        ] {
            let (code, o) = clean(d, args);
            assert_eq!(code, 1, "{args:?}");
            assert!(
                stderr(&o).contains("not a regular file") && stderr(&o).contains(&delta),
                "{args:?}: {}",
                stderr(&o)
            );
        }
        if !gzip {
            // A backup sees that the .dat records another size for the
            // plain file (without opening it) and starts a new chain.
            let (code, o) = clean(d, &["-B", "-f", "Data.fs", "-r", "repo"]);
            assert_eq!(code, 0, "{}", stderr(&o));
            assert!(
                stderr(&o).contains("making a full backup to start a consistent chain"),
                "{}",
                stderr(&o)
            );
        } else {
            let (code, o) = clean(d, &["-B", "-f", "Data.fs", "-r", "repo"]);
            assert_eq!(code, 1, "{}", stderr(&o));
            assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
        }
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        // The chain that holds it (a plain backup above started a newer one).
        let (code, o) = clean(d, &["-R", "-r", "repo", "-D", "2026-11-30", "-o", "out.fs"]);
        assert_eq!(code, 1, "{}", stderr(&o));
        assert!(!d.join("out.fs").exists() && !d.join("out.fs.part").exists());
    }
}

#[test]
fn a_fifo_as_data_fs_or_as_its_index_is_refused_or_ignored_without_hanging() {
    let site = template(false);
    let d = site.path();
    mkfifo(&d.join("Data.fs.index"));
    // The index is only a shortcut: a FIFO in its place is ignored.
    success(d, &["-B", "-F", "-f", "Data.fs", "-r", "repo"]);
    mkfifo(&d.join("Other.fs"));
    let (code, o) = clean(d, &["-B", "-f", "Other.fs", "-r", "repo"]);
    assert_eq!(code, 1);
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
}

#[test]
fn a_backup_file_dated_9999_stops_the_next_backup_with_a_message() {
    let site = template(false);
    let d = site.path();
    std::fs::write(d.join("repo/9999-12-31-23-59-59.deltafs"), b"").unwrap();
    let before = listing(&d.join("repo"));
    let (code, o) = clean(d, &["-B", "-F", "-f", "Data.fs", "-r", "repo"]);
    assert_eq!(code, 1);
    assert!(
        stderr(&o).contains("dated 9999-12-31-23-59-59"),
        "{}",
        stderr(&o)
    );
    assert_eq!(listing(&d.join("repo")), before);
}

// ---------------------------------------------------------------------------
// Blobs: damaged manifests, missing objects, a --blob-dir that is no
// directory
// ---------------------------------------------------------------------------

use repozo::blob::{Hash, Layout as BlobLayout, Manifest};

/// Like [`clean_exit`], also accepting 3 (blob files missing) with a
/// message.
fn clean_blob_exit(what: &str, o: &Output) -> i32 {
    if o.status.code() == Some(3) {
        assert!(!stderr(o).contains("panicked at"), "{what}:\n{}", stderr(o));
        assert!(
            !stderr(o).trim().is_empty(),
            "{what}: exit 3 without a message"
        );
        return 3;
    }
    clean_exit(what, o)
}

fn clean_blob(cwd: &Path, args: &[&str]) -> (i32, Output) {
    let o = run(repozo(cwd, args));
    (clean_blob_exit(&format!("repozo {args:?}"), &o), o)
}

/// Every entry under `root` (relative path → bytes; `None` for a
/// directory, a marker for anything else), without following links.
fn tree(root: &Path) -> std::collections::BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        if md.is_dir() {
            out.insert(rel, None);
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if md.is_file() {
            out.insert(rel, Some(std::fs::read(&p).unwrap()));
        } else {
            out.insert(rel, Some(format!("<{:?}>", md.file_type()).into_bytes()));
        }
    }
    out
}

/// Panics, naming the entries that differ, unless `after` is `before`.
fn assert_same_tree(
    before: &std::collections::BTreeMap<PathBuf, Option<Vec<u8>>>,
    after: &std::collections::BTreeMap<PathBuf, Option<Vec<u8>>>,
    what: &str,
) {
    let changed: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(changed.is_empty(), "{what}: changed {changed:?}");
}

/// The transactions of the blob template: blob records in several pickle
/// forms (one zlib'd, one past 256 bytes), a non-blob record, and an undo
/// (backpointer) of a blob record.
fn blob_template_txns() -> Vec<BlobTxn> {
    let data = |blob, form, zlib, pad| BlobRec::Data {
        blob,
        form,
        zlib,
        pad,
    };
    let txn = |records| BlobTxn {
        status: b' ',
        records,
    };
    vec![
        txn(vec![
            (1, data(true, 0, false, 0)),
            (2, data(true, 3, true, 0)),
            (3, data(false, 0, false, 0)),
        ]),
        txn(vec![(1, data(true, 1, false, 4))]),
        txn(vec![
            (2, BlobRec::Back(Some(0))),
            (4, data(true, 2, false, 300)),
        ]),
        txn(vec![(5, data(true, 0, true, 0))]),
    ]
}

/// A working directory holding `Data.fs` with blob records, its bushy
/// `blobs/`, and `repo/` with a chain made with `--blob-dir`: a full
/// backup of the first two transactions at [`T_FULL`], an incremental one
/// of the rest at [`T_DELTA`].
fn blob_template() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let fs = build_blob_fs(&blob_template_txns());
    let blobs = d.join("blobs");
    std::fs::create_dir_all(blobs.join("tmp")).unwrap();
    std::fs::write(blobs.join(".layout"), "bushy").unwrap();
    for &(oid, tid) in fs.blobs.iter().flatten() {
        let path = blobs.join(BlobLayout::Bushy.file(oid, tid));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("blob {oid:x} {tid:x}\n")).unwrap();
    }
    std::fs::create_dir(d.join("repo")).unwrap();
    let args = ["-B", "-f", "Data.fs", "-r", "repo", "--blob-dir=blobs"];
    std::fs::write(d.join("Data.fs"), &fs.bytes[..fs.boundaries[2] as usize]).unwrap();
    success_at(d, T_FULL, &args);
    std::fs::write(d.join("Data.fs"), &fs.bytes).unwrap();
    success_at(d, T_DELTA, &args);
    success(d, &["-V", "-r", "repo"]);
    dir
}

/// Copies `from` into `to`, recursively (files and directories only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum ManifestDamage {
    Empty,
    CutAt(usize),
    CutBeforeEnd,
    Garbage,
    /// An entry's hash replaced by one of no stored object, resealed.
    UnknownObject,
    /// The objects it names removed from the store.
    ObjectsGone,
}

fn damage_manifest(repo: &Path, name: &str, how: ManifestDamage) {
    let path = repo.join(name);
    let bytes = std::fs::read(&path).unwrap();
    let new = match how {
        ManifestDamage::Empty => Vec::new(),
        ManifestDamage::CutAt(n) => bytes[..n.min(bytes.len())].to_vec(),
        ManifestDamage::CutBeforeEnd => {
            let end = bytes.windows(6).rposition(|w| w == b"# end ").unwrap();
            bytes[..end].to_vec()
        }
        ManifestDamage::Garbage => b"\x00\xffnot a manifest\n\n# end 0 zz\n".to_vec(),
        ManifestDamage::UnknownObject => {
            let mut m = Manifest::parse(&bytes[..], name).unwrap();
            let e = m.entries.iter_mut().find(|e| e.content.is_some()).unwrap();
            e.content = Some((e.content.unwrap().0, Hash::of(b"no such object")));
            m.to_bytes()
        }
        ManifestDamage::ObjectsGone => {
            let m = Manifest::parse(&bytes[..], name).unwrap();
            for (_, h) in m.entries.iter().filter_map(|e| e.content) {
                let _ = std::fs::remove_file(repo.join(repozo::blob::store::object_name(&h)));
            }
            return;
        }
    };
    std::fs::write(&path, new).unwrap();
}

#[test]
fn a_damaged_or_dangling_blob_manifest_gives_exit_0_1_or_3_and_keeps_the_old_output() {
    let template = blob_template();
    for manifest in [format!("{T_FULL}.blobs"), format!("{T_DELTA}.blobs")] {
        for how in [
            ManifestDamage::Empty,
            ManifestDamage::CutAt(20),
            ManifestDamage::CutAt(130),
            ManifestDamage::CutBeforeEnd,
            ManifestDamage::Garbage,
            ManifestDamage::UnknownObject,
            ManifestDamage::ObjectsGone,
        ] {
            let what = format!("{manifest} {how:?}");
            let site = tempfile::tempdir().unwrap();
            let d = site.path();
            copy_tree(template.path(), d);
            damage_manifest(&d.join("repo"), &manifest, how);
            std::fs::write(d.join("out.fs"), b"FS21 the old output, to be kept").unwrap();
            std::fs::create_dir_all(d.join("out-blobs/0x01")).unwrap();
            std::fs::write(d.join("out-blobs/0x01/0x02.blob"), b"old blob, to be kept").unwrap();

            for args in [&["-V", "-r", "repo"][..], &["-V", "-Q", "-r", "repo"]] {
                let (code, o) = clean_blob(d, args);
                // -Q checks sizes only: a replaced hash of equal size passes it.
                if !(args.contains(&"-Q") && matches!(how, ManifestDamage::UnknownObject)) {
                    assert_eq!(code, 1, "{what}: {args:?} passed:\n{}", stderr(&o));
                }
            }

            let before = tree(d);
            for extra in [&[][..], &["-w"], &["-D", T_FULL]] {
                let args = [
                    &["-R", "-r", "repo", "-o", "out.fs", "--blob-dir=out-blobs"][..],
                    extra,
                ]
                .concat();
                let (code, o) = clean_blob(d, &args);
                if code != 0 {
                    assert_same_tree(&before, &tree(d), &format!("{what}: {args:?} failed"));
                } else {
                    // Only a date before the damaged manifest restores.
                    assert!(
                        extra.contains(&"-D") && manifest.starts_with(T_DELTA),
                        "{what}: {args:?} restored from a damaged chain:\n{}",
                        stderr(&o)
                    );
                    std::fs::write(d.join("out.fs"), b"FS21 the old output, to be kept").unwrap();
                    let _ = std::fs::remove_file(d.join("out.fs.index"));
                    std::fs::remove_dir_all(d.join("out-blobs")).unwrap();
                    std::fs::create_dir_all(d.join("out-blobs/0x01")).unwrap();
                    std::fs::write(d.join("out-blobs/0x01/0x02.blob"), b"old blob, to be kept")
                        .unwrap();
                    assert_same_tree(
                        &before,
                        &tree(d),
                        &format!("{what}: putting the old output back"),
                    );
                }
            }

            let (code, o) = clean_blob(
                d,
                &["-B", "-f", "Data.fs", "-r", "repo", "--blob-dir=blobs"],
            );
            let (vcode, vo) = clean_blob(d, &["-V", "-r", "repo"]);
            let dangling = matches!(
                how,
                ManifestDamage::UnknownObject | ManifestDamage::ObjectsGone
            );
            if dangling {
                // A whole manifest is not read by an incremental backup
                // (that would cost a stat per stored object): -V must
                // still report the damage.
                assert_eq!(vcode, 1, "{what}: -V after -B passed:\n{}", stderr(&vo));
            } else {
                // A manifest that is not whole is written again by the
                // next backup, from the same Data.fs: the chain restores.
                assert_eq!(code, 0, "{what}: -B did not repair it:\n{}", stderr(&o));
                assert_eq!(
                    vcode,
                    0,
                    "{what}: -B exited 0 but -V then fails:\n{}",
                    stderr(&vo)
                );
                let (rcode, ro) = clean_blob(
                    d,
                    &["-R", "-r", "repo", "-o", "new.fs", "--blob-dir=new-blobs"],
                );
                assert_eq!(
                    rcode,
                    0,
                    "{what}: -B exited 0 but -R then fails:\n{}",
                    stderr(&ro)
                );
            }
        }
    }
}

#[test]
fn a_blob_dir_that_is_a_file_a_fifo_or_missing_fails_with_a_message_and_writes_nothing() {
    let template = blob_template();
    let d = template.path();
    std::fs::write(d.join("plain"), b"not a blob directory").unwrap();
    mkfifo(&d.join("fifo"));
    for target in ["plain", "fifo", "missing"] {
        let before = tree(d);
        let arg = format!("--blob-dir={target}");
        let args = ["-B", "-F", "-f", "Data.fs", "-r", "repo", &arg];
        let (code, o) = clean_blob(d, &args);
        assert_eq!(code, 1, "{args:?}:\n{}", stderr(&o));
        assert!(stderr(&o).contains(target), "{args:?}:\n{}", stderr(&o));
        assert_same_tree(&before, &tree(d), &format!("{args:?}"));
        if target != "missing" {
            let args = ["-R", "-r", "repo", "-o", "out.fs", &arg];
            let (code, o) = clean_blob(d, &args);
            assert_eq!(code, 1, "{args:?}:\n{}", stderr(&o));
            assert!(stderr(&o).contains(target), "{args:?}:\n{}", stderr(&o));
            assert_same_tree(&before, &tree(d), &format!("{args:?}"));
        }
    }
    // A missing one is created by a restore.
    success(
        d,
        &["-R", "-r", "repo", "-o", "out.fs", "--blob-dir=missing"],
    );
    assert!(d.join("missing/.layout").is_file());
}
