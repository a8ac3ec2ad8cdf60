//! What an operator sees: `--json` lines (the schema docs/operating.md documents)
//! and the progress bar (only on a terminal, only for work that lasts).

use std::process::{Command, Output};

use crate::common::{Site, ok, ours, py, run, stderr};
use serde_json::Value;

/// The JSON lines of standard output, each parsed.
fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// The one `summary` line, after any `status` lines.
fn summary(o: &Output) -> Value {
    let lines = json_lines(o);
    let (last, before) = lines.split_last().expect("a summary line");
    assert!(
        before.iter().all(|v| v["message_type"] == "status"),
        "{lines:?}"
    );
    assert_eq!(last["message_type"], "summary", "{last}");
    assert!(last["duration_s"].as_f64().is_some_and(|s| s >= 0.0));
    assert!(last["bytes_read"].is_u64() && last["bytes_written"].is_u64());
    last.clone()
}

#[test]
fn json_summaries_of_backup_recover_and_verify_follow_the_documented_schema() {
    let site = Site::grown(3, 1);
    let args = ["-B", "--json", "-f", "Data.fs", "-r", "repo"];
    let full = summary(&ok(run(site.ours_at("2030-01-01-00-00-00", &args))));
    assert_eq!(full["operation"], "backup");
    assert_eq!(full["kind"], "full");
    assert_eq!(full["files"][0], "repo/2030-01-01-00-00-00.fs");
    let dat = std::fs::read_to_string(site.path("repo/2030-01-01-00-00-00.dat")).unwrap();
    let line = format!(
        "repo/2030-01-01-00-00-00.fs {} {} {}\n",
        full["start"],
        full["end"],
        full["md5"].as_str().unwrap()
    );
    assert_eq!(dat, line, "the summary carries the new .dat line");
    assert_eq!(full["bytes_written"], full["end"]);

    site.grow(2, 2);
    let incr = summary(&ok(run(site.ours_at("2030-01-02-00-00-00", &args))));
    assert_eq!(incr["kind"], "incremental");
    assert_eq!(incr["start"], full["end"]);
    assert!(incr["end"].as_u64() > full["end"].as_u64());
    assert_eq!(incr["files"][0], "repo/2030-01-02-00-00-00.deltafs");

    let none = summary(&ok(run(site.ours_at("2030-01-03-00-00-00", &args))));
    assert_eq!(none["kind"], "none");
    assert_eq!(none["files"].as_array().map(Vec::len), Some(0));

    let rec = summary(&ok(run(site.ours_at(
        "2030-01-03-00-00-00",
        &["-R", "--json", "-r", "repo", "-o", "out.fs"],
    ))));
    assert_eq!(rec["operation"], "recover");
    assert_eq!(rec["kind"], "full");
    assert_eq!(rec["files"].as_array().map(Vec::len), Some(2));
    assert_eq!(rec["bytes_written"], incr["end"]);
    assert_eq!(
        std::fs::metadata(site.path("out.fs")).unwrap().len(),
        incr["end"].as_u64().unwrap()
    );

    let ver = summary(&ok(run(
        site.ours_at("2030-01-03-00-00-00", &["-V", "--json", "-r", "repo"])
    )));
    assert_eq!(ver["operation"], "verify");
    assert_eq!(ver["kind"], "md5");
    assert_eq!(ver["bytes_read"], incr["end"]);

    std::fs::remove_file(site.path("out.fs")).unwrap();
    let _ = std::fs::remove_file(site.path("out.fs.index"));
    let first = summary(&ok(run(site.ours_at(
        "2030-01-03-00-00-00",
        &[
            "-R",
            "--json",
            "-r",
            "repo",
            "-o",
            "out.fs",
            "-D",
            "2030-01-01-12",
            "--incremental",
        ],
    ))));
    assert_eq!(first["kind"], "full");
    let inc = summary(&ok(run(site.ours_at(
        "2030-01-03-00-00-00",
        &[
            "-R",
            "--json",
            "-r",
            "repo",
            "-o",
            "out.fs",
            "--incremental",
        ],
    ))));
    assert_eq!(inc["kind"], "incremental");
    assert_eq!(
        inc["bytes_written"].as_u64(),
        Some(incr["end"].as_u64().unwrap() - incr["start"].as_u64().unwrap())
    );
    assert!(inc["outcome"].as_str().unwrap().starts_with("appended "));
}

#[test]
fn a_failure_with_json_writes_an_exit_error_object_on_stderr() {
    let site = Site::grown(3, 1);
    let o = run(site.ours_at("2030-01-01-00-00-00", &["-V", "--json", "-r", "nonexist"]));
    assert_eq!(o.status.code(), Some(10));
    assert!(o.stdout.is_empty());
    let last = stderr(&o).lines().last().unwrap().to_string();
    let v: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["message_type"], "exit_error");
    assert_eq!(v["code"], 10);
    assert!(v["message"].as_str().unwrap().contains("does not exist"));
}

