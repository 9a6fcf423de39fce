//! Feature kinds of a pipeline file: row grain (pass-through, rename, casts, `row_sum`)
//! and entity grain (`group_by`, time buckets, every aggregate) against a brute-force
//! computation on generated data; the profile against a reference computation; drift of
//! column means over successive versions; `schema.json` keys and grain.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::support::{csv_lines, read_json, run_config, run_pipeline, Output, Sandbox};

/// Runs the pipeline `toml` (features) over `raw` for 2025-11-19.
fn run_features(sb: &Sandbox, raw: &[u8], toml: &str) -> Output {
    run_pipeline(
        sb,
        raw,
        "",
        &format!("[[rules]]\nrule = \"min_rows\"\nvalue = 1\n\n{toml}"),
    )
}

fn version_file(sb: &Sandbox, name: &str) -> std::path::PathBuf {
    sb.path(&format!("out/v_20251119T000000/{name}"))
}

/// A deterministic generator (splitmix64), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One generated raw row.
#[derive(Clone, Debug)]
struct Event {
    user: String,
    /// Hour of 2025-11-19 / 20 in +09:00, or `None` for an empty or unreadable cell.
    time: Option<(u32, u32, u32)>,
    amount_text: String,
    kind: String,
}

fn generate(rows: usize, seed: u64) -> (Vec<u8>, Vec<Event>) {
    let mut rng = Rng(seed);
    let mut raw = b"user_id,event_time,amount,kind\n".to_vec();
    let mut events = Vec::new();
    for _ in 0..rows {
        let user = match rng.below(20) {
            0 => String::new(),
            n => format!("u{}", rng.below(40) + n),
        };
        let (time, time_text) = match rng.below(12) {
            0 => (None, String::new()),
            1 => (None, "yesterday".to_string()),
            _ => {
                let (day, hour, minute) = (
                    19 + rng.below(2) as u32,
                    rng.below(24) as u32,
                    rng.below(3) as u32,
                );
                (
                    Some((day, hour, minute)),
                    format!("2025-11-{day}T{hour:02}:{minute:02}:00+09:00"),
                )
            }
        };
        let amount_text = match rng.below(10) {
            0 => String::new(),
            1 => "n/a".to_string(),
            _ => format!("{}.{}", rng.below(1000), rng.below(100)),
        };
        let kind = ["view", "click", "buy", ""][rng.below(4) as usize].to_string();
        raw.extend_from_slice(format!("{user},{time_text},{amount_text},{kind}\n").as_bytes());
        events.push(Event {
            user,
            time,
            amount_text,
            kind,
        });
    }
    (raw, events)
}

const ENTITY_TOML: &str = r#"
[features]
group_by = ["user_id"]
time_bucket = { column = "event_time", every = "day", name = "day" }

[[features.columns]]
name = "events"
agg = "count"

[[features.columns]]
name = "amount_sum"
agg = "sum"
column = "amount"

[[features.columns]]
name = "amount_mean"
agg = "mean"
column = "amount"

[[features.columns]]
name = "amount_min"
agg = "min"
column = "amount"

[[features.columns]]
name = "amount_max"
agg = "max"
column = "amount"

[[features.columns]]
name = "kinds"
agg = "count_distinct"
column = "kind"

[[features.columns]]
name = "missing_amounts"
agg = "null_count"
column = "amount"

[[features.columns]]
name = "first_kind"
agg = "first"
column = "kind"
by = "event_time"

[[features.columns]]
name = "last_amount"
agg = "last"
column = "amount"
by = "event_time"
"#;

#[derive(Default)]
struct Group {
    count: u64,
    amounts: Vec<f64>,
    kinds: BTreeSet<String>,
    nulls: u64,
    first: Option<((u32, u32, u32), String)>,
    last: Option<((u32, u32, u32), String)>,
}

