//! The pipeline file `infer` prints: every value a guess from the sample, every guess
//! explained in a comment.

use std::fmt::Write as _;

use super::{ColumnGuess, Inferred, Kind, ALLOWED_VALUES_MAX, ALLOWED_VALUES_REPEAT};
use crate::config::spec::{DEFAULT_MAX_COLUMNS, DEFAULT_MAX_HEADER_BYTES, EVENT_TIMESTAMP};

/// The pipeline file for `inferred`, reading `path` (as the user gave it), named `name`.
pub fn render(inferred: &Inferred, path: &str, name: &str) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_file(&mut out, inferred, path, name);
    out
}

/// A TOML string (quoted and escaped).
fn q(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(q).collect();
    format!("[{}]", items.join(", "))
}

fn write_file(out: &mut String, s: &Inferred, path: &str, name: &str) -> std::fmt::Result {
    let read = if s.truncated {
        format!("its first {} rows (it has more)", s.rows)
    } else {
        format!("its {} rows", s.rows)
    };
    writeln!(
        out,
        "# A starting pipeline file for {path}, written by `featurepipe infer` from {read}."
    )?;
    writeln!(
        out,
        "# Every value below is a guess from the sample: review it, then check and try it:"
    )?;
    writeln!(out, "#   featurepipe check-config FILE")?;
    writeln!(
        out,
        "#   featurepipe run --config FILE --execution-date YYYY-MM-DD"
    )?;
    writeln!(
        out,
        "# For a nightly drop, put the date into [source] path with {{ds}} or {{ds_nodash}}."
    )?;
    writeln!(out)?;
    writeln!(out, "name = {}", q(name))?;
    writeln!(
        out,
        "timezone = \"UTC\"   # versions, {{ds}}, and timestamps without an offset use this zone"
    )?;

    writeln!(out)?;
    writeln!(out, "[source]")?;
    writeln!(out, "path = {}", q(path))?;
    let how = if s.detected {
        "detected: it splits every line of the sample into the same fields"
    } else {
        "as given to --delimiter"
    };
    writeln!(
        out,
        "delimiter = {}   # {how}",
        q(&char::from(s.delimiter).to_string())
    )?;
    if s.null_tokens.is_empty() {
        writeln!(out, "null_tokens = [\"\"]   # only empty cells are null")?;
    } else {
        let tokens = std::iter::once("").chain(s.null_tokens.iter().map(String::as_str));
        writeln!(
            out,
            "null_tokens = {}   # these words stand for \"no value\" in the sample",
            list(tokens)
        )?;
    }
    writeln!(
        out,
        "# The sample's header: a rule or feature naming another column is a mistake that"
    )?;
    writeln!(out, "# check-config reports before a run meets it.")?;
    writeln!(
        out,
        "columns = {}",
        list(s.header.iter().map(String::as_str))
    )?;
    if s.header.len() > DEFAULT_MAX_COLUMNS {
        writeln!(
            out,
            "max_columns = {}   # the sample is wider than the default {DEFAULT_MAX_COLUMNS}",
            s.header.len()
        )?;
    }
    if s.header_bytes > DEFAULT_MAX_HEADER_BYTES {
        writeln!(
            out,
            "max_header_bytes = {}   # the sample's header is longer than the default",
            s.header_bytes.next_power_of_two()
        )?;
    }

    // The columns rules and features can name: non-empty, each once (a repeated header
    // name reads its last occurrence, as in a run).
    let mut seen = std::collections::BTreeSet::new();
    let columns: Vec<&ColumnGuess> = s
        .columns
        .iter()
        .rev()
        .filter(|c| !c.name.is_empty() && seen.insert(c.name.as_str()))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let has_time = columns
        .iter()
        .any(|c| matches!(c.kind, Kind::Timestamp { .. }));
    let clash = !has_time && columns.iter().any(|c| c.name == EVENT_TIMESTAMP);

    writeln!(out)?;
    writeln!(out, "[output]")?;
    writeln!(out, "prefix = {}", q(&format!("out/features/{name}")))?;
    if clash {
        writeln!(
            out,
            "formats = [\"csv\"]   # not \"parquet\": its event_timestamp column would clash with yours"
        )?;
    } else {
        writeln!(
            out,
            "formats = [\"csv\", \"parquet\"]   # feature.parquet: typed columns for feature stores and training"
        )?;
    }

    writeln!(out)?;
    writeln!(
        out,
        "# --- rules: each one held on the sample; an error rule that fails stops the run (exit 3)"
    )?;
    writeln!(out)?;
    writeln!(out, "[[rules]]")?;
    writeln!(
        out,
        "rule = \"min_rows\"   # an empty drop is not published"
    )?;
    writeln!(out, "value = 1")?;
    let typed: Vec<(String, &str)> = columns
        .iter()
        .filter_map(|c| {
            let ty = match &c.kind {
                Kind::Integer => "integer",
                Kind::Float => "float",
                Kind::Boolean => "boolean",
                Kind::Timestamp { format: None, .. } => "timestamp",
                _ => return None,
            };
            Some((c.name.clone(), ty))
        })
        .collect();
    writeln!(out)?;
    writeln!(out, "[[rules]]")?;
    writeln!(
        out,
        "rule = \"required_columns\"   # the sample's columns, with the types every value had"
    )?;
    writeln!(
        out,
        "columns = {}",
        list(columns.iter().map(|c| c.name.as_str()))
    )?;
    if !typed.is_empty() {
        let types: Vec<String> = typed
            .iter()
            .map(|(name, ty)| format!("{} = {}", key(name), q(ty)))
            .collect();
        writeln!(out, "types = {{ {} }}", types.join(", "))?;
    }

    for c in &columns {
        write_column_rules(out, c, s.rows)?;
    }

    writeln!(out)?;
    writeln!(
        out,
        "# --- features: one row per raw row, every column passed through and typed as guessed"
    )?;
    for c in &columns {
        writeln!(out)?;
        writeln!(out, "[[features.columns]]")?;
        writeln!(out, "name = {}", q(&c.name))?;
        writeln!(out, "column = {}", q(&c.name))?;
        match &c.kind {
            Kind::Integer if only_zero_one(c) => writeln!(
                out,
                "cast = \"integer\"   # only 0 and 1 in the sample: cast = \"boolean\" if it is a flag"
            )?,
            Kind::Integer => writeln!(out, "cast = \"integer\"")?,
            Kind::Float => writeln!(out, "cast = \"float\"")?,
            Kind::Boolean => writeln!(out, "cast = \"boolean\"")?,
            Kind::Timestamp { format, .. } => {
                writeln!(
                    out,
                    "cast = \"timestamp\"   # RFC 3339 in feature.csv, TIMESTAMP in feature.parquet"
                )?;
                if let Some(f) = format {
                    writeln!(out, "format = {}", q(f))?;
                }
            }
            Kind::Empty => writeln!(out, "# always empty in the sample: passed through as text")?,
            Kind::String => {}
        }
    }
    Ok(())
}