#[test]
fn json_with_recover_to_standard_output_is_a_usage_error() {
    let site = Site::grown(3, 1);
    let o = run(site.ours_at("2030-01-01-00-00-00", &["-R", "--json", "-r", "repo"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).ends_with("recover with -o/--output\n"),
        "{}",
        stderr(&o)
    );
}

/// Runs a backup paused at its start for `pause` seconds, on a terminal
/// (through `tests/py/pty_run.py`); returns everything it drew.
fn backup_on_a_terminal(extra: &[&str], pause: &str) -> String {
    let site = Site::grown(3, 1);
    let mut c = Command::new("python3");
    c.arg(py::repo_root().join("tests/py/pty_run.py"))
        .arg(pause)
        .arg(env!("CARGO_BIN_EXE_repozo"))
        .args(["-B", "-f", "Data.fs", "-r", "repo"])
        .args(extra)
        .current_dir(site.dir())
        .env("REPOZO_TEST_NOW", "2030-01-01-00-00-00")
        .env("REPOZO_FAILPOINT", "backup:locked:pause");
    let o = ok(run(c));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_progress_bar_is_drawn_on_a_terminal_for_work_that_lasts_over_a_second() {
    let drawn = backup_on_a_terminal(&[], "1.3");
    assert!(drawn.contains("    copy ["), "no bar: {drawn:?}");
    assert!(drawn.contains("B/s"), "no rate: {drawn:?}");
    // Short work draws nothing.
    let quick = backup_on_a_terminal(&[], "0");
    assert!(!quick.contains("copy ["), "a bar for short work: {quick:?}");
}

#[test]
fn no_progress_and_json_keep_the_terminal_free_of_bars() {
    for extra in [&["--no-progress"][..], &["--json"][..]] {
        let drawn = backup_on_a_terminal(extra, "1.3");
        assert!(!drawn.contains("copy ["), "{extra:?}: {drawn:?}");
    }
}

#[test]
fn json_reports_status_lines_during_work_that_lasts_over_a_second() {
    let drawn = backup_on_a_terminal(&["--json"], "1.3");
    let status: Vec<Value> = drawn
        .lines()
        .filter(|l| l.contains("\"message_type\":\"status\""))
        .map(|l| serde_json::from_str(l.trim()).unwrap())
        .collect();
    assert!(!status.is_empty(), "no status line: {drawn:?}");
    for v in &status {
        assert!(v["phase"].is_string() && v["bytes_done"].is_u64(), "{v}");
        assert!(
            v["seconds_elapsed"].as_f64().is_some_and(|s| s >= 1.0),
            "{v}"
        );
    }
    assert!(drawn.contains("\"message_type\":\"summary\""), "{drawn:?}");
}

#[test]
fn off_a_terminal_nothing_is_printed_but_what_repozo_prints() {
    let site = Site::grown(3, 1);
    let mut c = site.ours_at(
        "2030-01-01-00-00-00",
        &["-B", "-f", "Data.fs", "-r", "repo"],
    );
    c.env("REPOZO_FAILPOINT", "backup:locked:pause");
    // stdin is not a terminal either: the pause reads end of file at once.
    c.stdin(std::process::Stdio::null());
    let o = ok(run(c));
    assert_eq!(stderr(&o), "failpoint backup:locked reached\n");
    assert!(o.stdout.is_empty());
}

#[test]
fn the_bash_completion_is_valid_bash_and_completes_our_own_options() {
    let mut c = ours();
    c.arg("--completions=bash");
    let script = String::from_utf8(ok(run(c)).stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repozo.bash");
    std::fs::write(&path, &script).unwrap();
    let o = ok(run({
        let mut b = Command::new("bash");
        b.arg("-c").arg(format!(
            "set -e; source {}; COMP_WORDS=(repozo --incr); COMP_CWORD=1; _repozo; \
             echo \"${{COMPREPLY[@]}}\"",
            path.display()
        ));
        b
    }));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "--incremental\n");
    for shell in ["zsh", "fish"] {
        let mut c = ours();
        c.arg(format!("--completions={shell}"));
        let s = String::from_utf8(ok(run(c)).stdout).unwrap();
        assert!(
            s.contains("incremental") && s.contains("repository"),
            "{shell}"
        );
    }
}

#[test]
fn the_man_page_renders_with_groff_and_documents_the_options() {
    let mut c = ours();
    c.arg("--man");
    let page = ok(run(c)).stdout;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repozo.1");
    std::fs::write(&path, &page).unwrap();
    // groff is part of every man installation; fail loudly if it is not.
    let o = run({
        let mut g = Command::new("groff");
        g.args(["-man", "-Tutf8", "-ww"]).arg(&path);
        g
    });
    assert!(o.status.success(), "groff failed: {}", stderr(&o));
    assert!(stderr(&o).is_empty(), "groff warned: {}", stderr(&o));
    // Bold and underline are overstruck ("X\bX"): keep the last of each.
    let raw: Vec<char> = String::from_utf8_lossy(&o.stdout).chars().collect();
    let mut text = String::new();
    let mut i = 0;
    while i < raw.len() {
        if raw.get(i + 1) == Some(&'\u{8}') {
            i += 2;
            continue;
        }
        text.push(raw[i]);
        i += 1;
    }
    let text = text.replace(['\u{2010}', '\u{2212}'], "-");
    for opt in [
        "--incremental",
        "--keep-daily",
        "--deep",
        "--json",
        "EXIT STATUS",
    ] {
        assert!(text.contains(opt), "the man page lacks {opt}: {text}");
    }
}

/// In a build without the cargo feature `s3` (`--no-default-features`),
/// an `s3://` repository is refused by every mode, saying that this
/// build lacks it, and nothing is written to a local `s3:` directory.
/// (The default build has it: tests/it/s3/.)
#[cfg(not(feature = "s3"))]
#[test]
fn an_s3_repository_in_a_build_without_s3_support_exits_1_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Data.fs"), b"FS21").unwrap();
    for args in [
        &["-B", "-r", "s3://bucket/prefix", "-f", "Data.fs"][..],
        &["-R", "-r", "s3://bucket/prefix", "-o", "out.fs"],
        &["-V", "-r", "s3://bucket/prefix"],
        &["--list", "-r", "s3://bucket/prefix"],
    ] {
        let mut c = ours();
        c.current_dir(dir.path()).args(args);
        let o = run(c);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("without S3 support") && stderr(&o).contains("s3://bucket/prefix"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(!dir.path().join("s3:").exists(), "{args:?} wrote locally");
    }
}
