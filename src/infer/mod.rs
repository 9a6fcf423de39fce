//! `featurepipe infer`: a starting pipeline file from a sample CSV. A new user has a file,
//! not a pipeline; reading a sample the way a run reads it (the same CSV scanner, number
//! grammar and timestamp forms) gives a file that passes `check-config` and runs on the
//! sample, with every guess written down as a comment to review.
//!
//! What is guessed, from at most `max_rows` rows:
//! - the delimiter (`auto`: the one of `,` `\t` `;` `|` that splits the first lines into
//!   the same, largest number of fields) and null tokens (`NULL`, `null`, `N/A`, `None`);
//! - each column's type: boolean (only `true`/`false` words), integer, float, timestamp
//!   (RFC 3339 / ISO 8601, else the first of a few common strftime formats that reads
//!   every value), or string;
//! - rules: `required_columns` with the types, `not_null` where the sample has no null,
//!   `allowed_values` for strings with few distinct values, `numeric` for numbers,
//!   `timestamp` (with its format) for timestamps;
//! - row-grain features passing every column through, cast to its type.

mod render;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::pass::csv_scan::{CsvScanner, Limits, Record, RecordSink};
use crate::pass::sources::Compression;
use crate::values::number::{parse_cell, parse_integer};
use crate::values::timestamp::{matches_format, parse_in};

pub use render::render;

/// Rows read by default: enough to see the values, quick on any file.
pub const DEFAULT_MAX_ROWS: usize = 100_000;
/// Delimiters `auto` chooses from, in order of preference on a tie.
const DELIMITERS: [u8; 4] = [b',', b'\t', b';', b'|'];
/// Cell texts taken for "no value" when they appear in a sample.
const NULL_WORDS: [&str; 4] = ["NULL", "null", "N/A", "None"];
/// A string column with at most this many distinct values gets `allowed_values`...
const ALLOWED_VALUES_MAX: usize = 12;
/// ... when each value appears at least this many times on average.
const ALLOWED_VALUES_REPEAT: usize = 3;
/// strftime formats tried, in order, for timestamps that are not RFC 3339 / ISO 8601.
/// Day-first before month-first: where both read every value, the comment says so.
const TIMESTAMP_FORMATS: [&str; 17] = [
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y",
    "%d-%b-%Y %H:%M:%S",
    "%d-%b-%Y",
    "%Y-%m-%d %H:%M",
];
/// Bounds for reading a sample: wider than a run's defaults, so a wide sample is read and
/// the file says which bounds it needs.
const SAMPLE_LIMITS: Limits = Limits {
    max_fields: 1_000_000,
    max_header_bytes: 64 << 20,
};

/// How `infer` reads the sample.
#[derive(Debug, Clone)]
pub struct Options {
    /// `None`: detect it.
    pub delimiter: Option<u8>,
    pub max_rows: usize,
}

/// What the sample says.
#[derive(Debug, Clone, PartialEq)]
pub struct Inferred {
    pub delimiter: u8,
    /// Whether the delimiter was detected (else given).
    pub detected: bool,
    pub header: Vec<String>,
    pub columns: Vec<ColumnGuess>,
    pub rows: u64,
    /// The sample has more rows than were read.
    pub truncated: bool,
    /// Null words seen in the sample, besides the empty cell.
    pub null_tokens: Vec<String>,
    /// Bytes of the header line (for `max_header_bytes`).
    pub header_bytes: usize,
}

/// One column's guess.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnGuess {
    pub name: String,
    pub kind: Kind,
    pub nulls: u64,
    /// Values seen (non-null), and the distinct ones while there are few.
    pub values: u64,
    pub distinct: Option<BTreeMap<String, u64>>,
}

/// A column's type as guessed.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Only nulls in the sample: nothing to go by.
    Empty,
    Boolean,
    Integer,
    Float,
    /// RFC 3339 / ISO 8601 when `format` is `None`; `others` are further formats that
    /// read every value too (day-first and month-first dates).
    Timestamp {
        format: Option<String>,
        others: Vec<String>,
    },
    String,
}

