//! The publish protocol (docs/layout.md) on both backends: re-runs, --force,
//! incomplete versions, _latest only moving forward, failures publishing nothing, dry runs.

use crate::support::{fixture, run, Sandbox, Target};

fn good() -> Vec<u8> {
    std::fs::read(fixture("user_events_20251119.csv")).unwrap()
}

#[test]
fn a_complete_version_is_skipped_and_force_rewrites_it() {
    for t in Target::both() {
        let raw = t.raw("a.csv", &good());
        t.run(&raw, "2025-11-19", &[]).assert_code(0);
        let first = t.json("v_20251119T000000/metadata.json");

        let again = t.run(&raw, "2025-11-19", &[]);
        again.assert_code(0);
        assert_eq!(again.summary()["status"], "skipped", "{}", t.name());
        assert_eq!(again.summary()["reason"], "version_complete");
        assert_eq!(again.result()["status"], "skipped");
        assert_eq!(
            t.json("v_20251119T000000/metadata.json")["run_id"],
            first["run_id"]
        );

        let forced = t.run(&raw, "2025-11-19", &["--force"]);
        forced.assert_code(0);
        assert_eq!(forced.summary()["status"], "success");
        let rewritten = t.json("v_20251119T000000/metadata.json");
        assert_ne!(
            rewritten["run_id"],
            first["run_id"],
            "{}: --force rewrites",
            t.name()
        );
        assert_eq!(
            t.json("v_20251119T000000/_SUCCESS")["run_id"],
            rewritten["run_id"]
        );
    }
}

#[test]
fn an_incomplete_version_is_rewritten() {
    for t in Target::both() {
        let raw = t.raw("a.csv", &good());
        // A crashed earlier run left files but no _SUCCESS.
        t.write("v_20251119T000000/feature.csv", b"row_sum\r\ngarbage\r\n");
        t.write(
            "v_20251119T000000/metadata.json",
            b"{\"run_id\": \"crashed\"}",
        );
        let out = t.run(&raw, "2025-11-19", &[]);
        out.assert_code(0);
        assert_eq!(out.summary()["status"], "success", "{}", t.name());
        let feature = t.read("v_20251119T000000/feature.csv").unwrap();
        assert!(!String::from_utf8_lossy(&feature).contains("garbage"));
        assert_ne!(
            t.json("v_20251119T000000/metadata.json")["run_id"],
            "crashed"
        );
        assert!(t.read("v_20251119T000000/_SUCCESS").is_some());
    }
}

#[test]
fn latest_only_moves_forward() {
    for t in Target::both() {
        let raw = t.raw("a.csv", &good());
        t.run(&raw, "2025-11-20", &[]).assert_code(0);
        assert_eq!(t.json("_latest")["feature_version"], "v_20251120T000000");
        // Backfill of an older date: published, but _latest stays.
        let out = t.run(&raw, "2025-11-18", &[]);
        out.assert_code(0);
        assert!(t.read("v_20251118T000000/_SUCCESS").is_some());
        assert_eq!(
            t.json("_latest")["feature_version"],
            "v_20251120T000000",
            "{}",
            t.name()
        );
        assert_eq!(out.result()["latest_moved"], false);
        // A newer date moves it.
        t.run(&raw, "2025-11-21", &[]).assert_code(0);
        let latest = t.json("_latest");
        assert_eq!(latest["feature_version"], "v_20251121T000000");
        assert!(latest["path"]
            .as_str()
            .unwrap()
            .ends_with("v_20251121T000000/"));
    }
}

