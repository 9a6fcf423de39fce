//! Entity-grain aggregation: one output row per `group_by` key (and time bucket), fed
//! on the CSV scanner thread one record at a time, written sorted by key so that a
//! re-run over the same input is byte-identical.
//!
//! Semantics (the [`AggFunction`] variants):
//! - `count`: rows in the group;
//! - `sum`, `mean`, `min`, `max`: over the column's cells that parse as numbers
//!   ([`crate::values::number::parse_cell`]); null and non-numeric cells are left out. Null (SQL)
//!   when the group has no numeric cell. `sum` adds in input order with IEEE rules like
//!   Python's `sum` (a NaN makes it NaN, `inf + -inf` is NaN); `mean` is that sum over
//!   the numeric cells' count. `min` / `max` skip NaN (the first of equal values wins);
//!   they are NaN only when every numeric cell was NaN;
//! - `count_distinct`: distinct non-null cell texts, exact (byte-wise, untrimmed);
//! - `null_count`: null cells (`is_null` says so, or the row is too short, or the column
//!   is not in the header);
//! - `first` / `last`: the column's text in the row with the earliest / latest timestamp
//!   in `by` ([`timestamp::parse_in`] in the pipeline zone). Rows whose `by` cell is null
//!   or not a timestamp are ignored; on ties `first` keeps the earliest row in input
//!   order and `last` the latest. Null when no row had a timestamp, or when the chosen
//!   row's cell is null (the row is chosen by time alone).
//!
//! Keys: a null `group_by` cell is the empty string, so nulls group together (with
//! empty cells). With a time bucket, the bucket start ([`timestamp::bucket_start`]) is
//! the last key cell; rows whose bucket cell is null or not a timestamp go into the
//! empty bucket `""` (which sorts first). A column the header does not name reads as
//! null in every row; a repeated header name binds to its last occurrence (as Python's
//! `csv.DictReader` does).
//!
//! Cost per record: each referenced cell is looked at once (a numeric column shared by
//! `sum`, `mean`, `max` is parsed once; a `by` column shared by several aggregates and
//! the bucket, once), one hash lookup of the composite key, and no allocation unless the
//! key is new, a `first` / `last` text longer than 23 bytes outgrows its buffer, or
//! `count_distinct` sees a new value (or a new (group, value) pair past its column's
//! first 64 values). The key is the encoded `group_by` cells plus the bucket's number (4
//! bytes, not its 25-byte name), so a user id and a day fit in the row (no second place
//! to compare). Records are folded in by batches of 16 ([`GroupBy::flush`]): the hash
//! slots are prefetched as the records are read, then the rows they point to, then each
//! record is folded in, in input order. With millions of groups nearly every record's
//! slot and row miss the caches; in a batch the misses overlap instead of queueing.
//!
//! Memory per group: 8 to 16 bytes of hash table slot, 16 bytes of the sort order built
//! at the end, and one row of 16 bytes (the encoded key, each part plus 2 bytes, plus 4
//! for the bucket, when it fits in 15; else where it is, and the key elsewhere) + 8 per
//! state word (`count`; per numeric column a count plus one word each for sum, min, max;
//! `null_count`; two per `count_distinct` (the count and a bitmap of the column's first
//! 64 values); two per `first` / `last`) + 24 per `first` / `last` text (inline up to 23
//! bytes, else a heap buffer of its own). Rows grow by doubling (up to 2x the bytes in
//! use). `count_distinct` also numbers its column's distinct values (about 20 bytes +
//! the value each, once per value, not per group) and keeps the (group, value) pairs of
//! values numbered 64 and up: 21 to 43 bytes each.
//!
//! Memory budget (`--memory-budget`, `DP_MEMORY_BUDGET`, `[features] memory_budget`,
//! default 4 GiB): [`GroupBy::table_bytes`] counts every byte above, as allocated; before
//! a new key is added, the bytes it would take (including a doubling of the rows or of
//! the hash slots, old and new slots side by side while rehashing) are checked against
//! the budget, and past it the run stops with exit 3 (data this pipeline cannot take
//! with this budget) naming the budget, where it was set, how to raise it and the keys
//! seen. Spilling sorted runs to disk and merging them was considered and not done: a
//! group's state is not mergeable without changing results (`sum` adds in input order,
//! so merging partial sums changes the last bits; `count_distinct` would need its value
//! sets spilled too; `first` / `last` ties keep input order across runs), so a spill
//! would have to write raw rows and re-aggregate, a second pass over the input's size on
//! disk; at about 190 bytes per key (`daily_user_features`) the default budget holds
//! 11 to 22 million keys (the rows grow by doubling), more than a daily drop has, and a
//! stop names the fix.
//!
//! Measured (release build, shared 2-core AMD EPYC at load average 15-17, so CPU time
//! and peak RSS from `/usr/bin/time -v`, not wall time; `featurepipe run` of
//! `fixtures/pipelines/daily_user_features.toml`):
//! - 1 GB from `examples/gen_events --seed 1` (14.2M rows, 2.06M user-day keys): 11.7
//!   CPU-s (scanner thread 9.6-9.8 s, feature thread 0.9-1.0 s), 424-434 MB peak RSS;
//!   before this layout 41.2 CPU-s and 734 MB. `feature.csv` byte-identical (sha256
//!   `a45ea92b...`). In the same hour DuckDB 2.0.1 took 35.4 CPU-s and 2.28 GB for the
//!   same aggregation, polars 2.1.0 30.0 CPU-s and 2.91 GB.
//! - Where the time goes (`perf record`, 1 GB): folding in (`flush`) and reading the
//!   cells (`observe`) ~37%, nearly all of it waiting on the prefetched slots and rows
//!   (4 KiB pages: most random accesses into 300 MB of rows also miss the TLB); timestamp
//!   parsing and zone offsets ~14%; writing, profiling and hashing 2M output rows ~8%;
//!   CSV scanning ~5%; growing the hash index (rehashing) ~5%.
//! - Bytes per key at peak RSS, one row per key (`user_id` unique): 1M keys 221 bytes
//!   (216 MB over a 13 MB run), 10M keys 193 bytes (1.90 GB). The same 10M-key input
//!   with `--memory-budget 1GiB` stops with exit 3 at 4.19M keys (768 MiB held, the
//!   next doubling of the rows needs 1408 MiB) at 750 MB peak RSS.
//!
//! The hash is deterministic (no per-process seed): the output is sorted, so the hash
//! never shows, but inputs crafted to collide could slow the table down.

use std::collections::HashMap;

use chrono::{DateTime, Offset};
use chrono_tz::Tz;

use super::csv_scan::Record;
use super::key_table::{hash, prefetch, KeyIndex, KeyTable, PairSet};
use crate::config::spec::{AggFunction, BucketWidth, EntitySpec};
use crate::values::number::parse_cell_window;
use crate::values::timestamp;

/// One aggregate value of an output row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggValue<'a> {
    /// No value (SQL null): written as an empty cell.
    Null,
    Float(f64),
    Int(i64),
    /// A cell's text, as it was in the input.
    Text(&'a [u8]),
}

/// Decides whether a cell is null (the pipeline's null tokens).
type IsNull = Box<dyn Fn(&[u8]) -> bool + Send>;

/// The aggregation state of one entity-grain feature set; see the module docs.
///
/// Layout: each group is one fixed-size row of bytes in `rows` (its key's place in
/// `key_bytes`, then its state words, then its `first` / `last` texts), so updating a
/// group touches one place in memory besides its key and its hash table slot: with a
/// million groups that do not fit in the CPU caches, every separate array is one more
/// cache miss per record.
pub struct GroupBy {
    is_null: IsNull,
    tz: Tz,
    /// Header index of each `group_by` column (`None`: not in the header).
    key_cols: Vec<Option<usize>>,
    bucket: Option<Bucketing>,
    /// Distinct timestamp columns (`by` columns and the bucket column).
    times: Vec<Option<usize>>,
    /// This record's parsed timestamp per entry of `times`.
    time_vals: Vec<Option<DateTime<Tz>>>,
    numeric: Vec<NumericCol>,
    /// `null_count` columns and their state words.
    null_counts: Vec<(Option<usize>, usize)>,
    distinct: Vec<DistinctCol>,
    picks: Vec<Pick>,
    /// How to read each aggregate's value, in spec order.
    outputs: Vec<Output>,
    count_word: Option<usize>,
    /// Byte offset of the texts in a row.
    text_base: usize,
    groups: Groups,
    /// `first` / `last` texts longer than [`INLINE`] bytes.
    texts: Texts,
    /// Records read but not yet folded into their groups.
    batch: Batch,
    /// The most bytes the tables may take ([`GroupBy::table_bytes`]).
    budget: u64,
    /// Set when a new key would take the tables past `budget`: no record is observed
    /// after it.
    over_budget: Option<OverBudget>,
}

