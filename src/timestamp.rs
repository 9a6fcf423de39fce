//! TEMPORARY stub: replaced by the group branch's module at merge.
use chrono::TimeZone;

pub fn parse_in(text: &[u8], tz: chrono_tz::Tz) -> Option<chrono::DateTime<chrono_tz::Tz>> {
    let s = std::str::from_utf8(text).ok()?.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&tz));
    }
    let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    tz.from_local_datetime(&naive).earliest()
}
