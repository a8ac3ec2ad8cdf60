//! Permission and I/O errors, met by an unprivileged user.
//!
//! Root ignores file modes, and the suite runs as root in CI, so every
//! command under test here runs as the system user `repozo-test`, which
//! these tests create when they run as root (and FAIL, never skip, if it
//! cannot be created). Run as any other user, they run the binary as that
//! user.
//!
//! Each case checks exit code 1, a message in Python's `OSError` form
//! (`[Errno 13] Permission denied: '<path>'`) naming the path, and that
//! the repository and any existing output are left exactly as they were.

use crate::common;

use std::collections::BTreeMap;
use std::fs::{self, File, Permissions};
use std::ops::Deref;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{Site, next_stamp, ok, run, stderr, transaction_ends};

/// The unprivileged user the commands run as when the tests run as root.
const TEST_USER: &str = "repozo-test";

/// Who the commands under test run as.
#[derive(Debug, Clone, Copy)]
struct Identity {
    uid: u32,
    gid: u32,
    /// The test process is root: drop to `uid`/`gid` in the child.
    switch: bool,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn identity() -> Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    *ID.get_or_init(|| {
        if !is_root() {
            // SAFETY: getegid has no preconditions and cannot fail.
            let gid = unsafe { libc::getegid() };
            // SAFETY: as above.
            let uid = unsafe { libc::geteuid() };
            return Identity {
                uid,
                gid,
                switch: false,
            };
        }
        let (uid, gid) = ensure_test_user();
        assert_ne!(uid, 0, "{TEST_USER} has uid 0: it would ignore file modes");
        Identity {
            uid,
            gid,
            switch: true,
        }
    })
}

/// uid and gid of `TEST_USER` from `getent passwd`, if it exists.
fn lookup_user() -> Option<(u32, u32)> {
    let out = Command::new("getent")
        .args(["passwd", TEST_USER])
        .output()
        .unwrap_or_else(|e| panic!("cannot run getent: {e}"));
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = line.trim().split(':').collect();
    let parse = |i: usize| -> u32 {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("unexpected getent passwd line: {line:?}"))
    };
    Some((parse(2), parse(3)))
}

/// Creates `TEST_USER` if it does not exist. Concurrent test processes
/// are serialised by an exclusive lock on a file in cargo's test scratch
/// directory (useradd itself fails when another one holds /etc/passwd).
fn ensure_test_user() -> (u32, u32) {
    let lock_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("repozo-test-user.lock");
    let lock = File::create(&lock_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    if let Some(ids) = lookup_user() {
        return ids;
    }
    let out = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            TEST_USER,
        ])
        .output();
    let detail = match &out {
        Ok(o) => format!("exit status {}: {}", o.status, stderr(o)),
        Err(e) => format!("could not run useradd: {e}"),
    };
    // Exit status 9: the name is taken (created meanwhile by a process
    // that does not use our lock); the lookup below settles it.
    let created = out
        .as_ref()
        .is_ok_and(|o| o.status.success() || o.status.code() == Some(9));
    match lookup_user() {
        Some(ids) => ids,
        None => panic!(
            "\n==== CANNOT CREATE THE UNPRIVILEGED TEST USER ====\n\
             These tests run as root and need the user {TEST_USER:?} to run repozo \
             without root's power to ignore file modes; they are NOT skipped.\n\
             `useradd --system --no-create-home --shell /usr/sbin/nologin {TEST_USER}` \
             {}: {detail}\n",
            if created {
                "reported success but getent does not know the user"
            } else {
                "failed"
            }
        ),
    }
}

