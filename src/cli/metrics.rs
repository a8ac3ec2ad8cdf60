//! `--metrics-file=PATH`: the run written as Prometheus metrics, in the
//! text exposition format that node_exporter's textfile collector reads.
//!
//! Invariants:
//! * The file is replaced atomically ([`AtomicFile`]: a temporary file in
//!   the same directory, fsync, rename, directory fsync), so the collector
//!   never reads half of it, and nothing but the final name is left.
//! * It is written after every run that reached an operation, whatever
//!   its exit code, and after a usage error when the arguments name the
//!   file and an operation ([`super::metrics_request`]).
//! * It describes one run: every series carries the labels
//!   `repository` (the `-r` value as given) and `operation` (`backup`,
//!   `recover`, `verify`, `retention`). Only
//!   `repozo_last_success_timestamp_seconds` outlives the run: a run that
//!   fails copies it from the file it replaces (same labels); when that
//!   file is missing, unreadable or has no such series, the series is
//!   left out.
//! * Everything here is built from what the front end saw (events,
//!   progress, outcomes) and one listing of the repository after the run;
//!   the operations know nothing of it.

use std::fmt::Write as _;
use std::io::Write as _;

use crate::error::Result;
use crate::io::AtomicFile;
use crate::repo::Repository;

/// The operation a metrics file describes (its `operation` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `-B`, with or without retention after it.
    Backup,
    /// `-R`.
    Recover,
    /// `-V`.
    Verify,
    /// `--keep…` without `-B`.
    Retention,
}

impl Operation {
    /// The `operation` label value.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Recover => "recover",
            Operation::Verify => "verify",
            Operation::Retention => "retention",
        }
    }
}

/// What a listing of the repository after the run says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RepoFacts {
    /// Data files in the newest chain (its full backup and incrementals).
    pub chain_files: u64,
    /// Bytes of the data, `.dat`, `.index` and `.blobs` files (not the
    /// blob store under `blobs/`).
    pub size_bytes: u64,
    /// Unix time of the newest data file's stamp, if there is one.
    pub newest_backup: Option<u64>,
}

/// One run, as the metrics file records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Which operation.
    pub operation: Operation,
    /// `-r` as given.
    pub repository: String,
    /// Unix time the run started (from the run's clock, so
    /// `REPOZO_TEST_NOW` pins it).
    pub started: u64,
    /// Wall-clock seconds the run took.
    pub duration_seconds: f64,
    /// The process's exit code.
    pub exit_code: u8,
    /// Bytes of Data.fs and backup files read (as the `--json` summary
    /// counts them).
    pub bytes_read: u64,
    /// Bytes written into the repository or the recovered output.
    pub bytes_written: u64,
    /// Blob objects stored, restored or checked and their bytes, when
    /// the run handled blobs.
    pub blobs: Option<(u64, u64)>,
    /// The repository after the run, when it could be listed.
    pub repo: Option<RepoFacts>,
}

/// The metrics, in the order written: name, type, help.
const METRICS: &[(&str, &str, &str)] = &[
    (
        "repozo_last_run_timestamp_seconds",
        "gauge",
        "Unix time the last run started.",
    ),
    (
        "repozo_last_success_timestamp_seconds",
        "gauge",
        "Unix time the last run that exited 0 started.",
    ),
    (
        "repozo_last_run_exit_code",
        "gauge",
        "Exit code of the last run (0 success).",
    ),
    (
        "repozo_last_run_duration_seconds",
        "gauge",
        "Wall-clock duration of the last run.",
    ),
    (
        "repozo_last_run_read_bytes",
        "gauge",
        "Bytes of Data.fs and backup files the last run read.",
    ),
    (
        "repozo_last_run_written_bytes",
        "gauge",
        "Bytes the last run wrote into the repository or the recovered Data.fs.",
    ),
    (
        "repozo_last_run_blob_objects",
        "gauge",
        "Blob files the last run stored, restored or checked (with blobs only).",
    ),
    (
        "repozo_last_run_blob_bytes",
        "gauge",
        "Bytes of the blob files the last run stored, restored or checked (with blobs only).",
    ),
    (
        "repozo_chain_files",
        "gauge",
        "Backup files in the repository's newest chain (a full backup and its incrementals).",
    ),
    (
        "repozo_repository_size_bytes",
        "gauge",
        "Bytes of the repository's backup files and their .dat, .index, .blobs and .blake3 files.",
    ),
    (
        "repozo_newest_backup_timestamp_seconds",
        "gauge",
        "Unix time of the newest backup file's stamp (the newest restore point).",
    ),
];

/// The label set of a run: `{repository="…",operation="…"}`.
fn labels(repository: &str, operation: Operation) -> String {
    format!(
        "{{repository=\"{}\",operation=\"{}\"}}",
        escape_label(repository),
        operation.name()
    )
}

