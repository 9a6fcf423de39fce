//! Byte sizes as flags and pipeline files give them (`--memory-budget`,
//! `--s3-read-part-size`): one grammar, each caller checking its own range; and as
//! messages and tables show them.

/// A size: a whole number of bytes, or with a suffix `K`/`KiB`, `M`/`MiB`, `G`/`GiB`
/// (powers of 1024, any case, spaces around ignored), e.g. `512MiB`, `4G`, `8388608`.
/// `KB`, `MB` and `GB` are refused: read as 1000s or 1024s by different tools, they would
/// silently be off by 5 to 7%.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    let not_a_size = || format!("{text:?} is not a size like 512MiB, 4GiB or 8388608");
    let unit: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" | "mb" | "gb" => {
            return Err(format!(
                "{text:?}: say KiB, MiB or GiB (powers of 1024); KB, MB and GB are ambiguous"
            ))
        }
        _ => return Err(not_a_size()),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(not_a_size)
}

/// `1.5 KiB`, `20.3 MiB`: sizes for people (JSON and CSV keep bytes).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_count_in_1024s() {
        assert_eq!(parse_bytes("8MiB"), Ok(8 << 20));
        assert_eq!(parse_bytes(" 512kib "), Ok(512 << 10));
        assert_eq!(parse_bytes("4G"), Ok(4 << 30));
        assert_eq!(parse_bytes("2000000000"), Ok(2_000_000_000));
        for bad in [
            "",
            "MiB",
            "8 MB",
            "-1",
            "1.5MiB",
            "lots",
            "99999999999999999999",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 + 1024 * 512), "5.5 MiB");
    }
}
