//! Pipeline files (`--config`) with `[[rules]]`, and `featurepipe check-config`: the shipped
//! default equals the built-in one, severities, and errors that name the TOML line.

use crate::support::target::Target;
use crate::support::{fixture, read_json, run, Output, Sandbox};

fn check_config(sb: &Sandbox, toml: &str) -> Output {
    let path = sb.write("pipeline.toml", toml.as_bytes());
    let mut cmd = sb.cmd_for("check-config");
    cmd.arg(path);
    run(cmd)
}

fn run_with(sb: &Sandbox, features: &str, extra: &[&str]) -> Output {
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(fixture("user_events_20251119.csv"))
        .args(["--features", features, "--execution-date", "2025-11-19"])
        .args(extra);
    run(cmd)
}

#[test]
fn the_shipped_default_pipeline_file_gives_the_built_in_outputs() {
    let sb = Sandbox::new();
    let file = fixture("pipelines/daily_user_events.toml");
    run_with(&sb, "builtin", &[]).assert_code(0);
    run_with(&sb, "fromfile", &["--config", file.to_str().unwrap()]).assert_code(0);
    let read = |rel: &str| std::fs::read(sb.path(rel)).unwrap();
    assert_eq!(
        read("builtin/v_20251119T000000/feature.csv"),
        read("fromfile/v_20251119T000000/feature.csv")
    );
    let json = |rel: &str| -> serde_json::Value { serde_json::from_slice(&read(rel)).unwrap() };
    let (a, b) = (
        json("builtin/v_20251119T000000/metadata.json"),
        json("fromfile/v_20251119T000000/metadata.json"),
    );
    for key in [
        "rows_raw",
        "rows_feature",
        "raw_null_rate",
        "raw_valid",
        "validation",
    ] {
        assert_eq!(a[key], b[key], "{key} differs");
    }
    assert_eq!(a["outputs"]["feature.csv"], b["outputs"]["feature.csv"]);
    assert_eq!(
        json("builtin/v_20251119T000000/schema.json")["columns"],
        json("fromfile/v_20251119T000000/schema.json")["columns"]
    );

    // check-config prints what the file resolves to.
    let mut cmd = sb.cmd_for("check-config");
    cmd.arg(&file);
    let out = run(cmd);
    out.assert_code(0);
    let described: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(described["name"], "daily_user_events");
    assert_eq!(described["rules"][0]["rule"], "min_rows");
    assert_eq!(described["rules"][1]["threshold"], 0.5);
    assert_eq!(described["features"]["grain"], "row");
    assert_eq!(described["features"]["columns"][0]["name"], "row_sum");
    assert_eq!(
        described["features"]["columns"][0]["row_sum"],
        serde_json::json!([
            "user_id",
            "is_premium",
            "event_value",
            "amount",
            "session_length_sec"
        ])
    );
    assert_eq!(described["source"]["delimiter"], ",");
}

#[test]
fn a_failed_warn_rule_is_recorded_and_counted_but_the_run_publishes() {
    let sb = Sandbox::new();
    let config = sb.write(
        "strict.toml",
        br#"
[[rules]]
rule = "max_rows"
value = 10
severity = "warn"

[[rules]]
rule = "required_columns"
columns = ["user_id", "amount"]
"#,
    );
    let out = run_with(&sb, "out", &["--config", config.to_str().unwrap()]);
    out.assert_code(0);
    let s = out.summary();
    assert_eq!(s["warnings"], "1");
    assert_eq!(s["valid"], "true");
    // One validate_data line names the failed rule.
    let rule_lines: Vec<_> = out
        .dp_lines()
        .into_iter()
        .filter(|l| l.iter().any(|(k, v)| k == "rule" && v == "max_rows"))
        .collect();
    assert_eq!(rule_lines.len(), 1, "{}", out.stderr);
    assert!(rule_lines[0]
        .iter()
        .any(|(k, v)| k == "severity" && v == "warn"));
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.path("out/v_20251119T000000/metadata.json")).unwrap(),
    )
    .unwrap();
    let v = meta["validation"].as_array().unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["name"], "max_rows");
    assert_eq!(v[0]["passed"], false);
    assert_eq!(v[0]["severity"], "warn");
    assert_eq!(v[0]["observed"], 300);
    assert_eq!(v[1]["passed"], true);
    assert!(sb.path("out/v_20251119T000000/_SUCCESS").exists());
}

#[test]
fn a_failed_error_rule_exits_3_and_publishes_nothing() {
    let sb = Sandbox::new();
    let config = sb.write(
        "strict.toml",
        br#"
[[rules]]
rule = "required_columns"
columns = ["user_id", "country_code"]
"#,
    );
    let out = run_with(&sb, "out", &["--config", config.to_str().unwrap()]);
    out.assert_code(3);
    assert!(
        out.error_line().contains("required_columns"),
        "{}",
        out.stderr
    );
    assert!(out.error_line().contains("country_code"), "{}", out.stderr);
    assert!(!sb.path("out/v_20251119T000000/_SUCCESS").exists());
}