#[test]
fn entity_grain_matches_a_brute_force_group_by() {
    let (raw, events) = generate(3000, 7);
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    for e in &events {
        let day = e
            .time
            .map(|(d, ..)| format!("2025-11-{d}T00:00:00+09:00"))
            .unwrap_or_default();
        let g = groups.entry((e.user.clone(), day)).or_default();
        g.count += 1;
        match e.amount_text.parse::<f64>() {
            Ok(v) => g.amounts.push(v),
            Err(_) if e.amount_text.is_empty() => g.nulls += 1,
            Err(_) => {}
        }
        if !e.kind.is_empty() {
            g.kinds.insert(e.kind.clone());
        }
        if let Some(t) = e.time {
            // first: strictly earlier wins (ties keep the earlier row); last: later or equal.
            if g.first.as_ref().is_none_or(|(ft, _)| t < *ft) {
                g.first = Some((t, e.kind.clone()));
            }
            if g.last.as_ref().is_none_or(|(lt, _)| t >= *lt) {
                g.last = Some((t, e.amount_text.clone()));
            }
        }
    }

    let sb = Sandbox::new();
    let out = run_features(&sb, &raw, ENTITY_TOML);
    out.assert_code(0);
    let lines = csv_lines(&std::fs::read(version_file(&sb, "feature.csv")).unwrap());
    assert_eq!(
        lines[0],
        "user_id,day,events,amount_sum,amount_mean,amount_min,amount_max,kinds,missing_amounts,first_kind,last_amount"
    );
    assert_eq!(lines.len() - 1, groups.len(), "one row per (user, day)");
    let num = |s: &str| -> Option<f64> { (!s.is_empty()).then(|| s.parse().unwrap()) };
    for (line, ((user, day), g)) in lines[1..].iter().zip(&groups) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(
            (cells[0], cells[1]),
            (user.as_str(), day.as_str()),
            "sorted by key"
        );
        assert_eq!(cells[2], g.count.to_string());
        let sum: f64 = g.amounts.iter().sum();
        let close = |got: Option<f64>, want: Option<f64>| match (got, want) {
            (Some(a), Some(b)) => assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "{line}: {a} vs {b}"
            ),
            (a, b) => assert_eq!(a, b, "{line}"),
        };
        let any = !g.amounts.is_empty();
        close(num(cells[3]), any.then_some(sum));
        close(num(cells[4]), any.then(|| sum / g.amounts.len() as f64));
        close(num(cells[5]), g.amounts.iter().copied().reduce(f64::min));
        close(num(cells[6]), g.amounts.iter().copied().reduce(f64::max));
        assert_eq!(cells[7], g.kinds.len().to_string(), "{line}");
        assert_eq!(cells[8], g.nulls.to_string(), "{line}");
        assert_eq!(
            cells[9],
            g.first.as_ref().map_or("", |(_, k)| k.as_str()),
            "{line}"
        );
        assert_eq!(
            cells[10],
            g.last.as_ref().map_or("", |(_, a)| a.as_str()),
            "{line}"
        );
    }

    let schema = read_json(&version_file(&sb, "schema.json"));
    assert_eq!(schema["grain"], "entity");
    assert_eq!(schema["key_columns"], json!(["user_id", "day"]));
    assert_eq!(schema["columns"]["events"], "integer");
    assert_eq!(schema["columns"]["amount_mean"], "float");
    assert_eq!(schema["columns"]["first_kind"], "string");
    let meta = read_json(&version_file(&sb, "metadata.json"));
    assert_eq!(meta["feature_groups"], groups.len());
    assert_eq!(meta["rows_feature"], groups.len());
    assert_eq!(meta["rows_raw"], events.len());

    // A re-run (forced) writes byte-identical features.
    let before = std::fs::read(version_file(&sb, "feature.csv")).unwrap();
    run_config(&sb, &sb.path("pipeline.toml"), "2025-11-19", &["--force"]).assert_code(0);
    assert_eq!(
        std::fs::read(version_file(&sb, "feature.csv")).unwrap(),
        before
    );
}

#[test]
fn hour_buckets_split_a_day() {
    let raw = b"user_id,event_time,amount,kind\n\
a,2025-11-19T09:59:59+09:00,1,view\n\
a,2025-11-19T10:00:00+09:00,2,view\n\
a,2025-11-19T01:30:00Z,4,view\n\
b,2025-11-19 10:15:00,8,view\n";
    let sb = Sandbox::new();
    run_features(
        &sb,
        raw,
        "[features]\ngroup_by = [\"user_id\"]\ntime_bucket = { column = \"event_time\", every = \"hour\" }\n\n[[features.columns]]\nname = \"amount\"\nagg = \"sum\"\ncolumn = \"amount\"\n",
    )
    .assert_code(0);
    let lines = csv_lines(&std::fs::read(version_file(&sb, "feature.csv")).unwrap());
    // 01:30Z is 10:30 in Seoul; a time without an offset is Seoul wall-clock time.
    assert_eq!(
        lines,
        [
            "user_id,event_time_hour,amount",
            "a,2025-11-19T09:00:00+09:00,1.0",
            "a,2025-11-19T10:00:00+09:00,6.0",
            "b,2025-11-19T10:00:00+09:00,8.0",
        ]
    );
}

