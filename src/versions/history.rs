//! Earlier complete versions of the same prefix: what drift is measured against and what
//! the history rules compare with. Read from their `metadata.json` and `schema.json`,
//! never from their data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::documents::{Change, Drift};
use super::schema_diff::{self, SchemaChanges};
use super::{completeness, is_version_id, layout};
use crate::storage::{join_key, ObjectStore, StorageResult};

/// What a past version's `metadata.json` says about its raw data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PastVersion {
    pub feature_version: String,
    pub rows: u64,
    pub null_rate: f64,
    /// The mean of each numeric output column (from its profile).
    pub means: BTreeMap<String, f64>,
    /// The raw CSV header (`metadata.json` `raw_columns`), if recorded.
    pub raw_columns: Option<Vec<String>>,
    /// The output columns and types, in CSV order (`schema.json`), if readable.
    pub columns: Option<Vec<(String, String)>>,
}

/// The fields read from a past `metadata.json` (older or newer files may hold more).
#[derive(Deserialize)]
struct MetadataHead {
    rows_raw: u64,
    raw_null_rate: f64,
    /// Absent in versions written before profiles existed.
    #[serde(default)]
    profile: BTreeMap<String, ProfileHead>,
    raw_columns: Option<Vec<String>>,
}

/// The fields read from a past `schema.json`: column name -> type, in CSV order.
#[derive(Deserialize)]
pub(crate) struct SchemaHead {
    pub columns: serde_json::Map<String, serde_json::Value>,
}

impl SchemaHead {
    /// The columns and their type names, in CSV order.
    pub fn typed(&self) -> Vec<(String, String)> {
        self.columns
            .iter()
            .map(|(name, ty)| (name.clone(), ty.as_str().unwrap_or("?").to_string()))
            .collect()
    }
}

#[derive(Deserialize)]
struct ProfileHead {
    mean: Option<f64>,
}

/// Up to `n` complete versions older than `version`, newest first. Incomplete versions
/// (see `completeness`) and unreadable metadata are passed over.
pub async fn complete_before(
    store: &dyn ObjectStore,
    version: &str,
    n: usize,
) -> StorageResult<Vec<PastVersion>> {
    let mut folders = store.list_folders("").await?;
    folders.retain(|f| is_version_id(f) && f.as_str() < version);
    let mut found = Vec::new();
    for folder in folders.into_iter().rev() {
        if found.len() >= n {
            break;
        }
        if !completeness::check(store, &folder).await?.is_complete() {
            continue;
        }
        let Some(bytes) = store
            .get_small(&join_key(&folder, layout::METADATA_JSON))
            .await?
        else {
            continue;
        };
        match serde_json::from_slice::<MetadataHead>(&bytes) {
            Ok(m) => found.push(PastVersion {
                columns: read_schema(store, &folder).await?,
                feature_version: folder,
                rows: m.rows_raw,
                null_rate: m.raw_null_rate,
                means: m
                    .profile
                    .into_iter()
                    .filter_map(|(column, p)| p.mean.map(|mean| (column, mean)))
                    .collect(),
                raw_columns: m.raw_columns,
            }),
            Err(e) => tracing::warn!(
                "ignoring unreadable {}: {e}",
                store.uri(&join_key(&folder, layout::METADATA_JSON))
            ),
        }
    }
    Ok(found)
}

/// A version's output columns from its `schema.json`; `None` if missing or unreadable.
async fn read_schema(
    store: &dyn ObjectStore,
    version: &str,
) -> StorageResult<Option<Vec<(String, String)>>> {
    let key = join_key(version, layout::SCHEMA_JSON);
    let Some(bytes) = store.get_small(&key).await? else {
        return Ok(None);
    };
    match serde_json::from_slice::<SchemaHead>(&bytes) {
        Ok(schema) => Ok(Some(schema.typed())),
        Err(e) => {
            tracing::warn!("ignoring unreadable {}: {e}", store.uri(&key));
            Ok(None)
        }
    }
}

/// This version's raw header and output columns against `previous`'s.
pub fn schema_changes(
    previous: &PastVersion,
    header: &[String],
    columns: &[(String, String)],
) -> SchemaChanges {
    SchemaChanges {
        previous_version: previous.feature_version.clone(),
        header: previous
            .raw_columns
            .as_deref()
            .map(|before| schema_diff::compare_names(before, header)),
        columns: previous
            .columns
            .as_deref()
            .map(|before| schema_diff::compare_typed(before, columns)),
    }
}

impl Drift {
    /// `history` newest first (only its first entry is used); `column_means` is this
    /// version's mean of each numeric output column; `header` and `columns` are this
    /// version's raw header and output columns with their types.
    pub fn new(
        history: &[PastVersion],
        rows: u64,
        null_rate: f64,
        column_means: &[(String, f64)],
        header: &[String],
        columns: &[(String, String)],
    ) -> Self {
        let previous = history.first();
        Drift {
            previous_version: previous.map(|p| p.feature_version.clone()),
            rows: Change::new(previous.map(|p| p.rows as f64), rows as f64),
            null_rate: Change::new(previous.map(|p| p.null_rate), null_rate),
            column_means: column_means
                .iter()
                .map(|(column, mean)| {
                    let before = previous.and_then(|v| v.means.get(column)).copied();
                    (column.clone(), Change::new(before, *mean))
                })
                .collect(),
            schema: previous.map(|p| schema_changes(p, header, columns)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_against_nothing_and_something() {
        let header = ["a".to_string(), "b".to_string()];
        let columns = [("a".to_string(), "float".to_string())];
        let none = Drift::new(&[], 10, 0.1, &[], &header, &columns);
        assert_eq!(none.previous_version, None);
        assert_eq!(none.rows.change, None);
        assert_eq!(none.schema, None);
        let past = [PastVersion {
            feature_version: "v_1".into(),
            rows: 8,
            null_rate: 0.2,
            means: BTreeMap::new(),
            raw_columns: Some(vec!["a".into()]),
            columns: Some(vec![("a".into(), "integer".into())]),
        }];
        let d = Drift::new(&past, 10, 0.1, &[], &header, &columns);
        assert_eq!(d.rows.change, Some(2.0));
        assert_eq!(d.rows.relative, Some(0.25));
        // Against a negative figure the relative change keeps the change's sign.
        let up = Change::new(Some(-200.0), -100.0);
        assert_eq!((up.change, up.relative), (Some(100.0), Some(0.5)));
        let down = Change::new(Some(-100.0), -150.0);
        assert_eq!((down.change, down.relative), (Some(-50.0), Some(-0.5)));
        assert!((d.null_rate.change.unwrap() + 0.1).abs() < 1e-12);
        let schema = d.schema.unwrap();
        assert_eq!(schema.header.unwrap().added, ["b"]);
        assert_eq!(schema.columns.unwrap().retyped[0].to, "float");
    }
}
