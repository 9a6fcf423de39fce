//! `featurepipe runs` on both backends: known counts and percentiles over records spanning
//! three days, by day and by week, `--since`, CSV; and what real runs leave for it (a
//! record with rule counts; a skip counted, not recorded).

use serde_json::{json, Value};

use crate::support::{fixture, Target};
use crate::version_commands::{toolkit, toolkit_json};

/// A run record as `featurepipe run` writes it (the fields `runs` reads).
fn record(t: &Target, version: &str, run_id: &str, started_at: &str, body: Value) {
    let mut doc = json!({ "run_id": run_id, "started_at": started_at, "feature_version": version });
    if let (Some(d), Some(b)) = (doc.as_object_mut(), body.as_object()) {
        d.extend(b.clone());
    }
    t.write(
        &format!("_runs/{version}/{run_id}.json"),
        serde_json::to_vec_pretty(&doc).unwrap().as_slice(),
    );
}

fn ok(ms: u64, rows: u64) -> Value {
    json!({"status": "success", "exit_code": 0, "duration_ms": ms, "rows": rows,
           "rules": {"checked": 3, "passed": 3, "warn_failed": 0, "error_failed": 0}})
}

fn failed(ms: u64, kind: &str, rules: Option<[u64; 4]>) -> Value {
    json!({"status": "failed", "exit_code": 5, "duration_ms": ms, "error_kind": kind, "rows": null,
           "rules": rules.map(|[c, p, w, e]| json!({"checked": c, "passed": p, "warn_failed": w, "error_failed": e}))})
}

/// Eleven records over 2025-11-17 (a Monday) .. 11-19 in Seoul, and seven counted skips.
fn three_days(t: &Target) {
    let v17 = "v_20251117T000000";
    let v18 = "v_20251118T000000";
    let v19 = "v_20251119T000000";
    // 11-17: three successes and a storage failure.
    record(
        t,
        v17,
        "20251116T160000Z-00000001",
        "2025-11-17T01:00:00+09:00",
        ok(1000, 100),
    );
    record(
        t,
        v17,
        "20251116T170000Z-00000002",
        "2025-11-17T02:00:00+09:00",
        ok(3000, 100),
    );
    record(
        t,
        v17,
        "20251116T180000Z-00000003",
        "2025-11-17T03:00:00+09:00",
        ok(2000, 100),
    );
    record(
        t,
        v17,
        "20251116T190000Z-00000004",
        "2025-11-17T04:00:00+09:00",
        failed(4000, "storage", None),
    );
    // 11-18: 23:30 UTC on the 17th is already the 18th in Seoul.
    record(
        t,
        v18,
        "20251117T153000Z-00000005",
        "2025-11-17T15:30:00Z",
        ok(500, 200),
    );
    record(
        t,
        v18,
        "20251117T160000Z-00000006",
        "2025-11-18T01:00:00+09:00",
        failed(700, "rules_failed", Some([3, 2, 0, 1])),
    );
    record(
        t,
        v18,
        "20251117T170000Z-00000007",
        "2025-11-18T02:00:00+09:00",
        failed(900, "rules_failed", Some([3, 2, 0, 1])),
    );
    record(
        t,
        v18,
        "20251117T180000Z-00000008",
        "2025-11-18T03:00:00+09:00",
        ok(1500, 200),
    );
    record(
        t,
        v18,
        "20251117T190000Z-00000009",
        "2025-11-18T04:00:00+09:00",
        failed(60, "busy", None),
    );
    // 11-19: one success with a failed warn rule.
    let mut warned = ok(10_000, 300);
    warned["rules"] = json!({"checked": 3, "passed": 2, "warn_failed": 1, "error_failed": 0});
    record(
        t,
        v19,
        "20251118T160000Z-00000010",
        "2025-11-19T01:00:00+09:00",
        warned,
    );
    // A skip counter: 5 retries of the complete 11-19 on the 19th, 2 on the 18th.
    t.write(
        &format!("_runs/{v19}/_skips/000000000007.json"),
        serde_json::to_vec(&json!({
            "feature_version": v19, "skips": 7,
            "by_day": {"2025-11-18": {"raw_missing": 2}, "2025-11-19": {"version_complete": 5}},
            "last": null
        }))
        .unwrap()
        .as_slice(),
    );
    // Not a run record: ignored with a warning, never counted.
    t.write(&format!("_runs/{v19}/junk.json"), b"{\"no\": \"status\"}");
}

