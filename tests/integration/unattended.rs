//! Safe to run unattended: no default paths, strict booleans, a warning for a run without
//! an execution date, per-rule results and sample values wherever a run reports, the
//! delimiter hint, `featurepipe status` for freshness, JSON-only stderr, the backfill date
//! errors, and the cron wrapper that ties them together.

use serde_json::{json, Value};

use crate::support::{fixture, run, Output, Sandbox, Target};

/// Every stderr line parses as one JSON object; returns them.
fn json_lines(out: &Output) -> Vec<Value> {
    assert!(!out.stderr.is_empty(), "no stderr at all");
    out.stderr
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| panic!("stderr line is not a JSON object: {l}\n{}", out.stderr))
        })
        .collect()
}

/// A run from cron's point of view: no `DP_*`, a working directory that is not the
/// repository, the wrapper's `--skip-if-missing`.
#[test]
fn a_run_given_no_raw_path_exits_2_naming_every_place_to_give_it() {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.args(["--execution-date", "2025-11-19", "--skip-if-missing"]);
    let out = run(cmd);
    out.assert_code(2);
    for needle in [
        "--raw",
        "DP_RAW_PATH",
        "[source] path",
        "--features",
        "DP_FEATURE_PATH",
        "[output] prefix",
    ] {
        out.assert_error_mentions(needle);
    }
    assert_eq!(out.summary()["failed_step"], "configure");
    assert_eq!(out.result()["exit_code"], 2);

    // Only the prefix given: the sentence names the raw path alone.
    let mut cmd = sb.cmd();
    cmd.args(["--execution-date", "2025-11-19"])
        .env("DP_FEATURE_PATH", "out");
    let out = run(cmd);
    out.assert_code(2);
    out.assert_error_mentions("DP_RAW_PATH");
    assert!(
        !out.error_line().contains("DP_FEATURE_PATH"),
        "{}",
        out.stderr
    );

    // A pipeline file without [source] path is named as such.
    sb.write(
        "p.toml",
        b"name = \"orders\"\n\n[output]\nprefix = \"out\"\n",
    );
    let mut cmd = sb.cmd();
    cmd.args(["--config", "p.toml", "--execution-date", "2025-11-19"]);
    let out = run(cmd);
    out.assert_code(2);
    out.assert_error_mentions("p.toml sets no [source] path");

    // backfill the same.
    let mut cmd = sb.cmd_for("backfill");
    cmd.args(["--dates", "2025-11-19", "--skip-if-missing"]);
    let out = run(cmd);
    out.assert_code(2);
    out.assert_error_mentions("DP_RAW_PATH");
    assert!(!sb.path("out").exists(), "nothing may be written");
}

/// The README quick start, from a checkout: the bundled pipeline file names both paths.
#[test]
fn the_bundled_pipeline_file_runs_the_quick_start_from_a_checkout() {
    let sb = Sandbox::new();
    sb.write(
        "fixtures/user_events_20251119.csv",
        &std::fs::read(fixture("user_events_20251119.csv")).unwrap(),
    );
    sb.write(
        "fixtures/pipelines/daily_user_events.toml",
        &std::fs::read(fixture("pipelines/daily_user_events.toml")).unwrap(),
    );
    let mut cmd = sb.cmd();
    cmd.args([
        "--config",
        "fixtures/pipelines/daily_user_events.toml",
        "--execution-date",
        "2025-11-19",
    ]);
    let out = run(cmd);
    out.assert_code(0);
    assert!(sb
        .path("out/features/daily_user_events/v_20251119T000000/_SUCCESS")
        .exists());
    let mut cmd = sb.cmd_for("status");
    cmd.args(["--config", "fixtures/pipelines/daily_user_events.toml"]);
    let out = run(cmd);
    out.assert_code(0);
    assert!(out.stdout.contains("v_20251119T000000"), "{}", out.stdout);
}

