//! What the command prints while an operation runs: repozo's `-v` lines
//! and warnings on standard error, a progress bar on a terminal, and with
//! `--json` JSON lines on standard output.
//!
//! * Progress bar (indicatif) on standard error, only when it is a
//!   terminal, not with `--json` or `--no-progress`, and only for work
//!   still running after [`BAR_DELAY`]: short runs and cron jobs print
//!   exactly what ZODB's repozo prints.
//! * `--json`: `{"message_type":"status",…}` about once a second while
//!   long work runs ([`STATUS_EVERY`]), then one `summary` (see
//!   [`Frontend::summary`]); a failure is an `exit_error` object on
//!   standard error ([`exit_error`]). The schema is in docs/operating.md.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::report::{Event, Phase, Progress, Report};

/// Work that ends sooner shows no bar.
pub const BAR_DELAY: Duration = Duration::from_secs(1);
/// Interval of `--json` status lines.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);

/// How the command reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// `-v`: repozo's log lines.
    pub verbose: bool,
    /// `--json`: JSON lines on standard output.
    pub json: bool,
    /// `--no-progress`: no bar even on a terminal.
    pub no_progress: bool,
}

/// The [`Report`] of the command line.
pub struct Frontend {
    style: Style,
    started: Instant,
    /// Whether a bar may be drawn at all (standard error is a terminal,
    /// no `--json`, no `--no-progress`).
    bar_allowed: bool,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    bar: Option<(ProgressBar, Phase)>,
    last_status: Option<Instant>,
    /// Bytes done per phase (the last count each reported).
    done: BTreeMap<&'static str, u64>,
    /// The chain files an operation selected.
    files: Vec<String>,
    /// Blob objects and bytes stored, restored or checked (the last blob
    /// event's), if the operation handled blobs.
    blobs: Option<(u64, u64)>,
    /// How the operation checked the files (`"blake3"` or `"md5"`), if
    /// it said.
    checked_with: Option<&'static str>,
    /// A pack delta written: its base chain's first file, bytes taken
    /// from the base, bytes of its own.
    pack_delta: Option<(String, u64, u64)>,
}

impl Frontend {
    /// A front end printing in `style`.
    pub fn new(style: Style) -> Self {
        Frontend {
            style,
            started: Instant::now(),
            bar_allowed: !style.json && !style.no_progress && std::io::stderr().is_terminal(),
            state: RefCell::new(State::default()),
        }
    }

