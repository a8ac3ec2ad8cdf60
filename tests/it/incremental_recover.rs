//! Incremental recover (issue 12): `repozo -R -r REPO -o OUT --incremental
//! [-D DATE] [-Q] [-w] [--no-fallback]` brings an existing standby Data.fs
//! to the state a full recover as of the same date restores, appending only
//! what is new, truncating to rewind, and falling back to a full recover
//! when OUT holds foreign bytes.
//!
//! The oracle is ZODB 6.4's own repozo: a full `-R -r REPO -D DATE -o
//! ref.fs` (`tests/py/standby.py recover`). After every run OUT must be
//! byte-identical to `ref.fs`, and `OUT.index` to `ref.fs.index` (or both
//! absent). Histories are written by real ZODB (`tests/py/zodbtool.py`,
//! `tests/py/standby.py small`) and backed up by our binary under a pinned
//! clock (`REPOZO_TEST_NOW`); crashes use the debug build's
//! `REPOZO_FAILPOINT`.
//!
//! `REPOZO_INCR_STEPS` sets the length of the random histories (default
//! 10 backups each).
//!
//! What the summary line must say is asserted exactly where the contract
//! fixes it: OUT at a date of the same chain as the target (already
//! current / appended N bytes from K files / truncated to B bytes), OUT
//! missing or holding bytes that disagree with the target (full recover).
//! Where OUT's bytes are a prefix-consistent state of another chain (a
//! `-F` full without a pack in between) an md5 proof may legitimately
//! accept them, so there only the numbers of whatever line is printed are
//! checked against OUT's size and the target's.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use crate::common::py;
use crate::common::{Rng, crashed, listing, ours, run, stderr, zodb};

/// The `-o` argument of every run, relative to the run's working directory
/// (the summary line starts with it exactly as given).
const OUT: &str = "standby/Data.fs";
const MIB: u64 = 1 << 20;

/// The failpoints of the incremental path, in the order they are reached.
const INCREMENTAL_FAILPOINTS: [&str; 7] = [
    "incremental:locked",
    "incremental:proved",
    "incremental:truncated",
    "incremental:appended-file",
    "incremental:synced",
    "incremental:index-installed",
    "incremental:state-written",
];

/// The failpoints of the full-recover fallback.
const RECOVER_FAILPOINTS: [&str; 2] = ["recover:data-copied", "recover:output-renamed"];

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn stamp(secs: u64) -> String {
    repozo::Stamp::from_unix(secs).to_string()
}

/// Length of the random histories: `REPOZO_INCR_STEPS`, default 10.
fn steps() -> usize {
    match std::env::var("REPOZO_INCR_STEPS") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|&n: &usize| n >= 6)
            .unwrap_or_else(|| panic!("REPOZO_INCR_STEPS={v:?}: expected a number >= 6")),
        Err(_) => 10,
    }
}

/// Asserts `a == b` without dumping megabytes.
fn assert_same_bytes(a: &[u8], b: &[u8], what: &str) {
    if a == b {
        return;
    }
    let first = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    panic!(
        "{what}: contents differ ({} vs {} bytes, first difference at offset {first})",
        a.len(),
        b.len()
    );
}

fn read_opt(p: &Path) -> Option<Vec<u8>> {
    match std::fs::read(p) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("{}: {e}", p.display()),
    }
}

/// `a` and `b` agree on their common length (one could be the other's
/// state at an earlier or later boundary of the same history).
fn prefix_consistent(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

// ---------------------------------------------------------------------------
// The Python side
// ---------------------------------------------------------------------------

fn standby_py() -> Command {
    py::python_script(&py::repo_root().join("tests").join("py").join("standby.py"))
}

/// Runs `tests/py/standby.py ARGS`, failing loudly unless it exits 0.
fn standby_tool(args: &[&str]) -> Output {
    let mut c = standby_py();
    c.args(args);
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run standby.py {args:?}: {e}"));
    assert!(
        o.status.success(),
        "standby.py {args:?} failed with {}:\n{}",
        o.status,
        stderr(&o)
    );
    o
}

/// zodbtool `grow` options for large values, of at most 40 KB each.
const BIG_VALUES: &[&str] = &["--blobby", "--max-value", "40000"];

/// `count` tiny transactions that change only the root mapping.
fn small(data_fs: &Path, count: u64, tag: &str) {
    standby_tool(&[
        "small",
        s(data_fs),
        "--count",
        &count.to_string(),
        "--tag",
        tag,
    ]);
}

// ---------------------------------------------------------------------------
// The repository and the oracle
// ---------------------------------------------------------------------------

/// A data file of the repository with its range in the recovered file.
#[derive(Clone, Debug)]
struct RepoFile {
    stem: String,
    full: bool,
    start: u64,
    end: u64,
}

/// The data files of `repo` in date order, with the ranges their `.dat`
/// lines give.
fn repo_files(repo: &Path) -> Vec<RepoFile> {
    let names = listing(repo);
    let mut ranges = BTreeMap::new();
    for name in names.iter().filter(|n| n.ends_with(".dat")) {
        let text = std::fs::read_to_string(repo.join(name)).unwrap();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 4, "{name}: bad line {line:?}");
            let base = Path::new(f[0]).file_name().unwrap().to_str().unwrap();
            let (a, b): (u64, u64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
            ranges.insert(base.to_owned(), (a, b));
        }
    }
    let mut files = Vec::new();
    for name in &names {
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        let full = match ext {
            "fs" | "fsz" => true,
            "deltafs" | "deltafsz" => false,
            _ => continue,
        };
        let &(start, end) = ranges
            .get(name)
            .unwrap_or_else(|| panic!("{name} is in no .dat of {}", repo.display()));
        files.push(RepoFile {
            stem: stem.to_owned(),
            full,
            start,
            end,
        });
    }
    files
}

/// What a full recover as of a date restores: repozo's chain selection
/// (the newest full whose stem is `<= date`, and the increments after it
/// up to the date, compared as strings).
#[derive(Clone, Debug)]
struct Target {
    chain: String,
    end: u64,
    files: Vec<RepoFile>,
}

fn target(files: &[RepoFile], date: &str) -> Target {
    let mut chain: Vec<RepoFile> = Vec::new();
    for f in files.iter().rev().filter(|f| f.stem.as_str() <= date) {
        chain.push(f.clone());
        if f.full {
            break;
        }
    }
    chain.reverse();
    assert!(
        chain.first().is_some_and(|f| f.full),
        "no full backup at or before {date}"
    );
    Target {
        chain: chain[0].stem.clone(),
        end: chain.last().unwrap().end,
        files: chain,
    }
}