/// Makes `c` run as the test identity: as root, clears the supplementary
/// groups, then sets the gid and the uid (in that order: each step needs
/// the privileges the next one drops).
fn as_user(mut c: Command) -> Command {
    let id = identity();
    if id.switch {
        let (uid, gid) = (id.uid, id.gid);
        // SAFETY: the closure runs in the forked child before exec and
        // calls only async-signal-safe functions (setgroups, setgid,
        // setuid), without allocating.
        unsafe {
            c.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    c
}

/// The first ancestor of `path` the test user cannot search (with its
/// mode), if any.
fn unreachable_ancestor(path: &Path) -> Option<(PathBuf, u32)> {
    if !identity().switch {
        return None;
    }
    path.ancestors()
        .skip(1)
        .filter(|dir| !dir.as_os_str().is_empty())
        .find_map(|dir| {
            let meta = fs::metadata(dir).unwrap();
            let ours = meta.uid() == identity().uid;
            (!ours && meta.mode() & 0o001 == 0).then(|| (dir.to_path_buf(), meta.mode() & 0o7777))
        })
}

/// Panics unless the test user can reach `path` (every ancestor
/// directory searchable by others).
fn assert_reachable(path: &Path) {
    if let Some((dir, mode)) = unreachable_ancestor(path) {
        panic!(
            "{} (mode {mode:o}) is not searchable by {TEST_USER}, so it cannot reach {}: \
             run the tests with TMPDIR somewhere others can reach",
            dir.display(),
            path.display()
        );
    }
}

/// Our binary where the test user can run it: cargo's, or, when the
/// target directory lies under a directory others cannot search (a
/// checkout in a `mktemp -d` directory), a copy in a fresh directory
/// under TMPDIR, made once per test process; copies left by earlier
/// processes that have ended are removed.
fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let built = PathBuf::from(env!("CARGO_BIN_EXE_repozo"));
        if unreachable_ancestor(&built).is_none() {
            return built;
        }
        let tmp = std::env::temp_dir();
        for e in fs::read_dir(&tmp).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("repozo-perm-bin-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let dir = tmp.join(format!("repozo-perm-bin-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        chmod(&dir, 0o755);
        let copy = dir.join("repozo");
        fs::copy(&built, &copy).unwrap();
        chmod(&copy, 0o755);
        copy
    })
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
}