#[test]
fn boolean_variables_accept_exactly_the_documented_words() {
    let raw = fixture("user_events_20251119.csv");
    let base = |sb: &Sandbox| {
        let mut cmd = sb.cmd();
        cmd.arg("--raw")
            .arg(&raw)
            .args(["--features", "out", "--execution-date", "2025-11-19"]);
        cmd
    };
    for var in ["DP_DRY_RUN", "DP_FORCE", "DP_SKIP_IF_MISSING"] {
        for bad in ["flase", "y", "2", "enabled"] {
            let sb = Sandbox::new();
            let mut cmd = base(&sb);
            cmd.env(var, bad);
            let out = run(cmd);
            out.assert_code(2);
            out.assert_error_mentions(&format!("{var}=\"{bad}\""));
            out.assert_error_mentions("true or false");
            assert!(!sb.path("out").exists(), "{var}={bad} must not run");
        }
    }
    // Any case of the eight words: a dry run writes nothing, a real one publishes.
    for (value, dry) in [
        ("YES", true),
        ("On", true),
        ("1", true),
        ("True", true),
        ("no", false),
        ("OFF", false),
        ("0", false),
        ("false", false),
        ("", false),
    ] {
        let sb = Sandbox::new();
        let mut cmd = base(&sb);
        cmd.env("DP_DRY_RUN", value);
        run(cmd).assert_code(0);
        let published = sb.path("out/v_20251119T000000/_SUCCESS").exists();
        assert_eq!(published, !dry, "DP_DRY_RUN={value:?}");
    }
    // backfill's boolean too.
    let sb = Sandbox::new();
    let mut cmd = sb.cmd_for("backfill");
    cmd.arg("--raw")
        .arg(&raw)
        .args(["--features", "out", "--dates", "2025-11-19"])
        .env("DP_BACKFILL_FAIL_FAST", "sure");
    let out = run(cmd);
    out.assert_code(2);
    out.assert_error_mentions("DP_BACKFILL_FAIL_FAST=\"sure\"");
}

#[test]
fn a_bad_value_from_a_variable_names_the_variable() {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd_for("backfill");
    cmd.args([
        "--raw",
        "a.csv",
        "--features",
        "out",
        "--dates",
        "2025-11-19",
    ])
    .env("DP_BACKFILL_REPROCESS", "sometimes");
    let out = run(cmd);
    out.assert_code(2);
    out.assert_error_mentions("sometimes");
    out.assert_error_mentions("DP_BACKFILL_REPROCESS");
}

