//! Interoperability with ZODB 6.4's repozo, run as a subprocess.
//!
//! Real ZODB writes the Data.fs (`tests/py/zodbtool.py`); our binary and
//! the reference repozo (`tests/py/repozo_shim.py`) back it up, into one
//! shared repository or into twin repositories, under a pinned clock
//! (`REPOZO_TEST_NOW`), and the results must be interchangeable and, where
//! the format allows, byte-identical.
//!
//! Randomised scenarios use a tiny xorshift generator with fixed seeds, so
//! every run does the same thing; failures name the seed and the step.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::Tool::{self, Ours, Theirs};
use crate::common::py::{self, zodbtool, zodbtool_stdout};
use crate::common::{Rng, listing, repozo, run, stamp_of, stderr, without_sidecars, zodb};
use md5::{Digest, Md5};

// ---------------------------------------------------------------------------
// Determinism: a seeded generator and a pinned clock
// ---------------------------------------------------------------------------

/// A pinned UTC clock that only moves when told to. It starts shortly
/// before a leap day's midnight so that random steps cross minute, hour,
/// day and month boundaries in the file names.
struct Clock {
    secs: u64,
}

impl Clock {
    /// 2024-02-28-23-59-50 UTC.
    fn new() -> Self {
        Clock {
            secs: 1_709_164_790,
        }
    }

    fn now(&self) -> String {
        stamp_of(self.secs)
    }

    /// Advances by at least one second (sometimes by a lot) and returns
    /// the new stamp.
    fn tick(&mut self, rng: &mut Rng) -> String {
        self.secs += match rng.below(10) {
            0..=5 => 1,
            6 => 2,
            7 => 59,
            8 => 3600,
            _ => 86_400,
        };
        self.now()
    }

    /// Advances by exactly `secs` seconds.
    fn step(&mut self, secs: u64) -> String {
        self.secs += secs;
        self.now()
    }
}

#[test]
fn the_test_clock_formats_stamps_like_time_gmtime() {
    assert_eq!(stamp_of(0), "1970-01-01-00-00-00");
    assert_eq!(stamp_of(1_709_164_790), "2024-02-28-23-59-50");
    assert_eq!(stamp_of(1_709_164_790 + 86_400), "2024-02-29-23-59-50");
    assert_eq!(stamp_of(1_709_164_790 + 2 * 86_400), "2024-03-01-23-59-50");
    assert_eq!(stamp_of(951_782_400), "2000-02-29-00-00-00");
}

// ---------------------------------------------------------------------------
// Running the tools
// ---------------------------------------------------------------------------

