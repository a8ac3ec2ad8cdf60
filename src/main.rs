//! The `repozo` command: parses repozo's command line, runs the operation,
//! and reports the way ZODB's repozo does (messages on stderr, exit 1 on
//! any error, 0 on success including "nothing to do").
//!
//! The same program is also built as `repozo-rs` (src/bin/repozo-rs.rs, the
//! command the wheel installs, so that it never replaces ZODB's
//! `bin/repozo`): only `--version`, `--man` and `--completions` name it
//! differently ([`COMMAND`]).

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use repozo::cli::frontend::{self, Frontend, Style};
use repozo::cli::{self, Command, Parsed, metrics, output, usage};
use repozo::error::EXIT_STALE;
use repozo::ops::{self, BackupOutcome, Ctx, IncrementalOutcome};
use repozo::{Clock, FixedClock, Phase, Stamp, SystemClock};
use serde_json::json;

/// Test-only: a UTC stamp `YYYY-MM-DD-HH-MM-SS` used instead of the system
/// clock for file names and for "now" (repozo's `test_now`). Not for
/// production use: backups taken under a fixed clock all share one stamp.
const TEST_NOW_VAR: &str = "REPOZO_TEST_NOW";

/// Seconds a backup waits for another one holding the repository lock
/// (default 60).
const LOCK_WAIT_VAR: &str = "REPOZO_LOCK_WAIT";

/// The name of the binary being built: `repozo`, or `repozo-rs` when this
/// file is compiled as the module of src/bin/repozo-rs.rs.
const COMMAND: &str = env!("CARGO_BIN_NAME");

pub fn main() -> ExitCode {
    let mut raw = std::env::args_os();
    let program = raw
        .next()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| COMMAND.into());
    let args: Vec<String> = match raw.map(|a| a.into_string()).collect() {
        Ok(a) => a,
        Err(bad) => {
            eprintln!(
                "argument {:?} is not valid UTF-8: this repozo takes file and directory names \
                 in UTF-8 only; rename it, or point a symbolic link with a UTF-8 name at it. \
                 Nothing was done",
                bad.to_string_lossy()
            );
            return ExitCode::from(1);
        }
    };
    let started = Instant::now();
    let parsed = cli::parse(&args, &mut |n| eprintln!("{n}"));
    let opts = match parsed {
        Parsed::Help => {
            print!("{}", usage::help_text(&program));
            let _ = std::io::stdout().flush();
            return ExitCode::SUCCESS;
        }
        Parsed::Version => {
            println!("{}", usage::version_line(COMMAND));
            return ExitCode::SUCCESS;
        }
        Parsed::Man => {
            print!("{}", cli::docs::man_page(COMMAND));
            return ExitCode::SUCCESS;
        }
        Parsed::Completions(shell) => {
            print!(
                "{}",
                cli::docs::completions(&shell, COMMAND).unwrap_or_default()
            );
            return ExitCode::SUCCESS;
        }
        Parsed::Usage(msg) => {
            eprint!("{}", usage::help_text(&program));
            eprintln!("{msg}");
            let mut code = 1;
            if let Some(req) = cli::metrics_request(&args) {
                let run = metrics::Run {
                    operation: req.operation,
                    repository: req.repository,
                    started: now_unix(),
                    duration_seconds: started.elapsed().as_secs_f64(),
                    exit_code: code,
                    bytes_read: 0,
                    bytes_written: 0,
                    blobs: None,
                    repo: None,
                };
                write_metrics(&req.path, &run, &mut code);
            }
            return ExitCode::from(code);
        }
        Parsed::Run(opts) => opts,
    };
    repozo::interrupt::install();
    let json = opts.json;
    let report = Frontend::new(Style {
        verbose: opts.verbose,
        json: opts.json,
        no_progress: opts.no_progress,
    });
    let clock = clock();
    let start_stamp = now_unix();
    let mut written = None;
    let result = clock.and_then(|clock| run(&opts, clock.as_ref(), &report, &mut written));
    let mut code = match &result {
        Ok(()) => 0,
        Err((msg, code)) => {
            eprintln!("{msg}");
            if json {
                eprintln!("{}", frontend::exit_error(*code, msg));
            }
            *code
        }
    };
    if let Some(path) = &opts.metrics_file
        && let Some(run) = run_metrics(&opts, &report, start_stamp, started, code, written)
    {
        write_metrics(path, &run, &mut code);
    }
    ExitCode::from(code)
}

/// The clock of the run: `REPOZO_TEST_NOW` if set, else the system's.
fn clock() -> Result<Box<dyn Clock>, (String, u8)> {
    Ok(match std::env::var(TEST_NOW_VAR) {
        Ok(v) if !v.is_empty() => Box::new(FixedClock(Stamp::parse(&v).ok_or_else(|| {
            (
                format!("{TEST_NOW_VAR}={v:?} is not a UTC stamp YYYY-MM-DD-HH-MM-SS"),
                1,
            )
        })?)),
        _ => Box::new(SystemClock),
    })
}