/// ZODB's full recover of one date.
struct Oracle {
    bytes: Vec<u8>,
    index: Option<Vec<u8>>,
}

impl Oracle {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// ZODB's repozo recovers `repo` as of every date (one Python process),
/// into `refdir`.
fn oracles(repo: &Path, refdir: &Path, dates: &[String]) -> BTreeMap<String, Oracle> {
    let mut unique: Vec<&str> = dates.iter().map(String::as_str).collect();
    unique.sort_unstable();
    unique.dedup();
    std::fs::create_dir_all(refdir).unwrap();
    let mut args = vec!["recover", s(repo), s(refdir)];
    args.extend(&unique);
    standby_tool(&args);
    unique
        .iter()
        .map(|d| {
            let p = refdir.join(format!("{d}.fs"));
            let bytes = std::fs::read(&p).unwrap();
            let index = read_opt(&refdir.join(format!("{d}.fs.index")));
            (d.to_string(), Oracle { bytes, index })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The summary line
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Summary {
    Current(u64),
    Appended { bytes: u64, files: u64 },
    Truncated(u64),
    TruncatedAppended { to: u64, bytes: u64, files: u64 },
    Full(String),
}

impl Summary {
    fn is_full(&self) -> bool {
        matches!(self, Summary::Full(_))
    }
}

/// `N bytes from K files` (or `1 file`).
fn parse_appended(s: &str) -> Option<(u64, u64)> {
    let (n, rest) = s.split_once(" bytes from ")?;
    let k = rest
        .strip_suffix(" files")
        .or_else(|| rest.strip_suffix(" file"))?;
    Some((n.parse().ok()?, k.parse().ok()?))
}

fn parse_summary(rest: &str) -> Option<Summary> {
    if let Some(r) = rest.strip_prefix("full recover because ") {
        return (!r.trim().is_empty()).then(|| Summary::Full(r.to_owned()));
    }
    if let Some(r) = rest.strip_prefix("already current (") {
        return Some(Summary::Current(r.strip_suffix(" bytes)")?.parse().ok()?));
    }
    if let Some(r) = rest.strip_prefix("appended ") {
        let (bytes, files) = parse_appended(r)?;
        return Some(Summary::Appended { bytes, files });
    }
    let r = rest.strip_prefix("truncated to ")?;
    if let Some((b, tail)) = r.split_once(" bytes, then appended ") {
        let (bytes, files) = parse_appended(tail)?;
        return Some(Summary::TruncatedAppended {
            to: b.parse().ok()?,
            bytes,
            files,
        });
    }
    Some(Summary::Truncated(r.strip_suffix(" bytes")?.parse().ok()?))
}

/// The one summary line of a successful run. Without `-v` it must be all
/// of stderr; with `-v` exactly one line may be a summary.
fn summary(o: &Output, verbose: bool, what: &str) -> Summary {
    let err = stderr(o);
    let prefix = format!("{OUT}: ");
    if !verbose {
        assert_eq!(
            err.lines().count(),
            1,
            "{what}: expected exactly one line on stderr, got:\n{err}"
        );
    }
    let found: Vec<Summary> = err
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(parse_summary)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{what}: expected one summary line starting with {prefix:?}, got:\n{err}"
    );
    found.into_iter().next().unwrap()
}

/// The numbers of `sum` agree with OUT's size before the run and the
/// target's end.
fn assert_coherent(sum: &Summary, before: Option<u64>, target: u64, what: &str) {
    let Some(s) = before else {
        assert!(sum.is_full(), "{what}: OUT did not exist, yet {sum:?}");
        return;
    };
    let ok = match *sum {
        Summary::Full(_) => true,
        Summary::Current(n) => n == target && s == target,
        Summary::Appended { bytes, files } => bytes > 0 && files >= 1 && s + bytes == target,
        Summary::Truncated(b) => b == target && target < s,
        Summary::TruncatedAppended { to, bytes, files } => {
            to < s && bytes > 0 && files >= 1 && to + bytes == target
        }
    };
    assert!(
        ok,
        "{what}: {sum:?} does not fit OUT's size {s} and the target's {target}"
    );
}

// ---------------------------------------------------------------------------
// A standby directory
// ---------------------------------------------------------------------------

/// What an unchanged OUT keeps.
struct Snap {
    data: Vec<u8>,
    index: Option<Vec<u8>>,
    state: Option<Vec<u8>>,
    dev: u64,
    ino: u64,
}

/// A working directory holding `standby/` (where OUT lives), recovering
/// from `repo` (absolute).
struct Standby {
    _tmp: Option<tempfile::TempDir>,
    dir: PathBuf,
    repo: PathBuf,
}

impl Standby {
    fn new(repo: &Path) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        std::fs::create_dir(dir.join("standby")).unwrap();
        Standby {
            _tmp: Some(tmp),
            dir,
            repo: repo.to_owned(),
        }
    }

    /// A standby in `dir` (which the caller cleans up).
    fn inside(dir: &Path, repo: &Path) -> Self {
        std::fs::create_dir_all(dir.join("standby")).unwrap();
        Standby {
            _tmp: None,
            dir: dir.to_owned(),
            repo: repo.to_owned(),
        }
    }

    fn out(&self) -> PathBuf {
        self.dir.join(OUT)
    }

    fn side(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{OUT}{suffix}"))
    }

    fn size(&self) -> Option<u64> {
        std::fs::metadata(self.out()).ok().map(|m| m.len())
    }

    fn ino(&self) -> (u64, u64) {
        let m = std::fs::metadata(self.out()).unwrap();
        (m.dev(), m.ino())
    }

    fn snap(&self) -> Snap {
        let (dev, ino) = self.ino();
        Snap {
            data: std::fs::read(self.out()).unwrap(),
            index: read_opt(&self.side(".index")),
            state: read_opt(&self.side(".repozo-state")),
            dev,
            ino,
        }
    }

    /// OUT, its `.index` and its state file are as in `before`, the
    /// same file (inode), and no `.part` is left.
    fn assert_unchanged(&self, before: &Snap, what: &str) {
        let now = self.snap();
        assert_same_bytes(&now.data, &before.data, &format!("{what}: OUT"));
        assert!(now.index == before.index, "{what}: OUT.index changed");
        assert!(now.state == before.state, "{what}: the state file changed");
        assert_eq!(
            (now.dev, now.ino),
            (before.dev, before.ino),
            "{what}: OUT was replaced"
        );
        assert!(!self.side(".part").exists(), "{what}: OUT.part left");
    }

    /// OUT and OUT.index are ZODB's full recover's, and no `.part` is left.
    fn assert_oracle(&self, oracle: &Oracle, what: &str) {
        let data = std::fs::read(self.out()).unwrap_or_else(|e| panic!("{what}: OUT: {e}"));
        assert_same_bytes(&data, &oracle.bytes, &format!("{what}: OUT"));
        let index = read_opt(&self.side(".index"));
        match (&index, &oracle.index) {
            (None, None) => {}
            (Some(a), Some(b)) => assert_same_bytes(a, b, &format!("{what}: OUT.index")),
            (a, b) => panic!(
                "{what}: OUT.index {} but ZODB's recover {} one",
                if a.is_some() { "exists" } else { "is absent" },
                if b.is_some() { "writes" } else { "leaves none" }
            ),
        }
        assert!(!self.side(".part").exists(), "{what}: OUT.part left");
    }

    /// `repozo -R -r REPO -o OUT --incremental [-D date] FLAGS`, with the
    /// failpoint if any.
    fn incr(&self, date: Option<&str>, flags: &[&str], failpoint: Option<&str>) -> Output {
        let mut c = ours();
        c.current_dir(&self.dir)
            .args(["-R", "-r", s(&self.repo), "-o", OUT, "--incremental"]);
        if let Some(d) = date {
            c.args(["-D", d]);
        }
        c.args(flags);
        match failpoint {
            Some(f) => c.env("REPOZO_FAILPOINT", f),
            None => c.env_remove("REPOZO_FAILPOINT"),
        };
        run(c)
    }

    /// A successful `--incremental` run that leaves the oracle's bytes and
    /// index; checks the summary's numbers, that OUT is the same file
    /// unless the run recovered in full, and that a state file is left.
    fn incr_ok(&self, date: Option<&str>, flags: &[&str], oracle: &Oracle, what: &str) -> Summary {
        let before = self.size();
        let ino = before.map(|_| self.ino());
        let o = self.incr(date, flags, None);
        assert!(
            o.status.success(),
            "{what}: --incremental {date:?} {flags:?} failed with {}:\n{}",
            o.status,
            stderr(&o)
        );
        assert!(o.stdout.is_empty(), "{what}: output on stdout");
        let verbose = flags.iter().any(|f| *f == "-v" || *f == "--verbose");
        let sum = summary(&o, verbose, what);
        let what = format!("{what} ({sum:?})");
        assert_coherent(&sum, before, oracle.len(), &what);
        self.assert_oracle(oracle, &what);
        if !sum.is_full() {
            assert_eq!(
                Some(self.ino()),
                ino,
                "{what}: OUT was replaced by an incremental run"
            );
            assert!(
                self.side(".repozo-state").exists(),
                "{what}: no state file after an incremental run"
            );
        }
        sum
    }

    /// A refused run: exit `code`, and OUT as in `before`.
    fn incr_refused(
        &self,
        date: Option<&str>,
        flags: &[&str],
        code: i32,
        before: &Snap,
        what: &str,
    ) -> String {
        let o = self.incr(date, flags, None);
        let err = stderr(&o);
        assert_eq!(
            o.status.code(),
            Some(code),
            "{what}: exit status; stderr: {err}"
        );
        assert!(!err.contains("panicked"), "{what}: {err}");
        self.assert_unchanged(before, what);
        err
    }
}

/// The `--no-fallback` refusal: exactly one line,
/// `OUT: cannot recover incrementally: <reason>; run without --no-fallback
/// to recover in full`.
fn assert_no_fallback_message(err: &str, what: &str) {
    assert_eq!(err.lines().count(), 1, "{what}: one line expected:\n{err}");
    let line = err.trim_end();
    let reason = line
        .strip_prefix(&format!("{OUT}: cannot recover incrementally: "))
        .and_then(|r| r.strip_suffix("; run without --no-fallback to recover in full"));
    assert!(
        reason.is_some_and(|r| !r.trim().is_empty()),
        "{what}: unexpected message: {line}"
    );
}

/// Flips one bit of OUT at `offset` in place, keeping its size, inode,
/// and access and modification times to the nanosecond.
fn flip_keeping_mtime(path: &Path, offset: u64) {
    let before = std::fs::metadata(path).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x04;
    f.write_all_at(&b, offset).unwrap();
    f.sync_all().unwrap();
    let times = std::fs::FileTimes::new()
        .set_accessed(before.accessed().unwrap())
        .set_modified(before.modified().unwrap());
    f.set_times(times).unwrap();
    drop(f);
    let after = std::fs::metadata(path).unwrap();
    assert_eq!(
        (after.len(), after.ino(), after.mtime(), after.mtime_nsec()),
        (
            before.len(),
            before.ino(),
            before.mtime(),
            before.mtime_nsec()
        ),
        "the flip must keep size, inode and mtime"
    );
}

/// Start of the last transaction of a FileStorage file that ends exactly
/// after a transaction (its redundant length is the file's last 8 bytes).
fn last_txn_start(data: &[u8]) -> u64 {
    let n = data.len();
    let tlen = u64::from_be_bytes(data[n - 8..].try_into().unwrap());
    n as u64 - 8 - tlen
}

// ---------------------------------------------------------------------------
// The fixed history shared by the targeted tests
// ---------------------------------------------------------------------------

/// One repository, built once per test process and only read by the
/// tests: chain A (a plain full over 3 MiB, a gzip increment, two plain
/// increments, each ending with small root-only transactions), then a
/// ZODB pack and chain B (a full, a gzip increment).
struct Fixed {
    dir: PathBuf,
    repo: PathBuf,
    a: [String; 4],
    b: [String; 2],
    oracle: BTreeMap<String, Oracle>,
}

impl Fixed {
    fn oracle(&self, date: &str) -> &Oracle {
        &self.oracle[date]
    }

    fn end(&self, date: &str) -> u64 {
        self.oracle(date).len()
    }

    fn standby(&self) -> Standby {
        Standby::new(&self.repo)
    }

    /// A standby recovered (in full: OUT is missing) as of `first`, then
    /// brought incrementally to each of `then`.
    fn standby_at(&self, first: &str, then: &[&str], what: &str) -> Standby {
        let st = self.standby();
        let sum = st.incr_ok(Some(first), &[], self.oracle(first), what);
        assert!(sum.is_full(), "{what}: a missing OUT gave {sum:?}");
        for d in then {
            let sum = st.incr_ok(Some(d), &[], self.oracle(d), what);
            assert!(!sum.is_full(), "{what}: to {d}: {sum:?}");
        }
        st
    }
}

static FIXED: OnceLock<Fixed> = OnceLock::new();

extern "C" fn remove_fixed() {
    if let Some(f) = FIXED.get() {
        let _ = std::fs::remove_dir_all(&f.dir);
    }
}

fn fixed() -> &'static Fixed {
    FIXED.get_or_init(|| {
        let t0 = Instant::now();
        let f = build_fixed();
        // The fixture outlives every test; remove it when the process exits.
        // SAFETY: registers a plain function with no preconditions.
        unsafe { libc::atexit(remove_fixed) };
        eprintln!(
            "incremental_recover: fixed history built in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        f
    })
}

fn build_fixed() -> Fixed {
    // Removed by the drop if building fails; kept (and removed at exit) once built.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let data_fs = dir.join("Data.fs");
    let repo = dir.join("repo");
    std::fs::create_dir(&repo).unwrap();
    let stamps: Vec<String> = (0..6)
        .map(|i| stamp(1_610_000_000 + i * 86_400 + i * 3_600))
        .collect();
    let backup = |args: &[&str], at: &str| {
        let mut c = ours();
        c.current_dir(&dir)
            .args(args)
            .args(["-r", "repo", "-f", "Data.fs"])
            .env("REPOZO_TEST_NOW", at)
            .env_remove("REPOZO_FAILPOINT");
        let o = run(c);
        assert!(o.status.success(), "backup {args:?}: {}", stderr(&o));
    };
    // Chain A.
    zodb::grow_with(&data_fs, 11, 101, BIG_VALUES);
    small(&data_fs, 2, "a0");
    backup(&["-BF"], &stamps[0]);
    zodb::grow(&data_fs, 2, 102);
    small(&data_fs, 2, "a1");
    backup(&["-Bz"], &stamps[1]);
    zodb::grow_with(&data_fs, 1, 103, BIG_VALUES);
    small(&data_fs, 3, "a2");
    backup(&["-B"], &stamps[2]);
    small(&data_fs, 3, "a3");
    backup(&["-BQ"], &stamps[3]);
    // A pack: the next backup starts chain B.
    zodb::pack(&data_fs);
    small(&data_fs, 1, "b0");
    backup(&["-B"], &stamps[4]);
    zodb::grow(&data_fs, 1, 104);
    small(&data_fs, 1, "b1");
    backup(&["-Bz"], &stamps[5]);

    let files = repo_files(&repo);
    let kinds: Vec<(bool, &str)> = files.iter().map(|f| (f.full, f.stem.as_str())).collect();
    let expected: Vec<(bool, &str)> = stamps
        .iter()
        .enumerate()
        .map(|(i, st)| (i == 0 || i == 4, st.as_str()))
        .collect();
    assert_eq!(kinds, expected, "the fixed history's repository");
    let oracle = oracles(&repo, &dir.join("ref"), &stamps);
    for st in &stamps {
        assert_eq!(
            oracle[st].len(),
            target(&files, st).end,
            "oracle of {st} vs the .dat"
        );
    }
    let (a0, a2, b0) = (
        &oracle[&stamps[0]],
        &oracle[&stamps[2]],
        &oracle[&stamps[4]],
    );
    assert!(a0.len() > 3 * MIB, "the first full is {} bytes", a0.len());
    assert!(
        !prefix_consistent(&a2.bytes, &b0.bytes),
        "the pack must change bytes that chain A recovers"
    );
    Fixed {
        dir: tmp.keep(),
        repo,
        a: std::array::from_fn(|i| stamps[i].clone()),
        b: std::array::from_fn(|i| stamps[4 + i].clone()),
        oracle,
    }
}

/// The precondition of everything below: the fixed history's oracle is
/// what our plain full recover restores too, date by date.
#[test]
fn the_fixed_history_is_recovered_by_our_plain_full_recover_as_by_zodbs() {
    let f = fixed();
    let st = f.standby();
    for date in f.a.iter().chain(&f.b) {
        let mut c = ours();
        c.current_dir(&st.dir)
            .args(["-R", "-r", s(&f.repo), "-D", date, "-o", OUT])
            .env_remove("REPOZO_FAILPOINT");
        let o = run(c);
        assert!(o.status.success(), "-R -D {date}: {}", stderr(&o));
        st.assert_oracle(f.oracle(date), &format!("plain -R -D {date}"));
    }
}

// ---------------------------------------------------------------------------
// 1. Random histories: forward, rewind, forward, across chains
// ---------------------------------------------------------------------------

/// A random history backed up by our binary, with every backup date.
struct History {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// The stamp of every backup run (including runs that found nothing
    /// to do, whose dates fall between two files).
    dates: Vec<String>,
    files: Vec<RepoFile>,
    oracle: BTreeMap<String, Oracle>,
}

fn build_history(seed: u64, steps: usize) -> History {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let data_fs = dir.join("Data.fs");
    std::fs::create_dir(dir.join("repo")).unwrap();
    let mut rng = Rng::new(seed);
    // Stamps in the past: a run without -D recovers as of the real clock.
    let mut secs = 1_600_000_000 + seed * 10_000_000;
    let mut dates = Vec::new();
    // Besides the random choices: a pack (a new chain of other bytes), a
    // -F right after it (a new chain continuing the same bytes), a backup
    // that finds nothing to do, and a last plain increment (so that the
    // last two dates are a truncation apart).
    let (forced_pack, forced_full) = ((steps - 2) / 2, (steps - 2) / 2 + 1);
    let (idle, last) = (steps - 2, steps - 1);
    for i in 0..steps {
        let what = format!("seed {seed} step {i}");
        if i == 0 {
            // Large values: OUT is over 3 MiB from the start.
            zodb::grow_with(&data_fs, 10, seed * 1000, BIG_VALUES);
        } else if i != idle {
            let txns = 1 + rng.below(3);
            let values: &[&str] = if rng.chance(25) { BIG_VALUES } else { &[] };
            zodb::grow_with(&data_fs, txns, seed * 1000 + i as u64, values);
            if rng.chance(25) {
                zodb::undo(&data_fs);
            }
            if rng.chance(30) {
                small(&data_fs, 1 + rng.below(3), &format!("h{i}"));
            }
            if i == forced_pack || (i != last && rng.chance(8)) {
                zodb::pack(&data_fs);
            }
        }
        let mut args = vec!["-B", "-r", "repo", "-f", "Data.fs"];
        if rng.chance(40) {
            args.push("-z");
        }
        if rng.chance(40) {
            args.push("-Q");
        }
        if i == 0 || i == forced_full || (i != idle && i != last && rng.chance(10)) {
            args.push("-F");
        }
        secs += match rng.below(6) {
            0..=2 => 1 + rng.below(59),
            3 | 4 => 3_600,
            _ => 86_400,
        };
        let at = stamp(secs);
        let mut c = ours();
        c.current_dir(&dir)
            .args(&args)
            .env("REPOZO_TEST_NOW", &at)
            .env_remove("REPOZO_FAILPOINT");
        let o = run(c);
        assert!(o.status.success(), "{what}: {args:?}: {}", stderr(&o));
        dates.push(at);
    }
    // A chain file without its .index: ZODB's recover then leaves no
    // OUT.index, and neither may we.
    let files = repo_files(&dir.join("repo"));
    if let Some(f) = files.iter().rev().skip(1).find(|f| !f.full) {
        std::fs::remove_file(dir.join("repo").join(format!("{}.index", f.stem))).unwrap();
    }
    let oracle = oracles(&dir.join("repo"), &dir.join("ref"), &dates);
    for d in &dates {
        assert_eq!(
            oracle[d].len(),
            target(&files, d).end,
            "seed {seed}: oracle of {d} vs the .dat"
        );
    }
    assert!(
        files.iter().filter(|f| f.full).count() >= 2,
        "seed {seed}: the history must have several chains"
    );
    assert!(
        oracle.values().any(|o| o.len() > 3 * MIB),
        "seed {seed}: no state over 3 MiB"
    );
    assert!(
        oracle.values().any(|o| o.index.is_none()),
        "seed {seed}: no date without an .index"
    );
    History {
        _tmp: tmp,
        dir,
        dates,
        files,
        oracle,
    }
}

/// How often each kind of summary came up.
#[derive(Default, Debug)]
struct Seen {
    current: usize,
    appended: usize,
    truncated: usize,
    truncated_appended: usize,
    full: usize,
    /// Full recovers forced by a chain whose bytes disagree with OUT's.
    cross_chain_full: usize,
}

fn random_history(seed: u64) {
    let t0 = Instant::now();
    let h = build_history(seed, steps());
    let built = t0.elapsed().as_secs_f64();
    let mut rng = Rng::new(seed ^ 0x5eed);
    let st = Standby::inside(&h.dir, &h.dir.join("repo"));
    let n = h.dates.len();

    // Dates to visit: every later one in turn, a few earlier ones
    // (rewinds), forward again, and finally no -D (the latest state).
    let mut plan: Vec<Option<usize>> = (1..n).map(Some).collect();
    let mut back: Vec<usize> = vec![n - 2, rng.below(n as u64 - 2) as usize];
    back.extend((0..n - 2).filter(|_| rng.chance(35)));
    back.sort_unstable_by(|a, b| b.cmp(a));
    back.dedup();
    plan.extend(back.iter().map(|&i| Some(i)));
    let lowest = *back.last().unwrap();
    plan.extend((lowest + 1..n - 1).filter(|_| rng.chance(50)).map(Some));
    plan.push(Some(n - 1));
    plan.push(None);

    // The start: OUT as of the first date, by a plain full recover or by
    // --incremental into a missing OUT.
    let first = &h.dates[0];
    let mut seen = Seen::default();
    if rng.chance(50) {
        let mut c = ours();
        c.current_dir(&h.dir)
            .args(["-R", "-r", "repo", "-D", first, "-o", OUT])
            .env_remove("REPOZO_FAILPOINT");
        let o = run(c);
        assert!(
            o.status.success(),
            "seed {seed}: -R -D {first}: {}",
            stderr(&o)
        );
        st.assert_oracle(&h.oracle[first], &format!("seed {seed}: plain -R"));
    } else {
        let what = format!("seed {seed}: --incremental into a missing OUT");
        let sum = st.incr_ok(Some(first), &[], &h.oracle[first], &what);
        assert!(sum.is_full(), "{what}: {sum:?}");
        seen.full += 1;
    }
    let mut cur = first.clone();

    for (k, step) in plan.iter().enumerate() {
        let date = step.map(|i| h.dates[i].clone());
        let key = date.clone().unwrap_or_else(|| h.dates[n - 1].clone());
        let oracle = &h.oracle[&key];
        let mut flags: Vec<&str> = Vec::new();
        if rng.chance(50) {
            flags.push("-Q");
        }
        if rng.chance(25) {
            flags.push("-w");
        }
        if rng.chance(10) {
            flags.push("-v");
        }
        let what = format!(
            "seed {seed}, run {k}: OUT as of {cur} -> {} {flags:?}",
            date.as_deref().unwrap_or("(no -D)")
        );
        let (prev, tgt) = (target(&h.files, &cur), target(&h.files, &key));
        let sum = st.incr_ok(date.as_deref(), &flags, oracle, &what);
        if prev.chain == tgt.chain {
            let expected = match tgt.end.cmp(&prev.end) {
                std::cmp::Ordering::Equal => Summary::Current(tgt.end),
                std::cmp::Ordering::Greater => Summary::Appended {
                    bytes: tgt.end - prev.end,
                    files: tgt.files.iter().filter(|f| f.start >= prev.end).count() as u64,
                },
                std::cmp::Ordering::Less => Summary::Truncated(tgt.end),
            };
            assert_eq!(sum, expected, "{what}");
        } else if !prefix_consistent(&h.oracle[&cur].bytes, &oracle.bytes) {
            assert!(
                sum.is_full(),
                "{what}: OUT's bytes are foreign, yet {sum:?}"
            );
            seen.cross_chain_full += 1;
        }
        match sum {
            Summary::Current(_) => seen.current += 1,
            Summary::Appended { .. } => seen.appended += 1,
            Summary::Truncated(_) => seen.truncated += 1,
            Summary::TruncatedAppended { .. } => seen.truncated_appended += 1,
            Summary::Full(_) => seen.full += 1,
        }
        cur = key;
    }
    assert!(
        seen.appended >= 1
            && seen.truncated >= 1
            && seen.current >= 1
            && seen.cross_chain_full >= 1,
        "seed {seed}: every kind must come up: {seen:?}"
    );
    eprintln!(
        "seed {seed}: history of {n} backups built in {built:.1} s, {} runs in {:.1} s: {seen:?}",
        plan.len(),
        t0.elapsed().as_secs_f64() - built
    );
}

#[test]
fn incremental_recover_to_every_date_forward_back_and_forward_again_matches_zodbs_full_recover() {
    random_history(1);
}

#[test]
fn a_second_random_history_recovered_incrementally_matches_zodbs_full_recover_at_every_date() {
    random_history(2);
}

// ---------------------------------------------------------------------------
// 2. A crash at every step, then the same command again
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// OUT at A0, target A3: appends a gzip and two plain files.
    Forward,
    /// OUT at A3, target A1: a truncation.
    Rewind,
    /// OUT at A1 plus half of A2's bytes (a torn append), target A3.
    Torn,
    /// OUT at A2, target B1 (after a pack): the full-recover fallback.
    Pack,
}

impl Scenario {
    const ALL: [Scenario; 4] = [
        Scenario::Forward,
        Scenario::Rewind,
        Scenario::Torn,
        Scenario::Pack,
    ];

