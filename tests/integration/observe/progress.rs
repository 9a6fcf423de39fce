//! Progress: `[DP] step=progress` lines in a log, a bar on a terminal (a real pseudo
//! terminal from util-linux `script`), dates done in a backfill.

use std::collections::BTreeMap;

use crate::support::{big_csv, run, Output, Sandbox};

type Line = BTreeMap<String, String>;

fn progress_lines(out: &Output) -> Vec<Line> {
    out.dp_lines()
        .into_iter()
        .filter(|l| l[1].1 == "progress")
        .map(|l| l.into_iter().collect())
        .collect()
}

fn num(line: &Line, key: &str) -> f64 {
    line[key]
        .parse()
        .unwrap_or_else(|e| panic!("{key}={:?} is not a number ({e}): {line:?}", line[key]))
}

/// A run over a raw file of `mb` MiB with `extra` flags.
fn run_big(sb: &Sandbox, mb: usize, extra: &[&str]) -> Output {
    let raw = sb.write("raw.csv", &big_csv(mb));
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(&raw)
        .args(["--features", "out", "--execution-date", "2025-11-19"])
        .args(extra);
    run(cmd)
}

#[test]
fn a_log_gets_progress_lines_with_bytes_rows_and_percent() {
    let sb = Sandbox::new();
    // 10 ms: a few lines even where the 4 MiB pass takes well under a second.
    let out = run_big(&sb, 4, &["--progress-interval", "0.01"]);
    out.assert_code(0);
    let lines = progress_lines(&out);
    assert!(!lines.is_empty(), "no step=progress line:\n{}", out.stderr);
    let run_id = out.summary()["run_id"].clone();
    let size = std::fs::metadata(sb.path("raw.csv")).unwrap().len() as f64;
    let (mut last_bytes, mut last_rows) = (0.0, 0.0);
    for l in &lines {
        assert_eq!(l["status"], "started", "the four statuses stay: {l:?}");
        assert_eq!(l["run_id"], run_id);
        assert_eq!(l["feature_version"], "v_20251119T000000");
        let (bytes, rows, percent) = (num(l, "bytes_read"), num(l, "rows"), num(l, "percent"));
        assert_eq!(num(l, "size_bytes"), size);
        assert!(bytes <= size && bytes >= last_bytes, "{l:?}");
        assert!(rows >= last_rows, "{l:?}");
        let expected = (bytes * 100.0 / size * 10.0).round() / 10.0;
        assert!((percent - expected).abs() < 0.11, "{l:?}");
        num(l, "elapsed_ms");
        (last_bytes, last_rows) = (bytes, rows);
    }
    // Progress lines come between validate_data's start and its end.
    let steps: Vec<(String, String)> = out
        .dp_lines()
        .into_iter()
        .map(|l| (l[1].1.clone(), l[2].1.clone()))
        .collect();
    let at = |step: &str, status: &str| {
        steps
            .iter()
            .position(|(a, b)| a == step && b == status)
            .unwrap()
    };
    let first = steps.iter().position(|(s, _)| s == "progress").unwrap();
    let last = steps.iter().rposition(|(s, _)| s == "progress").unwrap();
    assert!(at("validate_data", "started") < first && last < at("validate_data", "success"));
    // Not a terminal: no bar, no carriage returns or escape sequences.
    assert!(!out.stderr.contains('\r') && !out.stderr.contains('\x1b'));
}

#[test]
fn progress_interval_0_logs_no_progress_line() {
    for (flag, env) in [(Some("0"), None), (None, Some("0"))] {
        let sb = Sandbox::new();
        let raw = sb.write("raw.csv", &big_csv(2));
        let mut cmd = sb.cmd();
        cmd.arg("--raw")
            .arg(&raw)
            .args(["--features", "out", "--execution-date", "2025-11-19"]);
        if let Some(v) = flag {
            cmd.args(["--progress-interval", v]);
        }
        if let Some(v) = env {
            cmd.env("DP_PROGRESS_INTERVAL", v);
        }
        let out = run(cmd);
        out.assert_code(0);
        assert!(progress_lines(&out).is_empty(), "{}", out.stderr);
    }
}

