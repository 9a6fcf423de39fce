//! Values as featurepipe reads and writes them: numbers, timestamps, execution dates,
//! durations, sizes, digests and ids. Leaf modules: they know nothing of runs, storage or
//! configuration origins (callers add which flag or file line a bad value came from).

pub mod digest;
pub mod duration;
pub mod execution_date;
pub mod ids;
pub mod number;
pub mod size;
pub mod timestamp;

/// Longer values are cut when echoed in a message.
const SHOWN_CHARS: usize = 80;

/// `text` as a message may echo it: whole when short, else its start and its length (a
/// 10 MB value must not fill a terminal or a log).
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}... ({} bytes)", &text[..cut], text.len()),
    }
}

/// A boolean cell: `true` / `false` / `1` / `0`, any case, surrounding ASCII whitespace
/// ignored (what the `boolean` value type accepts); `None` for anything else.
pub fn parse_boolean(cell: &[u8]) -> Option<bool> {
    let t = cell.trim_ascii();
    if t == b"1" || t.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if t == b"0" || t.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

/// A value that cannot be read; the caller names where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{0:?} is not a known time zone (use an IANA name such as Asia/Seoul or UTC)")]
    TimeZone(String),
    #[error(
        "{0:?} is not an execution date (use 2025-11-19, 2025-11-19T00:00:00 (UTC) or \
         2025-11-19T00:00:00+09:00)"
    )]
    ExecutionDate(String),
    #[error("{0:?} is a leap second, which has no version id (use the second before or after)")]
    LeapSecond(String),
    #[error("{0:?} has an unclosed '{{' (placeholders are {{ds}}, {{ds_nodash}}, {{ts_nodash}})")]
    UnclosedPlaceholder(String),
    #[error("{template:?} uses the unknown placeholder {{{name}}} (use {{ds}}, {{ds_nodash}} or {{ts_nodash}})")]
    UnknownPlaceholder { name: String, template: String },
    #[error("timestamp format {0:?} is not a valid strftime format (e.g. \"%Y-%m-%d %H:%M:%S\")")]
    TimestampFormat(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_are_the_boolean_type_s_words() {
        for (cell, want) in [
            (&b"true"[..], Some(true)),
            (b" TRUE ", Some(true)),
            (b"1", Some(true)),
            (b"False", Some(false)),
            (b"0", Some(false)),
            (b"yes", None),
            (b"01", None),
            (b"", None),
        ] {
            assert_eq!(parse_boolean(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn long_values_are_cut_when_shown() {
        assert_eq!(shorten("short"), "short");
        let long = "é".repeat(1000);
        let shown = shorten(&long);
        assert!(shown.starts_with(&"é".repeat(80)));
        assert!(shown.ends_with("... (2000 bytes)"), "{shown}");
    }
}
