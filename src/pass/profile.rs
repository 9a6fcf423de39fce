//! The profile of one output column (`metadata.json` `profile.<column>`), computed in one
//! streaming pass with memory that does not grow with the row count.
//!
//! Feed every cell of the column to a [`ColumnProfiler`] (`null`, `number` or `text`),
//! then [`ColumnProfiler::finish`]. It sits on the per-cell hot path: `number` never
//! allocates, `text` allocates only when it stores a value it has not seen before.
//!
//! Numbers (float and integer columns): counts of NaN and infinite values, and min, max,
//! mean and sample standard deviation of the finite ones (Welford's update, so a large
//! mean does not swallow a small spread).
//!
//! Strings: lengths, distinct values and the most frequent values. Exact up to
//! [`DISTINCT_EXACT_LIMIT`] distinct values (or [`EXACT_BYTES_LIMIT`] bytes of them);
//! past that a HyperLogLog estimates the distinct count and Space-Saving keeps
//! approximate heavy hitters, and the profile says so (`exact`, `top_exact`).
//!
//! Memory, per column:
//! - numbers: a few dozen bytes;
//! - strings while exact: the value -> count map, at most 16384 buckets of 25 bytes
//!   (about 400 KiB) plus the stored values (at most [`EXACT_BYTES_LIMIT`] = 16 MiB, plus
//!   about 16 bytes of allocator overhead each);
//! - strings after the switch: the HyperLogLog (16 KiB) and [`SPACE_SAVING_CAPACITY`]
//!   tracked values (about 80 bytes each, about 80 KiB, plus the values' own bytes, so
//!   1000 times the longest value in the worst case). Both sets are held briefly at the
//!   switch, then the exact map is dropped.
//!
//! Deterministic: the same cells give the same profile and the same JSON byte for byte,
//! also across Rust releases. The sketches hash with [`super::key_table::hash`], written
//! out in this repository (std's `DefaultHasher` may change between releases, which would
//! move an estimated distinct count); the exact map's own hasher only orders the map, and
//! every list in the output is sorted, so no hash-map order leaks out.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher, Hasher};

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// Distinct string values counted exactly before switching to the estimate: enough for
/// categorical columns, small enough that the map stays around 400 KiB.
pub const DISTINCT_EXACT_LIMIT: usize = 10_000;

/// Bytes of distinct string values stored before switching to the estimate, whatever
/// their number, so a column of long free text cannot hold gigabytes.
pub const EXACT_BYTES_LIMIT: usize = 16 << 20;

/// Most frequent string values reported.
pub const TOP_VALUES: usize = 10;

/// Values tracked by Space-Saving after the switch. Any value more frequent than
/// 1/1000 of the column is guaranteed to be tracked, which is far more than the
/// [`TOP_VALUES`] reported.
pub const SPACE_SAVING_CAPACITY: usize = 1000;

pub use crate::config::spec::ColumnType;

/// The profile of one column, serialised into `metadata.json` under `profile.<column>`.
///
/// JSON: `type`, `count` (every cell, nulls included) and `nulls`, then the fields of
/// [`NumberStats`] or [`StringStats`]. Every field is always present (`null` when there
/// is nothing to report), so readers need not guess whether a key was forgotten.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnProfile {
    pub ty: ColumnType,
    /// Every cell, nulls included.
    pub count: u64,
    /// Null (empty) cells.
    pub nulls: u64,
    pub values: ValueStats,
}

/// What is known about the non-null cells, by kind of column.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueStats {
    Numbers(NumberStats),
    Strings(StringStats),
}

/// Float and integer columns.
///
/// NaN and +-infinity are counted apart and left out of min, max, mean and stddev: one
/// infinite value would otherwise turn the mean into infinity and the stddev into NaN,
/// hiding everything the finite values say. The statistics are `None` (JSON `null`)
/// when there are no finite values (stddev: fewer than two), and also if they overflow
/// f64 (for stddev: squared deviations beyond f64::MAX, a spread of about 1e154), so NaN
/// or infinity never reaches the JSON, which cannot represent them.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberStats {
    /// NaN values.
    pub nan: u64,
    /// +infinity and -infinity values.
    pub infinite: u64,
    /// Smallest finite value. Integer columns print whole values without `.0`.
    pub min: Option<f64>,
    /// Largest finite value. Integer columns print whole values without `.0`.
    pub max: Option<f64>,
    /// Mean of the finite values.
    pub mean: Option<f64>,
    /// Sample standard deviation (divided by n - 1) of the finite values.
    pub stddev: Option<f64>,
}

impl ColumnProfile {
    /// The mean of a number column's finite values (what `drift` compares); `None` for
    /// strings and for columns without finite values.
    pub fn mean(&self) -> Option<f64> {
        match &self.values {
            ValueStats::Numbers(n) => n.mean,
            ValueStats::Strings(_) => None,
        }
    }
}

/// String columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StringStats {
    pub distinct: DistinctCount,
    /// Up to [`TOP_VALUES`] most frequent values, by count descending then value
    /// ascending (byte order, which is code point order), so ties are deterministic.
    pub top: Vec<TopValue>,
    /// `false` after the switch to Space-Saving: the counts are then upper bounds (the
    /// true count plus at most the smallest tracked count), and a value tied with or
    /// just below the tenth may be missing or out of order.
    pub top_exact: bool,
    /// Shortest value, in characters (Unicode scalar values), not bytes: what a reader
    /// of the data would call the length.
    pub min_length: Option<u64>,
    /// Longest value, in characters.
    pub max_length: Option<u64>,
}

