//! `featurepipe versions list | show | diff` on both backends, over six versions whose
//! fifth adds a column and whose sixth retypes one; read from the documents alone.

use serde_json::{json, Value};

use crate::support::{fixture, run, Output, Target};

/// The first versions' features: `user_id` (string) and `amount` (float).
pub const BASE: &str = "\
[[features.columns]]
name = \"user_id\"
column = \"user_id\"

[[features.columns]]
name = \"amount\"
column = \"amount\"
cast = \"float\"
";

/// [`BASE`] plus `value`.
pub const ADDED: &str = "\
[[features.columns]]
name = \"user_id\"
column = \"user_id\"

[[features.columns]]
name = \"amount\"
column = \"amount\"
cast = \"float\"

[[features.columns]]
name = \"value\"
column = \"event_value\"
cast = \"float\"
";

/// [`ADDED`] with `user_id` an integer.
pub const RETYPED: &str = "\
[[features.columns]]
name = \"user_id\"
column = \"user_id\"
cast = \"integer\"

[[features.columns]]
name = \"amount\"
column = \"amount\"
cast = \"float\"

[[features.columns]]
name = \"value\"
column = \"event_value\"
cast = \"float\"
";

/// The six dates, oldest first.
pub const SIX: [&str; 6] = [
    "2025-11-14",
    "2025-11-15",
    "2025-11-16",
    "2025-11-17",
    "2025-11-18",
    "2025-11-19",
];

pub fn version(date: &str) -> String {
    format!("v_{}T000000", date.replace('-', ""))
}

/// The fixture's header and its first `rows` data rows.
pub fn raw_rows(rows: usize) -> Vec<u8> {
    let text = std::fs::read_to_string(fixture("user_events_20251119.csv")).unwrap();
    text.lines()
        .take(rows + 1)
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes()
}

/// The pipeline file for `features` (one rule), in the target's working folder.
pub fn pipeline_file(t: &Target, name: &str, features: &str) -> String {
    t.sandbox()
        .write(
            name,
            format!("[[rules]]\nrule = \"min_rows\"\nvalue = 1\n\n{features}").as_bytes(),
        )
        .display()
        .to_string()
}

/// Publishes `date` with `rows` rows and `features`.
pub fn publish(t: &Target, date: &str, rows: usize, features: &str) -> Output {
    let config = pipeline_file(t, &format!("pipeline-{date}.toml"), features);
    let raw = t.raw(
        &format!("events_{}.csv", date.replace('-', "")),
        &raw_rows(rows),
    );
    let out = t.run(&raw, date, &["--config", &config]);
    out.assert_code(0);
    out
}

/// Six complete versions: 100..=150 rows; the fifth adds `value`, the sixth retypes
/// `user_id`.
pub fn publish_six(t: &Target) {
    for (i, date) in SIX.iter().enumerate() {
        let features = match i {
            0..=3 => BASE,
            4 => ADDED,
            _ => RETYPED,
        };
        publish(t, date, 100 + 10 * i, features);
    }
}

/// `featurepipe <args...> --features <prefix>` against the target.
pub fn toolkit(t: &Target, args: &[&str]) -> Output {
    // `versions` takes its flags after its own subcommand.
    let words = if args[0] == "versions" { 2 } else { 1 };
    let mut cmd = t.cmd_for(&args[..words].join(" "));
    cmd.args(&args[words..]).args(["--features", &t.features()]);
    run(cmd)
}

pub fn toolkit_json(t: &Target, args: &[&str]) -> Value {
    let out = toolkit(t, args);
    out.assert_code(0);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}):\n{}", t.name(), out.stdout))
}

