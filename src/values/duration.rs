//! Ages and windows as people type them: `30d`, `12h`, `2w`, `90m`, `45s`, or several
//! together (`1d12h`). One parser for every flag that takes one (`gc --older-than`,
//! `gc --grace`, `runs --since`), so they all read the same.

use std::fmt;
use std::time::Duration;

/// A span of time given as `<number><unit>` pairs: `s`, `m`, `h`, `d` (24 h) or `w` (7 d),
/// in either case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(Duration);

/// Longer spans are certainly typos (and would overflow date arithmetic).
const MAX_SECS: u64 = 100 * 366 * 86_400;

impl Span {
    pub fn from_secs(secs: u64) -> Self {
        Span(Duration::from_secs(secs))
    }

    pub fn duration(self) -> Duration {
        self.0
    }

    /// As a chrono duration, for date arithmetic (bounded by [`MAX_SECS`]).
    pub fn chrono(self) -> chrono::Duration {
        chrono::Duration::seconds(self.0.as_secs().min(MAX_SECS) as i64)
    }

    /// Parses `30d`, `12h`, `2w`, `1d12h`; the error says what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{:?} is not a duration (use a number and a unit: 45s, 90m, 26h, 30d, 2w; or several, 1d12h)",
                super::shorten(text)
            )
        };
        let s = text.trim();
        if s.is_empty() {
            return Err(bad());
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c.to_ascii_lowercase() {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 7 * 86_400,
                _ => return Err(bad()),
            };
            let n: u64 = digits.parse().map_err(|_| bad())?;
            digits.clear();
            total = n
                .checked_mul(unit)
                .and_then(|secs| total.checked_add(secs))
                .ok_or_else(bad)?;
        }
        if !digits.is_empty() {
            // A bare number: which unit was meant is a guess we do not make.
            return Err(bad());
        }
        if total > MAX_SECS {
            return Err(format!(
                "{:?} is longer than 100 years",
                super::shorten(text)
            ));
        }
        Ok(Span(Duration::from_secs(total)))
    }
}

impl std::str::FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Span::parse(s)
    }
}

impl fmt::Display for Span {
    /// The largest units that divide it: `30d`, `36h`, `1w`, `90s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        for (unit, size) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
            if secs > 0 && secs.is_multiple_of(size) {
                return write!(f, "{}{unit}", secs / size);
            }
        }
        write!(f, "{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_sums_parse() {
        let secs = |s: &str| Span::parse(s).unwrap().duration().as_secs();
        assert_eq!(secs("45s"), 45);
        assert_eq!(secs("90m"), 5400);
        assert_eq!(secs("12h"), 43_200);
        assert_eq!(secs("30d"), 30 * 86_400);
        assert_eq!(secs("2w"), 14 * 86_400);
        assert_eq!(secs("2W"), 14 * 86_400);
        assert_eq!(secs(" 1d12h "), 36 * 3600);
        assert_eq!(secs("0d"), 0);
    }

    #[test]
    fn anything_else_is_refused_with_the_accepted_forms() {
        for bad in [
            "",
            "30",
            "d",
            "3x",
            "-1d",
            "1.5d",
            "1 d",
            "99999999999999999999d",
        ] {
            let e = Span::parse(bad).unwrap_err();
            assert!(e.contains("30d") || e.contains("100 years"), "{bad}: {e}");
        }
        assert!(Span::parse("40000d").unwrap_err().contains("100 years"));
    }

    #[test]
    fn it_prints_in_the_largest_whole_unit() {
        let shown = |s: &str| Span::parse(s).unwrap().to_string();
        assert_eq!(shown("30d"), "30d");
        assert_eq!(shown("14d"), "2w");
        assert_eq!(shown("1d12h"), "36h");
        assert_eq!(shown("90s"), "90s");
        assert_eq!(shown("0s"), "0s");
    }
}