#[test]
fn a_run_without_an_execution_date_warns_that_a_rerun_will_not_find_it() {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(fixture("user_events_20251119.csv"))
        .args(["--features", "out"]);
    let out = run(cmd);
    out.assert_code(0);
    let warning = out
        .stderr
        .lines()
        .find(|l| l.contains(" WARN ") && l.contains("no execution date"))
        .unwrap_or_else(|| panic!("no WARN line:\n{}", out.stderr));
    let version = out.result()["feature_version"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(warning.contains(&version), "{warning}");
    assert!(warning.contains("a re-run will not find it"), "{warning}");
    assert!(warning.contains("--execution-date"), "{warning}");

    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(fixture("user_events_20251119.csv"))
        .args(["--features", "out", "--execution-date", "2025-11-19"]);
    let out = run(cmd);
    out.assert_code(0);
    assert!(!out.stderr.contains(" WARN "), "{}", out.stderr);
}

/// Broken on purpose, line by line (the header is line 1).
const BROKEN: &str = "\
id,user,kind,amount
1,u1,view,10
2,u2,click,-5
3,,buy,abc
4,u4,zap,-7
5,u5,LONGKIND,3
6,u6,zap,1
";

const BROKEN_RULES: &str = r#"
[[rules]]
rule = "unique"
column = "id"

[[rules]]
rule = "allowed_values"
column = "kind"
values = ["view", "click"]

[[rules]]
rule = "min"
column = "amount"
value = 0

[[rules]]
rule = "not_null"
column = "user"
severity = "warn"

[[features.columns]]
name = "id"
column = "id"
"#;

fn long_kind() -> String {
    "k".repeat(200)
}

/// The validation array of a failed run over [`BROKEN`], wherever it was reported.
fn assert_broken_validation(validation: &Value, what: &str) {
    let rules = validation
        .as_array()
        .unwrap_or_else(|| panic!("{what}: {validation}"));
    assert_eq!(rules.len(), 4, "{what}: {validation}");
    let by_name = |name: &str| {
        rules
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{what}: no {name} in {validation}"))
    };
    let unique = by_name("unique");
    assert_eq!(unique["passed"], true);
    assert_eq!(unique["sample_values"], json!([]), "{what}");

    let allowed = by_name("allowed_values");
    assert_eq!(allowed["passed"], false);
    assert_eq!(allowed["column"], "kind");
    assert_eq!(allowed["severity"], "error");
    assert_eq!(allowed["threshold"], json!(["view", "click"]));
    assert_eq!(allowed["observed"]["failed"], 4);
    assert_eq!(allowed["failing_lines"], json!([4, 5, 6, 7]));
    // Distinct, in input order, each cut to 80 characters.
    assert_eq!(
        allowed["sample_values"],
        json!(["buy", "zap", "k".repeat(80)]),
        "{what}"
    );

    let min = by_name("min");
    assert_eq!(min["passed"], false);
    assert_eq!(min["failing_lines"], json!([3, 4, 5]));
    assert_eq!(min["sample_values"], json!(["-5", "abc", "-7"]), "{what}");

    let not_null = by_name("not_null");
    assert_eq!(not_null["passed"], false);
    assert_eq!(not_null["severity"], "warn");
    assert_eq!(not_null["failing_lines"], json!([4]));
    // Null counts have no values to show.
    assert!(not_null.get("sample_values").is_none(), "{what}");
}

#[test]
fn a_failed_run_reports_every_rule_and_sample_values_on_both_backends() {
    for t in Target::both() {
        let name = t.name();
        let raw = BROKEN.replace("LONGKIND", &long_kind());
        let raw = t.raw("broken.csv", raw.as_bytes());
        let sb = t.sandbox();
        let config = sb.write("rules.toml", BROKEN_RULES.as_bytes());
        let config = config.to_str().unwrap();

        let out = t.run(&raw, "2025-11-19", &["--config", config]);
        out.assert_code(3);
        // stdout: the JSON result.
        let result = out.result();
        assert_eq!(result["status"], "failed");
        assert_broken_validation(&result["validation"], &format!("{name} stdout"));
        // The run record.
        let records: Vec<String> = t
            .list("_runs/v_20251119T000000")
            .into_iter()
            .filter(|k| k.ends_with(".json"))
            .collect();
        assert_eq!(records.len(), 1, "{name}: {records:?}");
        let record = t.json(&records[0]);
        assert_eq!(record["run_id"], result["run_id"]);
        assert_broken_validation(&record["validation"], &format!("{name} run record"));
        // The sentence: short, the rules, the first failing line, where to look.
        let error = out.error_line();
        assert!(error.len() < 400, "{name}: {} chars: {error}", error.len());
        for needle in [
            "allowed_values on kind",
            "min on amount",
            "first failing line 3",
            records[0].as_str(),
        ] {
            assert!(error.contains(needle), "{name}: {needle:?} in {error}");
        }
        assert!(
            !error.contains('{'),
            "{name}: no JSON in the sentence: {error}"
        );
        assert!(
            !error.contains("not_null"),
            "{name}: warn rules do not fail"
        );
        // A failed warn rule is logged at WARN, with severity=warn.
        let warn_line = out
            .stderr
            .lines()
            .find(|l| l.contains("rule=not_null"))
            .unwrap_or_else(|| panic!("{name}: no not_null line:\n{}", out.stderr));
        assert!(warn_line.contains(" WARN [DP] "), "{warn_line}");
        assert!(warn_line.contains("severity=warn"), "{warn_line}");
        let error_line = out.stderr.lines().find(|l| l.contains("rule=min")).unwrap();
        assert!(error_line.contains(" ERROR [DP] "), "{error_line}");

        // A dry run of the same data: its JSON result carries the same.
        let out = t.run(&raw, "2025-11-19", &["--config", config, "--dry-run"]);
        out.assert_code(3);
        assert_broken_validation(&out.result()["validation"], &format!("{name} dry run"));
        out.assert_error_mentions("dry run");
    }
}

#[test]
fn a_successful_run_and_its_dry_run_plan_carry_the_validation_too() {
    for t in Target::both() {
        let name = t.name();
        // Only the warn rule fails: the run succeeds, with one warning.
        let raw = t.raw("warn.csv", b"id,user,kind,amount\n1,u1,view,1\n2,,zap,2\n");
        let sb = t.sandbox();
        let config = sb.write(
            "warn.toml",
            b"[[rules]]\nrule = \"allowed_values\"\ncolumn = \"kind\"\nvalues = [\"view\"]\n\
              severity = \"warn\"\n\n[[features.columns]]\nname = \"id\"\ncolumn = \"id\"\n",
        );
        let config = config.to_str().unwrap();
        let out = t.run(&raw, "2025-11-19", &["--config", config, "--dry-run"]);
        out.assert_code(0);
        let plan = out.result();
        assert_eq!(plan["dry_run"], true, "{name}: {plan}");
        assert_eq!(plan["warnings"], 1);
        assert_eq!(
            plan["validation"][0]["sample_values"],
            json!(["zap"]),
            "{name}"
        );

        let out = t.run(&raw, "2025-11-19", &["--config", config]);
        out.assert_code(0);
        let result = out.result();
        assert_eq!(result["validation"][0]["passed"], false, "{name}");
        assert_eq!(result["validation"][0]["sample_values"], json!(["zap"]));
        let meta = t.json("v_20251119T000000/metadata.json");
        assert_eq!(meta["validation"], result["validation"], "{name}");
    }
}

#[test]
fn a_header_split_on_the_wrong_delimiter_names_the_delimiter_to_set() {
    let sb = Sandbox::new();
    let rules = "[[rules]]\nrule = \"not_null\"\ncolumn = \"user\"\n";
    for (delimiter, spelled) in [(";", "\";\""), ("\t", "\"\\t\""), ("|", "\"|\"")] {
        let raw = "id,user\n1,u1\n2,u2\n".replace(',', delimiter);
        let out = crate::support::run_pipeline(&sb, raw.as_bytes(), "", rules);
        out.assert_code(3);
        out.assert_error_mentions(&format!("set delimiter = {spelled} under [source]"));
        out.assert_error_mentions("missing_columns: user");
    }
    // A file that does use commas gets no hint.
    let out = crate::support::run_pipeline(&sb, b"id,usr\n1,u1\n", "", rules);
    out.assert_code(3);
    assert!(
        !out.error_line().contains("delimiter"),
        "{}",
        out.error_line()
    );

    // The built-in pipeline has no column rules: the run goes on, with a warning.
    let body = std::fs::read_to_string(fixture("user_events_20251119.csv"))
        .unwrap()
        .replace(',', ";");
    let raw = sb.write("semi.csv", body.as_bytes());
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(raw)
        .args(["--features", "semi-out", "--execution-date", "2025-11-19"]);
    let out = run(cmd);
    out.assert_code(0);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains(" WARN ") && l.contains("set delimiter = \";\"")),
        "{}",
        out.stderr
    );
}