#[test]
fn failures_publish_nothing_and_leave_latest_alone() {
    for t in Target::both() {
        let raw = t.raw("good.csv", &good());
        t.run(&raw, "2025-11-19", &[]).assert_code(0);
        let latest_before = t.read("_latest").unwrap();
        let cases: [(&str, &[u8], i32); 3] = [
            (
                "nulls.csv",
                &std::fs::read(fixture("invalid/high_null_rate.csv")).unwrap(),
                3,
            ),
            (
                "quote.csv",
                &std::fs::read(fixture("invalid/unterminated_quote.csv")).unwrap(),
                3,
            ),
            ("header.csv", b"user_id,amount\n", 3),
        ];
        for (name, body, code) in cases {
            let raw = t.raw(name, body);
            t.run(&raw, "2025-11-20", &[]).assert_code(code);
            for f in ["feature.csv", "schema.json", "metadata.json", "_SUCCESS"] {
                assert!(
                    t.read(&format!("v_20251120T000000/{f}")).is_none(),
                    "{}: {name} left {f}",
                    t.name()
                );
            }
            assert_eq!(
                t.read("_latest").unwrap(),
                latest_before,
                "{}: {name}",
                t.name()
            );
        }
        let missing = match &t {
            Target::Local(sb) => sb.path("raw/missing.csv").display().to_string(),
            Target::S3(..) => "s3://lake/raw/missing.csv".into(),
        };
        t.run(&missing, "2025-11-20", &[]).assert_code(4);
        assert_eq!(t.read("_latest").unwrap(), latest_before);
    }
}

#[test]
fn a_large_feature_file_goes_up_in_parts_and_matches() {
    // ~13 MiB of feature output: two multipart parts of 8 MiB on S3.
    let mut raw = b"user_id,amount,country\n".to_vec();
    for i in 0..1_500_000u32 {
        raw.extend_from_slice(format!("{},{}.25,KR\n", 1000 + i % 977, i % 1013).as_bytes());
    }
    let t = Target::s3();
    let uri = t.raw("big.csv", &raw);
    let out = t.run(&uri, "2025-11-19", &[]);
    out.assert_code(0);
    let feature = t.read("v_20251119T000000/feature.csv").unwrap();
    assert!(
        feature.len() > featurepipe::storage::s3::PART_SIZE,
        "want a multipart-sized output, got {}",
        feature.len()
    );
    let meta = t.json("v_20251119T000000/metadata.json");
    assert_eq!(meta["rows_feature"], 1_500_000);
    use sha2::Digest as _;
    assert_eq!(
        meta["outputs"]["feature.csv"]["sha256"],
        featurepipe::values::digest::hex(&sha2::Sha256::digest(&feature))
    );
    // Spot-check values against the rule: user_id + amount.
    let text = String::from_utf8(feature).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[1], "1000.25");
    let i = 1_234_567u32;
    let want = f64::from(1000 + i % 977) + f64::from(i % 1013) + 0.25;
    assert_eq!(
        lines[1 + i as usize],
        featurepipe::values::number::python_float(want)
    );
}

#[test]
fn dry_run_writes_nothing_and_prints_the_plan() {
    for t in Target::both() {
        let raw = t.raw("a.csv", &good());
        let out = t.run(&raw, "2025-11-19", &["--dry-run"]);
        out.assert_code(0);
        assert!(
            t.read("v_20251119T000000/feature.csv").is_none(),
            "{}",
            t.name()
        );
        assert!(t.read("_latest").is_none());
        let plan = out.result();
        assert_eq!(plan["dry_run"], true);
        assert_eq!(plan["rows_raw"], 300);
        assert_eq!(plan["rows_feature"], 300);
        assert_eq!(plan["schema"]["columns"]["row_sum"], "float");
        let writes = plan["writes"].as_array().unwrap();
        let names: Vec<&str> = writes.iter().map(|w| w["uri"].as_str().unwrap()).collect();
        for f in ["feature.csv", "schema.json", "metadata.json", "_SUCCESS"] {
            assert!(
                names
                    .iter()
                    .any(|n| n.ends_with(&format!("v_20251119T000000/{f}"))),
                "{names:?}"
            );
        }
        assert!(writes.iter().all(|w| w["size_bytes"].as_u64().unwrap() > 0));
        assert_eq!(out.summary()["dry_run"], "true");
    }
}

#[test]
fn a_skipped_dry_run_still_prints_its_result() {
    // stdout always carries one document: here no plan (nothing was read), so the result.
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.arg("--raw").arg(sb.path("missing.csv")).args([
        "--features",
        "out",
        "--dry-run",
        "--skip-if-missing",
    ]);
    let out = run(cmd);
    out.assert_code(99);
    assert_eq!(out.result()["status"], "skipped");
    assert_eq!(out.result()["dry_run"], true);
}