/// Number of distinct non-null values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistinctCount {
    pub count: u64,
    /// `false`: a HyperLogLog estimate (precision 14, standard error about 0.8%),
    /// clamped to what is known for sure (at least the distinct values counted before
    /// the switch, at most the non-null values).
    pub exact: bool,
}

/// One of the most frequent values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopValue {
    /// The value (invalid UTF-8, which the scan rejects before this, shown with U+FFFD).
    pub value: String,
    pub count: u64,
}

impl Serialize for ColumnProfile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = match &self.values {
            ValueStats::Numbers(_) => 9,
            ValueStats::Strings(_) => 8,
        };
        let mut s = serializer.serialize_struct("ColumnProfile", fields)?;
        s.serialize_field("type", &self.ty)?;
        s.serialize_field("count", &self.count)?;
        s.serialize_field("nulls", &self.nulls)?;
        match &self.values {
            ValueStats::Numbers(n) => {
                let integer = self.ty == ColumnType::Integer;
                s.serialize_field("nan", &n.nan)?;
                s.serialize_field("infinite", &n.infinite)?;
                s.serialize_field("min", &n.min.and_then(|v| JsonNumber::new(v, integer)))?;
                s.serialize_field("max", &n.max.and_then(|v| JsonNumber::new(v, integer)))?;
                s.serialize_field("mean", &n.mean.and_then(|v| JsonNumber::new(v, false)))?;
                s.serialize_field("stddev", &n.stddev.and_then(|v| JsonNumber::new(v, false)))?;
            }
            ValueStats::Strings(t) => {
                s.serialize_field("distinct", &t.distinct)?;
                s.serialize_field("top", &t.top)?;
                s.serialize_field("top_exact", &t.top_exact)?;
                s.serialize_field("min_length", &t.min_length)?;
                s.serialize_field("max_length", &t.max_length)?;
            }
        }
        s.end()
    }
}

/// A finite number for the JSON: whole values of integer columns as integers (`3`, not
/// `3.0`); never NaN or infinity (`new` gives `None` for them, written as `null`).
enum JsonNumber {
    Integer(i64),
    Float(f64),
}

impl JsonNumber {
    /// 2^63: whole f64 values in [-2^63, 2^63) convert to i64 exactly.
    const I64_END: f64 = 9_223_372_036_854_775_808.0;

    fn new(v: f64, integer: bool) -> Option<JsonNumber> {
        if !v.is_finite() {
            None
        } else if integer && v.fract() == 0.0 && (-Self::I64_END..Self::I64_END).contains(&v) {
            Some(JsonNumber::Integer(v as i64))
        } else {
            Some(JsonNumber::Float(v))
        }
    }
}

impl Serialize for JsonNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            JsonNumber::Integer(i) => serializer.serialize_i64(i),
            JsonNumber::Float(f) => serializer.serialize_f64(f),
        }
    }
}

/// Streams one column's cells into its [`ColumnProfile`].
pub struct ColumnProfiler {
    ty: ColumnType,
    count: u64,
    nulls: u64,
    acc: Accumulator,
}

enum Accumulator {
    Numbers(Welford),
    Strings(Strings),
}

impl ColumnProfiler {
    pub fn new(ty: ColumnType) -> Self {
        let acc = match ty {
            ColumnType::Float | ColumnType::Integer => Accumulator::Numbers(Welford::new()),
            // Booleans and timestamps are profiled as their text: distinct values, the
            // most frequent ones, lengths.
            ColumnType::String | ColumnType::Boolean | ColumnType::Timestamp => {
                Accumulator::Strings(Strings::new())
            }
        };
        ColumnProfiler {
            ty,
            count: 0,
            nulls: 0,
            acc,
        }
    }

    /// A null (empty) cell.
    #[inline]
    pub fn null(&mut self) {
        self.count += 1;
        self.nulls += 1;
    }

    /// A value of a float or integer column (integers passed as f64). On a string
    /// column (a caller bug) it only counts the cell.
    #[inline]
    pub fn number(&mut self, v: f64) {
        self.count += 1;
        if let Accumulator::Numbers(w) = &mut self.acc {
            w.add(v);
        }
    }

    /// A non-empty value of a string column, as UTF-8 bytes. On a numeric column (a
    /// caller bug) it only counts the cell.
    #[inline]
    pub fn text(&mut self, v: &[u8]) {
        self.count += 1;
        if let Accumulator::Strings(s) = &mut self.acc {
            s.add(v);
        }
    }

    pub fn finish(self) -> ColumnProfile {
        let values = match self.acc {
            Accumulator::Numbers(w) => ValueStats::Numbers(w.finish()),
            Accumulator::Strings(s) => ValueStats::Strings(s.finish()),
        };
        ColumnProfile {
            ty: self.ty,
            count: self.count,
            nulls: self.nulls,
            values,
        }
    }
}

/// Running min, max, mean and sum of squared deviations (Welford) of the finite values.
struct Welford {
    nan: u64,
    infinite: u64,
    n: u64,
    min: f64,
    max: f64,
    mean: f64,
    m2: f64,
}

impl Welford {
    fn new() -> Self {
        Welford {
            nan: 0,
            infinite: 0,
            n: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            mean: 0.0,
            m2: 0.0,
        }
    }

    #[inline]
    fn add(&mut self, v: f64) {
        if !v.is_finite() {
            if v.is_nan() {
                self.nan += 1;
            } else {
                self.infinite += 1;
            }
            return;
        }
        self.n += 1;
        if v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
        let n = self.n as f64;
        let delta = v - self.mean;
        if delta.is_finite() {
            self.mean += delta / n;
        } else {
            // Values of opposite sign near f64::MAX: the difference overflows, the
            // mean need not.
            self.mean += v / n - self.mean / n;
        }
        self.m2 += delta * (v - self.mean);
    }