/// A label value escaped as the text format requires: backslash, double
/// quote and line feed become `\\`, `\"` and `\n`.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The file's text: `# HELP`, `# TYPE` and one sample for each metric
/// that has a value (the blob metrics only when the run handled blobs,
/// the repository ones only when it could be listed, last success only
/// when known), ending in a newline.
pub fn render(run: &Run, last_success: Option<u64>) -> String {
    let blobs = run.blobs;
    let repo = run.repo;
    let values: [Option<String>; 11] = [
        Some(run.started.to_string()),
        last_success.map(|t| t.to_string()),
        Some(run.exit_code.to_string()),
        Some(format!("{:.3}", run.duration_seconds)),
        Some(run.bytes_read.to_string()),
        Some(run.bytes_written.to_string()),
        blobs.map(|(n, _)| n.to_string()),
        blobs.map(|(_, b)| b.to_string()),
        repo.map(|r| r.chain_files.to_string()),
        repo.map(|r| r.size_bytes.to_string()),
        repo.and_then(|r| r.newest_backup).map(|t| t.to_string()),
    ];
    let labels = labels(&run.repository, run.operation);
    let mut out = String::new();
    for ((name, kind, help), value) in METRICS.iter().zip(values) {
        if let Some(value) = value {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{labels} {value}\n"
            );
        }
    }
    out
}

/// The `repozo_last_success_timestamp_seconds` of `text` (a metrics file)
/// for these labels, if it has one that parses as whole seconds.
pub fn previous_success(text: &str, repository: &str, operation: Operation) -> Option<u64> {
    let want = format!(
        "repozo_last_success_timestamp_seconds{} ",
        labels(repository, operation)
    );
    text.lines()
        .find_map(|line| line.strip_prefix(&want))
        .and_then(|value| value.trim().parse().ok())
}

/// The last success to write for `run`: its start when it exited 0,
/// otherwise the one the file at `path` holds for the same labels.
pub fn last_success(path: &str, run: &Run) -> Option<u64> {
    if run.exit_code == 0 {
        return Some(run.started);
    }
    let old = crate::io::read_text_at_most(path, 1 << 20).ok()?;
    previous_success(&old, &run.repository, run.operation)
}

/// Writes the metrics of `run` to `path`, atomically (see the module's
/// invariants). The rename happens even after a SIGINT or SIGTERM, so an
/// interrupted run is recorded too.
pub fn write(path: &str, run: &Run) -> Result<()> {
    let text = render(run, last_success(path, run));
    let mut file = AtomicFile::create(path)?;
    file.write_all(text.as_bytes())
        .map_err(|e| crate::Error::io(path, e))?;
    file.commit_even_if_interrupted()
}

/// Lists `repository` and sums up what [`RepoFacts`] records; `None` when
/// it cannot be listed (it does not exist, the store cannot be reached).
/// One listing, plus one `stat` per file for a directory.
pub fn repo_facts(repository: &str) -> Option<RepoFacts> {
    let repo = Repository::open(repository).ok()?;
    let listing = repo.list().ok()?;
    let chain_files = listing.chains().last().map_or(0, |c| c.len() as u64);
    let mut size_bytes = 0u64;
    for name in listing.data_files().iter().chain(listing.meta_files()) {
        let size = match listing.size_of(name) {
            Some(size) => size,
            None => repo.entry_size(name).ok().flatten().unwrap_or(0),
        };
        size_bytes = size_bytes.saturating_add(size);
    }
    Some(RepoFacts {
        chain_files,
        size_bytes,
        newest_backup: listing.newest_stamp().map(|s| s.to_unix()),
    })
}

/// An age in seconds as hours and minutes: `27h00m`, `0h05m`.
pub fn format_age(seconds: u64) -> String {
    format!("{}h{:02}m", seconds / 3600, seconds / 60 % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The old metrics file may hold anything: its last success is read
        /// or absent, never a panic.
        #[test]
        fn any_old_metrics_file_gives_a_last_success_or_none_never_a_panic(
            text in "(\\PC|[{}=\"\\\\ \\n])*", repo in "\\PC{0,20}"
        ) {
            let _ = previous_success(&text, &repo, Operation::Backup);
        }
    }

    fn run(exit_code: u8) -> Run {
        Run {
            operation: Operation::Backup,
            repository: "/var/backups/\"zodb\"\\main\n".into(),
            started: 1_700_000_000,
            duration_seconds: 1.25,
            exit_code,
            bytes_read: 10,
            bytes_written: 5,
            blobs: None,
            repo: Some(RepoFacts {
                chain_files: 2,
                size_bytes: 300,
                newest_backup: Some(1_699_999_000),
            }),
        }
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }

    #[test]
    fn every_sample_has_help_and_type_and_both_labels() {
        let text = render(&run(0), Some(1_700_000_000));
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples.len(), 9, "{text}");
        for sample in samples {
            let name = sample.split('{').next().unwrap();
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{name}");
            assert!(
                sample.contains(
                    "{repository=\"/var/backups/\\\"zodb\\\"\\\\main\\n\",operation=\"backup\"} "
                ),
                "{sample}"
            );
        }
        assert!(!text.contains("repozo_last_run_blob"));
    }

    #[test]
    fn a_failed_run_carries_over_the_last_success_of_the_same_labels_only() {
        let old = render(&run(0), Some(1_600_000_000));
        assert_eq!(
            previous_success(&old, &run(1).repository, Operation::Backup),
            Some(1_600_000_000)
        );
        assert_eq!(
            previous_success(&old, &run(1).repository, Operation::Verify),
            None
        );
        assert_eq!(previous_success(&old, "other", Operation::Backup), None);
        assert_eq!(previous_success("garbage\n", "x", Operation::Backup), None);
    }

    #[test]
    fn ages_are_hours_and_minutes() {
        assert_eq!(format_age(97_200), "27h00m");
        assert_eq!(format_age(330), "0h05m");
    }
}
