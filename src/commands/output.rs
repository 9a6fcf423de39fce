//! How commands print reports on stdout: one fixed-width table printer and one CSV
//! writer, shared by every command that prints rows (`run`, `backfill`, `check-config`,
//! `status`, `versions`, `gc`, `runs`), the `--output` choices, and the pieces several
//! reports show (a rule's verdicts, counts with their nouns).

use crate::log;
pub use crate::values::size::human_bytes;

use serde_json::Value;

use crate::error::{Error, Result};

/// `--output` of commands whose report is a table or one JSON document (`run` and
/// `check-config` default to json, the others to table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
}

/// `--output` of commands whose report is rows a warehouse may load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RowsFormat {
    Table,
    Json,
    Csv,
}

/// Rows as a fixed-width table (the first row is the header): each column as wide as its
/// widest cell, two spaces apart, no trailing spaces.
pub fn table<R: AsRef<[String]>>(rows: &[R]) -> String {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|row| row.as_ref().get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .as_ref()
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Rows as CSV (RFC 4180 quoting, `\n` line ends), header first: what `COPY` / `LOAD
/// DATA` / `bq load` read.
pub fn csv<R: AsRef<[String]>>(rows: &[R]) -> String {
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.as_ref().iter().map(|c| csv_cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn csv_cell(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

/// Writes `bytes` to stdout at once (a reader that stopped reading is fine, as
/// [`log::write_stdout`] says); any other failed write (a full disk) is an error naming
/// stdout, never a panic.
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    log::write_stdout(bytes).map_err(|e| Error::Usage(format!("cannot write to stdout: {e}")))
}

/// A missing value in a table cell.
pub const DASH: &str = "-";

/// `1 date`, `7 dates`: a count with its noun, singular for exactly one (`many` is the
/// plural).
pub fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `(name, value)` facts as two aligned columns, one per line.
pub fn facts(rows: &[(&str, String)]) -> String {
    let rows: Vec<[String; 2]> = rows
        .iter()
        .map(|(k, v)| [k.to_string(), v.clone()])
        .collect();
    table(&rows)
}

/// A JSON value as table text (strings without quotes, null as a dash).
pub fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => DASH.into(),
        other => other.to_string(),
    }
}

/// `text` cut to `max` characters, with `...` when cut.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// Rule verdicts (`metadata.json`'s and a run result's `validation`) as a table: rule,
/// column, severity, passed, observed, threshold.
pub fn validation_table(rules: &[Value]) -> String {
    let text = |v: &Value, key: &str| v.get(key).map_or_else(|| DASH.to_string(), plain);
    let mut rows = vec![[
        "rule",
        "column",
        "severity",
        "passed",
        "observed",
        "threshold",
    ]
    .map(String::from)
    .to_vec()];
    for r in rules {
        rows.push(vec![
            text(r, "name"),
            r.get("column").map_or_else(|| DASH.into(), plain),
            text(r, "severity"),
            match r.get("passed").and_then(Value::as_bool) {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => DASH.into(),
            },
            r.get("observed")
                .map_or_else(|| DASH.into(), |v| cut(&plain(v), 60)),
            r.get("threshold")
                .map_or_else(|| DASH.into(), |v| cut(&plain(v), 40)),
        ]);
    }
    table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(list: &[&[&str]]) -> Vec<Vec<String>> {
        list.iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn tables_pad_to_the_widest_cell_and_trim() {
        let t = table(&rows(&[&["a", "bb", "c"], &["long", "x", ""]]));
        assert_eq!(t, "a     bb  c\nlong  x\n");
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        let c = csv(&rows(&[&["day", "note"], &["2025-11-19", "a,b \"c\""]]));
        assert_eq!(c, "day,note\n2025-11-19,\"a,b \"\"c\"\"\"\n");
    }

    #[test]
    fn counts_take_the_singular_for_exactly_one() {
        assert_eq!(plural(0u64, "date", "dates"), "0 dates");
        assert_eq!(plural(1u64, "date", "dates"), "1 date");
        assert_eq!(plural(2u32, "version", "versions"), "2 versions");
        assert_eq!(plural(1u64, "is", "are"), "1 is");
    }

    #[test]
    fn facts_align_their_values() {
        let f = facts(&[("status", "success".into()), ("exit code", "0".into())]);
        assert_eq!(f, "status     success\nexit code  0\n");
    }
}
