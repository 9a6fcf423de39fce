//! The whole story at once: node_exporter, a Pushgateway and Prometheus on 127.0.0.1, a
//! week of nightly runs with one failure, then: the metrics are there, the alert rules
//! fire and resolve in the real Prometheus (and pass their promtool unit tests), every
//! Prometheus query of the Grafana dashboard returns data, every field its Loki queries
//! use is in the week's real `[DP]` lines, and the OpenLineage events validate.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;

use crate::support::services::{encode, free_port, require, Service};
use crate::support::{big_csv, fixture, parse_logfmt, run, Sandbox};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo("deploy/grafana/featurepipe.json")).unwrap();
    serde_json::from_str(&text).expect("deploy/grafana/featurepipe.json is not valid JSON")
}

/// Every (datasource type, expression) of the dashboard's panels.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let kind = target["datasource"]["type"].as_str().unwrap().to_string();
            out.push((kind, target["expr"].as_str().unwrap().to_string()));
        }
    }
    out
}

#[test]
fn the_dashboard_is_well_formed() {
    let d = dashboard();
    assert_eq!(d["uid"], "featurepipe");
    let vars: BTreeSet<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        vars,
        BTreeSet::from(["loki", "pipeline", "prometheus", "stream"])
    );
    let mut ids = BTreeSet::new();
    let (mut prometheus, mut loki) = (0, 0);
    let variable = Regex::new(r"\$\{?(\w+)").unwrap();
    for panel in d["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate id: {title}"
        );
        for k in ["h", "w", "x", "y"] {
            assert!(panel["gridPos"][k].is_u64(), "{title}: gridPos.{k}");
        }
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(
                refs.insert(t["refId"].as_str().unwrap()),
                "{title}: refId twice"
            );
            let (kind, uid) = (
                t["datasource"]["type"].as_str().unwrap(),
                t["datasource"]["uid"].as_str().unwrap(),
            );
            match kind {
                "prometheus" => prometheus += 1,
                "loki" => loki += 1,
                other => panic!("{title}: datasource {other}"),
            }
            assert_eq!(
                uid,
                format!("${{{kind}}}"),
                "{title}: the datasource variable"
            );
            // Every variable a query uses is defined (or one of Grafana's own).
            let expr = t["expr"].as_str().unwrap();
            for var in variable.captures_iter(expr) {
                let name = &var[1];
                assert!(
                    vars.contains(name) || name.starts_with("__"),
                    "{title}: ${name} is not defined"
                );
            }
        }
    }
    assert!(
        prometheus >= 10 && loki >= 3,
        "{prometheus} Prometheus and {loki} Loki queries"
    );
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let Some(promtool) = require("promtool", "prometheus") else {
        return;
    };
    let dir = repo("deploy/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ] {
        let out = std::process::Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("SUCCESS"),
            "promtool {args:?}:\n{text}"
        );
    }
}

/// Prometheus's HTTP API: the `data` of a successful answer.
fn api(prometheus: &Service, path_and_query: &str) -> Value {
    let body = prometheus.get(path_and_query);
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["status"], "success", "{path_and_query}: {body}");
    v["data"].clone()
}