/// Reads the sample and guesses.
pub fn infer(path: &Path, options: &Options) -> Result<Inferred> {
    let cannot = |why: String| Error::Usage(format!("{}: cannot read: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| cannot(e.to_string()))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(cannot("it is a folder".into()));
    }
    let name = path.to_string_lossy();
    let mut reader: Box<dyn Read> = match Compression::from_name(&name) {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(file).map_err(|e| cannot(e.to_string()))?)
        }
    };
    let mut first = vec![0u8; 64 << 10];
    let n = read_full(&mut reader, &mut first).map_err(|e| cannot(e.to_string()))?;
    first.truncate(n);
    let (delimiter, detected) = match options.delimiter {
        Some(d) => (d, false),
        None => (detect_delimiter(&first), true),
    };
    let mut scanner = CsvScanner::with_delimiter(delimiter)
        .map_err(|e| Error::Usage(format!("--delimiter: {e}")))?
        .with_limits(SAMPLE_LIMITS);
    let mut sink = Guesser::new(options.max_rows);
    let malformed = |e: crate::pass::csv_scan::ScanError| Error::Malformed {
        file: Some(path.display().to_string()),
        line: e.line,
        message: e.message,
    };
    scanner.feed(&first, &mut sink).map_err(malformed)?;
    let mut chunk = vec![0u8; 1 << 20];
    while !sink.full() {
        let n = read_full(&mut reader, &mut chunk).map_err(|e| cannot(e.to_string()))?;
        if n == 0 {
            scanner.finish(&mut sink).map_err(malformed)?;
            break;
        }
        scanner.feed(&chunk[..n], &mut sink).map_err(malformed)?;
    }
    sink.finish(delimiter, detected, path)
}

/// Reads until `buf` is full or the input ends; the bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The delimiter that splits the first lines into the same number of fields, the most of
/// them; a comma when none does.
pub fn detect_delimiter(head: &[u8]) -> u8 {
    let lines: Vec<&[u8]> = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .take(20)
        .collect();
    // The last line may be cut by the read.
    let whole = if lines.len() > 1 && !head.ends_with(b"\n") {
        &lines[..lines.len() - 1]
    } else {
        &lines[..]
    };
    let mut best = (0, b',');
    for d in DELIMITERS {
        let counts: Vec<usize> = whole.iter().map(|l| count_outside_quotes(l, d)).collect();
        let Some(&first) = counts.first() else {
            continue;
        };
        if first > best.0 && counts.iter().all(|&c| c == first) {
            best = (first, d);
        }
    }
    best.1
}

fn count_outside_quotes(line: &[u8], delimiter: u8) -> usize {
    let mut quoted = false;
    line.iter()
        .filter(|&&b| {
            if b == b'"' {
                quoted = !quoted;
            }
            b == delimiter && !quoted
        })
        .count()
}

/// Collects the header and each column's evidence, record by record.
struct Guesser {
    max_rows: usize,
    header: Option<Vec<String>>,
    header_bytes: usize,
    columns: Vec<Evidence>,
    rows: u64,
    truncated: bool,
    null_words: [u64; NULL_WORDS.len()],
}

/// What one column's cells showed so far.
struct Evidence {
    nulls: u64,
    values: u64,
    booleans: bool,
    integers: bool,
    floats: bool,
    iso_timestamps: bool,
    /// Formats of [`TIMESTAMP_FORMATS`] that read every value so far.
    formats: Vec<&'static str>,
    distinct: Option<BTreeMap<String, u64>>,
}

impl Evidence {
    fn new() -> Self {
        Evidence {
            nulls: 0,
            values: 0,
            booleans: true,
            integers: true,
            floats: true,
            iso_timestamps: true,
            formats: TIMESTAMP_FORMATS.to_vec(),
            distinct: Some(BTreeMap::new()),
        }
    }

