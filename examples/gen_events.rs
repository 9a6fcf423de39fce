//! Deterministic generator of raw event CSV for the benchmark and for large-input tests.
//!
//! ```text
//! cargo run --release --example gen_events -- --bytes 100000000 --seed 1 --out bench/data/raw_100MB.csv
//! ```
//!
//! Same header as the fixtures. Same arguments give a byte-identical file on any machine
//! (splitmix64 PRNG, integer-only formatting). Rows are written until the file reaches at
//! least `--bytes` (it stops at the first row boundary at or past it; header included).
//! About 2% of cells are empty; a few `device` / `event_type` cells are quoted and contain
//! commas (and sometimes doubled quotes). All other cells are plain ASCII; numbers are always
//! parseable. `--bytes` accepts suffixes K, M, G (powers of 1000) and KiB, MiB, GiB.
//! The file is written to `PATH.tmp` and renamed, so a present `--out` is always complete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use std::time::Instant;

const HEADER: &[u8] = b"event_id,user_id,event_time,event_type,is_premium,event_value,amount,session_length_sec,country,device\n";

const EVENT_TYPES: &[&[u8]] = &[
    b"view",
    b"view",
    b"view",
    b"click",
    b"click",
    b"search",
    b"add_to_cart",
    b"purchase",
    b"login",
    b"logout",
];
const COUNTRIES: &[&[u8]] = &[
    b"KR", b"KR", b"KR", b"US", b"JP", b"DE", b"GB", b"FR", b"IN", b"BR", b"SG", b"CA",
];
const DEVICES: &[&[u8]] = &[b"ios", b"android", b"android", b"web", b"web", b"desktop"];
/// Quoted cells (already CSV-escaped) used for about 0.1% of rows.
const QUOTED_DEVICES: &[&[u8]] = &[
    b"\"tablet, android\"",
    b"\"smart-tv, tizen\"",
    b"\"car, \"\"android auto\"\"\"",
];
const QUOTED_EVENT_TYPES: &[&[u8]] = &[b"\"promo_click, banner\"", b"\"share, \"\"kakao\"\"\""];

/// splitmix64: tiny, fast, and fully specified, so the output never depends on a crate version.
struct Rng(u64);

impl Rng {
    #[inline(always)]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough integer in `0..n` (n small; multiply-shift, no modulo bias worth caring about).
    #[inline(always)]
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() >> 32) * n) >> 32
    }

    /// True with probability `per_10k / 10000`.
    #[inline(always)]
    fn chance(&mut self, per_10k: u64) -> bool {
        self.below(10_000) < per_10k
    }
}

/// Appends the decimal form of `v`.
#[inline(always)]
fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends `v` as two digits.
#[inline(always)]
fn push_2(buf: &mut Vec<u8>, v: u64) {
    buf.push(b'0' + (v / 10) as u8);
    buf.push(b'0' + (v % 10) as u8);
}

/// Appends `cents / 100` with exactly two decimals, e.g. `1234` -> `12.34`.
#[inline(always)]
fn push_fixed2(buf: &mut Vec<u8>, cents: u64) {
    push_u64(buf, cents / 100);
    buf.push(b'.');
    push_2(buf, cents % 100);
}

/// Probability (per 10 000) that a non-id cell is empty: 9 of 10 columns can be empty, so
/// 222/10000 * 9/10 = 2.0% of all cells.
const EMPTY_PER_10K: u64 = 222;

