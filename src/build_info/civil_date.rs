//! A UTC calendar day from Unix seconds, without a date crate: `build.rs` stamps the build
//! date with it (and honours `SOURCE_DATE_EPOCH`), and the library's unit tests check it
//! (`build_info`). Howard Hinnant's `civil_from_days`, proleptic Gregorian calendar.

/// `YYYY-MM-DD`, the UTC day that `secs` seconds after 1970-01-01T00:00:00Z fall on.
pub fn utc_day(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], from March
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::utc_day;

    #[test]
    fn days_fall_where_the_calendar_puts_them() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(86_399), "1970-01-01");
        assert_eq!(utc_day(86_400), "1970-01-02");
        assert_eq!(utc_day(-1), "1969-12-31");
        assert_eq!(utc_day(951_782_400), "2000-02-29"); // a leap day of a century
        assert_eq!(utc_day(1_763_510_400), "2025-11-19");
        assert_eq!(utc_day(4_107_542_399), "2100-02-28"); // 2100 is no leap year
        assert_eq!(utc_day(4_107_542_400), "2100-03-01");
    }

    #[test]
    fn every_day_of_four_centuries_matches_chrono() {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for days in -80_000..80_000_i64 {
            let expected = epoch + chrono::Duration::days(days);
            assert_eq!(
                utc_day(days * 86_400 + 43_200),
                expected.to_string(),
                "{days}"
            );
        }
    }
}