#[test]
fn row_grain_passes_through_renames_casts_and_sums() {
    let raw = b"id,name,amount,qty,note\n\
1,alice,1.5,2,plain\n\
2,bob,n/a,x,\"has, comma\"\n\
3,,,3.0,\"say \"\"hi\"\"\"\n";
    let sb = Sandbox::new();
    run_features(
        &sb,
        raw,
        r#"
[[features.columns]]
name = "event_id"
column = "id"

[[features.columns]]
name = "who"
column = "name"

[[features.columns]]
name = "amount"
column = "amount"
cast = "float"

[[features.columns]]
name = "qty"
column = "qty"
cast = "integer"

[[features.columns]]
name = "note"
column = "note"

[[features.columns]]
name = "total"
row_sum = ["amount", "qty"]
"#,
    )
    .assert_code(0);
    let body = std::fs::read_to_string(version_file(&sb, "feature.csv")).unwrap();
    assert_eq!(
        body,
        "event_id,who,amount,qty,note,total\r\n\
1,alice,1.5,2,plain,3.5\r\n\
2,bob,,,\"has, comma\",0.0\r\n\
3,,,,\"say \"\"hi\"\"\",3.0\r\n"
    );
    let schema = read_json(&version_file(&sb, "schema.json"));
    assert_eq!(schema["grain"], "row");
    assert_eq!(schema["key_columns"], json!(["event_id", "who", "note"]));
    assert_eq!(
        schema["columns"],
        json!({"event_id": "string", "who": "string", "amount": "float", "qty": "integer", "note": "string", "total": "float"})
    );
}

#[test]
fn the_profile_matches_a_reference_computation() {
    let (raw, events) = generate(2000, 11);
    let sb = Sandbox::new();
    run_features(
        &sb,
        &raw,
        r#"
[[features.columns]]
name = "amount"
column = "amount"
cast = "float"

[[features.columns]]
name = "kind"
column = "kind"
"#,
    )
    .assert_code(0);
    let profile = read_json(&version_file(&sb, "metadata.json"))["profile"].clone();
    let amounts: Vec<f64> = events
        .iter()
        .filter_map(|e| e.amount_text.parse().ok())
        .collect();
    let n = amounts.len() as f64;
    let mean = amounts.iter().sum::<f64>() / n;
    let var = amounts.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let a = &profile["amount"];
    assert_eq!(a["count"], events.len());
    assert_eq!(a["nulls"], events.len() - amounts.len());
    let close = |got: &Value, want: f64| {
        let got = got.as_f64().unwrap_or(f64::NAN);
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    };
    close(&a["mean"], mean);
    close(&a["stddev"], var.sqrt());
    close(
        &a["min"],
        amounts.iter().copied().fold(f64::INFINITY, f64::min),
    );
    close(
        &a["max"],
        amounts.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );

    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for e in events.iter().filter(|e| !e.kind.is_empty()) {
        *counts.entry(&e.kind).or_default() += 1;
    }
    let k = &profile["kind"];
    assert_eq!(
        k["nulls"],
        events.iter().filter(|e| e.kind.is_empty()).count()
    );
    assert_eq!(k["distinct"]["count"], counts.len());
    assert_eq!(k["distinct"]["exact"], true);
    let mut top: Vec<(&str, u64)> = counts.into_iter().collect();
    top.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
    let got: Vec<(String, u64)> = k["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["value"].as_str().unwrap().to_string(),
                t["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = top.iter().map(|(v, c)| (v.to_string(), *c)).collect();
    assert_eq!(got, want);
}

#[test]
fn drift_records_numeric_column_means_over_successive_versions() {
    let sb = Sandbox::new();
    let config = sb.write(
        "pipeline.toml",
        br#"
[source]
path = "raw/{ds_nodash}.csv"

[output]
prefix = "out"

[[features.columns]]
name = "amount"
column = "amount"
cast = "float"

[[features.columns]]
name = "user_id"
column = "user_id"
"#,
    );
    let day = |date: &str, amounts: &[&str]| {
        let mut raw = b"user_id,amount\n".to_vec();
        for (i, a) in amounts.iter().enumerate() {
            raw.extend_from_slice(format!("u{i},{a}\n").as_bytes());
        }
        sb.write(&format!("raw/{}.csv", date.replace('-', "")), &raw);
        run_config(&sb, &config, date, &[]).assert_code(0);
        read_json(&sb.path(&format!(
            "out/v_{}T000000/metadata.json",
            date.replace('-', "")
        )))
    };
    let m1 = day("2025-11-17", &["1", "3"]);
    assert_eq!(m1["drift"]["column_means"]["amount"]["current"], 2.0);
    assert_eq!(
        m1["drift"]["column_means"]["amount"]["previous"],
        Value::Null
    );
    // String columns have no mean and no drift entry.
    assert!(m1["drift"]["column_means"].get("user_id").is_none());
    let m2 = day("2025-11-18", &["4", "", "8"]);
    assert_eq!(m2["drift"]["column_means"]["amount"]["previous"], 2.0);
    assert_eq!(m2["drift"]["column_means"]["amount"]["current"], 6.0);
    assert_eq!(m2["drift"]["column_means"]["amount"]["change"], 4.0);
    assert_eq!(m2["drift"]["column_means"]["amount"]["relative"], 2.0);
    let m3 = day("2025-11-19", &["3"]);
    assert_eq!(m3["drift"]["previous_version"], "v_20251118T000000");
    assert_eq!(m3["drift"]["column_means"]["amount"]["change"], -3.0);
    assert_eq!(m3["drift"]["column_means"]["amount"]["relative"], -0.5);
}
