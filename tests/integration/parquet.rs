//! `feature.parquet` (`--output-formats`, `[output] formats`): published beside or instead
//! of `feature.csv`, listed in `_SUCCESS`, `schema.json` and `metadata.json`, typed from
//! the feature schema (timestamps as real TIMESTAMP columns), equal to the CSV cell by cell,
//! byte-identical on a re-run.

use bytes::Bytes;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::json;

use crate::support::{csv_lines, fixture, read_json, run, run_config, Output, Sandbox, Target};

const V: &str = "v_20251119T000000";

/// The rows of a Parquet file: (column name, value) per cell, and each column's
/// physical and logical type.
fn parquet_rows(bytes: Vec<u8>) -> (Vec<Vec<(String, Field)>>, Vec<String>) {
    let reader = SerializedFileReader::new(Bytes::from(bytes)).unwrap();
    let types = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| {
            format!(
                "{} {:?} {:?}",
                c.name(),
                c.physical_type(),
                c.logical_type_ref()
            )
        })
        .collect();
    let rows = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| {
            r.unwrap()
                .get_column_iter()
                .map(|(n, f)| (n.clone(), f.clone()))
                .collect()
        })
        .collect();
    (rows, types)
}

/// A Parquet cell as `feature.csv` writes it (timestamps in `tz_offset` hours east).
fn as_csv_cell(field: &Field, tz_offset: i64) -> String {
    match field {
        Field::Null => String::new(),
        Field::Str(s) => s.clone(),
        Field::Long(v) => v.to_string(),
        Field::Bool(b) => b.to_string(),
        Field::Double(v) => featurepipe::values::number::python_float(*v),
        Field::TimestampMicros(us) => {
            let offset = chrono::FixedOffset::east_opt((tz_offset * 3600) as i32).unwrap();
            chrono::DateTime::from_timestamp_micros(*us)
                .unwrap()
                .with_timezone(&offset)
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
        }
        other => panic!("unexpected Parquet value {other:?}"),
    }
}

/// Splits a CSV line of `feature.csv` (no quoted fields in these fixtures' outputs).
fn cells(line: &str) -> Vec<String> {
    line.split(',').map(str::to_string).collect()
}

/// Every Parquet cell equals its `feature.csv` cell (the first `width` columns).
fn assert_equal_to_csv(csv: &[u8], parquet: Vec<u8>, tz_offset: i64) -> Vec<String> {
    let lines = csv_lines(csv);
    let (rows, types) = parquet_rows(parquet);
    assert_eq!(rows.len(), lines.len() - 1, "one Parquet row per CSV row");
    let header = cells(&lines[0]);
    for (line, row) in lines[1..].iter().zip(&rows) {
        let want = cells(line);
        for (i, name) in header.iter().enumerate() {
            assert_eq!(&row[i].0, name);
            assert_eq!(
                as_csv_cell(&row[i].1, tz_offset),
                want[i],
                "{name} in {line}"
            );
        }
    }
    types
}