/// [`repozo`], asserting rc 0 and no output on stdout (unless it is a
/// recover to stdout, which the caller inspects).
fn repozo_ok(tool: Tool, cwd: &Path, now: &str, args: &[&str]) -> Output {
    let o = repozo(tool, cwd, now, args);
    assert!(
        o.status.success(),
        "{} repozo {args:?} (cwd {}, now {now}) failed with {}:\n{}",
        tool.name(),
        cwd.display(),
        o.status,
        stderr(&o)
    );
    let to_stdout = args.contains(&"-R") && !args.contains(&"-o");
    if !to_stdout {
        assert!(
            o.stdout.is_empty(),
            "{} repozo {args:?} printed on stdout: {}",
            tool.name(),
            String::from_utf8_lossy(&o.stdout)
        );
    }
    o
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// ZODB's `FileStorage(read_only=True).getSize()`: the committed end.
fn getsize(data_fs: &Path) -> u64 {
    zodbtool_stdout(&["getsize", s(data_fs)])
        .parse()
        .expect("getsize prints an integer")
}

/// The committed bytes of a Data.fs, as ZODB sees them.
fn committed_bytes(data_fs: &Path) -> Vec<u8> {
    let end = getsize(data_fs) as usize;
    let mut bytes = std::fs::read(data_fs).unwrap();
    assert!(end <= bytes.len(), "getSize() {end} beyond the file");
    bytes.truncate(end);
    bytes
}

/// The `.index` repozo would write for `data_fs` as it stands (its own
/// `Data.fs.index`, if any, is used the way FileStorage uses it).
fn saveindex(data_fs: &Path, out: &Path) -> Vec<u8> {
    zodbtool(&["saveindex", s(data_fs), s(out)]);
    std::fs::read(out).unwrap()
}

/// Runs a Python snippet with the venv's interpreter (real ZODB importable).
fn python(code: &str, args: &[&str]) {
    let o = run({
        let mut c = std::process::Command::new(py::venv_python());
        c.arg("-c").arg(code).args(args);
        c
    });
    assert!(
        o.status.success(),
        "python snippet failed:\n{code}\n{}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------

/// Asserts `a == b` without dumping megabytes: reports sizes and the first
/// differing offset.
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

/// Every member, as Python's gzip (ZODB's repozo) reads a file: ours has
/// one per 512 KiB.
fn gunzip(bytes: &[u8], what: &str) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{what} is not a valid gzip stream: {e}"));
    out
}

/// The uncompressed contents of a repository file.
fn contents(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.to_string_lossy().ends_with("fsz") {
        gunzip(&raw, &path.display().to_string())
    } else {
        raw
    }
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Asserts that two repositories hold the same files: byte-identical,
/// except that gzipped data files (whose headers carry a name and mtime
/// and whose deflate streams depend on the compressor) are compared
/// decompressed.
/// Our fast-hash sidecars (`<stamp>.blake3`), which ZODB's repozo does not
/// write, are left out (tests/it/sidecar.rs checks them).
fn assert_same_repos(a: &Path, b: &Path, context: &str) {
    let (la, lb) = (without_sidecars(listing(a)), without_sidecars(listing(b)));
    assert_eq!(
        la,
        lb,
        "{context}: repositories {} and {} list different files",
        a.display(),
        b.display()
    );
    for name in &la {
        let what = format!("{context}: {name}");
        if name.ends_with("fsz") {
            assert_same_bytes(&contents(&a.join(name)), &contents(&b.join(name)), &what);
        } else {
            let (x, y) = (
                std::fs::read(a.join(name)).unwrap(),
                std::fs::read(b.join(name)).unwrap(),
            );
            assert_same_bytes(&x, &y, &what);
        }
    }
}

/// Every `.dat` line names a file of the repository whose uncompressed
/// size and md5 are the ones recorded, and consecutive lines are
/// contiguous.
fn assert_dats_match_files(repo: &Path, context: &str) {
    for name in listing(repo) {
        let Some(root) = name.strip_suffix(".dat") else {
            continue;
        };
        if !repo.join(format!("{root}.fs")).exists() && !repo.join(format!("{root}.fsz")).exists() {
            continue; // not a chain's .dat (a foreign file)
        }
        let text = std::fs::read_to_string(repo.join(&name)).unwrap();
        let mut expected_start = 0u64;
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 4, "{context}: {name}: bad line {line:?}");
            let (start, end): (u64, u64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
            assert_eq!(start, expected_start, "{context}: {name}: gap at {line:?}");
            expected_start = end;
            let base = Path::new(f[0]).file_name().unwrap();
            let data = contents(&repo.join(base));
            assert_eq!(data.len() as u64, end - start, "{context}: {line:?}");
            assert_eq!(md5_hex(&data), f[3], "{context}: {line:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// 1. One repository written alternately by both tools
// ---------------------------------------------------------------------------

struct Snapshot {
    stamp: String,
    bytes: Vec<u8>,
    path: PathBuf,
}

/// The upstream MonteCarlo test, across the two implementations: real
/// ZODB grows (and now and then packs) a Data.fs; after every change one
/// of the tools, picked at random, backs it up into the one shared
/// repository with random `-z`, `-Q` and `-F`. Every intermediate state
/// must then be recovered identically by both tools, with and without
/// `-w`, to a file (with an identical `.index`) and to stdout.
#[test]
fn a_repository_written_alternately_by_both_tools_recovers_identically_at_every_date() {
    monte_carlo(1, 12);
}

/// [`a_repository_written_alternately_by_both_tools_recovers_identically_at_every_date`]
/// with another seed (a separate test, so the histories run in parallel).
#[test]
fn a_second_alternately_written_history_recovers_identically_at_every_date() {
    monte_carlo(2, 12);
}

/// The same with a third seed.
#[test]
fn a_third_alternately_written_history_recovers_identically_at_every_date() {
    monte_carlo(3, 12);
}

/// How often each kind of backup happened.
#[derive(Default, Debug)]
struct Kinds {
    full: usize,
    incremental: usize,
    nothing: usize,
    packs: usize,
}

fn monte_carlo(seed: u64, iterations: usize) {
    let mut kinds = Kinds::default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data_fs = dir.join("Data.fs");
    for d in ["repo", "snaps", "out"] {
        std::fs::create_dir(dir.join(d)).unwrap();
    }
    let mut rng = Rng::new(seed);
    let mut clock = Clock::new();
    let first_stamp_before = clock.now();
    let mut snaps: Vec<Snapshot> = Vec::new();
    let mut used = [false; 2];

    for i in 0..iterations {
        // Besides the random choices, one step packs and one changes
        // nothing, so that every history exercises every decision.
        let (forced_pack, forced_idle) = (i == iterations / 2, i == iterations - 3);
        let grew = i == 0 || (!forced_idle && rng.chance(85));
        if grew {
            let txns = 1 + rng.below(4);
            let step_seed = seed * 1000 + i as u64;
            if rng.chance(10) {
                zodb::grow_big(&data_fs, txns, step_seed);
            } else {
                zodb::grow(&data_fs, txns, step_seed);
            }
            if rng.chance(10) {
                zodb::undo(&data_fs);
            }
            if forced_pack || (i > 0 && rng.chance(10)) {
                zodb::pack(&data_fs);
                kinds.packs += 1;
            }
        }
        let before = listing(&dir.join("repo"));
        let tool = if rng.chance(50) { Ours } else { Theirs };
        used[tool as usize] = true;
        let mut args = vec!["-B", "-r", "repo", "-f", "Data.fs"];
        if rng.chance(50) {
            args.push("-z");
        }
        if rng.chance(50) {
            args.push("-Q");
        }
        if rng.chance(15) && !forced_idle {
            args.push("-F");
        }
        let stamp = clock.tick(&mut rng);
        let context = format!("seed {seed} step {i}: {} {args:?} at {stamp}", tool.name());
        let o = repozo(tool, dir, &stamp, &args);
        assert!(o.status.success(), "{context} failed:\n{}", stderr(&o));
        assert_dats_match_files(&dir.join("repo"), &context);
        let new: Vec<String> = listing(&dir.join("repo"))
            .into_iter()
            .filter(|n| !before.contains(n))
            .collect();
        if new
            .iter()
            .any(|n| n.ends_with(".fs") || n.ends_with(".fsz"))
        {
            kinds.full += 1;
        } else if new.iter().any(|n| n.contains(".deltafs")) {
            kinds.incremental += 1;
        } else {
            assert!(new.is_empty(), "{context}: {new:?}");
            kinds.nothing += 1;
        }

        let bytes = committed_bytes(&data_fs);
        let path = dir.join("snaps").join(format!("{i}.fs"));
        std::fs::write(&path, &bytes).unwrap();
        snaps.push(Snapshot { stamp, bytes, path });
    }
    assert!(
        used[0] && used[1],
        "seed {seed}: both tools must write to the repository"
    );
    assert!(
        kinds.full >= 2 && kinds.incremental >= 2 && kinds.nothing >= 1 && kinds.packs >= 1,
        "seed {seed}: {kinds:?}"
    );
    let last = snaps.last().unwrap().stamp.clone();

    // Every intermediate state, by both tools, with and without -w.
    for (i, snap) in snaps.iter().enumerate() {
        let context = format!("seed {seed}, state {i} at {}", snap.stamp);
        let expected_index = saveindex(&snap.path, &dir.join("snaps").join(format!("{i}.index")));
        for tool in Tool::BOTH {
            for w in [false, true] {
                let out = format!("out/{i}-{}{}.fs", tool.name(), if w { "-w" } else { "" });
                let mut args = vec!["-R", "-r", "repo", "-D", &snap.stamp, "-o", &out];
                if w {
                    args.push("-w");
                }
                repozo_ok(tool, dir, &last, &args);
                let what = format!("{context}: {} {args:?}", tool.name());
                assert_same_bytes(&std::fs::read(dir.join(&out)).unwrap(), &snap.bytes, &what);
                assert_same_bytes(
                    &std::fs::read(dir.join(format!("{out}.index"))).unwrap(),
                    &expected_index,
                    &format!("{what}: .index"),
                );
                assert!(
                    !dir.join(format!("{out}.part")).exists(),
                    "{what}: .part left"
                );
            }
        }
        // To stdout, now and then.
        if i % 4 == 3 {
            for tool in Tool::BOTH {
                let o = repozo_ok(tool, dir, &last, &["-R", "-r", "repo", "-D", &snap.stamp]);
                assert_same_bytes(
                    &o.stdout,
                    &snap.bytes,
                    &format!("{context}: {tool:?} stdout"),
                );
            }
        }
        // A partial date means "before the start of that minute".
        if i % 3 == 1 {
            let minute = &snap.stamp[..16];
            let expected = snaps.iter().rev().find(|s| s.stamp.as_str() < minute);
            let outs: Vec<Output> = Tool::BOTH
                .iter()
                .map(|&t| repozo(t, dir, &last, &["-R", "-r", "repo", "-D", minute]))
                .collect();
            let what = format!("{context}: -D {minute}");
            assert_eq!(outs[0].status.code(), outs[1].status.code(), "{what}");
            assert_eq!(stderr(&outs[0]), stderr(&outs[1]), "{what}");
            match expected {
                Some(e) => assert_same_bytes(&outs[0].stdout, &e.bytes, &what),
                None => {
                    assert_eq!(outs[0].status.code(), Some(1), "{what}");
                    assert_eq!(
                        stderr(&outs[0]).trim_end(),
                        format!("No files in repository before {minute}"),
                        "{what}"
                    );
                }
            }
            assert_same_bytes(&outs[0].stdout, &outs[1].stdout, &what);
        }
    }

    // Before the first backup: the same refusal from both.
    let outs: Vec<Output> = Tool::BOTH
        .iter()
        .map(|&t| {
            let args = [
                "-R",
                "-r",
                "repo",
                "-D",
                &first_stamp_before,
                "-o",
                "out/none.fs",
            ];
            repozo(t, dir, &last, &args)
        })
        .collect();
    for o in &outs {
        assert_eq!(
            o.status.code(),
            Some(1),
            "seed {seed}: recover before the first backup"
        );
    }
    assert_eq!(stderr(&outs[0]), stderr(&outs[1]), "seed {seed}");
    assert!(!dir.join("out/none.fs").exists());

    // The latest state, to stdout without -D.
    for tool in Tool::BOTH {
        let o = repozo_ok(tool, dir, &last, &["-R", "-r", "repo"]);
        let what = format!("seed {seed}: {} -R to stdout at {last}", tool.name());
        assert_same_bytes(&o.stdout, &snaps.last().unwrap().bytes, &what);
    }

    // Both tools verify the shared repository.
    for tool in Tool::BOTH {
        for args in [&["-V", "-r", "repo"][..], &["-V", "-Q", "-r", "repo"]] {
            let o = repozo_ok(tool, dir, &last, args);
            assert!(
                o.stderr.is_empty(),
                "seed {seed}: {} {args:?}: {}",
                tool.name(),
                stderr(&o)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 2. Twin repositories: identical .dat and .index files
// ---------------------------------------------------------------------------

/// Three repositories fed the same Data.fs history with the same flags at
/// the same pinned instants: one written only by us, one only by ZODB's
/// repozo, one by the two alternately.
struct Triplets {
    _tmp: tempfile::TempDir,
    data_fs: PathBuf,
    /// (working directory, tool or None for "alternate")
    sides: Vec<(PathBuf, Option<Tool>)>,
}

impl Triplets {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let mut sides = Vec::new();
        for (name, tool) in [
            ("ours", Some(Ours)),
            ("theirs", Some(Theirs)),
            ("mixed", None),
        ] {
            let cwd = tmp.path().join(name);
            std::fs::create_dir_all(cwd.join("repo")).unwrap();
            sides.push((cwd, tool));
        }
        Triplets {
            data_fs: src.join("Data.fs"),
            _tmp: tmp,
            sides,
        }
    }

    fn repo(&self, k: usize) -> PathBuf {
        self.sides[k].0.join("repo")
    }

    /// Runs `-B FLAGS -r repo -f <Data.fs>` on every side at `now`; on the
    /// mixed side, `mixed_tool` runs. Asserts that all three made the same
    /// files and that these agree with their `.dat` lines.
    fn backup(&self, now: &str, flags: &[&str], mixed_tool: Tool, context: &str) {
        let mut args = vec!["-B"];
        args.extend_from_slice(flags);
        args.extend(["-r", "repo", "-f", s(&self.data_fs)]);
        for (cwd, tool) in &self.sides {
            let tool = tool.unwrap_or(mixed_tool);
            let o = repozo(tool, cwd, now, &args);
            assert!(
                o.status.success(),
                "{context}: {} {args:?} in {} failed:\n{}",
                tool.name(),
                cwd.display(),
                stderr(&o)
            );
            assert!(o.stdout.is_empty(), "{context}: stdout");
        }
        for k in 1..self.sides.len() {
            assert_same_repos(&self.repo(0), &self.repo(k), context);
        }
        assert_dats_match_files(&self.repo(0), context);
    }

    /// Each tool recovers every side's latest state; all equal the
    /// committed Data.fs, and every side verifies with both tools.
    fn cross_check(&self, now: &str, context: &str) {
        let expected = committed_bytes(&self.data_fs);
        for (cwd, _) in &self.sides {
            for tool in Tool::BOTH {
                let o = repozo_ok(tool, cwd, now, &["-R", "-r", "repo"]);
                assert_same_bytes(
                    &o.stdout,
                    &expected,
                    &format!("{context}: {} recovering {}", tool.name(), cwd.display()),
                );
                repozo_ok(tool, cwd, now, &["-V", "-r", "repo"]);
            }
        }
    }
}

/// Random steps of grow / pack / backup applied to a [`Triplets`].
fn twin_history(seed: u64, steps: usize, gzip: bool) {
    let t = Triplets::new();
    let mut rng = Rng::new(seed);
    let mut clock = Clock::new();
    let mut mixed_tool = if seed.is_multiple_of(2) { Ours } else { Theirs };
    for i in 0..steps {
        if i == 0 || rng.chance(85) {
            let txns = 1 + rng.below(4);
            let step_seed = seed * 1000 + i as u64;
            if rng.chance(10) {
                zodb::grow_big(&t.data_fs, txns, step_seed);
            } else {
                zodb::grow(&t.data_fs, txns, step_seed);
            }
            if rng.chance(15) {
                zodb::undo(&t.data_fs);
            }
            if i > 0 && rng.chance(12) {
                zodb::pack(&t.data_fs);
            }
        }
        let mut flags = Vec::new();
        if rng.chance(50) {
            flags.push("-Q");
        }
        if rng.chance(15) {
            flags.push("-F");
        }
        if gzip && rng.chance(60) {
            flags.push("-z");
        }
        let now = clock.tick(&mut rng);
        let context = format!("seed {seed} step {i}: -B {flags:?} at {now}");
        t.backup(&now, &flags, mixed_tool, &context);
        mixed_tool = mixed_tool.other();
    }
    t.cross_check(&clock.now(), &format!("seed {seed}"));
}

#[test]
fn dat_and_index_files_are_byte_identical_between_the_tools() {
    for seed in [11, 12] {
        twin_history(seed, 9, false);
    }
}

#[test]
fn gzipped_backups_decompress_identically_and_have_byte_identical_dat_and_index_files() {
    for seed in [21, 22] {
        twin_history(seed, 9, true);
    }
}

/// Our `-z` codes each member (512 KiB) either with LZ77 (libdeflate) or, where
/// LZ77 gains little, with Huffman coding alone (`src/io/huffman.rs`).
/// Both kinds must be read by ZODB's repozo (Python's gzip and zlib).
#[test]
fn gzip_members_coded_with_and_without_lz77_are_recovered_by_zodbs_repozo() {
    let dir = tempfile::tempdir().unwrap();
    let data_fs = dir.path().join("Data.fs");
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    // zodbtool's buckets, rewritten with mostly the same values, first
    // (LZ77 pays); then the benchmark's generator, whose documents hold
    // fresh random hex text (Huffman coding alone).
    zodb::grow(&data_fs, 150, 31);
    let gendata = py::repo_root().join("bench").join("gendata.py");
    let o = py::python_script(&gendata)
        .args([
            s(&data_fs),
            "--until-bytes",
            &(5u64 << 20).to_string(),
            "--seed",
            "32",
        ])
        .output()
        .expect("runs bench/gendata.py");
    assert!(o.status.success(), "gendata.py failed:\n{}", stderr(&o));
    let committed = committed_bytes(&data_fs);
    let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(1).unwrap());
    let lz: Vec<bool> = committed
        .chunks(repozo::io::gzip::MEMBER)
        .map(|m| repozo::io::huffman::lz_pays(&mut c, m))
        .collect();
    assert!(
        lz.contains(&true) && lz.contains(&false),
        "the fixture should have members of both kinds: {lz:?}"
    );

    let now = stamp_of(1_700_000_000);
    repozo_ok(
        Ours,
        dir.path(),
        &now,
        &["-BFz", "-f", s(&data_fs), "-r", s(&repo)],
    );
    let out = dir.path().join("theirs.fs");
    let later = stamp_of(1_700_000_100);
    repozo_ok(
        Theirs,
        dir.path(),
        &later,
        &["-R", "-r", s(&repo), "-o", s(&out)],
    );
    assert_same_bytes(
        &std::fs::read(&out).unwrap(),
        &committed,
        "ZODB's recover of our -z backup",
    );
    repozo_ok(Theirs, dir.path(), &later, &["-V", "-r", s(&repo)]);
}

// ---------------------------------------------------------------------------
// 3. Stale and insane Data.fs.index files
// ---------------------------------------------------------------------------

/// One transaction of `zodbtool scan`: its position, its end (after the
/// redundant length) and its data records as (oid, position).
struct Txn {
    pos: u64,
    end: u64,
    records: Vec<(u64, u64)>,
}

fn scan(data_fs: &Path) -> Vec<Txn> {
    let text = zodbtool_stdout(&["scan", s(data_fs)]);
    let mut txns: Vec<Txn> = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.first() {
            Some(&"txn") => {
                let pos: u64 = w[1].parse().unwrap();
                let tlen: u64 = w[5].parse().unwrap();
                txns.push(Txn {
                    pos,
                    end: pos + tlen + 8,
                    records: Vec::new(),
                });
            }
            Some(&"data") => {
                let pos: u64 = w[1].parse().unwrap();
                let oid = u64::from_str_radix(w[3], 16).unwrap();
                txns.last_mut().unwrap().records.push((oid, pos));
            }
            Some(&"BAD:") => panic!("{}: {line}", data_fs.display()),
            _ => {}
        }
    }
    txns
}

/// Rewrites the index file `src` into `dst` with its position replaced
/// by `pos` and, if given, the entry of `oid` set to `oid_pos` — through
/// ZODB's own fsIndex, so the file is what ZODB would have written.
fn doctor_index(src: &Path, dst: &Path, pos: u64, tamper: Option<(u64, u64)>) {
    let (oid, oid_pos) = tamper.unwrap_or((u64::MAX, 0));
    python(
        "import sys\n\
         from ZODB.fsIndex import fsIndex\n\
         from ZODB.utils import p64\n\
         idx = fsIndex.load(sys.argv[1])['index']\n\
         oid = int(sys.argv[4])\n\
         if oid != 2**64 - 1:\n    idx[p64(oid)] = int(sys.argv[5])\n\
         idx.save(int(sys.argv[3]), sys.argv[2])\n",
        &[
            s(src),
            s(dst),
            &pos.to_string(),
            &oid.to_string(),
            &oid_pos.to_string(),
        ],
    );
}

/// Writes the pre-2010 index format: a single pickled dict
/// `{'pos': pos, 'index': {oid: pos}}`, which ZODB still converts and uses.
fn old_format_index(src: &Path, dst: &Path) {
    python(
        "import sys\n\
         from ZODB.fsIndex import fsIndex\n\
         from zodbpickle import pickle\n\
         info = fsIndex.load(sys.argv[1])\n\
         d = {'pos': info['pos'], 'index': dict(info['index'].items())}\n\
         with open(sys.argv[2], 'wb') as f:\n    pickle.dump(d, f, 3)\n",
        &[s(src), s(dst)],
    );
}

/// A Data.fs (as of state 2) with a given `Data.fs.index`, backed up by
/// both tools into twin repositories that already hold a full backup of
/// state 1: first an incremental, then a full. Everything written must be
/// byte-identical; returns the `.index` of the incremental.
fn backup_with_index(
    base: &Path,
    name: &str,
    state2: &Path,
    index: Option<&[u8]>,
    template_repo: &Path,
    quick: bool,
) -> Vec<u8> {
    let dir = base.join(name);
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let data_fs = src.join("Data.fs");
    std::fs::copy(state2, &data_fs).unwrap();
    let index_path = src.join("Data.fs.index");
    if let Some(bytes) = index {
        std::fs::write(&index_path, bytes).unwrap();
    }
    let mut clock = Clock::new();
    let (t1, t2) = (clock.step(10), clock.step(1));
    for tool in Tool::BOTH {
        let repo = dir.join(tool.name()).join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        for f in listing(template_repo) {
            std::fs::copy(template_repo.join(&f), repo.join(&f)).unwrap();
        }
        let cwd = dir.join(tool.name());
        let incr: &[&str] = if quick { &["-BQ"] } else { &["-B"] };
        for (now, mode) in [(&t1, incr), (&t2, &["-BF"][..])] {
            let mut args = mode.to_vec();
            args.extend(["-r", "repo", "-f", s(&data_fs)]);
            repozo_ok(tool, &cwd, now, &args);
        }
        // Read-only: neither tool may rewrite or remove Data.fs.index.
        match index {
            Some(bytes) => assert_same_bytes(
                &std::fs::read(&index_path).unwrap(),
                bytes,
                &format!("{name}: Data.fs.index after {}", tool.name()),
            ),
            None => assert!(
                !index_path.exists(),
                "{name}: {} made an index",
                tool.name()
            ),
        }
    }
    let (a, b) = (dir.join("ours/repo"), dir.join("theirs/repo"));
    assert_same_repos(&a, &b, name);
    assert_eq!(
        without_sidecars(listing(&a)).len(),
        3 + 5,
        "{name}: expected full+incr+full"
    );
    let incr_index = listing(&a)
        .into_iter()
        .find(|n| n.starts_with(&t1) && n.ends_with(".index"))
        .unwrap();
    std::fs::read(a.join(incr_index)).unwrap()
}

/// State 1 (with the index ZODB wrote then), state 2 (grown further, with
/// its up-to-date index), and a repository holding a full backup of
/// state 1.
struct IndexFixture {
    tmp: tempfile::TempDir,
    state2: PathBuf,
    stale: PathBuf,
    current: PathBuf,
    template_repo: PathBuf,
    txns: Vec<Txn>,
    /// The correct `.index` of state 2.
    honest: Vec<u8>,
}

fn index_fixture(seed: u64) -> IndexFixture {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(work.join("repo")).unwrap();
    let data_fs = work.join("Data.fs");
    zodb::grow(&data_fs, 15, seed);
    let stale = tmp.path().join("stale.index");
    zodbtool(&["copy-index", s(&data_fs), s(&stale)]);
    // The template: a full backup of state 1 (by ZODB's repozo).
    repozo_ok(
        Theirs,
        &work,
        &Clock::new().now(),
        &["-BF", "-r", "repo", "-f", "Data.fs"],
    );
    zodb::grow(&data_fs, 8, seed + 1);
    let current = tmp.path().join("current.index");
    zodbtool(&["copy-index", s(&data_fs), s(&current)]);
    let state2 = tmp.path().join("state2.fs");
    std::fs::copy(&data_fs, &state2).unwrap();
    let txns = scan(&state2);
    assert!(txns.len() > 20);
    let honest = saveindex(&data_fs, &tmp.path().join("honest.index"));
    IndexFixture {
        template_repo: work.join("repo"),
        tmp,
        state2,
        stale,
        current,
        txns,
        honest,
    }
}

/// A valid but out-of-date Data.fs.index (ZODB loads it and scans only
/// the transactions after its position) gives the backups the same
/// `.index` as an up-to-date one, with both tools.
#[test]
fn a_stale_data_fs_index_gives_the_same_backup_index() {
    let fx = index_fixture(31);
    let base = fx.tmp.path();
    let stale = std::fs::read(&fx.stale).unwrap();
    let current = std::fs::read(&fx.current).unwrap();
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("up-to-date", Some(current.clone())),
        ("stale", Some(stale)),
        ("missing", None),
    ];
    for (k, (name, bytes)) in cases.into_iter().enumerate() {
        let got = backup_with_index(
            base,
            name,
            &fx.state2,
            bytes.as_deref(),
            &fx.template_repo,
            k % 2 == 1,
        );
        assert_same_bytes(&got, &fx.honest, &format!("{name}: incremental .index"));
    }

    // The up-to-date index with its position moved back to an earlier
    // transaction boundary: sane if no later transaction touched the
    // objects ZODB checks, insane otherwise; correct either way.
    let mid = &fx.txns[fx.txns.len() - 4];
    let moved = base.join("moved.index");
    doctor_index(&fx.current, &moved, mid.pos, None);
    let got = backup_with_index(
        base,
        "moved-back",
        &fx.state2,
        Some(&std::fs::read(&moved).unwrap()),
        &fx.template_repo,
        false,
    );
    assert_same_bytes(&got, &fx.honest, "moved-back: incremental .index");

    // The old (pre-2010) dict format, still read by ZODB.
    let old = base.join("old-format.index");
    old_format_index(&fx.stale, &old);
    let got = backup_with_index(
        base,
        "old-format",
        &fx.state2,
        Some(&std::fs::read(&old).unwrap()),
        &fx.template_repo,
        true,
    );
    assert_same_bytes(&got, &fx.honest, "old-format: incremental .index");
}

/// ZODB trusts a Data.fs.index whose last transaction checks out: a wrong
/// entry for an object elsewhere is carried into repozo's `.index`. Our
/// tool must make the same judgement (sane or not) and so write the same
/// bytes; an index that fails the check, or cannot be read at all, is
/// ignored by both and the Data.fs scanned from the start.
#[test]
fn an_insane_or_unreadable_data_fs_index_gives_the_same_backup_index() {
    let fx = index_fixture(41);
    let base = fx.tmp.path();
    let stale = std::fs::read(&fx.stale).unwrap();
    // The stale index is valid at the end of state 1, where the
    // template's full backup ends.
    let end1: u64 = {
        let dat = listing(&fx.template_repo)
            .into_iter()
            .find(|n| n.ends_with(".dat"))
            .unwrap();
        let line = std::fs::read_to_string(fx.template_repo.join(dat)).unwrap();
        line.split(' ').nth(2).unwrap().parse().unwrap()
    };
    let last1 = fx
        .txns
        .iter()
        .rfind(|t| t.end <= end1 && !t.records.is_empty())
        .unwrap();
    let last1_oids: Vec<u64> = last1.records.iter().map(|r| r.0).collect();
    // An object ZODB's check does not look at, and that no later
    // transaction rewrites (so the wrong entry survives the tail scan).
    let later_oids: Vec<u64> = fx
        .txns
        .iter()
        .filter(|t| t.pos >= last1.pos)
        .flat_map(|t| t.records.iter().map(|r| r.0))
        .collect();
    let elsewhere = fx
        .txns
        .iter()
        .filter(|t| t.end <= end1)
        .flat_map(|t| t.records.iter())
        .find(|(oid, _)| !later_oids.contains(oid))
        .expect("an object written only before the last transaction of state 1")
        .0;
    let inner = fx.txns[fx.txns.len() / 2].pos;
    let size = std::fs::metadata(&fx.state2).unwrap().len();

    let mut cases: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    // Doctored through ZODB's fsIndex.
    type Tamper = Option<(u64, u64)>;
    let doctored: Vec<(&str, u64, Tamper)> = vec![
        // Trusted: the checked records agree; one other entry is wrong.
        ("wrong-entry-elsewhere", end1, Some((elsewhere, 4))),
        // Insane: an entry of the last transaction disagrees.
        ("wrong-entry-in-last-txn", end1, Some((last1_oids[0], 4))),
        ("pos-one-past-a-boundary", inner + 1, None),
        ("pos-one-before-a-boundary", inner - 1, None),
        ("pos-mid-transaction", inner + 30, None),
        ("pos-past-the-end", size + 1000, None),
        ("pos-below-100", 50, None),
        ("pos-zero", 0, None),
    ];
    for (name, pos, tamper) in doctored {
        let p = base.join(format!("{name}.index"));
        doctor_index(&fx.stale, &p, pos, tamper);
        cases.push((name.into(), Some(std::fs::read(&p).unwrap())));
    }
    // Byte-level damage.
    cases.push((
        "truncated-half".into(),
        Some(stale[..stale.len() / 2].to_vec()),
    ));
    cases.push((
        "truncated-last-byte".into(),
        Some(stale[..stale.len() - 1].to_vec()),
    ));
    cases.push((
        "only-the-position".into(),
        Some(stale[..stale.iter().position(|&b| b == 0x2e).unwrap() + 1].to_vec()),
    ));
    cases.push(("empty".into(), Some(Vec::new())));
    cases.push((
        "garbage".into(),
        Some(b"this is not a pickle at all\n".to_vec()),
    ));
    let mut flipped = stale.clone();
    let n = flipped.len();
    flipped[n / 2] ^= 0x55;
    cases.push(("one-byte-flipped".into(), Some(flipped)));

    for (k, (name, bytes)) in cases.iter().enumerate() {
        let got = backup_with_index(
            base,
            name,
            &fx.state2,
            bytes.as_deref(),
            &fx.template_repo,
            k % 2 == 0,
        );
        match name.as_str() {
            // ZODB trusts it, so the wrong entry reaches the backup.
            "wrong-entry-elsewhere" => assert_ne!(got, fx.honest, "{name}"),
            // Depends on which byte: either judged insane, or trusted.
            "one-byte-flipped" => {}
            _ => assert_same_bytes(&got, &fx.honest, &format!("{name}: incremental .index")),
        }
    }
}

// ---------------------------------------------------------------------------
// 4. -k
// ---------------------------------------------------------------------------

/// `-k` sequences (after forced fulls, automatic fulls after a pack, and
/// with incrementals, which delete nothing), by each tool alone and by
/// both alternately: the repositories keep exactly the same files,
/// foreign files included.
#[test]
fn kill_old_on_full_leaves_the_same_files() {
    let t = Triplets::new();
    for (cwd, _) in &t.sides {
        let repo = cwd.join("repo");
        std::fs::write(repo.join("README.txt"), "not a backup\n").unwrap();
        std::fs::write(repo.join("2000-01-01-00-00-00.dat"), "orphan\n").unwrap();
        std::fs::write(repo.join("1999-12-31-23-59-59.index"), "orphan").unwrap();
        std::fs::write(repo.join("2000-01-01-00-00-00.fs.bak"), "x").unwrap();
    }
    let mut clock = Clock::new();
    // (grow?, pack?, flags, number of data files expected afterwards)
    let steps: &[(bool, bool, &[&str], usize)] = &[
        (true, false, &["-k"], 1),        // first: a full, nothing to delete
        (true, false, &[], 2),            // incremental
        (true, false, &["-Q", "-z"], 3),  // incremental, gzipped
        (false, false, &["-F", "-k"], 1), // forced full, unchanged data
        (true, false, &["-k"], 2),        // incremental: -k deletes nothing
        (true, false, &["-F", "-z", "-k"], 1),
        (true, false, &["-Q"], 2),
        (true, true, &["-Q", "-k"], 1), // pack: automatic full, then -k
        (true, false, &["-z", "-k"], 2),
        (false, false, &["-k"], 2), // nothing to do
        (true, true, &["-z"], 3),   // pack: automatic full, no -k
        (true, false, &["-F", "-k"], 1),
    ];
    let mut mixed_tool = Theirs;
    for (i, &(g, p, flags, expected)) in steps.iter().enumerate() {
        if g {
            zodb::grow(&t.data_fs, 2, 500 + i as u64);
        }
        if p {
            zodb::pack(&t.data_fs);
        }
        let now = clock.step(1 + i as u64 % 3);
        let context = format!("step {i}: -B {flags:?} at {now}");
        t.backup(&now, flags, mixed_tool, &context);
        mixed_tool = mixed_tool.other();
        let names = listing(&t.repo(0));
        for foreign in [
            "README.txt",
            "2000-01-01-00-00-00.dat",
            "1999-12-31-23-59-59.index",
            "2000-01-01-00-00-00.fs.bak",
        ] {
            assert!(
                names.iter().any(|n| n == foreign),
                "{context}: {foreign} gone"
            );
        }
        let data: Vec<&String> = names
            .iter()
            .filter(|n| {
                [".fs", ".fsz", ".deltafs", ".deltafsz"]
                    .iter()
                    .any(|e| n.ends_with(e))
            })
            .collect();
        assert_eq!(data.len(), expected, "{context}: data files {data:?}");
    }
    t.cross_check(&clock.now(), "after -k");
}

// ---------------------------------------------------------------------------
// 5. How -r is spelled
// ---------------------------------------------------------------------------

/// The `.dat` records `os.path.join(<-r as given>, name)`: a trailing
/// slash, a doubled slash, `./` or an absolute path are kept as typed, and
/// each tool continues the other's chain whatever the spelling.
#[test]
fn the_dat_records_the_repository_path_exactly_as_spelled() {
    let tmp = tempfile::tempdir().unwrap();
    let data_fs = tmp.path().join("Data.fs");
    zodb::grow(&data_fs, 3, 61);
    let abs_base = tmp.path().join("abs");
    let spellings = [
        "repo".to_string(),
        "repo/".to_string(),
        "./repo".to_string(),
        "repo//".to_string(),
        "sub/../repo".to_string(),
        format!("{}/repo", abs_base.display()),
        format!("{}/repo/", abs_base.display()),
    ];
    let mut clock = Clock::new();
    let steps: [(&[&str], usize); 3] = [(&["-B"], 3), (&["-BQ"], 4), (&["-Bz"], 5)];
    let mut nows = Vec::new();
    for (k, _) in steps.iter().enumerate() {
        if k > 0 {
            zodb::grow(&data_fs, 1, 62 + k as u64);
        }
        nows.push(clock.step(1));
        for (j, r) in spellings.iter().enumerate() {
            // Twin working directories; absolute spellings get their own.
            for tool in Tool::BOTH {
                let cwd = tmp.path().join(format!("{j}-{}", tool.name()));
                let r = r.replace(s(&abs_base), s(&cwd));
                std::fs::create_dir_all(cwd.join("repo")).unwrap();
                std::fs::create_dir_all(cwd.join("sub")).unwrap();
                // The chain is continued by the other tool at every step.
                let tool = if k % 2 == 0 { tool } else { tool.other() };
                let mut args = steps[k].0.to_vec();
                args.extend(["-r", &r, "-f", s(&data_fs)]);
                repozo_ok(tool, &cwd, &nows[k], &args);
            }
        }
    }
    let expected_bytes = committed_bytes(&data_fs);
    for (j, r) in spellings.iter().enumerate() {
        let (a, b) = (
            tmp.path().join(format!("{j}-ours")),
            tmp.path().join(format!("{j}-theirs")),
        );
        let context = format!("-r {r}");
        assert_eq!(
            without_sidecars(listing(&a.join("repo"))).len(),
            3 + 2 + 2,
            "{context}"
        );
        let dat = format!("{}.dat", nows[0]);
        let (x, y) = (
            std::fs::read_to_string(a.join("repo").join(&dat)).unwrap(),
            std::fs::read_to_string(b.join("repo").join(&dat)).unwrap(),
        );
        // Identical once each side's own directory is factored out.
        assert_eq!(
            x.replace(s(&a), "<cwd>"),
            y.replace(s(&b), "<cwd>"),
            "{context}"
        );
        let first = x
            .lines()
            .next()
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string();
        let expected = if r.starts_with('/') {
            format!(
                "{}{}{}.fs",
                r.replace(s(&abs_base), s(&a)),
                if r.ends_with('/') { "" } else { "/" },
                nows[0]
            )
        } else {
            format!(
                "{r}{}{}.fs",
                if r.ends_with('/') { "" } else { "/" },
                nows[0]
            )
        };
        assert_eq!(first, expected, "{context}");
        for tool in Tool::BOTH {
            for cwd in [&a, &b] {
                let o = repozo_ok(tool, cwd, &clock.now(), &["-R", "-w", "-r", "repo"]);
                assert_same_bytes(&o.stdout, &expected_bytes, &context);
            }
        }
    }
}