    fn finish(self) -> NumberStats {
        let finite = |x: f64| Some(x).filter(|x| x.is_finite());
        let some = self.n > 0;
        NumberStats {
            nan: self.nan,
            infinite: self.infinite,
            min: finite(self.min).filter(|_| some),
            max: finite(self.max).filter(|_| some),
            mean: finite(self.mean).filter(|_| some),
            stddev: if self.n >= 2 {
                finite((self.m2 / (self.n - 1) as f64).sqrt())
            } else {
                None
            },
        }
    }
}

/// A fixed-key hasher: the same value gets the same hash in every run.
type FixedState = BuildHasherDefault<DefaultHasher>;

/// The 64-bit hash the HyperLogLog and Space-Saving share.
#[inline]
fn hash64(v: &[u8]) -> u64 {
    super::key_table::hash(v)
}

/// Length in characters of UTF-8 bytes: the bytes that are not continuation bytes.
#[inline]
fn char_len(v: &[u8]) -> u64 {
    v.iter().filter(|&&b| (b as i8) >= -0x40).count() as u64
}

struct Strings {
    values: u64,
    min_len: u64,
    max_len: u64,
    distinct: Distinct,
}

enum Distinct {
    /// Every distinct value with its count, and the bytes they hold.
    Exact {
        counts: HashMap<Box<[u8]>, u64, FixedState>,
        bytes: usize,
    },
    /// After the switch.
    Sketch {
        hll: HyperLogLog,
        top: SpaceSaving,
        /// Distinct values counted exactly before the switch: a floor for the estimate.
        at_least: u64,
    },
}

impl Strings {
    fn new() -> Self {
        Strings {
            values: 0,
            min_len: u64::MAX,
            max_len: 0,
            distinct: Distinct::Exact {
                counts: HashMap::default(),
                bytes: 0,
            },
        }
    }

    #[inline]
    fn add(&mut self, v: &[u8]) {
        self.values += 1;
        let len = char_len(v);
        self.min_len = self.min_len.min(len);
        self.max_len = self.max_len.max(len);
        match &mut self.distinct {
            Distinct::Exact { counts, bytes } => {
                if let Some(c) = counts.get_mut(v) {
                    *c += 1;
                    return;
                }
                counts.insert(Box::from(v), 1);
                *bytes += v.len();
                if counts.len() > DISTINCT_EXACT_LIMIT || *bytes > EXACT_BYTES_LIMIT {
                    self.switch_to_sketch();
                }
            }
            Distinct::Sketch { hll, top, .. } => {
                let h = hash64(v);
                hll.add(h);
                top.add(h, v);
            }
        }
    }

    /// Feeds every stored value to a new HyperLogLog, seeds Space-Saving with the most
    /// frequent ones and drops the exact map. Seeding with the top of the map keeps the
    /// Space-Saving promise: no untracked value was more frequent than the least
    /// frequent tracked one.
    #[cold]
    fn switch_to_sketch(&mut self) {
        let Distinct::Exact { counts, .. } = &mut self.distinct else {
            return;
        };
        let counts = std::mem::take(counts);
        let mut hll = HyperLogLog::new();
        for value in counts.keys() {
            hll.add(hash64(value));
        }
        let at_least = counts.len() as u64;
        let mut top = SpaceSaving::new(SPACE_SAVING_CAPACITY);
        for (value, count) in most_frequent(&counts, SPACE_SAVING_CAPACITY) {
            top.seed(hash64(value), value, count);
        }
        self.distinct = Distinct::Sketch { hll, top, at_least };
    }

    fn finish(self) -> StringStats {
        let some = self.values > 0;
        let (distinct, top, top_exact) = match &self.distinct {
            Distinct::Exact { counts, .. } => (
                DistinctCount {
                    count: counts.len() as u64,
                    exact: true,
                },
                top_values(most_frequent(counts, TOP_VALUES)),
                true,
            ),
            Distinct::Sketch { hll, top, at_least } => {
                let estimate = hll.estimate().round();
                // Float to int saturates; the clamp keeps it within what is known.
                let count = (estimate as u64).clamp(*at_least, self.values.max(*at_least));
                let tracked = top.tracked().collect();
                (
                    DistinctCount {
                        count,
                        exact: false,
                    },
                    top_values(sorted_top(tracked, TOP_VALUES)),
                    false,
                )
            }
        };
        StringStats {
            distinct,
            top,
            top_exact,
            min_length: Some(self.min_len).filter(|_| some),
            max_length: Some(self.max_len).filter(|_| some),
        }
    }
}

/// The `n` most frequent values of the map, by count descending then value ascending.
fn most_frequent(counts: &HashMap<Box<[u8]>, u64, FixedState>, n: usize) -> Vec<(&[u8], u64)> {
    sorted_top(counts.iter().map(|(v, &c)| (&**v, c)).collect(), n)
}

