//! `--metrics-file` and `-V --max-age`: the metrics file is read back with
//! the Prometheus text-format parser of `prometheus_client` (in the test
//! venv) after successes and failures; the freshness check is run on both
//! sides of its limit with the clock pinned (`REPOZO_TEST_NOW`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::{Site, ours, py, run, stderr};

/// Samples of a metrics file as `prometheus_client` parses it:
/// metric name → (labels, value), one entry per sample. Panics (with the
/// parser's message) if the file is not valid text format, or if a
/// metric lacks its `# HELP` or has another `# TYPE` than gauge.
fn parse(path: &Path) -> BTreeMap<String, (BTreeMap<String, String>, f64)> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1], encoding="utf-8").read()
out = {}
for family in text_string_to_metric_families(text):
    assert family.type == "gauge", (family.name, family.type)
    assert family.documentation, family.name
    for s in family.samples:
        assert s.name not in out, s.name
        out[s.name] = [s.labels, s.value]
print(json.dumps(out))
"#;
    let mut c = Command::new(py::venv_python());
    c.arg("-c").arg(SCRIPT).arg(path);
    let o = run(c);
    assert!(
        o.status.success(),
        "prometheus_client cannot parse {}: {}\n--- file ---\n{}",
        path.display(),
        stderr(&o),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(name, s)| {
            let labels = s[0]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            (name.clone(), (labels, s[1].as_f64().unwrap()))
        })
        .collect()
}

/// The value of `name` in parsed samples, asserting its labels.
fn value(
    samples: &BTreeMap<String, (BTreeMap<String, String>, f64)>,
    name: &str,
    repository: &str,
    operation: &str,
) -> f64 {
    let (labels, value) = samples
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {samples:?}"));
    assert_eq!(labels["repository"], repository, "{name}");
    assert_eq!(labels["operation"], operation, "{name}");
    assert_eq!(labels.len(), 2, "{name}: {labels:?}");
    *value
}

/// Unix seconds of a `YYYY-MM-DD-HH-MM-SS` stamp.
fn unix(stamp: &str) -> f64 {
    repozo::Stamp::parse(stamp).unwrap().to_unix() as f64
}

/// Runs `cmd`, asserting its exit code.
fn exits(cmd: Command, code: i32) -> Output {
    let o = run(cmd);
    assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
    o
}