#[test]
fn entity_grain_parquet_is_published_listed_typed_and_equal_to_the_csv() {
    for target in Target::both() {
        let name = target.name();
        let raw = std::fs::read(fixture("user_events_20251119.csv")).unwrap();
        let raw = target.raw("events.csv", &raw);
        let config = fixture("pipelines/daily_user_features.toml");
        let config = config.to_str().unwrap();
        let args = ["--config", config, "--output-formats", "csv,parquet"];
        target.run(&raw, "2025-11-19", &args).assert_code(0);

        let csv = target.read(&format!("{V}/feature.csv")).unwrap();
        let parquet = target.read(&format!("{V}/feature.parquet")).unwrap();
        // Listed in _SUCCESS and metadata.json with its size and digest.
        let manifest = target.json(&format!("{V}/_SUCCESS"));
        let listed = &manifest["files"]["feature.parquet"];
        assert_eq!(listed["size_bytes"], parquet.len(), "{name}");
        assert_eq!(listed["sha256"], sha256(&parquet), "{name}");
        let meta = target.json(&format!("{V}/metadata.json"));
        assert_eq!(meta["outputs"]["feature.parquet"], *listed, "{name}");
        let schema = target.json(&format!("{V}/schema.json"));
        assert_eq!(schema["columns"]["event_date"], "timestamp", "{name}");
        assert_eq!(
            schema["parquet"],
            json!({
                "file": "feature.parquet",
                "columns": {
                    "user_id": "STRING", "event_date": "TIMESTAMP(MICROS,UTC)", "events": "INT64",
                    "amount_sum": "DOUBLE", "amount_mean": "DOUBLE", "event_value_max": "DOUBLE",
                    "event_types": "INT64", "missing_amounts": "INT64",
                    "first_event_type": "STRING", "last_device": "STRING"
                },
                "timestamp_field": "event_date"
            }),
            "{name}"
        );

        let types = assert_equal_to_csv(&csv, parquet.clone(), 9);
        assert_eq!(types[0], "user_id BYTE_ARRAY Some(String)");
        assert!(types[1].starts_with("event_date INT64 Some(Timestamp(TimestampType { is_adjusted_to_u_t_c: true, unit: MICROS"), "{}", types[1]);
        assert_eq!(types[2], "events INT64 None");
        assert_eq!(types[3], "amount_sum DOUBLE None");

        // A forced re-run publishes the same bytes.
        target
            .run(&raw, "2025-11-19", &[&args[..], &["--force"]].concat())
            .assert_code(0);
        assert_eq!(
            target.read(&format!("{V}/feature.parquet")).unwrap(),
            parquet,
            "{name}: a re-run must give a byte-identical feature.parquet"
        );
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_empty_group_key_stays_a_value_not_a_null() {
    let sb = Sandbox::new();
    sb.write("raw/20251119.csv", b"user_id,amount\n,1\na,2\n");
    let config = sb.write(
        "p.toml",
        b"[source]\npath = \"raw/{ds_nodash}.csv\"\n[output]\nprefix = \"keys\"\nformats = [\"parquet\"]\n\
          [features]\ngroup_by = [\"user_id\"]\n[[features.columns]]\nname = \"n\"\nagg = \"count\"\n",
    );
    run_config(&sb, &config, "2025-11-19", &[]).assert_code(0);
    let (rows, _) =
        parquet_rows(std::fs::read(sb.path(&format!("keys/{V}/feature.parquet"))).unwrap());
    assert_eq!(rows[0][0].1, Field::Str(String::new()), "the empty key");
    assert_eq!(rows[1][0].1, Field::Str("a".into()));
    // No timestamp column: the execution date is every row's event time.
    let seoul_midnight = 1_763_478_000_000_000; // 2025-11-19T00:00:00+09:00
    assert_eq!(
        rows[0][2],
        (
            "event_timestamp".to_string(),
            Field::TimestampMicros(seoul_midnight)
        )
    );
}

const TYPED: &str = r#"
[[features.columns]]
name = "event_id"
column = "id"

[[features.columns]]
name = "premium"
column = "premium"
cast = "boolean"

[[features.columns]]
name = "at"
column = "at"
cast = "timestamp"

[[features.columns]]
name = "day"
column = "day"
cast = "timestamp"
format = "%d/%m/%Y"

[[features.columns]]
name = "qty"
column = "qty"
cast = "integer"

[[features.columns]]
name = "amount"
column = "amount"
cast = "float"
"#;

#[test]
fn row_grain_casts_to_booleans_and_timestamps_in_both_files() {
    let raw = b"id,premium,at,day,qty,amount\n\
e1,1,2025-11-19T00:03:04+09:00,19/11/2025,3,1.5\n\
e2,FALSE,2025-11-18T23:00:00.123456789Z,01/02/2025,x,\n\
e3,maybe,2025-11-19 10:00:00,not a day,-4,1e3\n\
e4,,,,,\n";
    let sb = Sandbox::new();
    sb.write("raw/20251119.csv", raw);
    let config = sb.write(
        "typed.toml",
        format!(
            "[source]\npath = \"raw/{{ds_nodash}}.csv\"\n[output]\nprefix = \"out\"\nformats = [\"csv\", \"parquet\"]\n{TYPED}"
        )
        .as_bytes(),
    );
    run_config(&sb, &config, "2025-11-19", &[]).assert_code(0);
    let v = sb.path(&format!("out/{V}"));
    let csv = std::fs::read(v.join("feature.csv")).unwrap();
    assert_eq!(
        csv_lines(&csv),
        [
            "event_id,premium,at,day,qty,amount",
            "e1,true,2025-11-19T00:03:04+09:00,2025-11-19T00:00:00+09:00,3,1.5",
            // Truncated to microseconds, shown in the pipeline zone.
            "e2,false,2025-11-19T08:00:00.123456+09:00,2025-02-01T00:00:00+09:00,,",
            "e3,,2025-11-19T10:00:00+09:00,,-4,1000.0",
            "e4,,,,,",
        ]
    );
    let types = assert_equal_to_csv(&csv, std::fs::read(v.join("feature.parquet")).unwrap(), 9);
    assert_eq!(types[1], "premium BOOLEAN None");
    assert!(
        types[2].starts_with("at INT64 Some(Timestamp("),
        "{}",
        types[2]
    );
    assert_eq!(types.len(), 6, "a timestamp column: no event_timestamp");
    let schema = read_json(&v.join("schema.json"));
    assert_eq!(schema["columns"]["premium"], "boolean");
    assert_eq!(schema["columns"]["at"], "timestamp");
    assert_eq!(schema["parquet"]["timestamp_field"], "at");
    let meta = read_json(&v.join("metadata.json"));
    assert_eq!(meta["profile"]["premium"]["type"], "boolean");
    assert_eq!(meta["profile"]["premium"]["nulls"], 2);
}

#[test]
fn parquet_alone_leaves_feature_csv_out_and_keeps_the_profile() {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(fixture("user_events_20251119.csv"))
        .args(["--features", "only", "--execution-date", "2025-11-19"])
        .env("DP_OUTPUT_FORMATS", "parquet");
    run(cmd).assert_code(0);
    let v = sb.path(&format!("only/{V}"));
    assert!(!v.join("feature.csv").exists());
    let manifest = read_json(&v.join("_SUCCESS"));
    let files: Vec<&String> = manifest["files"].as_object().unwrap().keys().collect();
    assert_eq!(
        files,
        ["feature.parquet", "metadata.json", "schema.json"],
        "exactly what the version holds"
    );
    let meta = read_json(&v.join("metadata.json"));
    assert!(meta["outputs"].get("feature.csv").is_none());
    assert_eq!(meta["profile"]["row_sum"]["count"], 300);

    // The same rows as a CSV-only run of the default pipeline.
    let mut cmd = sb.cmd();
    cmd.arg("--raw")
        .arg(fixture("user_events_20251119.csv"))
        .args(["--features", "csv", "--execution-date", "2025-11-19"]);
    run(cmd).assert_code(0);
    let csv = std::fs::read(sb.path(&format!("csv/{V}/feature.csv"))).unwrap();
    let (rows, types) = parquet_rows(std::fs::read(v.join("feature.parquet")).unwrap());
    assert_eq!(types[0], "row_sum DOUBLE None");
    let lines = csv_lines(&csv);
    assert_eq!(rows.len(), lines.len() - 1);
    for (line, row) in lines[1..].iter().zip(&rows) {
        assert_eq!(&as_csv_cell(&row[0].1, 9), line);
    }
    assert_eq!(
        meta["profile"],
        read_json(&sb.path(&format!("csv/{V}/metadata.json")))["profile"],
        "the profile does not depend on the files written"
    );
}

#[test]
fn adding_parquet_does_not_change_feature_csv() {
    let sb = Sandbox::new();
    let run_into = |out: &str, formats: &str| {
        let mut cmd = sb.cmd();
        cmd.arg("--config")
            .arg(fixture("pipelines/strict_daily_user_events.toml"))
            .arg("--raw")
            .arg(fixture("user_events_20251119.csv"))
            .args(["--features", out, "--execution-date", "2025-11-19"])
            .args(["--output-formats", formats]);
        run(cmd).assert_code(0);
        std::fs::read(sb.path(&format!("{out}/{V}/feature.csv"))).unwrap()
    };
    assert_eq!(run_into("a", "csv"), run_into("b", "parquet,csv"));
}

fn error_of(out: &Output) -> String {
    out.assert_code(2);
    out.error_line().to_string()
}

#[test]
fn formats_are_checked_and_errors_name_where_they_came_from() {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    cmd.args([
        "--output-formats",
        "csv,orc",
        "--execution-date",
        "2025-11-19",
    ]);
    let m = error_of(&run(cmd));
    assert!(
        m.contains("--output-formats: unknown output format \"orc\""),
        "{m}"
    );

    let mut cmd = sb.cmd();
    cmd.env("DP_OUTPUT_FORMATS", "csv,csv");
    let m = error_of(&run(cmd));
    assert!(
        m.contains("DP_OUTPUT_FORMATS: output format \"csv\" is listed twice"),
        "{m}"
    );

    let config = sb.write("f.toml", b"name = \"x\"\n\n[output]\nformats = []\n");
    let mut cmd = sb.cmd_for("check-config");
    cmd.arg(&config);
    let m = error_of(&run(cmd));
    assert!(
        m.contains("f.toml line 4: [output] formats: at least one"),
        "{m}"
    );

    // A non-timestamp column named event_timestamp cannot stand beside the added one.
    let config = sb.write(
        "clash.toml",
        b"[output]\nformats = [\"parquet\"]\n[[features.columns]]\nname = \"event_timestamp\"\ncolumn = \"event_time\"\n",
    );
    let mut cmd = sb.cmd_for("check-config");
    cmd.arg(&config);
    let m = error_of(&run(cmd));
    assert!(m.contains("\"event_timestamp\" is not a timestamp"), "{m}");
}