/// The first `n` of `all` by count descending then value ascending: a total order (the
/// values are distinct), so the map's iteration order cannot show through.
fn sorted_top(mut all: Vec<(&[u8], u64)>, n: usize) -> Vec<(&[u8], u64)> {
    let order = |a: &(&[u8], u64), b: &(&[u8], u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
    if n > 0 && all.len() > n {
        all.select_nth_unstable_by(n - 1, order);
    }
    all.truncate(n);
    all.sort_unstable_by(order);
    all
}

fn top_values(top: Vec<(&[u8], u64)>) -> Vec<TopValue> {
    top.into_iter()
        .map(|(v, count)| TopValue {
            value: String::from_utf8_lossy(v).into_owned(),
            count,
        })
        .collect()
}

/// HyperLogLog (Flajolet et al. 2007) with 2^14 one-byte registers (16 KiB): standard
/// error 1.04 / sqrt(16384), about 0.8%. The top 14 bits of the hash pick a register,
/// which keeps the largest rank (leading zeros + 1) of the other 50 bits.
///
/// The estimate is Ertl's improved estimator ("New cardinality estimation algorithms
/// for HyperLogLog sketches", 2017; Redis uses it too) rather than the paper's raw
/// estimate with linear counting below 2.5 * 16384: that one overestimates by 2-3%
/// just past its switch (around 41k-50k distinct values, measured here), this one
/// keeps to the standard error from empty to far beyond 2^32. A 64-bit hash needs no
/// large-range correction.
struct HyperLogLog {
    registers: Vec<u8>,
}

impl HyperLogLog {
    const P: u32 = 14;
    const M: usize = 1 << Self::P;
    /// Bits left for the rank; ranks go from 0 (empty register) to Q + 1.
    const Q: usize = 64 - Self::P as usize;

    fn new() -> Self {
        HyperLogLog {
            registers: vec![0; Self::M],
        }
    }

    #[inline]
    fn add(&mut self, hash: u64) {
        let index = (hash >> (64 - Self::P)) as usize;
        // The sentinel bit caps the rank at Q + 1 when the other Q bits are all zero.
        let rest = (hash << Self::P) | (1 << (Self::P - 1));
        let rank = (rest.leading_zeros() + 1) as u8;
        if let Some(r) = self.registers.get_mut(index) {
            if rank > *r {
                *r = rank;
            }
        }
    }

    fn estimate(&self) -> f64 {
        let m = Self::M as f64;
        let mut histogram = [0u32; Self::Q + 2];
        for &r in &self.registers {
            if let Some(c) = histogram.get_mut(usize::from(r)) {
                *c += 1;
            }
        }
        let share = |rank: usize| f64::from(histogram.get(rank).copied().unwrap_or(0)) / m;
        let mut z = m * hll_tau(1.0 - share(Self::Q + 1));
        for rank in (1..=Self::Q).rev() {
            z = 0.5 * (z + m * share(rank));
        }
        z += m * hll_sigma(share(0));
        // All registers empty: sigma is infinite and the estimate 0.
        m * m / (2.0 * std::f64::consts::LN_2 * z)
    }
}

/// Ertl's sigma(x) = x + sum over k >= 1 of x^(2^k) * 2^(k-1), for 0 <= x <= 1: the
/// correction for empty registers (it takes over linear counting's job).
fn hll_sigma(mut x: f64) -> f64 {
    if x >= 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if z == before {
            return z;
        }
    }
}

/// Ertl's tau(x) = (1 - x - sum over k >= 1 of (1 - x^(2^-k))^2 * 2^-k) / 3, for
/// 0 <= x <= 1: the correction for registers at the maximum rank.
fn hll_tau(mut x: f64) -> f64 {
    if x <= 0.0 || x >= 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if z == before {
            return z / 3.0;
        }
    }
}

/// Space-Saving (Metwally et al. 2005): the `capacity` values with the highest counts
/// seen so far. A new value replaces the least counted one and inherits its count + 1,
/// so every count is an upper bound of the true one, and every value whose true count
/// exceeds total / capacity is tracked. The least counted entry is found with an indexed
/// min-heap (O(log capacity) per value), entries are found by the shared 64-bit hash,
/// and an evicted entry's buffer is reused, so a value allocates only when its buffer
/// must grow.
struct SpaceSaving {
    capacity: usize,
    entries: Vec<Entry>,
    /// A min-heap on count; the counts live here, next to each other, for the sifts.
    heap: Vec<Slot>,
    /// Hash -> entry index. Two different values with the same 64-bit hash (odds about
    /// 2^-64 per pair) cannot both be tracked; the later one is not counted here.
    index: HashMap<u64, u32, BuildHasherDefault<PreHashed>>,
}

struct Entry {
    value: Vec<u8>,
    hash: u64,
    /// This entry's position in `heap`.
    heap_pos: u32,
}

#[derive(Clone, Copy)]
struct Slot {
    count: u64,
    entry: u32,
}

impl SpaceSaving {
    fn new(capacity: usize) -> Self {
        SpaceSaving {
            capacity,
            entries: Vec::with_capacity(capacity),
            heap: Vec::with_capacity(capacity),
            index: HashMap::with_capacity_and_hasher(capacity, Default::default()),
        }
    }

    /// Tracks `value` with `count` (used while not full, at the switch).
    fn seed(&mut self, hash: u64, value: &[u8], count: u64) {
        if self.entries.len() >= self.capacity || self.index.contains_key(&hash) {
            return;
        }
        let entry = self.entries.len() as u32;
        self.entries.push(Entry {
            value: value.to_vec(),
            hash,
            heap_pos: entry,
        });
        self.heap.push(Slot { count, entry });
        self.index.insert(hash, entry);
        self.sift_up(entry as usize);
    }

