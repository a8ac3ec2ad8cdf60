//! Command-line parity with ZODB 6.4's repozo.
//!
//! Every case runs OUR binary and THE REFERENCE (ZODB 6.4's real repozo,
//! through `tests/py/repozo_shim.py`) with the same argument vector, each in
//! its own fresh temporary directory (the current directory of the run),
//! prepared the same way, with the clock pinned by `REPOZO_TEST_NOW`. The
//! exit code, stdout and stderr must be identical byte for byte.
//!
//! Repository states a case needs (a full backup, a chain, …) are built by
//! the SAME tool that is then tested (ours for ours, the reference for the
//! reference), with the same pinned stamps and the same Data.fs bytes, so
//! that the two directories are identical before the command under test.
//!
//! Deliberate deviations of ours from repozo are not parity cases; each has
//! a test named "ours … on purpose" asserting our behaviour (and, for the
//! record, what the reference does):
//!
//! 1. When the Data.fs has only uncommitted/trailing bytes after what is
//!    backed up, we write no empty `.deltafs` (repozo writes a 0-byte one
//!    and records it in the `.dat`).
//! 2. Recover never deletes the existing output first (repozo unlinks it,
//!    logging "Deleting old <output>"), and on a `-w` failure we remove the
//!    `.part` and keep the old output (repozo leaves the `.part` and has
//!    already deleted the output). The message and rc are the same.
//! 3. If the chain's last backup has no `.index`, a stale `<output>.index`
//!    is removed (repozo leaves it, so it describes other bytes); under
//!    `-v` we log "Removed stale index file <output>.index".
//! 4. Where repozo dies with a Python traceback (a corrupt Data.fs, a `.dat`
//!    line with the wrong number of fields, `-w` with a chain file the
//!    `.dat` does not list, an empty 0-byte Data.fs, a truncated `.fsz` in
//!    verify), we exit 1 with a clear one-line message; both exit 1.
//! 5. `-D` is compared as a string, as repozo does: no deviation, so it is
//!    covered by parity cases.
//! 6. `-V -D <date>` verifies the chain recover would use for that date
//!    (repozo ignores `-D` in verify mode, with the notice "--date option
//!    is ignored in verify mode" under `-v`, and verifies the newest
//!    chain); the date is validated as for recover.

use crate::common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;

use common::{Tool, listing, ok, ours, repozo, run, stderr, theirs, zodb};

/// "Now" for the cases that do not pin their own: after every stamp below.
const NOW: &str = "2021-06-01-00-00-00";
/// Stamps of the backups the setups and flows make.
const T0: &str = "2021-01-01-00-00-00";
const T1: &str = "2021-01-01-00-00-01";
const T2: &str = "2021-01-01-00-00-02";
const T3: &str = "2021-01-01-00-00-03";

/// Like [`repozo`], but the run must succeed (used by setups).
fn repozo_ok(side: Tool, dir: &Path, now: &str, args: &[&str]) {
    let o = repozo(side, dir, now, args);
    assert!(
        o.status.success(),
        "setup step {side:?} `repozo {}` failed: {}",
        args.join(" "),
        stderr(&o)
    );
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("cannot create a temporary directory")
}

// ---------------------------------------------------------------------------
// Data and file helpers
// ---------------------------------------------------------------------------

/// `tests/data/small.fs` and its index.
fn small() -> (Vec<u8>, Vec<u8>) {
    let d = common::py::data_dir();
    (
        std::fs::read(d.join("small.fs")).unwrap(),
        std::fs::read(d.join("small.fs.index")).unwrap(),
    )
}

/// `small.fs` grown by 3 more transactions (seed 1) with real ZODB, and the
/// index ZODB wrote on close. Made once per test process: transaction ids
/// are timestamps, so both sides must get these very bytes.
fn grown() -> &'static (Vec<u8>, Vec<u8>) {
    static GROWN: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    GROWN.get_or_init(|| {
        let t = tmp();
        let fs = common::fixture("small.fs", t.path());
        zodb::grow(&fs, 3, 1);
        let data = std::fs::read(&fs).unwrap();
        let index = std::fs::read(t.path().join("small.fs.index")).unwrap();
        assert!(data.len() > small().0.len(), "grow did not grow small.fs");
        (data, index)
    })
}

fn write_data_fs(dir: &Path, (data, index): &(Vec<u8>, Vec<u8>)) {
    std::fs::write(dir.join("Data.fs"), data).unwrap();
    std::fs::write(dir.join("Data.fs.index"), index).unwrap();
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(bytes).unwrap();
}

/// Flips one byte (same size, different md5).
fn flip_byte(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0xff;
    std::fs::write(path, b).unwrap();
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("not a gzip file");
    out
}

/// Replaces a gzip file by a valid gzip of `change(uncompressed)`.
fn regzip(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut data = gunzip(&std::fs::read(path).unwrap());
    change(&mut data);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&data).unwrap();
    std::fs::write(path, enc.finish().unwrap()).unwrap();
}

fn rm(path: &Path) {
    std::fs::remove_file(path).unwrap_or_else(|e| panic!("rm {}: {e}", path.display()));
}

/// `<dir>/repo/<name>`.
fn in_repo(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join("repo").join(name)
}

// ---------------------------------------------------------------------------
// Setups: each prepares a fresh directory for one side.
// ---------------------------------------------------------------------------

type Setup = fn(&Path, Tool);

/// Nothing at all: no repository, no Data.fs.
fn nothing(_: &Path, _: Tool) {}

/// An empty `repo` directory.
fn empty_repo(d: &Path, _: Tool) {
    std::fs::create_dir(d.join("repo")).unwrap();
}

/// An empty `repo` and `Data.fs` (= small.fs) with its index.
fn data_fs(d: &Path, s: Tool) {
    empty_repo(d, s);
    write_data_fs(d, &small());
}

/// [`data_fs`] plus a full backup at T0.
fn full(d: &Path, s: Tool) {
    cached("full", d, s, |d, s| {
        data_fs(d, s);
        repozo_ok(s, d, T0, &["-BF", "-r", "repo", "-f", "Data.fs"]);
    });
}

