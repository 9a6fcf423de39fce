//! Every exit code of docs/exit-codes.md, each with its one-sentence message, and
//! nothing new published after any failure.

use crate::support::{fixture, run, Output, Sandbox};

fn run_raw(sb: &Sandbox, raw: &std::path::Path, extra: &[&str]) -> Output {
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(raw)
        .args(["--features", "out", "--execution-date", "2025-11-19"])
        .args(extra);
    run(cmd)
}

/// After a failure: no version files at all, and no `_latest`.
fn assert_nothing_published(sb: &Sandbox) {
    let v = sb.path("out/v_20251119T000000");
    assert!(!v.join("_SUCCESS").exists(), "no _SUCCESS after a failure");
    assert!(
        !v.join("feature.csv").exists(),
        "no feature.csv after a failure"
    );
    assert!(!sb.path("out/_latest").exists(), "_latest untouched");
}

fn usage_error(args: &[&str]) -> Output {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.args(args);
    let out = run(cmd);
    out.assert_code(2);
    out
}

#[test]
fn exit_2_for_unknown_flag() {
    let out = usage_error(&["--no-such-flag"]);
    assert!(out.stderr.contains("--no-such-flag"), "{}", out.stderr);
}

#[test]
fn exit_2_for_bad_uri_naming_the_flag() {
    for bad in [
        "gs://bucket/x.csv",
        "s3://",
        "s3://Not_A_Bucket/x",
        "file://relative/x.csv",
    ] {
        let out = usage_error(&["--raw", bad]);
        out.assert_error_mentions("--raw");
    }
    let out = usage_error(&["--features", "ftp://x/y"]);
    out.assert_error_mentions("--features");
}

#[test]
fn exit_2_for_unknown_placeholder() {
    let out = usage_error(&["--raw", "raw/{dt}.csv"]);
    out.assert_error_mentions("{dt}");
    let out = usage_error(&["--features", "out/{ds"]);
    out.assert_error_mentions("--features");
}

#[test]
fn exit_2_for_bad_time_zone_and_bad_date() {
    let out = usage_error(&["--timezone", "Mars/Olympus"]);
    out.assert_error_mentions("Mars/Olympus");
    let out = usage_error(&["--execution-date", "19/11/2025"]);
    out.assert_error_mentions("--execution-date");
}

#[test]
fn exit_2_for_bad_pipeline_file_naming_the_line() {
    let sb = Sandbox::new();
    sb.write(
        "p.toml",
        b"name = \"x\"\n\n[source]\npath = \"a.csv\"\ncolour = \"red\"\n",
    );
    let mut cmd = sb.cmd();
    cmd.args(["--config", "p.toml"]);
    let out = run(cmd);
    out.assert_code(2);
    out.assert_error_mentions("line 5");
    out.assert_error_mentions("colour");
    let mut cmd = sb.cmd();
    cmd.args(["--config", "missing.toml"]);
    run(cmd).assert_code(2);
}

#[test]
fn exit_2_for_bad_s3_settings() {
    usage_error(&["--s3-connect-timeout", "-1"]);
    usage_error(&["--s3-max-attempts", "0"]);
    usage_error(&["--endpoint-url", "localhost:9000"]);
    // S3 without any region and without a custom endpoint: name AWS_REGION.
    let out = usage_error(&["--raw", "s3://bucket/x.csv", "--features", "out"]);
    out.assert_error_mentions("AWS_REGION");
}

#[test]
fn exit_3_when_null_rate_is_over_half() {
    let sb = Sandbox::new();
    let out = run_raw(&sb, &fixture("invalid/high_null_rate.csv"), &[]);
    out.assert_code(3);
    out.assert_error_mentions("max_null_rate");
    assert_eq!(out.summary()["valid"], "false");
    assert_eq!(out.summary()["null_rate"], "0.6800");
    assert_nothing_published(&sb);
}

#[test]
fn exit_3_for_header_only_and_empty_files() {
    for f in ["invalid/header_only.csv", "invalid/empty.csv"] {
        let sb = Sandbox::new();
        let out = run_raw(&sb, &fixture(f), &[]);
        out.assert_code(3);
        out.assert_error_mentions("min_rows");
        assert_eq!(out.summary()["rows"], "0");
        assert_nothing_published(&sb);
    }
}

#[test]
fn exit_3_for_unterminated_quote_naming_the_line() {
    let sb = Sandbox::new();
    let out = run_raw(&sb, &fixture("invalid/unterminated_quote.csv"), &[]);
    out.assert_code(3);
    out.assert_error_mentions("line 4");
    assert_nothing_published(&sb);
}

#[test]
fn exit_3_for_invalid_utf8_naming_the_line() {
    let sb = Sandbox::new();
    let out = run_raw(&sb, &fixture("invalid/not_utf8.csv"), &[]);
    out.assert_code(3);
    out.assert_error_mentions("line 3");
    out.assert_error_mentions("UTF-8");
    assert_nothing_published(&sb);
}

