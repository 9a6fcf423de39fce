//! The original pipeline's number rules: what counts as a number in a cell, and how a float is written.
//!
//! The original pipeline called Python's `float(cell)` and wrote results with `csv.writer`, i.e. with
//! `repr(float)`. We keep both behaviours, minus the Python extras the contract excludes
//! (underscores, non-ASCII digits).

use std::fmt::Write as _;

/// Parses one cell by the original pipeline's grammar; `None` means "not a number" (counts 0).
///
/// Surrounding whitespace is ignored; then an optional sign, decimal digits with an
/// optional point and exponent, or `nan` / `inf` / `infinity` in any case. Overflow gives
/// +-inf. Rust's `f64::from_str` accepts exactly this grammar (no `_`, no hex, ASCII
/// digits only), which the unit tests below pin down.
#[inline]
pub fn parse_cell(cell: impl AsRef<[u8]>) -> Option<f64> {
    let cell = cell.as_ref();
    if cell.is_empty() {
        return None;
    }
    // Fast path: a plain decimal, as is (the usual cell) or ASCII-trimmed. Whatever it
    // accepts, `str::trim` + the full parser accept with the same value (the trimmed text
    // starts and ends with a digit, a sign or a point, so Unicode trimming cannot remove
    // more).
    if let Some(v) = parse_plain_decimal(cell) {
        return Some(v);
    }
    parse_cell_slow(cell)
}

/// [`parse_cell`] for cells with surrounding whitespace, an exponent, many digits,
/// `nan` / `inf`, or that are not numbers at all.
#[cold]
fn parse_cell_slow(cell: &[u8]) -> Option<f64> {
    if let Some(v) = parse_plain_decimal(cell.trim_ascii()) {
        return Some(v);
    }
    let t = std::str::from_utf8(cell).ok()?.trim();
    if t.is_empty() {
        return None;
    }
    t.parse::<f64>().ok()
}

/// A whole number: optional sign, ASCII digits, surrounding whitespace ignored, within
/// 64 bits.
pub fn parse_integer(cell: &[u8]) -> Option<i64> {
    std::str::from_utf8(cell.trim_ascii()).ok()?.parse().ok()
}

/// [`parse_cell`] with a word-at-a-time fast path: `window`, when given, is the 8 bytes
/// of the input that end where `cell` ends (little-endian; the cell is in the top
/// `cell.len()` bytes, whatever precedes it below). Unsigned decimals of up to 8 bytes,
/// nearly every numeric cell, then cost a few arithmetic operations instead of a loop
/// with a branch per byte. Same results as [`parse_cell`] (a unit test compares them).
#[inline]
pub fn parse_cell_window(cell: &[u8], window: Option<u64>) -> Option<f64> {
    // One digit (flags like `is_premium`): no word arithmetic needed.
    if let [c] = cell {
        let d = c.wrapping_sub(b'0');
        if d < 10 {
            return Some(f64::from(d));
        }
    }
    if let Some(w) = window {
        if let Some(v) = parse_short_decimal(w, cell.len()) {
            return Some(v);
        }
    }
    parse_cell(cell)
}

/// Every byte `b'0'`.
const ZEROS: u64 = u64::from_le_bytes([b'0'; 8]);

/// The SWAR core of [`parse_cell_window`]: `len` in `1..=8` bytes of digits with at most
/// one point (and at least one digit) in the top bytes of `window`; `None` for anything
/// else, which the caller then parses the general way.
#[inline]
fn parse_short_decimal(window: u64, len: usize) -> Option<f64> {
    if len == 0 || len > 8 {
        return None;
    }
    // Bytes below the cell become '0': leading zeros do not change the value.
    let below = 8 * (8 - len) as u32;
    let below_mask = 1u64.checked_shl(below).map_or(u64::MAX, |b| b - 1);
    let mut v = (window & !below_mask) | (ZEROS & below_mask);
    // Remove a point: the bytes before it move up one place, a '0' comes in at the bottom.
    let dots = v ^ u64::from_le_bytes([b'.'; 8]);
    let zero_bytes = dots.wrapping_sub(0x0101_0101_0101_0101) & !dots & 0x8080_8080_8080_8080;
    let mut frac_digits = 0;
    if zero_bytes != 0 {
        // Byte index of the first point (exact: false positives only occur above it).
        let p = zero_bytes.trailing_zeros() / 8;
        if len == 1 {
            return None; // "." alone is not a number
        }
        let lower = (1u64 << (8 * p)) - 1;
        let upper = !((lower << 8) | 0xFF);
        v = ((v & lower) << 8) | (v & upper) | u64::from(b'0');
        frac_digits = 7 - p as usize;
    }
    // All eight bytes must now be ASCII digits (a second point, a sign or a letter fail).
    let high = 0xF0F0_F0F0_F0F0_F0F0;
    if v & high != ZEROS & high || v.wrapping_add(0x0606_0606_0606_0606) & high != ZEROS & high {
        return None;
    }
    // Eight digits to an integer: pairs, then quads, then the eight (first byte = most
    // significant digit, little-endian load).
    let d = v - ZEROS;
    let pairs = (d.wrapping_mul(10) + (d >> 8)) & 0x00FF_00FF_00FF_00FF;
    let quads = (pairs.wrapping_mul(100) + (pairs >> 16)) & 0x0000_FFFF_0000_FFFF;
    let mantissa = (quads.wrapping_mul(10_000) + (quads >> 32)) & 0xFFFF_FFFF;
    Some(if frac_digits == 0 {
        mantissa as f64
    } else {
        mantissa as f64 / POW10[frac_digits]
    })
}