/// What the tables held when a new key would have taken them past the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    /// Keys (output rows) so far, the refused one not included.
    pub keys: u64,
    /// Bytes the tables held.
    pub bytes: u64,
    /// Bytes they would have needed.
    pub needed: u64,
}

/// The state words of one numeric column (shared by its sum, mean, min and max).
struct NumericCol {
    col: Option<usize>,
    /// Numeric cells seen.
    n: usize,
    sum: Option<usize>,
    min: Option<usize>,
    max: Option<usize>,
}

/// A `count_distinct` column: state words `word` (the count) and `bits` (which of the
/// column's first 64 values the group has seen).
struct DistinctCol {
    col: Option<usize>,
    word: usize,
    bits: usize,
    /// The column's distinct values, numbered in order of appearance.
    values: KeyTable,
    /// The (group, value number) pairs seen, for value numbers 64 and up.
    pairs: PairSet,
}

/// A `first` or `last`: state words `word` (seconds) and `word + 1` (nanoseconds, or
/// [`NO_TIME`]), text number `text`.
struct Pick {
    col: Option<usize>,
    time: usize,
    last: bool,
    word: usize,
    text: usize,
}

/// The nanoseconds word of a `first` / `last` that has seen no timestamp yet.
const NO_TIME: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
enum Output {
    Count(usize),
    Sum {
        n: usize,
        sum: usize,
    },
    Mean {
        n: usize,
        sum: usize,
    },
    /// `min` or `max`: the value word, Null when `n` is 0.
    Extreme {
        n: usize,
        value: usize,
    },
    /// `null_count`, `count_distinct`.
    Int(usize),
    Pick {
        word: usize,
        text: usize,
    },
}

/// Numbers the bucket of a timestamp: buckets are numbered in order of appearance, 0 is
/// the empty bucket (no timestamp). The key holds the number, 4 bytes instead of the
/// 25-byte name, and the groups are sorted by the names' order at the end. The number is
/// cached per (truncated wall-clock time, offset), which determines the name (two such
/// pairs may name one bucket: a day with a DST change, both sides of it).
struct Bucketing {
    time: usize,
    every: BucketWidth,
    /// Bucket names by number.
    names: Vec<Box<[u8]>>,
    numbers: HashMap<Box<[u8]>, u32>,
    index: HashMap<(i64, i32), u32>,
    /// The last few (truncated time, offset) pairs looked up and their numbers, tried
    /// before `index` (whose SipHash costs more than the rest of the lookup): a day's
    /// input has a handful of buckets.
    recent: [((i64, i32), u32); RECENT],
    /// The entry of `recent` replaced next.
    next: usize,
}

impl Bucketing {
    fn new(time: usize, every: BucketWidth) -> Self {
        let empty: Box<[u8]> = Box::new([]);
        Bucketing {
            time,
            every,
            names: vec![empty.clone()],
            numbers: HashMap::from([(empty, 0)]),
            index: HashMap::new(),
            recent: [((i64::MIN, i32::MIN), 0); RECENT],
            next: 0,
        }
    }

    #[inline]
    fn number(&mut self, t: &DateTime<Tz>) -> u32 {
        let width = match self.every {
            BucketWidth::Hour => 3600,
            BucketWidth::Day => 86_400,
        };
        let local = t.naive_local().and_utc().timestamp();
        let key = (
            local - local.rem_euclid(width),
            t.offset().fix().local_minus_utc(),
        );
        if let Some(&(_, n)) = self.recent.iter().find(|(k, _)| *k == key) {
            return n;
        }
        let n = match self.index.get(&key) {
            Some(&n) => n,
            None => {
                let name: Box<[u8]> = timestamp::bucket_start(t, self.every)
                    .into_bytes()
                    .into_boxed_slice();
                let n = match self.numbers.get(&name) {
                    Some(&n) => n,
                    None => {
                        let n = self.names.len() as u32;
                        self.names.push(name.clone());
                        self.numbers.insert(name, n);
                        n
                    }
                };
                self.index.insert(key, n);
                n
            }
        };
        self.recent[self.next] = (key, n);
        self.next = (self.next + 1) % RECENT;
        n
    }

    /// Each bucket number's rank in the byte order of the names.
    fn ranks(&self) -> Vec<u32> {
        let mut order: Vec<usize> = (0..self.names.len()).collect();
        order.sort_unstable_by(|&a, &b| self.names[a].cmp(&self.names[b]));
        let mut ranks = vec![0; order.len()];
        for (rank, &n) in order.iter().enumerate() {
            ranks[n] = rank as u32;
        }
        ranks
    }
}

/// Entries of [`Bucketing`]'s `recent`.
const RECENT: usize = 4;

/// Bytes of a bucket number at the end of a key.
const BUCKET: usize = 4;

/// Bytes at the start of a row: the group's encoded key when it is at most
/// [`KEY_INLINE`] bytes (byte 0 its length, the key from byte 1), so that finding a group
/// by a short key touches no other memory; else byte 0 is [`KEY_OUT`], bytes 1..5 the
/// key's length and 8..16 where it starts in `key_bytes`. State words follow, then texts.
const HEAD: usize = 16;
const KEY_INLINE: usize = HEAD - 1;
const KEY_OUT: u8 = 0xFF;

/// Bytes of one text in a row: a tag byte, then up to [`INLINE`] bytes of text or a
/// heap entry number. Tag 0: null; `1 + len`: inline; [`HEAP`]: on the heap.
const TEXT: usize = 24;
const INLINE: usize = TEXT - 1;
const HEAP: u8 = 0xFF;

#[inline]
fn read_u64(row: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&row[at..at + 8]);
    u64::from_le_bytes(b)
}

#[inline]
fn get(row: &[u8], word: usize) -> u64 {
    read_u64(row, HEAD + 8 * word)
}

