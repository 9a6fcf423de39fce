//! The checked pipeline spec: what a pipeline reads, checks and computes. Either the
//! built-in default `daily_user_events` (the original Python pipeline's semantics) or
//! what a pipeline file declares (`pipeline_file` turns the TOML into this). Everything
//! here is already validated: the pass only executes it.

use serde::Serialize;

use super::origin::Origin;
use crate::values::size::parse_bytes;
pub use crate::values::timestamp::BucketWidth;

/// The name of the built-in default pipeline.
pub const DEFAULT_PIPELINE: &str = "daily_user_events";

/// The original pipeline's `row_sum` columns, in the order it added them.
pub const SEED_ROW_SUM_COLUMNS: [&str; 5] = [
    "user_id",
    "is_premium",
    "event_value",
    "amount",
    "session_length_sec",
];

/// The source, rules and features of one pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    pub source: SourceFormat,
    /// Checked after the one streaming pass, in this order.
    pub rules: Vec<Rule>,
    pub features: Features,
}

/// How the raw CSV is written.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFormat {
    /// One ASCII byte; `,` by default.
    pub delimiter: u8,
    /// Cell texts that mean "no value" (compared exactly). The original pipeline's only
    /// null is the empty cell; a file may add `NULL`, `N/A`, ...
    pub null_tokens: Vec<String>,
    /// At most this many fields in one record: a longer one is malformed input (exit 3).
    pub max_columns: usize,
    /// At most this many bytes of header: a longer one is malformed input (exit 3).
    pub max_header_bytes: usize,
}

/// Bounds on a record's shape that keep memory bounded whatever the input (a line of a
/// million commas, a header of 60 MB). Generous for real data; a pipeline file can raise
/// them.
pub const DEFAULT_MAX_COLUMNS: usize = 10_000;
pub const DEFAULT_MAX_HEADER_BYTES: usize = 1 << 20;

impl Default for SourceFormat {
    fn default() -> Self {
        SourceFormat {
            delimiter: b',',
            null_tokens: vec![String::new()],
            max_columns: DEFAULT_MAX_COLUMNS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// Whether `delimiter` can separate CSV fields: one ASCII byte that is neither the quote
/// nor a line end, which already have their own meaning. (The CSV scanner relies on it.)
pub fn check_delimiter(delimiter: u8) -> Result<u8, &'static str> {
    match delimiter {
        b'"' => Err("the delimiter cannot be '\"', which is the quote character"),
        b'\r' | b'\n' => Err("the delimiter cannot be CR or LF, which end a record"),
        0x80.. => Err("the delimiter must be a single ASCII character"),
        _ => Ok(delimiter),
    }
}

impl SourceFormat {
    /// True when only empty cells are null: the pass can then count nulls without
    /// comparing cell texts.
    pub fn only_empty_is_null(&self) -> bool {
        self.null_tokens.iter().all(String::is_empty)
    }

    /// Whether a cell is null under these tokens.
    #[inline]
    pub fn is_null(&self, cell: &[u8]) -> bool {
        cell.is_empty() || self.null_tokens.iter().any(|t| t.as_bytes() == cell)
    }
}

/// The type of an output column, as `schema.json` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Float,
    Integer,
    String,
    /// `true` / `false` in `feature.csv`; a Parquet BOOLEAN.
    Boolean,
    /// RFC 3339 in the pipeline zone in `feature.csv` (`2025-11-19T00:00:00+09:00`, at
    /// most microseconds); a Parquet `TIMESTAMP(MICROS, UTC)`, which feature stores need
    /// as their event time.
    Timestamp,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Float => "float",
            ColumnType::Integer => "integer",
            ColumnType::String => "string",
            ColumnType::Boolean => "boolean",
            ColumnType::Timestamp => "timestamp",
        }
    }

    /// Whether the pass carries the column's values as text (formatted once on the
    /// scanner thread, so `feature.csv` and Parquet read the same canonical cell).
    pub fn is_text(self) -> bool {
        matches!(
            self,
            ColumnType::String | ColumnType::Boolean | ColumnType::Timestamp
        )
    }
}