    #[inline]
    fn add(&mut self, hash: u64, value: &[u8]) {
        if let Some(&i) = self.index.get(&hash) {
            let Some(e) = self.entries.get(i as usize) else {
                return;
            };
            let pos = e.heap_pos as usize;
            if e.value == value {
                if let Some(slot) = self.heap.get_mut(pos) {
                    slot.count += 1;
                }
                self.sift_down(pos);
            }
            return;
        }
        if self.entries.len() < self.capacity {
            self.seed(hash, value, 1);
            return;
        }
        // Replace the least counted value; it leaves its count behind, + 1.
        let Some(least) = self.heap.first_mut() else {
            return;
        };
        least.count += 1;
        let Some(e) = self.entries.get_mut(least.entry as usize) else {
            return;
        };
        self.index.remove(&e.hash);
        self.index.insert(hash, least.entry);
        e.value.clear();
        e.value.extend_from_slice(value);
        e.hash = hash;
        self.sift_down(0);
    }

    /// Every tracked value with its count (an upper bound), in no particular order.
    fn tracked(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.heap.iter().filter_map(|slot| {
            let e = self.entries.get(slot.entry as usize)?;
            Some((e.value.as_slice(), slot.count))
        })
    }

    /// Puts `slot` at heap position `pos` and tells its entry.
    fn place(&mut self, pos: usize, slot: Slot) {
        if let Some(h) = self.heap.get_mut(pos) {
            *h = slot;
        }
        if let Some(e) = self.entries.get_mut(slot.entry as usize) {
            e.heap_pos = pos as u32;
        }
    }

    fn sift_up(&mut self, mut pos: usize) {
        let Some(&moving) = self.heap.get(pos) else {
            return;
        };
        while pos > 0 {
            let parent = (pos - 1) / 2;
            let Some(&p) = self.heap.get(parent) else {
                break;
            };
            if p.count <= moving.count {
                break;
            }
            self.place(pos, p);
            pos = parent;
        }
        self.place(pos, moving);
    }

    fn sift_down(&mut self, mut pos: usize) {
        let Some(&moving) = self.heap.get(pos) else {
            return;
        };
        loop {
            let left = 2 * pos + 1;
            let Some(&l) = self.heap.get(left) else {
                break;
            };
            let (child, c) = match self.heap.get(left + 1) {
                Some(&r) if r.count < l.count => (left + 1, r),
                _ => (left, l),
            };
            if c.count >= moving.count {
                break;
            }
            self.place(pos, c);
            pos = child;
        }
        self.place(pos, moving);
    }
}