#[test]
fn runs_per_day_and_week_have_known_counts_and_percentiles() {
    for t in Target::both() {
        three_days(&t);
        let report = toolkit_json(&t, &["runs", "--output", "json"]);
        let days = report["periods"].as_array().unwrap();
        let periods: Vec<&str> = days.iter().map(|d| d["period"].as_str().unwrap()).collect();
        assert_eq!(
            periods,
            ["2025-11-17", "2025-11-18", "2025-11-19"],
            "{}",
            t.name()
        );

        let d17 = &days[0];
        assert_eq!(d17["runs"], 4);
        assert_eq!(
            (d17["successes"].as_u64(), d17["failures"].as_u64()),
            (Some(3), Some(1))
        );
        assert_eq!(d17["skips"], 0);
        assert_eq!(d17["success_rate"], 0.75);
        assert_eq!(d17["failures_by_kind"], json!({"storage": 1}));
        // Durations 1000, 2000, 3000, 4000: nearest rank p50 = 2000, p95 = 4000.
        assert_eq!(d17["p50_duration_ms"], 2000);
        assert_eq!(d17["p95_duration_ms"], 4000);
        assert_eq!(d17["rows"], 300);
        assert_eq!(d17["rules_checked"], 9);
        assert_eq!(d17["rule_pass_rate"], 1.0);

        let d18 = &days[1];
        assert_eq!(d18["runs"], 7, "5 records and 2 counted skips");
        assert_eq!(
            (d18["successes"].as_u64(), d18["failures"].as_u64()),
            (Some(2), Some(3))
        );
        assert_eq!(d18["skips"], 2);
        assert_eq!(d18["skips_by_reason"], json!({"raw_missing": 2}));
        assert_eq!(d18["success_rate"], 0.4);
        assert_eq!(
            d18["failures_by_kind"],
            json!({"busy": 1, "rules_failed": 2})
        );
        // 60, 500, 700, 900, 1500: p50 = 700, p95 = 1500.
        assert_eq!(
            (
                d18["p50_duration_ms"].as_u64(),
                d18["p95_duration_ms"].as_u64()
            ),
            (Some(700), Some(1500))
        );
        assert_eq!(d18["rows"], 400);
        assert_eq!(
            (
                d18["rules_checked"].as_u64(),
                d18["rules_passed"].as_u64(),
                d18["rules_error_failed"].as_u64()
            ),
            (Some(12), Some(10), Some(2))
        );

        let d19 = &days[2];
        assert_eq!(
            (d19["runs"].as_u64(), d19["skips"].as_u64()),
            (Some(6), Some(5))
        );
        assert_eq!(d19["success_rate"], 1.0);
        assert_eq!(d19["rules_warn_failed"], 1);
        assert_eq!(d19["p95_duration_ms"], 10_000);

        // One ISO week (Monday 11-17): everything together.
        let week = toolkit_json(&t, &["runs", "--by", "week", "--output", "json"]);
        let w = &week["periods"][0];
        assert_eq!(week["periods"].as_array().unwrap().len(), 1);
        assert_eq!(w["period"], "2025-11-17");
        assert_eq!(
            (
                w["runs"].as_u64(),
                w["successes"].as_u64(),
                w["failures"].as_u64(),
                w["skips"].as_u64()
            ),
            (Some(17), Some(6), Some(4), Some(7))
        );
        // 60 500 700 900 1000 1500 2000 3000 4000 10000: p50 = 1000 (5th), p95 = 10000.
        assert_eq!(
            (w["p50_duration_ms"].as_u64(), w["p95_duration_ms"].as_u64()),
            (Some(1000), Some(10_000))
        );

        // --since a day: the 17th's records are not even read; the 18th's skips count.
        let since = toolkit_json(&t, &["runs", "--since", "2025-11-18", "--output", "json"]);
        let periods: Vec<&str> = since["periods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["period"].as_str().unwrap())
            .collect();
        assert_eq!(periods, ["2025-11-18", "2025-11-19"]);

        // CSV: the same figures, every column every time.
        let csv = toolkit(&t, &["runs", "--output", "csv"]);
        csv.assert_code(0);
        let lines: Vec<&str> = csv.stdout.lines().collect();
        assert_eq!(lines.len(), 4);
        let header: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(
            &header[..4],
            ["period_start", "period", "runs", "successes"]
        );
        assert!(
            header.contains(&"failed_rules_failed")
                && header.ends_with(&["failed_internal", "failed_other"])
        );
        let row18: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(row18.len(), header.len());
        let col = |name: &str| row18[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(
            (col("period_start"), col("runs"), col("failures")),
            ("2025-11-18", "7", "3")
        );
        assert_eq!(
            (col("success_rate"), col("p50_duration_ms")),
            ("0.4000", "700")
        );
        assert_eq!(
            (
                col("failed_rules_failed"),
                col("failed_busy"),
                col("failed_storage")
            ),
            ("2", "1", "0")
        );

        let table = toolkit(&t, &["runs"]);
        table.assert_code(0);
        assert!(
            table
                .stdout
                .contains("17 runs: 6 succeeded, 4 failed, 7 skipped"),
            "{}",
            table.stdout
        );
        toolkit(&t, &["runs", "--since", "yesterday"])
            .assert_code(2)
            .assert_error_mentions("--since");
    }
}

#[test]
fn a_run_records_its_rules_and_a_skip_is_counted_not_recorded() {
    for t in Target::both() {
        let raw = t.raw(
            "events.csv",
            &std::fs::read(fixture("user_events_20251119.csv")).unwrap(),
        );
        let first = t.run(&raw, "2025-11-19", &[]);
        first.assert_code(0);
        let run_id = first.summary()["run_id"].clone();
        let record = t.json(&format!("_runs/v_20251119T000000/{run_id}.json"));
        assert_eq!(
            record["rules"],
            json!({"checked": 2, "passed": 2, "warn_failed": 0, "error_failed": 0})
        );

        for generation in 1..=3 {
            let again = t.run(&raw, "2025-11-19", &[]);
            again.assert_code(0);
            let summary = again.summary();
            assert_eq!(summary["reason"], "version_complete");
            let counter = format!("_runs/v_20251119T000000/_skips/{generation:012}.json");
            assert!(
                summary["run_record"].ends_with(&counter),
                "{}",
                summary["run_record"]
            );
        }
        // One record, one counter generation holding three skips.
        let keys = t.list("_runs/v_20251119T000000");
        assert_eq!(
            keys,
            [
                format!("_runs/v_20251119T000000/{run_id}.json"),
                "_runs/v_20251119T000000/_skips/000000000003.json".to_string()
            ],
            "{}",
            t.name()
        );
        let counter = t.json("_runs/v_20251119T000000/_skips/000000000003.json");
        assert_eq!(counter["skips"], 3);
        let day = chrono::Utc::now()
            .with_timezone(&chrono_tz::Asia::Seoul)
            .format("%Y-%m-%d")
            .to_string();
        assert_eq!(counter["by_day"][&day]["version_complete"], 3, "{counter}");
        assert_eq!(counter["last"]["reason"], "version_complete");

        let today = toolkit_json(&t, &["runs", "--since", "1d", "--output", "json"]);
        let p = &today["periods"][0];
        assert_eq!(
            (
                p["runs"].as_u64(),
                p["successes"].as_u64(),
                p["skips"].as_u64()
            ),
            (Some(4), Some(1), Some(3))
        );
        assert_eq!(p["rule_pass_rate"], 1.0);
        // `backfill --reprocess failed` reads the records, not the counter.
        let reprocess = t.backfill(
            "events.csv",
            &[
                "--dates",
                "2025-11-19",
                "--reprocess",
                "failed",
                "--output",
                "json",
            ],
        );
        reprocess.assert_code(0);
        assert!(
            !reprocess.stderr.contains("unreadable run record"),
            "{}",
            reprocess.stderr
        );
    }
}
