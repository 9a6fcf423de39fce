//! Prometheus metrics, checked by the real consumers: node_exporter's textfile collector,
//! the Pushgateway, and `promtool check metrics`.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::services::{free_port, require, value, Service};
use crate::support::{fixture, run, Output, Sandbox};

const PIPELINE: &str = "pipeline=\"daily_user_events\"";

/// `featurepipe run` of `raw` for `date` into `out/`, with `extra` flags.
fn run_raw(sb: &Sandbox, raw: &Path, date: &str, extra: &[&str]) -> Output {
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(raw)
        .args(["--features", "out", "--execution-date", date])
        .args(extra);
    run(cmd)
}

fn good() -> std::path::PathBuf {
    fixture("user_events_20251119.csv")
}

fn invalid() -> std::path::PathBuf {
    fixture("invalid/high_null_rate.csv")
}

fn promtool_check(text: &str) {
    let Some(promtool) = require("promtool", "prometheus") else {
        return;
    };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn node_exporter_reads_the_textfile_and_a_failed_run_keeps_the_last_success() {
    let Some(node_exporter) = require("prometheus-node-exporter", "prometheus-node-exporter")
    else {
        return;
    };
    let sb = Sandbox::new();
    let dir = sb.path("textfile");
    std::fs::create_dir_all(&dir).unwrap();
    let flag = ["--metrics-textfile", dir.to_str().unwrap()];
    let before = now();
    run_raw(&sb, &good(), "2025-11-19", &flag).assert_code(0);
    let file = dir.join("featurepipe_daily_user_events.prom");
    let text = std::fs::read_to_string(&file).unwrap();
    promtool_check(&text);

    let port = free_port();
    let node = Service::start(
        &node_exporter,
        &[
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--collector.disable-defaults".into(),
            "--collector.textfile".into(),
            format!("--collector.textfile.directory={}", dir.display()),
        ],
        port,
        "/metrics",
        sb.dir.path(),
    );
    let scraped = node.get("/metrics");
    assert_eq!(
        value(&scraped, "node_textfile_scrape_error", &[]),
        0.0,
        "{scraped}"
    );
    let success = value(
        &scraped,
        "featurepipe_last_success_timestamp_seconds",
        &[PIPELINE],
    );
    assert!(
        success >= before.floor() && success <= now() + 1.0,
        "{success}"
    );
    assert_eq!(
        value(&scraped, "featurepipe_last_exit_code", &[PIPELINE]),
        0.0
    );
    assert_eq!(value(&scraped, "featurepipe_raw_rows", &[PIPELINE]), 300.0);
    assert_eq!(
        value(&scraped, "featurepipe_feature_rows", &[PIPELINE]),
        300.0
    );
    let null_ratio = value(&scraped, "featurepipe_raw_null_ratio", &[PIPELINE]);
    assert!((null_ratio - 71.0 / 3000.0).abs() < 1e-12, "{null_ratio}");
    let raw_size = std::fs::metadata(good()).unwrap().len() as f64;
    assert_eq!(
        value(&scraped, "featurepipe_read_bytes", &[PIPELINE]),
        raw_size
    );
    let version = sb.path("out/v_20251119T000000");
    let written: u64 = std::fs::read_dir(&version)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(
        value(&scraped, "featurepipe_written_bytes", &[PIPELINE]),
        written as f64
    );
    // 2025-11-19 00:00 in Seoul.
    assert_eq!(
        value(
            &scraped,
            "featurepipe_published_execution_timestamp_seconds",
            &[PIPELINE]
        ),
        1_763_478_000.0
    );
    for stage in [
        "extract_raw_data",
        "validate_data",
        "build_features",
        "store_features",
    ] {
        let label = format!("stage=\"{stage}\"");
        let secs = value(
            &scraped,
            "featurepipe_stage_duration_seconds",
            &[PIPELINE, &label],
        );
        assert!((0.0..60.0).contains(&secs), "{stage}: {secs}");
    }
    let status = |s: &str| {
        let label = format!("status=\"{s}\"");
        value(&scraped, "featurepipe_last_run_status", &[PIPELINE, &label])
    };
    assert_eq!((status("success"), status("failed")), (1.0, 0.0));

    // Invalid data: exit 3, unchanged by the metrics; the last success survives.
    std::thread::sleep(Duration::from_millis(20));
    run_raw(&sb, &invalid(), "2025-11-21", &flag).assert_code(3);
    let text = std::fs::read_to_string(&file).unwrap();
    promtool_check(&text);
    let scraped = node.get("/metrics");
    assert_eq!(
        value(&scraped, "node_textfile_scrape_error", &[]),
        0.0,
        "{scraped}"
    );
    assert_eq!(
        value(
            &scraped,
            "featurepipe_last_success_timestamp_seconds",
            &[PIPELINE]
        ),
        success
    );
    let last_run = value(
        &scraped,
        "featurepipe_last_run_timestamp_seconds",
        &[PIPELINE],
    );
    assert!(last_run > success, "{last_run} after {success}");
    assert_eq!(
        value(&scraped, "featurepipe_last_exit_code", &[PIPELINE]),
        3.0
    );
    let status = |s: &str| {
        let label = format!("status=\"{s}\"");
        value(&scraped, "featurepipe_last_run_status", &[PIPELINE, &label])
    };
    assert_eq!((status("success"), status("failed")), (0.0, 1.0));
    // The failed run counted its rows and checked its rules: those are its own.
    assert_eq!(value(&scraped, "featurepipe_raw_rows", &[PIPELINE]), 5.0);
    assert_eq!(
        value(
            &scraped,
            "featurepipe_failed_rules",
            &[PIPELINE, "severity=\"error\""]
        ),
        1.0
    );
    // It published nothing: the published version's date stays.
    assert_eq!(
        value(
            &scraped,
            "featurepipe_published_execution_timestamp_seconds",
            &[PIPELINE]
        ),
        1_763_478_000.0
    );
    // No temporary file is left for node_exporter to trip over.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["featurepipe_daily_user_events.prom"]);
}

#[test]
fn the_pushgateway_keeps_the_last_success_across_a_failed_run() {
    let Some(pushgateway) = require("prometheus-pushgateway", "prometheus-pushgateway") else {
        return;
    };
    let sb = Sandbox::new();
    let port = free_port();
    let pg = Service::start(
        &pushgateway,
        &[format!("--web.listen-address=127.0.0.1:{port}")],
        port,
        "/-/ready",
        sb.dir.path(),
    );
    let flag = ["--metrics-pushgateway", &pg.url()];
    run_raw(&sb, &good(), "2025-11-19", &flag).assert_code(0);
    let scraped = pg.get("/metrics");
    let group = [PIPELINE, "job=\"featurepipe\""];
    let success = value(
        &scraped,
        "featurepipe_last_success_timestamp_seconds",
        &group,
    );
    assert_eq!(value(&scraped, "featurepipe_raw_rows", &group), 300.0);

    let out = run_raw(&sb, Path::new("/nonexistent/raw.csv"), "2025-11-20", &flag);
    out.assert_code(4);
    assert!(!out.stderr.contains("WARN"), "{}", out.stderr);
    let scraped = pg.get("/metrics");
    assert_eq!(
        value(
            &scraped,
            "featurepipe_last_success_timestamp_seconds",
            &group
        ),
        success,
        "a POST of the failed run must not erase the last success"
    );
    assert_eq!(value(&scraped, "featurepipe_last_exit_code", &group), 4.0);
    // It failed before counting: the rows are the last run's that counted them.
    assert_eq!(value(&scraped, "featurepipe_raw_rows", &group), 300.0);
    // Its stage family replaced the earlier run's whole family: only the step it ran.
    let stages = crate::support::services::samples(&scraped, "featurepipe_stage_duration_seconds");
    assert_eq!(stages.len(), 1, "{stages:?}");
    assert!(stages[0].0.contains("stage=\"extract_raw_data\""));
    // The Pushgateway saw no failed push.
    assert_eq!(
        value(&scraped, "push_failure_time_seconds", &group),
        0.0,
        "{scraped}"
    );
}

/// A server that accepts connections and never answers.
fn silent_server() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

#[test]
fn an_unreachable_pushgateway_or_textfile_is_a_warning_and_keeps_the_exit_code() {
    let sb = Sandbox::new();
    let (_silent, silent_url) = silent_server();
    let refused = format!("http://127.0.0.1:{}", free_port());
    for (raw, date, code) in [(good(), "2025-11-19", 0), (invalid(), "2025-11-21", 3)] {
        for url in [&silent_url, &refused] {
            let started = Instant::now();
            let out = run_raw(
                &sb,
                &raw,
                date,
                &[
                    "--metrics-pushgateway",
                    url,
                    "--observe-timeout",
                    "1",
                    "--metrics-textfile",
                    "/nonexistent/textfile-dir",
                ],
            );
            out.assert_code(code);
            assert!(started.elapsed() < Duration::from_secs(30), "not bounded");
            let warnings: Vec<&str> = out
                .stderr
                .lines()
                .filter(|l| l.contains(" WARN "))
                .collect();
            assert!(
                warnings
                    .iter()
                    .any(|l| l.contains("Pushgateway") && l.contains(url.as_str())),
                "{}",
                out.stderr
            );
            assert!(
                warnings
                    .iter()
                    .any(|l| l.contains("/nonexistent/textfile-dir")),
                "{}",
                out.stderr
            );
            assert_eq!(out.result()["exit_code"], code);
        }
    }
}