#[test]
fn list_names_every_version_its_state_and_latest() {
    for t in Target::both() {
        publish_six(&t);
        // Files of a run that died before `_SUCCESS`.
        t.write("v_20251101T000000/feature.csv", b"user_id\r\n1\r\n");

        let listed = toolkit_json(&t, &["versions", "list", "--output", "json"]);
        assert_eq!(listed["latest"], "v_20251119T000000", "{}", t.name());
        let versions = listed["versions"].as_array().unwrap();
        let ids: Vec<&str> = versions
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        let mut want = vec!["v_20251101T000000".to_string()];
        want.extend(SIX.iter().map(|d| version(d)));
        assert_eq!(ids, want);

        let broken = &versions[0];
        assert_eq!(broken["complete"], false);
        assert!(
            broken["incomplete"].as_str().unwrap().contains("_SUCCESS"),
            "{broken}"
        );
        assert_eq!(broken["size_bytes"], 12);
        assert_eq!(broken["writing"], Value::Null);
        for (i, v) in versions[1..].iter().enumerate() {
            assert_eq!(v["complete"], true, "{v}");
            assert_eq!(v["incomplete"], Value::Null);
            assert_eq!(v["rows"], 100 + 10 * i as u64);
            assert_eq!(v["feature_rows"], 100 + 10 * i as u64);
            assert_eq!(v["latest"], i == 5);
            assert_eq!(
                v["execution_date"],
                format!("{}T00:00:00+09:00", SIX[i]),
                "{}",
                t.name()
            );
            assert!(v["created_at"].is_string());
            assert!(v["null_rate"].as_f64().unwrap() >= 0.0);
            // The three files the manifest lists.
            let sizes: u64 = ["feature.csv", "schema.json", "metadata.json"]
                .iter()
                .map(|f| t.read(&format!("{}/{f}", version(SIX[i]))).unwrap().len() as u64)
                .sum();
            assert_eq!(v["size_bytes"], sizes);
        }

        let table = toolkit(&t, &["versions", "list"]);
        table.assert_code(0);
        let lines: Vec<&str> = table.stdout.lines().collect();
        assert!(lines[0].starts_with("version") && lines[0].contains("null_rate"));
        assert!(
            lines[1].starts_with("v_20251101T000000  incomplete"),
            "{}",
            table.stdout
        );
        assert!(lines[7].starts_with("v_20251119T000000  complete") && lines[7].ends_with(" *"));
        assert!(table.stdout.contains("7 versions under"));
        assert!(table.stdout.contains("6 complete, 1 incomplete"));
    }
}

#[test]
fn show_gives_schema_metadata_validation_profile_producer_and_run() {
    for t in Target::both() {
        publish_six(&t);
        let shown = toolkit_json(&t, &["versions", "show", "2025-11-18", "--output", "json"]);
        assert_eq!(shown["version"], "v_20251118T000000");
        assert_eq!(shown["complete"], true);
        assert_eq!(shown["latest"], false);
        assert_eq!(
            shown["schema"]["columns"],
            json!({"user_id": "string", "amount": "float", "value": "float"})
        );
        assert_eq!(shown["metadata"]["rows_raw"], 140);
        assert_eq!(shown["validation"][0]["name"], "min_rows");
        assert_eq!(shown["validation"][0]["passed"], true);
        assert!(shown["profile"]["amount"]["mean"].is_number());
        // What produced it: the pipeline file byte for byte, and the build.
        let config = t.sandbox().path("pipeline-2025-11-18.toml");
        let sha = featurepipe::values::digest::sha256_hex(&std::fs::read(&config).unwrap());
        assert_eq!(shown["producer"]["pipeline_file_sha256"], sha);
        assert_eq!(
            shown["producer"]["spec"]["features"]["columns"][2]["name"],
            "value"
        );
        assert_eq!(
            shown["tool"]["git_commit"],
            featurepipe::build_info::GIT_COMMIT
        );
        // The run that wrote it.
        let meta = t.json("v_20251118T000000/metadata.json");
        assert_eq!(shown["run"]["run_id"], meta["run_id"]);
        assert_eq!(shown["run"]["status"], "success");

        let latest = toolkit_json(&t, &["versions", "show", "latest", "--output", "json"]);
        assert_eq!(latest["version"], "v_20251119T000000");
        assert_eq!(latest["latest"], true);

        let table = toolkit(&t, &["versions", "show", "v_20251119"]);
        table.assert_code(0);
        for needle in [
            "v_20251119T000000 (complete, _latest)",
            "\nschema (row grain",
            "\nvalidation\n",
            "\nprofile\n",
            "success in",
        ] {
            assert!(table.stdout.contains(needle), "{needle}:\n{}", table.stdout);
        }
        // The profile table gives a string column (user_id before the retype) its distinct
        // count.
        let distinct = t.json("v_20251118T000000/metadata.json")["profile"]["user_id"]["distinct"]
            ["count"]
            .to_string();
        let table = toolkit(&t, &["versions", "show", "2025-11-18"]);
        let profile = table.stdout.split("\nprofile\n").nth(1).unwrap_or_default();
        let user_row = profile
            .lines()
            .find(|l| l.starts_with("user_id "))
            .unwrap_or_default();
        assert!(
            user_row.split_whitespace().last() == Some(distinct.as_str()),
            "{}: {user_row:?} should end with {distinct}",
            t.name()
        );
        // A name that is no version, or more than one.
        toolkit(&t, &["versions", "show", "2025-12-01"])
            .assert_code(2)
            .assert_error_mentions("versions list");
        toolkit(&t, &["versions", "show", "202511"])
            .assert_code(2)
            .assert_error_mentions("give more of the id");
    }
}