/// `featurepipe status --output json` against `t`, with `extra` flags.
fn status(t: &Target, extra: &[&str]) -> (Output, Value) {
    let mut cmd = t.cmd_for("status");
    cmd.args(["--features", &t.features(), "--output", "json"])
        .args(extra);
    let out = run(cmd);
    let line = out.stdout.trim();
    assert_eq!(line.lines().count(), 1, "one JSON line: {}", out.stdout);
    let report: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("status is not JSON ({e}): {}", out.stdout));
    (out, report)
}

#[test]
fn status_of_an_empty_prefix_is_stale_only_with_max_age() {
    for t in Target::both() {
        let name = t.name();
        let (out, report) = status(&t, &[]);
        out.assert_code(0);
        assert_eq!(report["latest"], Value::Null, "{name}");
        assert_eq!(report["last_run"], Value::Null, "{name}");
        assert_eq!(report["fresh"], Value::Null, "{name}");

        let (out, report) = status(&t, &["--max-age", "26h"]);
        out.assert_code(6);
        assert_eq!(report["fresh"], false, "{name}");
        assert_eq!(report["exit_code"], 6, "{name}");
        out.assert_error_mentions("stale");
        out.assert_error_mentions("no complete version");
        out.assert_error_mentions("--max-age 26h");
    }
}