/// Unix time now, by the run's clock ([`clock`]), or by the system's
/// when `REPOZO_TEST_NOW` is not a stamp.
fn now_unix() -> u64 {
    clock()
        .map_or_else(|_| SystemClock.now(), |c| c.now())
        .to_unix()
}

/// What `--metrics-file` records of a run that reached its operation:
/// the bytes as the `--json` summary counts them (`written`, when the
/// operation said how many bytes it stored; otherwise the progress of
/// the writing phase, which for a failed run is what was written before
/// it stopped), and the repository as listed afterwards. `None` for
/// `--list`, which has no metrics (the parser refuses the option there).
fn run_metrics(
    opts: &cli::Options,
    report: &Frontend,
    started: u64,
    since: Instant,
    exit_code: u8,
    written: Option<u64>,
) -> Option<metrics::Run> {
    let (operation, repository) = match &opts.command {
        Command::Backup(o, _) => (metrics::Operation::Backup, &o.repository),
        Command::Recover(o) => (metrics::Operation::Recover, &o.repository),
        Command::Verify(o) => (metrics::Operation::Verify, &o.repository),
        Command::Retain(o) => (metrics::Operation::Retention, &o.repository),
        Command::List(..) => return None,
    };
    let (read, write) = match operation {
        metrics::Operation::Backup => (
            report.bytes(Phase::Compare) + report.bytes(Phase::Copy),
            report.bytes(Phase::Copy),
        ),
        metrics::Operation::Recover => (
            report.bytes(Phase::Recover) + report.bytes(Phase::Prove),
            report.bytes(Phase::Recover),
        ),
        metrics::Operation::Verify => (report.bytes(Phase::Verify), 0),
        metrics::Operation::Retention => (0, 0),
    };
    Some(metrics::Run {
        operation,
        repository: repository.clone(),
        started,
        duration_seconds: since.elapsed().as_secs_f64(),
        exit_code,
        bytes_read: read,
        bytes_written: written.unwrap_or(write),
        blobs: report.blobs(),
        repo: metrics::repo_facts(repository),
    })
}

/// Writes the metrics file; if it cannot be written, says so on standard
/// error and turns a success into exit code 1 (a failure keeps its code).
fn write_metrics(path: &str, run: &metrics::Run, code: &mut u8) {
    if let Err(e) = metrics::write(path, run) {
        eprintln!("cannot write the metrics file (--metrics-file): {e}");
        if *code == 0 {
            *code = 1;
        }
    }
}

/// Runs the command; on failure returns the message and the exit code.
/// `written` receives the bytes a backup stored, when it tells.
fn run(
    opts: &cli::Options,
    clock: &dyn Clock,
    report: &Frontend,
    written: &mut Option<u64>,
) -> Result<(), (String, u8)> {
    let ctx = Ctx { clock, report };
    let result = match &opts.command {
        Command::Backup(o, None) => {
            let mut o = o.clone();
            o.lock_wait = lock_wait()?;
            ops::backup(&o, ctx).map(|outcome| {
                report.finish();
                *written = Some(stored(&outcome));
                backup_summary(report, &outcome);
            })
        }
        Command::Backup(o, Some(retention)) => {
            let mut o = o.clone();
            o.lock_wait = lock_wait()?;
            ops::backup_and_retain(&o, retention, ctx).and_then(|(outcome, kept)| {
                *written = Some(stored(&outcome));
                match kept {
                    Ok(outcome) => {
                        print_retention(&outcome, opts.verbose);
                        Ok(())
                    }
                    Err(e) => Err(repozo::Error::Retention(Box::new(e))),
                }
            })
        }
        Command::Retain(o) => {
            let mut o = o.clone();
            o.lock_wait = lock_wait()?;
            ops::retain(&o, ctx).map(|outcome| print_retention(&outcome, opts.verbose))
        }
        Command::List(o, json) => ops::list(o).map(|list| {
            let text = if *json {
                output::list_json(&list)
            } else {
                output::list_text(&list)
            };
            print!("{text}");
        }),
        Command::Recover(o) if o.incremental.is_some() => {
            ops::recover_incremental(o, ctx).map(|outcome| {
                report.finish();
                // The one line this mode always prints: what it did.
                let output = o.output.as_deref().unwrap_or_default();
                eprintln!("{output}: {outcome}");
                let kind = match &outcome {
                    IncrementalOutcome::AlreadyCurrent { .. } => "none",
                    IncrementalOutcome::Updated { .. } => "incremental",
                    IncrementalOutcome::Rebuilt { .. } => "rebuilt",
                    IncrementalOutcome::Full(_) => "full",
                };
                let written = report.bytes(Phase::Recover);
                let mut fields = json!({
                    "kind": kind,
                    "output": output,
                    "outcome": outcome.to_string(),
                    "files": report.files(),
                    "bytes_read": written + report.bytes(Phase::Prove),
                    "bytes_written": written,
                });
                if let IncrementalOutcome::Rebuilt {
                    from_standby,
                    from_repository,
                    ..
                } = outcome
                {
                    fields["base_bytes_from_standby"] = from_standby.into();
                    fields["base_bytes_from_repository"] = from_repository.into();
                }
                report.summary("recover", fields);
            })
        }
        Command::Recover(o) => ops::recover(o, ctx, &mut std::io::stdout().lock()).map(|()| {
            report.finish();
            let written = report.bytes(Phase::Recover);
            report.summary(
                "recover",
                json!({
                    "kind": "full",
                    "output": o.output,
                    "files": report.files(),
                    "bytes_read": written,
                    "bytes_written": written,
                }),
            );
        }),
        Command::Verify(o) => ops::verify(o, ctx).map(|()| {
            report.finish();
            report.summary(
                "verify",
                json!({
                    "kind": if o.quick { "sizes" } else { "md5" },
                    "files": report.files(),
                    "bytes_read": report.bytes(Phase::Verify),
                    "bytes_written": 0,
                }),
            );
        }),
    };
    report.finish();
    let result = result.map_err(|e| {
        let e = repozo::interrupt::or(e);
        (e.to_string(), e.exit_code())
    });
    match (&opts.command, &opts.max_age) {
        (Command::Verify(o), Some(max_age)) => {
            freshness(&o.repository, max_age, clock.now(), result, opts.verbose)
        }
        _ => result,
    }
}