/// Gives `path` to the test user (nothing to do when not root).
fn give(path: &Path) {
    let id = identity();
    if id.switch {
        std::os::unix::fs::chown(path, Some(id.uid), Some(id.gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

/// A directory the test user cannot write: as root, one owned by root
/// with mode 0755; otherwise one of our own with mode 0555 (restored to
/// 0755 on drop, so the temporary directory can be removed).
struct Unwritable(PathBuf);

impl Unwritable {
    fn new(dir: &Path) -> Self {
        if identity().switch {
            std::os::unix::fs::chown(dir, Some(0), Some(0)).unwrap();
            chmod(dir, 0o755);
        } else {
            chmod(dir, 0o555);
        }
        Unwritable(dir.to_path_buf())
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        let _ = fs::set_permissions(&self.0, Permissions::from_mode(0o755));
    }
}

/// A file made unreadable (mode 000) until dropped, when its mode is
/// restored.
struct Unreadable {
    path: PathBuf,
    mode: u32,
}

impl Unreadable {
    fn new(path: &Path) -> Self {
        let mode = fs::metadata(path).unwrap().mode() & 0o7777;
        chmod(path, 0o000);
        Unreadable {
            path: path.to_path_buf(),
            mode,
        }
    }
}

impl Drop for Unreadable {
    fn drop(&mut self) {
        let _ = fs::set_permissions(&self.path, Permissions::from_mode(self.mode));
    }
}

/// Every file and directory under `dir` (relative path → bytes, `None`
/// for a directory). Taken while every file is readable.
fn snapshot(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                let bytes = fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                out.insert(rel, Some(bytes));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A [`Site`] of the test user's: its directory, `Data.fs` (a copy of
/// `small.fs`) and `repo/` are the user's, and [`UserSite::ours`] runs
/// our binary as the user. Commands run in it with relative paths, so
/// messages name `Data.fs` and `repo/...`. (What the site does through
/// [`Site`] itself, blobtool and the like, runs as the test process.)
struct UserSite {
    site: Site,
}

impl Deref for UserSite {
    type Target = Site;

    fn deref(&self) -> &Site {
        &self.site
    }
}

impl UserSite {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("repozo-perm-")
            .tempdir()
            .unwrap();
        chmod(dir.path(), 0o755);
        give(dir.path());
        assert_reachable(&dir.path().join("x"));
        assert_reachable(binary());
        let s = UserSite {
            site: Site::in_dir(dir),
        };
        give(&s.repo());
        s.write("Data.fs", &s.small_fs()[..]);
        s
    }

    fn small_fs(&self) -> Vec<u8> {
        fs::read(common::py::data_dir().join("small.fs")).unwrap()
    }

    /// Writes a file of the test user's.
    fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.path(rel);
        fs::write(&p, bytes).unwrap();
        give(&p);
    }

    /// Our binary, as the test user, in the site directory, at a fresh
    /// stamp.
    fn ours(&self, args: &[&str]) -> Command {
        let mut c = Command::new(binary());
        c.arg0("repozo");
        c.current_dir(self.dir())
            .args(args)
            .env("REPOZO_TEST_NOW", next_stamp())
            .env_remove("REPOZO_FAILPOINT");
        as_user(c)
    }

    /// A two-file chain written as the test user: a full backup of the
    /// first four transactions of `small.fs`, then an incremental one of
    /// the rest (gzipped with `gzip`). Leaves `Data.fs` = all of `small.fs`.
    fn chain(&self, gzip: bool) {
        self.chain_upto(gzip, 8);
    }

    /// As [`UserSite::chain`], with the incremental backup ending after
    /// transaction `upto` (5..=8) of `small.fs`.
    fn chain_upto(&self, gzip: bool, upto: usize) {
        let all = self.small_fs();
        let ends = transaction_ends(&all);
        assert_eq!(ends.len(), 8, "small.fs has 8 transactions");
        assert_eq!(ends[7], all.len());
        self.write("Data.fs", &all[..ends[3]]);
        let z: &[&str] = if gzip { &["-z"] } else { &[] };
        ok(run(self.ours(
            &[&["-BF", "-f", "Data.fs", "-r", "repo"], z].concat(),
        )));
        self.write("Data.fs", &all[..ends[upto - 1]]);
        ok(run(self.ours(
            &[&["-B", "-f", "Data.fs", "-r", "repo"], z].concat(),
        )));
        self.repo_file(if gzip { ".deltafsz" } else { ".deltafs" });
        self.write("Data.fs", &all);
    }

    /// `repo/<name>` of the one repository file whose name ends with `ext`.
    fn repo_file(&self, ext: &str) -> String {
        let names: Vec<String> = self
            .repo_listing()
            .into_iter()
            .filter(|n| n.ends_with(ext) && !n.contains(".tmp-"))
            .collect();
        assert_eq!(names.len(), 1, "files ending with {ext} in repo: {names:?}");
        format!("repo/{}", names[0])
    }

    fn snapshot(&self) -> BTreeMap<String, Option<Vec<u8>>> {
        snapshot(self.dir())
    }

    /// Runs `args` as the test user with `rel` unreadable, and checks that
    /// nothing in the site changed.
    fn run_with_unreadable(&self, rel: &str, args: &[&str]) -> Output {
        let before = self.snapshot();
        let out = {
            let _guard = Unreadable::new(&self.path(rel));
            run(self.ours(args))
        };
        assert_unchanged(&before, &self.snapshot(), args);
        out
    }
}

fn assert_unchanged(
    before: &BTreeMap<String, Option<Vec<u8>>>,
    after: &BTreeMap<String, Option<Vec<u8>>>,
    args: &[&str],
) {
    let names = |m: &BTreeMap<String, Option<Vec<u8>>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(before),
        names(after),
        "repozo {args:?} changed the files present"
    );
    for (name, bytes) in before {
        assert!(
            after[name] == *bytes,
            "repozo {args:?} changed the bytes of {name}"
        );
    }
}

/// The text of the command's output, for assertion messages.
fn show(o: &Output) -> String {
    format!(
        "exit status {}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        stderr(o)
    )
}

/// Exit code 1 without a panic.
fn assert_failed_cleanly(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit code 1:\n{}",
        show(o)
    );
    assert!(
        !stderr(o).contains("panicked"),
        "the binary panicked:\n{}",
        show(o)
    );
}

/// Exit code 1 and `[Errno 13] Permission denied: '<path>'` on stderr.
fn assert_permission_denied(o: &Output, path: &str) {
    assert_failed_cleanly(o);
    let want = format!("[Errno 13] Permission denied: '{path}'");
    assert!(
        stderr(o).contains(&want),
        "expected {want:?} on stderr:\n{}",
        show(o)
    );
}

/// The path in the first `[Errno 13] Permission denied: '<path>'` on
/// stderr (exit code 1 checked too).
fn denied_path(o: &Output) -> String {
    assert_failed_cleanly(o);
    let err = stderr(o);
    let marker = "[Errno 13] Permission denied: '";
    let Some(at) = err.find(marker) else {
        panic!("expected {marker:?}...' on stderr:\n{}", show(o));
    };
    let rest = &err[at + marker.len()..];
    rest[..rest.find('\'').expect("closing quote")].to_string()
}

fn assert_not_called_missing(o: &Output) {
    assert!(
        !stderr(o).contains("is missing"),
        "an unreadable file is not a missing one:\n{}",
        show(o)
    );
}

#[test]
fn commands_under_test_run_as_an_unprivileged_user_without_supplementary_groups() {
    let id = identity();
    let s = UserSite::new();
    let mut c = Command::new("id");
    c.current_dir(s.path("."));
    let out = ok(run(as_user(c)));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.starts_with(&format!("uid={}(", id.uid)),
        "unexpected identity: {text}"
    );
    if id.switch {
        assert_ne!(id.uid, 0);
        let mut c = Command::new("id");
        c.arg("-G");
        let groups = ok(run(as_user(c))).stdout;
        assert_eq!(
            String::from_utf8_lossy(&groups).trim(),
            id.gid.to_string(),
            "supplementary groups were not cleared"
        );
    }
}