#[test]
fn a_progress_interval_that_is_no_number_is_a_usage_error() {
    let sb = Sandbox::new();
    let out = run_big(&sb, 1, &["--progress-interval=-1"]);
    out.assert_code(2);
    assert!(out.stderr.contains("--progress-interval"), "{}", out.stderr);
}

/// `featurepipe <args>` on a pseudo terminal (util-linux `script`), with `env`; what the
/// terminal showed. `None` (and a printed reason) when `script` is not installed.
fn on_a_terminal(sb: &Sandbox, args: &str, env: &[(&str, &str)]) -> Option<(i32, String)> {
    if which("script").is_none() {
        crate::support::services::skipped(
            "util-linux `script` is not installed, so no terminal to test the bar on",
        );
        return None;
    }
    let bin = assert_cmd::cargo::cargo_bin!("featurepipe");
    let mut cmd = std::process::Command::new("script");
    cmd.current_dir(sb.dir.path())
        .args(["-qec", &format!("{} {args}", bin.display()), "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
    for (k, _) in std::env::vars() {
        if k.starts_with("DP_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Some((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

pub fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

#[test]
fn a_terminal_gets_a_bar_instead_of_progress_lines() {
    let sb = Sandbox::new();
    sb.write("raw.csv", &big_csv(4));
    let args =
        "run --raw raw.csv --features out --execution-date 2025-11-19 --progress-interval 0.01";
    let Some((code, screen)) = on_a_terminal(&sb, args, &[]) else {
        return;
    };
    assert_eq!(code, 0, "{screen}");
    // indicatif redraws its line: carriage return, erase line, then the bar.
    assert!(screen.contains("\x1b[2K"), "no bar drawn:\n{screen}");
    let bar = screen
        .split(['\r', '\n'])
        .find(|l| l.contains(" rows (") && l.contains("ETA"))
        .unwrap_or_else(|| panic!("no bar with rows and ETA:\n{screen}"));
    assert!(bar.contains("/4.00 MiB"), "bytes of total: {bar}");
    assert!(!screen.contains("step=progress"), "{screen}");
    assert!(
        screen.contains("step=summarize_run status=success"),
        "{screen}"
    );

    // NO_COLOR asks for plain output, JSON logs for JSON only: no bar, the lines instead.
    for env in [("NO_COLOR", "1"), ("DP_LOG_FORMAT", "json")] {
        let sb = Sandbox::new();
        sb.write("raw.csv", &big_csv(4));
        let (code, screen) = on_a_terminal(&sb, args, &[env]).unwrap();
        assert_eq!(code, 0, "{screen}");
        assert!(
            !screen.contains("\x1b[2K"),
            "a bar despite {env:?}:\n{screen}"
        );
        assert!(screen.contains("progress"), "{screen}");
    }
}

#[test]
fn backfill_logs_dates_done_of_total() {
    let sb = Sandbox::new();
    for d in ["20251118", "20251119"] {
        sb.write(&format!("raw/{d}.csv"), &big_csv(2));
    }
    let mut cmd = sb.cmd_for("backfill");
    cmd.args(["--start", "2025-11-18", "--end", "2025-11-19"])
        .args(["--raw", "raw/{ds_nodash}.csv", "--features", "out"])
        .args(["--progress-interval", "0.01"]);
    let out = run(cmd);
    out.assert_code(0);
    let backfill_id = out
        .dp_lines()
        .into_iter()
        .find(|l| l[1].1 == "backfill_summary")
        .map(|l| l[3].1.clone())
        .unwrap();
    let lines = progress_lines(&out);
    let dates: Vec<&Line> = lines
        .iter()
        .filter(|l| l.contains_key("dates_done"))
        .collect();
    assert!(!dates.is_empty(), "no dates progress line:\n{}", out.stderr);
    for l in &dates {
        assert_eq!(l["run_id"], backfill_id);
        assert_eq!(l["dates"], "2");
        assert!(num(l, "dates_done") <= 2.0);
        assert_eq!(num(l, "percent"), num(l, "dates_done") * 50.0);
    }
    // Each date's pass logs its own lines, under its own run id.
    assert!(
        lines
            .iter()
            .any(|l| l.contains_key("bytes_read") && l["run_id"] != backfill_id),
        "{}",
        out.stderr
    );
}
