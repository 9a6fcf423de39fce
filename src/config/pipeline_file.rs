//! The pipeline file (`--config`, `check-config`): its TOML shape and its translation
//! into a checked [`PipelineSpec`]. Every mistake is reported with the file and the TOML
//! line (`orders.toml line 4: ...`), before anything runs (exit 2).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::origin::Origin;
use super::spec::{
    check_delimiter, AggFunction, Aggregate, BucketWidth, Check, ColumnTest, ColumnType,
    EntitySpec, Features, MemoryBudget, PipelineSpec, RowFeature, RowFeatureKind, Rule,
    SchemaAllow, Severity, SourceFormat, TimeBucket, ValueType,
};
use crate::error::{Error, Result};

/// The pipeline file. Unknown keys are errors, not silently ignored. The settings a flag
/// can override keep their position, so an error can name their line.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    pub name: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub source: Option<SourceSection>,
    pub output: Option<OutputSection>,
    /// Replaces the built-in rules when present (an empty list means no rules).
    pub rules: Option<Vec<Spanned<RuleEntry>>>,
    /// Replaces the built-in `row_sum` feature when present.
    /// (Not `Spanned`: toml cannot span a table defined only by `[[features.columns]]`.)
    pub features: Option<FeaturesSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    pub path: Option<Spanned<String>>,
    /// One ASCII character (`","`, `";"`, `"\t"`, `"|"`).
    pub delimiter: Option<Spanned<String>>,
    /// Cell texts read as null; `[""]` (only empty cells) by default.
    pub null_tokens: Option<Vec<String>>,
    /// The raw columns, when known: a rule or feature naming any other column is then a
    /// mistake caught before the run.
    pub columns: Option<Vec<String>>,
    /// Bounds on a record's shape (see `spec::DEFAULT_MAX_COLUMNS`).
    pub max_columns: Option<Spanned<usize>>,
    pub max_header_bytes: Option<Spanned<usize>>,
    /// A many-file `path` (a glob or a folder ending in `/`): the drop is there only once
    /// it has at least this many parts.
    pub min_files: Option<Spanned<u64>>,
    /// The upstream writer's completion marker (`_SUCCESS`): the drop is there only once
    /// this file is, in the parts' folder (or the raw file's).
    pub require_marker: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    pub prefix: Option<Spanned<String>>,
    /// `["csv"]` (the default), `["parquet"]` or both: the files each version holds.
    pub formats: Option<Spanned<Vec<String>>>,
}

/// One `[[rules]]` entry: `rule = "<kind>"` plus that kind's keys. A kind that takes no
/// `column` / `mostly` rejects them (serde names the keys it does take).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleEntry {
    MinRows {
        value: u64,
        #[serde(default)]
        severity: Severity,
    },
    MaxRows {
        value: u64,
        #[serde(default)]
        severity: Severity,
    },
    /// Over all cells, or over one column's cells with `column`.
    MaxNullRate {
        value: f64,
        column: Option<String>,
        #[serde(default)]
        severity: Severity,
    },
    RequiredColumns {
        columns: Vec<String>,
        /// Expected value types of some of the columns.
        #[serde(default)]
        types: BTreeMap<String, ValueType>,
        mostly: Option<f64>,
        #[serde(default)]
        severity: Severity,
    },
    Unique {
        column: Option<String>,
        columns: Option<Vec<String>>,
        mostly: Option<f64>,
        #[serde(default)]
        severity: Severity,
    },
    NotNull {
        column: String,
        mostly: Option<f64>,
        #[serde(default)]
        severity: Severity,
    },
    AllowedValues {
        column: String,
        values: Vec<String>,
        mostly: Option<f64>,
        #[serde(default)]
        severity: Severity,
    },
    Min {
        column: String,
        value: f64,
        mostly: Option<f64>,
        #[serde(default)]
        severity: Severity,
    },
    Max {
        column: String,
        value: f64,
        mostly: Option<f64>,
        #[serde(default)]
        severity: Severity,
    },
    Regex {
        column: String,
        pattern: String,
        mostly: Option<f64>,
        #[serde(default)]
        severity: Severity,
    },
    Timestamp {
        column: String,
        format: Option<String>,
        mostly: Option<f64>,
        #[serde(default)]
        severity: Severity,
    },
    Numeric {
        column: String,
        mostly: Option<f64>,
        #[serde(default)]
        severity: Severity,
    },
    RowsVsHistory {
        versions: usize,
        max_change: f64,
        #[serde(default)]
        severity: Severity,
    },
    NullRateChange {
        max_change: f64,
        #[serde(default)]
        severity: Severity,
    },
    /// The header and output schema against the previous complete version's.
    SchemaChange {
        #[serde(default)]
        allow: SchemaAllow,
        #[serde(default)]
        severity: Severity,
    },
}