/// Exact powers of ten up to 10^15 (every one is representable in an f64).
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Clinger's fast path for the common cell (`-12`, `314.90`): at most 15 digits and no
/// exponent, so mantissa and power of ten are exact f64s and one IEEE division gives the
/// correctly rounded value, bit-identical to `f64::from_str`. Anything else returns `None`
/// and goes through the full parser.
#[inline]
fn parse_plain_decimal(b: &[u8]) -> Option<f64> {
    let (negative, body) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let mut frac_digits = 0usize;
    let mut seen_point = false;
    for &c in body {
        let d = c.wrapping_sub(b'0');
        if d < 10 {
            // Wrapping: past 15 digits the value is discarded below anyway.
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
            digits += 1;
            frac_digits += usize::from(seen_point);
        } else if c == b'.' && !seen_point {
            seen_point = true;
        } else {
            return None;
        }
    }
    if digits == 0 || digits > 15 {
        return None;
    }
    // Integers (most numeric cells) need no division: `mantissa` < 10^15 is exact.
    let value = if frac_digits == 0 {
        mantissa as f64
    } else {
        mantissa as f64 / POW10[frac_digits]
    };
    Some(if negative { -value } else { value })
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
    if !write_short_fixed(out, x) {
        write_python_float_general(out, scratch, x);
    }
}