    /// The failpoints this scenario must reach.
    fn must_reach(self) -> &'static [&'static str] {
        match self {
            Scenario::Forward => &[
                "incremental:locked",
                "incremental:proved",
                "incremental:appended-file",
                "incremental:synced",
                "incremental:index-installed",
                "incremental:state-written",
            ],
            Scenario::Rewind => &[
                "incremental:locked",
                "incremental:proved",
                "incremental:truncated",
                "incremental:index-installed",
                "incremental:state-written",
            ],
            Scenario::Torn => &[
                "incremental:locked",
                "incremental:proved",
                "incremental:truncated",
                "incremental:appended-file",
                "incremental:synced",
                "incremental:index-installed",
                "incremental:state-written",
            ],
            Scenario::Pack => &[
                "incremental:locked",
                "recover:data-copied",
                "recover:output-renamed",
            ],
        }
    }

    /// Sets OUT up; returns the target date and the boundary below which
    /// OUT's bytes are proven (never to be rewritten by the incremental
    /// path).
    fn setup<'f>(self, f: &'f Fixed, what: &str) -> (Standby, &'f str, u64) {
        let a = &f.a;
        match self {
            Scenario::Forward => (f.standby_at(&a[0], &[], what), &a[3], f.end(&a[0])),
            Scenario::Rewind => (f.standby_at(&a[0], &[&a[3]], what), &a[1], f.end(&a[1])),
            Scenario::Torn => {
                let st = f.standby_at(&a[0], &[&a[1]], what);
                let (e1, e2) = (f.end(&a[1]) as usize, f.end(&a[2]) as usize);
                let torn = &f.oracle(&a[3]).bytes[e1..e1 + (e2 - e1) / 2];
                let mut out = std::fs::OpenOptions::new()
                    .append(true)
                    .open(st.out())
                    .unwrap();
                out.write_all(torn).unwrap();
                (st, &a[3], e1 as u64)
            }
            Scenario::Pack => {
                let st = f.standby_at(&a[1], &[&a[2]], what);
                let keep = f.end(&a[2]);
                (st, &f.b[1], keep)
            }
        }
    }
}