// ---- 1. an unreadable Data.fs -------------------------------------------

#[test]
fn a_backup_of_an_unreadable_data_fs_into_an_empty_repository_fails_naming_it() {
    let s = UserSite::new();
    let o = s.run_with_unreadable("Data.fs", &["-B", "-f", "Data.fs", "-r", "repo"]);
    assert_permission_denied(&o, "Data.fs");
    assert!(s.repo_listing().is_empty());
}

#[test]
fn an_incremental_backup_of_an_unreadable_data_fs_fails_naming_it_and_keeps_the_chain() {
    let s = UserSite::new();
    s.chain_upto(false, 6);
    for args in [
        &["-B", "-f", "Data.fs", "-r", "repo"][..],
        &["-BQ", "-f", "Data.fs", "-r", "repo"],
        &["-BF", "-f", "Data.fs", "-r", "repo"],
    ] {
        let o = s.run_with_unreadable("Data.fs", args);
        assert_permission_denied(&o, "Data.fs");
    }
}

// ---- 2. a repository the user cannot write ------------------------------

#[test]
fn a_full_backup_into_a_repository_the_user_cannot_write_fails_and_leaves_it_empty() {
    let s = UserSite::new();
    let _ro = Unwritable::new(&s.path("repo"));
    let before = s.snapshot();
    let args = ["-B", "-f", "Data.fs", "-r", "repo"];
    let o = run(s.ours(&args));
    let path = denied_path(&o);
    assert!(
        path == "repo" || path.starts_with("repo/"),
        "the message names {path:?}, not the repository or a file in it:\n{}",
        show(&o)
    );
    assert_unchanged(&before, &s.snapshot(), &args);
    assert!(s.repo_listing().is_empty());
}

#[test]
fn an_incremental_backup_into_a_repository_the_user_cannot_write_fails_and_keeps_the_chain() {
    let s = UserSite::new();
    let all = s.small_fs();
    let ends = transaction_ends(&all);
    s.write("Data.fs", &all[..ends[5]]);
    ok(run(s.ours(&["-BF", "-f", "Data.fs", "-r", "repo"])));
    s.write("Data.fs", &all);
    let _ro = Unwritable::new(&s.path("repo"));
    for args in [
        &["-B", "-f", "Data.fs", "-r", "repo"][..],
        &["-BQ", "-f", "Data.fs", "-r", "repo"],
        &["-BF", "-f", "Data.fs", "-r", "repo"],
        &["-Bz", "-f", "Data.fs", "-r", "repo"],
    ] {
        let before = s.snapshot();
        let o = run(s.ours(args));
        let path = denied_path(&o);
        assert!(
            path == "repo" || path.starts_with("repo/"),
            "repozo {args:?}: the message names {path:?}, not the repository or a file in it:\n{}",
            show(&o)
        );
        assert_unchanged(&before, &s.snapshot(), args);
    }
}

// ---- 3. -V with an unreadable chain file --------------------------------

#[test]
fn verify_reports_an_unreadable_incremental_file_as_permission_denied_not_missing() {
    let s = UserSite::new();
    s.chain(false);
    ok(run(s.ours(&["-V", "-r", "repo"])));
    let target = s.repo_file(".deltafs");
    let o = s.run_with_unreadable(&target, &["-V", "-r", "repo"]);
    assert_not_called_missing(&o);
    assert_permission_denied(&o, &target);
}

#[test]
fn verify_reports_an_unreadable_full_backup_as_permission_denied_not_missing() {
    let s = UserSite::new();
    s.chain(false);
    let target = s.repo_file(".fs");
    let o = s.run_with_unreadable(&target, &["-V", "-r", "repo"]);
    assert_not_called_missing(&o);
    assert_permission_denied(&o, &target);
}