/// [`write_python_float`] for finite, non-zero `x`, from ryu's shortest digits.
fn write_python_float_general(out: &mut Vec<u8>, scratch: &mut String, x: f64) {
    // Shortest round-trip digits from ryu, e.g. "-1606.849", "1e16", "1.2345678901234568e17",
    // "0.0001"; re-laid out below as Python's repr would.
    let mut ryu_buf = ryu::Buffer::new();
    let text = ryu_buf.format_finite(x);
    let (text, negative) = match text.strip_prefix('-') {
        Some(t) => (t, true),
        None => (text, false),
    };
    let (mantissa, exp) = text.split_once(['e', 'E']).unwrap_or((text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if negative {
        out.push(b'-');
    }
    // All significant digits without leading or trailing zeros (at most 17 for an f64).
    let mut digits = [0u8; 40];
    let mut n = 0;
    let mut decpt = int_part.len() as i32 + exp;
    for b in int_part.bytes().chain(frac_part.bytes()).take(digits.len()) {
        if n == 0 && b == b'0' {
            decpt -= 1;
            continue;
        }
        digits[n] = b;
        n += 1;
    }
    while n > 1 && digits[n - 1] == b'0' {
        n -= 1;
    }
    let digits = &digits[..n];
    let exp = decpt - 1;
    // `decpt`: position of the decimal point relative to the digit string (Python's name).
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
        scratch.clear();
        let _ = write!(scratch, "{:02}", exp.unsigned_abs());
        out.extend_from_slice(scratch.as_bytes());
    }
}

/// Largest scaled value the short path takes: 2^51. Below it an f64's spacing (ulp)
/// times 10^K is under 1/2, so at most one number with K decimals lies within half an
/// ulp of `x`, and rounding `x * 10^K` finds it whenever it exists.
const SHORT_LIMIT: f64 = 2_251_799_813_685_248.0;

/// The common case of [`write_python_float`] without shortest-digit search: `x` equals
/// (as an f64) a decimal with at most six decimals, e.g. `1234.5` or `861474.23`, which
/// is what sums of typical CSV numbers give. Returns false (writing nothing) otherwise.
///
/// Why it is exact: let `d / 10^K` be the nearest K-decimal number to `|x|`. If parsing it
/// gives back `|x|` (one correctly rounded division of two exact f64s, as `float()`
/// would do), it round-trips; any shorter round-tripping decimal would also be a
/// K-decimal number within half an ulp, so it would be this one (see [`SHORT_LIMIT`]),
/// with its trailing zeros dropped. If it does not round-trip, no decimal with at most K
/// decimals does, and the general path runs. With `1e-4 <= |x| < 1e16`, Python's repr
/// uses positional notation, which is what this writes.
#[inline]
fn write_short_fixed(out: &mut Vec<u8>, x: f64) -> bool {
    let ax = x.abs();
    if ax < 1e-4 {
        return false;
    }
    let (scaled, k) = if ax * 1e6 < SHORT_LIMIT {
        (ax * 1e6, 6)
    } else if ax * 1e3 < SHORT_LIMIT {
        (ax * 1e3, 3)
    } else if ax < SHORT_LIMIT {
        (ax, 0)
    } else {
        return false;
    };
    // Nearest integer (ties away from zero, which cannot round-trip anyway); exact, as
    // `scaled + 0.5 < 2^51 + 1` is representable. Cheaper than a libm `round` call.
    let d = (scaled + 0.5) as u64;
    if d as f64 / POW10[k] != ax {
        return false;
    }
    // Constant divisors (multiply-shift), not a hardware division by a looked-up power.
    let (int_part, frac) = match k {
        6 => (d / 1_000_000, d % 1_000_000),
        3 => (d / 1_000, d % 1_000),
        _ => (d, 0),
    };
    // Laid out in a fixed buffer, with stores only (no copy of a variable length, which
    // would be a `memcpy` call per value): the integer digits end at `POINT`, the point
    // is at `POINT`, `k` decimals (zero-padded) follow it, trailing zeros are then cut
    // but one. At most a sign, 16 digits, a point and 6 decimals: 24 bytes.
    const POINT: usize = 24;
    let mut buf = [b'0'; 64];
    let mut start = POINT;
    let mut v = int_part;
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        start -= 2;
        buf[start..start + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        start -= 2;
        buf[start..start + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        start -= 1;
        buf[start] = b'0' + v as u8;
    }
    if x < 0.0 {
        start -= 1;
        buf[start] = b'-';
    }
    buf[POINT] = b'.';
    let mut end = POINT + 1 + k;
    let mut f = frac;
    let mut at = end;
    while at > POINT + 2 {
        let pair = (f % 100) as usize * 2;
        f /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if at == POINT + 2 {
        buf[POINT + 1] = b'0' + f as u8;
    }
    // `x.0` keeps its one zero (`k == 0` leaves `buf[POINT + 1]` the initial '0').
    end = end.max(POINT + 2);
    while end > POINT + 2 && buf[end - 1] == b'0' {
        end -= 1;
    }
    // A fixed-size copy (inlined), then the unused tail is cut.
    let len = out.len();
    out.extend_from_slice(&buf[start..][..32]);
    out.truncate(len + (end - start));
    true
}

/// "00", "01", ... "99": two decimal digits per lookup.
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// The general path of [`write_python_float`] alone (ryu's digits, re-laid out), for
/// tests that check the short path against it.
#[cfg(test)]
fn python_float_general(x: f64) -> String {
    let mut out = Vec::new();
    write_python_float_general(&mut out, &mut String::new(), x);
    String::from_utf8(out).unwrap_or_default()
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

    use crate::test_rng::rng;

    #[test]
    fn fast_path_is_bit_identical_to_std_parse() {
        let mut next = rng(7);
        let alphabet = b"0123456789.-+e";
        for _ in 0..300_000 {
            let len = 1 + (next() % 19) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
                .collect();
            let ours = parse_cell(&s).map(f64::to_bits);
            let std = s.parse::<f64>().ok().map(f64::to_bits);
            assert_eq!(ours, std, "{s:?}");
        }
    }

    /// Number of significant digits in a float's text (`1000.0` -> 1, `1.25e-7` -> 3).
    fn significant(text: &str) -> usize {
        let mantissa = text.split('e').next().unwrap_or("");
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        digits.trim_start_matches('0').trim_end_matches('0').len()
    }

    #[test]
    fn repr_round_trips_with_shortest_digits() {
        let mut next = rng(11);
        for i in 0..300_000 {
            let x = match i % 3 {
                0 => f64::from_bits(next()),
                1 => (next() % 10_000_000) as f64 / 1000.0,
                _ => (next() as i64 as f64) * 1e-9,
            };
            if !x.is_finite() {
                continue;
            }
            let text = python_float(x);
            assert_eq!(
                text.parse::<f64>().map(f64::to_bits),
                Ok(x.to_bits()),
                "{text}"
            );
            // As short as std's shortest `{:e}` (the digits may differ on exact ties, where
            // ryu rounds half-to-even like Python and std does not: see the table test).
            assert_eq!(
                significant(&text),
                significant(&format!("{x:e}")),
                "{x:e} -> {text}"
            );
        }
    }

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
            // An exact tie at the 17th digit: Python rounds half-to-even (std's `{:e}` does not).
            (-1987233703.1757812, "-1987233703.1757812"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float(x), want, "repr of {x:e}");
        }
    }

    #[test]
    fn short_path_writes_what_the_general_path_writes() {
        let mut next = rng(5);
        let mut fixed = 0usize;
        let mut check = |x: f64| {
            // Appended after what the row already holds; a refusal leaves it untouched.
            let mut out = b"a,".to_vec();
            if write_short_fixed(&mut out, x) {
                fixed += 1;
                assert_eq!(
                    String::from_utf8_lossy(&out[2..]),
                    python_float_general(x),
                    "{x:e}"
                );
            } else {
                assert_eq!(out, b"a,", "{x:e}");
            }
        };
        // Boundaries: around 1e-4, the three scale limits, powers of ten, halves.
        for edge in [
            1e-4,
            SHORT_LIMIT / 1e6,
            SHORT_LIMIT / 1e3,
            SHORT_LIMIT,
            1.0,
            0.5,
        ] {
            let mut y = edge;
            let mut z = edge;
            for _ in 0..2000 {
                check(y);
                check(-z);
                y = f64::from_bits(y.to_bits() + 1);
                z = f64::from_bits(z.to_bits() - 1);
            }
        }
        for p in -20..20 {
            check(10f64.powi(p));
            check(3.0 * 10f64.powi(p));
        }
        for i in 0..2_000_000u64 {
            let x = match i % 6 {
                0 => f64::from_bits(next()),
                // Sums of a few CSV-style numbers with up to 2 or 3 decimals.
                1 => (0..1 + next() % 5)
                    .map(|_| (next() % 1_000_000) as f64 / 100.0)
                    .sum(),
                2 => (0..1 + next() % 5)
                    .map(|_| (next() % 10_000_000) as f64 / 1000.0 - 5000.0)
                    .sum(),
                // A decimal with 0..=8 decimals, at any magnitude the short path covers.
                3 => {
                    let decimals = (next() % 9) as i32;
                    (next() % (1 << 53)) as f64
                        / 10f64.powi(decimals)
                        / 10f64.powi((next() % 10) as i32)
                }
                4 => (next() % 100_000) as f64 * 1e-7,
                _ => (next() >> 11) as f64 * 0.1,
            };
            if x.is_finite() && x != 0.0 {
                check(x);
            }
        }
        // The tests above must exercise the short path, not only its refusals.
        assert!(fixed > 300_000, "short path taken {fixed} times");
    }

    #[test]
    fn window_parse_matches_parse_cell() {
        let mut next = rng(9);
        let alphabet = b"0123456789..-+e x";
        for _ in 0..1_000_000 {
            let len = (next() % 10) as usize;
            let mut bytes = [0u8; 16];
            for b in bytes.iter_mut() {
                *b = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            // Sometimes arbitrary bytes before the cell (a delimiter, a high byte).
            if next().is_multiple_of(2) {
                bytes[15 - len.min(15)] = (next() % 256) as u8;
            }
            let cell = &bytes[16 - len..];
            let window = u64::from_le_bytes(bytes[8..].try_into().unwrap());
            let want = parse_cell(cell).map(f64::to_bits);
            let got = parse_cell_window(cell, (len <= 8).then_some(window)).map(f64::to_bits);
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(cell));
        }
        for cell in [
            "0", "1.", ".5", "99999999", "1234.567", "0.000001", "12345678",
        ] {
            let mut bytes = [b','; 16];
            bytes[16 - cell.len()..].copy_from_slice(cell.as_bytes());
            let window = u64::from_le_bytes(bytes[8..].try_into().unwrap());
            assert_eq!(
                parse_short_decimal(window, cell.len()),
                cell.parse::<f64>().ok(),
                "{cell}"
            );
        }
    }
}