#[inline]
fn set(row: &mut [u8], word: usize, value: u64) {
    let at = HEAD + 8 * word;
    row[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// The encoded key of a row.
#[inline]
fn row_key<'k>(row: &'k [u8], key_bytes: &'k [u8]) -> &'k [u8] {
    match row[0] {
        KEY_OUT => {
            let start = read_u64(row, 8) as usize;
            let mut len = [0; 4];
            len.copy_from_slice(&row[1..5]);
            &key_bytes[start..start + u32::from_le_bytes(len) as usize]
        }
        len => &row[1..1 + usize::from(len)],
    }
}

impl GroupBy {
    /// Binds the spec to the header: a repeated header name binds to its last
    /// occurrence; a column absent from the header reads as null in every row. `is_null`
    /// decides null cells (the pipeline's null tokens); a cell missing from a short row
    /// is null too. Timestamps are read in `tz`.
    pub fn bind(
        header: &Record<'_>,
        spec: &EntitySpec,
        tz: Tz,
        is_null: impl Fn(&[u8]) -> bool + Send + 'static,
    ) -> Self {
        let mut by_name: HashMap<&[u8], usize> = HashMap::new();
        for i in 0..header.len() {
            by_name.insert(header.field_bytes(i), i);
        }
        let col = |name: &str| by_name.get(name.as_bytes()).copied();

        let mut words: Vec<u64> = Vec::new();
        let mut word = |value: u64| {
            words.push(value);
            words.len() - 1
        };
        let mut times: Vec<(String, Option<usize>)> = Vec::new();
        let mut time_index = |name: &str| match times.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                times.push((name.to_string(), col(name)));
                times.len() - 1
            }
        };
        let bucket = spec
            .time_bucket
            .as_ref()
            .map(|b| Bucketing::new(time_index(&b.column), b.every));

        let mut count_word = None;
        let mut numeric: Vec<(String, NumericCol)> = Vec::new();
        let mut null_counts: Vec<(String, Option<usize>, usize)> = Vec::new();
        let mut distinct: Vec<(String, DistinctCol)> = Vec::new();
        let mut picks: Vec<(String, String, Pick)> = Vec::new();
        let mut outputs = Vec::with_capacity(spec.aggregates.len());
        for agg in &spec.aggregates {
            let output = match &agg.function {
                AggFunction::Count => Output::Count(*count_word.get_or_insert_with(|| word(0))),
                AggFunction::Sum(c)
                | AggFunction::Mean(c)
                | AggFunction::Min(c)
                | AggFunction::Max(c) => {
                    let at = match numeric.iter().position(|(n, _)| n == c) {
                        Some(at) => at,
                        None => {
                            let n = word(0);
                            numeric.push((
                                c.clone(),
                                NumericCol {
                                    col: col(c),
                                    n,
                                    sum: None,
                                    min: None,
                                    max: None,
                                },
                            ));
                            numeric.len() - 1
                        }
                    };
                    let state = &mut numeric[at].1;
                    let n = state.n;
                    match &agg.function {
                        AggFunction::Sum(_) => Output::Sum {
                            n,
                            sum: *state.sum.get_or_insert_with(|| word(0f64.to_bits())),
                        },
                        AggFunction::Mean(_) => Output::Mean {
                            n,
                            sum: *state.sum.get_or_insert_with(|| word(0f64.to_bits())),
                        },
                        AggFunction::Min(_) => Output::Extreme {
                            n,
                            value: *state.min.get_or_insert_with(|| word(f64::NAN.to_bits())),
                        },
                        _ => Output::Extreme {
                            n,
                            value: *state.max.get_or_insert_with(|| word(f64::NAN.to_bits())),
                        },
                    }
                }
                AggFunction::NullCount(c) => match null_counts.iter().find(|(n, _, _)| n == c) {
                    Some(&(_, _, w)) => Output::Int(w),
                    None => {
                        let w = word(0);
                        null_counts.push((c.clone(), col(c), w));
                        Output::Int(w)
                    }
                },
                AggFunction::CountDistinct(c) => match distinct.iter().find(|(n, _)| n == c) {
                    Some((_, d)) => Output::Int(d.word),
                    None => {
                        let w = word(0);
                        distinct.push((
                            c.clone(),
                            DistinctCol {
                                col: col(c),
                                word: w,
                                bits: word(0),
                                values: KeyTable::new(),
                                pairs: PairSet::new(),
                            },
                        ));
                        Output::Int(w)
                    }
                },
                AggFunction::First { column, by } | AggFunction::Last { column, by } => {
                    let last = matches!(agg.function, AggFunction::Last { .. });
                    let found = picks
                        .iter()
                        .find(|(c, b, p)| c == column && b == by && p.last == last);
                    match found {
                        Some((_, _, p)) => Output::Pick {
                            word: p.word,
                            text: p.text,
                        },
                        None => {
                            let w = word(0);
                            word(NO_TIME);
                            let text = picks.len();
                            picks.push((
                                column.clone(),
                                by.clone(),
                                Pick {
                                    col: col(column),
                                    time: time_index(by),
                                    last,
                                    word: w,
                                    text,
                                },
                            ));
                            Output::Pick { word: w, text }
                        }
                    }
                }
            };
            outputs.push(output);
        }

        let text_base = HEAD + 8 * words.len();
        let mut init = vec![0u8; text_base + TEXT * picks.len()];
        for (i, &w) in words.iter().enumerate() {
            set(&mut init, i, w);
        }
        GroupBy {
            is_null: Box::new(is_null),
            tz,
            key_cols: spec.group_by.iter().map(|c| col(c)).collect(),
            bucket,
            time_vals: vec![None; times.len()],
            times: times.into_iter().map(|(_, c)| c).collect(),
            numeric: numeric.into_iter().map(|(_, n)| n).collect(),
            null_counts: null_counts.into_iter().map(|(_, c, w)| (c, w)).collect(),
            distinct: distinct.into_iter().map(|(_, d)| d).collect(),
            picks: picks.into_iter().map(|(_, _, p)| p).collect(),
            outputs,
            count_word,
            text_base,
            groups: Groups {
                index: KeyIndex::new(),
                init,
                rows: Vec::new(),
                key_bytes: Vec::new(),
            },
            texts: Texts::default(),
            batch: Batch::default(),
            budget: spec.memory_budget.bytes,
            over_budget: None,
        }
    }

    /// Adds one data record to its group (creating the group on its first record): reads
    /// the cells it needs into the batch, which is folded in when full
    /// ([`GroupBy::flush`]). Once a new key would take the tables past the budget, does
    /// nothing ([`GroupBy::over_budget`] says so).
    pub fn observe(&mut self, record: &Record<'_>) {
        if self.over_budget.is_some() {
            return;
        }
        let is_null = &self.is_null;
        let present = |col: Option<usize>| {
            let i = col?;
            if i >= record.len() {
                return None;
            }
            let cell = record.field_bytes(i);
            (!is_null(cell)).then_some(cell)
        };

        for (val, &col) in self.time_vals.iter_mut().zip(&self.times) {
            *val = present(col).and_then(|cell| timestamp::parse_in(cell, self.tz));
        }

        let b = &mut self.batch;
        let start = b.keys.len();
        for &col in &self.key_cols {
            push_part(&mut b.keys, present(col).unwrap_or_default());
        }
        if let Some(bucket) = &mut self.bucket {
            let number = match &self.time_vals[bucket.time] {
                Some(t) => bucket.number(t),
                None => 0,
            };
            b.keys.extend_from_slice(&number.to_le_bytes());
        }
        b.key_ends.push(b.keys.len());
        let h = hash(&b.keys[start..]);
        b.hashes.push(h);
        // Fetched while the other cells are read.
        self.groups.index.prefetch(h);

        b.times.extend(
            self.time_vals
                .iter()
                .map(|t| t.map(|t| (t.timestamp(), t.timestamp_subsec_nanos()))),
        );
        for num in &self.numeric {
            let value = num.col.filter(|&i| i < record.len()).and_then(|i| {
                let (cell, window) = record.field_and_window(i);
                if is_null(cell) {
                    return None;
                }
                parse_cell_window(cell, window)
            });
            b.numbers.push(value);
        }
        for &(col, _) in &self.null_counts {
            b.nulls.push(present(col).is_none());
        }
        for d in &mut self.distinct {
            b.values.push(present(d.col).map(|cell| {
                let (value, new) = d.values.intern(cell);
                b.grew |= new;
                value
            }));
        }
        for p in &self.picks {
            b.picks.push(present(p.col).map(|cell| {
                let at = b.texts.len();
                b.texts.extend_from_slice(cell);
                (at, b.texts.len())
            }));
        }
        b.len += 1;
        if b.len == BATCH {
            self.flush();
        }
    }

    /// Folds the batch's records into their groups: the rows their hash slots point to
    /// are prefetched together first (the slots were as the records were read), then
    /// each record is folded in, in input order.
    pub fn flush(&mut self) {
        let GroupBy {
            numeric,
            null_counts,
            distinct,
            picks,
            count_word,
            text_base,
            groups,
            texts,
            batch: b,
            budget,
            over_budget,
            times,
            ..
        } = self;
        for &h in &b.hashes {
            if let Some(g) = groups.index.likely(h) {
                groups.prefetch_row(g);
            }
        }
        let mut grew = b.grew;
        let mut start = 0;
        for i in 0..b.len {
            if over_budget.is_some() {
                break;
            }
            let key = &b.keys[start..b.key_ends[i]];
            start = b.key_ends[i];
            let group = match groups.find_hashed(key, b.hashes[i]) {
                Ok(group) => group,
                Err(slot) => {
                    let held = table_bytes(groups, texts, distinct);
                    let needed = held + groups.growth_bytes(key) as u64;
                    if needed > *budget {
                        *over_budget = Some(OverBudget {
                            keys: groups.index.len() as u64,
                            bytes: held,
                            needed,
                        });
                        break;
                    }
                    groups.insert(key, (slot, b.hashes[i]))
                }
            };
            let row = groups.row_mut(group);

            if let Some(w) = *count_word {
                set(row, w, get(row, w) + 1);
            }
            let numbers = &b.numbers[i * numeric.len()..(i + 1) * numeric.len()];
            for (num, &v) in numeric.iter().zip(numbers) {
                let Some(v) = v else { continue };
                set(row, num.n, get(row, num.n) + 1);
                if let Some(w) = num.sum {
                    set(row, w, (f64::from_bits(get(row, w)) + v).to_bits());
                }
                // NaN is skipped; a NaN current value means "none yet".
                if let Some(w) = num.min {
                    let cur = f64::from_bits(get(row, w));
                    if !v.is_nan() && (cur.is_nan() || v < cur) {
                        set(row, w, v.to_bits());
                    }
                }
                if let Some(w) = num.max {
                    let cur = f64::from_bits(get(row, w));
                    if !v.is_nan() && (cur.is_nan() || v > cur) {
                        set(row, w, v.to_bits());
                    }
                }
            }
            let nulls = &b.nulls[i * null_counts.len()..(i + 1) * null_counts.len()];
            for (&(_, w), &null) in null_counts.iter().zip(nulls) {
                if null {
                    set(row, w, get(row, w) + 1);
                }
            }
            let values = &b.values[i * distinct.len()..(i + 1) * distinct.len()];
            for (d, &value) in distinct.iter_mut().zip(values) {
                let Some(value) = value else { continue };
                let new = if value < 64 {
                    let bits = get(row, d.bits);
                    set(row, d.bits, bits | (1 << value));
                    bits & (1 << value) == 0
                } else {
                    let new = d.pairs.insert(group as u64, value as u64);
                    grew |= new;
                    new
                };
                if new {
                    set(row, d.word, get(row, d.word) + 1);
                }
            }
            let record_times = &b.times[i * times.len()..(i + 1) * times.len()];
            let cells = &b.picks[i * picks.len()..(i + 1) * picks.len()];
            for (p, &cell) in picks.iter().zip(cells) {
                let Some((secs, nanos)) = record_times[p.time] else {
                    continue;
                };
                let at = (secs, u64::from(nanos));
                let take = get(row, p.word + 1) == NO_TIME || {
                    let best = (get(row, p.word) as i64, get(row, p.word + 1));
                    if p.last {
                        at >= best
                    } else {
                        at < best
                    }
                };
                if take {
                    set(row, p.word, at.0 as u64);
                    set(row, p.word + 1, at.1);
                    let at = *text_base + TEXT * p.text;
                    let cell = cell.map(|(from, to)| &b.texts[from..to]);
                    grew |= texts.set(&mut row[at..at + TEXT], cell);
                }
            }
        }
        // What grows besides the keys: checked after the fact (one batch's values and
        // texts at most past the budget).
        if grew && over_budget.is_none() {
            let bytes = table_bytes(groups, texts, distinct);
            if bytes > *budget {
                *over_budget = Some(OverBudget {
                    keys: groups.index.len() as u64,
                    bytes,
                    needed: bytes,
                });
            }
        }
        b.clear();
    }

    /// Whether (and where) the tables reached the budget: the caller stops the run.
    pub fn over_budget(&self) -> Option<OverBudget> {
        self.over_budget
    }

    /// The bytes the state takes that grow with the input: the group table (rows, long
    /// keys, hash slots), `first` / `last` texts on the heap, `count_distinct` values and
    /// pairs, and the sort order [`GroupBy::finish`] will build (16 bytes per group).
    pub fn table_bytes(&self) -> u64 {
        table_bytes(&self.groups, &self.texts, &self.distinct)
    }

    /// Number of groups so far (of the records folded in: see [`GroupBy::flush`]).
    pub fn groups(&self) -> usize {
        self.groups.index.len()
    }

    /// Consumes the state; calls `row` once per group in ascending key order (key cells
    /// compared as byte strings, `group_by` columns first, then the bucket), with the key
    /// cells (a null key cell is empty) and the aggregate values in spec order.
    pub fn finish(mut self, mut row: impl FnMut(&[&[u8]], &[AggValue<'_>])) {
        self.flush();
        let groups = &self.groups;
        let ranks = self.bucket.as_ref().map(Bucketing::ranks);
        let ranks = ranks.as_deref();
        // Sorted by the first 8 bytes of the encoded cells (big-endian, zero-padded),
        // then by the bucket name's rank when the cells fit in those 8 bytes, else (on a
        // tie) by the whole encoded cells and the rank. The encoding keeps the order of
        // the cells (see `push_part`) and no encoding of the same number of cells is a
        // proper prefix of another, so two keys whose first 8 bytes differ differ at a
        // byte both have (the padding never decides), and when they tie and one key's
        // cells fit in 8 bytes, both keys' cells are equal. Each entry: that head, then
        // [`WHOLE`] (the cells fit), the rank ([`RANK_BITS`]) and the group number.
        let packed = ranks.is_none_or(|r| r.len() <= 1 << RANK_BITS);
        let mut order: Vec<(u64, u64)> = (0..self.groups())
            .map(|g| {
                let (cells, rank) = split_key(groups.key(g), ranks);
                let mut head = [0; 8];
                let n = cells.len().min(8);
                head[..n].copy_from_slice(&cells[..n]);
                let whole = if packed && cells.len() <= 8 {
                    WHOLE | u64::from(rank) << GROUP_BITS
                } else {
                    0
                };
                (u64::from_be_bytes(head), whole | g as u64)
            })
            .collect();
        order.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0).then_with(|| {
                if a.1 & b.1 & WHOLE != 0 {
                    (a.1 >> GROUP_BITS).cmp(&(b.1 >> GROUP_BITS))
                } else {
                    let (a, b) = ((a.1 & GROUP_MASK) as usize, (b.1 & GROUP_MASK) as usize);
                    split_key(groups.key(a), ranks).cmp(&split_key(groups.key(b), ranks))
                }
            })
        });
        let names = self.bucket.as_ref().map(|b| &b.names);
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut values: Vec<AggValue<'_>> = Vec::with_capacity(self.outputs.len());
        for (i, &(_, entry)) in order.iter().enumerate() {
            // In key order the rows are all over memory: fetch a few ahead.
            if let Some(&(_, ahead)) = order.get(i + PREFETCH_AHEAD) {
                groups.prefetch_row((ahead & GROUP_MASK) as usize);
            }
            let g = (entry & GROUP_MASK) as usize;
            let r = groups.row(g);
            values.clear();
            values.extend(self.outputs.iter().map(|&out| match out {
                Output::Count(w) | Output::Int(w) => {
                    AggValue::Int(i64::try_from(get(r, w)).unwrap_or(i64::MAX))
                }
                Output::Sum { n, .. } | Output::Mean { n, .. } | Output::Extreme { n, .. }
                    if get(r, n) == 0 =>
                {
                    AggValue::Null
                }
                Output::Sum { sum, .. } => AggValue::Float(f64::from_bits(get(r, sum))),
                Output::Mean { n, sum } => {
                    AggValue::Float(f64::from_bits(get(r, sum)) / get(r, n) as f64)
                }
                Output::Extreme { value, .. } => AggValue::Float(f64::from_bits(get(r, value))),
                Output::Pick { word, .. } if get(r, word + 1) == NO_TIME => AggValue::Null,
                Output::Pick { text, .. } => {
                    let at = self.text_base + TEXT * text;
                    self.texts.value(&r[at..at + TEXT])
                }
            }));
            let key = groups.key(g);
            let (cells, bucket) = match names {
                Some(names) => {
                    let (cells, number) = key.split_at(key.len() - BUCKET);
                    (cells, Some(&*names[bucket_number(number)]))
                }
                None => (key, None),
            };
            if split_plain(cells, &mut parts) {
                parts.extend(bucket);
                row(&parts, &values);
            } else {
                let owned = decode_parts(cells);
                let refs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).chain(bucket).collect();
                row(&refs, &values);
            }
        }
    }
}