#[test]
fn a_crash_at_every_step_leaves_the_proven_prefix_and_the_rerun_gives_zodbs_bytes() {
    let f = fixed();
    let all: Vec<&str> = INCREMENTAL_FAILPOINTS
        .iter()
        .chain(&RECOVER_FAILPOINTS)
        .copied()
        .collect();
    let mut reached: BTreeMap<&str, usize> = BTreeMap::new();
    for (si, scenario) in Scenario::ALL.into_iter().enumerate() {
        for (fi, &fp) in all.iter().enumerate() {
            let quick = (si + fi) % 2 == 1;
            let flags: &[&str] = if quick { &["-Q"] } else { &[] };
            let what = format!("{scenario:?}, crash at {fp}, flags {flags:?}");
            let (st, date, keep) = scenario.setup(f, &what);
            let oracle = f.oracle(date);
            let before = st.snap();
            let o = st.incr(Some(date), flags, Some(fp));
            if !crashed(&o) {
                assert!(
                    !scenario.must_reach().contains(&fp),
                    "{what}: the failpoint was not reached: {}\n{}",
                    o.status,
                    stderr(&o)
                );
                assert!(o.status.success(), "{what}: {}", stderr(&o));
                st.assert_oracle(oracle, &what);
                continue;
            }
            *reached.entry(fp).or_default() += 1;
            assert!(!st.side(".part").exists() || fp.starts_with("recover:"));
            let now = std::fs::read(st.out()).unwrap_or_else(|e| panic!("{what}: OUT: {e}"));
            if scenario != Scenario::Pack {
                // Only the incremental path, which never replaces OUT nor
                // rewrites what it proved.
                assert!(
                    fp.starts_with("incremental:"),
                    "{what}: a full recover was started"
                );
                assert_eq!(
                    st.ino(),
                    (before.dev, before.ino),
                    "{what}: OUT was replaced"
                );
                assert!(
                    now.len() as u64 >= keep,
                    "{what}: OUT cut below the proven boundary {keep}"
                );
                let k = keep as usize;
                assert_same_bytes(
                    &now[..k],
                    &before.data[..k],
                    &format!("{what}: proven prefix"),
                );
            } else if fp == "recover:output-renamed" {
                assert_same_bytes(&now, &oracle.bytes, &format!("{what}: renamed output"));
            } else if fp == "recover:data-copied" || now != oracle.bytes {
                // Before the full recover's rename, OUT is as it was.
                st.assert_unchanged_but_part(&before, &what);
            }
            // The same command again completes the work.
            let sum = st.incr_ok(Some(date), flags, oracle, &format!("{what}: rerun"));
            if scenario != Scenario::Pack {
                assert!(
                    !sum.is_full(),
                    "{what}: the rerun recovered in full: {sum:?}"
                );
                assert_eq!(
                    st.ino(),
                    (before.dev, before.ino),
                    "{what}: OUT was replaced"
                );
            }
        }
    }
    let missing: Vec<&&str> = all
        .iter()
        .filter(|fp| !reached.contains_key(**fp))
        .collect();
    assert!(missing.is_empty(), "failpoints never reached: {missing:?}");
}

