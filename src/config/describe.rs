//! The resolved pipeline as JSON: what `check-config` prints and what `metadata.json`
//! records as the pipeline that produced a version (`producer`). One description, so the
//! two always agree and `versions diff` can compare versions by it.

use serde_json::{json, Value};

use super::spec::{AggFunction, Features, PipelineSpec, RowFeatureKind, Rule, SourceFormat};
use crate::values::digest::sha256_hex;

/// Every rule, in the order they are checked.
pub fn rules(rules: &[Rule]) -> Value {
    Value::Array(rules.iter().map(rule).collect())
}

/// How the raw CSV is read (what changes how the same bytes are understood).
pub fn source(source: &SourceFormat) -> Value {
    json!({
        "delimiter": char::from(source.delimiter).to_string(),
        "null_tokens": source.null_tokens,
    })
}

/// The spec as data: source format, rules and features.
pub fn spec(spec: &PipelineSpec) -> Value {
    json!({
        "source": source(&spec.source),
        "rules": rules(&spec.rules),
        "features": features(&spec.features),
    })
}

/// SHA-256 of [`spec`] (compact JSON, keys in a fixed order): equal for two versions
/// exactly when they were read, checked and computed the same way, whichever file or
/// flags said so.
pub fn spec_sha256(spec: &PipelineSpec) -> String {
    sha256_hex(self::spec(spec).to_string().as_bytes())
}

/// One rule: its name, threshold and severity, and its column and `mostly` when it has them.
pub fn rule(r: &Rule) -> serde_json::Value {
    let mut rule = serde_json::json!({
        "rule": r.check.name(),
        "threshold": r.check.threshold(),
        "severity": r.severity.as_str(),
    });
    if let Some(o) = rule.as_object_mut() {
        if let Some(column) = r.check.column() {
            o.insert("column".into(), column.into());
        }
        if r.check.takes_mostly() {
            o.insert("mostly".into(), r.mostly.into());
        }
    }
    rule
}

/// The output: grain, key columns, and each column with its type and what computes it.
pub fn features(features: &Features) -> serde_json::Value {
    let types = features.columns();
    let columns: Vec<serde_json::Value> = match features {
        Features::Rows(rows) => rows
            .iter()
            .zip(&types)
            .map(|(f, (_, ty))| match &f.kind {
                RowFeatureKind::Column { column, format, .. } => {
                    let mut v = json!({ "name": f.name, "type": ty.as_str(), "column": column });
                    if let (Some(o), Some(format)) = (v.as_object_mut(), format) {
                        o.insert("format".into(), format.clone().into());
                    }
                    v
                }
                RowFeatureKind::RowSum { columns } => {
                    json!({ "name": f.name, "type": ty.as_str(), "row_sum": columns })
                }
            })
            .collect(),
        Features::Entities(e) => {
            let keys = e.key_columns();
            let aggs = e.aggregates.iter().zip(&types[keys.len()..]);
            // The group keys are strings, the time bucket a timestamp: as in schema.json.
            keys.iter()
                .zip(&types)
                .map(|(k, (_, ty))| json!({ "name": k, "type": ty.as_str(), "key": true }))
                .chain(aggs.map(|(a, (_, ty))| {
                    let mut v =
                        json!({ "name": a.name, "type": ty.as_str(), "agg": a.function.as_str() });
                    if let (Some(o), Some(c)) = (v.as_object_mut(), a.function.column()) {
                        o.insert("column".into(), c.into());
                    }
                    if let (Some(o), AggFunction::First { by, .. } | AggFunction::Last { by, .. }) =
                        (v.as_object_mut(), &a.function)
                    {
                        o.insert("by".into(), by.clone().into());
                    }
                    v
                }))
                .collect()
        }
    };
    let mut out = json!({
        "grain": features.grain(),
        "key_columns": features.key_columns(),
        "columns": columns,
    });
    if let (Some(o), Features::Entities(e)) = (out.as_object_mut(), features) {
        o.insert("group_by".into(), json!(e.group_by));
        if let Some(b) = &e.time_bucket {
            o.insert(
                "time_bucket".into(),
                json!({ "column": b.column, "every": b.every.as_str(), "name": b.name }),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::spec::{Check, Severity};

    #[test]
    fn the_spec_digest_follows_what_the_pipeline_does() {
        let built_in = PipelineSpec::built_in();
        assert_eq!(
            spec_sha256(&built_in),
            spec_sha256(&PipelineSpec::built_in())
        );
        let mut stricter = PipelineSpec::built_in();
        stricter.rules[0] = Rule {
            check: Check::MinRows(2),
            severity: Severity::Error,
            mostly: 1.0,
        };
        assert_ne!(spec_sha256(&built_in), spec_sha256(&stricter));
        let mut semicolons = PipelineSpec::built_in();
        semicolons.source.delimiter = b';';
        assert_ne!(spec_sha256(&built_in), spec_sha256(&semicolons));
        assert_eq!(spec(&built_in)["rules"][0]["rule"], "min_rows");
        assert_eq!(spec(&built_in)["features"]["columns"][0]["name"], "row_sum");
    }
}