/// The files a version's feature set is written as (`[output] formats`,
/// `--output-formats`): `feature.csv` (the default), `feature.parquet`, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputFormats {
    pub csv: bool,
    pub parquet: bool,
}

impl Default for OutputFormats {
    fn default() -> Self {
        OutputFormats {
            csv: true,
            parquet: false,
        }
    }
}

/// The column `feature.parquet` adds (the execution date) when no output column is a
/// timestamp: a feature store needs an event time on every row.
pub const EVENT_TIMESTAMP: &str = "event_timestamp";

impl OutputFormats {
    /// From format names (`csv`, `parquet`): at least one, none unknown or repeated.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut formats = OutputFormats {
            csv: false,
            parquet: false,
        };
        for name in names {
            let slot = match name.trim() {
                "csv" => &mut formats.csv,
                "parquet" => &mut formats.parquet,
                other => {
                    return Err(format!(
                        "unknown output format {:?} (use \"csv\", \"parquet\" or both)",
                        crate::values::shorten(other)
                    ))
                }
            };
            if *slot {
                return Err(format!("output format {:?} is listed twice", name.trim()));
            }
            *slot = true;
        }
        if !formats.csv && !formats.parquet {
            return Err("at least one output format is needed (\"csv\", \"parquet\")".into());
        }
        Ok(formats)
    }

    /// The format names, as `check-config` prints them.
    pub fn names(self) -> Vec<&'static str> {
        [(self.csv, "csv"), (self.parquet, "parquet")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect()
    }
}

/// Why `feature.parquet` cannot be written for these output columns: one is named
/// [`EVENT_TIMESTAMP`] but is not a timestamp, while no column is (so that name is
/// needed for the added event time).
pub fn parquet_columns_conflict(columns: &[(String, ColumnType)]) -> Option<String> {
    let has_time = columns.iter().any(|(_, ty)| *ty == ColumnType::Timestamp);
    let taken = columns.iter().any(|(name, _)| name == EVENT_TIMESTAMP);
    (!has_time && taken).then(|| {
        format!(
            "the output column {EVENT_TIMESTAMP:?} is not a timestamp, but feature.parquet needs \
             that name for the event time of a feature set without a timestamp column (rename \
             it, or make it cast = \"timestamp\")"
        )
    })
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
    /// The raw column's text (optionally renamed), or its value cast to a number, a
    /// boolean or a timestamp (read with `format`, a strftime format, when given;
    /// otherwise RFC 3339 / ISO 8601).
    Column {
        column: String,
        cast: ColumnType,
        format: Option<String>,
    },
    /// Sum of the named columns' numeric cells; empty, missing and non-numeric cells
    /// count 0 (the original pipeline's rule).
    RowSum { columns: Vec<String> },
}

/// An entity-grain feature set: `group_by` keys, an optional time bucket, aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct EntitySpec {
    pub group_by: Vec<String>,
    pub time_bucket: Option<TimeBucket>,
    pub aggregates: Vec<Aggregate>,
    /// How much memory the groups may take before the run stops (exit 3).
    pub memory_budget: MemoryBudget,
}

/// The most memory entity grain's group table may take, and where that was set
/// (`--memory-budget`, `DP_MEMORY_BUDGET`, `[features] memory_budget`, or the default).
/// Past it the run stops with exit 3 naming the budget and the keys seen
/// (`pass::group_by` docs: why it stops rather than spilling to disk).
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryBudget {
    pub bytes: u64,
    pub origin: Origin,
}

/// The setting's name in the pipeline file, as origins and messages spell it.
pub const MEMORY_BUDGET_KEY: &str = "[features] memory_budget";

/// The default budget: 11 to 22 million keys of a `daily_user_features`-shaped job
/// (about 190 bytes each, rows growing by doubling), a sixth of a 24 GiB machine.
pub const DEFAULT_MEMORY_BUDGET: &str = "4GiB";

impl Default for MemoryBudget {
    fn default() -> Self {
        MemoryBudget {
            bytes: 4 << 30,
            origin: Origin::Default(MEMORY_BUDGET_KEY),
        }
    }
}

