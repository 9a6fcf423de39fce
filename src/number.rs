//! The seed's number rules: what counts as a number in a cell, and how a float is written.
//!
//! The seed called Python's `float(cell)` and wrote results with `csv.writer`, i.e. with
//! `repr(float)`. We keep both behaviours, minus the Python extras DESIGN.md excludes
//! (underscores, non-ASCII digits).

use std::fmt::Write as _;

/// Parses one cell by the seed's grammar; `None` means "not a number" (counts 0).
///
/// Surrounding whitespace is ignored; then an optional sign, decimal digits with an
/// optional point and exponent, or `nan` / `inf` / `infinity` in any case. Overflow gives
/// +-inf. Rust's `f64::from_str` accepts exactly this grammar (no `_`, no hex, ASCII
/// digits only), which the unit tests below pin down.
#[inline]
pub fn parse_cell(cell: &str) -> Option<f64> {
    let t = cell.trim();
    if t.is_empty() {
        return None;
    }
    t.parse::<f64>().ok()
}

/// Writes `x` the way Python's `repr(float)` does: shortest round-trip digits, `5.0`
/// not `5`, scientific notation when the decimal exponent is < -4 or >= 16
/// (`1e+16`, `1e-05`), and `nan` / `inf` / `-inf`.
///
/// `scratch` is a reusable buffer so the hot path does not allocate per value.
pub fn write_python_float(out: &mut Vec<u8>, scratch: &mut String, x: f64) {
    if x.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if x.is_infinite() {
        out.extend_from_slice(if x > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    if x == 0.0 {
        out.extend_from_slice(if x.is_sign_negative() {
            b"-0.0"
        } else {
            b"0.0"
        });
        return;
    }
    scratch.clear();
    // `{:e}` gives the shortest round-trip digits, e.g. "-1.2345e17" or "5e0".
    let _ = write!(scratch, "{x:e}");
    let (mantissa, exp) = scratch.split_once('e').unwrap_or((scratch.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if mantissa.starts_with('-') {
        out.push(b'-');
    }
    // Digits without sign and point: "-1.2345" -> "12345" (at most 17 for an f64).
    let mut digits = [0u8; 32];
    let mut n = 0;
    for b in mantissa
        .bytes()
        .filter(u8::is_ascii_digit)
        .take(digits.len())
    {
        digits[n] = b;
        n += 1;
    }
    let digits = &digits[..n];
    // Python's `decpt`: position of the decimal point relative to the digit string.
    let decpt = exp + 1;
    if (-3..=16).contains(&decpt) {
        if decpt <= 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-decpt) as usize));
            out.extend_from_slice(digits);
        } else {
            let decpt = decpt as usize;
            if decpt >= digits.len() {
                out.extend_from_slice(digits);
                out.extend(std::iter::repeat_n(b'0', decpt - digits.len()));
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits[..decpt]);
                out.push(b'.');
                out.extend_from_slice(&digits[decpt..]);
            }
        }
    } else {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        // The digits were copied out above, so the scratch buffer is free again.
        scratch.clear();
        let _ = write!(scratch, "{:02}", exp.unsigned_abs());
        out.extend_from_slice(scratch.as_bytes());
    }
}

/// Convenience for tests and small outputs.
pub fn python_float(x: f64) -> String {
    let mut out = Vec::new();
    write_python_float(&mut out, &mut String::new(), x);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_accepts_what_design_lists() {
        assert_eq!(parse_cell(" 12 "), Some(12.0));
        assert_eq!(parse_cell("+.5"), Some(0.5));
        assert_eq!(parse_cell("1."), Some(1.0));
        assert_eq!(parse_cell("1e309"), Some(f64::INFINITY));
        assert_eq!(parse_cell("-1E309"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_cell("Infinity"), Some(f64::INFINITY));
        assert!(parse_cell("NaN").is_some_and(f64::is_nan));
        assert!(parse_cell("-nan").is_some_and(f64::is_nan));
    }

    #[test]
    fn grammar_rejects_what_design_excludes() {
        for junk in [
            "", "  ", "N/A", "1,5", "0x1A", "1_000", "١٢", "1e", ".", "e5", "--1",
        ] {
            assert_eq!(parse_cell(junk), None, "{junk:?} must not parse");
        }
    }

    #[test]
    fn floats_are_written_like_python_repr() {
        let cases = [
            (5.0, "5.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1.5e300, "1.5e+300"),
            (1e-300, "1e-300"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (1234.5, "1234.5"),
            (-12.0, "-12.0"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float(x), want, "repr of {x:e}");
        }
    }
}
