//! Access to the Python side of the test suite: real ZODB 6.4 and its repozo.
//!
//! Only `std` is used.
//!
//! * [`venv_python`] provisions the venv once per test process by running
//!   `scripts/setup-venv.sh` (which is idempotent and serialises concurrent
//!   processes with `flock`), and panics loudly if that fails: tests that need
//!   the reference implementation must never be skipped silently.
//! * [`zodbtool`] / [`zodbtool_status`] run `tests/py/zodbtool.py`
//!   (fixture writer and ZODB oracle: `grow`, `pack`, `undo`, `getsize`,
//!   `saveindex`, `dumpindex`, `copy-index`, `scan`, and `chain`: a long
//!   backup chain written by ZODB's own repozo).
//! * [`python_code`] runs `python -c` in the venv (the backup wrappers'
//!   own code, tests/it/wrappers.rs).
//! * [`reference_repozo`] is a `Command` for ZODB's repozo via
//!   `tests/py/repozo_shim.py` (honours `REPOZO_TEST_NOW`, prints
//!   "Usage: repozo [options]" in its help).
//!
//! The venv lives at `<repo>/.venv` unless `REPOZO_VENV` is set; a relative
//! `REPOZO_VENV` is taken relative to the repository root (as the setup
//! script does).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Root of the `repozo` package (where Cargo.toml is).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/data`, the committed fixtures written by `tests/py/gen_fixtures.py`.
pub fn data_dir() -> PathBuf {
    repo_root().join("tests").join("data")
}

/// The venv directory: `$REPOZO_VENV` (relative to the repo root if not
/// absolute) or `<repo>/.venv`.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("REPOZO_VENV") {
        Some(v) if !v.is_empty() => repo_root().join(PathBuf::from(v)),
        _ => repo_root().join(".venv"),
    }
}

static VENV_PYTHON: OnceLock<PathBuf> = OnceLock::new();

/// Path of the venv's python, creating/updating the venv on first use in
/// this process.  Panics with the setup script's output if provisioning
/// fails.
pub fn venv_python() -> PathBuf {
    VENV_PYTHON.get_or_init(setup_venv).clone()
}

fn setup_venv() -> PathBuf {
    let root = repo_root();
    let script = root.join("scripts").join("setup-venv.sh");
    let venv = venv_dir();
    let out = Command::new("bash")
        .arg(&script)
        .env("REPOZO_VENV", &venv)
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "\n==== PYTHON TEST VENV SETUP FAILED ====\n\
                 could not run `bash {}`: {e}\n\
                 The reference-implementation tests need bash and python3.\n",
                script.display()
            )
        });
    if !out.status.success() {
        panic!(
            "\n==== PYTHON TEST VENV SETUP FAILED ====\n\
             `bash {}` (REPOZO_VENV={}) exited with {}.\n\
             These tests compare against ZODB 6.4's repozo and cannot run \
             without it; they are NOT skipped.\n\
             --- stdout ---\n{}\n--- stderr ---\n{}\n",
            script.display(),
            venv.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        panic!(
            "\n==== PYTHON TEST VENV SETUP FAILED ====\n\
             setup-venv.sh succeeded but {} does not exist\n",
            python.display()
        );
    }
    python
}

/// A `Command` running `venv python <script>` with a clean Python
/// environment (no inherited PYTHONPATH/PYTHONHOME).
pub fn python_script(script: &Path) -> Command {
    let mut cmd = Command::new(venv_python());
    cmd.arg(script)
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONSTARTUP")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// A `Command` running `venv python -c <code>` (the venv's packages, the
/// same clean Python environment as [`python_script`]); the caller adds
/// `sys.argv[1:]`, env and cwd.
pub fn python_code(code: &str) -> Command {
    let mut cmd = Command::new(venv_python());
    cmd.arg("-c")
        .arg(code)
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONSTARTUP")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

fn describe(program: &str, args: &[&OsStr]) -> String {
    let mut s = String::from(program);
    for a in args {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run `tests/py/zodbtool.py ARGS...` and return its output whatever the
/// exit status (e.g. `getsize` exits 3 with `ERROR <Class>` on stdout).
pub fn zodbtool_status(args: &[&str]) -> Output {
    let script = repo_root().join("tests").join("py").join("zodbtool.py");
    python_script(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run zodbtool.py {args:?}: {e}"))
}

/// Run `tests/py/zodbtool.py ARGS...`; panics (showing stdout and stderr)
/// unless it exits 0.
pub fn zodbtool(args: &[&str]) -> Output {
    let out = zodbtool_status(args);
    if !out.status.success() {
        let argv: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        panic!(
            "`{}` failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n",
            describe("zodbtool.py", &argv),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
    out
}

/// Convenience: `zodbtool(args)` stdout as a trimmed `String`.
pub fn zodbtool_stdout(args: &[&str]) -> String {
    String::from_utf8(zodbtool(args).stdout)
        .expect("zodbtool.py printed non-UTF-8")
        .trim()
        .to_owned()
}

/// `Command` running ZODB 6.4's real repozo through `tests/py/repozo_shim.py`.
/// The caller adds arguments, env (e.g. `REPOZO_TEST_NOW`) and cwd.
pub fn reference_repozo() -> Command {
    python_script(&repo_root().join("tests").join("py").join("repozo_shim.py"))
}
