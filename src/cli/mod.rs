//! The command line, exactly as ZODB 6.4's repozo parses it.
//!
//! Two stages: [`getopt`] splits the arguments with Python getopt
//! semantics; [`parse`] gives them meaning — mode rules, required options,
//! the "--x option is ignored in y mode" notices — in repozo's order, with
//! repozo's messages. What to print and which exit code to use is left to
//! the caller (`src/main.rs`): help on stdout with 0 for [`Parsed::Help`];
//! help and the message on stderr with 1 for [`Parsed::Usage`].
//!
//! Options of our own ([`EXACT_OPTS`]: `--incremental`, `--list`,
//! `--json`, `--keep…`, `--dry-run`, …) are recognised by their exact
//! names only and checked after repozo's own rules, so an argument list
//! made only of repozo's options parses, and fails, exactly as before.
//! [`output`] formats what `--list` and retention return.

pub mod docs;
pub mod frontend;
pub mod getopt;
pub mod metrics;
pub mod output;
pub mod usage;

use crate::ops::retention::{Policy, RetainOptions, Retention};
use crate::ops::{BackupOptions, IncrementalOptions, ListOptions, RecoverOptions, VerifyOptions};

/// repozo's short options, in getopt syntax.
pub const SHORT_OPTS: &str = "BRVvhr:f:FQzkD:o:w";
/// repozo's long options; `=` marks those taking a value.
pub const LONG_OPTS: &[&str] = &[
    "backup",
    "recover",
    "verify",
    "verbose",
    "help",
    "repository=",
    "file=",
    "full",
    "quick",
    "gzip",
    "kill-old-on-full",
    "date=",
    "output=",
    "with-verify",
];

/// Long options of this tool that repozo does not have. They match only
/// by their exact name ([`getopt::getopt_exact`]), so every abbreviation
/// that repozo accepts keeps its meaning.
pub const EXACT_OPTS: &[&str] = &[
    "incremental",
    "no-fallback",
    "no-verify",
    "version",
    "json",
    "no-progress",
    "deep",
    "md5",
    "pack-delta",
    "list",
    "keep=",
    "keep-daily=",
    "keep-weekly=",
    "keep-monthly=",
    "dry-run",
    "man",
    "completions=",
    "blob-dir=",
    "metrics-file=",
    "max-age=",
];

/// The retention options, as the messages name them.
const KEEP_OPTIONS: &str = "--keep, --keep-daily, --keep-weekly and --keep-monthly";

/// The operation selected by `-B`, `-R`, `-V`, `--list` or a retention
/// option alone, with its options.
#[derive(Debug, Clone)]
pub enum Command {
    /// `-B`, and the retention to apply after it (`--keep…`), if any.
    Backup(BackupOptions, Option<Retention>),
    /// `-R`
    Recover(RecoverOptions),
    /// `-V`
    Verify(VerifyOptions),
    /// `--list`; `true` for JSON lines (`--json`).
    List(ListOptions, bool),
    /// `--keep…` with `-r` and no `-B`/`-R`/`-V`/`--list`.
    Retain(RetainOptions),
}

/// Parsed command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// `-v`: print repozo's log lines on stderr. Default: off.
    pub verbose: bool,
    /// `--json`: JSON lines on stdout (status, summary). Default: off.
    pub json: bool,
    /// `--no-progress`: no progress bar, even on a terminal. Default: off.
    pub no_progress: bool,
    /// `--metrics-file=PATH`: where to write the Prometheus metrics of
    /// the run ([`metrics`]); only with `-B`, `-R`, `-V` and retention.
    /// Default: none.
    pub metrics_file: Option<String>,
    /// `--max-age=DURATION`: with `-V`, the age the newest backup may
    /// have. Default: none (no freshness check).
    pub max_age: Option<MaxAge>,
    /// What to do.
    pub command: Command,
}

/// A `--max-age` value: how old the newest backup of a verified
/// repository may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxAge {
    /// The limit in seconds (positive).
    pub seconds: u64,
    /// The value as given (`26h`), for messages.
    pub given: String,
}