    fn observe(&mut self, cell: &str) {
        self.values += 1;
        let t = cell.trim();
        self.booleans &= t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false");
        self.integers &= parse_integer(t.as_bytes()).is_some();
        self.floats &= parse_cell(t.as_bytes()).is_some();
        // Numbers are never timestamps (20251119 reads as %Y%m%d, but is an integer).
        let number = self.integers || self.floats;
        self.iso_timestamps &= !number && parse_in(t.as_bytes(), chrono_tz::UTC).is_some();
        if !self.formats.is_empty() {
            self.formats
                .retain(|f| !number && matches_format(t.as_bytes(), f));
        }
        if let Some(distinct) = self.distinct.as_mut() {
            *distinct.entry(cell.to_string()).or_insert(0) += 1;
            if distinct.len() > ALLOWED_VALUES_MAX {
                self.distinct = None;
            }
        }
    }

    fn kind(&self) -> Kind {
        if self.values == 0 {
            Kind::Empty
        } else if self.booleans {
            Kind::Boolean
        } else if self.integers {
            Kind::Integer
        } else if self.floats {
            Kind::Float
        } else if self.iso_timestamps {
            Kind::Timestamp {
                format: None,
                others: Vec::new(),
            }
        } else if let Some((first, others)) = self.formats.split_first() {
            Kind::Timestamp {
                format: Some(first.to_string()),
                others: others.iter().map(|f| f.to_string()).collect(),
            }
        } else {
            Kind::String
        }
    }
}

impl Guesser {
    fn new(max_rows: usize) -> Self {
        Guesser {
            max_rows,
            header: None,
            header_bytes: 0,
            columns: Vec::new(),
            rows: 0,
            truncated: false,
            null_words: [0; NULL_WORDS.len()],
        }
    }

    fn full(&self) -> bool {
        self.truncated
    }

    fn finish(self, delimiter: u8, detected: bool, path: &Path) -> Result<Inferred> {
        let Some(header) = self.header else {
            return Err(Error::Usage(format!(
                "{}: no header: the sample is empty",
                path.display()
            )));
        };
        if self.rows == 0 {
            return Err(Error::Usage(format!(
                "{}: only a header, no data rows to infer types from",
                path.display()
            )));
        }
        let columns = header
            .iter()
            .zip(&self.columns)
            .map(|(name, e)| ColumnGuess {
                name: name.clone(),
                kind: e.kind(),
                nulls: e.nulls,
                values: e.values,
                distinct: e.distinct.clone(),
            })
            .collect();
        Ok(Inferred {
            delimiter,
            detected,
            header,
            columns,
            rows: self.rows,
            truncated: self.truncated,
            null_tokens: NULL_WORDS
                .iter()
                .zip(self.null_words)
                .filter(|(_, n)| *n > 0)
                .map(|(w, _)| w.to_string())
                .collect(),
            header_bytes: self.header_bytes,
        })
    }
}

