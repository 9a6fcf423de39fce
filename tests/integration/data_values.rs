//! Every value of every valid fixture against the independent Python oracle
//! (`fixtures/oracle.py` -> `fixtures/expected/*.json`), on local folders and on S3.

use crate::support::{csv_lines, expected, fixture, read_json, run, Bucket, S3Server, Sandbox};

const VALID: &[&str] = &[
    "user_events_20251119.csv",
    "messy/junk_numbers.csv",
    "messy/ragged.csv",
    "messy/quoted.csv",
    "messy/crlf_bom_blank.csv",
    "messy/duplicate_header.csv",
];

fn check_against_oracle(rel: &str, feature_csv: &[u8], metadata: &serde_json::Value) {
    let want = expected(rel);
    let lines = csv_lines(feature_csv);
    assert_eq!(lines[0], "row_sum", "{rel}: header");
    let want_sums: Vec<String> = want["row_sum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(lines[1..], want_sums[..], "{rel}: row_sum values");
    assert_eq!(metadata["rows_raw"], want["rows"], "{rel}: rows");
    assert_eq!(
        metadata["rows_feature"], want["rows"],
        "{rel}: rows_feature"
    );
    assert_eq!(
        metadata["raw_total_cells"], want["total_cells"],
        "{rel}: total_cells"
    );
    assert_eq!(
        metadata["raw_null_count"], want["null_count"],
        "{rel}: null_count"
    );
    assert_eq!(
        metadata["raw_null_rate"], want["null_rate"],
        "{rel}: null_rate"
    );
    assert_eq!(metadata["raw_valid"], want["valid"], "{rel}: valid");
    assert_eq!(
        metadata["raw_blank_lines"], want["blank_lines"],
        "{rel}: blank lines"
    );
    assert_eq!(
        metadata["raw_short_rows"], want["short_rows"],
        "{rel}: short rows"
    );
    assert_eq!(
        metadata["raw_long_rows"], want["long_rows"],
        "{rel}: long rows"
    );
}

#[test]
fn every_valid_fixture_matches_the_oracle_on_local_folders() {
    for rel in VALID {
        let sb = Sandbox::new();
        let mut cmd = sb.cmd();
        cmd.arg("--raw").arg(fixture(rel)).args([
            "--features",
            "out",
            "--execution-date",
            "2025-11-19",
        ]);
        let out = run(cmd);
        out.assert_code(0);
        let v = sb.path("out/v_20251119T000000");
        let feature = std::fs::read(v.join("feature.csv")).unwrap();
        check_against_oracle(rel, &feature, &read_json(&v.join("metadata.json")));
        let summary = out.summary();
        assert_eq!(summary["rows"], expected(rel)["rows"].to_string(), "{rel}");
    }
}

#[test]
fn every_valid_fixture_matches_the_oracle_on_s3() {
    let server = S3Server::start();
    let bucket = Bucket::new(&server, "lake");
    for (i, rel) in VALID.iter().enumerate() {
        bucket.put(
            &format!("raw/{i}.csv"),
            &std::fs::read(fixture(rel)).unwrap(),
        );
        let sb = Sandbox::new();
        let mut cmd = sb.s3_cmd(&server);
        cmd.args(["--raw", &format!("s3://lake/raw/{i}.csv")])
            .args(["--features", &format!("s3://lake/features/{i}")])
            .args(["--execution-date", "2025-11-19"]);
        run(cmd).assert_code(0);
        let v = format!("features/{i}/v_20251119T000000");
        let feature = bucket.get(&format!("{v}/feature.csv")).unwrap();
        let metadata: serde_json::Value =
            serde_json::from_slice(&bucket.get(&format!("{v}/metadata.json")).unwrap()).unwrap();
        check_against_oracle(rel, &feature, &metadata);
        assert_eq!(
            metadata["source_raw_path"],
            format!("s3://lake/raw/{i}.csv")
        );
        assert!(metadata["source"]["etag"]
            .as_str()
            .is_some_and(|e| !e.is_empty()));
        assert!(bucket.exists(&format!("{v}/_SUCCESS")));
    }
}

#[test]
fn schema_and_metadata_hold_the_documented_keys() {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(fixture("messy/crlf_bom_blank.csv"))
        .args(["--features", "out", "--execution-date", "2025-11-19"]);
    let out = run(cmd);
    out.assert_code(0);
    let v = sb.path("out/v_20251119T000000");
    let schema = read_json(&v.join("schema.json"));
    assert_eq!(schema["feature_version"], "v_20251119T000000");
    assert_eq!(schema["columns"], serde_json::json!({"row_sum": "float"}));
    assert_eq!(schema["pipeline_name"], "daily_user_events");
    assert!(schema["created_at"].as_str().unwrap().ends_with("+09:00"));

    let meta = read_json(&v.join("metadata.json"));
    for key in [
        "source_raw_path",
        "rows_raw",
        "rows_feature",
        "raw_null_rate",
        "raw_valid",
        "created_at",
        "pipeline_name",
        "feature_version",
        "execution_date",
        "run_id",
        "raw_null_count",
        "raw_total_cells",
        "source",
        "outputs",
        "validation",
        "timings_ms",
        "tool",
    ] {
        assert!(meta.get(key).is_some(), "metadata.json lacks {key}");
    }
    assert_eq!(meta["execution_date"], "2025-11-19T00:00:00+09:00");
    assert_eq!(meta["run_id"], out.summary()["run_id"]);
    assert_eq!(meta["raw_had_bom"], true);
    assert_eq!(
        meta["raw_columns"][0], "user_id",
        "BOM stripped from the header"
    );
    assert_eq!(meta["tool"]["name"], "featurepipe");
    let raw_len = std::fs::metadata(fixture("messy/crlf_bom_blank.csv"))
        .unwrap()
        .len();
    assert_eq!(meta["source"]["size_bytes"], raw_len);
    for step in ["extract_raw_data", "validate_data", "build_features"] {
        assert!(meta["timings_ms"][step].is_u64(), "timings_ms.{step}");
    }
    let rules: Vec<_> = meta["validation"].as_array().unwrap().iter().collect();
    assert_eq!(rules.len(), 2);
    for r in rules {
        for k in ["name", "threshold", "observed", "passed"] {
            assert!(r.get(k).is_some(), "rule lacks {k}: {r}");
        }
    }
    // outputs digests are real: recompute them.
    use sha2::Digest as _;
    for file in ["feature.csv", "schema.json"] {
        let bytes = std::fs::read(v.join(file)).unwrap();
        assert_eq!(meta["outputs"][file]["size_bytes"], bytes.len());
        assert_eq!(
            meta["outputs"][file]["sha256"],
            featurepipe::values::digest::hex(&sha2::Sha256::digest(&bytes))
        );
    }
    // Non-ASCII stays as is (the fixture has Korean text, the JSON must not escape it).
    let raw_meta = std::fs::read_to_string(v.join("metadata.json")).unwrap();
    assert!(!raw_meta.contains("\\u"), "non-ASCII must not be escaped");
    // _SUCCESS is a manifest that covers metadata.json too.
    let manifest = read_json(&v.join("_SUCCESS"));
    let meta_bytes = std::fs::read(v.join("metadata.json")).unwrap();
    assert_eq!(
        manifest["files"]["metadata.json"]["sha256"],
        featurepipe::values::digest::hex(&sha2::Sha256::digest(&meta_bytes))
    );
}

#[test]
fn endpoint_from_aws_environment_variables_implies_path_style() {
    let server = S3Server::start();
    let bucket = Bucket::new(&server, "lake");
    bucket.put(
        "raw/a.csv",
        &std::fs::read(fixture("user_events_20251119.csv")).unwrap(),
    );
    for (var, checksum) in [
        ("AWS_ENDPOINT_URL", "when-supported"),
        ("AWS_ENDPOINT_URL_S3", "when-required"),
    ] {
        let sb = Sandbox::new();
        let mut cmd = sb.cmd();
        cmd.env("AWS_ACCESS_KEY_ID", &server.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &server.secret_key)
            .env(var, &server.endpoint)
            .env("DP_S3_CHECKSUM", checksum)
            .args([
                "--raw",
                "s3://lake/raw/a.csv",
                "--features",
                &format!("s3://lake/{var}"),
            ])
            .args(["--execution-date", "2025-11-19"]);
        run(cmd).assert_code(0);
        assert!(
            bucket.exists(&format!("{var}/v_20251119T000000/_SUCCESS")),
            "{var}"
        );
    }
}