#[test]
fn diff_tells_an_added_and_a_retyped_column_and_a_changed_pipeline() {
    for t in Target::both() {
        publish_six(&t);
        // Default: the version before latest against latest (the retype).
        let d = toolkit_json(&t, &["versions", "diff", "--output", "json"]);
        assert_eq!(
            (d["a"].as_str(), d["b"].as_str()),
            (Some("v_20251118T000000"), Some("v_20251119T000000"))
        );
        assert_eq!(
            d["columns"]["retyped"],
            json!([{"column": "user_id", "from": "string", "to": "integer"}])
        );
        assert_eq!(d["columns"]["added"], json!([]));
        assert_eq!(d["rows"]["previous"], 140.0);
        assert_eq!(d["rows"]["current"], 150.0);
        assert_eq!(d["rows"]["change"], 10.0);
        assert_eq!(d["producer"]["changed"], true);
        assert_eq!(d["producer"]["features_changed"], true);
        assert_eq!(d["producer"]["rules_changed"], false);

        // The added column, between two named versions.
        let d = toolkit_json(
            &t,
            &[
                "versions",
                "diff",
                "2025-11-17",
                "2025-11-18",
                "--output",
                "json",
            ],
        );
        assert_eq!(d["columns"]["added"], json!(["value"]));
        assert_eq!(d["columns"]["retyped"], json!([]));
        assert_eq!(
            d["header"]["added"],
            json!([]),
            "the raw header did not change"
        );
        let amount = d["profile"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["column"] == "amount")
            .unwrap();
        let stats: Vec<&str> = amount["stats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["stat"].as_str().unwrap())
            .collect();
        assert_eq!(stats, ["mean", "stddev", "min", "max", "nulls"]);
        let a = t.json("v_20251117T000000/metadata.json")["profile"]["amount"]["mean"]
            .as_f64()
            .unwrap();
        let b = t.json("v_20251118T000000/metadata.json")["profile"]["amount"]["mean"]
            .as_f64()
            .unwrap();
        assert_eq!(amount["stats"][0]["previous"].as_f64(), Some(a));
        assert_eq!(amount["stats"][0]["current"].as_f64(), Some(b));
        // A string column's distinct count ({"count": n, "exact": true} in the profile).
        let user = d["profile"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["column"] == "user_id")
            .unwrap();
        let distinct = user["stats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stat"] == "distinct")
            .unwrap_or_else(|| panic!("{}: no distinct in {user}", t.name()));
        let count = |v: &str| {
            t.json(&format!("{v}/metadata.json"))["profile"]["user_id"]["distinct"]["count"]
                .as_f64()
                .unwrap()
        };
        assert_eq!(
            distinct["previous"].as_f64(),
            Some(count("v_20251117T000000"))
        );
        assert_eq!(
            distinct["current"].as_f64(),
            Some(count("v_20251118T000000"))
        );

        // Same pipeline file content, different dates: nothing produced them differently.
        let d = toolkit_json(
            &t,
            &[
                "versions",
                "diff",
                "2025-11-15",
                "2025-11-16",
                "--output",
                "json",
            ],
        );
        assert_eq!(d["producer"]["changed"], false, "{}", d["producer"]);
        assert!(d["columns"]["added"].as_array().unwrap().is_empty());

        let table = toolkit(&t, &["versions", "diff"]);
        table.assert_code(0);
        assert!(
            table
                .stdout
                .contains("columns: retyped user_id string -> integer"),
            "{}",
            table.stdout
        );
        assert!(table
            .stdout
            .contains("pipeline: changed (features; pipeline file sha256"));
        assert!(
            table.stdout.contains("rows          140"),
            "{}",
            table.stdout
        );

        // An incomplete version is not compared.
        t.write("v_20251120T000000/feature.csv", b"x\r\n");
        toolkit(&t, &["versions", "diff", "2025-11-19", "2025-11-20"])
            .assert_code(2)
            .assert_error_mentions("not complete");
    }
}

/// `featurepipe <args...> --features <prefix>` with stdout a pipe nobody reads (the reader
/// is gone before anything is written, as with `| head` on a long report).
fn into_closed_pipe(t: &Target, args: &[&str]) -> (i32, String) {
    let words = if args[0] == "versions" { 2 } else { 1 };
    let mut cmd = t.sandbox().std_cmd_for(&args[..words].join(" "));
    cmd.args(&args[words..])
        .args(["--features", &t.features()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_reader_that_stops_reading_is_no_internal_error() {
    let t = Target::local();
    publish_six(&t);
    for args in [
        &["versions", "list", "--output", "json"][..],
        &["versions", "diff"],
        &["runs", "--output", "csv"],
        &["gc", "--keep", "5", "--output", "json"],
    ] {
        let (code, stderr) = into_closed_pipe(&t, args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(!stderr.contains("internal error"), "{args:?}: {stderr}");
    }
    // gc did its work: one version fewer.
    let listed = toolkit_json(&t, &["versions", "list", "--output", "json"]);
    assert_eq!(listed["versions"].as_array().map(Vec::len), Some(5));
}