#[test]
fn verify_reports_an_unreadable_gzipped_full_backup_as_permission_denied_not_missing() {
    let s = UserSite::new();
    s.chain(true);
    ok(run(s.ours(&["-V", "-r", "repo"])));
    let target = s.repo_file(".fsz");
    let o = s.run_with_unreadable(&target, &["-V", "-r", "repo"]);
    assert_not_called_missing(&o);
    assert_permission_denied(&o, &target);
}

#[test]
fn quick_verify_reports_an_unreadable_gzip_file_as_permission_denied_not_missing() {
    let s = UserSite::new();
    s.chain(true);
    ok(run(s.ours(&["-V", "-Q", "-r", "repo"])));
    for ext in [".fsz", ".deltafsz"] {
        let target = s.repo_file(ext);
        let o = s.run_with_unreadable(&target, &["-V", "-Q", "-r", "repo"]);
        assert_not_called_missing(&o);
        assert_permission_denied(&o, &target);
    }
}

#[test]
fn quick_verify_fails_on_an_unreadable_plain_file_as_repozo_does() {
    // -Q needs only the size, but repozo opens the file to learn it, and a
    // file that cannot be read cannot be recovered: stat alone passing it
    // would report a repository that recover then fails on.
    let s = UserSite::new();
    s.chain(false);
    ok(run(s.ours(&["-V", "-Q", "-r", "repo"])));
    for ext in [".fs", ".deltafs"] {
        let target = s.repo_file(ext);
        let o = s.run_with_unreadable(&target, &["-V", "-Q", "-r", "repo"]);
        assert_not_called_missing(&o);
        assert_permission_denied(&o, &target);
    }
}

#[test]
fn verify_still_reports_a_file_that_does_not_exist_as_missing() {
    // An incremental file: removing the full one would change the chain.
    for (gzip, ext) in [(false, ".deltafs"), (true, ".deltafsz")] {
        let s = UserSite::new();
        s.chain(gzip);
        let target = s.repo_file(ext);
        fs::remove_file(s.path(&target)).unwrap();
        for args in [&["-V", "-r", "repo"][..], &["-V", "-Q", "-r", "repo"]] {
            let o = run(s.ours(args));
            assert_failed_cleanly(&o);
            assert_eq!(
                stderr(&o),
                format!("{target} is missing\n"),
                "repozo {args:?}:\n{}",
                show(&o)
            );
        }
    }
}

#[test]
fn verify_with_an_unreadable_dat_fails_naming_it() {
    let s = UserSite::new();
    s.chain(false);
    let dat = s.repo_file(".dat");
    for args in [&["-V", "-r", "repo"][..], &["-V", "-Q", "-r", "repo"]] {
        let o = s.run_with_unreadable(&dat, args);
        assert_permission_denied(&o, &dat);
    }
}

// ---- 4. -R with an unreadable chain file --------------------------------

/// A site with a chain and an existing `out.fs` and `out.fs.index` that a
/// failed recover must leave alone.
fn site_with_old_output(gzip: bool) -> UserSite {
    let s = UserSite::new();
    s.chain(gzip);
    s.write(
        "out.fs",
        b"FS21 the previous recovered database, to be kept",
    );
    s.write("out.fs.index", b"the previous index, to be kept");
    s
}

fn assert_no_part(s: &UserSite) {
    assert!(
        !s.path("out.fs.part").exists(),
        "out.fs.part was left behind"
    );
}

#[test]
fn recover_with_an_unreadable_incremental_file_fails_and_keeps_the_old_output() {
    let s = site_with_old_output(false);
    let target = s.repo_file(".deltafs");
    for extra in [&[][..], &["-w"], &["-v"]] {
        let args = [&["-R", "-r", "repo", "-o", "out.fs"], extra].concat();
        // run_with_unreadable checks that out.fs and out.fs.index are
        // byte-identical and that nothing (no out.fs.part) was added.
        let o = s.run_with_unreadable(&target, &args);
        assert_permission_denied(&o, &target);
        assert_no_part(&s);
    }
}

#[test]
fn recover_with_an_unreadable_full_backup_fails_and_keeps_the_old_output() {
    let s = site_with_old_output(false);
    let target = s.repo_file(".fs");
    for extra in [&[][..], &["-w"]] {
        let args = [&["-R", "-r", "repo", "-o", "out.fs"], extra].concat();
        let o = s.run_with_unreadable(&target, &args);
        assert_permission_denied(&o, &target);
        assert_no_part(&s);
    }
}

