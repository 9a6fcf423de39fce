//! What a pipeline checks and computes: the seed's built-in default, `daily_user_events`,
//! or what a pipeline file's `[[rules]]` declare (`config` turns the TOML into this).

use serde::Serialize;

/// The name of the built-in default pipeline.
pub const DEFAULT_PIPELINE: &str = "daily_user_events";

/// The rules and features of one pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    /// Columns summed into `row_sum`, in the order they are added (the seed's order).
    pub row_sum_columns: Vec<String>,
    /// Checked after the one streaming pass, in this order.
    pub rules: Vec<Rule>,
}

/// One table rule and what its failure means.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub check: Check,
    pub severity: Severity,
}

/// What a rule checks, over the whole table.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// At least this many data rows.
    MinRows(u64),
    /// At most this many data rows.
    MaxRows(u64),
    /// Empty cells / all cells at most this.
    MaxNullRate(f64),
    /// The header names all of these columns.
    RequiredColumns(Vec<String>),
    /// Rows within `max_change` (a fraction) of the mean of the last `versions` complete
    /// versions; passes while there is no history yet.
    RowsVsHistory { versions: usize, max_change: f64 },
    /// Null rate within `max_change` (absolute) of the previous complete version's.
    NullRateChange { max_change: f64 },
}

impl Check {
    /// The rule's threshold as written to `metadata.json` and printed by `check-config`.
    pub fn threshold(&self) -> serde_json::Value {
        match self {
            Check::MinRows(n) | Check::MaxRows(n) => (*n).into(),
            Check::MaxNullRate(x) => (*x).into(),
            Check::RequiredColumns(columns) => serde_json::json!(columns),
            Check::RowsVsHistory {
                versions,
                max_change,
            } => serde_json::json!({ "versions": versions, "max_change": max_change }),
            Check::NullRateChange { max_change } => serde_json::json!({ "max_change": max_change }),
        }
    }

    /// The rule's name in `metadata.json` (`validation[].name`) and `failed_rules=`.
    pub fn name(&self) -> &'static str {
        match self {
            Check::MinRows(_) => "min_rows",
            Check::MaxRows(_) => "max_rows",
            Check::MaxNullRate(_) => "max_null_rate",
            Check::RequiredColumns(_) => "required_columns",
            Check::RowsVsHistory { .. } => "rows_vs_history",
            Check::NullRateChange { .. } => "null_rate_change",
        }
    }
}

/// `error` fails the run (exit 3); `warn` is recorded and counted, the run goes on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Error,
    Warn,
}

impl PipelineSpec {
    /// Whether any rule compares with earlier versions.
    pub fn has_history_rules(&self) -> bool {
        self.rules.iter().any(|r| {
            matches!(
                r.check,
                Check::RowsVsHistory { .. } | Check::NullRateChange { .. }
            )
        })
    }

    /// How many earlier versions the rules need (at least 1: drift is always recorded).
    pub fn history_needed(&self) -> usize {
        self.rules
            .iter()
            .map(|r| match r.check {
                Check::RowsVsHistory { versions, .. } => versions,
                _ => 1,
            })
            .max()
            .unwrap_or(1)
            .max(1)
    }
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warn => "warn",
        }
    }
}

impl PipelineSpec {
    /// The seed's semantics (DESIGN.md section 2): `rows == 0` and `null_rate > 0.5` are
    /// invalid.
    pub fn seed() -> Self {
        PipelineSpec {
            row_sum_columns: [
                "user_id",
                "is_premium",
                "event_value",
                "amount",
                "session_length_sec",
            ]
            .map(String::from)
            .to_vec(),
            rules: vec![
                Rule {
                    check: Check::MinRows(1),
                    severity: Severity::Error,
                },
                Rule {
                    check: Check::MaxNullRate(0.5),
                    severity: Severity::Error,
                },
            ],
        }
    }
}

/// The type of an output column, as `schema.json` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Float,
    Integer,
    String,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Float => "float",
            ColumnType::Integer => "integer",
            ColumnType::String => "string",
        }
    }
}

/// What `feature.csv` holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// One output row per data row, in input order.
    Rows(Vec<RowFeature>),
    /// One output row per entity key (and time bucket), sorted by key.
    Entities(EntitySpec),
}

/// One output column of a row-grain feature set.
#[derive(Debug, Clone, PartialEq)]
pub struct RowFeature {
    pub name: String,
    pub kind: RowFeatureKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RowFeatureKind {
    /// The raw column's text (optionally renamed), or its value cast to a number.
    Column { column: String, cast: ColumnType },
    /// Sum of the named columns' numeric cells; empty, missing and non-numeric cells
    /// count 0 (the seed's rule).
    RowSum { columns: Vec<String> },
}

/// An entity-grain feature set: `group_by` keys, an optional time bucket, aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct EntitySpec {
    pub group_by: Vec<String>,
    pub time_bucket: Option<TimeBucket>,
    pub aggregates: Vec<Aggregate>,
}

/// Rows are grouped by the start of the hour or day their timestamp falls in.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeBucket {
    /// The raw timestamp column.
    pub column: String,
    pub every: BucketWidth,
    /// The output column holding the bucket start.
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketWidth {
    Hour,
    Day,
}

impl BucketWidth {
    pub fn as_str(self) -> &'static str {
        match self {
            BucketWidth::Hour => "hour",
            BucketWidth::Day => "day",
        }
    }
}

/// One aggregate output column of an entity-grain feature set.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub name: String,
    pub function: AggFunction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AggFunction {
    /// Rows in the group.
    Count,
    /// Over the column's numeric cells (null and non-numeric cells left out).
    Sum(String),
    Mean(String),
    Min(String),
    Max(String),
    /// Distinct non-null values (exact).
    CountDistinct(String),
    /// Null cells (null tokens and missing cells).
    NullCount(String),
    /// The column's text in the row with the earliest / latest timestamp in `by`.
    First {
        column: String,
        by: String,
    },
    Last {
        column: String,
        by: String,
    },
}

impl AggFunction {
    pub fn as_str(&self) -> &'static str {
        match self {
            AggFunction::Count => "count",
            AggFunction::Sum(_) => "sum",
            AggFunction::Mean(_) => "mean",
            AggFunction::Min(_) => "min",
            AggFunction::Max(_) => "max",
            AggFunction::CountDistinct(_) => "count_distinct",
            AggFunction::NullCount(_) => "null_count",
            AggFunction::First { .. } => "first",
            AggFunction::Last { .. } => "last",
        }
    }

    /// The raw column it reads (none for `count`).
    pub fn column(&self) -> Option<&str> {
        match self {
            AggFunction::Count => None,
            AggFunction::Sum(c)
            | AggFunction::Mean(c)
            | AggFunction::Min(c)
            | AggFunction::Max(c)
            | AggFunction::CountDistinct(c)
            | AggFunction::NullCount(c)
            | AggFunction::First { column: c, .. }
            | AggFunction::Last { column: c, .. } => Some(c),
        }
    }

    /// The type of the output column.
    pub fn output_type(&self) -> ColumnType {
        match self {
            AggFunction::Count | AggFunction::CountDistinct(_) | AggFunction::NullCount(_) => {
                ColumnType::Integer
            }
            AggFunction::Sum(_)
            | AggFunction::Mean(_)
            | AggFunction::Min(_)
            | AggFunction::Max(_) => ColumnType::Float,
            AggFunction::First { .. } | AggFunction::Last { .. } => ColumnType::String,
        }
    }
}
