//! `featurepipe infer SAMPLE.csv`: prints a starting pipeline file for a sample (its logic
//! is `crate::infer`), so a new user starts from their own columns instead of a blank page.

use std::path::PathBuf;

use clap::Args;

use crate::error::{Error, Finished, Result};
use crate::infer::{self, Options, DEFAULT_MAX_ROWS};
use crate::log;

pub const INFER_AFTER_HELP: &str = "\
Reads the sample as a run would (.csv, .csv.gz, .csv.zst) and prints a pipeline file on
stdout: [source] (path, delimiter, null tokens, the header as columns), [output] (CSV and
Parquet), rules that held on the sample (required_columns with types, not_null,
allowed_values, numeric, timestamp) and row-grain features casting each column to its type.
Every guess is commented: review it, then check it.

Examples:
  featurepipe infer fixtures/user_events_20251119.csv > user_events.toml
  featurepipe check-config user_events.toml
  featurepipe run --config user_events.toml --execution-date 2025-11-19";

/// `featurepipe infer`.
#[derive(Debug, Clone, Args)]
pub struct InferArgs {
    /// The sample CSV (a local file; .gz / .zst are decompressed)
    #[arg(value_name = "SAMPLE", env = "DP_INFER_SAMPLE")]
    pub sample: PathBuf,

    /// Field delimiter: auto (detect), or one character: , ; | or \t (tab)
    #[arg(
        long,
        env = "DP_INFER_DELIMITER",
        value_name = "CHAR",
        default_value = "auto"
    )]
    pub delimiter: String,

    /// Rows of the sample read to guess from
    #[arg(long, env = "DP_INFER_MAX_ROWS", value_name = "N", default_value_t = DEFAULT_MAX_ROWS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_rows: usize,

    /// The pipeline's name [default: the sample's file name, without extensions]
    #[arg(long, env = "DP_INFER_NAME", value_name = "NAME")]
    pub name: Option<String>,
}

/// Exit 0 with the pipeline file on stdout; 2 for an unreadable sample or bad flag, 3 for
/// a sample that is not CSV.
pub fn execute(args: InferArgs) -> Result<Finished> {
    let delimiter = match args.delimiter.as_str() {
        "auto" => None,
        "\\t" | "tab" => Some(b'\t'),
        d if d.len() == 1 => Some(d.as_bytes()[0]),
        other => {
            return Err(Error::Usage(format!(
                "--delimiter {:?}: use auto or one character such as , ; | or \\t",
                crate::values::shorten(other)
            )))
        }
    };
    let options = Options {
        delimiter,
        max_rows: args.max_rows,
    };
    let inferred = infer::infer(&args.sample, &options)?;
    let name = match args.name {
        Some(name) => name,
        None => name_from(&args.sample),
    };
    let path = args.sample.to_string_lossy();
    log::stdout(&infer::render(&inferred, &path, &name));
    Ok(Finished {
        skipped_on_purpose: false,
        note: Some(format!(
            "featurepipe: inferred {} columns from {} rows of {path}; review the file, then: \
             featurepipe check-config FILE",
            inferred.header.len(),
            inferred.rows
        )),
    })
}

/// A pipeline name from the sample's file name: extensions off, anything but letters,
/// digits, `_`, `-` and `.` made `_`.
fn name_from(path: &std::path::Path) -> String {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut stem = file.as_str();
    for ext in [".gz", ".zst", ".csv", ".tsv", ".txt"] {
        if stem.to_ascii_lowercase().ends_with(ext) {
            stem = &stem[..stem.len() - ext.len()];
        }
    }
    let name: String = stem
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' | '.' => c,
            _ => '_',
        })
        .take(128)
        .collect();
    if name.is_empty() {
        "inferred".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_file_name() {
        for (path, want) in [
            ("fixtures/user_events_20251119.csv", "user_events_20251119"),
            ("/x/part 1.CSV.GZ", "part_1"),
            ("événements.csv.zst", "_v_nements"),
            (".csv", "inferred"),
        ] {
            assert_eq!(name_from(std::path::Path::new(path)), want, "{path}");
        }
    }
}
