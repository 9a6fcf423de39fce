//! Execution dates, version ids, time zones and path templates (docs/contract.md, "Time and versions").

use crate::support::{fixture, read_json, run, Sandbox};

fn version_for(args: &[&str]) -> (String, Sandbox) {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(fixture("user_events_20251119.csv"))
        .args(["--features", "out"])
        .args(args);
    let out = run(cmd);
    out.assert_code(0);
    (out.summary()["feature_version"].clone(), sb)
}

#[test]
fn offset_dates_are_converted_to_seoul() {
    let (v, sb) = version_for(&["--execution-date", "2025-11-19T00:00:00+00:00"]);
    assert_eq!(v, "v_20251119T090000");
    assert!(sb.path("out/v_20251119T090000/_SUCCESS").exists());
}

#[test]
fn naive_dates_are_utc() {
    let (v, _) = version_for(&["--execution-date", "2025-11-19T15:30:00"]);
    assert_eq!(v, "v_20251120T003000");
}

#[test]
fn bare_dates_are_midnight_in_the_pipeline_zone() {
    let (v, _) = version_for(&["--execution-date", "2025-11-19"]);
    assert_eq!(v, "v_20251119T000000");
    let (v, sb) = version_for(&["--execution-date", "2025-11-19", "--timezone", "UTC"]);
    assert_eq!(v, "v_20251119T000000");
    let meta = read_json(&sb.path("out/v_20251119T000000/metadata.json"));
    assert_eq!(meta["execution_date"], "2025-11-19T00:00:00+00:00");
    assert!(meta["created_at"].as_str().unwrap().ends_with("+00:00"));
}

#[test]
fn absent_date_means_now_in_seoul() {
    let fmt = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&chrono_tz::Asia::Seoul)
            .format("v_%Y%m%dT%H%M%S")
            .to_string()
    };
    let before = fmt(chrono::Utc::now());
    let (v, _) = version_for(&[]);
    let after = fmt(chrono::Utc::now());
    assert!(before <= v && v <= after, "{before} <= {v} <= {after}");
}

#[test]
fn raw_and_prefix_templates_render_from_the_execution_date() {
    let sb = Sandbox::new();
    sb.write(
        "raw/2025-11-19/user_events_20251119.csv",
        &std::fs::read(fixture("user_events_20251119.csv")).unwrap(),
    );
    let mut cmd = sb.cmd();
    cmd.args(["--raw", "raw/{ds}/user_events_{ds_nodash}.csv"])
        .args(["--features", "out/{ds_nodash}"])
        .args(["--execution-date", "2025-11-19T09:10:11+09:00"]);
    let out = run(cmd);
    out.assert_code(0);
    assert!(sb.path("out/20251119/v_20251119T091011/_SUCCESS").exists());
    assert!(out.summary()["raw_path"].ends_with("raw/2025-11-19/user_events_20251119.csv"));
}

#[test]
fn environment_variables_configure_a_run_and_flags_win() {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.env("DP_RAW_PATH", fixture("user_events_{ds_nodash}.csv"))
        .env("DP_FEATURE_PATH", "from-env")
        .env("DP_PIPELINE_NAME", "env_pipe")
        .env("DP_EXECUTION_DATE", "2025-11-19")
        .env("DP_TIMEZONE", "UTC")
        .args(["--pipeline", "flag_pipe"]);
    let out = run(cmd);
    out.assert_code(0);
    let s = out.summary();
    assert_eq!(s["pipeline"], "flag_pipe");
    let schema = read_json(&sb.path("from-env/v_20251119T000000/schema.json"));
    assert_eq!(schema["pipeline_name"], "flag_pipe");
    assert!(schema["created_at"].as_str().unwrap().ends_with("+00:00"));
}

#[test]
fn a_pipeline_file_fills_what_flags_and_env_leave_open() {
    let sb = Sandbox::new();
    let raw = fixture("user_events_{ds_nodash}.csv");
    sb.write(
        "pipe.toml",
        format!(
            "name = \"from_file\"\ntimezone = \"UTC\"\n[source]\npath = \"{}\"\n[output]\nprefix = \"file-out\"\n",
            raw.display()
        )
        .as_bytes(),
    );
    let mut cmd = sb.cmd();
    cmd.args(["--config", "pipe.toml", "--execution-date", "2025-11-19"])
        .env("DP_PIPELINE_NAME", "env_wins");
    let out = run(cmd);
    out.assert_code(0);
    assert_eq!(out.summary()["pipeline"], "env_wins");
    assert!(
        sb.path("file-out/v_20251119T000000/_SUCCESS").exists(),
        "{}",
        out.stderr
    );
}