/// A key's encoded `group_by` cells, and its bucket name's rank in `ranks` (0 without
/// a bucket).
fn split_key<'k>(key: &'k [u8], ranks: Option<&[u32]>) -> (&'k [u8], u32) {
    match ranks {
        Some(ranks) => {
            let (cells, number) = key.split_at(key.len() - BUCKET);
            (cells, ranks[bucket_number(number)])
        }
        None => (key, 0),
    }
}

/// The bucket number at the end of a key.
fn bucket_number(bytes: &[u8]) -> usize {
    let mut b = [0; BUCKET];
    b.copy_from_slice(bytes);
    u32::from_le_bytes(b) as usize
}

/// See [`GroupBy::table_bytes`].
fn table_bytes(groups: &Groups, texts: &Texts, distinct: &[DistinctCol]) -> u64 {
    let distinct: usize = distinct
        .iter()
        .map(|d| d.values.heap_bytes() + d.pairs.heap_bytes())
        .sum();
    (groups.heap_bytes() + SORT_BYTES * groups.index.len() + texts.bytes() + distinct) as u64
}

/// Records per batch: enough cache misses in flight to keep the memory busy, few enough
/// that the batch stays in the L1 cache.
const BATCH: usize = 16;

/// Records read (their cells parsed, or copied) but not yet folded into their groups:
/// per record one entry in each list (per column lists: one per column, record-major).
#[derive(Default)]
struct Batch {
    len: usize,
    /// The encoded keys back to back; record `i`'s ends at `key_ends[i]`.
    keys: Vec<u8>,
    key_ends: Vec<usize>,
    hashes: Vec<u64>,
    /// Per `times` entry: seconds and nanoseconds since the epoch (`None`: no timestamp).
    times: Vec<Option<(i64, u32)>>,
    /// Per numeric column: the cell's number (`None`: null, missing or not a number).
    numbers: Vec<Option<f64>>,
    /// Per `null_count` column: whether the cell is null.
    nulls: Vec<bool>,
    /// Per `count_distinct` column: the cell's value number (`None`: null).
    values: Vec<Option<usize>>,
    /// Per `first` / `last`: where the cell is in `texts` (`None`: null).
    picks: Vec<Option<(usize, usize)>>,
    texts: Vec<u8>,
    /// A `count_distinct` column numbered a new value.
    grew: bool,
}