fn query(prometheus: &Service, expr: &str) -> Vec<Value> {
    api(prometheus, &format!("/api/v1/query?query={}", encode(expr)))["result"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits (at most 60 s) until `done` holds for what `/api/v1/alerts` lists.
fn wait_for_alerts(prometheus: &Service, what: &str, done: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alerts = api(prometheus, "/api/v1/alerts")["alerts"]
            .as_array()
            .unwrap()
            .clone();
        if done(&alerts) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: alerts are {alerts:#?}\n{}",
            prometheus.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn failed_alert_firing(alerts: &[Value]) -> bool {
    alerts.iter().any(|a| {
        a["labels"]["alertname"] == "FeaturepipeLastRunFailed"
            && a["labels"]["pipeline"] == "daily_user_events"
            && a["state"] == "firing"
    })
}

#[test]
fn a_week_of_nightly_runs_with_one_failure_seen_by_prometheus_grafana_and_openlineage() {
    let (Some(prometheus_bin), Some(pushgateway), Some(node_exporter)) = (
        require("prometheus", "prometheus"),
        require("prometheus-pushgateway", "prometheus-pushgateway"),
        require("prometheus-node-exporter", "prometheus-node-exporter"),
    ) else {
        return;
    };
    let sb = Sandbox::new();
    let textfile = sb.path("textfile");
    std::fs::create_dir_all(&textfile).unwrap();
    let pg_port = free_port();
    let pg = Service::start(
        &pushgateway,
        &[format!("--web.listen-address=127.0.0.1:{pg_port}")],
        pg_port,
        "/-/ready",
        sb.dir.path(),
    );
    let node_port = free_port();
    let _node = Service::start(
        &node_exporter,
        &[
            format!("--web.listen-address=127.0.0.1:{node_port}"),
            "--collector.disable-defaults".into(),
            "--collector.textfile".into(),
            format!("--collector.textfile.directory={}", textfile.display()),
        ],
        node_port,
        "/metrics",
        sb.dir.path(),
    );
    let config = sb.write(
        "prometheus.yml",
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n\
             \x20 - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{pg_port}']\n\
             \x20 - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{node_port}']\n",
            repo("deploy/prometheus/alerts.yml").display()
        )
        .as_bytes(),
    );
    let prom_port = free_port();
    let prometheus = Service::start(
        &prometheus_bin,
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", sb.path("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        prom_port,
        "/-/ready",
        sb.dir.path(),
    );

    // The week: 11-13 is big enough to log progress, 11-18 is invalid (exit 3).
    let good = std::fs::read(fixture("user_events_20251119.csv")).unwrap();
    for day in 13..=19 {
        let body = match day {
            13 => big_csv(3),
            18 => std::fs::read(fixture("invalid/high_null_rate.csv")).unwrap(),
            _ => good.clone(),
        };
        sb.write(&format!("raw/events_202511{day}.csv"), &body);
    }
    let mut stderr = String::new();
    for day in 13..=19 {
        let mut cmd = sb.cmd();
        cmd.args(["--raw", "raw/events_{ds_nodash}.csv", "--features", "out"])
            .args(["--execution-date", &format!("2025-11-{day}")])
            .args(["--metrics-pushgateway", &pg.url()])
            .arg("--metrics-textfile")
            .arg(&textfile)
            .args([
                "--lineage-file",
                "lineage.jsonl",
                "--progress-interval",
                "0.02",
            ]);
        let out = run(cmd);
        out.assert_code(if day == 18 { 3 } else { 0 });
        assert!(!out.stderr.contains(" WARN "), "{}", out.stderr);
        stderr.push_str(&out.stderr);
        if day == 18 {
            wait_for_alerts(
                &prometheus,
                "the failed run must fire FeaturepipeLastRunFailed",
                failed_alert_firing,
            );
        }
    }
    wait_for_alerts(
        &prometheus,
        "the next success must resolve FeaturepipeLastRunFailed",
        |a| !failed_alert_firing(a),
    );
    // Both ways in: the Pushgateway's job and node_exporter's.
    let jobs: BTreeSet<String> = query(&prometheus, "featurepipe_last_exit_code")
        .iter()
        .map(|s| s["metric"]["job"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        jobs,
        BTreeSet::from(["featurepipe".to_string(), "node".to_string()])
    );
    for s in query(&prometheus, "featurepipe_raw_rows") {
        assert_eq!(s["value"][1], "300", "{s}");
    }
    let nothing_firing = api(&prometheus, "/api/v1/alerts")["alerts"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        nothing_firing.iter().all(|a| a["state"] != "firing"),
        "{nothing_firing:#?}"
    );

    // Every Prometheus query of the dashboard returns data.
    let d = dashboard();
    for (kind, expr) in queries(&d) {
        if kind != "prometheus" {
            continue;
        }
        let expr = expr.replace("$pipeline", "daily_user_events");
        let result = query(&prometheus, &expr);
        assert!(!result.is_empty(), "no data for the dashboard's {expr}");
    }
    let pipelines = api(
        &prometheus,
        &format!(
            "/api/v1/label/pipeline/values?match[]={}",
            encode("featurepipe_last_run_timestamp_seconds")
        ),
    );
    assert_eq!(
        pipelines,
        serde_json::json!(["daily_user_events"]),
        "the $pipeline variable's values"
    );

    // Every field a Loki query reads is in the [DP] lines its line filters select.
    check_loki_queries(&d, &stderr);

    // The week's OpenLineage events: 7 runs, each START then COMPLETE or FAIL.
    let events: Vec<Value> = std::fs::read_to_string(sb.path("lineage.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ends: Vec<&str> = events
        .iter()
        .filter(|e| e["eventType"] != "START")
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        ends,
        ["COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    );
    assert_eq!(events.len(), 14);
    super::lineage::validate_if_possible(&sb.path("lineage.jsonl"));
}

/// The fields a LogQL query reads from `| logfmt`: label filters, `unwrap`, `by (...)`
/// and `line_format` fields; and its line filters (`|= "..."`).
fn loki_fields(expr: &str) -> (BTreeSet<String>, Vec<String>) {
    let after_logfmt = expr.split_once("| logfmt").map_or("", |(_, rest)| rest);
    let mut fields = BTreeSet::new();
    let patterns = [
        r#"\|\s*(\w+)\s*(?:=~|!~|!=|==|=|>=|<=|>|<)\s*""#,
        r"unwrap\s+(\w+)",
        r"\{\{\s*\.(\w+)\s*\}\}",
    ];
    for p in patterns {
        for c in Regex::new(p).unwrap().captures_iter(after_logfmt) {
            fields.insert(c[1].to_string());
        }
    }
    for c in Regex::new(r"by \(([^)]*)\)").unwrap().captures_iter(expr) {
        fields.extend(c[1].split(',').map(|f| f.trim().to_string()));
    }
    let filters = Regex::new(r#"\|= "([^"]*)""#)
        .unwrap()
        .captures_iter(expr)
        .map(|c| c[1].to_string())
        .collect();
    (fields, filters)
}

fn check_loki_queries(dashboard: &Value, stderr: &str) {
    let mut checked = 0;
    for (kind, expr) in queries(dashboard) {
        if kind != "loki" {
            continue;
        }
        assert!(
            expr.contains("| logfmt"),
            "text [DP] lines are logfmt: {expr}"
        );
        let (fields, filters) = loki_fields(&expr);
        let lines: Vec<Vec<(String, String)>> = stderr
            .lines()
            .filter(|l| filters.iter().all(|f| l.contains(f.as_str())))
            .filter_map(|l| {
                l.split_once("[DP] ")
                    .map(|(_, rest)| parse_logfmt(rest).unwrap())
            })
            .collect();
        assert!(
            !lines.is_empty(),
            "no [DP] line passes the line filters {filters:?} of {expr}"
        );
        for field in &fields {
            assert!(
                lines
                    .iter()
                    .any(|l| l.iter().any(|(k, v)| k == field && !v.is_empty())),
                "field {field} of {expr} is in none of the {} lines it selects",
                lines.len()
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} fields checked");
}

#[test]
fn the_loki_field_check_catches_a_misspelt_field() {
    let (fields, filters) = loki_fields(
        r#"sum by (pipeline) (max_over_time({a="b"} |= "[DP]" |= "step=summarize_run" | logfmt | status="failed" | unwrap duration_msec [1m])) | line_format "{{.eror}}""#,
    );
    assert_eq!(
        fields,
        BTreeSet::from(["duration_msec", "eror", "pipeline", "status"].map(String::from))
    );
    assert_eq!(filters, ["[DP]", "step=summarize_run"]);
    let line = "2025-11-19T00:00:00.000+09:00 INFO [DP] pipeline=p step=summarize_run status=failed run_id=r duration_ms=5 error=x\n";
    let bad = serde_json::json!({"panels": [{"targets": [{"datasource": {"type": "loki"}, "expr":
        r#"{a="b"} |= "[DP]" |= "step=summarize_run" | logfmt | unwrap duration_msec"#}]}]});
    let caught = std::panic::catch_unwind(|| check_loki_queries(&bad, line));
    assert!(caught.is_err(), "duration_msec is not a key of the line");
}