#[test]
fn status_of_a_fresh_prefix_exits_0_and_of_a_stale_one_6() {
    for t in Target::both() {
        let name = t.name();
        let raw = t.raw(
            "events.csv",
            &std::fs::read(fixture("user_events_20251119.csv")).unwrap(),
        );
        // Fresh: a version for an hour ago.
        let recent = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
        t.run(&raw, &recent, &[]).assert_code(0);
        let (out, report) = status(&t, &["--max-age", "26h"]);
        out.assert_code(0);
        assert_eq!(report["fresh"], true, "{name}: {report}");
        assert_eq!(report["max_age"], "26h");
        assert_eq!(report["max_age_seconds"], 26 * 3600);
        let latest = &report["latest"];
        assert_eq!(latest["rows"], 300, "{name}");
        assert_eq!(latest["feature_rows"], 300);
        assert_eq!(latest["null_rate"], 0.023666666666666666);
        let age = latest["age_seconds"].as_i64().unwrap();
        assert!((3500..3800).contains(&age), "{name}: age {age}");
        assert_eq!(report["last_run"]["status"], "success");
        assert_eq!(report["last_run"]["exit_code"], 0);
        // Quiet when fresh (the test environment's AWS SDK notes aside).
        assert!(
            !out.stderr.contains("ERROR") && !out.stderr.contains("featurepipe:"),
            "{name}: {}",
            out.stderr
        );
        // The same from its variable.
        let mut cmd = t.cmd_for("status");
        cmd.args(["--features", &t.features()])
            .env("DP_STATUS_MAX_AGE", "30m");
        let out = run(cmd);
        out.assert_code(6);
        out.assert_error_mentions("DP_STATUS_MAX_AGE 30m");
        assert!(out.stdout.contains("STALE"), "{}", out.stdout);
        assert!(out.stdout.contains("latest complete"), "{}", out.stdout);
    }
}

#[test]
fn status_shows_a_drop_that_stopped_arriving() {
    for t in Target::both() {
        let name = t.name();
        let raw_19 = t.raw(
            "events_20251119.csv",
            &std::fs::read(fixture("user_events_20251119.csv")).unwrap(),
        );
        t.run(&raw_19, "2025-11-19", &[]).assert_code(0);
        // The next night's drop is not there: skipped on purpose, exit 99.
        let raw_20 = t.raw_uri("events_20251120.csv");
        t.run(&raw_20, "2025-11-20", &["--skip-if-missing"])
            .assert_code(99);
        // A newer version left incomplete.
        t.write("v_20251121T000000/feature.csv", b"a\r\n");

        let (out, report) = status(&t, &["--max-age", "26h"]);
        out.assert_code(6);
        assert_eq!(report["fresh"], false, "{name}");
        let latest = &report["latest"];
        assert_eq!(latest["feature_version"], "v_20251119T000000", "{name}");
        assert_eq!(latest["execution_date"], "2025-11-19T00:00:00+09:00");
        assert!(latest["age_seconds"].as_i64().unwrap() > 26 * 3600);
        assert_eq!(
            report["incomplete_newer"][0]["feature_version"],
            "v_20251121T000000"
        );
        let last = &report["last_run"];
        assert_eq!(last["status"], "skipped", "{name}: {report}");
        assert_eq!(last["reason"], "raw_missing");
        assert_eq!(last["exit_code"], 99);
        assert_eq!(last["feature_version"], "v_20251120T000000");
        out.assert_error_mentions("v_20251119T000000");
        out.assert_error_mentions("more than --max-age 26h");
    }
}

