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

use repozo::cli::frontend::{self, Frontend, Style};
use repozo::cli::{self, Command, Parsed, output, usage};
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
            return ExitCode::from(1);
        }
        Parsed::Run(opts) => opts,
    };
    repozo::interrupt::install();
    let json = opts.json;
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err((msg, code)) => {
            eprintln!("{msg}");
            if json {
                eprintln!("{}", frontend::exit_error(code, &msg));
            }
            ExitCode::from(code)
        }
    }
}

/// Runs the command; on failure returns the message and the exit code.
fn run(opts: cli::Options) -> Result<(), (String, u8)> {
    let clock: Box<dyn Clock> = match std::env::var(TEST_NOW_VAR) {
        Ok(v) if !v.is_empty() => Box::new(FixedClock(Stamp::parse(&v).ok_or_else(|| {
            (
                format!("{TEST_NOW_VAR}={v:?} is not a UTC stamp YYYY-MM-DD-HH-MM-SS"),
                1,
            )
        })?)),
        _ => Box::new(SystemClock),
    };
    let report = Frontend::new(Style {
        verbose: opts.verbose,
        json: opts.json,
        no_progress: opts.no_progress,
    });
    let ctx = Ctx {
        clock: clock.as_ref(),
        report: &report,
    };
    let result = match &opts.command {
        Command::Backup(o, None) => {
            let mut o = o.clone();
            o.lock_wait = lock_wait()?;
            ops::backup(&o, ctx).map(|outcome| {
                report.finish();
                backup_summary(&report, &outcome);
            })
        }
        Command::Backup(o, Some(retention)) => {
            let mut o = o.clone();
            o.lock_wait = lock_wait()?;
            ops::backup_and_retain(&o, retention, ctx).and_then(|(_, kept)| match kept {
                Ok(outcome) => {
                    print_retention(&outcome, opts.verbose);
                    Ok(())
                }
                Err(e) => Err(repozo::Error::Retention(Box::new(e))),
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
                    IncrementalOutcome::Full(_) => "full",
                };
                let written = report.bytes(Phase::Recover);
                report.summary(
                    "recover",
                    json!({
                        "kind": kind,
                        "output": output,
                        "outcome": outcome.to_string(),
                        "files": report.files(),
                        "bytes_read": written + report.bytes(Phase::Prove),
                        "bytes_written": written,
                    }),
                );
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
    result.map_err(|e| {
        let e = repozo::interrupt::or(e);
        (e.to_string(), e.exit_code())
    })
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
