//! Two versions side by side, from their documents (`versions diff`): the output schema
//! and raw header, rows and null rate, each column's profile figures, and whether the
//! pipeline or the build that produced them changed. Pure: reading is `catalog`'s.

use serde::Serialize;
use serde_json::Value;

use super::catalog::Documents;
use super::documents::Change;
use super::history::SchemaHead;
use super::schema_diff::{self, ColumnChanges};

/// The profile figures compared, in this order (those a column has).
pub const PROFILE_STATS: [&str; 6] = ["mean", "stddev", "min", "max", "nulls", "distinct"];

/// What changed from version `a` to version `b`.
#[derive(Debug, Clone, Serialize)]
pub struct VersionDiff {
    pub a: String,
    pub b: String,
    /// Output columns (`schema.json`); `None` if either schema is unreadable.
    pub columns: Option<ColumnChanges>,
    /// The raw header (`metadata.json` `raw_columns`).
    pub header: Option<ColumnChanges>,
    pub rows: Option<Change>,
    pub feature_rows: Option<Change>,
    pub null_rate: Option<Change>,
    /// Profile figures of the columns both versions have, in `b`'s column order.
    pub profile: Vec<ColumnDiff>,
    pub producer: ProducerDiff,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnDiff {
    pub column: String,
    /// `b`'s type.
    #[serde(rename = "type")]
    pub ty: String,
    /// Each figure `b` has (`previous` is `a`'s, `current` `b`'s), in
    /// [`PROFILE_STATS`] order.
    pub stats: Vec<StatChange>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatChange {
    pub stat: &'static str,
    #[serde(flatten)]
    pub change: Change,
}

impl ColumnDiff {
    pub fn stat(&self, name: &str) -> Option<&Change> {
        self.stats
            .iter()
            .find(|s| s.stat == name)
            .map(|s| &s.change)
    }
}

/// Whether the pipeline that produced the versions changed; `None` where a version does
/// not record it (written before `producer` existed).
#[derive(Debug, Clone, Serialize)]
pub struct ProducerDiff {
    /// Anything below changed.
    pub changed: Option<bool>,
    pub spec_changed: Option<bool>,
    pub source_changed: Option<bool>,
    pub rules_changed: Option<bool>,
    pub features_changed: Option<bool>,
    pub pipeline_file: [Option<String>; 2],
    pub pipeline_file_sha256: [Option<String>; 2],
    /// `version (git commit)` of the build that wrote each.
    pub tool: [Option<String>; 2],
}

/// Compares `a` (older) with `b` (newer).
pub fn diff(a: &Documents, b: &Documents) -> VersionDiff {
    let meta_a = a.metadata.as_ref();
    let meta_b = b.metadata.as_ref();
    let figure = |key: &str| -> Option<Change> {
        let now = meta_b?.get(key)?.as_f64()?;
        Some(Change::new(meta_a.and_then(|m| m.get(key)?.as_f64()), now))
    };
    VersionDiff {
        a: a.entry.version.clone(),
        b: b.entry.version.clone(),
        columns: match (typed_columns(a), typed_columns(b)) {
            (Some(before), Some(after)) => Some(schema_diff::compare_typed(&before, &after)),
            _ => None,
        },
        header: match (raw_columns(meta_a), raw_columns(meta_b)) {
            (Some(before), Some(after)) => Some(schema_diff::compare_names(&before, &after)),
            _ => None,
        },
        rows: figure("rows_raw"),
        feature_rows: figure("rows_feature"),
        null_rate: figure("raw_null_rate"),
        profile: profile_diff(meta_a, meta_b),
        producer: producer_diff(meta_a, meta_b),
    }
}

fn typed_columns(docs: &Documents) -> Option<Vec<(String, String)>> {
    let schema: SchemaHead = serde_json::from_value(docs.schema.clone()?).ok()?;
    Some(schema.typed())
}

fn raw_columns(metadata: Option<&Value>) -> Option<Vec<String>> {
    serde_json::from_value(metadata?.get("raw_columns")?.clone()).ok()
}

/// A column profile's figure as a number: `mean`, `nulls`, ... are numbers; `distinct` is
/// `{"count": 90, "exact": true}` (its count is the figure).
pub fn profile_figure(column: &Value, stat: &str) -> Option<f64> {
    let value = column.get(stat)?;
    value
        .as_f64()
        .or_else(|| value.get("count").and_then(Value::as_f64))
}

/// Each column in both profiles: every figure `b` has, against `a`'s.
fn profile_diff(a: Option<&Value>, b: Option<&Value>) -> Vec<ColumnDiff> {
    let profile = |m: Option<&Value>| m.and_then(|m| m.get("profile")?.as_object().cloned());
    let (Some(before), Some(after)) = (profile(a), profile(b)) else {
        return Vec::new();
    };
    after
        .iter()
        .filter_map(|(column, now)| {
            let was = before.get(column)?;
            let stats = PROFILE_STATS
                .iter()
                .filter_map(|&stat| {
                    let current = profile_figure(now, stat)?;
                    let change = Change::new(profile_figure(was, stat), current);
                    Some(StatChange { stat, change })
                })
                .collect();
            Some(ColumnDiff {
                column: column.clone(),
                ty: now
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
                stats,
            })
        })
        .collect()
}

fn producer_diff(a: Option<&Value>, b: Option<&Value>) -> ProducerDiff {
    let producer = |m: Option<&Value>| m.and_then(|m| m.get("producer")).cloned();
    let (pa, pb) = (producer(a), producer(b));
    let text = |p: &Option<Value>, key: &str| {
        p.as_ref()
            .and_then(|p| p.get(key)?.as_str())
            .map(str::to_string)
    };
    let differs = |path: &[&str]| -> Option<bool> {
        let at = |p: &Option<Value>| {
            path.iter()
                .try_fold(p.as_ref()?, |v, key| v.get(*key))
                .cloned()
        };
        Some(at(&pa)? != at(&pb)?)
    };
    let tool = |m: Option<&Value>| {
        let t = m?.get("tool")?;
        let version = t.get("version")?.as_str()?;
        Some(match t.get("git_commit").and_then(Value::as_str) {
            Some(commit) => format!("{version} ({commit})"),
            None => version.to_string(),
        })
    };
    let tools = [tool(a), tool(b)];
    let spec_changed = differs(&["spec_sha256"]);
    let file_changed = (pa.is_some() && pb.is_some())
        .then(|| text(&pa, "pipeline_file_sha256") != text(&pb, "pipeline_file_sha256"));
    let tool_changed = match &tools {
        [Some(x), Some(y)] => Some(x != y),
        _ => None,
    };
    // Changed if anything known changed; unknown if nothing did but something is unknown.
    let known = [spec_changed, file_changed, tool_changed];
    let changed = if known.contains(&Some(true)) {
        Some(true)
    } else if known.contains(&None) {
        None
    } else {
        Some(false)
    };
    ProducerDiff {
        changed,
        spec_changed,
        source_changed: differs(&["spec", "source"]),
        rules_changed: differs(&["spec", "rules"]),
        features_changed: differs(&["spec", "features"]),
        pipeline_file: [text(&pa, "pipeline_file"), text(&pb, "pipeline_file")],
        pipeline_file_sha256: [
            text(&pa, "pipeline_file_sha256"),
            text(&pb, "pipeline_file_sha256"),
        ],
        tool: tools,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::catalog::{Entry, Summary};
    use serde_json::json;

    fn docs(version: &str, schema: Value, metadata: Value) -> Documents {
        Documents {
            entry: Entry {
                version: version.into(),
                complete: true,
                incomplete: None,
                latest: false,
                summary: Summary::default(),
                size_bytes: 0,
                objects: 0,
                last_write: None,
                writing: None,
                manifest: None,
            },
            schema: Some(schema),
            metadata: Some(metadata),
            run: None,
        }
    }

    fn producer(spec_sha: &str, file_sha: &str) -> Value {
        json!({
            "pipeline_file": "p.toml", "pipeline_file_sha256": file_sha, "spec_sha256": spec_sha,
            "spec": {"source": {"delimiter": ","}, "rules": [spec_sha], "features": {}}
        })
    }

    #[test]
    fn schema_figures_profiles_and_producer_are_compared() {
        let a = docs(
            "v_1",
            json!({"columns": {"id": "string", "amount": "integer"}}),
            json!({
                "rows_raw": 100, "rows_feature": 100, "raw_null_rate": 0.1,
                "raw_columns": ["id", "amount"],
                "profile": {
                    "id": {"type": "string", "nulls": 0, "distinct": {"count": 90, "exact": true}},
                    "amount": {"type": "integer", "nulls": 2, "mean": 10.0, "min": 1, "max": 20}
                },
                "producer": producer("s1", "f1"),
                "tool": {"version": "0.1.0", "git_commit": "aaa"}
            }),
        );
        let b = docs(
            "v_2",
            json!({"columns": {"id": "string", "amount": "float", "extra": "float"}}),
            json!({
                "rows_raw": 120, "rows_feature": 120, "raw_null_rate": 0.05,
                "raw_columns": ["id", "amount", "extra"],
                "profile": {
                    "id": {"type": "string", "nulls": 1, "distinct": {"count": 100, "exact": true}},
                    "amount": {"type": "float", "nulls": 0, "mean": 12.5, "stddev": 3.0, "min": 1, "max": 30},
                    "extra": {"type": "float", "nulls": 0, "mean": 1.0}
                },
                "producer": producer("s2", "f1"),
                "tool": {"version": "0.1.0", "git_commit": "aaa"}
            }),
        );
        let d = diff(&a, &b);
        let columns = d.columns.unwrap();
        assert_eq!(columns.added, ["extra"]);
        assert_eq!(columns.retyped[0].column, "amount");
        assert_eq!(d.header.unwrap().added, ["extra"]);
        let rows = d.rows.unwrap();
        assert_eq!(
            (rows.previous, rows.current, rows.change),
            (Some(100.0), 120.0, Some(20.0))
        );
        assert_eq!(rows.relative, Some(0.2));
        assert!((d.null_rate.unwrap().change.unwrap() + 0.05).abs() < 1e-12);
        // Only columns in both; `extra` is new.
        let names: Vec<_> = d.profile.iter().map(|c| c.column.as_str()).collect();
        assert_eq!(names, ["id", "amount"]);
        let amount = &d.profile[1];
        assert_eq!(amount.stat("mean").unwrap().change, Some(2.5));
        assert_eq!(amount.stat("stddev").unwrap().previous, None);
        assert_eq!(amount.stat("max").unwrap().current, 30.0);
        assert!(amount.stat("distinct").is_none());
        assert_eq!(d.profile[0].stat("distinct").unwrap().change, Some(10.0));
        assert_eq!(d.producer.changed, Some(true));
        assert_eq!(d.producer.spec_changed, Some(true));
        assert_eq!(d.producer.rules_changed, Some(true));
        assert_eq!(d.producer.source_changed, Some(false));

        let same = diff(&a, &a);
        assert_eq!(same.producer.changed, Some(false));
        assert!(same.columns.unwrap().is_empty());
    }

    #[test]
    fn a_version_without_a_producer_section_is_unknown_not_unchanged() {
        let a = docs(
            "v_1",
            json!({"columns": {}}),
            json!({"tool": {"version": "0.1.0"}}),
        );
        let mut b = a.clone();
        b.metadata = Some(json!({"producer": producer("s", "f"), "tool": {"version": "0.1.0"}}));
        let d = diff(&a, &b);
        assert_eq!(d.producer.changed, None);
        assert_eq!(d.producer.spec_changed, None);
        assert_eq!(
            d.producer.tool,
            [Some("0.1.0".into()), Some("0.1.0".into())]
        );
    }
}