/// A memory budget ([`parse_bytes`]'s grammar), at least 1 MiB, so that a typo like `512`
/// (bytes) is caught rather than failing every run.
pub fn parse_memory_size(text: &str) -> Result<u64, String> {
    let bytes = parse_bytes(text)?;
    if bytes < 1 << 20 {
        return Err(format!("{text:?} is less than the smallest budget, 1MiB"));
    }
    Ok(bytes)
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

impl Features {
    /// The original pipeline's one feature: `row_sum` over its five columns.
    pub fn built_in() -> Self {
        Features::Rows(vec![RowFeature {
            name: "row_sum".into(),
            kind: RowFeatureKind::RowSum {
                columns: SEED_ROW_SUM_COLUMNS.map(String::from).to_vec(),
            },
        }])
    }

    /// `row` or `entity`, as `schema.json` names the grain.
    pub fn grain(&self) -> &'static str {
        match self {
            Features::Rows(_) => "row",
            Features::Entities(_) => "entity",
        }
    }

    /// Output columns and their types, in CSV order.
    pub fn columns(&self) -> Vec<(String, ColumnType)> {
        match self {
            Features::Rows(features) => features
                .iter()
                .map(|f| {
                    let ty = match &f.kind {
                        RowFeatureKind::Column { cast, .. } => *cast,
                        RowFeatureKind::RowSum { .. } => ColumnType::Float,
                    };
                    (f.name.clone(), ty)
                })
                .collect(),
            Features::Entities(e) => e
                .group_by
                .iter()
                .map(|k| (k.clone(), ColumnType::String))
                .chain(
                    e.time_bucket
                        .iter()
                        .map(|b| (b.name.clone(), ColumnType::Timestamp)),
                )
                .chain(
                    e.aggregates
                        .iter()
                        .map(|a| (a.name.clone(), a.function.output_type())),
                )
                .collect(),
        }
    }

    /// The output columns that identify a row: for entity grain the group keys and the
    /// bucket; for row grain the columns passed through uncast (e.g. `event_id`).
    pub fn key_columns(&self) -> Vec<String> {
        match self {
            Features::Rows(features) => features
                .iter()
                .filter(|f| {
                    matches!(
                        f.kind,
                        RowFeatureKind::Column {
                            cast: ColumnType::String,
                            ..
                        }
                    )
                })
                .map(|f| f.name.clone())
                .collect(),
            Features::Entities(e) => e.key_columns(),
        }
    }
}

impl EntitySpec {
    /// Group keys, then the bucket column: the output's leading columns and sort key.
    pub fn key_columns(&self) -> Vec<String> {
        self.group_by
            .iter()
            .cloned()
            .chain(self.time_bucket.iter().map(|b| b.name.clone()))
            .collect()
    }
}

/// One rule and what its failure means.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub check: Check,
    pub severity: Severity,
    /// The fraction of checked values that must pass (1.0 = all). Only for rules over
    /// values (column rules, `unique`, typed `required_columns`).
    pub mostly: f64,
}

/// What a rule checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// At least this many data rows.
    MinRows(u64),
    /// At most this many data rows.
    MaxRows(u64),
    /// Null cells / all cells at most this.
    MaxNullRate(f64),
    /// The header names all of these columns; those with a type hold only values of it.
    RequiredColumns(Vec<(String, Option<ValueType>)>),
    /// No two rows share the values of these columns (one column: a column rule).
    Unique(Vec<String>),
    /// A rule over one column's cells.
    Column { column: String, test: ColumnTest },
    /// Rows within `max_change` (a fraction) of the mean of the last `versions` complete
    /// versions; passes while there is no history yet.
    RowsVsHistory { versions: usize, max_change: f64 },
    /// Null rate within `max_change` (absolute) of the previous complete version's.
    NullRateChange { max_change: f64 },
    /// The raw header and the output columns (with their types) against the previous
    /// complete version's: no change at all, or only added columns. Passes while there is
    /// no history yet.
    SchemaChange { allow: SchemaAllow },
}

/// What `schema_change` lets through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaAllow {
    /// The same columns, types and order as the previous version.
    #[default]
    None,
    /// New columns anywhere; every earlier column kept, with its type and order.
    Additive,
}

impl SchemaAllow {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaAllow::None => "none",
            SchemaAllow::Additive => "additive",
        }
    }
}

