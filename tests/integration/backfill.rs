//! `featurepipe backfill` on both backends: statuses, table, exit codes, re-runs,
//! `--reprocess`, `--parallel`, `--fail-fast`, run records and the `[DP]` lines.

use std::collections::BTreeMap;

use crate::support::{fixture, run, Output, Sandbox, Target};

const RAW: &str = "events_{ds_nodash}.csv";
const WEEK: [&str; 5] = [
    "2025-11-15",
    "2025-11-16",
    "2025-11-17",
    "2025-11-18",
    "2025-11-19",
];

fn good() -> Vec<u8> {
    std::fs::read(fixture("user_events_20251119.csv")).unwrap()
}

/// A distinct valid file per date, so that mixed-up dates would show.
fn raw_for(date: &str) -> Vec<u8> {
    let mut raw = b"user_id,amount,country\n".to_vec();
    let seed: u32 = date.replace('-', "").parse().unwrap();
    for i in 0..2_000u32 {
        raw.extend_from_slice(format!("{},{}.25,KR\n", i ^ seed, (i * 7) % 1000).as_bytes());
    }
    raw
}

/// Five dates: 11-17 has no raw file, 11-18 is invalid (no rows), the rest are good.
fn five_dates(t: &Target) {
    for date in ["2025-11-15", "2025-11-16", "2025-11-19"] {
        t.raw(&format!("events_{}.csv", date.replace('-', "")), &good());
    }
    t.raw("events_20251118.csv", b"user_id,amount\n");
}

