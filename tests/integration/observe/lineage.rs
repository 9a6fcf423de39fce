//! OpenLineage events, validated by the `openlineage-python` client's own models
//! (`openlineage_check.py` beside this file, run in a test-only venv that `.ci/run`
//! creates: target/openlineage-venv, or FEATUREPIPE_TEST_OPENLINEAGE_PYTHON).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{big_csv, fixture, run, signal_mid_pass, Output, Sandbox};

const PARENT: &str =
    "airflow/featurepipe_daily.featurepipe_run/01931b0c-6f3e-7c8a-9a1b-2c3d4e5f6a7b";

/// The venv's python with `openlineage.client`, or `None` after printing why.
fn openlineage_python() -> Option<PathBuf> {
    let python = std::env::var_os("FEATUREPIPE_TEST_OPENLINEAGE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/openlineage-venv/bin/python")
        });
    let works = python.is_file()
        && std::process::Command::new(&python)
            .args(["-c", "import openlineage.client"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !works {
        crate::support::services::skipped(&format!(
            "no python with openlineage-python at {} (.ci/run creates it; or set \
             FEATUREPIPE_TEST_OPENLINEAGE_PYTHON): the events cannot be validated",
            python.display()
        ));
        return None;
    }
    Some(python)
}

/// Validates `file` when the venv is there (else says why not).
pub fn validate_if_possible(file: &Path) {
    if let Some(python) = openlineage_python() {
        validate(&python, file);
    }
}

/// Validates every event of `file` with the client's models; panics with its verdict.
fn validate(python: &Path, file: &Path) {
    let checker = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/integration/observe/openlineage_check.py");
    let out = std::process::Command::new(python)
        .arg(checker)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openlineage-python rejects an event: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let valid = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(valid, events(file).len(), "every event checked");
}

fn events(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The events of each run id, in order.
fn by_run(events: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut runs: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in events {
        runs.entry(e["run"]["runId"].as_str().unwrap().to_string())
            .or_default()
            .push(e.clone());
    }
    runs
}

fn lineage_run(sb: &Sandbox, raw: &Path, date: &str, extra: &[&str]) -> Output {
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(raw)
        .args(["--features", "out", "--execution-date", date])
        .args(["--lineage-file", "lineage.jsonl"])
        .env("OPENLINEAGE_PARENT_ID", PARENT)
        .args(extra);
    run(cmd)
}

#[test]
fn file_events_validate_and_say_what_each_run_did() {
    let Some(python) = openlineage_python() else {
        return;
    };
    let sb = Sandbox::new();
    let good = fixture("user_events_20251119.csv");
    lineage_run(&sb, &good, "2025-11-19", &[]).assert_code(0);
    lineage_run(
        &sb,
        &fixture("invalid/high_null_rate.csv"),
        "2025-11-21",
        &[],
    )
    .assert_code(3);
    lineage_run(&sb, &good, "2025-11-22", &["--timezone", "Nowhere/X"]).assert_code(2);
    // Stopped mid-pass by SIGTERM: ABORT.
    let big = sb.write("big.csv", &big_csv(60));
    let mut cmd = sb.std_cmd();
    cmd.arg("--raw")
        .arg(&big)
        .args(["--features", "out", "--execution-date", "2025-11-23"])
        .args(["--lineage-file", "lineage.jsonl"]);
    let (code, stderr) = signal_mid_pass(cmd, "TERM");
    assert_eq!(code, 143, "{stderr}");

    let file = sb.path("lineage.jsonl");
    validate(&python, &file);
    let all = events(&file);
    let runs = by_run(&all);
    assert_eq!(runs.len(), 4, "one run id per run");
    let mut ends = BTreeMap::new();
    for (id, events) in &runs {
        let types: Vec<&str> = events
            .iter()
            .map(|e| e["eventType"].as_str().unwrap())
            .collect();
        assert_eq!(types.len(), 2, "{id}: {types:?}");
        assert_eq!(types[0], "START", "{id}: {types:?}");
        assert_eq!(events[1]["job"]["namespace"], "featurepipe");
        assert_eq!(events[1]["job"]["name"], "daily_user_events");
        let nominal = events[1]["run"]["facets"]["nominalTime"]["nominalStartTime"].clone();
        ends.insert(types[1].to_string(), (events[1].clone(), nominal));
    }
    // Two runs failed: `ends` keeps one FAIL; all four kinds are counted below.
    assert_eq!(
        ends.keys().collect::<Vec<_>>(),
        ["ABORT", "COMPLETE", "FAIL"]
    );

    // The success: raw input with size, rows, ETag-or-mtime version, rules; the version
    // as output with schema, per-column nulls and output statistics; the parent run.
    let (complete, nominal) = &ends["COMPLETE"];
    assert_eq!(
        nominal, "2025-11-18T15:00:00.000Z",
        "2025-11-19 00:00 in Seoul"
    );
    let parent = &complete["run"]["facets"]["parent"];
    assert_eq!(parent["job"]["namespace"], "airflow");
    assert_eq!(parent["job"]["name"], "featurepipe_daily.featurepipe_run");
    assert_eq!(
        parent["run"]["runId"],
        "01931b0c-6f3e-7c8a-9a1b-2c3d4e5f6a7b"
    );
    let input = &complete["inputs"][0];
    assert_eq!(input["namespace"], "file");
    assert_eq!(input["name"], good.to_str().unwrap());
    let stats = &input["inputFacets"]["inputStatistics"];
    assert_eq!(stats["rowCount"], 300);
    assert_eq!(stats["size"], std::fs::metadata(&good).unwrap().len());
    assert!(input["facets"]["version"]["datasetVersion"].is_string());
    let assertions = input["inputFacets"]["dataQualityAssertions"]["assertions"]
        .as_array()
        .unwrap();
    assert!(
        assertions.iter().all(|a| a["success"] == true),
        "{assertions:?}"
    );
    assert!(assertions.iter().any(|a| a["assertion"] == "max_null_rate"));
    let output = &complete["outputs"][0];
    assert_eq!(output["namespace"], "file");
    assert!(output["name"]
        .as_str()
        .unwrap()
        .ends_with("/out/v_20251119T000000"));
    assert_eq!(output["facets"]["schema"]["fields"][0]["name"], "row_sum");
    assert_eq!(
        output["facets"]["dataQualityMetrics"]["columnMetrics"]["row_sum"]["nullCount"],
        0
    );
    let written = &output["outputFacets"]["outputStatistics"];
    assert_eq!(written["rowCount"], 300);
    assert_eq!(written["fileCount"], 4);

    // The failures: FAIL with the error; the interrupted run: ABORT.
    let fails: Vec<&Value> = runs
        .values()
        .map(|e| &e[1])
        .filter(|e| e["eventType"] == "FAIL")
        .collect();
    assert_eq!(fails.len(), 2);
    let messages: Vec<&str> = fails
        .iter()
        .map(|e| {
            e["run"]["facets"]["errorMessage"]["message"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("max_null_rate") && m.contains("exit 3")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("configure: usage") && m.contains("exit 2")),
        "{messages:?}"
    );
    let invalid = fails
        .iter()
        .find(|e| {
            e["inputs"][0]["inputFacets"]
                .get("dataQualityAssertions")
                .is_some()
        })
        .unwrap();
    let failed: Vec<&Value> = invalid["inputs"][0]["inputFacets"]["dataQualityAssertions"]
        ["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["success"] == false)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["assertion"], "max_null_rate");
    assert_eq!(failed[0]["severity"], "error");
    assert!(
        invalid["outputs"][0]["outputFacets"]
            .get("outputStatistics")
            .is_none(),
        "nothing published"
    );
    let (abort, _) = &ends["ABORT"];
    assert!(abort["run"]["facets"]["errorMessage"]["message"]
        .as_str()
        .unwrap()
        .contains("SIGTERM"));
}

/// Requests a test server saw: path, Authorization header, body.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A lineage server on 127.0.0.1 that records each request (path, Authorization, body)
/// and answers 200.
fn recording_server() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let (mut auth, mut length) = (String::new(), 0usize);
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                let (name, value) = header.split_once(": ").unwrap_or((header, ""));
                match name.to_ascii_lowercase().as_str() {
                    "authorization" => auth = value.to_string(),
                    "content-length" => length = value.parse().unwrap(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
            record
                .lock()
                .unwrap()
                .push((path, auth, String::from_utf8(body).unwrap()));
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, seen)
}

#[test]
fn http_events_go_to_the_endpoint_with_the_api_key() {
    let Some(python) = openlineage_python() else {
        return;
    };
    let (url, seen) = recording_server();
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(fixture("user_events_20251119.csv"))
        .args(["--features", "out", "--execution-date", "2025-11-19"])
        .env("OPENLINEAGE_URL", &url)
        .env("OPENLINEAGE_API_KEY", "test-lineage-key");
    let out = run(cmd);
    out.assert_code(0);
    assert!(!out.stderr.contains("WARN"), "{}", out.stderr);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "START and COMPLETE: {seen:?}");
    let file = sb.path("posted.jsonl");
    let mut lines = String::new();
    for (path, auth, body) in &seen {
        assert_eq!(path, "/api/v1/lineage");
        assert_eq!(auth, "Bearer test-lineage-key");
        lines.push_str(body);
        lines.push('\n');
    }
    std::fs::write(&file, lines).unwrap();
    validate(&python, &file);
    let types: Vec<String> = events(&file)
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, ["START", "COMPLETE"]);
}

#[test]
fn an_unreachable_lineage_server_is_a_warning_and_keeps_the_exit_code() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let sb = Sandbox::new();
    for (raw, date, code) in [
        (fixture("user_events_20251119.csv"), "2025-11-19", 0),
        (fixture("invalid/high_null_rate.csv"), "2025-11-21", 3),
    ] {
        let started = Instant::now();
        let mut cmd = sb.cmd();
        cmd.arg("--raw")
            .arg(&raw)
            .args(["--features", "out", "--execution-date", date])
            .args([
                "--observe-timeout",
                "1",
                "--lineage-file",
                "/nonexistent/dir/l.jsonl",
            ])
            .env("OPENLINEAGE_URL", &url);
        let out = run(cmd);
        out.assert_code(code);
        assert!(started.elapsed() < Duration::from_secs(30));
        let warnings: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.contains(" WARN "))
            .collect();
        assert!(
            warnings
                .iter()
                .any(|l| l.contains("OpenLineage START") && l.contains(&url)),
            "{}",
            out.stderr
        );
        assert!(
            warnings
                .iter()
                .any(|l| l.contains("/nonexistent/dir/l.jsonl")),
            "{}",
            out.stderr
        );
    }
}