/// What a column rule tests in each cell.
#[derive(Debug, Clone)]
pub enum ColumnTest {
    /// No null cells (counted over all rows).
    NotNull,
    /// Null cells / rows at most this.
    MaxNullRate(f64),
    /// Each non-null value is one of these.
    AllowedValues(Vec<String>),
    /// Each non-null value is a number >= / <= this.
    Min(f64),
    Max(f64),
    /// Each non-null value matches (anywhere, unless anchored with `^...$`).
    Regex(regex::Regex),
    /// Each non-null value is a timestamp in this strftime format (`None`: RFC 3339 /
    /// ISO 8601 date-time or date).
    Timestamp(Option<String>),
    /// Each non-null value is of this type.
    Type(ValueType),
}

impl PartialEq for ColumnTest {
    fn eq(&self, other: &Self) -> bool {
        use ColumnTest as T;
        match (self, other) {
            (T::NotNull, T::NotNull) => true,
            (T::MaxNullRate(a), T::MaxNullRate(b))
            | (T::Min(a), T::Min(b))
            | (T::Max(a), T::Max(b)) => a == b,
            (T::AllowedValues(a), T::AllowedValues(b)) => a == b,
            (T::Regex(a), T::Regex(b)) => a.as_str() == b.as_str(),
            (T::Timestamp(a), T::Timestamp(b)) => a == b,
            (T::Type(a), T::Type(b)) => a == b,
            _ => false,
        }
    }
}

/// The value types `required_columns` and the `numeric` rule check cells against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// Any text.
    String,
    /// A whole number (optional sign, ASCII digits, fits in 64 bits).
    Integer,
    /// Anything the original pipeline's number grammar accepts (`1`, `-2.5`, `1e3`, `nan`, `inf`).
    Float,
    /// `true`/`false`/`1`/`0` (any case).
    Boolean,
    /// RFC 3339 / ISO 8601 date-time or date.
    Timestamp,
}

impl ValueType {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Integer => "integer",
            ValueType::Float => "float",
            ValueType::Boolean => "boolean",
            ValueType::Timestamp => "timestamp",
        }
    }
}