    /// Prints a line on standard error without tearing the bar.
    pub fn eprintln(&self, line: &str) {
        let state = self.state.borrow();
        match &state.bar {
            Some((bar, _)) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bar (before the final messages).
    pub fn finish(&self) {
        if let Some((bar, _)) = self.state.borrow_mut().bar.take() {
            bar.finish_and_clear();
        }
    }

    /// Bytes the given phase reported last.
    pub fn bytes(&self, phase: Phase) -> u64 {
        self.state
            .borrow()
            .done
            .get(phase.name())
            .copied()
            .unwrap_or(0)
    }

    /// The chain files the operation selected (from its events).
    pub fn files(&self) -> Vec<String> {
        self.state.borrow().files.clone()
    }

    /// Blob objects and bytes the operation stored (backup), restored or
    /// wrote (recover) or checked (verify), from its last blob event;
    /// `None` if it handled no blobs.
    pub fn blobs(&self) -> Option<(u64, u64)> {
        self.state.borrow().blobs
    }

    /// Writes the `summary` JSON line on standard output (with `--json`):
    /// `fields` plus `message_type`, `operation` and `duration_s`.
    pub fn summary(&self, operation: &str, fields: Value) {
        if !self.style.json {
            return;
        }
        let mut obj = json!({
            "message_type": "summary",
            "operation": operation,
            "duration_s": self.started.elapsed().as_secs_f64(),
        });
        if let (Some(o), Value::Object(extra)) = (obj.as_object_mut(), fields) {
            o.extend(extra);
            if let Some(how) = self.state.borrow().checked_with {
                o.insert("checked_with".into(), how.into());
            }
            if let Some((base, copied, literal)) = &self.state.borrow().pack_delta {
                o.insert("kind".into(), "pack-delta".into());
                o.insert(
                    "pack_delta".into(),
                    json!({"base": base, "copied_bytes": copied, "literal_bytes": literal}),
                );
            }
        }
        print_json(&obj);
    }

    fn draw(&self, state: &mut State, p: &Progress) {
        if !self.bar_allowed || self.started.elapsed() < BAR_DELAY {
            return;
        }
        if state
            .bar
            .as_ref()
            .is_none_or(|(_, phase)| *phase != p.phase)
        {
            if let Some((old, _)) = state.bar.take() {
                old.finish_and_clear();
            }
            let bar = match p.total {
                Some(total) => {
                    ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                        .with_style(
                            ProgressStyle::with_template(
                                "{prefix:>8} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} \
                         {bytes_per_sec} ETA {eta}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                        )
                }
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                    .with_style(
                        ProgressStyle::with_template(
                            "{prefix:>8} [{elapsed_precise}] {spinner} {bytes} {bytes_per_sec}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    ),
            };
            bar.set_prefix(p.phase.name());
            state.bar = Some((bar, p.phase));
        }
        if let Some((bar, _)) = &state.bar {
            bar.set_position(p.done);
        }
    }

    fn status(&self, state: &mut State, p: &Progress) {
        if !self.style.json {
            return;
        }
        let now = Instant::now();
        if now.duration_since(*state.last_status.get_or_insert(self.started)) < STATUS_EVERY {
            return;
        }
        state.last_status = Some(now);
        let elapsed = self.started.elapsed().as_secs_f64();
        let fraction = p
            .total
            .filter(|&t| t > 0)
            .map(|t| (p.done as f64 / t as f64).min(1.0));
        let remaining = fraction
            .filter(|&f| f > 0.0)
            .map(|f| elapsed * (1.0 - f) / f);
        print_json(&json!({
            "message_type": "status",
            "phase": p.phase.name(),
            "bytes_done": p.done,
            "bytes_total": p.total,
            "percent_done": fraction.map(|f| f * 100.0),
            "seconds_elapsed": elapsed,
            "seconds_remaining": remaining,
        }));
    }
}

impl Report for Frontend {
    fn event(&self, event: &Event) {
        let blobs = match event {
            Event::FilesNeeded { files, .. } => {
                self.state.borrow_mut().files = files.clone();
                None
            }
            Event::BlobsBackedUp { stored, bytes, .. } => Some((*stored, *bytes)),
            Event::BlobsRestored { files, bytes, .. } => Some((*files, *bytes)),
            Event::BlobsSynced { copied, bytes, .. } => Some((*copied, *bytes)),
            Event::BlobsVerified { objects, bytes, .. } => Some((*objects, *bytes)),
            Event::WritingPackDelta { base, .. } => {
                self.state.borrow_mut().pack_delta = Some((base.clone(), 0, 0));
                None
            }
            Event::PackDeltaNotWorthIt { .. } => {
                self.state.borrow_mut().pack_delta = None;
                None
            }
            Event::PackDeltaWritten {
                copied, literal, ..
            } => {
                if let Some(p) = self.state.borrow_mut().pack_delta.as_mut() {
                    (p.1, p.2) = (*copied, *literal);
                }
                None
            }
            Event::CheckingWith { blake3 } => {
                self.state.borrow_mut().checked_with = Some(if *blake3 { "blake3" } else { "md5" });
                None
            }
            _ => None,
        };
        if blobs.is_some() {
            self.state.borrow_mut().blobs = blobs;
        }
        if (self.style.verbose && event.is_log_line()) || event.is_warning() {
            self.eprintln(&event.to_string());
        }
    }

    fn wants_details(&self) -> bool {
        self.style.verbose
    }

    fn progress(&self, p: &Progress) {
        let mut state = self.state.borrow_mut();
        state.done.insert(p.phase.name(), p.done);
        self.draw(&mut state, p);
        self.status(&mut state, p);
    }
}

/// One JSON object as a line on standard output.
fn print_json(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// The `exit_error` object printed on standard error with `--json`.
pub fn exit_error(code: u8, message: &str) -> String {
    json!({"message_type": "exit_error", "code": code, "message": message}).to_string()
}