impl Batch {
    fn clear(&mut self) {
        self.len = 0;
        self.keys.clear();
        self.key_ends.clear();
        self.hashes.clear();
        self.times.clear();
        self.numbers.clear();
        self.nulls.clear();
        self.values.clear();
        self.picks.clear();
        self.texts.clear();
        self.grew = false;
    }
}

/// Bytes per group of the sort order built at the end.
const SORT_BYTES: usize = std::mem::size_of::<(u64, u64)>();

/// The sort order's entries: the group number in the low [`GROUP_BITS`] (see
/// [`KeyIndex`]), the bucket rank in the next [`RANK_BITS`], and [`WHOLE`].
const GROUP_BITS: u32 = 40;
const GROUP_MASK: u64 = (1 << GROUP_BITS) - 1;
const RANK_BITS: u32 = 23;
/// The key's cells fit in the sort head: the rank decides a tie.
const WHOLE: u64 = 1 << 63;

/// Rows prefetched ahead of the one being written out.
const PREFETCH_AHEAD: usize = 16;

/// The groups: their keys, rows and hash index.
struct Groups {
    index: KeyIndex,
    /// A new group's row (the key's place filled in on insertion).
    init: Vec<u8>,
    /// One row of `init.len()` bytes per group, in group number order.
    rows: Vec<u8>,
    /// The encoded keys too long to sit in their rows, back to back.
    key_bytes: Vec<u8>,
}

impl Groups {
    #[inline]
    fn row(&self, g: usize) -> &[u8] {
        let stride = self.init.len();
        &self.rows[g * stride..(g + 1) * stride]
    }

    #[inline]
    fn row_mut(&mut self, g: usize) -> &mut [u8] {
        let stride = self.init.len();
        &mut self.rows[g * stride..(g + 1) * stride]
    }

    fn key(&self, g: usize) -> &[u8] {
        row_key(self.row(g), &self.key_bytes)
    }

    /// Bytes allocated: rows, long keys, hash slots.
    fn heap_bytes(&self) -> usize {
        self.rows.capacity() + self.key_bytes.capacity() + self.index.slot_bytes()
    }

    /// The bytes one more group allocates besides what [`Groups::heap_bytes`] holds: a
    /// doubling of the rows or the slots (old and new slots live together while the new
    /// are filled), a long key, and its share of the sort at the end. Conservative by a
    /// key length for long keys.
    fn growth_bytes(&self, key: &[u8]) -> usize {
        let stride = self.init.len();
        let rows = if self.rows.len() + stride > self.rows.capacity() {
            self.rows.capacity().max(stride * 16)
        } else {
            0
        };
        let long_key = if key.len() > KEY_INLINE {
            key.len().max(self.key_bytes.capacity())
        } else {
            0
        };
        rows + long_key + self.index.growth_bytes() + SORT_BYTES
    }

    /// The number of the group with encoded key `key` (whose hash is `h`), or the slot
    /// where to insert it.
    #[inline]
    fn find_hashed(&self, key: &[u8], h: u64) -> Result<usize, usize> {
        self.index.find(key, h, |g| self.key(g))
    }

    /// Asks the CPU to fetch group `g`'s row (see [`prefetch`]).
    #[inline]
    fn prefetch_row(&self, g: usize) {
        let stride = self.init.len();
        let row = &self.rows[g * stride..(g + 1) * stride];
        for line in row.iter().step_by(64) {
            prefetch(line);
        }
        if let Some(last) = row.last() {
            prefetch(last);
        }
    }

    /// Inserts the group `key`, which [`Groups::find`] did not find; its number.
    fn insert(&mut self, key: &[u8], (slot, h): (usize, u64)) -> usize {
        let g = self.index.len();
        let at = self.rows.len();
        if at + self.init.len() > self.rows.capacity() {
            // Doubling, as `growth_bytes` counted it.
            let more = self.rows.capacity().max(self.init.len() * 16);
            self.rows.reserve_exact(more);
        }
        self.rows.extend_from_slice(&self.init);
        let head = &mut self.rows[at..at + HEAD];
        if key.len() <= KEY_INLINE {
            head[0] = key.len() as u8;
            head[1..1 + key.len()].copy_from_slice(key);
        } else {
            // Keys are cells of one record (at most 64 MB, NULs doubled) plus a
            // bucket: their length fits in 32 bits.
            head[0] = KEY_OUT;
            head[1..5].copy_from_slice(&(key.len() as u32).to_le_bytes());
            head[8..16].copy_from_slice(&(self.key_bytes.len() as u64).to_le_bytes());
            self.key_bytes.extend_from_slice(key);
        }
        let (rows, key_bytes, stride) = (&self.rows, &self.key_bytes, self.init.len());
        self.index.insert(slot, h, |g| {
            hash(row_key(&rows[g * stride..(g + 1) * stride], key_bytes))
        });
        g
    }
}

/// The `first` / `last` texts longer than [`INLINE`] bytes; a row holds the entry
/// number.
#[derive(Default)]
struct Texts {
    heap: Vec<Vec<u8>>,
    /// Entries of `heap` no row uses.
    free: Vec<usize>,
    /// The entries' buffers' bytes.
    buffers: usize,
}

impl Texts {
    /// Stores a `first` / `last` value in its [`TEXT`] bytes of a row: inline when it
    /// fits, else in a heap entry (the row's own entry reused, so a changing long value
    /// does not allocate once its entry is large enough; an entry the row no longer needs
    /// is freed and recycled). Whether it allocated.
    fn set(&mut self, slot: &mut [u8], value: Option<&[u8]>) -> bool {
        let held = (slot[0] == HEAP).then(|| read_u64(slot, 1) as usize);
        match value {
            Some(v) if v.len() > INLINE => {
                let mut grew = false;
                let entry = held.or_else(|| self.free.pop()).unwrap_or_else(|| {
                    grew = true;
                    self.heap.push(Vec::new());
                    self.heap.len() - 1
                });
                let buffer = &mut self.heap[entry];
                let before = buffer.capacity();
                buffer.clear();
                buffer.extend_from_slice(v);
                grew |= buffer.capacity() > before;
                self.buffers = self.buffers - before + buffer.capacity();
                slot[0] = HEAP;
                slot[1..9].copy_from_slice(&(entry as u64).to_le_bytes());
                grew
            }
            short => {
                if let Some(entry) = held {
                    self.buffers -= self.heap[entry].capacity();
                    self.heap[entry] = Vec::new();
                    self.free.push(entry);
                }
                match short {
                    None => slot[0] = 0,
                    Some(v) => {
                        slot[0] = 1 + v.len() as u8;
                        slot[1..1 + v.len()].copy_from_slice(v);
                    }
                }
                false
            }
        }
    }

    /// Bytes allocated: the entries and their buffers.
    fn bytes(&self) -> usize {
        self.heap.capacity() * std::mem::size_of::<Vec<u8>>()
            + self.free.capacity() * std::mem::size_of::<usize>()
            + self.buffers
    }

    fn value<'a>(&'a self, slot: &'a [u8]) -> AggValue<'a> {
        match slot[0] {
            0 => AggValue::Null,
            HEAP => AggValue::Text(&self.heap[read_u64(slot, 1) as usize]),
            tag => AggValue::Text(&slot[1..usize::from(tag)]),
        }
    }
}

/// Appends one key part: NUL bytes escaped as `00 FF`, then the terminator `00 01`. The
/// encoding is unambiguous (`("a,b", "c")` and `("a", "b,c")` differ) and keeps order:
/// comparing two encoded keys byte-wise compares their parts in turn, each as a byte
/// string (a shorter part's terminator sorts below any byte that continues the longer
/// one, including an escaped NUL).
fn push_part(out: &mut Vec<u8>, part: &[u8]) {
    if part.contains(&0) {
        for &b in part {
            out.push(b);
            if b == 0 {
                out.push(0xFF);
            }
        }
    } else {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&[0, 1]);
}

/// Splits an encoded key into `parts` when no part has an escaped NUL (every NUL is
/// then a terminator); false otherwise.
fn split_plain<'k>(key: &'k [u8], parts: &mut Vec<&'k [u8]>) -> bool {
    parts.clear();
    let mut rest = key;
    while let Some(at) = rest.iter().position(|&b| b == 0) {
        if rest.get(at + 1) != Some(&1) {
            return false;
        }
        parts.push(&rest[..at]);
        rest = &rest[at + 2..];
    }
    true
}