/// `[features]`: row grain by default, entity grain with `group_by`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesSection {
    #[serde(default)]
    pub group_by: Vec<String>,
    pub time_bucket: Option<TimeBucketEntry>,
    /// Entity grain: the most memory the groups may take (`"512MiB"`, `"4GiB"`); settings
    /// resolution reads it (a flag or variable overrides it).
    pub memory_budget: Option<Spanned<String>>,
    pub columns: Vec<Spanned<FeatureEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeBucketEntry {
    pub column: String,
    pub every: BucketWidthName,
    /// Output column name; `<column>_<every>` by default.
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BucketWidthName {
    Hour,
    Day,
}

/// One output column. Row grain: `column` (with an optional `cast`) or `row_sum`.
/// Entity grain: `agg` (with `column`, and `by` for first/last).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureEntry {
    pub name: String,
    pub column: Option<String>,
    pub cast: Option<ColumnTypeName>,
    /// The strftime format of a `cast = "timestamp"` column (RFC 3339 / ISO 8601 when
    /// absent).
    pub format: Option<String>,
    pub row_sum: Option<Vec<String>>,
    pub agg: Option<AggName>,
    pub by: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnTypeName {
    String,
    Float,
    Integer,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggName {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    CountDistinct,
    NullCount,
    First,
    Last,
}

/// A pipeline file, parsed and checked.
pub struct LoadedFile {
    pub path: PathBuf,
    pub file: PipelineFile,
    /// The file's source format, rules and features over the built-in ones.
    pub spec: PipelineSpec,
    text: String,
}

impl LoadedFile {
    /// SHA-256 of the file as it was read: which file, byte for byte, a run used.
    pub fn sha256(&self) -> String {
        crate::values::digest::sha256_hex(self.text.as_bytes())
    }

    /// Where a value of this file came from: its line and key, for error messages.
    pub fn origin(&self, span: Range<usize>, key: &'static str) -> Origin {
        Origin::File {
            path: self.path.clone(),
            line: line_of(&self.text, span.start),
            key,
        }
    }
}

/// How big a pipeline file may be: a hand-written file is a few KiB; anything larger is
/// not one (and must not be echoed or held whole).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads and checks a pipeline file; every error names the file and, where it can, the
/// TOML line. `origin` says where its path was given (`--config`, `DP_CONFIG`).
pub fn load(path: &Path, origin: &Origin) -> Result<LoadedFile> {
    let cannot = |why: String| {
        Error::Usage(format!(
            "{origin} {}: cannot read this pipeline file: {why}",
            path.display()
        ))
    };
    let size = std::fs::metadata(path)
        .map_err(|e| cannot(e.to_string()))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(cannot(format!(
            "it is {size} bytes, more than a pipeline file's limit of {MAX_FILE_BYTES}"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| cannot(e.to_string()))?;
    let here = Locator { path, text: &text };
    let file: PipelineFile = toml::from_str(&text).map_err(|e| match e.span() {
        Some(span) => here.at(span.start, e.message()),
        None => here.whole(e.message()),
    })?;
    let spec = to_spec(&file, &here)?;
    Ok(LoadedFile {
        path: path.to_path_buf(),
        file,
        spec,
        text,
    })
}

/// The pipeline `name` a file sets, if the file can be read and parsed at all: for the
/// log line of a run that fails before its settings are resolved.
pub fn name_in(path: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct NameOnly {
        name: Option<String>,
    }
    if std::fs::metadata(path).ok()?.len() > MAX_FILE_BYTES {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    toml::from_str::<NameOnly>(&text).ok()?.name
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Turns byte offsets into `<file> line N: ...` errors.
struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn at(&self, offset: usize, message: &str) -> Error {
        Error::Usage(format!(
            "{} line {}: {}",
            self.path.display(),
            line_of(self.text, offset),
            one_line(message)
        ))
    }

    fn whole(&self, message: &str) -> Error {
        Error::Usage(format!("{}: {}", self.path.display(), one_line(message)))
    }
}

/// A parser message as one line (the TOML parser's may span several).
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn to_spec(file: &PipelineFile, here: &Locator<'_>) -> Result<PipelineSpec> {
    let mut spec = PipelineSpec::built_in();
    let known: Option<BTreeSet<&str>> = file
        .source
        .as_ref()
        .and_then(|s| s.columns.as_ref())
        .map(|c| c.iter().map(String::as_str).collect());
    // A rule or feature naming a column the declared header lacks cannot ever pass.
    let check_columns = |names: &[&str]| -> std::result::Result<(), String> {
        for name in names {
            if name.is_empty() {
                return Err("a column name cannot be empty".into());
            }
            if let Some(known) = &known {
                if !known.contains(name) {
                    return Err(format!(
                        "column {name:?} is not among [source] columns, so it cannot exist"
                    ));
                }
            }
        }
        Ok(())
    };

    if let Some(source) = &file.source {
        if let Some(d) = &source.delimiter {
            spec.source.delimiter =
                delimiter(d.get_ref()).map_err(|m| here.at(d.span().start, &m))?;
        }
        for (value, target, what) in [
            (
                &source.max_columns,
                &mut spec.source.max_columns,
                "max_columns",
            ),
            (
                &source.max_header_bytes,
                &mut spec.source.max_header_bytes,
                "max_header_bytes",
            ),
        ] {
            if let Some(v) = value {
                if *v.get_ref() == 0 {
                    return Err(here.at(
                        v.span().start,
                        &format!("[source] {what} must be at least 1"),
                    ));
                }
                *target = *v.get_ref();
            }
        }
        if let Some(tokens) = &source.null_tokens {
            let mut tokens = tokens.clone();
            if !tokens.iter().any(String::is_empty) {
                // An empty cell is always null: there is no value to read in it.
                tokens.insert(0, String::new());
            }
            spec.source = SourceFormat {
                null_tokens: tokens,
                ..spec.source
            };
        }
    }

    if let Some(entries) = &file.rules {
        spec.rules = entries
            .iter()
            .map(|entry| {
                to_rule(entry.get_ref())
                    .and_then(|rule| check_columns(&rule.check.columns()).map(|()| rule))
                    .map_err(|m| here.at(entry.span().start, &m))
            })
            .collect::<Result<_>>()?;
        let first = |f: fn(&Check) -> Option<u64>| spec.rules.iter().find_map(|r| f(&r.check));
        let min = first(|c| match c {
            Check::MinRows(n) => Some(*n),
            _ => None,
        });
        let max = first(|c| match c {
            Check::MaxRows(n) => Some(*n),
            _ => None,
        });
        if let (Some(min), Some(max)) = (min, max) {
            if min > max {
                return Err(here.whole(&format!(
                    "min_rows {min} is more than max_rows {max}: no data can pass"
                )));
            }
        }
    }

    if let Some(section) = &file.features {
        // Section-wide mistakes point at the first line mentioning `[features`.
        let start = here.text.find("[features").unwrap_or(0);
        spec.features = to_features(section, &check_columns)
            .map_err(|(offset, m)| here.at(offset.unwrap_or(start), &m))?;
    }
    Ok(spec)
}

/// One byte that can separate CSV fields ([`check_delimiter`] owns that rule).
fn delimiter(text: &str) -> std::result::Result<u8, String> {
    let example = "e.g. \",\", \";\", \"\\t\", \"|\"";
    match text.as_bytes() {
        [b] => check_delimiter(*b)
            .map_err(|reason| format!("[source] delimiter {text:?}: {reason} ({example})")),
        _ => Err(format!(
            "[source] delimiter {text:?} must be exactly one ASCII character ({example})"
        )),
    }
}

fn to_rule(entry: &RuleEntry) -> std::result::Result<Rule, String> {
    use ColumnTest as T;
    let column = |column: &String, test: ColumnTest| Check::Column {
        column: column.clone(),
        test,
    };
    let (check, severity, mostly) = match entry {
        RuleEntry::MinRows { value, severity } => (Check::MinRows(*value), *severity, None),
        RuleEntry::MaxRows { value, severity } => (Check::MaxRows(*value), *severity, None),
        RuleEntry::MaxNullRate {
            value,
            column: col,
            severity,
        } => {
            fraction("max_null_rate value", *value)?;
            let check = match col {
                Some(c) => column(c, T::MaxNullRate(*value)),
                None => Check::MaxNullRate(*value),
            };
            (check, *severity, None)
        }
        RuleEntry::RequiredColumns {
            columns,
            types,
            mostly,
            severity,
        } => {
            if columns.is_empty() {
                return Err("required_columns needs a non-empty list of column names".into());
            }
            if let Some(extra) = types.keys().find(|c| !columns.contains(c)) {
                return Err(format!(
                    "required_columns types names {extra:?}, which is not in its columns list"
                ));
            }
            let typed = columns
                .iter()
                .map(|c| (c.clone(), types.get(c).copied()))
                .collect();
            (Check::RequiredColumns(typed), *severity, *mostly)
        }
        RuleEntry::Unique {
            column,
            columns,
            mostly,
            severity,
        } => {
            let columns = match (column, columns) {
                (Some(c), None) => vec![c.clone()],
                (None, Some(cs)) if !cs.is_empty() => cs.clone(),
                _ => {
                    return Err(
                        "unique needs either column = \"...\" or a non-empty columns = [...]"
                            .into(),
                    )
                }
            };
            (Check::Unique(columns), *severity, *mostly)
        }
        RuleEntry::NotNull {
            column: c,
            mostly,
            severity,
        } => (column(c, T::NotNull), *severity, *mostly),
        RuleEntry::AllowedValues {
            column: c,
            values,
            mostly,
            severity,
        } => {
            if values.is_empty() {
                return Err("allowed_values needs a non-empty values list".into());
            }
            (
                column(c, T::AllowedValues(values.clone())),
                *severity,
                *mostly,
            )
        }
        RuleEntry::Min {
            column: c,
            value,
            mostly,
            severity,
        } => (
            column(c, T::Min(finite("min value", *value)?)),
            *severity,
            *mostly,
        ),
        RuleEntry::Max {
            column: c,
            value,
            mostly,
            severity,
        } => (
            column(c, T::Max(finite("max value", *value)?)),
            *severity,
            *mostly,
        ),
        RuleEntry::Regex {
            column: c,
            pattern,
            mostly,
            severity,
        } => {
            let re = regex::Regex::new(pattern).map_err(|e| {
                // regex's message spans lines (the pattern, a caret, the reason): keep
                // the reason so the error stays one line.
                let text = e.to_string();
                let reason = text.lines().last().unwrap_or_default();
                let reason = reason.trim().trim_start_matches("error: ");
                format!("regex pattern {pattern:?} does not compile: {reason}")
            })?;
            (column(c, T::Regex(re)), *severity, *mostly)
        }
        RuleEntry::Timestamp {
            column: c,
            format,
            mostly,
            severity,
        } => {
            if let Some(f) = format {
                crate::values::timestamp::check_format(f).map_err(|e| e.to_string())?;
            }
            (column(c, T::Timestamp(format.clone())), *severity, *mostly)
        }
        RuleEntry::Numeric {
            column: c,
            mostly,
            severity,
        } => (column(c, T::Type(ValueType::Float)), *severity, *mostly),
        RuleEntry::RowsVsHistory {
            versions,
            max_change,
            severity,
        } => {
            if !(1..=366).contains(versions) {
                return Err(format!(
                    "rows_vs_history versions {versions} must be between 1 and 366"
                ));
            }
            if !(*max_change >= 0.0 && max_change.is_finite()) {
                return Err(format!(
                    "rows_vs_history max_change {max_change} must be a fraction of at least 0 (0.2 = 20%)"
                ));
            }
            (
                Check::RowsVsHistory {
                    versions: *versions,
                    max_change: *max_change,
                },
                *severity,
                None,
            )
        }
        RuleEntry::NullRateChange {
            max_change,
            severity,
        } => {
            fraction("null_rate_change max_change", *max_change)?;
            (
                Check::NullRateChange {
                    max_change: *max_change,
                },
                *severity,
                None,
            )
        }
        RuleEntry::SchemaChange { allow, severity } => {
            (Check::SchemaChange { allow: *allow }, *severity, None)
        }
    };
    if let Some(m) = mostly {
        if !(m > 0.0 && m <= 1.0) {
            return Err(format!(
                "mostly {m} must be a fraction above 0 and at most 1 (0.99 = 99% of values must pass)"
            ));
        }
        if !check.takes_mostly() {
            return Err(format!(
                "{} does not take mostly (only rules over values do)",
                check.name()
            ));
        }
    }
    Ok(Rule {
        check,
        severity,
        mostly: mostly.unwrap_or(1.0),
    })
}

fn fraction(what: &str, x: f64) -> std::result::Result<f64, String> {
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{what} {x} must be between 0 and 1"))
    }
}

fn finite(what: &str, x: f64) -> std::result::Result<f64, String> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("{what} {x} must be a finite number"))
    }
}

/// A mistake in `[features]`: at one entry's offset, or (`None`) in the section as a
/// whole.
type FeatureError = (Option<usize>, String);

fn to_features(
    section: &FeaturesSection,
    check_columns: &dyn Fn(&[&str]) -> std::result::Result<(), String>,
) -> std::result::Result<Features, FeatureError> {
    let whole = |m: String| (None, m);
    if section.columns.is_empty() {
        return Err(whole(
            "[features] needs at least one [[features.columns]] entry".into(),
        ));
    }
    let entity = !section.group_by.is_empty();
    if !entity && section.time_bucket.is_some() {
        return Err(whole(
            "[features] time_bucket needs group_by (it is a key of entity-grain features)".into(),
        ));
    }
    if let (false, Some(budget)) = (entity, &section.memory_budget) {
        return Err((
            Some(budget.span().start),
            "[features] memory_budget needs group_by (it bounds entity grain's groups)".into(),
        ));
    }
    let group_by: Vec<&str> = section.group_by.iter().map(String::as_str).collect();
    check_columns(&group_by).map_err(whole)?;
    let time_bucket = match &section.time_bucket {
        None => None,
        Some(b) => {
            check_columns(&[b.column.as_str()]).map_err(whole)?;
            let every = match b.every {
                BucketWidthName::Hour => BucketWidth::Hour,
                BucketWidthName::Day => BucketWidth::Day,
            };
            Some(TimeBucket {
                column: b.column.clone(),
                every,
                name: b
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{}_{}", b.column, every.as_str())),
            })
        }
    };
    let mut names: BTreeSet<String> = group_by.iter().map(|s| s.to_string()).collect();
    if let Some(b) = &time_bucket {
        if !names.insert(b.name.clone()) {
            return Err(whole(format!(
                "time_bucket name {:?} repeats a group_by column",
                b.name
            )));
        }
    }
    let mut rows = Vec::new();
    let mut aggregates = Vec::new();
    for entry in &section.columns {
        let at = |m: String| (Some(entry.span().start), m);
        let f = entry.get_ref();
        if f.name.is_empty() {
            return Err(at("a feature column needs a non-empty name".into()));
        }
        if !names.insert(f.name.clone()) {
            return Err(at(format!("output column {:?} is defined twice", f.name)));
        }
        let read: Vec<&str> = f
            .column
            .iter()
            .chain(f.by.iter())
            .chain(f.row_sum.iter().flatten())
            .map(String::as_str)
            .collect();
        check_columns(&read).map_err(at)?;
        if entity {
            aggregates.push(to_aggregate(f).map_err(at)?);
        } else {
            rows.push(to_row_feature(f).map_err(at)?);
        }
    }
    Ok(if entity {
        Features::Entities(EntitySpec {
            group_by: section.group_by.clone(),
            time_bucket,
            aggregates,
            memory_budget: MemoryBudget::default(),
        })
    } else {
        Features::Rows(rows)
    })
}

fn to_row_feature(f: &FeatureEntry) -> std::result::Result<RowFeature, String> {
    if f.agg.is_some() || f.by.is_some() {
        return Err(format!(
            "feature {:?}: agg and by need group_by in [features] (entity grain)",
            f.name
        ));
    }
    let cast = match f.cast {
        None | Some(ColumnTypeName::String) => ColumnType::String,
        Some(ColumnTypeName::Float) => ColumnType::Float,
        Some(ColumnTypeName::Integer) => ColumnType::Integer,
        Some(ColumnTypeName::Boolean) => ColumnType::Boolean,
        Some(ColumnTypeName::Timestamp) => ColumnType::Timestamp,
    };
    if let Some(format) = &f.format {
        if cast != ColumnType::Timestamp {
            return Err(format!(
                "feature {:?}: format is only for cast = \"timestamp\"",
                f.name
            ));
        }
        crate::values::timestamp::check_format(format)
            .map_err(|e| format!("feature {:?}: {e}", f.name))?;
    }
    let kind = match (&f.column, &f.row_sum) {
        (Some(column), None) => RowFeatureKind::Column {
            column: column.clone(),
            cast,
            format: f.format.clone(),
        },
        (None, Some(columns)) if !columns.is_empty() && f.cast.is_none() => {
            RowFeatureKind::RowSum {
                columns: columns.clone(),
            }
        }
        _ => {
            return Err(format!(
                "feature {:?} needs either column = \"...\" (optionally with cast) or row_sum = [\"...\", ...]",
                f.name
            ))
        }
    };
    Ok(RowFeature {
        name: f.name.clone(),
        kind,
    })
}

fn to_aggregate(f: &FeatureEntry) -> std::result::Result<Aggregate, String> {
    if f.row_sum.is_some() || f.cast.is_some() || f.format.is_some() {
        return Err(format!(
            "feature {:?}: with group_by every column is an aggregate (agg = ...); row_sum, cast and format are for row grain",
            f.name
        ));
    }
    let Some(agg) = f.agg else {
        return Err(format!(
            "feature {:?} needs agg = \"count\" | \"sum\" | \"mean\" | \"min\" | \"max\" | \"count_distinct\" | \"null_count\" | \"first\" | \"last\" (group_by makes every column an aggregate)",
            f.name
        ));
    };
    let column = || {
        f.column
            .clone()
            .ok_or_else(|| format!("feature {:?}: agg needs column = \"...\"", f.name))
    };
    let by = || {
        f.by.clone().ok_or_else(|| {
            format!(
                "feature {:?}: first/last need by = \"<timestamp column>\"",
                f.name
            )
        })
    };
    if f.by.is_some() && !matches!(agg, AggName::First | AggName::Last) {
        return Err(format!("feature {:?}: by is only for first/last", f.name));
    }
    let function = match agg {
        AggName::Count => {
            if f.column.is_some() {
                return Err(format!(
                    "feature {:?}: count counts rows and takes no column (use null_count or count_distinct for a column)",
                    f.name
                ));
            }
            AggFunction::Count
        }
        AggName::Sum => AggFunction::Sum(column()?),
        AggName::Mean => AggFunction::Mean(column()?),
        AggName::Min => AggFunction::Min(column()?),
        AggName::Max => AggFunction::Max(column()?),
        AggName::CountDistinct => AggFunction::CountDistinct(column()?),
        AggName::NullCount => AggFunction::NullCount(column()?),
        AggName::First => AggFunction::First {
            column: column()?,
            by: by()?,
        },
        AggName::Last => AggFunction::Last {
            column: column()?,
            by: by()?,
        },
    };
    Ok(Aggregate {
        name: f.name.clone(),
        function,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads `text` as `orders.toml`; the error's message on failure.
    fn load_text(text: &str) -> std::result::Result<LoadedFile, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.toml");
        std::fs::write(&path, text).unwrap();
        load(&path, &Origin::Flag("--config".into())).map_err(|e| e.to_string())
    }

    fn error_of(text: &str) -> String {
        match load_text(text) {
            Err(m) => m,
            Ok(_) => panic!("loaded: {text}"),
        }
    }

    #[test]
    fn mistakes_name_the_file_and_the_line() {
        for (text, line, words) in [
            (
                "name = \"x\"\n\n[source]\npath = \"a.csv\"\ncolour = \"red\"\n",
                5,
                "colour",
            ),
            ("[[rules]]\nrule = \"min_rowz\"\nvalue = 1\n", 2, "min_rowz"),
            ("[[rules]]\nrule = \"min_rows\"\nvalue = -1\n", 1, "-1"),
            ("[source]\ndelimiter = \"ab\"\n", 2, "delimiter"),
            ("[source]\ndelimiter = \"\\\"\"\n", 2, "quote"),
            ("[source]\nmax_columns = 0\n", 2, "max_columns"),
            (
                "[[rules]]\nrule = \"regex\"\ncolumn = \"a\"\npattern = \"(\"\n",
                1,
                "does not compile",
            ),
            (
                "[[rules]]\nrule = \"timestamp\"\ncolumn = \"a\"\nformat = \"%Q\"\n",
                1,
                "strftime",
            ),
            (
                "[[rules]]\nrule = \"not_null\"\ncolumn = \"a\"\nmostly = 1.5\n",
                1,
                "mostly",
            ),
            (
                "[source]\ncolumns = [\"a\"]\n\n[[rules]]\nrule = \"not_null\"\ncolumn = \"b\"\n",
                4,
                "\"b\" is not among [source] columns",
            ),
        ] {
            let m = error_of(text);
            assert!(
                m.contains(&format!("orders.toml line {line}: ")),
                "line {line} expected: {m}"
            );
            assert!(m.contains(words), "{words:?} expected: {m}");
            assert!(!m.contains('\n'), "one line: {m}");
        }
    }

    #[test]
    fn whole_file_mistakes_name_the_file() {
        let m = error_of(
            "[[rules]]\nrule = \"min_rows\"\nvalue = 5\n[[rules]]\nrule = \"max_rows\"\nvalue = 2\n",
        );
        assert!(
            m.contains("orders.toml: min_rows 5 is more than max_rows 2"),
            "{m}"
        );
        let m = error_of("[features]\n");
        assert!(m.contains("orders.toml"), "{m}");
    }

    #[test]
    fn a_syntax_error_is_one_line() {
        let m = error_of("name = \"x\"\n[source\npath = 1\n");
        assert!(m.contains("orders.toml line 2: "), "{m}");
        assert!(!m.contains('\n'), "{m}");
    }

    #[test]
    fn a_good_file_becomes_its_spec() {
        let loaded = load_text(
            "name = \"orders\"\n[source]\ndelimiter = \";\"\nnull_tokens = [\"NULL\"]\n\
             [[rules]]\nrule = \"not_null\"\ncolumn = \"id\"\nseverity = \"warn\"\n",
        )
        .unwrap();
        let spec = &loaded.spec;
        assert_eq!(spec.source.delimiter, b';');
        assert_eq!(spec.source.null_tokens, ["", "NULL"]);
        assert_eq!(spec.rules.len(), 1);
        assert_eq!(spec.rules[0].check.name(), "not_null");
        assert_eq!(spec.rules[0].severity, Severity::Warn);
        // Features not given: the built-in row_sum stays.
        assert_eq!(spec.features, Features::built_in());
        // Settings a flag can override know their line.
        let name = loaded.file.name.as_ref().unwrap();
        assert_eq!(
            loaded.origin(name.span(), "name").to_string(),
            format!("{} line 1: name", loaded.path.display())
        );
    }

    #[test]
    fn an_unreadable_or_huge_file_names_the_flag() {
        let m = load(
            Path::new("/nonexistent/p.toml"),
            &Origin::Env("DP_CONFIG".into()),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            m.starts_with("DP_CONFIG /nonexistent/p.toml: cannot read"),
            "{m}"
        );
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; (MAX_FILE_BYTES + 1) as usize]).unwrap();
        let m = load(&big, &Origin::Flag("--config".into()))
            .err()
            .unwrap()
            .to_string();
        assert!(m.contains("limit"), "{m}");
    }
}