#[test]
fn check_config_errors_name_the_toml_line() {
    for (toml, needle) in [
        ("name = \"x\"\ncolour = \"red\"\n", "line 2"),
        ("name = \"x\"\n\n[[rules]]\nrule = \"min_rowz\"\nvalue = 1\n", "min_rowz"),
        (
            "name = \"x\"\n\n[[rules]]\nrule = \"max_null_rate\"\nvalue = 1.5\n",
            "line 3",
        ),
        (
            "[[rules]]\nrule = \"min_rows\"\nvalue = \"ten\"\n",
            "invalid type",
        ),
        ("[[rules]]\nrule = \"min_rows\"\nvalue = 1\nsevrity = \"warn\"\n", "sevrity"),
        ("[[rules]]\nrule = \"min_rows\"\nvalue = 1\nseverity = \"fatal\"\n", "fatal"),
        ("[[rules]]\nrule = \"required_columns\"\ncolumns = []\n", "non-empty"),
        (
            "[[rules]]\nrule = \"min_rows\"\nvalue = 10\n[[rules]]\nrule = \"max_rows\"\nvalue = 5\n",
            "no data can pass",
        ),
        ("timezone = \"Mars/Base\"\n", "Mars/Base"),
        // Column rules, mostly, source format and features.
        (
            "[source]\ncolumns = [\"a\", \"b\"]\n\n[[rules]]\nrule = \"not_null\"\ncolumn = \"a\"\n\n[[rules]]\nrule = \"min\"\ncolumn = \"c\"\nvalue = 0\n",
            "line 8: column \"c\" is not among [source] columns",
        ),
        (
            "[[rules]]\nrule = \"regex\"\ncolumn = \"a\"\npattern = \"([a-z\"\n",
            "line 1: regex pattern",
        ),
        (
            "[[rules]]\nrule = \"timestamp\"\ncolumn = \"a\"\nformat = \"%Y-%Q\"\n",
            "not a valid strftime format",
        ),
        ("[[rules]]\nrule = \"min_rows\"\nvalue = 1\nmostly = 0.9\n", "unknown field `mostly`"),
        ("[[rules]]\nrule = \"not_null\"\ncolumn = \"a\"\nmostly = 1.5\n", "mostly 1.5"),
        ("[[rules]]\nrule = \"unique\"\n", "unique needs"),
        ("[source]\ndelimiter = \";;\"\n", "line 2: [source] delimiter"),
        (
            "[[features.columns]]\nname = \"x\"\ncolumn = \"a\"\n\n[[features.columns]]\nname = \"x\"\nrow_sum = [\"a\"]\n",
            "line 5: output column \"x\" is defined twice",
        ),
        (
            "[[features.columns]]\nname = \"n\"\nagg = \"count\"\n",
            "need group_by",
        ),
        (
            "[features]\ngroup_by = [\"u\"]\n\n[[features.columns]]\nname = \"s\"\ncolumn = \"a\"\n",
            "line 4: feature \"s\" needs agg",
        ),
        (
            "[features]\ngroup_by = [\"u\"]\n\n[[features.columns]]\nname = \"f\"\nagg = \"first\"\ncolumn = \"a\"\n",
            "by = ",
        ),
        (
            "[features]\ngroup_by = [\"u\"]\n\n[[features.columns]]\nname = \"m\"\nagg = \"median\"\ncolumn = \"a\"\n",
            "median",
        ),
        (
            "[features]\ntime_bucket = { column = \"t\", every = \"day\" }\n\n[[features.columns]]\nname = \"a\"\ncolumn = \"a\"\n",
            "time_bucket needs group_by",
        ),
        (
            "[source]\ncolumns = [\"u\"]\n\n[features]\ngroup_by = [\"u\"]\n\n[[features.columns]]\nname = \"s\"\nagg = \"sum\"\ncolumn = \"amount\"\n",
            "line 7: column \"amount\" is not among [source] columns",
        ),
        ("[source]\npath = \"raw/{dt}.csv\"\n", "{dt}"),
    ] {
        let sb = Sandbox::new();
        let out = check_config(&sb, toml);
        out.assert_code(2);
        assert!(
            out.error_line().contains(needle),
            "{toml:?}: want {needle:?} in {:?}",
            out.error_line()
        );
        assert!(out.stdout.is_empty());
    }
}

/// `rows` data rows; every `null_every`-th row has an empty amount (0: none).
fn events(rows: u32, null_every: u32) -> Vec<u8> {
    let mut raw = b"user_id,amount\n".to_vec();
    for i in 0..rows {
        let amount = if null_every > 0 && i % null_every == 0 {
            String::new()
        } else {
            format!("{i}.5")
        };
        raw.extend_from_slice(format!("{i},{amount}\n").as_bytes());
    }
    raw
}