#[test]
fn exit_4_when_raw_is_missing_and_99_when_told_to_skip() {
    let sb = Sandbox::new();
    let missing = sb.path("nope/user_events.csv");
    let out = run_raw(&sb, &missing, &[]);
    out.assert_code(4);
    out.assert_error_mentions("not found");
    assert_nothing_published(&sb);

    // A folder where the raw file should be is "not found" too (as a prefix is on S3).
    std::fs::create_dir_all(sb.path("a-folder.csv")).unwrap();
    run_raw(&sb, &sb.path("a-folder.csv"), &[]).assert_code(4);

    let out = run_raw(&sb, &missing, &["--skip-if-missing"]);
    out.assert_code(99);
    assert_eq!(out.summary()["status"], "skipped");
    assert_eq!(out.summary()["reason"], "raw_missing");
    assert_nothing_published(&sb);

    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(&missing)
        .args(["--features", "out"])
        .env("DP_SKIP_IF_MISSING", "1");
    run(cmd).assert_code(99);
}

#[test]
fn exit_5_when_the_output_folder_cannot_be_written() {
    let sb = Sandbox::new();
    sb.write("blocker", b"a file where a folder should be");
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(fixture("user_events_20251119.csv"))
        .args([
            "--features",
            "blocker/out",
            "--execution-date",
            "2025-11-19",
        ]);
    let out = run(cmd);
    out.assert_code(5);
    out.assert_error_mentions("blocker");
}

#[test]
fn help_teaches_and_exits_0() {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.arg("--help");
    let out = run(cmd);
    out.assert_code(0);
    for needle in [
        "DP_RAW_PATH",
        "--skip-if-missing",
        "Exit codes",
        "{ds_nodash}",
        "--s3-checksum",
    ] {
        assert!(out.stdout.contains(needle), "--help lacks {needle}");
    }
}

#[test]
fn exit_3_for_a_bad_byte_deep_in_a_large_file_after_output_started() {
    // Well past one batch of rows and one output block, so the feature thread and the
    // staged upload are already busy when the scanner hits the bad byte.
    let sb = Sandbox::new();
    let mut raw = b"user_id,amount\n".to_vec();
    for i in 0..120_000u32 {
        raw.extend_from_slice(format!("{i},{i}.5\n").as_bytes());
    }
    raw.extend_from_slice(b"7,\xC3(\n8,9\n");
    let path = sb.write("big.csv", &raw);
    let out = run_raw(&sb, &path, &[]);
    out.assert_code(3);
    out.assert_error_mentions("line 120002");
    assert_nothing_published(&sb);
    // Only the bookkeeping beside the versions remains: the run record and the lease.
    let leftovers: Vec<_> = std::fs::read_dir(sb.path("out"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.iter().all(|n| n == "_runs" || n == "_leases"),
        "staged files left behind: {leftovers:?}"
    );
}

#[test]
fn exit_2_for_a_missing_bucket_never_4_or_99() {
    let server = crate::support::S3Server::start();
    let bucket = crate::support::Bucket::new(&server, "lake");
    bucket.put(
        "raw/a.csv",
        &std::fs::read(fixture("user_events_20251119.csv")).unwrap(),
    );
    let sb = Sandbox::new();
    // A typo in the raw bucket must not be skipped quietly by --skip-if-missing.
    let mut cmd = sb.s3_cmd(&server);
    cmd.args([
        "--raw",
        "s3://lake-typo/raw/a.csv",
        "--features",
        "s3://lake/f",
    ])
    .args(["--execution-date", "2025-11-19", "--skip-if-missing"]);
    let out = run(cmd);
    out.assert_code(2);
    out.assert_error_mentions("lake-typo");
    out.assert_error_mentions("--raw");
    // A typo in the output bucket fails before the raw input is read.
    let mut cmd = sb.s3_cmd(&server);
    cmd.args([
        "--raw",
        "s3://lake/raw/a.csv",
        "--features",
        "s3://lake-typo/f",
    ])
    .args(["--execution-date", "2025-11-19"]);
    let out = run(cmd);
    out.assert_code(2);
    out.assert_error_mentions("--features");
    assert_eq!(out.summary()["failed_step"], "extract_raw_data");
    assert!(
        !out.stderr.contains("step=validate_data"),
        "raw input must not be read"
    );
    // A missing object in an existing bucket is still "not there yet".
    let mut cmd = sb.s3_cmd(&server);
    cmd.args([
        "--raw",
        "s3://lake/raw/later.csv",
        "--features",
        "s3://lake/f",
    ])
    .args(["--execution-date", "2025-11-19", "--skip-if-missing"]);
    run(cmd).assert_code(99);
}