/// [`data_fs`] plus a gzipped full backup at T0.
fn full_gz(d: &Path, s: Tool) {
    cached("full_gz", d, s, |d, s| {
        data_fs(d, s);
        repozo_ok(s, d, T0, &["-BFz", "-r", "repo", "-f", "Data.fs"]);
    });
}

/// A chain: full backup of small.fs at T0, incremental of the grown
/// Data.fs at T1 (Data.fs is left grown).
fn chain(d: &Path, s: Tool) {
    cached("chain", d, s, |d, s| {
        full(d, s);
        write_data_fs(d, grown());
        repozo_ok(s, d, T1, &["-B", "-r", "repo", "-f", "Data.fs"]);
        assert!(in_repo(d, &format!("{T1}.deltafs")).is_file());
    });
}

/// [`chain`], gzipped.
fn chain_gz(d: &Path, s: Tool) {
    cached("chain_gz", d, s, |d, s| {
        full_gz(d, s);
        write_data_fs(d, grown());
        repozo_ok(s, d, T1, &["-Bz", "-r", "repo", "-f", "Data.fs"]);
        assert!(in_repo(d, &format!("{T1}.deltafsz")).is_file());
    });
}

/// The files (`Some(bytes)`) and directories (`None`) of a tree, relative.
type Snapshot = Vec<(std::path::PathBuf, Option<Vec<u8>>)>;

fn snapshot(root: &Path, rel: &Path, out: &mut Snapshot) {
    for name in listing(&root.join(rel)) {
        let r = rel.join(name);
        let p = root.join(&r);
        if p.is_dir() {
            out.push((r.clone(), None));
            snapshot(root, &r, out);
        } else {
            out.push((r, Some(std::fs::read(&p).unwrap())));
        }
    }
}

/// Prepares `d` with `build` run by side `s` — built once per test process
/// and side in a scratch directory, then copied — so that the many cases
/// sharing a repository state do not rebuild it with repozo every time.
fn cached(key: &'static str, d: &Path, s: Tool, build: fn(&Path, Tool)) {
    type Cache =
        std::sync::Mutex<std::collections::HashMap<(&'static str, Tool), std::sync::Arc<Snapshot>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let hit = cache.lock().unwrap().get(&(key, s)).cloned();
    let snap = hit.unwrap_or_else(|| {
        let scratch = tmp();
        build(scratch.path(), s);
        let mut snap = Snapshot::new();
        snapshot(scratch.path(), Path::new(""), &mut snap);
        let snap = std::sync::Arc::new(snap);
        cache.lock().unwrap().insert((key, s), snap.clone());
        snap
    });
    for (rel, content) in snap.iter() {
        match content {
            None => std::fs::create_dir_all(d.join(rel)).unwrap(),
            Some(bytes) => std::fs::write(d.join(rel), bytes).unwrap(),
        }
    }
}

// ---------------------------------------------------------------------------
// Parity cases
// ---------------------------------------------------------------------------

struct Case {
    args: &'static [&'static str],
    setup: Setup,
    now: &'static str,
    /// What the setup is, for failure messages.
    what: &'static str,
}

fn case(args: &'static [&'static str], setup: Setup, what: &'static str) -> Case {
    Case {
        args,
        setup,
        now: NOW,
        what,
    }
}

impl Case {
    fn at(mut self, now: &'static str) -> Self {
        self.now = now;
        self
    }
}

fn show(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() > 4000 {
        format!("{}… ({} bytes)", &s[..4000], bytes.len())
    } else {
        s.into_owned()
    }
}

/// Differences between two runs, described; empty if identical.
/// ZODB's repozo's help text, as its `-h` prints it.
fn reference_help() -> &'static [u8] {
    static HELP: OnceLock<Vec<u8>> = OnceLock::new();
    HELP.get_or_init(|| {
        let mut c = theirs();
        c.arg("-h");
        ok(run(c)).stdout
    })
}

/// `out` with our help text (printed by `-h` and before usage errors)
/// replaced by repozo's: ours describes this tool truthfully on purpose
/// (asserted by `our_help_describes_this_tool_and_its_own_options`), and
/// everything around it must still be repozo's, byte for byte.
fn with_reference_help(out: &[u8]) -> Vec<u8> {
    let ours = repozo::cli::usage::help_text("repozo").into_bytes();
    let Some(at) = out.windows(ours.len()).position(|w| w == ours.as_slice()) else {
        return out.to_vec();
    };
    let mut v = out[..at].to_vec();
    v.extend_from_slice(reference_help());
    v.extend_from_slice(&out[at + ours.len()..]);
    v
}

fn diff(label: &str, o: &Output, t: &Output) -> Option<String> {
    let o = &Output {
        status: o.status,
        stdout: with_reference_help(&o.stdout),
        stderr: with_reference_help(&o.stderr),
    };
    let mut d = String::new();
    if o.status.code() != t.status.code() {
        d += &format!(
            "  rc: ours {:?}, theirs {:?}\n",
            o.status.code(),
            t.status.code()
        );
    }
    if o.stdout != t.stdout {
        d += &format!(
            "  stdout differs:\n--- ours ---\n{}\n--- theirs ---\n{}\n",
            show(&o.stdout),
            show(&t.stdout)
        );
    }
    if o.stderr != t.stderr {
        d += &format!(
            "  stderr differs:\n--- ours ---\n{}\n--- theirs ---\n{}\n",
            show(&o.stderr),
            show(&t.stderr)
        );
    }
    (!d.is_empty()).then(|| format!("`repozo {label}]:\n{d}"))
}

fn label(c: &Case) -> String {
    format!("{}` [{}, now {}", c.args.join(" "), c.what, c.now)
}