#[test]
fn history_rules_and_drift_over_successive_versions() {
    let sb = Sandbox::new();
    let config = sb.write(
        "history.toml",
        br#"
[source]
path = "raw/{ds_nodash}.csv"

[output]
prefix = "out"

[[rules]]
rule = "rows_vs_history"
versions = 2
max_change = 0.5

[[rules]]
rule = "null_rate_change"
max_change = 0.1
severity = "warn"
"#,
    );
    let day = |date: &str, body: Vec<u8>| {
        sb.write(&format!("raw/{}.csv", date.replace('-', "")), &body);
        let mut cmd = sb.cmd();
        cmd.args([
            "--config",
            config.to_str().unwrap(),
            "--execution-date",
            date,
        ]);
        run(cmd)
    };
    let meta = |v: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(sb.path(&format!("out/{v}/metadata.json"))).unwrap())
            .unwrap()
    };

    // Day 1: no history; both rules pass, drift has nothing to compare with.
    day("2025-11-17", events(1000, 0)).assert_code(0);
    let m1 = meta("v_20251117T000000");
    assert_eq!(m1["drift"]["previous_version"], serde_json::Value::Null);
    assert_eq!(m1["validation"][0]["observed"]["history"], 0);

    // Day 2: 1200 rows (+20% of 1000), null rate up by 0.25 (every 2nd amount empty).
    let out = day("2025-11-18", events(1200, 2));
    out.assert_code(0);
    assert_eq!(out.summary()["warnings"], "1");
    let m2 = meta("v_20251118T000000");
    assert_eq!(m2["drift"]["previous_version"], "v_20251117T000000");
    assert_eq!(m2["drift"]["rows"]["change"], 200.0);
    assert_eq!(m2["drift"]["rows"]["relative"], 0.2);
    assert_eq!(m2["drift"]["null_rate"]["previous"], 0.0);
    assert_eq!(m2["validation"][0]["passed"], true);
    assert_eq!(m2["validation"][0]["observed"]["mean"], 1000.0);
    assert_eq!(m2["validation"][1]["name"], "null_rate_change");
    assert_eq!(m2["validation"][1]["passed"], false);
    assert_eq!(m2["validation"][1]["severity"], "warn");

    // Day 3: 300 rows against a mean of 1100: -73%, an error: exit 3, nothing published.
    let out = day("2025-11-19", events(300, 2));
    out.assert_code(3);
    assert!(
        out.error_line().contains("rows_vs_history"),
        "{}",
        out.stderr
    );
    assert!(!sb.path("out/v_20251119T000000/_SUCCESS").exists());

    // A backfill of an older date compares with versions older than itself only.
    let out = day("2025-11-16", events(5000, 0));
    out.assert_code(0);
    assert_eq!(
        meta("v_20251116T000000")["drift"]["previous_version"],
        serde_json::Value::Null
    );
}

#[test]
fn the_shipped_example_files_run_on_the_fixture_on_both_backends() {
    let fixture_csv = std::fs::read(fixture("user_events_20251119.csv")).unwrap();
    let mut outputs: Vec<Vec<Vec<u8>>> = Vec::new();
    for target in Target::both() {
        let raw = target.raw("user_events_20251119.csv", &fixture_csv);
        let mut per_target = Vec::new();
        for (file, warnings, rows) in [
            // 10 of 300 events have no country: the warn rule on it fails.
            ("strict_daily_user_events.toml", "1", 300),
            // One row per user (and day): 119 users, "" among them.
            ("daily_user_features.toml", "0", 119),
            // Every output type, CSV and Parquet.
            ("typed_user_events.toml", "0", 300),
        ] {
            let config = fixture(&format!("pipelines/{file}"));
            let out = target.run(
                &raw,
                "2025-11-19",
                &["--config", config.to_str().unwrap(), "--force"],
            );
            out.assert_code(0);
            assert_eq!(
                out.summary()["warnings"],
                warnings,
                "{file} on {}",
                target.name()
            );
            let meta = target.json("v_20251119T000000/metadata.json");
            assert_eq!(meta["rows_feature"], rows, "{file} on {}", target.name());
            assert_eq!(meta["rows_raw"], 300);
            per_target.push(target.read("v_20251119T000000/feature.csv").unwrap());
        }
        outputs.push(per_target);
    }
    assert_eq!(
        outputs[0], outputs[1],
        "local and S3 runs wrote different features"
    );
}

#[test]
fn check_config_types_every_column_as_the_run_s_schema_json_does() {
    // The time bucket is a timestamp key column: check-config once called every key a string.
    let sb = Sandbox::new();
    for file in [
        "daily_user_features.toml",
        "strict_daily_user_events.toml",
        "typed_user_events.toml",
    ] {
        let config = fixture(&format!("pipelines/{file}"));
        let mut cmd = sb.cmd_for("check-config");
        cmd.arg(&config);
        let out = run(cmd);
        out.assert_code(0);
        let described: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let described: Vec<(String, String)> = described["features"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let field = |k: &str| c[k].as_str().unwrap().to_string();
                (field("name"), field("type"))
            })
            .collect();

        let prefix = file.trim_end_matches(".toml");
        run_with(&sb, prefix, &["--config", config.to_str().unwrap()]).assert_code(0);
        let schema = read_json(&sb.path(&format!("{prefix}/v_20251119T000000/schema.json")));
        let written: Vec<(String, String)> = schema["columns"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, ty)| (name.clone(), ty.as_str().unwrap().to_string()))
            .collect();
        assert_eq!(described, written, "{file}");
    }
}
