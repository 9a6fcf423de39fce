//! The `[DP]` log contract (docs/logs.md) over successful and failed runs.

use crate::support::{fixture, run, Output, Sandbox};

const STATUSES: &[&str] = &["started", "success", "failed", "skipped"];
const SUMMARY_KEYS: &[&str] = &[
    "raw_path",
    "feature_prefix",
    "feature_version",
    "rows",
    "null_rate",
    "valid",
    "stored_rows",
    "status",
    "duration_ms",
];

/// Checks every `[DP]` line of a run and returns the summary line.
fn check_lines(out: &Output) -> std::collections::BTreeMap<String, String> {
    let lines = out.dp_lines();
    assert!(!lines.is_empty(), "no [DP] lines:\n{}", out.stderr);
    let run_id = &lines[0][3].1;
    for l in &lines {
        let keys: Vec<&str> = l.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys[..4], ["pipeline", "step", "status", "run_id"], "{l:?}");
        assert!(STATUSES.contains(&l[2].1.as_str()), "{l:?}");
        assert_eq!(&l[3].1, run_id, "one run id per run");
    }
    for raw in out.stderr.lines().filter(|l| l.contains("[DP]")) {
        let ts = raw.split(' ').next().unwrap();
        let parsed =
            chrono::DateTime::parse_from_rfc3339(ts).unwrap_or_else(|e| panic!("{ts}: {e}"));
        assert_eq!(
            parsed.offset().local_minus_utc(),
            9 * 3600,
            "{ts} in Seoul time"
        );
    }
    let summary = out.summary();
    for k in SUMMARY_KEYS {
        assert!(summary.contains_key(*k), "summarize_run lacks {k}");
    }
    if let Some(rate) = summary.get("null_rate").filter(|r| !r.is_empty()) {
        let decimals = rate.split('.').nth(1).map_or(0, str::len);
        assert_eq!(decimals, 4, "null_rate {rate} must have 4 decimals");
    }
    if summary["status"] == "failed" {
        assert!(!summary["failed_step"].is_empty() && !summary["error"].is_empty());
    }
    summary
}

fn run_with(raw: &std::path::Path, extra: &[&str]) -> Output {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(raw)
        .args(["--features", "out", "--execution-date", "2025-11-19"])
        .args(extra);
    run(cmd)
}

#[test]
fn a_successful_run_logs_every_step_and_one_summary() {
    let out = run_with(&fixture("user_events_20251119.csv"), &[]);
    out.assert_code(0);
    let s = check_lines(&out);
    assert_eq!(s["status"], "success");
    assert_eq!(s["rows"], "300");
    assert_eq!(s["null_rate"], "0.0237");
    assert_eq!(s["valid"], "true");
    assert_eq!(s["stored_rows"], "300");
    assert_eq!(s["feature_version"], "v_20251119T000000");
    assert!(s["feature_prefix"].ends_with("out/v_20251119T000000/"));
    let steps: Vec<String> = out
        .dp_lines()
        .iter()
        .filter(|l| l[2].1 == "success")
        .map(|l| l[1].1.clone())
        .collect();
    assert_eq!(
        steps,
        [
            "extract_raw_data",
            "validate_data",
            "build_features",
            "store_features",
            "summarize_run"
        ]
    );
    let validate = out
        .dp_lines()
        .into_iter()
        .find(|l| l[1].1 == "validate_data" && l[2].1 == "success")
        .unwrap();
    let v: std::collections::BTreeMap<_, _> = validate.into_iter().collect();
    assert_eq!(v["rows"], "300");
    assert_eq!(v["null_count"], "71");
    // stdout holds exactly one machine-readable line.
    assert_eq!(out.stdout.lines().count(), 1);
    assert_eq!(out.result()["run_id"], s["run_id"]);
}