impl RecordSink for Guesser {
    fn record(&mut self, record: &Record<'_>) {
        if self.header.is_none() {
            let names: Vec<String> = record.fields().map(String::from).collect();
            self.header_bytes = names.iter().map(|n| n.len() + 1).sum();
            self.columns = names.iter().map(|_| Evidence::new()).collect();
            self.header = Some(names);
            return;
        }
        if self.rows as usize >= self.max_rows {
            self.truncated = true;
            return;
        }
        self.rows += 1;
        for (i, column) in self.columns.iter_mut().enumerate() {
            // A short row's missing cells are nulls, as in a run.
            let cell = if i < record.len() {
                record.field(i)
            } else {
                ""
            };
            if let Some(w) = NULL_WORDS.iter().position(|w| *w == cell) {
                self.null_words[w] += 1;
                column.nulls += 1;
            } else if cell.is_empty() {
                column.nulls += 1;
            } else {
                column.observe(cell);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer_text(text: &str, delimiter: Option<u8>) -> Inferred {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sample.csv");
        std::fs::write(&path, text).unwrap();
        infer(
            &path,
            &Options {
                delimiter,
                max_rows: DEFAULT_MAX_ROWS,
            },
        )
        .unwrap()
    }

    #[test]
    fn the_delimiter_splits_every_line_alike() {
        assert_eq!(detect_delimiter(b"a;b;c\n1;2,5;3\n"), b';');
        assert_eq!(detect_delimiter(b"a\tb\n1\t\"x\ty\"\n"), b'\t');
        assert_eq!(detect_delimiter(b"a|b\n1|2\n"), b'|');
        assert_eq!(detect_delimiter(b"a,b\n1,2\n3,4"), b',');
        assert_eq!(detect_delimiter(b"only\n1\n"), b',');
    }

    #[test]
    fn each_column_gets_the_narrowest_type_every_value_has() {
        let got = infer_text(
            "id;flag;n;x;at;day;when;kind;note;blank\n\
             1;true;1;1.5;2025-11-19T00:03:04+09:00;19/11/2025;2025/11/19 10:00;a;x y;\n\
             2;FALSE;-2;nan;2025-11-19 10:00:00;01/02/2025;2025/11/19 11:30;b;NULL;\n\
             3;true;NULL;3;2025-11-19;13/12/2025;2025/11/20 00:00;a;z;\n\
             4;false;4;1e3;2025-11-19T01:00:00Z;31/01/2025;2025/11/21 09:15;a;w;\n",
            None,
        );
        assert_eq!(got.delimiter, b';');
        assert!(got.detected);
        assert_eq!(got.rows, 4);
        assert_eq!(got.null_tokens, ["NULL"]);
        let kinds: Vec<(&str, &Kind)> = got
            .columns
            .iter()
            .map(|c| (c.name.as_str(), &c.kind))
            .collect();
        let ts = |f: Option<&str>, others: &[&str]| Kind::Timestamp {
            format: f.map(String::from),
            others: others.iter().map(|o| o.to_string()).collect(),
        };
        assert_eq!(
            kinds,
            [
                ("id", &Kind::Integer),
                ("flag", &Kind::Boolean),
                ("n", &Kind::Integer),
                ("x", &Kind::Float),
                ("at", &ts(None, &[])),
                ("day", &ts(Some("%d/%m/%Y"), &[])),
                ("when", &ts(Some("%Y/%m/%d %H:%M"), &[])),
                ("kind", &Kind::String),
                ("note", &Kind::String),
                ("blank", &Kind::Empty),
            ]
        );
        assert_eq!(got.columns[2].nulls, 1, "NULL is a null");
        let kind = got.columns[7].distinct.as_ref().unwrap();
        assert_eq!(kind.get("a"), Some(&3));
    }

    #[test]
    fn ambiguous_dates_name_both_formats_and_max_rows_bounds_the_read() {
        let mut text = String::from("d,v\n");
        for i in 1..=12 {
            text.push_str(&format!("{i:02}/03/2025,{i}\n"));
        }
        let got = infer_text(&text, Some(b','));
        assert_eq!(
            got.columns[0].kind,
            Kind::Timestamp {
                format: Some("%d/%m/%Y".into()),
                others: vec!["%m/%d/%Y".into()]
            }
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        std::fs::write(&path, &text).unwrap();
        let few = infer(
            &path,
            &Options {
                delimiter: None,
                max_rows: 5,
            },
        )
        .unwrap();
        assert_eq!(few.rows, 5);
        assert!(few.truncated);
    }

    #[test]
    fn a_sample_without_rows_cannot_be_inferred_from() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.csv");
        std::fs::write(&path, "a,b\n").unwrap();
        let opts = Options {
            delimiter: None,
            max_rows: 10,
        };
        let m = infer(&path, &opts).unwrap_err().to_string();
        assert!(m.contains("no data rows"), "{m}");
        let m = infer(&dir.path().join("none.csv"), &opts)
            .unwrap_err()
            .to_string();
        assert!(m.contains("cannot read"), "{m}");
    }
}