/// The names in `dir` that look like our temporary files.
fn temporaries(dir: &Path) -> Vec<String> {
    crate::common::listing(dir)
        .into_iter()
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

const T0: &str = "2026-05-01-00-00-00";

#[test]
fn a_backup_writes_metrics_prometheus_parses_and_a_failed_one_keeps_the_last_success() {
    let site = Site::grown(5, 1);
    let prom = site.path("repozo.prom");
    let args = [
        "-B",
        "-r",
        "repo",
        "-f",
        "Data.fs",
        "--metrics-file=repozo.prom",
    ];
    exits(site.ours_at(T0, &args), 0);
    let m = parse(&prom);
    let v = |name: &str| value(&m, name, "repo", "backup");
    assert_eq!(v("repozo_last_run_timestamp_seconds"), unix(T0));
    assert_eq!(v("repozo_last_success_timestamp_seconds"), unix(T0));
    assert_eq!(v("repozo_last_run_exit_code"), 0.0);
    assert!(v("repozo_last_run_duration_seconds") >= 0.0);
    let data = site.data_files();
    let stored = std::fs::metadata(site.repo().join(&data[0])).unwrap().len();
    assert_eq!(v("repozo_last_run_written_bytes"), stored as f64);
    assert!(v("repozo_last_run_read_bytes") >= stored as f64);
    assert_eq!(v("repozo_chain_files"), 1.0);
    let size: u64 = site
        .repo_listing()
        .iter()
        .map(|n| std::fs::metadata(site.repo().join(n)).unwrap().len())
        .sum();
    assert_eq!(v("repozo_repository_size_bytes"), size as f64);
    assert_eq!(v("repozo_newest_backup_timestamp_seconds"), unix(T0));
    assert!(!m.contains_key("repozo_last_run_blob_objects"), "{m:?}");

    // An incremental a day later grows the chain.
    site.grow(2, 2);
    exits(site.ours_at("2026-05-02-00-00-00", &args), 0);
    let m = parse(&prom);
    assert_eq!(value(&m, "repozo_chain_files", "repo", "backup"), 2.0);

    // A failed backup (the Data.fs is gone) records its exit code and
    // time, and carries the last success over.
    std::fs::rename(site.data_fs(), site.path("elsewhere.fs")).unwrap();
    let t2 = "2026-05-03-00-00-00";
    exits(site.ours_at(t2, &args), 1);
    let m = parse(&prom);
    let v = |name: &str| value(&m, name, "repo", "backup");
    assert_eq!(v("repozo_last_run_exit_code"), 1.0);
    assert_eq!(v("repozo_last_run_timestamp_seconds"), unix(t2));
    assert_eq!(
        v("repozo_last_success_timestamp_seconds"),
        unix("2026-05-02-00-00-00")
    );
    assert_eq!(v("repozo_chain_files"), 2.0);
    assert!(
        temporaries(site.dir()).is_empty(),
        "{:?}",
        temporaries(site.dir())
    );
}

#[test]
fn a_verify_of_a_damaged_repository_exits_1_even_with_max_age_and_its_metrics_parse() {
    let site = Site::grown(5, 3);
    exits(site.ours_at(T0, &["-B", "-r", "repo", "-f", "Data.fs"]), 0);
    let args = [
        "-V",
        "-r",
        "repo",
        "--max-age=26h",
        "--metrics-file=verify.prom",
    ];
    exits(site.ours_at("2026-05-01-01-00-00", &args), 0);
    let m = parse(&site.path("verify.prom"));
    assert_eq!(
        value(
            &m,
            "repozo_last_success_timestamp_seconds",
            "repo",
            "verify"
        ),
        unix("2026-05-01-01-00-00")
    );
    assert!(value(&m, "repozo_last_run_read_bytes", "repo", "verify") > 0.0);

    let file = site.repo().join(&site.data_files()[0]);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let o = exits(site.ours_at("2026-05-01-02-00-00", &args), 1);
    assert!(stderr(&o).contains("has checksum"), "{}", stderr(&o));
    let m = parse(&site.path("verify.prom"));
    let v = |name: &str| value(&m, name, "repo", "verify");
    assert_eq!(v("repozo_last_run_exit_code"), 1.0);
    assert_eq!(
        v("repozo_last_success_timestamp_seconds"),
        unix("2026-05-01-01-00-00")
    );
}

#[test]
fn a_failed_run_with_no_earlier_metrics_file_has_no_last_success() {
    let site = Site::new();
    let o = exits(
        site.ours_at(T0, &["-V", "-r", "repo", "--metrics-file=v.prom"]),
        1,
    );
    assert_eq!(stderr(&o).trim_end(), "No files in repository");
    let m = parse(&site.path("v.prom"));
    assert_eq!(
        value(&m, "repozo_last_run_exit_code", "repo", "verify"),
        1.0
    );
    assert!(!m.contains_key("repozo_last_success_timestamp_seconds"));
    assert_eq!(value(&m, "repozo_chain_files", "repo", "verify"), 0.0);
    assert!(!m.contains_key("repozo_newest_backup_timestamp_seconds"));
}

#[test]
fn max_age_passes_up_to_the_limit_and_exits_13_past_it() {
    let site = Site::grown(3, 4);
    exits(site.ours_at(T0, &["-B", "-r", "repo", "-f", "Data.fs"]), 0);
    // 26 hours after T0 exactly: not older than the limit.
    let at_limit = "2026-05-02-02-00-00";
    for limit in ["--max-age=26h", "--max-age=1560m", "--max-age=93600"] {
        let o = exits(
            site.ours_at(at_limit, &["-V", "-Q", "-r", "repo", limit]),
            0,
        );
        assert_eq!(stderr(&o), "", "{limit}");
    }
    let o = exits(
        site.ours_at(
            "2026-05-02-02-00-01",
            &["-V", "-Q", "-r", "repo", "--max-age=26h"],
        ),
        13,
    );
    assert_eq!(
        stderr(&o),
        "the newest backup (2026-05-01-00-00-00) is 26h00m old (93601 s), older than \
         --max-age=26h (93600 s)\n"
    );
    // -D picks an older chain to verify; the age is still the newest's.
    exits(
        site.ours_at(
            "2026-05-02-00-00-00",
            &["-B", "-F", "-r", "repo", "-f", "Data.fs"],
        ),
        0,
    );
    exits(
        site.ours_at(
            "2026-05-02-06-00-00",
            &["-V", "-r", "repo", "-D", "2026-05-01-12", "--max-age=26h"],
        ),
        0,
    );
}

#[test]
fn an_empty_repository_is_stale_under_max_age_and_verify_alone_is_unchanged() {
    let site = Site::new();
    let o = exits(site.ours_at(T0, &["-V", "-r", "repo", "--max-age=2d"]), 13);
    assert_eq!(
        stderr(&o),
        "repository repo holds no backup, so none is within --max-age=2d\n"
    );
    let o = exits(site.ours_at(T0, &["-V", "-r", "repo"]), 1);
    assert_eq!(stderr(&o), "No files in repository\n");
    // A repository that does not exist keeps its own exit code.
    exits(
        site.ours_at(T0, &["-V", "-r", "missing", "--max-age=2d"]),
        10,
    );
}

#[test]
fn max_age_values_and_places_are_checked_as_usage_errors() {
    let site = Site::new();
    for bad in ["0", "-1", "26x", "h", "1.5h", "2d3h", ""] {
        let arg = format!("--max-age={bad}");
        let o = exits(site.ours_at(T0, &["-V", "-r", "repo", &arg]), 1);
        assert!(
            stderr(&o).ends_with(&format!("not {bad:?}\n")),
            "{arg}: {}",
            stderr(&o)
        );
    }
    let o = exits(
        site.ours_at(T0, &["-B", "-r", "repo", "-f", "x", "--max-age=1h"]),
        1,
    );
    assert!(stderr(&o).ends_with("--max-age only applies to -V/--verify\n"));
    let o = exits(
        site.ours_at(T0, &["--list", "-r", "repo", "--metrics-file=l.prom"]),
        1,
    );
    assert!(stderr(&o).contains("--metrics-file only applies to"));
    assert!(!site.path("l.prom").exists());
    // Exact names only: a prefix is not ours.
    let o = exits(site.ours_at(T0, &["-V", "-r", "repo", "--max=1h"]), 1);
    assert!(stderr(&o).ends_with("option --max not recognized\n"));
}

#[test]
fn a_usage_error_still_writes_the_metrics_file_it_names() {
    let site = Site::new();
    let o = exits(
        site.ours_at(T0, &["-B", "-r", "repo", "--metrics-file=b.prom"]),
        1,
    );
    assert!(stderr(&o).ends_with("--file is required in backup mode\n"));
    let m = parse(&site.path("b.prom"));
    assert_eq!(
        value(&m, "repozo_last_run_exit_code", "repo", "backup"),
        1.0
    );
    assert_eq!(
        value(&m, "repozo_last_run_timestamp_seconds", "repo", "backup"),
        unix(T0)
    );
}

#[test]
fn label_values_are_escaped_so_the_parser_gives_back_the_repository_as_given() {
    let site = Site::grown(2, 5);
    let repo = "we\"ird\\repo";
    std::fs::create_dir(site.path(repo)).unwrap();
    exits(
        site.ours_at(
            T0,
            &["-B", "-r", repo, "-f", "Data.fs", "--metrics-file=w.prom"],
        ),
        0,
    );
    let m = parse(&site.path("w.prom"));
    assert_eq!(value(&m, "repozo_last_run_exit_code", repo, "backup"), 0.0);
}

#[test]
fn retention_runs_and_recovers_write_their_own_operation_label() {
    let site = Site::grown(3, 6);
    exits(
        site.ours_at(T0, &["-B", "-F", "-r", "repo", "-f", "Data.fs"]),
        0,
    );
    exits(
        site.ours_at(
            "2026-05-02-00-00-00",
            &["-B", "-F", "-r", "repo", "-f", "Data.fs"],
        ),
        0,
    );
    exits(
        site.ours_at(
            "2026-05-03-00-00-00",
            &["-r", "repo", "--keep=1", "--metrics-file=k.prom"],
        ),
        0,
    );
    let m = parse(&site.path("k.prom"));
    assert_eq!(
        value(&m, "repozo_last_run_exit_code", "repo", "retention"),
        0.0
    );
    assert_eq!(
        value(
            &m,
            "repozo_newest_backup_timestamp_seconds",
            "repo",
            "retention"
        ),
        unix("2026-05-02-00-00-00")
    );
    assert_eq!(site.data_files().len(), 1);

    exits(
        site.ours_at(
            "2026-05-03-00-00-00",
            &["-R", "-r", "repo", "-o", "out.fs", "--metrics-file=r.prom"],
        ),
        0,
    );
    let m = parse(&site.path("r.prom"));
    let out = std::fs::metadata(site.path("out.fs")).unwrap().len();
    assert_eq!(
        value(&m, "repozo_last_run_written_bytes", "repo", "recover"),
        out as f64
    );
}

#[test]
fn a_blob_backup_reports_the_blobs_it_stored() {
    let site = Site::with_blobs("bushy", 7);
    exits(
        site.ours_at(
            T0,
            &[
                "-B",
                "-r",
                "repo",
                "-f",
                "Data.fs",
                "--blob-dir=blobs",
                "--metrics-file=b.prom",
            ],
        ),
        0,
    );
    let m = parse(&site.path("b.prom"));
    let objects = value(&m, "repozo_last_run_blob_objects", "repo", "backup");
    let bytes = value(&m, "repozo_last_run_blob_bytes", "repo", "backup");
    assert!(objects > 0.0 && bytes > 0.0, "{m:?}");
}

#[test]
fn the_new_options_are_in_the_help_and_the_man_page() {
    let o = run({
        let mut c = ours();
        c.arg("-h");
        c
    });
    let help = String::from_utf8(o.stdout).unwrap();
    for must in [
        "--metrics-file=file",
        "--max-age=duration",
        "13 the newest backup",
    ] {
        assert!(help.contains(must), "the help does not mention {must}");
    }
    let o = run({
        let mut c = ours();
        c.arg("--man");
        c
    });
    let man = String::from_utf8(o.stdout).unwrap();
    for must in ["\\-\\-metrics\\-file", "\\-\\-max\\-age", ".TP\n13\n"] {
        assert!(man.contains(must), "the man page does not mention {must}");
    }
}