/// `-V --max-age`: after a verify that succeeded, fails with
/// [`EXIT_STALE`] when the newest data file of the repository (whatever
/// `-D` chose to verify) is older than the limit; and instead of "No
/// files in repository" when the repository holds no backup at all. Any
/// other failure is the verify's, unchanged. Under `-v`, an age within
/// the limit is said on standard error.
fn freshness(
    repository: &str,
    max_age: &cli::MaxAge,
    now: Stamp,
    verified: Result<(), (String, u8)>,
    verbose: bool,
) -> Result<(), (String, u8)> {
    let listed = || {
        repozo::repo::Repository::open(repository)
            .and_then(|r| r.list())
            .ok()
    };
    let limit = &max_age.given;
    match verified {
        Ok(()) => {
            let Some(newest) = listed().and_then(|l| l.newest_stamp()) else {
                return Ok(());
            };
            let age = now.to_unix().saturating_sub(newest.to_unix());
            let age_text = metrics::format_age(age);
            if age > max_age.seconds {
                return Err((
                    format!(
                        "the newest backup ({newest}) is {age_text} old ({age} s), older than \
                         --max-age={limit} ({} s)",
                        max_age.seconds
                    ),
                    EXIT_STALE,
                ));
            }
            if verbose {
                eprintln!(
                    "the newest backup ({newest}) is {age_text} old, within --max-age={limit}"
                );
            }
            Ok(())
        }
        Err((_, 1)) if listed().is_some_and(|l| l.data_files().is_empty()) => Err((
            format!("repository {repository} holds no backup, so none is within --max-age={limit}"),
            EXIT_STALE,
        )),
        Err(e) => Err(e),
    }
}

/// Bytes the new backup file takes in the repository (0 when there was
/// nothing to do).
fn stored(outcome: &BackupOutcome) -> u64 {
    match outcome {
        BackupOutcome::Full { stored, .. } | BackupOutcome::Incremental { stored, .. } => *stored,
        BackupOutcome::NothingToDo => 0,
    }
}

/// The `--json` summary of a backup.
fn backup_summary(report: &Frontend, outcome: &BackupOutcome) {
    let read = report.bytes(Phase::Compare) + report.bytes(Phase::Copy);
    let fields = match outcome {
        BackupOutcome::Full {
            dest,
            end,
            md5,
            stored,
        } => json!({
            "kind": "full", "files": [dest], "start": 0, "end": end, "md5": md5,
            "bytes_read": read, "bytes_written": stored,
        }),
        BackupOutcome::Incremental {
            dest,
            start,
            end,
            md5,
            stored,
        } => json!({
            "kind": "incremental", "files": [dest], "start": start, "end": end, "md5": md5,
            "bytes_read": read, "bytes_written": stored,
        }),
        BackupOutcome::NothingToDo => json!({
            "kind": "none", "files": [], "bytes_read": read, "bytes_written": 0,
        }),
    };
    report.summary("backup", fields);
}

/// The wait for the repository lock set by `REPOZO_LOCK_WAIT`, if any.
fn lock_wait() -> Result<Option<std::time::Duration>, (String, u8)> {
    let Ok(v) = std::env::var(LOCK_WAIT_VAR) else {
        return Ok(None);
    };
    let secs: u64 = v.parse().map_err(|_| {
        (
            format!("{LOCK_WAIT_VAR}={v:?} is not a number of seconds"),
            1,
        )
    })?;
    Ok(Some(std::time::Duration::from_secs(secs)))
}

/// Prints what a retention run did: under `--dry-run` the whole plan on
/// stdout; otherwise one line on stderr when files were removed (always)
/// or when there was nothing to remove (under `-v`). The files themselves
/// were reported as they went (`-v`).
fn print_retention(outcome: &ops::RetentionOutcome, verbose: bool) {
    if outcome.dry_run {
        print!("{}", output::retention_plan(outcome));
    } else if !outcome.files.is_empty() || verbose {
        eprintln!("{}", output::retention_summary(outcome));
    }
}