/// The rules one column earned on the sample, each with the reason as a comment.
fn write_column_rules(out: &mut String, c: &ColumnGuess, rows: u64) -> std::fmt::Result {
    let rule = |out: &mut String, why: &str, kind: &str| -> std::fmt::Result {
        writeln!(out)?;
        writeln!(out, "# {}: {why}", c.name)?;
        writeln!(out, "[[rules]]")?;
        writeln!(out, "rule = {}", q(kind))?;
        writeln!(out, "column = {}", q(&c.name))
    };
    if c.nulls == 0 {
        rule(
            out,
            &format!("no null in the {rows} rows of the sample"),
            "not_null",
        )?;
    }
    match &c.kind {
        Kind::Integer | Kind::Float => {
            let what = if c.kind == Kind::Integer {
                "whole numbers"
            } else {
                "numbers"
            };
            rule(out, &format!("{what} only"), "numeric")?;
        }
        Kind::Timestamp { format, others } => {
            match format {
                None => rule(out, "RFC 3339 / ISO 8601 timestamps only", "timestamp")?,
                Some(f) => {
                    rule(out, &format!("timestamps written {f}"), "timestamp")?;
                    writeln!(out, "format = {}", q(f))?;
                }
            }
            if !others.is_empty() {
                writeln!(
                    out,
                    "# every value also reads as {}: check which one the data uses",
                    others.join(", ")
                )?;
            }
        }
        Kind::String => {
            if let Some(distinct) = &c.distinct {
                let values = c.values as usize;
                if distinct.len() <= ALLOWED_VALUES_MAX
                    && values >= distinct.len() * ALLOWED_VALUES_REPEAT
                {
                    rule(
                        out,
                        &format!(
                            "{} distinct values in {values} cells: looks like a category",
                            distinct.len()
                        ),
                        "allowed_values",
                    )?;
                    writeln!(
                        out,
                        "values = {}",
                        list(distinct.keys().map(String::as_str))
                    )?;
                }
            }
        }
        Kind::Boolean | Kind::Empty => {}
    }
    Ok(())
}

/// Whether every value was 0 or 1 (a flag, perhaps).
fn only_zero_one(c: &ColumnGuess) -> bool {
    c.distinct
        .as_ref()
        .is_some_and(|d| d.keys().all(|v| v.trim() == "0" || v.trim() == "1"))
}

/// A TOML key: bare when it can be, else quoted.
fn key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        name.to_string()
    } else {
        q(name)
    }
}