#[test]
fn recover_with_an_unreadable_gzip_file_fails_and_keeps_the_old_output() {
    let s = site_with_old_output(true);
    for ext in [".fsz", ".deltafsz"] {
        let target = s.repo_file(ext);
        for extra in [&[][..], &["-w"]] {
            let args = [&["-R", "-r", "repo", "-o", "out.fs"], extra].concat();
            let o = s.run_with_unreadable(&target, &args);
            assert_permission_denied(&o, &target);
            assert_no_part(&s);
        }
    }
}

#[test]
fn recover_with_an_unreadable_chain_index_fails_and_keeps_the_old_output() {
    let s = site_with_old_output(false);
    let names = s.repo_listing();
    let last_index = names
        .iter()
        .filter(|n| n.ends_with(".index"))
        .max()
        .expect("the chain has .index files");
    let target = format!("repo/{last_index}");
    let o = s.run_with_unreadable(&target, &["-R", "-r", "repo", "-o", "out.fs"]);
    assert_permission_denied(&o, &target);
    assert_no_part(&s);
}

#[test]
fn recover_with_w_and_an_unreadable_dat_fails_naming_it_and_keeps_the_old_output() {
    let s = site_with_old_output(false);
    let dat = s.repo_file(".dat");
    let o = s.run_with_unreadable(&dat, &["-R", "-w", "-r", "repo", "-o", "out.fs"]);
    assert_permission_denied(&o, &dat);
    assert_no_part(&s);
}

// ---- 5. -R -o into a directory the user cannot write --------------------

#[test]
fn recover_into_a_directory_the_user_cannot_write_fails_with_permission_denied() {
    let s = UserSite::new();
    s.chain(false);
    fs::create_dir(s.path("locked")).unwrap();
    let _ro = Unwritable::new(&s.path("locked"));
    for extra in [&[][..], &["-w"]] {
        let args = [&["-R", "-r", "repo", "-o", "locked/out.fs"], extra].concat();
        let before = s.snapshot();
        let o = run(s.ours(&args));
        let path = denied_path(&o);
        assert!(
            path.starts_with("locked/out.fs"),
            "repozo {args:?}: the message names {path:?}, not the output:\n{}",
            show(&o)
        );
        assert_unchanged(&before, &s.snapshot(), &args);
    }
}

// ---- 6. -B with an unreadable .dat --------------------------------------

#[test]
fn a_backup_whose_chain_dat_is_unreadable_fails_naming_the_dat_and_starts_no_new_chain() {
    let s = UserSite::new();
    // The Data.fs has two transactions the chain lacks, so neither
    // "nothing to do" nor a needless full backup can hide the error.
    s.chain_upto(false, 6);
    let dat = s.repo_file(".dat");
    for args in [
        &["-B", "-f", "Data.fs", "-r", "repo"][..],
        &["-BQ", "-f", "Data.fs", "-r", "repo"],
        &["-Bz", "-f", "Data.fs", "-r", "repo"],
    ] {
        let o = s.run_with_unreadable(&dat, args);
        assert_permission_denied(&o, &dat);
    }
}

// ---- 7. blobs (--blob-dir) ----------------------------------------------

/// Gives `path` and everything under it to the test user.
fn give_tree(path: &Path) {
    give(path);
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for e in fs::read_dir(path).unwrap() {
            give_tree(&e.unwrap().path());
        }
    }
}