/// The JSON report's rows by date.
fn rows(out: &Output) -> BTreeMap<String, serde_json::Value> {
    let report: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("report is not JSON ({e}):\n{}", out.stdout));
    report["dates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["date"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

fn statuses(out: &Output) -> Vec<(String, String, i64)> {
    rows(out)
        .into_iter()
        .map(|(d, r)| {
            (
                d,
                r["status"].as_str().unwrap().to_string(),
                r["exit_code"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn expect(list: &[(&str, &str, i64)]) -> Vec<(String, String, i64)> {
    list.iter()
        .map(|(d, s, c)| (d.to_string(), s.to_string(), *c))
        .collect()
}

#[test]
fn a_week_with_a_missing_and_an_invalid_date_then_rerun_then_reprocess_failed() {
    for t in Target::both() {
        five_dates(&t);
        let range = ["--start", "2025-11-15", "--end", "2025-11-19"];

        // First pass, as a table: three published, one not found (4), one invalid (3).
        let first = t.backfill(RAW, &range);
        first.assert_code(3); // 3 is more severe than 4
        let table: Vec<&str> = first.stdout.lines().collect();
        assert!(
            table[0].starts_with("date") && table[0].contains("null_rate"),
            "{}",
            first.stdout
        );
        for (date, status, code) in [
            ("2025-11-15", "success", "0"),
            ("2025-11-17", "failed", "4"),
            ("2025-11-18", "failed", "3"),
        ] {
            let row = table.iter().find(|l| l.starts_with(date)).unwrap();
            let cells: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(cells[2], status, "{row}");
            assert_eq!(cells[6], code, "{row}");
        }
        assert!(first
            .stdout
            .contains("5 dates: 3 succeeded, 0 skipped, 2 failed, 0 not run; exit code 3"));
        for date in ["20251115", "20251116", "20251119"] {
            assert!(t.read(&format!("v_{date}T000000/_SUCCESS")).is_some());
        }
        assert!(t.read("v_20251118T000000/_SUCCESS").is_none());
        assert_eq!(t.json("_latest")["feature_version"], "v_20251119T000000");
        let success_before = t.read("v_20251115T000000/_SUCCESS").unwrap();

        // One summarize_run per date and one backfill_summary, every line dated.
        let lines = first.dp_lines();
        let step =
            |l: &Vec<(String, String)>| l.iter().find(|(k, _)| k == "step").map(|(_, v)| v.clone());
        assert_eq!(
            lines
                .iter()
                .filter(|l| step(l).as_deref() == Some("summarize_run"))
                .count(),
            5
        );
        let summary: BTreeMap<_, _> = lines
            .iter()
            .find(|l| step(l).as_deref() == Some("backfill_summary"))
            .expect("a backfill_summary line")
            .iter()
            .cloned()
            .collect();
        assert_eq!(summary["succeeded"], "3");
        assert_eq!(summary["failed"], "2");
        assert_eq!(summary["exit_code"], "3");
        assert_eq!(summary["execution_date"], "2025-11-15/2025-11-19");
        for l in &lines {
            assert!(
                l.iter()
                    .any(|(k, v)| k == "execution_date" && !v.is_empty()),
                "a [DP] line without execution_date: {l:?}"
            );
        }

        // The same backfill again: the three complete dates are skipped, untouched.
        let again = t.backfill(RAW, &[&range[..], &["--output", "json"]].concat());
        again.assert_code(3);
        assert_eq!(
            statuses(&again),
            expect(&[
                ("2025-11-15", "skipped", 0),
                ("2025-11-16", "skipped", 0),
                ("2025-11-17", "failed", 4),
                ("2025-11-18", "failed", 3),
                ("2025-11-19", "skipped", 0),
            ]),
            "{}",
            t.name()
        );
        assert_eq!(
            t.read("v_20251115T000000/_SUCCESS").unwrap(),
            success_before
        );

        // Fix the two dates; --reprocess failed runs exactly those two.
        t.raw("events_20251117.csv", &good());
        t.raw("events_20251118.csv", &good());
        let fixed = t.backfill(
            RAW,
            &[&range[..], &["--reprocess", "failed", "--output", "json"]].concat(),
        );
        fixed.assert_code(0);
        let by_date = rows(&fixed);
        assert_eq!(
            statuses(&fixed),
            expect(&[
                ("2025-11-15", "skipped", 0),
                ("2025-11-16", "skipped", 0),
                ("2025-11-17", "success", 0),
                ("2025-11-18", "success", 0),
                ("2025-11-19", "skipped", 0),
            ])
        );
        assert_eq!(by_date["2025-11-15"]["reason"], "nothing_to_reprocess");
        assert_eq!(
            t.read("v_20251115T000000/_SUCCESS").unwrap(),
            success_before
        );
        assert!(t.read("v_20251118T000000/_SUCCESS").is_some());

        // Every run left a record: 11-18 has three (failed, failed, success).
        let records = t.list("_runs/v_20251118T000000");
        assert_eq!(records.len(), 3, "{records:?}");
        let mut by_status: Vec<String> = records
            .iter()
            .map(|k| t.json(k)["status"].as_str().unwrap().to_string())
            .collect();
        by_status.sort();
        assert_eq!(by_status, ["failed", "failed", "success"]);
    }
}

#[test]
fn reprocess_all_rewrites_and_none_is_the_default() {
    let t = Target::local();
    t.raw("events_20251119.csv", &good());
    let one = ["--dates", "2025-11-19", "--output", "json"];
    t.backfill(RAW, &one).assert_code(0);
    let first = t.json("v_20251119T000000/_SUCCESS");
    let skipped = t.backfill(RAW, &one);
    assert_eq!(statuses(&skipped)[0].1, "skipped");
    let all = t.backfill(RAW, &[&one[..], &["--reprocess", "all"]].concat());
    all.assert_code(0);
    assert_eq!(statuses(&all)[0].1, "success");
    assert_ne!(
        t.json("v_20251119T000000/_SUCCESS")["run_id"],
        first["run_id"],
        "--reprocess all must rewrite the complete version"
    );
}

#[test]
fn parallel_backfill_gives_byte_identical_versions() {
    let serial = Target::local();
    let parallel = Target::s3();
    for t in [&serial, &parallel] {
        for date in WEEK {
            t.raw(
                &format!("events_{}.csv", date.replace('-', "")),
                &raw_for(date),
            );
        }
    }
    let range = ["--start", "2025-11-15", "--end", "2025-11-19"];
    serial
        .backfill(RAW, &[&range[..], &["--parallel", "1"]].concat())
        .assert_code(0);
    parallel
        .backfill(RAW, &[&range[..], &["--parallel", "3"]].concat())
        .assert_code(0);
    for date in WEEK {
        let v = format!("v_{}T000000", date.replace('-', ""));
        let a = serial.read(&format!("{v}/feature.csv")).unwrap();
        let b = parallel.read(&format!("{v}/feature.csv")).unwrap();
        assert!(a == b, "{v}/feature.csv differs between --parallel 1 and 3");
        assert!(parallel.read(&format!("{v}/_SUCCESS")).is_some());
        let meta = parallel.json(&format!("{v}/metadata.json"));
        assert!(meta["source_raw_path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("events_{}.csv", date.replace('-', ""))));
    }
    // Dates finishing out of order never move _latest backwards.
    assert_eq!(
        parallel.json("_latest")["feature_version"],
        "v_20251119T000000"
    );
}

#[test]
fn fail_fast_stops_starting_dates_after_the_first_failure() {
    let t = Target::local();
    t.raw("events_20251116.csv", &good());
    let out = t.backfill(
        RAW,
        &[
            "--start",
            "2025-11-15",
            "--end",
            "2025-11-17",
            "--fail-fast",
            "--output",
            "json",
        ],
    );
    out.assert_code(4);
    assert_eq!(
        statuses(&out),
        expect(&[
            ("2025-11-15", "failed", 4),
            ("2025-11-16", "not_run", -1),
            ("2025-11-17", "not_run", -1),
        ])
    );
    assert!(t.read("v_20251116T000000/_SUCCESS").is_none());
}

#[test]
fn dates_at_a_time_of_day_and_skip_if_missing_counts_as_skipped() {
    let t = Target::local();
    t.raw("events_20251119.csv", &good());
    let out = t.backfill(
        RAW,
        &[
            "--dates",
            "2025-11-19,2025-11-18",
            "--at",
            "06:30",
            "--skip-if-missing",
            "--output",
            "json",
        ],
    );
    // A date skipped on purpose (99 on its own) does not fail the backfill.
    out.assert_code(0);
    let by_date = rows(&out);
    assert_eq!(by_date["2025-11-18"]["exit_code"], 99);
    assert_eq!(by_date["2025-11-18"]["status"], "skipped");
    assert_eq!(
        by_date["2025-11-19"]["feature_version"],
        "v_20251119T063000"
    );
    assert_eq!(
        by_date["2025-11-19"]["execution_date"],
        "2025-11-19T06:30:00+09:00"
    );
}

#[test]
fn run_records_say_what_happened_with_the_airflow_context() {
    let t = Target::s3();
    t.raw("events_20251119.csv", &good());
    let mut cmd = t.cmd();
    cmd.env("AIRFLOW_CTX_DAG_ID", "featurepipe_daily")
        .env("AIRFLOW_CTX_TRY_NUMBER", "2")
        .args([
            "--raw",
            &t.raw_uri("events_{ds_nodash}.csv"),
            "--features",
            &t.features(),
            "--execution-date",
            "2025-11-19",
        ]);
    let out = run(cmd);
    out.assert_code(0);
    let run_id = out.summary()["run_id"].clone();
    let key = format!("_runs/v_20251119T000000/{run_id}.json");
    assert_eq!(t.list("_runs"), std::slice::from_ref(&key));
    assert!(out.summary()["run_record"].ends_with(&key));
    let record = t.json(&key);
    assert_eq!(record["status"], "success");
    assert_eq!(record["exit_code"], 0);
    assert_eq!(record["rows"], 300);
    assert_eq!(record["execution_date"], "2025-11-19T00:00:00+09:00");
    assert_eq!(record["tool"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(record["airflow"]["AIRFLOW_CTX_DAG_ID"], "featurepipe_daily");
    assert_eq!(record["airflow"]["AIRFLOW_CTX_TRY_NUMBER"], "2");
    assert!(record["timings_ms"]["validate_data"].is_u64());
    assert!(record["null_rate"].as_f64().unwrap() > 0.0);

    // A failed run's record names the step and the error.
    let out = t.run(&t.raw_uri("missing.csv"), "2025-11-18", &[]);
    out.assert_code(4);
    let run_id = out.summary()["run_id"].clone();
    let record = t.json(&format!("_runs/v_20251118T000000/{run_id}.json"));
    assert_eq!(record["status"], "failed");
    assert_eq!(record["exit_code"], 4);
    assert_eq!(record["failed_step"], "extract_raw_data");
    assert!(record["error"].as_str().unwrap().contains("missing.csv"));
    assert!(record["airflow"].as_object().unwrap().is_empty());

    // A dry run writes nothing, not even a record.
    let before = t.list("_runs");
    t.run(
        &t.raw_uri("events_{ds_nodash}.csv"),
        "2025-11-19",
        &["--dry-run", "--force"],
    )
    .assert_code(0);
    assert_eq!(t.list("_runs"), before);
}

#[test]
fn bad_backfill_flags_are_usage_errors_naming_the_flag() {
    for (args, needle) in [
        (
            &["--start", "2025-11-19", "--end", "2025-11-01"][..],
            "--start",
        ),
        (&["--start", "2025-11-19"][..], "--end"),
        (&["--dates", "2025-11-19,yesterday"][..], "yesterday"),
        (
            &["--start", "2025-01-01", "--end", "2225-01-01"][..],
            "split the backfill",
        ),
        (&["--dates", "2025-11-19", "--at", "25:00"][..], "--at"),
        (
            &["--dates", "2025-11-19", "--parallel", "0"][..],
            "--parallel",
        ),
        (
            &["--dates", "2025-11-19", "--reprocess", "all", "--force"][..],
            "--force",
        ),
        (&[][..], "--start"),
    ] {
        let sb = Sandbox::new();
        let mut cmd = sb.cmd_for("backfill");
        cmd.args(args);
        let out = run(cmd);
        out.assert_code(2);
        assert!(
            out.stderr.contains(needle),
            "{args:?}: stderr lacks {needle}:\n{}",
            out.stderr
        );
        assert!(!sb.path("out").exists(), "{args:?} wrote something");
    }
}

/// The table a person reads: feature rows and warnings beside the raw rows, and which of
/// its two cases a `nothing_to_reprocess` skip was, in the table and on stderr.
#[test]
fn the_table_shows_feature_rows_warnings_and_why_nothing_was_reprocessed() {
    let t = Target::local();
    let config = t.sandbox().write(
        "grouped.toml",
        b"[[rules]]\nrule = \"max_rows\"\nvalue = 10\nseverity = \"warn\"\n\n\
          [features]\ngroup_by = [\"country\"]\n\n[[features.columns]]\nname = \"events\"\n\
          agg = \"count\"\n",
    );
    let config = config.display().to_string();
    t.raw("events_20251118.csv", &raw_for("2025-11-18"));
    let out = t.backfill(RAW, &["--dates", "2025-11-18", "--config", &config]);
    out.assert_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    let cell = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(cell("rows"), "2000", "{}", out.stdout);
    assert_eq!(cell("feature_rows"), "1", "{}", out.stdout); // one country
    assert_eq!(cell("warnings"), "1", "{}", out.stdout); // max_rows, severity warn
    assert!(
        out.stdout
            .contains("1 date: 1 succeeded, 0 skipped, 0 failed, 0 not run; exit code 0"),
        "{}",
        out.stdout
    );

    // --reprocess failed: 11-18 is complete and did not fail; 11-19 was never run.
    let out = t.backfill(
        RAW,
        &[
            "--dates",
            "2025-11-18,2025-11-19",
            "--config",
            &config,
            "--reprocess",
            "failed",
        ],
    );
    out.assert_code(0);
    let note = |date: &str| {
        let line = out.stdout.lines().find(|l| l.starts_with(date)).unwrap();
        line.split_once("nothing_to_reprocess")
            .map(|(_, note)| format!("nothing_to_reprocess{note}"))
            .unwrap_or_else(|| panic!("no reason in {line:?}"))
    };
    assert_eq!(
        note("2025-11-18"),
        "nothing_to_reprocess: complete, not failed"
    );
    assert_eq!(note("2025-11-19"), "nothing_to_reprocess: never run");
    for (version, why) in [
        (
            "v_20251118T000000",
            "is complete and its last run did not fail",
        ),
        (
            "v_20251119T000000",
            "was never run (no run record, no files)",
        ),
    ] {
        assert!(
            out.stderr.lines().any(|l| l.contains(version)
                && l.contains("nothing to reprocess")
                && l.contains(why)),
            "no sentence for {version}:\n{}",
            out.stderr
        );
    }
}

#[test]
fn a_backfill_of_one_failing_date_says_1_date() {
    let t = Target::local();
    let out = t.backfill(RAW, &["--dates", "2025-11-19"]);
    out.assert_code(4);
    out.assert_error_mentions("1 of 1 date failed (most severe: exit 4)");
}