fn write_row(buf: &mut Vec<u8>, rng: &mut Rng, event_id: u64) {
    // event_id: never empty.
    push_u64(buf, event_id);
    buf.push(b',');

    // user_id
    if !rng.chance(EMPTY_PER_10K) {
        push_u64(buf, 100_000 + rng.below(900_000));
    }
    buf.push(b',');

    // event_time: a second of 2025-11-18 (UTC).
    if !rng.chance(EMPTY_PER_10K) {
        let s = rng.below(86_400);
        buf.extend_from_slice(b"2025-11-18T");
        push_2(buf, s / 3600);
        buf.push(b':');
        push_2(buf, s / 60 % 60);
        buf.push(b':');
        push_2(buf, s % 60);
        buf.push(b'Z');
    }
    buf.push(b',');

    // event_type
    if !rng.chance(EMPTY_PER_10K) {
        if rng.chance(5) {
            buf.extend_from_slice(
                QUOTED_EVENT_TYPES[rng.below(QUOTED_EVENT_TYPES.len() as u64) as usize],
            );
        } else {
            buf.extend_from_slice(EVENT_TYPES[rng.below(EVENT_TYPES.len() as u64) as usize]);
        }
    }
    buf.push(b',');

    // is_premium: about 1 in 5.
    if !rng.chance(EMPTY_PER_10K) {
        buf.push(if rng.chance(2_000) { b'1' } else { b'0' });
    }
    buf.push(b',');

    // event_value: 0.00 .. 999.99, sometimes negative.
    if !rng.chance(EMPTY_PER_10K) {
        if rng.chance(100) {
            buf.push(b'-');
        }
        push_fixed2(buf, rng.below(100_000));
    }
    buf.push(b',');

    // amount: mostly 0.00 (no purchase), else 0.01 .. 4999.99.
    if !rng.chance(EMPTY_PER_10K) {
        if rng.chance(7_000) {
            buf.extend_from_slice(b"0.00");
        } else {
            push_fixed2(buf, 1 + rng.below(499_999));
        }
    }
    buf.push(b',');

    // session_length_sec: 0 .. 7199.
    if !rng.chance(EMPTY_PER_10K) {
        push_u64(buf, rng.below(7_200));
    }
    buf.push(b',');

    // country
    if !rng.chance(EMPTY_PER_10K) {
        buf.extend_from_slice(COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize]);
    }
    buf.push(b',');

    // device
    if !rng.chance(EMPTY_PER_10K) {
        if rng.chance(10) {
            buf.extend_from_slice(QUOTED_DEVICES[rng.below(QUOTED_DEVICES.len() as u64) as usize]);
        } else {
            buf.extend_from_slice(DEVICES[rng.below(DEVICES.len() as u64) as usize]);
        }
    }
    buf.push(b'\n');
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Deterministic raw user-event CSV for the benchmark: same arguments, same bytes.
#[derive(Parser)]
struct Args {
    /// Approximate size: stops at the first row boundary past it (100000000, 100M, 1GiB)
    #[arg(long, value_parser = parse_bytes)]
    bytes: u64,
    /// Seed of the row generator
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// File to write (through a temporary name, renamed when complete)
    #[arg(long)]
    out: PathBuf,
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    parse_size(s).ok_or_else(|| format!("{s:?} is not a size like 100000000, 100M or 1GiB"))
}

fn main() -> ExitCode {
    let Args {
        bytes: target,
        seed,
        out,
    } = Args::parse();

    match generate(target, seed, &out) {
        Ok((rows, written, secs)) => {
            eprintln!(
                "gen_events: wrote {} ({written} bytes, {rows} rows) in {secs:.2}s ({:.0} MB/s)",
                out.display(),
                written as f64 / 1e6 / secs.max(1e-9)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_events: cannot write {}: {e}", out.display());
            ExitCode::from(1)
        }
    }
}

fn generate(target: u64, seed: u64, out: &std::path::Path) -> std::io::Result<(u64, u64, f64)> {
    let start = Instant::now();
    if let Some(parent) = out.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    let mut tmp_name = out.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);

    let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
    // Mix the seed once so that seeds 0, 1, 2... give unrelated streams.
    let mut rng = Rng(seed ^ 0x6A09_E667_F3BC_C908);
    rng.next();

    w.write_all(HEADER)?;
    let mut written = HEADER.len() as u64;
    let mut rows = 0u64;
    // Rows are batched into a 64 KiB buffer before they reach the BufWriter.
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    while written < target {
        buf.clear();
        while buf.len() < (1 << 16) - 256 && written + (buf.len() as u64) < target {
            rows += 1;
            write_row(&mut buf, &mut rng, rows);
        }
        w.write_all(&buf)?;
        written += buf.len() as u64;
    }
    w.into_inner().map_err(|e| e.into_error())?;
    std::fs::rename(&tmp, out)?;
    Ok((rows, written, start.elapsed().as_secs_f64()))
}