impl Check {
    /// The rule's name in `metadata.json` (`validation[].name`) and `failed_rules=`.
    pub fn name(&self) -> &'static str {
        match self {
            Check::MinRows(_) => "min_rows",
            Check::MaxRows(_) => "max_rows",
            Check::MaxNullRate(_) => "max_null_rate",
            Check::RequiredColumns(_) => "required_columns",
            Check::Unique(_) => "unique",
            Check::Column { test, .. } => match test {
                ColumnTest::NotNull => "not_null",
                ColumnTest::MaxNullRate(_) => "max_null_rate",
                ColumnTest::AllowedValues(_) => "allowed_values",
                ColumnTest::Min(_) => "min",
                ColumnTest::Max(_) => "max",
                ColumnTest::Regex(_) => "regex",
                ColumnTest::Timestamp(_) => "timestamp",
                ColumnTest::Type(ValueType::Float) => "numeric",
                ColumnTest::Type(_) => "type",
            },
            Check::RowsVsHistory { .. } => "rows_vs_history",
            Check::NullRateChange { .. } => "null_rate_change",
            Check::SchemaChange { .. } => "schema_change",
        }
    }

    /// The column(s) the rule is about, for `metadata.json` (`None` for table rules).
    pub fn column(&self) -> Option<String> {
        match self {
            Check::Column { column, .. } => Some(column.clone()),
            Check::Unique(columns) => Some(columns.join(",")),
            _ => None,
        }
    }

    /// The rule's threshold as written to `metadata.json` and printed by `check-config`.
    pub fn threshold(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Check::MinRows(n) | Check::MaxRows(n) => (*n).into(),
            Check::MaxNullRate(x) => (*x).into(),
            Check::RequiredColumns(columns) => {
                if columns.iter().all(|(_, ty)| ty.is_none()) {
                    json!(columns.iter().map(|(c, _)| c).collect::<Vec<_>>())
                } else {
                    let typed: serde_json::Map<String, serde_json::Value> = columns
                        .iter()
                        .map(|(c, ty)| (c.clone(), ty.map_or("any", ValueType::as_str).into()))
                        .collect();
                    json!(typed)
                }
            }
            Check::Unique(columns) => json!(columns),
            Check::Column { test, .. } => match test {
                ColumnTest::NotNull => json!(0),
                ColumnTest::MaxNullRate(x) | ColumnTest::Min(x) | ColumnTest::Max(x) => json!(x),
                ColumnTest::AllowedValues(values) => json!(values),
                ColumnTest::Regex(re) => json!(re.as_str()),
                ColumnTest::Timestamp(format) => json!(format.as_deref().unwrap_or("rfc3339")),
                ColumnTest::Type(ty) => json!(ty.as_str()),
            },
            Check::RowsVsHistory {
                versions,
                max_change,
            } => json!({ "versions": versions, "max_change": max_change }),
            Check::NullRateChange { max_change } => json!({ "max_change": max_change }),
            Check::SchemaChange { allow } => json!({ "allow": allow.as_str() }),
        }
    }

    /// The raw columns the rule reads (none for rules over the whole table).
    pub fn columns(&self) -> Vec<&str> {
        match self {
            Check::RequiredColumns(columns) => columns.iter().map(|(c, _)| c.as_str()).collect(),
            Check::Unique(columns) => columns.iter().map(String::as_str).collect(),
            Check::Column { column, .. } => vec![column.as_str()],
            _ => Vec::new(),
        }
    }

    /// Whether the pass must look at cells for this rule (column rules, `unique`,
    /// `required_columns` with types); the others need only the pass's counts.
    pub fn is_cell_by_cell(&self) -> bool {
        match self {
            Check::Column { .. } | Check::Unique(_) => true,
            Check::RequiredColumns(columns) => columns.iter().any(|(_, t)| t.is_some()),
            _ => false,
        }
    }

    /// Whether the rule is decided value by value, so `mostly` applies.
    pub fn takes_mostly(&self) -> bool {
        // A column's max_null_rate compares a rate; its threshold already is the fraction.
        self.is_cell_by_cell()
            && !matches!(
                self,
                Check::Column {
                    test: ColumnTest::MaxNullRate(_),
                    ..
                }
            )
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

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warn => "warn",
        }
    }
}

impl PipelineSpec {
    /// The original pipeline's semantics (docs/contract.md): comma-separated, empty
    /// cells are null, `rows == 0` and `null_rate > 0.5` are invalid, one feature
    /// `row_sum`.
    pub fn built_in() -> Self {
        PipelineSpec {
            source: SourceFormat::default(),
            rules: vec![
                Rule {
                    check: Check::MinRows(1),
                    severity: Severity::Error,
                    mostly: 1.0,
                },
                Rule {
                    check: Check::MaxNullRate(0.5),
                    severity: Severity::Error,
                    mostly: 1.0,
                },
            ],
            features: Features::built_in(),
        }
    }

    /// Whether any rule compares with earlier versions.
    pub fn has_history_rules(&self) -> bool {
        self.rules.iter().any(|r| {
            matches!(
                r.check,
                Check::RowsVsHistory { .. }
                    | Check::NullRateChange { .. }
                    | Check::SchemaChange { .. }
            )
        })
    }

    /// Every raw column the rules and features name, each once: what a header should
    /// hold (a header with none of them was likely split on the wrong delimiter).
    pub fn named_columns(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.rules.iter().flat_map(|r| r.check.columns()).collect();
        match &self.features {
            Features::Rows(rows) => {
                for f in rows {
                    match &f.kind {
                        RowFeatureKind::Column { column, .. } => names.push(column),
                        RowFeatureKind::RowSum { columns } => {
                            names.extend(columns.iter().map(String::as_str))
                        }
                    }
                }
            }
            Features::Entities(e) => {
                names.extend(e.group_by.iter().map(String::as_str));
                names.extend(e.time_bucket.iter().map(|b| b.column.as_str()));
                for a in &e.aggregates {
                    names.extend(a.function.column());
                    if let AggFunction::First { by, .. } | AggFunction::Last { by, .. } =
                        &a.function
                    {
                        names.push(by);
                    }
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        names.retain(|n| seen.insert(*n));
        names
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