/// Parses a `--max-age` value: a positive whole number followed by at
/// most one unit, `s` (seconds, also when there is none), `m`, `h`, `d`
/// or `w`: `3600`, `90m`, `26h`, `2d`, `1w`. `None` for anything else
/// (zero, a sign, a fraction, several units, an overflow).
pub fn parse_duration(value: &str) -> Option<u64> {
    let (digits, unit) = match value.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&value[..i], Some(c)),
        _ => (value, None),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        None | Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        Some('d') => 86_400,
        Some('w') => 7 * 86_400,
        Some(_) => return None,
    };
    n.checked_mul(scale).filter(|&s| s > 0)
}

/// What `--metrics-file` needs to know to record a run that ended in a
/// usage error: found by [`metrics_request`] from the arguments alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsRequest {
    /// The `--metrics-file` value (not empty).
    pub path: String,
    /// The `-r` value as given, or `""` if there was none.
    pub repository: String,
    /// The operation the mode options select.
    pub operation: metrics::Operation,
}

/// The `--metrics-file` of an argument list that getopt can split, with
/// the repository and the operation it names: the last of `-B`, `-R`,
/// `-V` given, else retention when a `--keep…` option is. `None` when the
/// arguments do not split, name no metrics file, or select no operation
/// with metrics (none, or `--list`); then a usage error writes no file.
pub fn metrics_request(args: &[String]) -> Option<MetricsRequest> {
    let (opts, _) = getopt::getopt_exact(args, SHORT_OPTS, LONG_OPTS, EXACT_OPTS).ok()?;
    let (mut path, mut repository, mut operation) = (None, String::new(), None);
    let (mut retaining, mut listing) = (false, false);
    for o in opts {
        match o.name.as_str() {
            "--metrics-file" => path = o.value.filter(|p| !p.is_empty()),
            "-r" | "--repository" => repository = o.value.unwrap_or_default(),
            "-B" | "--backup" => operation = Some(metrics::Operation::Backup),
            "-R" | "--recover" => operation = Some(metrics::Operation::Recover),
            "-V" | "--verify" => operation = Some(metrics::Operation::Verify),
            "--list" => listing = true,
            n if n.starts_with("--keep") => retaining = true,
            _ => {}
        }
    }
    if listing {
        return None;
    }
    let operation = operation.or(retaining.then_some(metrics::Operation::Retention))?;
    Some(MetricsRequest {
        path: path?,
        repository,
        operation,
    })
}

/// Outcome of [`parse`].
#[derive(Debug, Clone)]
pub enum Parsed {
    /// `-h` was reached: print the help on stdout and exit 0.
    Help,
    /// `--version` was reached: print the name and version and exit 0.
    Version,
    /// `--man` was reached: print the man page (roff) and exit 0.
    Man,
    /// `--completions=SHELL` was reached: print that shell's completion
    /// script and exit 0.
    Completions(String),
    /// A usage error: print the help, then this message, on stderr; exit 1.
    Usage(String),
    /// Run this.
    Run(Options),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Backup,
    Recover,
    Verify,
    List,
    Retain,
}

/// A `--keep…` value: a positive whole number.
fn count(name: &str, value: Option<String>) -> Result<u32, String> {
    let value = value.unwrap_or_default();
    match value.parse::<u32>() {
        Ok(n) if n > 0 && value.bytes().all(|c| c.is_ascii_digit()) => Ok(n),
        _ => Err(format!(
            "{name} takes a positive whole number, not {value:?}"
        )),
    }
}