#[test]
fn status_needs_one_fixed_prefix() {
    let sb = Sandbox::new();
    let out = run(sb.cmd_for("status"));
    out.assert_code(2);
    for needle in ["--features", "DP_FEATURE_PATH", "[output] prefix"] {
        out.assert_error_mentions(needle);
    }
    let mut cmd = sb.cmd_for("status");
    cmd.args(["--features", "out/{ds}"]);
    let out = run(cmd);
    out.assert_code(2);
    out.assert_error_mentions("changes with the execution date");
    let mut cmd = sb.cmd_for("status");
    cmd.args(["--features", "out", "--max-age", "26"]);
    let out = run(cmd);
    out.assert_code(2);
    out.assert_error_mentions("26h");
    // No [DP] run line: status is not a run.
    assert!(!out.stderr.contains("[DP]"), "{}", out.stderr);
}

#[test]
fn json_logs_write_only_json_on_stderr() {
    let sb = Sandbox::new();
    let raw = fixture("user_events_20251119.csv");
    let broken = sb.write("broken.csv", BROKEN.as_bytes());
    let rules = sb.write("rules.toml", BROKEN_RULES.as_bytes());
    sb.write("bad.toml", b"name = \"x\"\ncolour = \"red\"\n");
    /// Subcommand, arguments, environment, exit code.
    type Case = (
        &'static str,
        Vec<String>,
        Vec<(&'static str, &'static str)>,
        i32,
    );
    let cases: Vec<Case> = vec![
        (
            "run",
            vec![
                "--no-such-flag".into(),
                "--log-format".into(),
                "json".into(),
            ],
            vec![],
            2,
        ),
        (
            "run",
            vec!["--log-format=json".into(), "--parallel".into(), "2".into()],
            vec![],
            2,
        ),
        ("run", vec![], vec![("DP_LOG_FORMAT", "json")], 2),
        (
            "run",
            vec![
                "--raw".into(),
                raw.display().to_string(),
                "--features".into(),
                "out".into(),
            ],
            vec![("DP_LOG_FORMAT", "json"), ("DP_FORCE", "flase")],
            2,
        ),
        (
            "run",
            vec![
                "--raw".into(),
                broken.display().to_string(),
                "--features".into(),
                "out".into(),
                "--config".into(),
                rules.display().to_string(),
                "--execution-date".into(),
                "2025-11-19".into(),
            ],
            vec![("DP_LOG_FORMAT", "json")],
            3,
        ),
        ("backfill", vec![], vec![("DP_LOG_FORMAT", "json")], 2),
        (
            "check-config",
            vec!["bad.toml".into()],
            vec![("DP_LOG_FORMAT", "json")],
            2,
        ),
        (
            "status",
            vec![
                "--features".into(),
                "out".into(),
                "--max-age".into(),
                "1h".into(),
            ],
            vec![("DP_LOG_FORMAT", "json")],
            6,
        ),
        (
            "status",
            vec!["--max-age".into(), "soon".into()],
            vec![("DP_LOG_FORMAT", "json")],
            2,
        ),
    ];
    for (sub, args, env, code) in cases {
        let mut cmd = sb.cmd_for(sub);
        cmd.args(&args).envs(env.iter().copied());
        let out = run(cmd);
        out.assert_code(code);
        let lines = json_lines(&out);
        let last = lines.last().unwrap();
        assert_eq!(last["level"], "ERROR", "{sub} {args:?}: {last}");
        let message = last["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("featurepipe: error: "),
            "{sub} {args:?}: {last}"
        );
    }
    // The WARN of a run without a date is JSON too.
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(&raw)
        .args(["--features", "now-out", "--log-format", "json"]);
    let out = run(cmd);
    out.assert_code(0);
    assert!(json_lines(&out)
        .iter()
        .any(|l| l["level"] == "WARN" && l["message"].as_str().unwrap().contains("re-run")));
}