/// Decodes an encoded key with escaped NULs.
fn decode_parts(key: &[u8]) -> Vec<Vec<u8>> {
    let mut parts = Vec::new();
    let mut part = Vec::new();
    let mut i = 0;
    while i < key.len() {
        match (key[i], key.get(i + 1)) {
            (0, Some(&1)) => {
                parts.push(std::mem::take(&mut part));
                i += 2;
            }
            (0, Some(&0xFF)) => {
                part.push(0);
                i += 2;
            }
            (b, _) => {
                part.push(b);
                i += 1;
            }
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use chrono_tz::{America, Asia};

    use super::*;
    use crate::config::spec::{Aggregate, MemoryBudget, TimeBucket};
    use crate::pass::csv_scan::{CsvScanner, RecordSink};
    use crate::test_rng::rng;
    use crate::values::number::parse_cell;

    /// An aggregate value that owns its text; floats compare by bits (NaN included).
    #[derive(Debug, Clone, PartialEq)]
    enum Want {
        Null,
        Float(u64),
        Int(i64),
        Text(Vec<u8>),
    }

    impl From<&AggValue<'_>> for Want {
        fn from(v: &AggValue<'_>) -> Self {
            match *v {
                AggValue::Null => Want::Null,
                AggValue::Float(x) => Want::Float(x.to_bits()),
                AggValue::Int(i) => Want::Int(i),
                AggValue::Text(t) => Want::Text(t.to_vec()),
            }
        }
    }

    fn float(x: f64) -> Want {
        Want::Float(x.to_bits())
    }

    fn text(s: &str) -> Want {
        Want::Text(s.as_bytes().to_vec())
    }

    type Out = Vec<(Vec<Vec<u8>>, Vec<Want>)>;

    const NULLS: [&str; 3] = ["", "NA", "null"];

    fn is_null(cell: &[u8]) -> bool {
        NULLS.iter().any(|n| n.as_bytes() == cell)
    }

    /// Binds on the first record, observes the rest.
    struct Feed<'s> {
        spec: &'s EntitySpec,
        tz: Tz,
        group: Option<GroupBy>,
    }

    impl RecordSink for Feed<'_> {
        fn record(&mut self, r: &Record<'_>) {
            match &mut self.group {
                None => self.group = Some(GroupBy::bind(r, self.spec, self.tz, is_null)),
                Some(g) => g.observe(r),
            }
        }
    }

    /// Runs `csv` through the scanner (in `chunk`-byte pieces) and a [`GroupBy`].
    fn run(csv: &[u8], spec: &EntitySpec, tz: Tz, chunk: usize) -> Out {
        let mut feed = Feed {
            spec,
            tz,
            group: None,
        };
        let mut scanner = CsvScanner::new();
        for piece in csv.chunks(chunk) {
            scanner.feed(piece, &mut feed).unwrap();
        }
        scanner.finish(&mut feed).unwrap();
        let mut out = Vec::new();
        feed.group.unwrap().finish(|key, values| {
            out.push((
                key.iter().map(|k| k.to_vec()).collect(),
                values.iter().map(Want::from).collect(),
            ))
        });
        out
    }

    #[derive(Default)]
    struct Rows(Vec<Vec<Vec<u8>>>);

    impl RecordSink for Rows {
        fn record(&mut self, r: &Record<'_>) {
            self.0
                .push((0..r.len()).map(|i| r.field_bytes(i).to_vec()).collect());
        }
    }

    /// The reference: rows in memory, a BTreeMap of groups, each aggregate computed
    /// straight from its definition.
    fn brute(csv: &[u8], spec: &EntitySpec, tz: Tz) -> Out {
        let mut rows = Rows::default();
        let mut scanner = CsvScanner::new();
        scanner.feed(csv, &mut rows).unwrap();
        scanner.finish(&mut rows).unwrap();
        let header = rows.0.remove(0);
        let index = |name: &str| header.iter().rposition(|h| h == name.as_bytes());
        let cell = |row: &[Vec<u8>], name: &str| -> Option<Vec<u8>> {
            let c = row.get(index(name)?)?;
            (!is_null(c)).then(|| c.clone())
        };
        let time =
            |row: &[Vec<u8>], name: &str| cell(row, name).and_then(|c| timestamp::parse_in(&c, tz));

        let mut groups: BTreeMap<Vec<Vec<u8>>, Vec<&Vec<Vec<u8>>>> = BTreeMap::new();
        for row in &rows.0 {
            let mut key: Vec<Vec<u8>> = spec
                .group_by
                .iter()
                .map(|c| cell(row, c).unwrap_or_default())
                .collect();
            if let Some(b) = &spec.time_bucket {
                key.push(
                    time(row, &b.column)
                        .map(|t| timestamp::bucket_start(&t, b.every).into_bytes())
                        .unwrap_or_default(),
                );
            }
            groups.entry(key).or_default().push(row);
        }
        let mut out = Vec::new();
        for (key, rows) in groups {
            let numbers = |c: &str| -> Vec<f64> {
                rows.iter()
                    .filter_map(|r| cell(r, c).and_then(|v| parse_cell(&v)))
                    .collect()
            };
            let extreme = |c: &str, better: fn(f64, f64) -> bool| {
                let v = numbers(c);
                if v.is_empty() {
                    return Want::Null;
                }
                let mut best = f64::NAN;
                for x in v.into_iter().filter(|x| !x.is_nan()) {
                    if best.is_nan() || better(x, best) {
                        best = x;
                    }
                }
                float(best)
            };
            let pick = |column: &str, by: &str, last: bool| {
                let mut best: Option<(DateTime<Tz>, Option<Vec<u8>>)> = None;
                for r in &rows {
                    let Some(t) = time(r, by) else { continue };
                    let better = match &best {
                        None => true,
                        Some((b, _)) if last => t >= *b,
                        Some((b, _)) => t < *b,
                    };
                    if better {
                        best = Some((t, cell(r, column)));
                    }
                }
                match best {
                    Some((_, Some(v))) => Want::Text(v),
                    _ => Want::Null,
                }
            };
            let values = spec
                .aggregates
                .iter()
                .map(|a| match &a.function {
                    AggFunction::Count => Want::Int(rows.len() as i64),
                    AggFunction::Sum(c) => {
                        let v = numbers(c);
                        if v.is_empty() {
                            Want::Null
                        } else {
                            float(v.iter().fold(0.0, |s, x| s + x))
                        }
                    }
                    AggFunction::Mean(c) => {
                        let v = numbers(c);
                        if v.is_empty() {
                            Want::Null
                        } else {
                            float(v.iter().fold(0.0, |s, x| s + x) / v.len() as f64)
                        }
                    }
                    AggFunction::Min(c) => extreme(c, |x, best| x < best),
                    AggFunction::Max(c) => extreme(c, |x, best| x > best),
                    AggFunction::CountDistinct(c) => Want::Int(
                        rows.iter()
                            .filter_map(|r| cell(r, c))
                            .collect::<BTreeSet<_>>()
                            .len() as i64,
                    ),
                    AggFunction::NullCount(c) => {
                        Want::Int(rows.iter().filter(|r| cell(r, c).is_none()).count() as i64)
                    }
                    AggFunction::First { column, by } => pick(column, by, false),
                    AggFunction::Last { column, by } => pick(column, by, true),
                })
                .collect();
            out.push((key, values));
        }
        out
    }

    fn agg(name: &str, function: AggFunction) -> Aggregate {
        Aggregate {
            name: name.to_string(),
            function,
        }
    }

    fn s(x: &str) -> String {
        x.to_string()
    }

    /// Every function, over a column with nulls, junk, NaN and infinities; twice where
    /// state is shared (sum and mean of one column), and over absent columns.
    fn all_aggregates() -> Vec<Aggregate> {
        use AggFunction::*;
        vec![
            agg("n", Count),
            agg("sum", Sum(s("amount"))),
            agg("mean", Mean(s("amount"))),
            agg("min", Min(s("amount"))),
            agg("max", Max(s("amount"))),
            agg("sum_score", Sum(s("score"))),
            agg("max_score", Max(s("score"))),
            agg("distinct_event", CountDistinct(s("event"))),
            agg("distinct_amount", CountDistinct(s("amount"))),
            agg("null_amount", NullCount(s("amount"))),
            agg("null_event", NullCount(s("event"))),
            agg(
                "first_event",
                First {
                    column: s("event"),
                    by: s("ts"),
                },
            ),
            agg(
                "last_event",
                Last {
                    column: s("event"),
                    by: s("ts"),
                },
            ),
            agg(
                "last_amount",
                Last {
                    column: s("amount"),
                    by: s("ts"),
                },
            ),
            agg(
                "first_by_ts2",
                First {
                    column: s("event"),
                    by: s("ts2"),
                },
            ),
            agg("n_again", Count),
            agg("sum_missing", Sum(s("missing"))),
            agg("null_missing", NullCount(s("missing"))),
            agg("distinct_missing", CountDistinct(s("missing"))),
            agg(
                "last_by_missing",
                Last {
                    column: s("event"),
                    by: s("missing"),
                },
            ),
            agg(
                "first_of_missing",
                First {
                    column: s("missing"),
                    by: s("ts"),
                },
            ),
        ]
    }

    fn quote(cell: &str) -> String {
        if cell.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", cell.replace('"', "\"\""))
        } else {
            cell.to_string()
        }
    }

    /// A random CSV: keys with delimiters, quotes, NULs and nulls; timestamps in every
    /// accepted form plus junk, from a small pool (ties); numbers, junk, NaN and inf;
    /// short rows; a repeated `amount` header (the last one is read).
    fn random_csv(seed: u64, rows: usize) -> Vec<u8> {
        let mut next = rng(seed);
        let mut pick =
            |options: &[&str]| options[(next() % options.len() as u64) as usize].to_string();
        // Keys of 15 bytes and fewer sit in the row, longer ones outside (`KEY_INLINE`).
        let users = [
            "a",
            "b",
            "a,b",
            "\"q\"",
            "",
            "NA",
            "a\0",
            "\0",
            "é",
            "b,",
            "a\nb",
            "user_67890",
            "user_678901",
            "user_678901_and_then_some\0",
        ];
        let shops = ["x", "y", "", "null", "x\0y"];
        let times = [
            "2025-11-02T01:30:00",
            "2025-11-02T01:30:00-05:00",
            "2025-11-02T05:30:00Z",
            "2025-11-02 00:59:59.5",
            "2025-11-02",
            "2025-11-03T00:00:00+09:00",
            "2025-03-09T02:30:00",
            "2025-03-09T03:10:00",
            "2025-11-02t23:00:00z",
            "bad",
            "",
            "NA",
            " 2025-11-02T12:00:00+00:00 ",
        ];
        let amounts = [
            "1",
            "2.5",
            "-0.0",
            "0",
            "nan",
            "-nan",
            "inf",
            "-inf",
            "x",
            " 7 ",
            "1e3",
            "123456789",
            "NA",
            "",
            "0.1",
            "0.2",
            "-3",
        ];
        let events = [
            "click",
            "view",
            "",
            "NA",
            "purchase",
            "a_long_event_name_over_22_bytes",
            "b_long_event_name_over_22_bytes",
            "a_longer_event_name_over_22_bytes!",
            "exactly_22_bytes_long_",
            "exactly_23_bytes_long__",
            "exactly_24_bytes_long___",
            "1.5",
        ];
        let mut csv = String::from("user,shop,ts,amount,event,score,ts2,amount\n");
        for _ in 0..rows {
            let mut cells = vec![
                pick(&users),
                pick(&shops),
                pick(&times),
                pick(&amounts),
                pick(&events),
                pick(&amounts),
                pick(&times),
                pick(&amounts),
            ];
            // Short rows: some cells missing at the end.
            if pick(&["full", "full", "full", "short"]) == "short" {
                let keep = 1
                    + (pick(&["0", "1", "2", "3", "4", "5", "6"])
                        .parse::<usize>()
                        .unwrap());
                cells.truncate(keep);
            }
            let line: Vec<String> = cells.iter().map(|c| quote(c)).collect();
            csv.push_str(&line.join(","));
            csv.push('\n');
        }
        csv.into_bytes()
    }

    fn spec(bucket: Option<BucketWidth>) -> EntitySpec {
        EntitySpec {
            group_by: vec![s("user"), s("shop")],
            time_bucket: bucket.map(|every| TimeBucket {
                column: s("ts"),
                every,
                name: s("bucket"),
            }),
            aggregates: all_aggregates(),
            memory_budget: MemoryBudget::default(),
        }
    }

    #[test]
    fn every_aggregate_matches_brute_force() {
        for (seed, tz) in [
            (1, America::New_York),
            (2, Asia::Seoul),
            (3, America::Havana),
        ] {
            let csv = random_csv(seed, 3000);
            for bucket in [None, Some(BucketWidth::Hour), Some(BucketWidth::Day)] {
                let spec = spec(bucket);
                let want = brute(&csv, &spec, tz);
                let got = run(&csv, &spec, tz, 4096);
                assert!(
                    want.len() > 20,
                    "too few groups to mean much: {}",
                    want.len()
                );
                assert_eq!(got.len(), want.len(), "groups, seed {seed} {bucket:?}");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g, w, "seed {seed} {tz} {bucket:?}");
                }
            }
        }
    }

    /// The generated data must exercise what the comparison is meant to cover.
    #[test]
    fn brute_force_data_covers_the_edge_cases() {
        let csv = random_csv(1, 3000);
        let out = brute(&csv, &spec(Some(BucketWidth::Hour)), America::New_York);
        let col = |name: &str| {
            all_aggregates()
                .iter()
                .position(|a| a.name == name)
                .unwrap()
        };
        let values = |name: &str| -> Vec<Want> {
            let at = col(name);
            out.iter().map(|(_, v)| v[at].clone()).collect()
        };
        let is_nan = |w: &Want| matches!(w, Want::Float(b) if f64::from_bits(*b).is_nan());
        assert!(values("sum").iter().any(is_nan), "a NaN sum");
        assert!(values("sum").contains(&Want::Null), "no numbers");
        assert!(values("min")
            .iter()
            .any(|w| matches!(w, Want::Float(_)) && !is_nan(w)));
        assert!(values("min").iter().any(is_nan), "only NaN");
        assert!(values("last_event").contains(&Want::Null), "a null last");
        let long = |w: &Want| matches!(w, Want::Text(t) if t.len() > INLINE);
        assert!(values("last_event").iter().any(long), "a heap text");
        assert!(out.iter().any(|(k, _)| k[2].is_empty()), "the empty bucket");
        assert!(out.iter().any(|(k, _)| k[0].contains(&0)), "a NUL in a key");
        assert!(out.iter().any(|(k, _)| k[2].ends_with(b"-05:00")));
        assert!(out.iter().any(|(k, _)| k[2].ends_with(b"-04:00")));
    }

    #[test]
    fn output_is_sorted_and_independent_of_chunking() {
        let csv = random_csv(4, 2000);
        let spec = spec(Some(BucketWidth::Day));
        let first = run(&csv, &spec, Asia::Seoul, 7);
        for chunk in [1, 64, 1 << 20] {
            assert_eq!(run(&csv, &spec, Asia::Seoul, chunk), first, "chunk {chunk}");
        }
        for pair in first.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "{:?} before {:?}",
                pair[0].0,
                pair[1].0
            );
        }
    }

    #[test]
    fn key_parts_do_not_run_together() {
        let csv = "k1,k2\n\"a,b\",c\na,\"b,c\"\na\0,b\na,\0b\na,b\na,\nNA,\n,\n\0,\n,\0\n";
        let spec = EntitySpec {
            group_by: vec![s("k1"), s("k2")],
            time_bucket: None,
            memory_budget: MemoryBudget::default(),
            aggregates: vec![agg("n", AggFunction::Count)],
        };
        let got = run(csv.as_bytes(), &spec, Asia::Seoul, 3);
        let keys: Vec<(String, String)> = got
            .iter()
            .map(|(k, _)| {
                (
                    String::from_utf8(k[0].clone()).unwrap(),
                    String::from_utf8(k[1].clone()).unwrap(),
                )
            })
            .collect();
        let want: Vec<(&str, &str)> = vec![
            ("", ""),
            ("", "\0"),
            ("\0", ""),
            ("a", ""),
            ("a", "\0b"),
            ("a", "b"),
            ("a", "b,c"),
            ("a\0", "b"),
            ("a,b", "c"),
        ];
        let want: Vec<(String, String)> = want.into_iter().map(|(a, b)| (s(a), s(b))).collect();
        assert_eq!(keys, want);
        // NA and empty are both null: one group of two rows.
        assert_eq!(got[0].1, vec![Want::Int(2)]);
    }

    #[test]
    fn repeated_header_binds_last_and_absent_columns_are_null() {
        let csv = "user,amount,amount,ts\nu,1,10,2025-11-19\nu,2,20\nv,3\n";
        let spec = EntitySpec {
            group_by: vec![s("user"), s("nope")],
            time_bucket: Some(TimeBucket {
                column: s("nope"),
                every: BucketWidth::Day,
                name: s("day"),
            }),
            memory_budget: MemoryBudget::default(),
            aggregates: vec![
                agg("sum", AggFunction::Sum(s("amount"))),
                agg("nulls", AggFunction::NullCount(s("amount"))),
                agg("ghost", AggFunction::Sum(s("nope"))),
                agg("ghost_nulls", AggFunction::NullCount(s("nope"))),
                agg(
                    "last",
                    AggFunction::Last {
                        column: s("amount"),
                        by: s("ts"),
                    },
                ),
            ],
        };
        let got = run(csv.as_bytes(), &spec, Asia::Seoul, 5);
        let key = |u: &str| vec![u.as_bytes().to_vec(), vec![], vec![]];
        assert_eq!(
            got,
            vec![
                (
                    key("u"),
                    vec![
                        float(30.0),
                        Want::Int(0),
                        Want::Null,
                        Want::Int(2),
                        text("10")
                    ]
                ),
                (
                    key("v"),
                    vec![
                        Want::Null,
                        Want::Int(1),
                        Want::Null,
                        Want::Int(1),
                        Want::Null
                    ]
                ),
            ]
        );
    }

    /// The NaN and null rules, spelled out (the brute-force test checks them at scale).
    #[test]
    fn nan_and_null_rules() {
        let csv = "k,v\na,nan\na,1\na,-2\nb,nan\nc,x\nc,NA\nd,inf\nd,-inf\ne,-0.0\ne,0\n";
        let spec = EntitySpec {
            group_by: vec![s("k")],
            time_bucket: None,
            memory_budget: MemoryBudget::default(),
            aggregates: vec![
                agg("sum", AggFunction::Sum(s("v"))),
                agg("mean", AggFunction::Mean(s("v"))),
                agg("min", AggFunction::Min(s("v"))),
                agg("max", AggFunction::Max(s("v"))),
            ],
        };
        let got: Vec<Vec<Want>> = run(csv.as_bytes(), &spec, Asia::Seoul, 64)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let nan = || float(f64::NAN);
        assert!(matches!(got[0][0], Want::Float(b) if f64::from_bits(b).is_nan()));
        assert!(matches!(got[0][1], Want::Float(b) if f64::from_bits(b).is_nan()));
        assert_eq!(got[0][2..], [float(-2.0), float(1.0)]);
        assert_eq!(got[1][2..], [nan(), nan()], "only NaN: min/max NaN");
        assert_eq!(got[2], vec![Want::Null; 4], "no numeric cell: all null");
        assert!(matches!(got[3][0], Want::Float(b) if f64::from_bits(b).is_nan()));
        assert_eq!(
            got[3][2..],
            [float(f64::NEG_INFINITY), float(f64::INFINITY)]
        );
        // Python: sum([-0.0, 0]) == 0.0; min(-0.0, 0.0) keeps the first.
        assert_eq!(
            got[4],
            vec![float(0.0), float(0.0), float(-0.0), float(-0.0)]
        );
    }

    #[test]
    fn ties_in_time_keep_first_and_last_in_input_order() {
        let csv = "k,e,ts\n\
                   a,one,2025-11-19T00:00:00+09:00\n\
                   a,two,2025-11-18T15:00:00Z\n\
                   a,early,2025-11-18T00:00:00\n\
                   a,three,2025-11-19 00:00:00\n\
                   a,none,bad\n\
                   a,blank,\n\
                   a,,2025-11-18T00:00:00\n";
        let spec = EntitySpec {
            group_by: vec![s("k")],
            time_bucket: None,
            memory_budget: MemoryBudget::default(),
            aggregates: vec![
                agg(
                    "first",
                    AggFunction::First {
                        column: s("e"),
                        by: s("ts"),
                    },
                ),
                agg(
                    "last",
                    AggFunction::Last {
                        column: s("e"),
                        by: s("ts"),
                    },
                ),
            ],
        };
        let got = run(csv.as_bytes(), &spec, Asia::Seoul, 64);
        assert_eq!(got[0].1, vec![text("early"), text("three")]);
    }

    #[test]
    fn texts_inline_heap_and_recycle() {
        let mut texts = Texts::default();
        let mut slot = [0u8; TEXT];
        let long_a = "a_value_longer_than_23_bytes";
        let long_b = "b_value_longer_than_23_bytes";
        let steps: [(Option<&str>, usize); 9] = [
            (Some("short"), 0),
            (Some("exactly_23_bytes_long__"), 0),
            (Some(long_a), 1),
            (Some(long_b), 1),
            (Some("an_even_longer_value_than_before"), 1),
            (Some(""), 0),
            (Some(long_a), 1),
            (None, 0),
            (Some("x"), 0),
        ];
        for (value, in_use) in steps {
            texts.set(&mut slot, value.map(str::as_bytes));
            let want = value.map_or(AggValue::Null, |v| AggValue::Text(v.as_bytes()));
            assert_eq!(texts.value(&slot), want);
            // One heap entry at most, recycled rather than leaked.
            assert!(texts.heap.len() <= 1);
            assert_eq!(texts.heap.len() - texts.free.len(), in_use, "{value:?}");
            let buffers: usize = texts.heap.iter().map(Vec::capacity).sum();
            assert_eq!(texts.buffers, buffers, "{value:?}");
        }
    }

    /// Status memory line in kB (`VmRSS`, `VmHWM`).
    fn status_kb(field: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| {
                l.strip_prefix(field)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }

    /// 1M distinct users, 5M rows, count / sum / mean / max / last-by-time; prints
    /// rows/s and the resident memory per group (numbers in the module docs).
    /// `cargo test --release --lib group_by::tests::million_keys -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn million_keys_throughput_and_memory() {
        use std::io::Write as _;
        const USERS: u64 = 1_000_000;
        const ROWS: u64 = 5_000_000;
        let spec = EntitySpec {
            group_by: vec![s("user")],
            time_bucket: None,
            memory_budget: MemoryBudget::default(),
            aggregates: vec![
                agg("n", AggFunction::Count),
                agg("sum", AggFunction::Sum(s("amount"))),
                agg("mean", AggFunction::Mean(s("amount"))),
                agg("max", AggFunction::Max(s("amount"))),
                agg(
                    "last",
                    AggFunction::Last {
                        column: s("event"),
                        by: s("ts"),
                    },
                ),
            ],
        };
        let events = ["view", "click", "purchase", "add_to_cart"];
        let mut chunk: Vec<u8> = Vec::with_capacity(1 << 21);
        let mut scanner = CsvScanner::new();
        let mut feed = Feed {
            spec: &spec,
            tz: Asia::Seoul,
            group: None,
        };
        scanner.feed(b"user,ts,amount,event\n", &mut feed).unwrap();
        let (rss0, hwm0) = (status_kb("VmRSS:"), status_kb("VmHWM:"));
        let mut busy = std::time::Duration::ZERO;
        let mut row = 0u64;
        while row < ROWS {
            chunk.clear();
            while chunk.len() < 1 << 20 && row < ROWS {
                // Every user 5 times, in a scrambled order; time moves forward.
                let user = (row * 7919) % USERS;
                let secs = row / 4;
                let (day, rem) = (19 + secs / 86_400, secs % 86_400);
                writeln!(
                    chunk,
                    "u{user:07},2025-11-{:02}T{:02}:{:02}:{:02}+09:00,{}.{:02},{}",
                    day % 28 + 1,
                    rem / 3600,
                    rem / 60 % 60,
                    rem % 60,
                    row % 1000,
                    row % 100,
                    events[(row % 4) as usize]
                )
                .unwrap();
                row += 1;
            }
            let start = std::time::Instant::now();
            scanner.feed(&chunk, &mut feed).unwrap();
            busy += start.elapsed();
        }
        scanner.finish(&mut feed).unwrap();
        let mut group = feed.group.take().unwrap();
        group.flush();
        let (rss1, hwm1) = (status_kb("VmRSS:"), status_kb("VmHWM:"));
        let groups = group.groups();
        let accounted = group.table_bytes();
        let start = std::time::Instant::now();
        let mut out_rows = 0u64;
        group.finish(|_, _| out_rows += 1);
        let finish = start.elapsed();
        assert_eq!(groups as u64, USERS);
        assert_eq!(out_rows, USERS);
        println!(
            "group_by: {ROWS} rows, {groups} groups: {:.2} s scan+observe = {:.2} M rows/s; \
             finish (sort + emit) {:.2} s",
            busy.as_secs_f64(),
            ROWS as f64 / busy.as_secs_f64() / 1e6,
            finish.as_secs_f64(),
        );
        println!(
            "memory: VmRSS +{} MB, VmHWM +{} MB, {:.0} B/group resident, {:.0} B/group \
             allocated by the tables (capacity)",
            (rss1 - rss0) / 1024,
            hwm1.saturating_sub(hwm0.max(rss0)) / 1024,
            (rss1 - rss0) as f64 * 1024.0 / groups as f64,
            accounted as f64 / groups as f64,
        );
    }
}