/// Interprets `args` (without the program name) as repozo does.
///
/// `notice` receives each "--x option is ignored in y mode" line; repozo
/// prints these only under `-v` and before any later usage error, so
/// they are passed only when `-v` was given.
pub fn parse(args: &[String], notice: &mut dyn FnMut(&str)) -> Parsed {
    let (opts, operands) = match getopt::getopt_exact(args, SHORT_OPTS, LONG_OPTS, EXACT_OPTS) {
        Ok(p) => p,
        Err(msg) => return Parsed::Usage(msg),
    };
    let mut mode = None;
    let mut verbose = false;
    let (mut file, mut repository, mut date, mut output) = (None, None, None, None);
    let (mut full, mut quick, mut gzip, mut kill_old, mut with_verify) =
        (false, false, false, false, false);
    let (mut incremental, mut no_fallback, mut no_verify, mut deep) = (false, false, false, false);
    let (mut json, mut no_progress, mut dry_run, mut md5) = (false, false, false, false);
    let mut pack_delta = false;
    let mut blob_dir: Option<String> = None;
    let (mut metrics_file, mut max_age): (Option<String>, Option<String>) = (None, None);
    let mut keep: [(&str, Option<String>); 4] = [
        ("--keep", None),
        ("--keep-daily", None),
        ("--keep-weekly", None),
        ("--keep-monthly", None),
    ];
    for o in opts {
        let value = o.value.clone();
        let new_mode = match o.name.as_str() {
            "-h" | "--help" => return Parsed::Help,
            "-v" | "--verbose" => {
                verbose = true;
                None
            }
            "-R" | "--recover" => Some(Mode::Recover),
            "-B" | "--backup" => Some(Mode::Backup),
            "-V" | "--verify" => Some(Mode::Verify),
            "-Q" | "--quick" => {
                quick = true;
                None
            }
            "-f" | "--file" => {
                file = value;
                None
            }
            "-r" | "--repository" => {
                repository = value;
                None
            }
            "-F" | "--full" => {
                full = true;
                None
            }
            "-D" | "--date" => {
                date = value;
                None
            }
            "-o" | "--output" => {
                output = value;
                None
            }
            "-z" | "--gzip" => {
                gzip = true;
                None
            }
            "-k" | "--kill-old-on-full" => {
                kill_old = true;
                None
            }
            "-w" | "--with-verify" => {
                with_verify = true;
                None
            }
            "--incremental" => {
                incremental = true;
                None
            }
            "--no-fallback" => {
                no_fallback = true;
                None
            }
            "--no-verify" => {
                no_verify = true;
                None
            }
            "--version" => return Parsed::Version,
            "--man" => return Parsed::Man,
            "--completions" => {
                let shell = value.unwrap_or_default();
                if docs::SHELLS.contains(&shell.as_str()) {
                    return Parsed::Completions(shell);
                }
                return Parsed::Usage(format!(
                    "--completions takes one of {}, not {shell:?}",
                    docs::SHELLS.join(", ")
                ));
            }
            "--list" => Some(Mode::List),
            "--json" => {
                json = true;
                None
            }
            "--no-progress" => {
                no_progress = true;
                None
            }
            "--deep" => {
                deep = true;
                None
            }
            "--md5" => {
                md5 = true;
                None
            }
            "--pack-delta" => {
                pack_delta = true;
                None
            }
            "--dry-run" => {
                dry_run = true;
                None
            }
            "--blob-dir" => {
                blob_dir = value;
                None
            }
            "--metrics-file" => {
                metrics_file = value;
                None
            }
            "--max-age" => {
                max_age = value;
                None
            }
            name @ ("--keep" | "--keep-daily" | "--keep-weekly" | "--keep-monthly") => {
                if let Some(slot) = keep.iter_mut().find(|(n, _)| *n == name) {
                    slot.1 = value;
                }
                None
            }
            other => unreachable!("getopt returned an undeclared option {other}"),
        };
        if let Some(m) = new_mode {
            match mode {
                Some(Mode::List) if m == Mode::List => {}
                Some(old) if old == Mode::List || m == Mode::List => {
                    return Parsed::Usage("--list cannot be combined with -B, -R or -V".into());
                }
                Some(_) => {
                    return Parsed::Usage("-B, -R, and -V are mutually exclusive".into());
                }
                None => {}
            }
            mode = Some(m);
        }
    }
    let retaining = keep.iter().any(|(_, v)| v.is_some());
    if !operands.is_empty() {
        return Parsed::Usage(format!("Invalid arguments: {}", operands.join(", ")));
    }
    let Some(mode) = mode.or(retaining.then_some(Mode::Retain)) else {
        return Parsed::Usage("Either --backup, --recover or --verify is required".into());
    };
    let Some(repository) = repository else {
        return Parsed::Usage("--repository is required".into());
    };
    if json && retaining {
        return Parsed::Usage(format!(
            "--json cannot be combined with {KEEP_OPTIONS}: their report is text"
        ));
    }
    if incremental && mode != Mode::Recover {
        return Parsed::Usage("--incremental only applies to -R/--recover".into());
    }
    if incremental && output.is_none() {
        return Parsed::Usage(
            "--incremental needs -o/--output: it brings an existing Data.fs up to date".into(),
        );
    }
    if no_fallback && !incremental {
        return Parsed::Usage("--no-fallback only applies to --incremental".into());
    }
    if no_verify && mode != Mode::Recover {
        return Parsed::Usage("--no-verify only applies to -R/--recover".into());
    }
    if no_verify && (with_verify || incremental) {
        return Parsed::Usage(
            "--no-verify contradicts -w/--with-verify and --incremental, which always verify"
                .into(),
        );
    }
    if json && mode == Mode::Recover && output.is_none() {
        return Parsed::Usage(
            "--json writes JSON lines on standard output, where -R without -o writes the \
             Data.fs: recover with -o/--output"
                .into(),
        );
    }
    if blob_dir.is_some() && !matches!(mode, Mode::Backup | Mode::Recover) {
        return Parsed::Usage(
            "--blob-dir only applies to -B/--backup and -R/--recover (-V checks the blobs of \
             a chain that has them by itself)"
                .into(),
        );
    }
    if blob_dir.as_deref() == Some("") {
        return Parsed::Usage("--blob-dir needs a directory".into());
    }
    if blob_dir.is_some() && mode == Mode::Recover && output.is_none() {
        return Parsed::Usage(
            "--blob-dir needs -o/--output: the blobs are restored beside a Data.fs file, \
             not standard output"
                .into(),
        );
    }
    if deep && mode != Mode::Verify {
        return Parsed::Usage("--deep only applies to -V/--verify".into());
    }
    if md5 && !matches!(mode, Mode::Recover | Mode::Verify) {
        return Parsed::Usage("--md5 only applies to -R/--recover and -V/--verify".into());
    }
    if pack_delta && !matches!(mode, Mode::Backup) {
        return Parsed::Usage("--pack-delta only applies to -B/--backup".into());
    }
    if md5 && no_verify {
        return Parsed::Usage("--md5 contradicts --no-verify, which checks nothing".into());
    }
    if metrics_file.as_deref() == Some("") {
        return Parsed::Usage("--metrics-file needs a file name".into());
    }
    if metrics_file.is_some() && mode == Mode::List {
        return Parsed::Usage(
            "--metrics-file only applies to -B/--backup, -R/--recover, -V/--verify and the \
             retention options"
                .into(),
        );
    }
    if max_age.is_some() && mode != Mode::Verify {
        return Parsed::Usage("--max-age only applies to -V/--verify".into());
    }
    let max_age = match max_age {
        Some(given) => match parse_duration(&given) {
            Some(seconds) => Some(MaxAge { seconds, given }),
            None => {
                return Parsed::Usage(format!(
                    "--max-age takes a positive whole number of seconds, or of minutes, hours, \
                     days or weeks with the unit m, h, d or w (26h, 90m, 2d), not {given:?}"
                ));
            }
        },
        None => None,
    };
    let mut counts = [None; 4];
    for (slot, (name, value)) in counts.iter_mut().zip(keep) {
        if value.is_some() {
            match count(name, value) {
                Ok(n) => *slot = Some(n),
                Err(msg) => return Parsed::Usage(msg),
            }
        }
    }
    let [last, daily, weekly, monthly] = counts;
    let retention = Retention {
        policy: Policy {
            last,
            daily,
            weekly,
            monthly,
        },
        dry_run,
    };
    if retaining && !matches!(mode, Mode::Backup | Mode::Retain) {
        return Parsed::Usage(format!(
            "{KEEP_OPTIONS} apply to -B/--backup, or alone with -r"
        ));
    }
    if retaining && kill_old {
        return Parsed::Usage(format!(
            "-k/--kill-old-on-full cannot be combined with {KEEP_OPTIONS}: \
             -k removes every backup but the newest full one"
        ));
    }
    if dry_run && !retaining {
        return Parsed::Usage(format!("--dry-run only applies to {KEEP_OPTIONS}"));
    }
    let mut ignored = |set: bool, name: &str, mode: &str| {
        if set && verbose {
            notice(&format!("--{name} option is ignored in {mode} mode"));
        }
    };
    let command = match mode {
        Mode::Backup => {
            ignored(date.is_some(), "date", "backup");
            ignored(output.is_some(), "output", "backup");
            ignored(with_verify, "with-verify", "backup");
            let Some(file) = file.filter(|f| !f.is_empty()) else {
                return Parsed::Usage("--file is required in backup mode".into());
            };
            Command::Backup(
                BackupOptions {
                    repository,
                    file,
                    full,
                    quick,
                    gzip,
                    kill_old,
                    lock_wait: None,
                    blob_dir,
                    pack_delta,
                },
                retaining.then_some(retention),
            )
        }
        Mode::Recover => {
            ignored(file.is_some(), "file", "recover");
            ignored(kill_old, "kill-old-on-full", "recover");
            Command::Recover(RecoverOptions {
                repository,
                date,
                output,
                with_verify,
                no_verify,
                incremental: incremental.then_some(IncrementalOptions { quick, no_fallback }),
                blob_dir,
                md5,
            })
        }
        Mode::Verify => {
            // -D selects the chain to verify (repozo ignores it here).
            ignored(output.is_some(), "output", "verify");
            ignored(full, "full", "verify");
            ignored(gzip, "gzip", "verify");
            ignored(file.is_some(), "file", "verify");
            ignored(kill_old, "kill-old-on-full", "verify");
            ignored(with_verify, "with-verify", "verify");
            Command::Verify(VerifyOptions {
                repository,
                quick,
                date,
                deep,
                md5,
            })
        }
        Mode::List => {
            ignored(date.is_some(), "date", "list");
            ignored(output.is_some(), "output", "list");
            ignored(full, "full", "list");
            ignored(gzip, "gzip", "list");
            ignored(file.is_some(), "file", "list");
            ignored(kill_old, "kill-old-on-full", "list");
            ignored(with_verify, "with-verify", "list");
            ignored(quick, "quick", "list");
            Command::List(ListOptions { repository }, json)
        }
        Mode::Retain => {
            ignored(date.is_some(), "date", "retention");
            ignored(output.is_some(), "output", "retention");
            ignored(full, "full", "retention");
            ignored(gzip, "gzip", "retention");
            ignored(file.is_some(), "file", "retention");
            ignored(with_verify, "with-verify", "retention");
            ignored(quick, "quick", "retention");
            Command::Retain(RetainOptions {
                repository,
                retention,
                lock_wait: None,
            })
        }
    };
    Parsed::Run(Options {
        verbose,
        json,
        no_progress,
        metrics_file,
        max_age,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// `--max-age` takes anything: a positive duration or `None`, never
        /// a panic or an overflow.
        #[test]
        fn any_max_age_value_is_a_positive_duration_or_none(value in "\\PC{0,30}|[0-9]{1,25}[smhdwx]?") {
            if let Some(secs) = parse_duration(&value) {
                proptest::prop_assert!(secs > 0);
            }
        }
    }

    fn run(args: &[&str]) -> (Parsed, Vec<String>) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut notes = Vec::new();
        let p = parse(&args, &mut |n| notes.push(n.to_string()));
        (p, notes)
    }

    fn usage(args: &[&str]) -> String {
        match run(args).0 {
            Parsed::Usage(m) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn help_wins_when_reached_before_a_mode_conflict() {
        assert!(matches!(run(&["-h", "-B", "-R"]).0, Parsed::Help));
        assert_eq!(
            usage(&["-B", "-R", "-h"]),
            "-B, -R, and -V are mutually exclusive"
        );
    }

    #[test]
    fn the_same_mode_twice_is_a_conflict() {
        assert_eq!(
            usage(&["-B", "-B"]),
            "-B, -R, and -V are mutually exclusive"
        );
    }

    #[test]
    fn usage_errors_come_in_repozos_order() {
        assert_eq!(usage(&["-B", "x"]), "Invalid arguments: x");
        assert_eq!(
            usage(&["-r", "x"]),
            "Either --backup, --recover or --verify is required"
        );
        assert_eq!(usage(&["-B"]), "--repository is required");
        assert_eq!(
            usage(&["-B", "-r", "x"]),
            "--file is required in backup mode"
        );
    }

    #[test]
    fn ignored_options_are_noticed_only_with_verbose() {
        let (_, notes) = run(&["-V", "-r", "x", "-F", "-z"]);
        assert!(notes.is_empty());
        let (p, notes) = run(&["-V", "-r", "x", "-F", "-z", "-v"]);
        assert!(matches!(p, Parsed::Run(_)));
        assert_eq!(
            notes,
            vec![
                "--full option is ignored in verify mode",
                "--gzip option is ignored in verify mode"
            ]
        );
    }

    #[test]
    fn verify_takes_a_date_without_a_notice_and_deep_only_with_verify() {
        let (p, notes) = run(&["-Vv", "-r", "x", "-D", "2026-11-26", "--deep"]);
        let Parsed::Run(Options {
            command: Command::Verify(v),
            ..
        }) = p
        else {
            panic!("expected a verify, got {p:?}");
        };
        assert_eq!(v.date.as_deref(), Some("2026-11-26"));
        assert!(v.deep);
        assert!(notes.is_empty(), "{notes:?}");
        for mode in ["-B", "-R"] {
            assert_eq!(
                usage(&[mode, "-r", "x", "-f", "y", "--deep"]),
                "--deep only applies to -V/--verify"
            );
        }
        assert_eq!(
            usage(&["-V", "-r", "x", "--dee"]),
            "option --dee not recognized"
        );
    }

    #[test]
    fn list_is_a_mode_of_its_own_that_needs_a_repository() {
        assert!(matches!(
            run(&["--list", "-r", "x"]).0,
            Parsed::Run(Options {
                command: Command::List(_, false),
                ..
            })
        ));
        assert!(matches!(
            run(&["-r", "x", "--json", "--list"]).0,
            Parsed::Run(Options {
                command: Command::List(_, true),
                ..
            })
        ));
        assert_eq!(usage(&["--list"]), "--repository is required");
        assert_eq!(
            usage(&["--list", "-B", "-r", "x"]),
            "--list cannot be combined with -B, -R or -V"
        );
        assert_eq!(
            usage(&["-V", "--list", "-r", "x"]),
            "--list cannot be combined with -B, -R or -V"
        );
        let (_, notes) = run(&["--list", "-r", "x", "-v", "-z"]);
        assert_eq!(notes, vec!["--gzip option is ignored in list mode"]);
    }

    #[test]
    fn json_applies_to_everything_but_retention() {
        for args in [
            &["-B", "-r", "x", "-f", "y", "--json"][..],
            &["-V", "-r", "x", "--json"],
            &["-R", "-r", "x", "-o", "y", "--json"],
            &["--list", "-r", "x", "--json"],
        ] {
            assert!(matches!(run(args).0, Parsed::Run(_)), "{args:?}");
        }
        for args in [
            &["--keep=1", "-r", "x", "--json"][..],
            &["-B", "-r", "x", "-f", "y", "--keep=1", "--json"],
        ] {
            assert!(
                usage(args).starts_with("--json cannot be combined with"),
                "{args:?}"
            );
        }
    }

    #[test]
    fn retention_runs_alone_or_after_a_backup() {
        let Parsed::Run(o) = run(&["-r", "x", "--keep=2", "--keep-daily", "7"]).0 else {
            panic!()
        };
        let Command::Retain(r) = o.command else {
            panic!()
        };
        assert_eq!(r.retention.policy.last, Some(2));
        assert_eq!(r.retention.policy.daily, Some(7));
        assert!(!r.retention.dry_run);
        let Parsed::Run(o) = run(&["-B", "-r", "x", "-f", "y", "--keep-monthly=3", "--dry-run"]).0
        else {
            panic!()
        };
        let Command::Backup(_, Some(r)) = o.command else {
            panic!()
        };
        assert_eq!(r.policy.monthly, Some(3));
        assert!(r.dry_run);
        assert!(matches!(
            run(&["-B", "-r", "x", "-f", "y"]).0,
            Parsed::Run(Options {
                command: Command::Backup(_, None),
                ..
            })
        ));
    }

    #[test]
    fn retention_values_must_be_positive_whole_numbers() {
        for (arg, shown) in [
            ("--keep=0", "\"0\""),
            ("--keep-daily=-1", "\"-1\""),
            ("--keep-weekly=x", "\"x\""),
            ("--keep-monthly=", "\"\""),
            ("--keep=+3", "\"+3\""),
            ("--keep=99999999999", "\"99999999999\""),
        ] {
            let name = arg.split('=').next().unwrap();
            assert_eq!(
                usage(&["-r", "x", arg]),
                format!("{name} takes a positive whole number, not {shown}")
            );
        }
    }

    #[test]
    fn retention_combinations_that_make_no_sense_are_usage_errors() {
        let only = "--keep, --keep-daily, --keep-weekly and --keep-monthly apply to \
                    -B/--backup, or alone with -r";
        assert_eq!(usage(&["-R", "-r", "x", "--keep=1"]), only);
        assert_eq!(usage(&["-V", "-r", "x", "--keep-daily=1"]), only);
        assert_eq!(usage(&["--list", "-r", "x", "--keep=1"]), only);
        assert!(
            usage(&["-Bk", "-r", "x", "-f", "y", "--keep=1"])
                .starts_with("-k/--kill-old-on-full cannot be combined with --keep")
        );
        assert!(usage(&["-k", "-r", "x", "--keep=1"]).starts_with("-k/--kill-old-on-full"));
        assert_eq!(
            usage(&["-B", "-r", "x", "-f", "y", "--dry-run"]),
            "--dry-run only applies to --keep, --keep-daily, --keep-weekly and --keep-monthly"
        );
        assert_eq!(usage(&["--keep=1"]), "--repository is required");
    }

    #[test]
    fn our_options_match_only_by_exact_name() {
        for (arg, msg) in [
            ("--li", "option --li not recognized"),
            ("--lis", "option --lis not recognized"),
            ("--js", "option --js not recognized"),
            ("--kee=1", "option --kee not recognized"),
            ("--keep-d=1", "option --keep-d not recognized"),
            ("--dry", "option --dry not recognized"),
            ("--list=1", "option --list must not have an argument"),
            ("--keep", "option --keep requires argument"),
        ] {
            assert_eq!(usage(&["-r", "x", arg]), msg, "{arg}");
        }
        // repozo's own prefixes still resolve as before.
        assert_eq!(
            usage(&["--k", "-r", "x"]),
            "Either --backup, --recover or --verify is required"
        );
    }

    #[test]
    fn notices_are_given_before_a_missing_file_error() {
        let (p, notes) = run(&["-Bv", "-r", "x", "-o", "y"]);
        assert!(matches!(p, Parsed::Usage(_)));
        assert_eq!(notes, vec!["--output option is ignored in backup mode"]);
    }

    #[test]
    fn durations_are_whole_numbers_with_at_most_one_unit_and_seconds_by_default() {
        for (text, secs) in [
            ("3600", 3600),
            ("3600s", 3600),
            ("90m", 5400),
            ("26h", 93_600),
            ("2d", 172_800),
            ("1w", 604_800),
        ] {
            assert_eq!(parse_duration(text), Some(secs), "{text}");
        }
        for bad in [
            "",
            "0",
            "0h",
            "h",
            "-1",
            "+1",
            "1.5h",
            "2d3h",
            "1y",
            "99999999999999999999w",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_usage_error_knows_its_metrics_file_only_with_an_operation_that_has_metrics() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let req = metrics_request(&args(&["-B", "-r", "x", "--metrics-file=m.prom"])).unwrap();
        assert_eq!(req.path, "m.prom");
        assert_eq!(req.repository, "x");
        assert_eq!(req.operation, metrics::Operation::Backup);
        let req = metrics_request(&args(&["--keep=2", "--metrics-file", "m"])).unwrap();
        assert_eq!(req.operation, metrics::Operation::Retention);
        assert_eq!(req.repository, "");
        for none in [
            &["-B", "-r", "x"][..],
            &["-r", "x", "--metrics-file=m"],
            &["--list", "-r", "x", "--metrics-file=m"],
            &["-B", "--metrics-file="],
            &["-B", "--metrics-file=m", "--bogus"],
        ] {
            assert_eq!(metrics_request(&args(none)), None, "{none:?}");
        }
    }
}