/// A hasher for keys that already are good 64-bit hashes: passes them through.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are used; this keeps any other key working, if slowly hashed.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::test_rng::rng;

    fn numbers(ty: ColumnType, cells: &[Option<f64>]) -> ColumnProfile {
        let mut p = ColumnProfiler::new(ty);
        for c in cells {
            match *c {
                Some(v) => p.number(v),
                None => p.null(),
            }
        }
        p.finish()
    }

    fn number_stats(profile: &ColumnProfile) -> &NumberStats {
        match &profile.values {
            ValueStats::Numbers(n) => n,
            ValueStats::Strings(_) => panic!("not a number profile: {profile:?}"),
        }
    }

    fn string_stats(profile: &ColumnProfile) -> &StringStats {
        match &profile.values {
            ValueStats::Strings(s) => s,
            ValueStats::Numbers(_) => panic!("not a string profile: {profile:?}"),
        }
    }

    fn json(profile: &ColumnProfile) -> String {
        serde_json::to_string(profile).unwrap_or_else(|e| panic!("serialising: {e}"))
    }

    fn close(ours: f64, truth: f64, scale: f64, what: &str) {
        let err = (ours - truth).abs() / scale.max(f64::MIN_POSITIVE);
        assert!(
            err < 1e-9,
            "{what}: {ours} vs {truth} (relative error {err:e})"
        );
    }

    #[test]
    fn numbers_match_a_two_pass_brute_force() {
        let mut next = rng(3);
        let uniform = |r: u64| (r >> 11) as f64 / (1u64 << 53) as f64;
        // Offsets a naive sum-of-squares would get wrong (1e9 + noise of 1), each with
        // a spread well above the offset's own rounding step (else no method can win).
        for (case, (offset, spread)) in [
            (0.0, 1e3),
            (1e9, 1.0),
            (-5e12, 1e4),
            (0.0, 1e-150),
            (0.0, 1e150),
        ]
        .into_iter()
        .enumerate()
        {
            for n in [1usize, 2, 3, 1000, 100_000] {
                let cells: Vec<Option<f64>> = (0..n)
                    .map(|_| {
                        let r = next();
                        (!r.is_multiple_of(17))
                            .then(|| offset + spread * (2.0 * uniform(next()) - 1.0))
                    })
                    .collect();
                let profile = numbers(ColumnType::Float, &cells);
                let finite: Vec<f64> = cells.iter().flatten().copied().collect();
                assert_eq!(profile.count, n as u64);
                assert_eq!(profile.nulls, (n - finite.len()) as u64);
                let stats = number_stats(&profile);
                assert_eq!((stats.nan, stats.infinite), (0, 0));
                if finite.is_empty() {
                    assert_eq!(stats.min, None);
                    continue;
                }
                let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
                let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mean = finite.iter().sum::<f64>() / finite.len() as f64;
                assert_eq!(
                    (stats.min, stats.max),
                    (Some(min), Some(max)),
                    "case {case}"
                );
                let scale = offset.abs() + spread;
                close(stats.mean.unwrap_or(f64::NAN), mean, scale, "mean");
                if finite.len() < 2 {
                    assert_eq!(stats.stddev, None);
                } else {
                    let ss: f64 = finite.iter().map(|x| (x - mean) * (x - mean)).sum();
                    let sd = (ss / (finite.len() - 1) as f64).sqrt();
                    let ours = stats.stddev.unwrap_or(f64::NAN);
                    let err = (ours - sd).abs() / sd;
                    // Relative to the spread itself: the offset must not eat the digits.
                    assert!(err < 1e-6, "case {case} n {n}: stddev {ours} vs {sd}");
                }
            }
        }
    }

    #[test]
    fn nan_and_infinities_are_counted_apart_from_the_statistics() {
        let cells = [
            Some(1.0),
            Some(f64::NAN),
            None,
            Some(f64::INFINITY),
            Some(2.0),
            Some(f64::NEG_INFINITY),
            Some(3.0),
            Some(-f64::NAN),
            Some(f64::INFINITY),
        ];
        let profile = numbers(ColumnType::Float, &cells);
        assert_eq!((profile.count, profile.nulls), (9, 1));
        assert_eq!(
            number_stats(&profile),
            &NumberStats {
                nan: 2,
                infinite: 3,
                min: Some(1.0),
                max: Some(3.0),
                mean: Some(2.0),
                stddev: Some(1.0),
            }
        );
        assert_eq!(
            json(&profile),
            r#"{"type":"float","count":9,"nulls":1,"nan":2,"infinite":3,"min":1.0,"max":3.0,"mean":2.0,"stddev":1.0}"#
        );
    }

    #[test]
    fn only_non_finite_values_give_null_statistics() {
        let profile = numbers(
            ColumnType::Float,
            &[Some(f64::NAN), Some(f64::INFINITY), Some(f64::NEG_INFINITY)],
        );
        let stats = number_stats(&profile);
        assert_eq!((stats.nan, stats.infinite), (1, 2));
        assert_eq!(
            (stats.min, stats.max, stats.mean, stats.stddev),
            (None, None, None, None)
        );
        assert!(json(&profile).ends_with(r#""min":null,"max":null,"mean":null,"stddev":null}"#));
    }

    #[test]
    fn overflowing_statistics_become_null_not_infinite() {
        let profile = numbers(ColumnType::Float, &[Some(f64::MAX), Some(-f64::MAX)]);
        let stats = number_stats(&profile);
        assert_eq!((stats.min, stats.max), (Some(-f64::MAX), Some(f64::MAX)));
        // The mean is representable even though max - min is not; the stddev is not.
        assert_eq!(stats.mean, Some(0.0));
        assert_eq!(stats.stddev, None);
        let text = json(&profile);
        assert!(
            text.ends_with(r#""min":-1.7976931348623157e+308,"max":1.7976931348623157e+308,"mean":0.0,"stddev":null}"#),
            "{text}"
        );
    }

    #[test]
    fn empty_and_all_null_columns() {
        for ty in [ColumnType::Float, ColumnType::Integer, ColumnType::String] {
            for nulls in [0u64, 4] {
                let mut p = ColumnProfiler::new(ty);
                for _ in 0..nulls {
                    p.null();
                }
                let profile = p.finish();
                assert_eq!(
                    (profile.ty, profile.count, profile.nulls),
                    (ty, nulls, nulls)
                );
                let tail = match ty {
                    ColumnType::String => {
                        r#""distinct":{"count":0,"exact":true},"top":[],"top_exact":true,"min_length":null,"max_length":null}"#
                    }
                    _ => r#""nan":0,"infinite":0,"min":null,"max":null,"mean":null,"stddev":null}"#,
                };
                let expected = format!(
                    r#"{{"type":"{}","count":{nulls},"nulls":{nulls},{tail}"#,
                    ty.as_str()
                );
                assert_eq!(json(&profile), expected);
            }
        }
    }

    #[test]
    fn integer_columns_print_whole_bounds_as_integers() {
        let cells = [Some(3.0), Some(-7.0), Some(1e15), None];
        let int = json(&numbers(ColumnType::Integer, &cells));
        assert!(int.contains(r#""min":-7,"max":1000000000000000,"#), "{int}");
        let float = json(&numbers(ColumnType::Float, &cells));
        assert!(
            float.contains(r#""min":-7.0,"max":1000000000000000.0,"#),
            "{float}"
        );
        // Beyond i64 the bound stays a float rather than saturating.
        let huge = json(&numbers(ColumnType::Integer, &[Some(1e19), Some(-1e19)]));
        assert!(huge.contains(r#""min":-1e+19,"max":1e+19,"#), "{huge}");
    }

    /// `n` cells over a skewed alphabet of `vocabulary` values (some multi-byte), plus
    /// nulls; the profile and a brute-force BTreeMap of counts.
    fn strings(seed: u64, n: usize, vocabulary: u64) -> (ColumnProfile, BTreeMap<String, u64>) {
        let mut next = rng(seed);
        let mut p = ColumnProfiler::new(ColumnType::String);
        let mut truth = BTreeMap::new();
        for _ in 0..n {
            let r = next();
            if r.is_multiple_of(13) {
                p.null();
                continue;
            }
            // Squaring a uniform index skews the counts towards small indices.
            let u = (r >> 32) % vocabulary;
            let i = u * u / vocabulary;
            let value = match i % 4 {
                0 => format!("v{i}"),
                1 => format!("café-{i}"),
                2 => format!("日本{i}語"),
                _ => format!("{}{i}", "x".repeat((i % 23) as usize)),
            };
            p.text(value.as_bytes());
            *truth.entry(value).or_insert(0u64) += 1;
        }
        (p.finish(), truth)
    }

    fn brute_force_top(truth: &BTreeMap<String, u64>) -> Vec<TopValue> {
        let mut all: Vec<(&String, u64)> = truth.iter().map(|(v, &c)| (v, c)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        all.into_iter()
            .take(TOP_VALUES)
            .map(|(v, count)| TopValue {
                value: v.clone(),
                count,
            })
            .collect()
    }

    #[test]
    fn strings_below_the_limit_match_a_brute_force_count() {
        for (seed, n, vocabulary) in [(1, 10, 5), (2, 5000, 40), (3, 60_000, 9000), (4, 3, 1)] {
            let (profile, truth) = strings(seed, n, vocabulary);
            let stats = string_stats(&profile);
            let values: u64 = truth.values().sum();
            assert_eq!(profile.count, n as u64);
            assert_eq!(profile.nulls, n as u64 - values);
            let lengths = truth.keys().map(|v| v.chars().count() as u64);
            assert_eq!(
                stats,
                &StringStats {
                    distinct: DistinctCount {
                        count: truth.len() as u64,
                        exact: true
                    },
                    top: brute_force_top(&truth),
                    top_exact: true,
                    min_length: lengths.clone().min(),
                    max_length: lengths.max(),
                },
                "seed {seed}"
            );
        }
    }

    #[test]
    fn top_ties_are_ordered_by_value() {
        let mut p = ColumnProfiler::new(ColumnType::String);
        for v in ["b", "é", "a", "c", "a", "b", "z", "é", "y"] {
            p.text(v.as_bytes());
        }
        let top: Vec<(String, u64)> = string_stats(&p.finish())
            .top
            .iter()
            .map(|t| (t.value.clone(), t.count))
            .collect();
        let expected = [("a", 2), ("b", 2), ("é", 2), ("c", 1), ("y", 1), ("z", 1)];
        assert_eq!(top, expected.map(|(v, c)| (v.to_string(), c)));
    }

    fn unique(p: &mut ColumnProfiler, from: u64, to: u64) {
        for i in from..to {
            p.text(format!("id-{i:07}").as_bytes());
        }
    }

    #[test]
    fn exact_up_to_the_limit_then_estimated() {
        let limit = DISTINCT_EXACT_LIMIT as u64;
        let mut p = ColumnProfiler::new(ColumnType::String);
        unique(&mut p, 0, limit);
        unique(&mut p, 0, 100); // repeats are not new values
        let at = string_stats(&p.finish()).distinct.clone();
        assert_eq!(
            at,
            DistinctCount {
                count: limit,
                exact: true
            }
        );

        let mut p = ColumnProfiler::new(ColumnType::String);
        unique(&mut p, 0, limit + 1);
        let over = p.finish();
        let stats = string_stats(&over);
        assert!(!stats.distinct.exact && !stats.top_exact);
        // Clamped to the count known at the switch, and to the values seen.
        assert_eq!(stats.distinct.count, limit + 1);
        assert_eq!(stats.top.len(), TOP_VALUES);
    }

    #[test]
    fn hyperloglog_estimate_is_within_3_percent_above_the_limit() {
        // Either side of the switch from linear counting to the raw estimate (40960).
        for n in [15_000u64, 39_000, 45_000, 200_000] {
            let mut p = ColumnProfiler::new(ColumnType::String);
            unique(&mut p, 0, n);
            unique(&mut p, 0, n / 2); // repeats must not count again
            let profile = p.finish();
            let stats = string_stats(&profile);
            assert!(!stats.distinct.exact);
            let error = (stats.distinct.count as f64 - n as f64).abs() / n as f64;
            assert!(
                error < 0.03,
                "{n} distinct estimated as {}",
                stats.distinct.count
            );
            assert_eq!((stats.min_length, stats.max_length), (Some(10), Some(10)));
        }
    }

    #[test]
    fn hyperloglog_is_unbiased_past_the_old_small_range_switch() {
        // The original estimator leaves linear counting at 2.5 * 16384 = 40960 and then
        // overestimates by 2-3%. Averaged over 4 streams (standard error about 0.4%)
        // the bias must stay well below that.
        let targets = [38_000u64, 42_000, 46_000, 50_000];
        let mut bias = [0.0; 4];
        for seed in 0..4 {
            let mut h = HyperLogLog::new();
            let mut n = 0;
            for (t, &target) in targets.iter().enumerate() {
                while n < target {
                    h.add(hash64(format!("{seed}/{n}").as_bytes()));
                    n += 1;
                }
                bias[t] += (h.estimate() / n as f64 - 1.0) / 4.0;
            }
        }
        for (n, b) in targets.iter().zip(bias) {
            assert!(b.abs() < 0.012, "{n} distinct: mean relative error {b:+.4}");
        }
    }

    #[test]
    fn hyperloglog_counts_small_sets_almost_exactly() {
        let mut h = HyperLogLog::new();
        assert_eq!(h.estimate(), 0.0);
        let mut n = 0u64;
        for target in [1u64, 10, 100, 1000] {
            while n < target {
                h.add(hash64(format!("small-{n}").as_bytes()));
                n += 1;
            }
            h.add(hash64(b"small-0")); // a repeat changes nothing
            let error = (h.estimate() - n as f64).abs();
            assert!(
                error < 0.5 + 0.01 * n as f64,
                "{n} estimated as {}",
                h.estimate()
            );
        }
    }

    #[test]
    fn heavy_hitters_are_found_after_the_switch() {
        // Heavy values among 200_000 unique ones; "late" only starts after the switch.
        let heavy = [
            ("alpha", 2000u64, 0u64),
            ("beta", 1200, 0),
            ("late", 900, 100_000),
        ];
        let mut p = ColumnProfiler::new(ColumnType::String);
        let mut truth: BTreeMap<&str, u64> = BTreeMap::new();
        let mut total = 0u64;
        let mut next = rng(9);
        for i in 0..200_000u64 {
            p.text(format!("u{i}").as_bytes());
            total += 1;
            for &(value, count, start) in &heavy {
                // Spread `count` occurrences evenly (in expectation) after `start`.
                if i >= start && next() % (200_000 - start) < count {
                    p.text(value.as_bytes());
                    *truth.entry(value).or_insert(0) += 1;
                    total += 1;
                }
            }
        }
        let profile = p.finish();
        let stats = string_stats(&profile);
        assert!(!stats.top_exact);
        let top: Vec<&str> = stats.top.iter().take(3).map(|t| t.value.as_str()).collect();
        assert_eq!(top, ["alpha", "beta", "late"]);
        for t in stats.top.iter().take(3) {
            let true_count = truth.get(t.value.as_str()).copied().unwrap_or(0);
            // An upper bound, and off by at most total / capacity.
            assert!(
                t.count >= true_count,
                "{}: {} < {true_count}",
                t.value,
                t.count
            );
            let bound = true_count + total / SPACE_SAVING_CAPACITY as u64;
            assert!(t.count <= bound, "{}: {} > {bound}", t.value, t.count);
        }
    }

    #[test]
    fn long_values_switch_on_the_byte_budget() {
        let mut p = ColumnProfiler::new(ColumnType::String);
        let n = EXACT_BYTES_LIMIT / (1 << 20) + 1;
        for i in 0..n {
            let value = vec![b'a' + (i % 26) as u8; (1 << 20) + i];
            p.text(&value);
        }
        let profile = p.finish();
        let stats = string_stats(&profile);
        // Few distinct values, but too many bytes to keep them all.
        assert_eq!(
            stats.distinct,
            DistinctCount {
                count: n as u64,
                exact: false
            }
        );
        assert!(!stats.top_exact);
        assert_eq!(stats.max_length, Some(((1 << 20) + n - 1) as u64));
    }

    #[test]
    fn output_is_deterministic() {
        let run = || {
            let mut p = ColumnProfiler::new(ColumnType::String);
            let mut next = rng(5);
            for i in 0..60_000u64 {
                p.text(format!("k{}", next() % 50_000).as_bytes());
                if i.is_multiple_of(7) {
                    p.text(b"tie-b");
                    p.text(b"tie-a");
                }
            }
            let mut f = ColumnProfiler::new(ColumnType::Float);
            let mut next = rng(6);
            for _ in 0..10_000 {
                f.number((next() % 1000) as f64 / 7.0);
            }
            (json(&p.finish()), json(&f.finish()))
        };
        let first = run();
        assert!(first.0.contains(r#""exact":false"#));
        assert_eq!(first, run());
    }

    #[test]
    fn json_shape_examples() {
        let float = numbers(
            ColumnType::Float,
            &[Some(0.5), None, Some(2.25), Some(f64::NAN), Some(-1.0)],
        );
        assert_eq!(
            json(&float),
            r#"{"type":"float","count":5,"nulls":1,"nan":1,"infinite":0,"min":-1.0,"max":2.25,"mean":0.5833333333333334,"stddev":1.626601774661928}"#
        );
        let mut p = ColumnProfiler::new(ColumnType::String);
        for v in ["red", "", "blue", "red", "grün"] {
            match v {
                "" => p.null(),
                v => p.text(v.as_bytes()),
            }
        }
        assert_eq!(
            json(&p.finish()),
            r#"{"type":"string","count":5,"nulls":1,"distinct":{"count":3,"exact":true},"top":[{"value":"red","count":2},{"value":"blue","count":1},{"value":"grün","count":1}],"top_exact":true,"min_length":3,"max_length":4}"#
        );
    }

    /// `cargo test --release --lib profile::tests::bench -- --ignored --nocapture`
    #[test]
    #[ignore = "micro-benchmark: run in release mode by hand"]
    fn bench_ns_per_value() {
        use std::hint::black_box;
        use std::time::Instant;

        let mut next = rng(1);
        let floats: Vec<f64> = (0..1 << 20).map(|_| (next() >> 11) as f64 / 1e6).collect();
        let rounds = 20;
        let mut p = ColumnProfiler::new(ColumnType::Float);
        let start = Instant::now();
        for _ in 0..rounds {
            for &v in &floats {
                p.number(black_box(v));
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / (rounds * floats.len()) as f64;
        black_box(p.finish());
        println!("number(): {ns:.2} ns/value");

        // Values laid out in one buffer, so the loop itself does not allocate.
        let layout = |count: usize, distinct: u64, next: &mut dyn FnMut() -> u64| {
            let mut bytes = Vec::new();
            let mut ends = Vec::with_capacity(count);
            for _ in 0..count {
                bytes.extend_from_slice(format!("value-{:08}", next() % distinct).as_bytes());
                ends.push(bytes.len());
            }
            (bytes, ends)
        };
        for (what, count, distinct) in [
            ("text() 1000 distinct (exact)", 4_000_000, 1000),
            ("text() 9000 distinct (exact)", 4_000_000, 9000),
            ("text() ~all distinct (sketch)", 4_000_000, 100_000_000),
        ] {
            let (bytes, ends) = layout(count, distinct, &mut next);
            let mut p = ColumnProfiler::new(ColumnType::String);
            let start = Instant::now();
            let mut from = 0;
            for &end in &ends {
                p.text(black_box(&bytes[from..end]));
                from = end;
            }
            let ns = start.elapsed().as_nanos() as f64 / count as f64;
            black_box(p.finish());
            println!("{what}: {ns:.2} ns/value (14-byte values)");
        }
    }
}