/// `f` over `items` on a few threads (each case is independent: its own
/// directories), results in order.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .min(8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a parity worker panicked"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Runs every case on both sides and fails listing every mismatch.
fn check_parity(cases: &[Case]) {
    let mismatches: Vec<String> = par_map(cases, |c| {
        let outs: Vec<Output> = Tool::BOTH
            .iter()
            .map(|&side| {
                let dir = tmp();
                (c.setup)(dir.path(), side);
                repozo(side, dir.path(), c.now, c.args)
            })
            .collect();
        let t = &outs[1];
        if String::from_utf8_lossy(&t.stderr).contains("Traceback") {
            return Some(format!(
                "`repozo {}]: the reference crashed, this is not a parity case:\n{}",
                label(c),
                stderr(t)
            ));
        }
        diff(&label(c), &outs[0], t)
    })
    .into_iter()
    .flatten()
    .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from the reference:\n\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
}

#[test]
#[rustfmt::skip]
fn help_and_usage_errors_match_the_reference() {
    check_parity(&[
        case(&["-h"], data_fs, "repo + Data.fs"),
        case(&["--help"], data_fs, "repo + Data.fs"),
        case(&["--he"], data_fs, "repo + Data.fs"),
        case(&["-h", "-B", "-R"], data_fs, "repo + Data.fs"),
        case(&["-B", "-R", "-h"], data_fs, "repo + Data.fs"),
        case(&["-B", "-h", "-x"], data_fs, "repo + Data.fs"),
        case(&[], data_fs, "repo + Data.fs"),
        case(&["-x"], data_fs, "repo + Data.fs"),
        case(&["--crash-please"], data_fs, "repo + Data.fs"),
        case(&["crash", "please"], data_fs, "repo + Data.fs"),
        case(&["-r"], data_fs, "repo + Data.fs"),
        case(&["-B", "-r"], data_fs, "repo + Data.fs"),
        case(&["--repository"], data_fs, "repo + Data.fs"),
        case(&["--full=1"], data_fs, "repo + Data.fs"),
        case(&["--ver"], data_fs, "repo + Data.fs"),
        case(&["--f"], data_fs, "repo + Data.fs"),
        case(&["--f=Data.fs"], data_fs, "repo + Data.fs"),
        case(&["-B", "foo", "-r", "repo"], data_fs, "repo + Data.fs"),
        case(&["-V", "-r", "repo", "--", "extra"], data_fs, "repo + Data.fs"),
        case(&["-B", "-B"], data_fs, "repo + Data.fs"),
        case(&["-B", "--backup"], data_fs, "repo + Data.fs"),
        case(&["-R", "-V", "-r", "repo"], data_fs, "repo + Data.fs"),
        case(&["-B"], data_fs, "repo + Data.fs"),
        case(&["-r", "repo"], data_fs, "repo + Data.fs"),
        case(&["-B", "-r", "repo"], data_fs, "repo + Data.fs"),
        case(&["-B", "-r", "repo", "-f", ""], data_fs, "repo + Data.fs"),
        case(&["-Bv", "-r", "repo", "-o", "y"], data_fs, "repo + Data.fs"),
    ]);
}