/// Every file under `dir`, relative to the site (`dir/...`), sorted.
fn files_under(site: &Path, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if !dir.exists() {
        return out;
    }
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(site, &p));
        } else {
            out.push(p.strip_prefix(site).unwrap().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

const BLOB_BACKUP: [&str; 6] = ["-B", "-f", "Data.fs", "-r", "repo", "--blob-dir=blobs"];

impl UserSite {
    /// A site whose `Data.fs` and bushy `blobs/` are written by ZODB
    /// (journal step 0 in `journal.json`), all of it the test user's.
    fn with_blobs() -> Self {
        let s = UserSite::new();
        fs::remove_file(s.path("Data.fs")).unwrap();
        s.init_blobs("bushy", 7);
        give_tree(s.dir());
        s
    }

    /// One ZODB transaction creating new blobs (the next journal step).
    fn create_blobs(&self, seed: u64) {
        self.step(seed, &["--action", "create"]);
        give_tree(self.dir());
    }

    /// The `*.blob` files of the blob directory (`blobs/...`).
    fn blob_files(&self) -> Vec<String> {
        let mut v = files_under(self.dir(), &self.path("blobs"));
        v.retain(|f| f.ends_with(".blob"));
        v
    }

    fn manifests(&self) -> Vec<String> {
        let mut v = self.repo_listing();
        v.retain(|n| n.ends_with(".blobs"));
        v
    }

    /// The stored blob objects (`repo/blobs/objects/...`).
    fn objects(&self) -> Vec<String> {
        files_under(self.dir(), &self.path("repo/blobs/objects"))
    }

    /// No half-written object: every object hashes to its name, and
    /// `blobs/incoming` holds nothing.
    fn assert_store_clean(&self, what: &str) {
        for obj in self.objects() {
            let bytes = fs::read(self.path(&obj)).unwrap();
            let name = Path::new(&obj).file_name().unwrap().to_str().unwrap();
            assert_eq!(
                repozo::blob::Hash::of(&bytes).to_string(),
                name,
                "{what}: {obj} does not hold the content its name says"
            );
        }
        let incoming = files_under(self.dir(), &self.path("repo/blobs/incoming"));
        assert!(
            incoming.is_empty(),
            "{what}: left in blobs/incoming: {incoming:?}"
        );
    }

    /// `-R -o out.fs --blob-dir=out-blobs` as the test user, then ZODB
    /// checks that the pair holds journal step `step`.
    fn restore_and_check(&self, step: usize) {
        ok(run(self.ours(&[
            "-R",
            "-r",
            "repo",
            "-o",
            "out.fs",
            "--blob-dir=out-blobs",
        ])));
        self.check("out.fs", "out-blobs", Some(step));
        fs::remove_dir_all(self.path("out-blobs")).unwrap();
        fs::remove_file(self.path("out.fs")).unwrap();
        let _ = fs::remove_file(self.path("out.fs.index"));
    }
}

/// `-B --blob-dir` with `unreadable` (mode 000) fails naming it, warns
/// that the Data.fs side is recorded without the blobs, writes no manifest
/// and leaves no object half-written; with the mode restored, the next
/// `-B --blob-dir` writes the missing manifest and the restore is one ZODB
/// reads as journal step `step`.
fn unreadable_blob_fails_then_next_backup_repairs(s: &UserSite, unreadable: &str, step: usize) {
    let manifests = s.manifests();
    let objects = s.objects();
    let o = {
        let _guard = Unreadable::new(&s.path(unreadable));
        run(s.ours(&BLOB_BACKUP))
    };
    assert_permission_denied(&o, unreadable);
    assert!(
        stderr(&o).contains("the Data.fs backup is recorded, but the blobs of"),
        "no warning that the blobs are not backed up:\n{}",
        show(&o)
    );
    assert_eq!(
        s.manifests(),
        manifests,
        "a manifest was written:\n{}",
        show(&o)
    );
    assert_eq!(
        s.objects(),
        objects,
        "objects were added by a failed backup"
    );
    s.assert_store_clean("after the failed backup");
    ok(run(s.ours(&BLOB_BACKUP)));
    assert_eq!(
        s.manifests().len(),
        manifests.len() + 1,
        "the next backup did not write the missing manifest: {:?}",
        s.manifests()
    );
    s.assert_store_clean("after the repairing backup");
    ok(run(s.ours(&["-V", "-r", "repo"])));
    s.restore_and_check(step);
}

#[test]
fn a_full_blob_backup_with_an_unreadable_blob_file_fails_naming_it_and_the_next_one_repairs_it() {
    let s = UserSite::with_blobs();
    let files = s.blob_files();
    assert!(files.len() >= 5, "blobtool init wrote {files:?}");
    // The last one, so that others are copied to blobs/incoming first.
    unreadable_blob_fails_then_next_backup_repairs(&s, files.last().unwrap(), 0);
}

#[test]
fn an_incremental_blob_backup_with_an_unreadable_blob_file_fails_naming_it_and_the_next_one_repairs_it()
 {
    let s = UserSite::with_blobs();
    ok(run(s.ours(&BLOB_BACKUP)));
    let before = s.blob_files();
    s.create_blobs(3);
    let new: Vec<String> = s
        .blob_files()
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    assert!(!new.is_empty(), "the step created no blob file");
    unreadable_blob_fails_then_next_backup_repairs(&s, new.last().unwrap(), 1);
}

#[test]
fn a_blob_backup_with_an_unreadable_oid_directory_fails_naming_it_and_the_next_one_repairs_it() {
    let s = UserSite::with_blobs();
    let file = s.blob_files().pop().unwrap();
    let dir = Path::new(&file)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let manifests = s.manifests();
    let o = {
        let _guard = Unreadable::new(&s.path(&dir));
        run(s.ours(&BLOB_BACKUP))
    };
    let path = denied_path(&o);
    assert!(
        path.starts_with(&dir),
        "the message names {path:?}, not {dir} or a file in it:\n{}",
        show(&o)
    );
    assert_eq!(s.manifests(), manifests);
    s.assert_store_clean("after the failed backup");
    ok(run(s.ours(&BLOB_BACKUP)));
    assert_eq!(s.manifests().len(), manifests.len() + 1);
    s.restore_and_check(0);
}

#[test]
fn a_blob_directory_the_user_cannot_list_or_enter_fails_naming_it_before_writing_anything() {
    let s = UserSite::with_blobs();
    for backed_up in [false, true] {
        if backed_up {
            ok(run(s.ours(&BLOB_BACKUP)));
            s.create_blobs(5);
        }
        // 000: neither; 300: enter, not list; 600: list, not enter.
        for mode in [0o000, 0o300, 0o600] {
            let before = snapshot(&s.path("repo"));
            let o = {
                chmod(&s.path("blobs"), mode);
                let o = run(s.ours(&BLOB_BACKUP));
                chmod(&s.path("blobs"), 0o755);
                o
            };
            assert_permission_denied(&o, "blobs");
            assert_unchanged(&before, &snapshot(&s.path("repo")), &BLOB_BACKUP);
        }
    }
    ok(run(s.ours(&BLOB_BACKUP)));
    s.restore_and_check(1);
}

#[test]
fn a_blob_restore_into_a_directory_whose_parent_the_user_cannot_write_changes_nothing() {
    let s = UserSite::with_blobs();
    ok(run(s.ours(&BLOB_BACKUP)));
    fs::create_dir(s.path("locked")).unwrap();
    for dir in ["locked", "locked/blobs", "locked/blobs/0x01"] {
        fs::create_dir_all(s.path(dir)).unwrap();
        give(&s.path(dir));
    }
    s.write("locked/blobs/.layout", b"lawn");
    s.write(
        "locked/blobs/0x01/0x02.blob",
        b"the previous blob, to be kept",
    );
    s.write(
        "locked/out.fs",
        b"FS21 the previous recovered database, to be kept",
    );
    s.write(
        "out.fs",
        b"FS21 the previous recovered database, to be kept",
    );
    s.write("out.fs.index", b"the previous index, to be kept");
    let _ro = Unwritable::new(&s.path("locked"));
    for out in ["out.fs", "locked/out.fs"] {
        for extra in [&[][..], &["-w"]] {
            let args = [
                &["-R", "-r", "repo", "-o", out, "--blob-dir=locked/blobs"][..],
                extra,
            ]
            .concat();
            let before = s.snapshot();
            let o = run(s.ours(&args));
            let path = denied_path(&o);
            assert!(
                path.starts_with("locked/"),
                "repozo {args:?}: the message names {path:?}, not a path in locked/:\n{}",
                show(&o)
            );
            assert_unchanged(&before, &s.snapshot(), &args);
        }
    }
}

#[test]
fn verify_reports_an_unreadable_blob_object_as_permission_denied_not_missing() {
    let s = UserSite::with_blobs();
    ok(run(s.ours(&BLOB_BACKUP)));
    ok(run(s.ours(&["-V", "-r", "repo"])));
    let object = s.objects().pop().unwrap();
    let dir = Path::new(&object)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for args in [&["-V", "-r", "repo"][..], &["-V", "-Q", "-r", "repo"]] {
        let o = s.run_with_unreadable(&object, args);
        assert_not_called_missing(&o);
        assert_permission_denied(&o, &object);
        // A directory of objects the user cannot enter.
        let o = s.run_with_unreadable(&dir, args);
        assert_not_called_missing(&o);
        let path = denied_path(&o);
        assert!(
            path.starts_with(&dir),
            "{args:?} names {path:?}:\n{}",
            show(&o)
        );
    }
}