#[test]
fn backfill_names_both_ways_to_give_dates_and_bounds_their_number() {
    let sb = Sandbox::new();
    let backfill = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = sb.cmd_for("backfill");
        cmd.args(["--raw", "raw/{ds_nodash}.csv", "--features", "out"])
            .args(args)
            .envs(env.iter().copied());
        run(cmd)
    };
    let out = backfill(&[], &[]);
    out.assert_code(2);
    for needle in [
        "no dates to run",
        "--start",
        "--end",
        "--dates",
        "DP_BACKFILL_START",
        "DP_BACKFILL_DATES",
    ] {
        out.assert_error_mentions(needle);
    }
    backfill(&["--start", "2025-11-15"], &[])
        .assert_code(2)
        .assert_error_mentions("--start 2025-11-15 needs --end");
    backfill(&["--end", "2025-11-15"], &[])
        .assert_code(2)
        .assert_error_mentions("needs --start");

    // Two years by a slip of the year: refused, naming the override.
    let out = backfill(&["--start", "2025-11-15", "--end", "2027-11-15"], &[]);
    out.assert_code(2);
    out.assert_error_mentions("731 dates");
    out.assert_error_mentions("--max-dates 731");
    let out = backfill(
        &["--dates", "2025-11-18,2025-11-19", "--max-dates", "1"],
        &[],
    );
    out.assert_code(2);
    out.assert_error_mentions("--max-dates 2");
    // The override, here from its variable: the dates run (and skip: no raw files).
    let out = backfill(
        &["--dates", "2025-11-18,2025-11-19", "--skip-if-missing"],
        &[("DP_BACKFILL_MAX_DATES", "2")],
    );
    out.assert_code(0);
    assert!(out.stdout.contains("2 dates"), "{}", out.stdout);
    // Dates from their variables.
    let out = backfill(
        &["--skip-if-missing", "--output", "json"],
        &[
            ("DP_BACKFILL_START", "2025-11-17"),
            ("DP_BACKFILL_END", "2025-11-19"),
        ],
    );
    out.assert_code(0);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["counts"]["dates"], 3);
}

#[test]
fn every_flag_of_every_command_has_its_variable_and_help_names_it() {
    use clap::CommandFactory;
    let cli = featurepipe::cli::Cli::command();
    let mut checked = 0;
    for sub in cli.get_subcommands() {
        let sb = Sandbox::new();
        let mut cmd = sb.cmd_for(sub.get_name());
        cmd.arg("--help");
        let out = run(cmd);
        out.assert_code(0);
        for arg in sub.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let var = arg
                .get_env()
                .unwrap_or_else(|| panic!("{} {id} has no DP_* variable", sub.get_name()))
                .to_string_lossy()
                .into_owned();
            assert!(var.starts_with("DP_"), "{} {id}: {var}", sub.get_name());
            assert!(
                out.stdout.contains(&var),
                "{} --help does not name {var}",
                sub.get_name()
            );
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} flags");
}

#[test]
fn check_config_reads_its_file_from_dp_config() {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd_for("check-config");
    cmd.env("DP_CONFIG", fixture("pipelines/daily_user_features.toml"));
    let out = run(cmd);
    out.assert_code(0);
    let described: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(described["name"], "daily_user_features");
    // A file without paths checks, and says so.
    sb.write("nopaths.toml", b"name = \"x\"\n");
    let mut cmd = sb.cmd_for("check-config");
    cmd.env("DP_CONFIG", "nopaths.toml");
    let out = run(cmd);
    out.assert_code(0);
    let described: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(described["source"]["path"], Value::Null);
    // A missing one names the variable.
    let mut cmd = sb.cmd_for("check-config");
    cmd.env("DP_CONFIG", "missing.toml");
    let out = run(cmd);
    out.assert_code(2);
    out.assert_error_mentions("DP_CONFIG");
}

/// The cron wrapper against the real binary: what the alert command receives.
mod cron_wrapper {
    use super::*;

    struct Cron {
        sb: Sandbox,
    }

    impl Cron {
        fn new() -> Self {
            let sb = Sandbox::new();
            sb.write(
                "alert.sh",
                b"#!/bin/sh\nprintf '%s\\n' \"$1\" >>\"$ALERTS/sentences\"\ncat >>\"$ALERTS/stdin\"\n",
            );
            std::fs::create_dir_all(sb.path("alerts")).unwrap();
            Cron { sb }
        }