#[test]
fn our_help_describes_this_tool_and_its_own_options() {
    let mut c = ours();
    c.arg("-h");
    let o = ok(run(c));
    let help = String::from_utf8(o.stdout).unwrap();
    assert_eq!(help, repozo::cli::usage::help_text("repozo"));
    assert_ne!(
        help.as_bytes(),
        reference_help(),
        "ours says what this tool does"
    );
    for must in [
        "--version",
        "--incremental",
        "--no-fallback",
        "--no-verify",
        "--json",
        "--no-progress",
        "--list",
        "--keep=N",
        "--keep-daily=N",
        "--dry-run",
        "independent gzip members",
        "left as they were",
        "Exit codes:",
    ] {
        assert!(help.contains(must), "the help does not mention {must}");
    }
    for stale in [
        "repozo.py --",
        "default zlib",
        "partially recovered ZODB will be left",
    ] {
        assert!(!help.contains(stale), "the help still says {stale:?}");
    }
    let mut c = ours();
    c.arg("--version");
    let o = ok(run(c));
    let v = String::from_utf8(o.stdout).unwrap();
    assert!(
        v.starts_with(&format!("repozo {} ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
}

#[test]
#[rustfmt::skip]
fn option_spellings_and_ignored_option_notices_match_the_reference() {
    check_parity(&[
        case(&["--rep=repo", "-B", "-f", "Data.fs"], data_fs, "repo + Data.fs"),
        case(&["--rep", "repo", "--backup", "--file=Data.fs", "--verb"], data_fs, "repo + Data.fs"),
        case(&["-BQr", "repo", "-f", "Data.fs"], data_fs, "repo + Data.fs"),
        case(&["-BQrrepo", "-fData.fs", "-v"], data_fs, "repo + Data.fs"),
        case(&["-Vrrepo"], data_fs, "repo + Data.fs (empty repo)"),
        case(&["-Vrrepo"], full, "full backup"),
        case(&["-Rr", "repo"], full, "full backup"),
        case(&["-Bv", "-r", "repo", "-f", "Data.fs", "-D", "2020-01-01", "-o", "x", "-w"], data_fs, "repo + Data.fs"),
        case(&["-B", "-r", "repo", "-f", "Data.fs", "-D", "2020-01-01", "-o", "x", "-w"], data_fs, "repo + Data.fs"),
        case(&["-Rv", "-r", "repo", "-f", "x", "-k"], full, "full backup"),
        case(&["-Rv", "-r", "repo", "-f", "x", "-k", "-F", "-Q", "-z"], full, "full backup"),
        // -V takes -D on purpose (see ours_verifies_the_chain_of_the_date_given_with_d_on_purpose).
        case(&["-Vv", "-r", "repo", "-o", "y", "-F", "-z", "-f", "z", "-k", "-w"], full, "full backup"),
        case(&["-V", "-r", "repo", "-o", "y", "-F", "-z", "-f", "z", "-k", "-w"], full, "full backup"),
        case(&["-v", "-V", "-r", "repo", "-Q", "-F"], full, "full backup"),
        case(&["-Bv", "-r", "repo", "-o", "y"], data_fs, "repo + Data.fs"),
        case(&["-Vv", "-f", "x", "-o", "y"], data_fs, "repo + Data.fs"),
    ]);
}

#[test]
#[rustfmt::skip]
fn runtime_errors_match_the_reference() {
    check_parity(&[
        // Missing repository directory: see
        // `a_missing_repository_exits_10_saying_what_to_do_on_purpose`.
        // Missing -f file.
        case(&["-B", "-r", "repo", "-f", "missing.fs"], full, "full backup"),
        case(&["-BQ", "-r", "repo", "-f", "missing.fs"], full, "full backup"),
        // Nothing to recover or verify.
        case(&["-R", "-r", "repo"], empty_repo, "empty repo"),
        case(&["-Rv", "-r", "repo", "-o", "out.fs"], empty_repo, "empty repo"),
        case(&["-V", "-r", "repo"], empty_repo, "empty repo"),
        case(&["-Vv", "-r", "repo"], empty_repo, "empty repo"),
        case(&["-R", "-r", "repo", "-D", "2000-01-01"], full, "full backup"),
        case(&["-Rv", "-r", "repo", "-D", "2000-01-01", "-o", "out.fs"], full, "full backup"),
        // -D is a string: a partial date is exclusive.
        case(&["-Rv", "-r", "repo", "-D", "2021-01-01", "-o", "out.fs"], full, "full backup"),
        case(&["-R", "-r", "repo", "-D", "2021-01-01-00-00-00"], full, "full backup"),
        case(&["-Rv", "-r", "repo", "-D", T0, "-o", "out.fs"], chain, "chain"),
        // The backup is after "now".
        case(&["-V", "-r", "repo"], full, "full backup").at("2020-12-31-23-59-59"),
        // Recover to an output in a missing directory.
        case(&["-R", "-r", "repo", "-o", "nodir/out.fs"], full, "full backup"),
        case(&["-Rw", "-r", "repo", "-o", "nodir/out.fs"], full, "full backup"),
        // Missing .dat.
        case(&["-V", "-r", "repo"], full_without_dat, "full backup, no .dat"),
        case(&["-Vv", "-r", "repo"], full_without_dat, "full backup, no .dat"),
        case(&["-R", "-w", "-r", "repo", "-o", "out.fs"], full_without_dat, "full backup, no .dat"),
        case(&["-R", "-w", "-r", "repo"], full_without_dat, "full backup, no .dat"),
        case(&["-Rvw", "-r", "repo", "-o", "out.fs"], full_without_dat, "full backup, no .dat"),
    ]);
}

fn full_without_dat(d: &Path, s: Tool) {
    full(d, s);
    rm(&in_repo(d, &format!("{T0}.dat")));
}

/// Runs `args` on both sides after `setup`; returns (ours, theirs, dirs).
fn both(setup: Setup, now: &str, args: &[&str]) -> (Output, Output, Vec<tempfile::TempDir>) {
    let mut dirs = Vec::new();
    let mut outs = Vec::new();
    for side in Tool::BOTH {
        let d = tmp();
        setup(d.path(), side);
        outs.push(repozo(side, d.path(), now, args));
        dirs.push(d);
    }
    let t = outs.pop().unwrap();
    let o = outs.pop().unwrap();
    (o, t, dirs)
}

#[test]
fn a_second_backup_in_the_same_second_takes_the_next_second_on_purpose() {
    // repozo refuses ("Cannot overwrite existing file") or, for a full and
    // an incremental, silently writes two files one of which its own chain
    // selection drops. Ours takes the next free second instead.
    // (setup, args, extension of our new file, reference refuses)
    let cases: [(Setup, &[&str], &str, bool); 3] = [
        (full, &["-BF", "-r", "repo", "-f", "Data.fs"], ".fs", true),
        (
            full_gz,
            &["-BFz", "-r", "repo", "-f", "Data.fs"],
            ".fsz",
            true,
        ),
        (
            full_gz,
            &["-BF", "-r", "repo", "-f", "Data.fs"],
            ".fs",
            false,
        ),
    ];
    for (setup, args, ext, refused) in cases {
        let (o, t, dirs) = both(setup, T0, args);
        assert_eq!(t.status.success(), !refused, "reference: {}", stderr(&t));
        if refused {
            assert!(stderr(&t).starts_with("Cannot overwrite existing file: repo/"));
        }
        assert!(o.status.success(), "ours: {}", stderr(&o));
        let names = listing(&dirs[0].path().join("repo"));
        assert!(names.contains(&format!("{T1}{ext}")), "{args:?}: {names:?}");
    }
}

#[test]
fn a_missing_repository_exits_10_saying_what_to_do_on_purpose() {
    // repozo: `[Errno 2] No such file or directory: 'nonexist'`, exit 1.
    // Ours: exit 10 (restic's code for "no repository") and a message that
    // it is the repository and how to create it; everything printed
    // before it (the -v lines) is repozo's.
    let cases: &[(&[&str], Setup, &str)] = &[
        (
            &["-B", "-r", "nonexist", "-f", "Data.fs"],
            data_fs,
            "nonexist",
        ),
        (&["-R", "-r", "nonexist"], data_fs, "nonexist"),
        (
            &["-R", "-r", "nonexist", "-o", "out.fs"],
            data_fs,
            "nonexist",
        ),
        (&["-V", "-r", "nonexist"], data_fs, "nonexist"),
        (&["-Vv", "-r", "nonexist"], data_fs, "nonexist"),
        (&["-B", "-r", "repo", "-f", "Data.fs"], nothing, "repo"),
        (&["-Vv", "-r", "repo"], nothing, "repo"),
        (&["-r", "repo", "-R", "-r", "nonexist"], full, "nonexist"),
    ];
    for (args, setup, dir) in cases {
        let (o, t, _dirs) = both(*setup, NOW, args);
        assert_eq!(t.status.code(), Some(1), "{args:?}");
        let theirs = stderr(&t);
        assert!(
            theirs.ends_with(&format!("[Errno 2] No such file or directory: '{dir}'\n")),
            "{args:?}: {theirs}"
        );
        assert_eq!(o.status.code(), Some(10), "{args:?}: {}", stderr(&o));
        let expected = theirs.replace(
            &format!("[Errno 2] No such file or directory: '{dir}'\n"),
            &format!(
                "repository {dir} does not exist: check -r, or create the directory first \
                 (mkdir -p {dir}); repozo never creates it\n"
            ),
        );
        assert_eq!(stderr(&o), expected, "{args:?}");
        assert!(o.stdout.is_empty() && t.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn ours_rejects_a_date_that_is_not_a_date_on_purpose() {
    // repozo compares any -D text as a string: "garbage" sorts after every
    // stamp and silently recovers the latest state.
    let (o, t, _dirs) = both(
        full,
        NOW,
        &["-R", "-r", "repo", "-D", "garbage", "-o", "o.fs"],
    );
    assert_eq!(t.status.code(), Some(0));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not a date"), "{}", stderr(&o));
}

#[test]
fn ours_verifies_the_chain_of_the_date_given_with_d_on_purpose() {
    // The increment after T0 is damaged. repozo ignores -D in verify mode
    // (with a notice under -v) and checks the newest chain, so it fails;
    // ours checks the chain as of T0, the full backup alone, and passes.
    let damaged: Setup = |d, s| {
        chain(d, s);
        flip_byte(&in_repo(d, &format!("{T1}.deltafs")), 10);
    };
    let (o, t, _dirs) = both(damaged, NOW, &["-Vv", "-r", "repo", "-D", T0]);
    assert_eq!(t.status.code(), Some(1), "{}", stderr(&t));
    assert!(
        stderr(&t).starts_with("--date option is ignored in verify mode\n"),
        "{}",
        stderr(&t)
    );
    assert!(stderr(&t).contains(&format!("repo/{T1}.deltafs has checksum")));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("ignored"), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("Verifying repo/{T0}.fs\n")));
    assert!(!stderr(&o).contains(&format!("Verifying repo/{T1}")));
    // Without -D, both check the newest chain and fail alike.
    let (o, t, _dirs) = both(damaged, NOW, &["-V", "-r", "repo"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(o.stderr, t.stderr);
    // A -D that is not a date: repozo ignores it, ours refuses it.
    let (o, t, _dirs) = both(full, NOW, &["-V", "-r", "repo", "-D", "x"]);
    assert_eq!(t.status.code(), Some(0), "{}", stderr(&t));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not a date"), "{}", stderr(&o));
}

#[test]
fn ours_rebuilds_a_missing_or_damaged_dat_before_a_quick_backup_on_purpose() {
    // repozo: a missing .dat means a new full backup; a damaged line a
    // traceback. Ours records the chain files again (missing .dat) or
    // starts a new chain with a full backup (damaged line), rc 0 both.
    let (o, t, dirs) = both(
        full_without_dat,
        NOW,
        &["-BQv", "-r", "repo", "-f", "Data.fs"],
    );
    assert!(stderr(&t).contains("missing or empty .dat file (full backup)"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("recorded it now"), "{}", stderr(&o));
    let dat = std::fs::read_to_string(dirs[0].path().join(format!("repo/{T0}.dat"))).unwrap();
    assert!(dat.starts_with(&format!("repo/{T0}.fs 0 ")), "{dat}");

    let (o, t, dirs) = both(
        full_with_bad_dat_line,
        NOW,
        &["-BQ", "-r", "repo", "-f", "Data.fs"],
    );
    assert!(stderr(&t).contains("Traceback"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("making a full backup"),
        "{}",
        stderr(&o)
    );
    let fulls = listing(&dirs[0].path().join("repo"))
        .into_iter()
        .filter(|n| n.ends_with(".fs"))
        .count();
    assert_eq!(fulls, 2);
}

// Corruptions for the verify cases. Plain: the full is `repo/T0.fs`, the
// incremental `repo/T1.deltafs`; gzip: `.fsz` / `.deltafsz`.

fn chain_full_too_long(d: &Path, s: Tool) {
    chain(d, s);
    append(&in_repo(d, &format!("{T0}.fs")), b"x");
}
fn chain_delta_too_short(d: &Path, s: Tool) {
    chain(d, s);
    let p = in_repo(d, &format!("{T1}.deltafs"));
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() - 7]).unwrap();
}
fn chain_delta_bad_sum(d: &Path, s: Tool) {
    chain(d, s);
    flip_byte(&in_repo(d, &format!("{T1}.deltafs")), 30);
}
fn chain_full_bad_sum(d: &Path, s: Tool) {
    chain(d, s);
    flip_byte(&in_repo(d, &format!("{T0}.fs")), 1000);
}
fn chain_delta_missing(d: &Path, s: Tool) {
    chain(d, s);
    rm(&in_repo(d, &format!("{T1}.deltafs")));
}
fn chain_gz_full_too_long(d: &Path, s: Tool) {
    chain_gz(d, s);
    regzip(&in_repo(d, &format!("{T0}.fsz")), |b| b.push(b'x'));
}
fn chain_gz_delta_too_short(d: &Path, s: Tool) {
    chain_gz(d, s);
    regzip(&in_repo(d, &format!("{T1}.deltafsz")), |b| {
        b.truncate(b.len() - 7)
    });
}
fn chain_gz_delta_bad_sum(d: &Path, s: Tool) {
    chain_gz(d, s);
    regzip(&in_repo(d, &format!("{T1}.deltafsz")), |b| b[30] ^= 0xff);
}
fn chain_gz_full_bad_sum(d: &Path, s: Tool) {
    chain_gz(d, s);
    regzip(&in_repo(d, &format!("{T0}.fsz")), |b| b[1000] ^= 0xff);
}
fn chain_gz_delta_missing(d: &Path, s: Tool) {
    chain_gz(d, s);
    rm(&in_repo(d, &format!("{T1}.deltafsz")));
}

#[test]
fn verify_failures_match_the_reference() {
    let setups: [(Setup, &str); 12] = [
        (chain, "healthy chain"),
        (chain_full_too_long, "full 1 byte too long"),
        (chain_delta_too_short, "incremental 7 bytes short"),
        (chain_delta_bad_sum, "incremental with a flipped byte"),
        (chain_full_bad_sum, "full with a flipped byte"),
        (chain_delta_missing, "incremental missing"),
        (chain_gz, "healthy gzip chain"),
        (chain_gz_full_too_long, "gzip full 1 byte too long"),
        (chain_gz_delta_too_short, "gzip incremental 7 bytes short"),
        (
            chain_gz_delta_bad_sum,
            "gzip incremental with a flipped byte",
        ),
        (chain_gz_full_bad_sum, "gzip full with a flipped byte"),
        (chain_gz_delta_missing, "gzip incremental missing"),
    ];
    let argvs: [&'static [&'static str]; 4] = [
        &["-V", "-r", "repo"],
        &["-VQ", "-r", "repo"],
        &["-Vv", "-r", "repo"],
        &["-VQv", "-r", "repo"],
    ];
    let mut cases = Vec::new();
    for (setup, what) in setups {
        for args in argvs {
            cases.push(case(args, setup, what));
        }
    }
    check_parity(&cases);
}

#[test]
fn recover_with_verify_of_a_corrupted_chain_fails_like_the_reference() {
    // Only rc, stdout and stderr are compared: afterwards the reference
    // leaves `out.fs.part` (and has deleted any old `out.fs`), while ours
    // removes the `.part` and keeps the old output (deviation 2, tested in
    // `ours_keeps_the_old_output_when_recover_fails_on_purpose`).
    let mut cases = Vec::new();
    for (setup, what) in [
        (chain_full_too_long as Setup, "full 1 byte too long"),
        (chain_delta_too_short, "incremental 7 bytes short"),
        (chain_delta_bad_sum, "incremental with a flipped byte"),
        (chain_full_bad_sum, "full with a flipped byte"),
        (chain_gz_full_too_long, "gzip full 1 byte too long"),
        (
            chain_gz_delta_bad_sum,
            "gzip incremental with a flipped byte",
        ),
    ] {
        cases.push(case(
            &["-R", "-w", "-r", "repo", "-o", "out.fs"],
            setup,
            what,
        ));
        cases.push(case(&["-Rvw", "-r", "repo", "-o", "out.fs"], setup, what));
    }
    check_parity(&cases);
}

// ---------------------------------------------------------------------------
// Successful verbose flows: outputs and resulting files must be identical.
// ---------------------------------------------------------------------------

/// One step of a flow, done the same way in both directories.
enum Step {
    /// Run repozo with these arguments at this "now".
    Run(&'static str, &'static [&'static str]),
    /// Replace the Data.fs (and its index) by the grown one.
    Grow,
    /// Put `small.fs` back as the Data.fs (as if packed: it shrank).
    Shrink,
}
use Step::{Grow, Run, Shrink};

/// Runs `steps` on both sides in two directories, comparing every run,
/// then compares the resulting trees (gzip files by their content, since
/// their header holds the real time).
fn check_flow(steps: &[Step]) {
    let dirs = [tmp(), tmp()];
    for (side, d) in Tool::BOTH.iter().zip(&dirs) {
        data_fs(d.path(), *side);
    }
    let mut mismatches = Vec::new();
    for step in steps {
        let (now, args) = match *step {
            Run(now, args) => (now, args),
            Grow | Shrink => {
                for d in &dirs {
                    match step {
                        Grow => write_data_fs(d.path(), grown()),
                        _ => write_data_fs(d.path(), &small()),
                    }
                }
                continue;
            }
        };
        let o = repozo(Tool::Ours, dirs[0].path(), now, args);
        let t = repozo(Tool::Theirs, dirs[1].path(), now, args);
        assert!(
            t.status.success(),
            "the reference failed `{}`: {}",
            args.join(" "),
            stderr(&t)
        );
        if let Some(d) = diff(&format!("{} [now {now}]", args.join(" ")), &o, &t) {
            mismatches.push(d);
        }
    }
    mismatches.extend(compare_trees(dirs[0].path(), dirs[1].path(), Path::new("")));
    assert!(
        mismatches.is_empty(),
        "the flow differs from the reference:\n\n{}",
        mismatches.join("\n")
    );
}

/// Byte-for-byte comparison of two directory trees (gzip files by their
/// uncompressed content).
fn compare_trees(ours: &Path, theirs: &Path, rel: &Path) -> Vec<String> {
    let (a, b) = (
        common::without_sidecars(listing(&ours.join(rel))),
        common::without_sidecars(listing(&theirs.join(rel))),
    );
    if a != b {
        return vec![format!(
            "files in `{}` differ:\n  ours   {a:?}\n  theirs {b:?}\n",
            rel.display()
        )];
    }
    let mut out = Vec::new();
    for name in a {
        let r = rel.join(&name);
        let (pa, pb) = (ours.join(&r), theirs.join(&r));
        if pa.is_dir() {
            out.extend(compare_trees(ours, theirs, &r));
            continue;
        }
        let (mut ba, mut bb) = (std::fs::read(&pa).unwrap(), std::fs::read(&pb).unwrap());
        if name.ends_with("fsz") {
            ba = gunzip(&ba);
            bb = gunzip(&bb);
        }
        if ba != bb {
            out.push(format!(
                "`{}` differs ({} vs {} bytes{})\n",
                r.display(),
                ba.len(),
                bb.len(),
                if name.ends_with(".dat") {
                    format!(
                        ":\n--- ours ---\n{}--- theirs ---\n{}",
                        show(&ba),
                        show(&bb)
                    )
                } else {
                    String::new()
                }
            ));
        }
    }
    out
}

#[test]
fn verbose_backup_recover_and_verify_runs_match_the_reference() {
    check_flow(&[
        Run(T0, &["-BFv", "-r", "repo", "-f", "Data.fs"]),
        Run(T1, &["-Bv", "-r", "repo", "-f", "Data.fs"]),
        Run(T1, &["-BQv", "-r", "repo", "-f", "Data.fs"]),
        Grow,
        Run(T2, &["-BQv", "-r", "repo", "-f", "Data.fs"]),
        Run(T3, &["-BQv", "-r", "repo", "-f", "Data.fs"]),
        Run(T3, &["-Bv", "-r", "repo", "-f", "Data.fs"]),
        Run(T3, &["-Vv", "-r", "repo"]),
        Run(T3, &["-VQv", "-r", "repo"]),
        Run(T3, &["-Rv", "-o", "out.fs", "-r", "repo"]),
        Run(T3, &["-Rv", "-w", "-r", "repo", "-o", "out-w.fs"]),
        Run(T3, &["-Rv", "-r", "repo"]),
        Run(T3, &["-Rvw", "-r", "repo"]),
        Run(T3, &["-Rv", "-D", T0, "-r", "repo", "-o", "old.fs"]),
        Run(T3, &["-Rv", "-D", T1, "-r", "repo", "-o", "old1.fs"]),
        Run(T3, &["-Rv", "-D", T2, "-r", "repo", "-o", "new.fs"]),
    ]);
}

#[test]
fn verbose_gzip_and_kill_old_runs_match_the_reference() {
    check_flow(&[
        Run(T0, &["-BFzv", "-r", "repo", "-f", "Data.fs"]),
        Run(T1, &["-Bzv", "-r", "repo", "-f", "Data.fs"]),
        Grow,
        Run(T1, &["-Bzv", "-r", "repo", "-f", "Data.fs"]),
        Run(T2, &["-Bv", "-r", "repo", "-f", "Data.fs"]),
        Run(T2, &["-BQv", "-r", "repo", "-f", "Data.fs"]),
        Run(T2, &["-Vv", "-r", "repo"]),
        Run(T2, &["-VQv", "-r", "repo"]),
        Run(T2, &["-Rvw", "-r", "repo", "-o", "out.fs"]),
        Run(T3, &["-BFzkv", "-r", "repo", "-f", "Data.fs"]),
        Run(T3, &["-Vv", "-r", "repo"]),
        Run(T3, &["-Rv", "-r", "repo", "-o", "after-k.fs"]),
    ]);
}

#[test]
fn verbose_plain_kill_old_and_pack_detection_match_the_reference() {
    check_flow(&[
        Grow,
        Run(T0, &["-Bv", "-r", "repo", "-f", "Data.fs"]),
        Shrink,
        Run(T1, &["-Bv", "-r", "repo", "-f", "Data.fs"]),
        Run(T2, &["-BFkv", "-r", "repo", "-f", "Data.fs"]),
        Run(T3, &["-Vv", "-r", "repo"]),
    ]);
}

// ---------------------------------------------------------------------------
// Deliberate deviations: our behaviour, asserted (see the list at the top).
// ---------------------------------------------------------------------------

/// Deviation 1.
#[test]
fn ours_writes_no_empty_incremental_for_trailing_bytes_on_purpose() {
    for args in [
        &["-Bv", "-r", "repo", "-f", "Data.fs"][..],
        &["-BQv", "-r", "repo", "-f", "Data.fs"][..],
    ] {
        let mut lists = Vec::new();
        for side in Tool::BOTH {
            let d = tmp();
            full(d.path(), side);
            // An uncommitted, partial transaction header after the last
            // committed transaction.
            append(&d.path().join("Data.fs"), b"\x03\xd9partial!");
            let dat_before = std::fs::read(in_repo(d.path(), &format!("{T0}.dat"))).unwrap();
            let o = repozo(side, d.path(), T1, args);
            assert!(o.status.success(), "{side:?} {args:?}: {}", stderr(&o));
            let delta = in_repo(d.path(), &format!("{T1}.deltafs"));
            let dat_after = std::fs::read(in_repo(d.path(), &format!("{T0}.dat"))).unwrap();
            match side {
                Tool::Ours => {
                    assert!(!delta.exists(), "ours wrote an empty incremental");
                    assert_eq!(dat_after, dat_before, "ours changed the .dat");
                    assert!(
                        stderr(&o).ends_with("No changes, nothing to do\n"),
                        "{}",
                        stderr(&o)
                    );
                }
                Tool::Theirs => {
                    // For the record: repozo writes and records 0 bytes.
                    assert_eq!(std::fs::metadata(&delta).unwrap().len(), 0);
                    assert!(dat_after.len() > dat_before.len());
                }
            }
            lists.push(common::without_sidecars(listing(&d.path().join("repo"))));
            // Both repositories still verify.
            ok(repozo(side, d.path(), T1, &["-V", "-r", "repo"]));
        }
        assert_eq!(
            lists[0],
            vec![
                format!("{T0}.dat"),
                format!("{T0}.fs"),
                format!("{T0}.index")
            ]
        );
    }
}

/// Deviation 2, success path: the old output is not deleted first (so no
/// "Deleting old" line); everything else is the same.
#[test]
fn ours_does_not_delete_the_old_output_before_recovering_on_purpose() {
    let mut runs = Vec::new();
    for side in Tool::BOTH {
        let d = tmp();
        full(d.path(), side);
        std::fs::write(d.path().join("out.fs"), b"OLD DATA").unwrap();
        std::fs::write(d.path().join("out.fs.index"), b"OLD INDEX").unwrap();
        let o = ok(repozo(
            side,
            d.path(),
            NOW,
            &["-Rv", "-r", "repo", "-o", "out.fs"],
        ));
        let out = std::fs::read(d.path().join("out.fs")).unwrap();
        let idx = std::fs::read(d.path().join("out.fs.index")).unwrap();
        runs.push((stderr(&o), out, idx, listing(d.path())));
    }
    let (o, t) = (&runs[0], &runs[1]);
    assert!(t.0.contains("Deleting old out.fs\n"), "{}", t.0);
    assert_eq!(o.0, t.0.replace("Deleting old out.fs\n", ""));
    assert_eq!(o.1, t.1, "recovered data");
    assert_eq!(o.2, t.2, "recovered index");
    assert_eq!(o.3, t.3, "files left");
}

/// Deviation 2, failure path: same message and rc, but ours keeps the old
/// output and its index and leaves no `.part`.
#[test]
fn ours_keeps_the_old_output_when_recover_fails_on_purpose() {
    for (setup, args) in [
        (
            chain_full_bad_sum as Setup,
            &["-Rw", "-r", "repo", "-o", "out.fs"][..],
        ),
        (
            chain_delta_too_short,
            &["-Rw", "-r", "repo", "-o", "out.fs"][..],
        ),
        (full_without_dat, &["-Rw", "-r", "repo", "-o", "out.fs"][..]),
    ] {
        let mut outs = Vec::new();
        for side in Tool::BOTH {
            let d = tmp();
            setup(d.path(), side);
            std::fs::write(d.path().join("out.fs"), b"OLD DATA").unwrap();
            std::fs::write(d.path().join("out.fs.index"), b"OLD INDEX").unwrap();
            let o = repozo(side, d.path(), NOW, args);
            let part = d.path().join("out.fs.part");
            let out = d.path().join("out.fs");
            match side {
                Tool::Ours => {
                    assert!(!part.exists(), "ours left {}", part.display());
                    assert_eq!(std::fs::read(&out).unwrap(), b"OLD DATA");
                    assert_eq!(
                        std::fs::read(d.path().join("out.fs.index")).unwrap(),
                        b"OLD INDEX"
                    );
                }
                Tool::Theirs => {
                    // For the record: repozo deleted the output and left a
                    // (partial) .part.
                    assert!(part.exists());
                    assert!(!out.exists());
                }
            }
            outs.push(o);
        }
        if let Some(d) = diff(&args.join(" "), &outs[0], &outs[1]) {
            panic!("{d}");
        }
        assert_eq!(outs[0].status.code(), Some(1));
    }
}

/// Deviation 3: a chain without `.index` removes a stale `<output>.index`.
#[test]
fn ours_removes_a_stale_output_index_on_purpose() {
    let mut runs = Vec::new();
    for side in Tool::BOTH {
        let d = tmp();
        full(d.path(), side);
        rm(&in_repo(d.path(), &format!("{T0}.index")));
        std::fs::write(d.path().join("out.fs.index"), b"STALE").unwrap();
        let o = ok(repozo(
            side,
            d.path(),
            NOW,
            &["-Rv", "-r", "repo", "-o", "out.fs"],
        ));
        let idx = d.path().join("out.fs.index");
        match side {
            Tool::Ours => assert!(!idx.exists(), "ours kept the stale index"),
            Tool::Theirs => assert_eq!(std::fs::read(&idx).unwrap(), b"STALE"),
        }
        runs.push((stderr(&o), std::fs::read(d.path().join("out.fs")).unwrap()));
    }
    assert_eq!(
        runs[0].0,
        format!("{}Removed stale index file out.fs.index\n", runs[1].0)
    );
    assert_eq!(runs[0].1, runs[1].1, "recovered data");
}

// Deviation 4: tracebacks in repozo, one clear line in ours.

fn bad_magic(d: &Path, s: Tool) {
    empty_repo(d, s);
    let mut b = small().0;
    b[..4].copy_from_slice(b"XY30");
    std::fs::write(d.join("Data.fs"), b).unwrap();
}
fn corrupt_record(d: &Path, s: Tool) {
    empty_repo(d, s);
    // The redundant length of the last transaction is wrong.
    let mut b = small().0;
    let n = b.len();
    b[n - 1] ^= 0x01;
    std::fs::write(d.join("Data.fs"), b).unwrap();
}
fn empty_data_fs(d: &Path, s: Tool) {
    empty_repo(d, s);
    std::fs::write(d.join("Data.fs"), b"").unwrap();
}
fn full_with_bad_dat_line(d: &Path, s: Tool) {
    full(d, s);
    append(&in_repo(d, &format!("{T0}.dat")), b"repo/bogus 0 12\n");
}
fn chain_without_delta_in_dat(d: &Path, s: Tool) {
    chain(d, s);
    let p = in_repo(d, &format!("{T0}.dat"));
    let text = std::fs::read_to_string(&p).unwrap();
    let first = text.lines().next().unwrap();
    std::fs::write(&p, format!("{first}\n")).unwrap();
}
fn chain_gz_truncated_full(d: &Path, s: Tool) {
    chain_gz(d, s);
    let p = in_repo(d, &format!("{T0}.fsz"));
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() / 2]).unwrap();
}

#[test]
fn ours_reports_reference_tracebacks_as_one_line_on_purpose() {
    let cases: [(Setup, &[&str], &str); 8] = [
        (
            bad_magic,
            &["-B", "-r", "repo", "-f", "Data.fs"],
            "bad magic",
        ),
        (
            corrupt_record,
            &["-B", "-r", "repo", "-f", "Data.fs"],
            "bad redundant length",
        ),
        (
            empty_data_fs,
            &["-B", "-r", "repo", "-f", "Data.fs"],
            "0-byte Data.fs",
        ),
        (
            full_with_bad_dat_line,
            &["-V", "-r", "repo"],
            ".dat line with 3 fields",
        ),
        (
            full_with_bad_dat_line,
            &["-Rw", "-r", "repo", "-o", "out.fs"],
            ".dat line with 3 fields",
        ),
        (
            chain_without_delta_in_dat,
            &["-Rw", "-r", "repo", "-o", "out.fs"],
            "chain file not in the .dat",
        ),
        (
            chain_without_delta_in_dat,
            &["-Rw", "-r", "repo"],
            "chain file not in the .dat",
        ),
        (
            chain_gz_truncated_full,
            &["-V", "-r", "repo"],
            "truncated .fsz",
        ),
    ];
    let mut problems = Vec::new();
    for (setup, args, what) in cases {
        let outs: Vec<Output> = Tool::BOTH
            .iter()
            .map(|&side| {
                let d = tmp();
                setup(d.path(), side);
                repozo(side, d.path(), NOW, args)
            })
            .collect();
        let (o, t) = (&outs[0], &outs[1]);
        let (oe, te) = (stderr(o), stderr(t));
        if !te.contains("Traceback") || t.status.code() != Some(1) {
            problems.push(format!(
                "{what} `{}`: the reference no longer crashes (rc {:?}): {te}",
                args.join(" "),
                t.status.code()
            ));
        }
        if o.status.code() != Some(1)
            || oe.contains("Traceback")
            || oe.lines().count() != 1
            || oe.trim().is_empty()
        {
            problems.push(format!(
                "{what} `{}`: ours rc {:?}, stderr:\n{oe}",
                args.join(" "),
                o.status.code()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
