//! Where a setting came from: a flag, an environment variable, a line of the pipeline
//! file, or the built-in default. Every configuration error names the origin to fix.

use std::fmt;
use std::path::PathBuf;

/// Where a value was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag, e.g. `--timezone`.
    Flag(String),
    /// An environment variable, e.g. `DP_TIMEZONE`.
    Env(String),
    /// A key of the pipeline file, at a line.
    File {
        path: PathBuf,
        line: usize,
        key: &'static str,
    },
    /// The built-in default (named after the setting, e.g. `the default timezone`).
    Default(&'static str),
}

impl fmt::Display for Origin {
    /// `--timezone`, `DP_TIMEZONE`, `orders.toml line 4: timezone`, `the default timezone`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "{flag}"),
            Origin::Env(var) => write!(f, "{var}"),
            Origin::File { path, line, key } => {
                write!(f, "{} line {line}: {key}", path.display())
            }
            Origin::Default(what) => write!(f, "the default {what}"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Setting<T> {
    pub fn new(value: T, origin: Origin) -> Self {
        Setting { value, origin }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_read_as_what_to_fix() {
        assert_eq!(Origin::Flag("--timezone".into()).to_string(), "--timezone");
        assert_eq!(Origin::Env("DP_TIMEZONE".into()).to_string(), "DP_TIMEZONE");
        let file = Origin::File {
            path: "orders.toml".into(),
            line: 4,
            key: "timezone",
        };
        assert_eq!(file.to_string(), "orders.toml line 4: timezone");
        assert_eq!(
            Origin::Default("timezone").to_string(),
            "the default timezone"
        );
    }
}