impl Standby {
    /// After a crash before the full recover's rename: OUT, OUT.index and
    /// the state file as before (a `.part` may be left for the next run).
    fn assert_unchanged_but_part(&self, before: &Snap, what: &str) {
        let now = self.snap();
        assert_same_bytes(&now.data, &before.data, &format!("{what}: OUT"));
        assert!(now.index == before.index, "{what}: OUT.index changed");
        assert_eq!(
            (now.dev, now.ino),
            (before.dev, before.ino),
            "{what}: OUT replaced"
        );
    }
}

// ---------------------------------------------------------------------------
// 3. A pack in between
// ---------------------------------------------------------------------------

#[test]
fn after_a_pack_no_fallback_refuses_and_leaves_out_alone_and_the_default_recovers_in_full() {
    let f = fixed();
    let st = f.standby_at(&f.a[1], &[&f.a[2]], "pack");
    let before = st.snap();
    for flags in [
        &["--no-fallback"][..],
        &["--no-fallback", "-Q"],
        &["-w", "--no-fallback"],
    ] {
        let what = format!("OUT as of A2, target B1 (after the pack), {flags:?}");
        let err = st.incr_refused(Some(&f.b[1]), flags, 1, &before, &what);
        assert_no_fallback_message(&err, &what);
    }
    let sum = st.incr_ok(Some(&f.b[1]), &[], f.oracle(&f.b[1]), "to B1 with fallback");
    assert!(sum.is_full(), "to B1: {sum:?}");
    // Chain B continues incrementally.
    let sum = st.incr_ok(Some(&f.b[0]), &["-Q"], f.oracle(&f.b[0]), "rewind to B0");
    assert_eq!(sum, Summary::Truncated(f.end(&f.b[0])));
    let sum = st.incr_ok(None, &[], f.oracle(&f.b[1]), "to the latest (no -D)");
    assert_eq!(
        sum,
        Summary::Appended {
            bytes: f.end(&f.b[1]) - f.end(&f.b[0]),
            files: 1
        }
    );
    // Back across the pack, to the older chain.
    let before = st.snap();
    let what = "OUT as of B1, target A1 (before the pack), --no-fallback";
    let err = st.incr_refused(Some(&f.a[1]), &["--no-fallback"], 1, &before, what);
    assert_no_fallback_message(&err, what);
    let sum = st.incr_ok(
        Some(&f.a[1]),
        &["-Q"],
        f.oracle(&f.a[1]),
        "to A1 with fallback",
    );
    assert!(sum.is_full(), "to A1: {sum:?}");
}

