//! `featurepipe infer`: a starting pipeline file from a sample that passes `check-config`
//! and runs on the sample, its guesses (delimiter, nulls, types, rules) right.

use std::io::Write;

use crate::support::{fixture, read_json, run, Output, Sandbox};

const V: &str = "v_20251119T000000";

fn infer(sb: &Sandbox, sample: &str, extra: &[&str]) -> Output {
    let mut cmd = sb.cmd_for("infer");
    cmd.arg(sample).args(extra);
    run(cmd)
}

/// Infers a pipeline file for `sample`, checks it, runs it for 2025-11-19; the version
/// folder.
fn infer_check_run(sb: &Sandbox, sample: &str, extra: &[&str]) -> std::path::PathBuf {
    let out = infer(sb, sample, extra);
    out.assert_code(0);
    let config = sb.write("inferred.toml", out.stdout.as_bytes());
    let mut cmd = sb.cmd_for("check-config");
    cmd.arg(&config);
    run(cmd).assert_code(0);
    let mut cmd = sb.cmd();
    cmd.arg("--config")
        .arg(&config)
        .args(["--execution-date", "2025-11-19", "--features", "out"]);
    let ran = run(cmd);
    ran.assert_code(0);
    assert_eq!(
        ran.summary()["warnings"],
        "0",
        "every suggested rule holds on the sample"
    );
    sb.path(&format!("out/{V}"))
}

#[test]
fn the_fixture_gives_a_file_that_checks_and_runs() {
    let sb = Sandbox::new();
    let sample = sb.write(
        "events.csv",
        &std::fs::read(fixture("user_events_20251119.csv")).unwrap(),
    );
    let v = infer_check_run(&sb, sample.to_str().unwrap(), &[]);
    let schema = read_json(&v.join("schema.json"));
    assert_eq!(schema["columns"]["user_id"], "integer");
    assert_eq!(schema["columns"]["event_time"], "timestamp");
    assert_eq!(schema["columns"]["amount"], "float");
    assert_eq!(schema["columns"]["event_type"], "string");
    assert_eq!(schema["parquet"]["timestamp_field"], "event_time");
    let meta = read_json(&v.join("metadata.json"));
    assert_eq!(meta["rows_feature"], 300);
    let rules: Vec<String> = meta["validation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r["name"], r["column"]))
        .collect();
    for want in [
        "\"not_null\" \"event_id\"",
        "\"allowed_values\" \"event_type\"",
        "\"numeric\" \"amount\"",
        "\"timestamp\" \"event_time\"",
    ] {
        assert!(rules.contains(&want.to_string()), "{want} in {rules:?}");
    }
    // user_id has empty cells in the fixture: no not_null for it.
    assert!(!rules.contains(&"\"not_null\" \"user_id\"".to_string()));
}

#[test]
fn a_semicolon_sample_with_null_words_flags_and_day_first_dates() {
    let sb = Sandbox::new();
    let text = "id;active;signup;score;plan\n\
                1;true;19/11/2025;1,5;free\n\
                2;false;01/02/2025;NULL;pro\n\
                3;TRUE;31/12/2024;2;free\n\
                4;false;NULL;3;free\n\
                5;true;05/05/2025;4;pro\n\
                6;false;06/06/2025;5;free\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    let sample = sb.write("signups.csv.gz", &gz.finish().unwrap());
    let out = infer(&sb, sample.to_str().unwrap(), &[]);
    out.assert_code(0);
    for want in [
        "delimiter = \";\"",
        "null_tokens = [\"\", \"NULL\"]",
        "name = \"signups\"",
        "format = \"%d/%m/%Y\"",
        "values = [\"free\", \"pro\"]",
    ] {
        assert!(out.stdout.contains(want), "{want} in:\n{}", out.stdout);
    }
    let v = infer_check_run(&sb, sample.to_str().unwrap(), &[]);
    let schema = read_json(&v.join("schema.json"));
    assert_eq!(schema["columns"]["active"], "boolean");
    assert_eq!(schema["columns"]["signup"], "timestamp");
    // "1,5" is no number in the number grammar: score is text.
    assert_eq!(schema["columns"]["score"], "string");
    let csv = std::fs::read_to_string(v.join("feature.csv")).unwrap();
    assert!(
        csv.contains("1,true,2025-11-19T00:00:00+00:00,\"1,5\",free"),
        "the day-first date read in UTC: {csv}"
    );
}

#[test]
fn flags_and_errors() {
    let sb = Sandbox::new();
    let sample = sb.write("pipes.txt", b"a|b\n1|x\n2|y\n");
    // Given, not detected: the file says so.
    let mut cmd = sb.cmd_for("infer");
    cmd.arg(&sample)
        .env("DP_INFER_DELIMITER", "|")
        .env("DP_INFER_MAX_ROWS", "1")
        .args(["--name", "piped"]);
    let out = run(cmd);
    out.assert_code(0);
    assert!(out
        .stdout
        .contains("delimiter = \"|\"   # as given to --delimiter"));
    assert!(
        out.stdout.contains("from its first 1 rows (it has more)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("name = \"piped\""));

    infer(&sb, "missing.csv", &[])
        .assert_code(2)
        .assert_error_mentions("missing.csv: cannot read");
    let header_only = sb.write("h.csv", b"a,b\n");
    infer(&sb, header_only.to_str().unwrap(), &[])
        .assert_code(2)
        .assert_error_mentions("no data rows");
    infer(&sb, sample.to_str().unwrap(), &["--delimiter", "ab"])
        .assert_code(2)
        .assert_error_mentions("--delimiter \"ab\"");
    let broken = sb.write("broken.csv", b"a,b\n1,\"x\n");
    infer(&sb, broken.to_str().unwrap(), &[])
        .assert_code(3)
        .assert_error_mentions("broken.csv line 2");
}