        fn run(&self, day: &str, env: &[(&str, &str)]) -> Output {
            let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/cron/featurepipe-nightly.sh");
            let mut cmd = assert_cmd::Command::new("bash");
            for (k, _) in std::env::vars() {
                if k.starts_with("DP_") || k.starts_with("FEATUREPIPE_") {
                    cmd.env_remove(k);
                }
            }
            cmd.current_dir(self.sb.dir.path())
                .arg(script)
                .arg(day)
                .env(
                    "FEATUREPIPE_BIN",
                    assert_cmd::cargo::cargo_bin!("featurepipe"),
                )
                .env("FEATUREPIPE_LOG_DIR", self.sb.path("logs"))
                .env("FEATUREPIPE_LOCK_DIR", self.sb.path("."))
                .env("FEATUREPIPE_RETRIES", "0")
                .env(
                    "FEATUREPIPE_ALERT_CMD",
                    format!("sh {}", self.sb.path("alert.sh").display()),
                )
                .env("ALERTS", self.sb.path("alerts"))
                .envs(env.iter().copied());
            cmd.timeout(std::time::Duration::from_secs(120));
            run(cmd)
        }

        fn sentences(&self) -> String {
            std::fs::read_to_string(self.sb.path("alerts/sentences")).unwrap_or_default()
        }

        fn stdin(&self) -> String {
            std::fs::read_to_string(self.sb.path("alerts/stdin")).unwrap_or_default()
        }
    }

    #[test]
    fn unconfigured_it_alerts_with_exit_2_instead_of_skipping() {
        let cron = Cron::new();
        let out = cron.run("2025-11-19", &[]);
        out.assert_code(2);
        assert!(cron.sentences().contains("exit 2"), "{}", cron.sentences());
        let result: Value = serde_json::from_str(cron.stdin().trim()).unwrap();
        assert_eq!(result["exit_code"], 2);
        assert!(result["error"].as_str().unwrap().contains("DP_RAW_PATH"));
    }

    #[test]
    fn invalid_data_alerts_with_the_json_result_and_json_logs_stay_json() {
        let cron = Cron::new();
        cron.sb.write("raw/20251119.csv", BROKEN.as_bytes());
        let rules = cron.sb.write("rules.toml", BROKEN_RULES.as_bytes());
        let out = cron.run(
            "2025-11-19",
            &[
                ("DP_RAW_PATH", "raw/{ds_nodash}.csv"),
                ("DP_FEATURE_PATH", "out"),
                ("DP_CONFIG", rules.to_str().unwrap()),
                ("DP_LOG_FORMAT", "json"),
            ],
        );
        out.assert_code(3);
        let result: Value = serde_json::from_str(cron.stdin().trim()).unwrap();
        assert_eq!(result["exit_code"], 3);
        let allowed = result["validation"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "allowed_values")
            .unwrap();
        assert_eq!(allowed["sample_values"][0], "buy");
        // Every line of the day's log and of the alert on stderr is JSON.
        let log =
            std::fs::read_to_string(cron.sb.path("logs/daily_user_events_20251119.log")).unwrap();
        for line in log.lines().chain(out.stderr.lines()) {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        }
    }

    #[test]
    fn a_drop_that_stopped_arriving_alerts_as_stale() {
        let cron = Cron::new();
        cron.sb.write(
            "raw/20251119.csv",
            &std::fs::read(fixture("user_events_20251119.csv")).unwrap(),
        );
        let env = [
            ("DP_RAW_PATH", "raw/{ds_nodash}.csv"),
            ("DP_FEATURE_PATH", "out"),
        ];
        // The first night: published, fresh enough for a week.
        cron.run("2025-11-19", &[env[0], env[1], ("FEATUREPIPE_MAX_AGE", "")])
            .assert_code(0);
        assert_eq!(cron.sentences(), "");
        // Later nights: no drop. Skipped, but the feature set is older than allowed.
        let out = cron.run(
            "2025-11-20",
            &[env[0], env[1], ("FEATUREPIPE_MAX_AGE", "26h")],
        );
        out.assert_code(6);
        assert!(cron.sentences().contains("stale"), "{}", cron.sentences());
        let report: Value = serde_json::from_str(cron.stdin().trim()).unwrap();
        assert_eq!(report["latest"]["feature_version"], "v_20251119T000000");
        assert_eq!(report["last_run"]["reason"], "raw_missing");
    }
}