// ---------------------------------------------------------------------------
// 4. A live ZODB holds OUT
// ---------------------------------------------------------------------------

#[test]
fn out_open_in_a_live_filestorage_is_refused_with_exit_11_and_works_once_closed() {
    let f = fixed();
    let st = f.standby_at(&f.a[1], &[], "live");
    let mut child = standby_py()
        .args(["hold", OUT])
        .current_dir(&st.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start standby.py hold");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().map(|l| l.unwrap());
    if first.as_deref() != Some("ready") {
        let _ = child.kill();
        let o = child.wait_with_output().unwrap();
        panic!("standby.py hold did not start: {first:?}\n{}", stderr(&o));
    }
    let before = st.snap();
    let cases: [(Option<&str>, &[&str]); 5] = [
        (Some(&f.a[3]), &[]),
        (Some(&f.a[3]), &["-Q"]),
        (Some(&f.a[0]), &["--no-fallback"]),
        // What would be a full recover must not replace a live file either.
        (Some(&f.b[1]), &[]),
        (None, &["-w", "-Q"]),
    ];
    for (date, flags) in cases {
        let what = format!("OUT held by FileStorage, --incremental {date:?} {flags:?}");
        let err = st.incr_refused(date, flags, 11, &before, &what);
        assert!(err.contains("in use"), "{what}: {err}");
        assert!(err.contains(&format!("{OUT}.lock")), "{what}: {err}");
    }
    drop(child.stdin.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "standby.py hold: {}", stderr(&o));
    assert_eq!(lines.next().map(|l| l.unwrap()).as_deref(), Some("closed"));
    // FileStorage rewrote OUT.index on close and left OUT.lock behind.
    assert!(st.side(".lock").exists());
    let sum = st.incr_ok(Some(&f.a[3]), &[], f.oracle(&f.a[3]), "after the close");
    assert_eq!(
        sum,
        Summary::Appended {
            bytes: f.end(&f.a[3]) - f.end(&f.a[1]),
            files: 2
        }
    );
}

// ---------------------------------------------------------------------------
// 5. Foreign bytes: a local commit, another database
// ---------------------------------------------------------------------------

#[test]
fn a_zodb_commit_into_out_means_a_full_recover_or_with_no_fallback_exit_1_and_out_unchanged() {
    let f = fixed();
    let st = f.standby_at(&f.a[0], &[&f.a[1]], "local commit");
    small(&st.out(), 1, "local");
    let before = st.snap();
    assert!(before.data.len() as u64 > f.end(&f.a[1]));
    for flags in [&["--no-fallback"][..], &["--no-fallback", "-Q"]] {
        let what = format!("a local commit after A1, target A3, {flags:?}");
        let err = st.incr_refused(Some(&f.a[3]), flags, 1, &before, &what);
        assert_no_fallback_message(&err, &what);
    }
    let sum = st.incr_ok(Some(&f.a[3]), &["-Q"], f.oracle(&f.a[3]), "local commit");
    assert!(sum.is_full(), "a local commit: {sum:?}");

    // A rewind below the local commit cuts it anyway: the result must be
    // the oracle's whether the implementation looks past the proof or not.
    small(&st.out(), 2, "local2");
    let before = st.snap();
    let what = "rewind below a local commit, --no-fallback";
    let o = st.incr(Some(&f.a[2]), &["--no-fallback"], None);
    match o.status.code() {
        Some(0) => st.assert_oracle(f.oracle(&f.a[2]), what),
        Some(1) => {
            assert_no_fallback_message(&stderr(&o), what);
            st.assert_unchanged(&before, what);
        }
        _ => panic!("{what}: {}: {}", o.status, stderr(&o)),
    }
    st.incr_ok(
        Some(&f.a[2]),
        &[],
        f.oracle(&f.a[2]),
        "rewind below a local commit",
    );
}

#[test]
fn another_database_in_out_means_a_full_recover_or_with_no_fallback_exit_1_and_out_unchanged() {
    let f = fixed();
    let st = f.standby();
    // A small unrelated database, and a large one (longer than the target).
    let other = st.dir.join("other.fs");
    zodb::grow(&other, 3, 555);
    let target = &f.a[1];
    for (i, size) in ["small", "large"].into_iter().enumerate() {
        let mut seed = 556;
        while i == 1 && std::fs::metadata(&other).unwrap().len() <= f.end(target) {
            zodb::grow_with(&other, 4, seed, BIG_VALUES);
            seed += 1;
        }
        std::fs::copy(&other, st.out()).unwrap();
        std::fs::copy(st.dir.join("other.fs.index"), st.side(".index")).unwrap();
        let before = st.snap();
        assert_eq!(
            (before.data.len() as u64) > f.end(target),
            i == 1,
            "the {size} database"
        );
        for flags in [&["--no-fallback"][..], &["--no-fallback", "-Q"]] {
            let what = format!("another, {size} database in OUT, {flags:?}");
            let err = st.incr_refused(Some(target), flags, 1, &before, &what);
            assert_no_fallback_message(&err, &what);
        }
        let sum = st.incr_ok(Some(target), &[], f.oracle(target), size);
        assert!(sum.is_full(), "another {size} database: {sum:?}");
    }
}

// ---------------------------------------------------------------------------
// 6. Flipped bytes with size and mtime preserved
// ---------------------------------------------------------------------------

/// A standby as of A2 reached by an incremental run (so it has a state
/// file matching OUT), and OUT's bytes.
fn standby_at_a2(f: &Fixed, what: &str) -> (Standby, Vec<u8>) {
    let st = f.standby_at(&f.a[1], &[&f.a[2]], what);
    assert!(st.side(".repozo-state").exists(), "{what}: no state file");
    let data = std::fs::read(st.out()).unwrap();
    (st, data)
}

/// The run noticed the damage at `offset`: not a plain append onto it.
fn assert_detected(sum: &Summary, offset: u64, what: &str) {
    let ok = match *sum {
        Summary::Full(_) => true,
        Summary::TruncatedAppended { to, .. } => to <= offset,
        _ => false,
    };
    assert!(
        ok,
        "{what}: the flipped byte at {offset} went unnoticed: {sum:?}"
    );
}

#[test]
fn quick_mode_catches_a_flipped_byte_in_the_last_mib_or_the_first_with_mtime_preserved() {
    let f = fixed();
    let target = &f.a[3];
    let (st, data) = standby_at_a2(f, "last MiB");
    let size = data.len() as u64;
    let offset = size - MIB / 2;
    assert!(
        offset >= size - MIB && offset >= MIB && offset < last_txn_start(&data),
        "the flip must be in the last MiB, outside the first MiB and the last transaction"
    );
    flip_keeping_mtime(&st.out(), offset);
    let sum = st.incr_ok(Some(target), &["-Q"], f.oracle(target), "last MiB, -Q");
    assert_detected(&sum, offset, "last MiB, -Q");

    let (st, _) = standby_at_a2(f, "first MiB");
    flip_keeping_mtime(&st.out(), 1000);
    let sum = st.incr_ok(Some(target), &["-Q"], f.oracle(target), "first MiB, -Q");
    assert_detected(&sum, 1000, "first MiB, -Q");
}

#[test]
fn the_default_md5_proof_catches_a_flipped_byte_in_the_middle_with_mtime_preserved() {
    let f = fixed();
    let target = &f.a[3];
    let (st, data) = standby_at_a2(f, "middle");
    let size = data.len() as u64;
    let offset = size / 2;
    assert!(
        offset > MIB && offset < size - MIB && offset < last_txn_start(&data),
        "the flip must be where -Q does not look"
    );
    flip_keeping_mtime(&st.out(), offset);
    let sum = st.incr_ok(Some(target), &[], f.oracle(target), "middle, md5 proof");
    assert_detected(&sum, offset, "middle, md5 proof");
}

// ---------------------------------------------------------------------------
// 7. The state file missing, damaged or another OUT's
// ---------------------------------------------------------------------------

#[test]
fn quick_mode_without_a_usable_state_file_falls_back_to_the_md5_proof() {
    let f = fixed();
    let a = &f.a;
    let st = f.standby_at(&a[0], &[&a[1]], "state");
    let state = st.side(".repozo-state");
    assert!(state.exists(), "no state file after an incremental run");
    std::fs::remove_file(&state).unwrap();
    let sum = st.incr_ok(Some(&a[3]), &["-Q"], f.oracle(&a[3]), "state file deleted");
    assert_eq!(
        sum,
        Summary::Appended {
            bytes: f.end(&a[3]) - f.end(&a[1]),
            files: 2
        },
        "state file deleted"
    );
    assert!(state.exists(), "the state file was not written again");

    std::fs::write(&state, b"not a state file\n\xff\x00").unwrap();
    let sum = st.incr_ok(Some(&a[2]), &["-Q"], f.oracle(&a[2]), "damaged state file");
    assert_eq!(sum, Summary::Truncated(f.end(&a[2])), "damaged state file");

    // The state file of another standby (another inode, same repository).
    let other = f.standby_at(&a[0], &[&a[2]], "other standby");
    std::fs::copy(other.side(".repozo-state"), &state).unwrap();
    let sum = st.incr_ok(
        Some(&a[3]),
        &["-Q"],
        f.oracle(&a[3]),
        "another OUT's state file",
    );
    assert_eq!(
        sum,
        Summary::Appended {
            bytes: f.end(&a[3]) - f.end(&a[2]),
            files: 1
        },
        "another OUT's state file"
    );
}

// ---------------------------------------------------------------------------
// 8. Usage errors
// ---------------------------------------------------------------------------

#[test]
fn incremental_usage_errors_exit_1_with_their_message_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("repo")).unwrap();
    std::fs::write(dir.path().join("Data.fs"), b"FS21").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["-B", "-r", "repo", "-f", "Data.fs", "--incremental"],
            "--incremental only applies to -R/--recover",
        ),
        (
            &["-V", "-r", "repo", "--incremental"],
            "--incremental only applies to -R/--recover",
        ),
        (
            &["-R", "-r", "repo", "--incremental"],
            "--incremental needs -o/--output: it brings an existing Data.fs up to date",
        ),
        (
            &["--recover", "--repository=repo", "--incremental", "-Q"],
            "--incremental needs -o/--output: it brings an existing Data.fs up to date",
        ),
        (
            &["-R", "-r", "repo", "-o", "out.fs", "--no-fallback"],
            "--no-fallback only applies to --incremental",
        ),
        (
            &["-R", "-r", "repo", "-o", "out.fs", "--incr"],
            "option --incr not recognized",
        ),
        (
            &["-R", "-r", "repo", "-o", "out.fs", "--incrementa"],
            "option --incrementa not recognized",
        ),
        (
            &[
                "-R",
                "-r",
                "repo",
                "-o",
                "out.fs",
                "--incremental",
                "--no-fall",
            ],
            "option --no-fall not recognized",
        ),
    ];
    for (args, msg) in cases {
        let mut c = ours();
        c.current_dir(dir.path())
            .args(*args)
            .env_remove("REPOZO_FAILPOINT");
        let o = run(c);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(
            err.trim_end().lines().last(),
            Some(*msg),
            "{args:?}: the last line of stderr"
        );
        assert!(o.stdout.is_empty(), "{args:?}: output on stdout");
        assert_eq!(
            listing(dir.path()),
            ["Data.fs", "repo"],
            "{args:?} created files"
        );
        assert!(listing(&dir.path().join("repo")).is_empty());
    }
}
