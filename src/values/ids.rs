//! Run ids: unique per process run, sortable by start time, no extra crate needed.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// 32 random bits as 8 hex digits (std's `RandomState` is seeded from the OS per process).
pub fn short_random() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

/// `YYYYMMDDTHHMMSSZ-xxxxxxxx`: start time in UTC plus randomness.
pub fn new_run_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        short_random()
    )
}