#[test]
fn failed_runs_still_log_exactly_one_summary_with_the_failed_step() {
    let cases: Vec<(Output, &str)> = vec![
        (
            run_with(&fixture("invalid/high_null_rate.csv"), &[]),
            "validate_data",
        ),
        (
            run_with(&fixture("invalid/not_utf8.csv"), &[]),
            "validate_data",
        ),
        (
            run_with(std::path::Path::new("/nonexistent/raw.csv"), &[]),
            "extract_raw_data",
        ),
        (
            run_with(
                &fixture("user_events_20251119.csv"),
                &["--timezone", "Nowhere/X"],
            ),
            "configure",
        ),
    ];
    for (out, step) in cases {
        let s = check_lines(&out);
        assert_eq!(s["status"], "failed");
        assert_eq!(s["failed_step"], step, "{}", out.stderr);
        assert_eq!(s["exit_code"], out.code.to_string());
        assert_eq!(out.result()["status"], "failed");
    }
}

#[test]
fn json_log_format_carries_the_same_fields() {
    let out = run_with(
        &fixture("user_events_20251119.csv"),
        &["--log-format", "json"],
    );
    out.assert_code(0);
    let mut summaries = 0;
    for line in out.stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for k in ["ts", "level", "pipeline", "step", "status", "run_id"] {
            assert!(v.get(k).is_some(), "{k} missing in {line}");
        }
        if v["step"] == "summarize_run" {
            summaries += 1;
            for k in SUMMARY_KEYS {
                assert!(v.get(*k).is_some(), "{k} missing in {line}");
            }
            assert_eq!(v["rows"], 300);
            assert_eq!(v["null_rate"], 0.0237);
        }
    }
    assert_eq!(summaries, 1);
}

#[test]
fn values_with_spaces_quotes_and_equals_are_quoted() {
    let sb = Sandbox::new();
    let raw = sb.write(
        "my data/a \"b\"=c.csv",
        &std::fs::read(fixture("user_events_20251119.csv")).unwrap(),
    );
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(&raw)
        .args(["--features", "out", "--execution-date", "2025-11-19"]);
    let out = run(cmd);
    out.assert_code(0);
    let s = check_lines(&out);
    assert!(
        s["raw_path"].ends_with("my data/a \"b\"=c.csv"),
        "{}",
        s["raw_path"]
    );
}

#[test]
fn rejected_flags_still_log_one_failed_summary() {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.arg("--no-such-flag");
    let out = run(cmd);
    out.assert_code(2);
    let s = out.summary();
    assert_eq!(s["status"], "failed");
    assert_eq!(s["failed_step"], "configure");
    assert!(s["error"].contains("--no-such-flag"), "{}", s["error"]);
    out.assert_error_mentions("--no-such-flag");
}

#[test]
fn the_pipeline_files_time_zone_applies_to_log_time_stamps() {
    let sb = Sandbox::new();
    sb.write("p.toml", b"timezone = \"UTC\"\n");
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(fixture("user_events_20251119.csv"))
        .args([
            "--features",
            "out",
            "--config",
            "p.toml",
            "--execution-date",
            "2025-11-19",
        ]);
    let out = run(cmd);
    out.assert_code(0);
    for line in out.stderr.lines().filter(|l| l.contains("[DP]")) {
        let ts = line.split(' ').next().unwrap();
        assert!(ts.ends_with("+00:00"), "{ts} should be in UTC");
    }
}

#[test]
fn invalid_data_names_the_failed_rules() {
    let out = run_with(&fixture("invalid/high_null_rate.csv"), &[]);
    out.assert_code(3);
    let lines: Vec<std::collections::BTreeMap<_, _>> = out
        .dp_lines()
        .into_iter()
        .filter(|l| l[1].1 == "validate_data" && l[2].1 == "failed")
        .map(|l| l.into_iter().collect())
        .collect();
    // One line per failed rule, then the step's end line.
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert_eq!(lines[0]["rule"], "max_null_rate");
    assert_eq!(lines[0]["severity"], "error");
    assert_eq!(lines[0]["observed"], "0.68");
    let validate = &lines[1];
    assert_eq!(validate["failed_rules"], "max_null_rate");
    assert_eq!(validate["valid"], "false");
}
