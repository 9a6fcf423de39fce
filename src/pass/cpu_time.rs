//! CPU time of the calling thread, so each side of the pass can say where its time went
//! (the `[DP]` lines' `scan_cpu_ms` and `write_cpu_ms`).

use std::time::Duration;

/// User + system CPU time the calling thread has used, from `/proc/thread-self/stat`
/// (Linux; `None` elsewhere or if it cannot be read). Resolution: one clock tick (10 ms).
pub fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: skip past it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // Linux reports these in USER_HZ ticks, which is 100 on every supported platform.
    Some(Duration::from_millis((utime + stime) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_thread_has_cpu_time() {
        let Some(before) = thread_cpu() else {
            return; // not Linux
        };
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = thread_cpu().unwrap();
        assert!(after > before, "{before:?} -> {after:?}");
    }
}
