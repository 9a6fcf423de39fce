//! A push-style, streaming RFC 4180 scanner that is fed arbitrary byte chunks.
//!
//! Why not the `csv` crate for reading: the contract needs three things it cannot give
//! us: a quoted field still open at the end of the input must be an error naming the
//! line where it opened, blank lines must be counted (not silently dropped), and bytes
//! arrive as async chunks. The quoting rules follow Python's `csv` module (as the original pipeline read it):
//! a quote opens a quoted field only at the start of a field, `""` inside quotes is a
//! quote, text after a closing quote is appended, a quote inside an unquoted field is
//! data, and CR, LF or CRLF end a record.
//!
//! The field delimiter is a comma unless [`CsvScanner::with_delimiter`] picks another
//! ASCII byte (tab, `;`, `|`, ...); the quote is always `"`. A byte that is not the
//! delimiter is data, so in a `;`-separated file a comma is an ordinary character.
//!
//! Two paths, one behaviour:
//! - the *fast path* handles whole records that lie inside one chunk and contain no
//!   quote (nearly all of them): it finds delimiters and line ends 64 bytes at a time
//!   ([`structural`]: SIMD on x86_64, a scalar loop elsewhere) and hands the record out
//!   as slices of the chunk itself, without copying;
//! - the *scalar path* is a byte-at-a-time state machine that copies field contents into
//!   a reused buffer. It takes every record the fast path declines: one with a quote, one
//!   split across chunks, one touching bytes not yet known to be UTF-8.
//!
//! UTF-8 is validated once per chunk, not per record. Bytes of valid UTF-8 with ASCII
//! delimiters removed are still valid UTF-8, so a record made only of validated bytes
//! needs no further check. A record that touches bytes the chunk check did not cover (a
//! character split by a chunk boundary, or invalid bytes) goes through the scalar path
//! and is checked on its own when it is complete, which is exactly where and how the
//! error was always reported.
//!
//! Memory: one record at a time. A record larger than [`MAX_RECORD_BYTES`] is an error,
//! so an unterminated quote early in a 10 GB file cannot pull the rest into memory; so
//! are a record with more fields than the limit (a line of a million commas would
//! otherwise cost 8 bytes a field) and a header longer than its limit (every header name
//! is kept, and written to `metadata.json`): see [`Limits`].

use crate::config::spec::{check_delimiter, DEFAULT_MAX_COLUMNS, DEFAULT_MAX_HEADER_BYTES};

/// Upper bound on one record's size; larger records are rejected as malformed.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// One record: its fields as byte slices into a reused buffer or into the input chunk
/// (no allocation per cell).
#[derive(Clone, Copy)]
pub struct Record<'a> {
    /// 1-based line on which the record starts.
    pub line: u64,
    buf: &'a [u8],
    /// End offset in `buf` of each field.
    ends: &'a [usize],
    /// Bytes between one field's end and the next field's start: 0 when the fields were
    /// copied back to back (scalar path), 1 when they are slices of the input, where a
    /// delimiter separates them (fast path).
    gap: usize,
    /// How many fields are empty, counted by the scanner as it split them.
    empty: u64,
}

impl<'a> Record<'a> {
    /// Number of fields (cells) in the record.
    #[inline]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True for a record with no fields (never produced: blank lines are not records).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `i` as UTF-8; the whole record was validated before it was handed out.
    pub fn field(&self, i: usize) -> &'a str {
        // Validated before the record was handed out; the fallback is unreachable but
        // never panics.
        std::str::from_utf8(self.field_bytes(i)).unwrap_or_default()
    }

    /// Field `i` as raw bytes (valid UTF-8: the record was validated).
    #[inline]
    pub fn field_bytes(&self, i: usize) -> &'a [u8] {
        let start = if i == 0 {
            0
        } else {
            self.ends[i - 1] + self.gap
        };
        &self.buf[start..self.ends[i]]
    }

    /// Field `i`, and when it is at most 8 bytes long and ends at least 8 bytes into the
    /// record, the 8 bytes ending where it ends as a little-endian word, for
    /// [`crate::number::parse_cell_window`].
    #[inline]
    pub fn field_and_window(&self, i: usize) -> (&'a [u8], Option<u64>) {
        let field = self.field_bytes(i);
        let end = self.ends[i];
        let window = match (field.len() <= 8, end.checked_sub(8)) {
            (true, Some(start)) => self
                .buf
                .get(start..end)
                .and_then(|w| w.try_into().ok())
                .map(u64::from_le_bytes),
            _ => None,
        };
        (field, window)
    }

    /// How many fields are empty strings (the original pipeline's null cells), without decoding them.
    #[inline]
    pub fn empty_fields(&self) -> u64 {
        self.empty
    }

    /// All fields in order.
    pub fn fields(&self) -> impl DoubleEndedIterator<Item = &'a str> + ExactSizeIterator + '_ {
        (0..self.len()).map(move |i| self.field(i))
    }

    /// The same record, said to start on `line`: a many-file input numbers the lines of
    /// its parts as those of one file.
    pub fn at_line(&self, line: u64) -> Record<'a> {
        Record { line, ..*self }
    }
}

/// Empty fields among fields copied back to back (the scalar path): field i > 0 is empty
/// when it ends where the one before it ends.
fn count_empty(ends: &[usize]) -> u64 {
    let Some(&first) = ends.first() else {
        return 0;
    };
    let rest = ends.windows(2).filter(|w| w[1] == w[0]).count();
    u64::from(first == 0) + rest as u64
}

/// Bounds on one record's shape, so that memory stays bounded whatever the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fields in one record.
    pub max_fields: usize,
    /// Bytes of the header record.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_fields: DEFAULT_MAX_COLUMNS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// Receives each record as it is completed.
pub trait RecordSink {
    fn record(&mut self, record: &Record<'_>);
}

/// What the scanner itself observed, beside the records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Empty lines outside quoted fields; they are not records.
    pub blank_lines: u64,
    /// Bytes consumed, BOM included.
    pub bytes: u64,
    /// True when the input started with a UTF-8 byte order mark (stripped).
    pub had_bom: bool,
    /// Lines in the input (a last line without a line end counts).
    pub lines: u64,
}

/// A malformed-input error: the 1-based line and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    pub line: u64,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing of the current record seen yet: a line end here is a blank line.
    RecordStart,
    /// After a delimiter: a line end here closes an empty last field.
    FieldStart,
    Unquoted,
    Quoted,
    /// Saw a quote inside a quoted field: either `""`, or the field's closing quote.
    QuoteInQuoted,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Bytes that end an unquoted field (the delimiter, LF, CR): one table lookup per byte
/// in the scalar loop.
fn ends_unquoted(delimiter: u8) -> [bool; 256] {
    let mut t = [false; 256];
    t[usize::from(delimiter)] = true;
    t[usize::from(b'\n')] = true;
    t[usize::from(b'\r')] = true;
    t
}

/// The streaming scanner; feed it chunks, then call [`CsvScanner::finish`].
pub struct CsvScanner {
    state: State,
    /// The field delimiter: an ASCII byte other than `"`, CR and LF.
    delimiter: u8,
    /// [`ends_unquoted`] for `delimiter`.
    ends_unquoted: [bool; 256],
    /// Line of the byte being processed (1-based).
    line: u64,
    record_line: u64,
    quote_line: u64,
    /// A CR ended the last record; a following LF belongs to it.
    after_cr: bool,
    /// The record in `buf` holds bytes the per-chunk UTF-8 check did not cover, so it
    /// is checked on its own when complete.
    unchecked: bool,
    /// Whether the fast path may run (tests turn it off to compare both paths).
    fast: bool,
    /// Tests: the fast path with the portable (non-SIMD) block classifier.
    #[cfg(test)]
    portable: bool,
    /// First bytes held back until we know whether they are a BOM.
    head: Vec<u8>,
    head_done: bool,
    buf: Vec<u8>,
    ends: Vec<usize>,
    stats: ScanStats,
    limits: Limits,
    /// The header (the first record) has been handed out.
    header_done: bool,
}

impl Default for CsvScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvScanner {
    /// A scanner for comma-separated input.
    pub fn new() -> Self {
        Self::with_checked_delimiter(b',')
    }

    /// A scanner whose fields are separated by `delimiter` instead of a comma (tab,
    /// `;`, `|`, ...). The delimiter must be one ASCII byte, and neither the quote nor a
    /// line end, which already have their own meaning.
    pub fn with_delimiter(delimiter: u8) -> Result<Self, &'static str> {
        check_delimiter(delimiter).map(Self::with_checked_delimiter)
    }

    /// The same scanner with other bounds on a record's shape.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    fn with_checked_delimiter(delimiter: u8) -> Self {
        CsvScanner {
            state: State::RecordStart,
            delimiter,
            ends_unquoted: ends_unquoted(delimiter),
            line: 1,
            record_line: 1,
            quote_line: 1,
            after_cr: false,
            unchecked: false,
            fast: true,
            #[cfg(test)]
            portable: false,
            limits: Limits::default(),
            header_done: false,
            head: Vec::with_capacity(3),
            head_done: false,
            buf: Vec::with_capacity(4096),
            ends: Vec::with_capacity(64),
            stats: ScanStats::default(),
        }
    }

    /// This scanner with its fast path using the portable classifier, as on other
    /// targets.
    #[cfg(test)]
    fn portable(self) -> Self {
        CsvScanner {
            portable: true,
            ..self
        }
    }

    /// This scanner never taking the fast path: the reference the tests compare with.
    #[cfg(test)]
    fn scalar_only(self) -> Self {
        CsvScanner {
            fast: false,
            ..self
        }
    }

    /// Scans one chunk; records completed inside it go to `sink`.
    pub fn feed(&mut self, chunk: &[u8], sink: &mut impl RecordSink) -> Result<(), ScanError> {
        self.stats.bytes += chunk.len() as u64;
        if self.head_done {
            return self.scan(chunk, sink);
        }
        // Hold back up to three bytes to recognise a BOM split across chunks.
        let take = (BOM.len() - self.head.len()).min(chunk.len());
        self.head.extend_from_slice(&chunk[..take]);
        if self.head.len() < BOM.len() && BOM.starts_with(&self.head) {
            return Ok(());
        }
        self.release_head(sink)?;
        self.scan(&chunk[take..], sink)
    }

    /// Ends the input: closes the last record and reports what was seen.
    pub fn finish(mut self, sink: &mut impl RecordSink) -> Result<ScanStats, ScanError> {
        if !self.head_done {
            self.release_head(sink)?;
        }
        // `line` is the line of the next byte: past the last line when the input ended
        // with a line end, except a final CR, which moves it only once a byte follows.
        self.stats.lines = match self.state {
            State::RecordStart if !self.after_cr => self.line - 1,
            _ => self.line,
        };
        match self.state {
            State::RecordStart => {}
            State::Quoted => {
                return Err(ScanError {
                    line: self.quote_line,
                    message: "quoted field opened here is never closed (missing closing quote)"
                        .to_string(),
                });
            }
            State::FieldStart | State::Unquoted | State::QuoteInQuoted => {
                self.end_field()?;
                self.emit_record(sink)?;
            }
        }
        Ok(self.stats)
    }

    fn release_head(&mut self, sink: &mut impl RecordSink) -> Result<(), ScanError> {
        self.head_done = true;
        let head = std::mem::take(&mut self.head);
        if head.as_slice() == BOM {
            self.stats.had_bom = true;
            Ok(())
        } else {
            self.scan(&head, sink)
        }
    }

    /// Validates the chunk's UTF-8 once, then alternates between the fast path (whole
    /// quote-free records in validated bytes) and the scalar path (everything else).
    fn scan(&mut self, chunk: &[u8], sink: &mut impl RecordSink) -> Result<(), ScanError> {
        let n = chunk.len();
        // Continuation bytes at the start belong to a character split by the chunk
        // boundary; they, and whatever follows the first invalid or incomplete sequence,
        // are left to the per-record check.
        let lead = chunk
            .iter()
            .take(3)
            .take_while(|&&b| b & 0xC0 == 0x80)
            .count();
        let valid_end = lead
            + match simdutf8::compat::from_utf8(&chunk[lead..]) {
                Ok(_) => n - lead,
                Err(e) => e.valid_up_to(),
            };
        let mut i = 0;
        while i < n {
            let (stop, validated) = if i < lead {
                (lead, false)
            } else if i < valid_end {
                (valid_end, true)
            } else {
                (n, false)
            };
            if validated && self.fast && self.state == State::RecordStart && !self.after_cr {
                i = self.scan_fast(chunk, i, stop, sink)?;
                if i >= stop {
                    continue;
                }
            }
            if !validated {
                self.unchecked = true;
            }
            i = self.scan_scalar(chunk, i, stop, sink)?;
        }
        Ok(())
    }

    /// The fast path over `chunk[start..stop]` (validated UTF-8), entered at a record
    /// start. Emits every complete, quote-free record straight from the chunk; returns
    /// where it stopped: `stop`, or the start of a record the scalar path must take (it
    /// has a quote, is too long, or is not complete before `stop`).
    fn scan_fast(
        &mut self,
        chunk: &[u8],
        start: usize,
        stop: usize,
        sink: &mut impl RecordSink,
    ) -> Result<usize, ScanError> {
        let d = self.delimiter;
        #[cfg(test)]
        if self.portable {
            return Ok(self.scan_fast_with(chunk, start, stop, sink, |r, b| {
                structural::mask_portable(r, b, d)
            }));
        }
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above), the only
                // requirement of calling a function compiled with that target feature.
                return Ok(unsafe { self.scan_fast_avx2(chunk, start, stop, sink) });
            }
        }
        Ok(self.scan_fast_with(chunk, start, stop, sink, |r, b| structural::mask(r, b, d)))
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn scan_fast_avx2(
        &mut self,
        chunk: &[u8],
        start: usize,
        stop: usize,
        sink: &mut impl RecordSink,
    ) -> usize {
        let d = self.delimiter;
        self.scan_fast_with(chunk, start, stop, sink, |r, b| {
            structural::mask_avx2(r, b, d)
        })
    }

    /// The fast path's loop, generic over the block classifier so each instruction set
    /// gets its own inlined copy.
    #[inline(always)]
    fn scan_fast_with(
        &mut self,
        chunk: &[u8],
        start: usize,
        stop: usize,
        sink: &mut impl RecordSink,
        mask_at: impl Fn(&[u8], usize) -> u64,
    ) -> usize {
        let region = &chunk[..stop];
        let delimiter = self.delimiter;
        // Fields of the current record; the record starts at `rec`.
        self.ends.clear();
        self.unchecked = false;
        let mut rec = start;
        // The LF of a CRLF whose CR just ended a record (or a blank line).
        let mut skip_lf = usize::MAX;
        // Where the current field starts, and the empty fields of the record so far.
        let mut field_start = start;
        let mut empty = 0u64;
        let mut base = start;
        let mut mask = mask_at(region, base);
        loop {
            while mask == 0 {
                base += 64;
                if base >= stop {
                    // The record at `rec` is not complete in this region.
                    self.ends.clear();
                    return rec;
                }
                mask = mask_at(region, base);
            }
            let pos = base + mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let b = region[pos];
            // Counted here, as the field ends, rather than by the sink from `ends`: reading
            // back the just-stored ends with vector loads stalled on store forwarding.
            empty += u64::from(pos == field_start);
            field_start = pos + 1;
            if b == delimiter {
                if self.ends.len() >= self.limits.max_fields {
                    // Let the scalar path report it.
                    self.ends.clear();
                    return rec;
                }
                self.ends.push(pos - rec);
                continue;
            }
            match b {
                b'\n' if pos == skip_lf => {}
                b'\n' | b'\r' => {
                    if pos > rec || !self.ends.is_empty() {
                        if pos - rec > self.record_limit()
                            || self.ends.len() >= self.limits.max_fields
                        {
                            // Let the scalar path report it.
                            self.ends.clear();
                            return rec;
                        }
                        self.header_done = true;
                        self.ends.push(pos - rec);
                        sink.record(&Record {
                            line: self.line,
                            buf: &region[rec..pos],
                            ends: &self.ends,
                            gap: 1,
                            empty,
                        });
                        self.ends.clear();
                    } else {
                        self.stats.blank_lines += 1;
                    }
                    rec = pos + 1;
                    if region[pos] == b'\r' {
                        if rec == stop {
                            // Whether an LF follows is up to the next bytes.
                            self.after_cr = true;
                            return stop;
                        }
                        if region[rec] == b'\n' {
                            skip_lf = rec;
                            rec += 1;
                        }
                    }
                    self.line += 1;
                    field_start = rec;
                    empty = 0;
                }
                // A quote: the scalar path takes this record.
                _ => {
                    self.ends.clear();
                    return rec;
                }
            }
        }
    }

    /// The scalar path over `chunk[i..stop]`: the byte-at-a-time state machine. Returns
    /// after the first record (or blank line) it completes, so the fast path can take
    /// over again, or at `stop`.
    fn scan_scalar(
        &mut self,
        chunk: &[u8],
        mut i: usize,
        stop: usize,
        sink: &mut impl RecordSink,
    ) -> Result<usize, ScanError> {
        let n = stop;
        while i < n {
            if self.after_cr {
                self.after_cr = false;
                self.line += 1;
                if chunk[i] == b'\n' {
                    i += 1;
                    continue;
                }
            }
            match self.state {
                State::RecordStart | State::FieldStart => {
                    if self.state == State::RecordStart {
                        self.record_line = self.line;
                    }
                    match chunk[i] {
                        b'"' => {
                            self.state = State::Quoted;
                            self.quote_line = self.line;
                            i += 1;
                        }
                        b if b == self.delimiter => {
                            self.end_field()?;
                            self.state = State::FieldStart;
                            i += 1;
                        }
                        b'\n' | b'\r' => {
                            if self.state == State::RecordStart {
                                self.stats.blank_lines += 1;
                                self.end_line(chunk[i]);
                            } else {
                                self.end_record(chunk[i], sink)?;
                            }
                            i += 1;
                            return Ok(self.after_record(chunk, i, n));
                        }
                        _ => self.state = State::Unquoted,
                    }
                }
                State::Unquoted => {
                    // Bulk-copy up to the next delimiter or line end.
                    let start = i;
                    while i < n && !self.ends_unquoted[usize::from(chunk[i])] {
                        i += 1;
                    }
                    self.push(&chunk[start..i])?;
                    if i < n {
                        let b = chunk[i];
                        i += 1;
                        if b == self.delimiter {
                            self.end_field()?;
                            self.state = State::FieldStart;
                        } else {
                            self.end_record(b, sink)?;
                            return Ok(self.after_record(chunk, i, n));
                        }
                    }
                }
                State::Quoted => {
                    let start = i;
                    while i < n && chunk[i] != b'"' {
                        if chunk[i] == b'\n' {
                            self.line += 1;
                        }
                        i += 1;
                    }
                    self.push(&chunk[start..i])?;
                    if i < n {
                        i += 1;
                        self.state = State::QuoteInQuoted;
                    }
                }
                State::QuoteInQuoted => match chunk[i] {
                    b'"' => {
                        self.push(b"\"")?;
                        self.state = State::Quoted;
                        i += 1;
                    }
                    b if b == self.delimiter => {
                        self.end_field()?;
                        self.state = State::FieldStart;
                        i += 1;
                    }
                    b'\n' | b'\r' => {
                        self.end_record(chunk[i], sink)?;
                        i += 1;
                        return Ok(self.after_record(chunk, i, n));
                    }
                    // Text after the closing quote joins the field (Python's csv does this).
                    _ => self.state = State::Unquoted,
                },
            }
        }
        Ok(i)
    }

    /// After a line end at `i - 1`: consumes the LF of a CRLF right away when it is in
    /// reach, so the next record can start on the fast path.
    #[inline]
    fn after_record(&mut self, chunk: &[u8], mut i: usize, stop: usize) -> usize {
        if self.after_cr && i < stop {
            self.after_cr = false;
            self.line += 1;
            if chunk[i] == b'\n' {
                i += 1;
            }
        }
        i
    }

    /// A line end outside quotes: closes the last field and hands the record out.
    fn end_record(&mut self, terminator: u8, sink: &mut impl RecordSink) -> Result<(), ScanError> {
        self.end_field()?;
        self.emit_record(sink)?;
        self.end_line(terminator);
        self.state = State::RecordStart;
        Ok(())
    }

    #[inline]
    fn end_line(&mut self, terminator: u8) {
        if terminator == b'\r' {
            self.after_cr = true;
        } else {
            self.line += 1;
        }
    }

    /// How many bytes the current record may have: the header has its own limit.
    #[inline]
    fn record_limit(&self) -> usize {
        if self.header_done {
            MAX_RECORD_BYTES
        } else {
            self.limits.max_header_bytes.min(MAX_RECORD_BYTES)
        }
    }

    #[inline]
    fn push(&mut self, bytes: &[u8]) -> Result<(), ScanError> {
        if self.buf.len() + bytes.len() > self.record_limit() {
            let message = if self.header_done {
                format!(
                    "record starting here is larger than {} MiB (is a closing quote missing?)",
                    MAX_RECORD_BYTES >> 20
                )
            } else {
                format!(
                    "the header is longer than {} bytes (raise [source] max_header_bytes in \
                     the pipeline file if it is right)",
                    self.limits.max_header_bytes
                )
            };
            return Err(ScanError {
                line: self.record_line,
                message,
            });
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    #[inline]
    fn end_field(&mut self) -> Result<(), ScanError> {
        if self.ends.len() >= self.limits.max_fields {
            return Err(ScanError {
                line: self.record_line,
                message: format!(
                    "record starting here has more than {} fields (raise [source] \
                     max_columns in the pipeline file if it is right; is the delimiter right?)",
                    self.limits.max_fields
                ),
            });
        }
        self.ends.push(self.buf.len());
        Ok(())
    }

    /// Hands out the record assembled in `buf` (scalar path).
    fn emit_record(&mut self, sink: &mut impl RecordSink) -> Result<(), ScanError> {
        if self.unchecked || !self.fast {
            // Field by field: `buf` holds the fields without their delimiters, so the
            // two halves of a character split by a delimiter would read as one.
            let mut start = 0;
            for &end in &self.ends {
                if let Err(e) = std::str::from_utf8(&self.buf[start..end]) {
                    let before = &self.buf[..start + e.valid_up_to()];
                    let newlines = before.iter().filter(|&&b| b == b'\n').count() as u64;
                    return Err(ScanError {
                        line: self.record_line + newlines,
                        message: "bytes that are not valid UTF-8 (re-encode the file as UTF-8)"
                            .to_string(),
                    });
                }
                start = end;
            }
        }
        self.header_done = true;
        sink.record(&Record {
            line: self.record_line,
            buf: &self.buf,
            ends: &self.ends,
            gap: 0,
            empty: count_empty(&self.ends),
        });
        self.buf.clear();
        self.ends.clear();
        self.unchecked = false;
        Ok(())
    }
}

/// Finds the structural bytes (the delimiter, `"`, LF, CR) of 64 input bytes at once, as
/// a bit mask.
mod structural {
    /// Bit `k` set when `region[base + k]` is `delimiter`, a quote or a line end; bits
    /// past the end of `region` are clear. `base < region.len()`.
    #[inline]
    pub fn mask(region: &[u8], base: usize, delimiter: u8) -> u64 {
        match region.get(base..base + 64) {
            Some(block) => block_mask(block, delimiter),
            None => tail_mask(region, base, |b| block_mask(b, delimiter)),
        }
    }

    /// As [`mask`], with AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    pub fn mask_avx2(region: &[u8], base: usize, delimiter: u8) -> u64 {
        match region.get(base..base + 64) {
            Some(block) => block_mask_avx2(block, delimiter),
            None => tail_mask(region, base, |b| block_mask_avx2(b, delimiter)),
        }
    }

    /// As [`mask`], with the portable classifier (tests run it on every target).
    #[cfg(test)]
    pub fn mask_portable(region: &[u8], base: usize, delimiter: u8) -> u64 {
        match region.get(base..base + 64) {
            Some(block) => block_mask_scalar(block, delimiter),
            None => tail_mask(region, base, |b| block_mask_scalar(b, delimiter)),
        }
    }

    /// The last, short block: copied into a zero-padded block; the padding's bits are
    /// cleared (a NUL delimiter would match it).
    #[inline(never)]
    fn tail_mask(region: &[u8], base: usize, f: impl Fn(&[u8]) -> u64) -> u64 {
        let rest = &region[base..];
        let mut block = [0u8; 64];
        block[..rest.len()].copy_from_slice(rest);
        f(&block) & ((1u64 << rest.len()) - 1)
    }

    /// Portable reference: one byte at a time.
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    pub fn block_mask_scalar(block: &[u8], delimiter: u8) -> u64 {
        block.iter().take(64).enumerate().fold(0u64, |m, (k, &b)| {
            m | (u64::from(b == delimiter || matches!(b, b'"' | b'\n' | b'\r')) << k)
        })
    }

    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    #[inline]
    fn block_mask(block: &[u8], delimiter: u8) -> u64 {
        block_mask_scalar(block, delimiter)
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[inline]
    pub fn block_mask(block: &[u8], delimiter: u8) -> u64 {
        // SAFETY: this is compiled only where SSE2 is statically enabled (the cfg above;
        // it is part of the x86_64 baseline), so every CPU that runs it has SSE2.
        unsafe { block_mask_sse2(block, delimiter) }
    }

    /// SSE2: four 16-byte compares per structural byte kind.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse2")]
    #[inline]
    fn block_mask_sse2(block: &[u8], delimiter: u8) -> u64 {
        use std::arch::x86_64::*;
        assert!(block.len() >= 64);
        let delim = _mm_set1_epi8(delimiter as i8);
        let quote = _mm_set1_epi8(b'"' as i8);
        let lf = _mm_set1_epi8(b'\n' as i8);
        let cr = _mm_set1_epi8(b'\r' as i8);
        let mut m = 0u64;
        for k in 0..4 {
            // SAFETY: `block` has at least 64 bytes (asserted), so the 16 bytes at
            // 16 * k are in bounds; `loadu` has no alignment requirement.
            let v = unsafe { _mm_loadu_si128(block.as_ptr().add(16 * k).cast()) };
            let hits = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, delim), _mm_cmpeq_epi8(v, quote)),
                _mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr)),
            );
            m |= u64::from(_mm_movemask_epi8(hits) as u16) << (16 * k);
        }
        m
    }

    /// AVX2: two 32-byte halves.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    pub fn block_mask_avx2(block: &[u8], delimiter: u8) -> u64 {
        use std::arch::x86_64::*;
        assert!(block.len() >= 64);
        let delim = _mm256_set1_epi8(delimiter as i8);
        let quote = _mm256_set1_epi8(b'"' as i8);
        let lf = _mm256_set1_epi8(b'\n' as i8);
        let cr = _mm256_set1_epi8(b'\r' as i8);
        let mut m = 0u64;
        for k in 0..2 {
            // SAFETY: `block` has at least 64 bytes (asserted), so the 32 bytes at
            // 32 * k are in bounds; `loadu` has no alignment requirement.
            let v = unsafe { _mm256_loadu_si256(block.as_ptr().add(32 * k).cast()) };
            let hits = _mm256_or_si256(
                _mm256_or_si256(_mm256_cmpeq_epi8(v, delim), _mm256_cmpeq_epi8(v, quote)),
                _mm256_or_si256(_mm256_cmpeq_epi8(v, lf), _mm256_cmpeq_epi8(v, cr)),
            );
            m |= u64::from(_mm256_movemask_epi8(hits) as u32) << (32 * k);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (start line, fields) per record.
    type Rows = Vec<(u64, Vec<String>)>;

    #[derive(Default)]
    struct Collect(Rows);
    impl RecordSink for Collect {
        fn record(&mut self, r: &Record<'_>) {
            self.0
                .push((r.line, r.fields().map(str::to_string).collect()));
        }
    }

    /// Scans `input` fed in chunks of every size from 1 to 7, checking all agree.
    fn scan(input: &[u8]) -> Result<(Rows, ScanStats), ScanError> {
        scan_with(b',', input)
    }

    #[test]
    fn lines_count_a_last_line_without_a_line_end() {
        for (input, lines) in [
            (&b""[..], 0),
            (b"a", 1),
            (b"a\n", 1),
            (b"a\r\nb", 2),
            (b"a\r\nb\r\n", 2),
            (b"a\rb\r", 2),
            (b"a\n\n\n", 3),
            (b"\xEF\xBB\xBFa,\"x\ny\"\n", 2),
        ] {
            let (_, stats) = scan(input).unwrap();
            assert_eq!(stats.lines, lines, "{input:?}");
        }
    }

    /// As [`scan`], with another delimiter.
    fn scan_with(delimiter: u8, input: &[u8]) -> Result<(Rows, ScanStats), ScanError> {
        let mut first = None;
        for size in 1..=7 {
            let mut s = CsvScanner::with_delimiter(delimiter).unwrap();
            let mut c = Collect::default();
            let mut res = Ok(());
            for chunk in input.chunks(size) {
                res = s.feed(chunk, &mut c);
                if res.is_err() {
                    break;
                }
            }
            let out = res.and_then(|_| s.finish(&mut c)).map(|st| (c.0, st));
            match &first {
                None => first = Some(out),
                Some(f) => assert_eq!(f, &out, "chunk size {size} disagrees"),
            }
        }
        first.unwrap_or_else(|| unreachable!())
    }

    fn rows(v: &Rows) -> Vec<Vec<&str>> {
        v.iter()
            .map(|(_, r)| r.iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn quoting_follows_python_csv() {
        let (recs, _) = scan(b"a,b\n\"x,y\",\"say \"\"hi\"\"\"\nab\"c,\"ab\"c\n,\n").unwrap();
        assert_eq!(
            rows(&recs),
            vec![
                vec!["a", "b"],
                vec!["x,y", "say \"hi\""],
                vec!["ab\"c", "abc"],
                vec!["", ""],
            ]
        );
    }

    #[test]
    fn crlf_bom_blank_lines_and_line_numbers() {
        let (recs, st) = scan(b"\xEF\xBB\xBFa,b\r\n1,2\r\n\r\n\r\n\"m\nn\",3\r\n4,5\n\n").unwrap();
        assert_eq!(
            rows(&recs),
            vec![
                vec!["a", "b"],
                vec!["1", "2"],
                vec!["m\nn", "3"],
                vec!["4", "5"]
            ]
        );
        assert_eq!(
            recs.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![1, 2, 5, 7]
        );
        assert_eq!(st.blank_lines, 3);
        assert!(st.had_bom);
    }

    #[test]
    fn lone_cr_ends_a_record_and_no_trailing_newline_is_fine() {
        let (recs, st) = scan(b"a\rb\r\rc").unwrap();
        assert_eq!(rows(&recs), vec![vec!["a"], vec!["b"], vec!["c"]]);
        assert_eq!(recs.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2, 4]);
        assert_eq!(st.blank_lines, 1);
    }

    #[test]
    fn unterminated_quote_names_the_line_it_opened_on() {
        let err = scan(b"a,b\n1,2\n3,\"open\nmore\nlines\n").unwrap_err();
        assert_eq!(err.line, 3);
    }

    #[test]
    fn invalid_utf8_names_its_line_even_inside_a_multiline_field() {
        let err = scan(b"a,b\n1,\"x\ny\xFFz\"\n").unwrap_err();
        assert_eq!(err.line, 3);
        let err = scan(b"a\n\xFF\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn empty_and_tiny_inputs() {
        assert!(scan(b"").unwrap().0.is_empty());
        assert_eq!(rows(&scan(b"x").unwrap().0), vec![vec!["x"]]);
        // Two bytes of a BOM and then the end: not UTF-8, reported on line 1.
        assert_eq!(scan(b"\xEF\xBB").unwrap_err().line, 1);
    }

    #[test]
    fn semicolon_delimiter_keeps_quoted_semicolons_and_literal_commas() {
        // As Python's csv.reader(..., delimiter=";") reads it; the comma is data also
        // right after a closing quote and at the start of a field.
        let input = b"name;note\n\"a;b\";1,5\nx,y;\"say \"\"hi\"\"; ok\"\n\"q\",r;,lead\n;\n";
        let (recs, _) = scan_with(b';', input).unwrap();
        assert_eq!(
            rows(&recs),
            vec![
                vec!["name", "note"],
                vec!["a;b", "1,5"],
                vec!["x,y", "say \"hi\"; ok"],
                vec!["q,r", ",lead"],
                vec!["", ""],
            ]
        );
    }

    #[test]
    fn with_delimiter_rejects_quote_line_ends_and_non_ascii() {
        for d in [b'"', b'\r', b'\n', 0x80, 0xC3, 0xFF] {
            match CsvScanner::with_delimiter(d) {
                Ok(_) => panic!("delimiter 0x{d:02X} was accepted"),
                Err(reason) => assert!(
                    reason.starts_with("the delimiter") && !reason.contains('\n'),
                    "{reason}"
                ),
            }
        }
        for d in [b',', b';', b'\t', b'|', b' ', 0] {
            assert!(CsvScanner::with_delimiter(d).is_ok(), "0x{d:02X}");
        }
    }

    use crate::test_rng::rng;

    /// What a scan produced, byte for byte: (start line, fields) per record, the stats,
    /// or the error.
    type Outcome = Result<(Vec<(u64, Vec<Vec<u8>>)>, ScanStats), ScanError>;

    #[derive(Default)]
    struct CollectBytes(Vec<(u64, Vec<Vec<u8>>)>);
    impl RecordSink for CollectBytes {
        fn record(&mut self, r: &Record<'_>) {
            // The counters must agree with the fields, whichever path built the record.
            let empty = (0..r.len())
                .filter(|&i| r.field_bytes(i).is_empty())
                .count();
            assert_eq!(r.empty_fields(), empty as u64);
            self.0.push((
                r.line,
                (0..r.len()).map(|i| r.field_bytes(i).to_vec()).collect(),
            ));
        }
    }

    fn run(mut scanner: CsvScanner, chunks: &[&[u8]]) -> Outcome {
        let mut c = CollectBytes::default();
        for chunk in chunks {
            scanner.feed(chunk, &mut c)?;
        }
        let stats = scanner.finish(&mut c)?;
        Ok((c.0, stats))
    }

    /// The delimiters the property tests run with: the default, and the usual others.
    const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

    fn scanner(delimiter: u8) -> CsvScanner {
        CsvScanner::with_delimiter(delimiter).unwrap()
    }

    /// Random CSV-ish bytes separated by `delimiter`: mostly short fields, with quotes,
    /// CR, LF, CRLF, multi-byte characters, the other delimiters as data, the odd invalid
    /// byte and BOM, so that every structural byte lands on every offset of a
    /// 16/32/64-byte block sooner or later.
    fn random_input(next: &mut impl FnMut() -> u64, delimiter: u8) -> Vec<u8> {
        let delimiter = [delimiter];
        let len = (next() % 300) as usize;
        let invalid = next().is_multiple_of(4);
        let mut v = Vec::with_capacity(len + 8);
        if next().is_multiple_of(8) {
            v.extend_from_slice(BOM);
        }
        while v.len() < len {
            let piece: &[u8] = match next() % 40 {
                0..=11 => b"a",
                12..=17 => b"12.5",
                18..=23 => &delimiter,
                24..=26 => b"\n",
                27 => b"\r\n",
                28 => b"\r",
                29..=30 => b"\"",
                31 => b"\"\"",
                32 => "é".as_bytes(),
                33 => "漢".as_bytes(),
                34 => b"\n\n",
                35 if invalid => b"\xFF",
                36 if invalid => b"\xC3",
                37 if invalid => b"\xA9",
                // Data, but for the one that is the delimiter.
                38 => b",;\t|",
                _ => b"xyz0123456789",
            };
            v.extend_from_slice(piece);
        }
        v
    }

    #[test]
    fn fast_path_matches_scalar_path_on_random_inputs() {
        for delimiter in DELIMITERS {
            fast_path_matches_scalar_path_with(delimiter);
        }
    }

    fn fast_path_matches_scalar_path_with(delimiter: u8) {
        let mut next = rng(42 + u64::from(delimiter));
        // Both paths could share a mistake, so inputs without quotes are also checked
        // against plain splitting; these must include records of several fields and
        // (with another delimiter) fields holding commas.
        let (mut checked, mut multi_field, mut comma_in_field) = (0, 0, 0);
        // 10,000 inputs per delimiter (4x as many in all), each cut many ways.
        for _ in 0..10_000 {
            let input = random_input(&mut next, delimiter);
            let want = run(scanner(delimiter).scalar_only(), &[&input]);
            if let (Ok((records, _)), false) = (&want, input.contains(&b'"')) {
                let fields: Vec<&Vec<Vec<u8>>> = records.iter().map(|(_, f)| f).collect();
                let split = split_quote_free(&input, delimiter);
                assert_eq!(
                    fields,
                    split.iter().collect::<Vec<_>>(),
                    "delimiter {:?}, input {:?}",
                    char::from(delimiter),
                    String::from_utf8_lossy(&input)
                );
                checked += 1;
                for f in fields {
                    multi_field += usize::from(f.len() > 1);
                    comma_in_field += f.iter().filter(|f| f.contains(&b',')).count();
                }
            }
            // Whole, fixed chunk sizes around the block widths, and random splits.
            let mut splits: Vec<Vec<usize>> = vec![vec![]];
            for size in [1, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65] {
                splits.push((size..input.len()).step_by(size).collect());
            }
            let mut cuts: Vec<usize> = (0..3)
                .map(|_| (next() % (input.len() as u64 + 1)) as usize)
                .collect();
            cuts.sort_unstable();
            splits.push(cuts);
            for cuts in splits {
                let mut chunks = Vec::new();
                let mut at = 0;
                for &c in &cuts {
                    chunks.push(&input[at..c]);
                    at = c;
                }
                chunks.push(&input[at..]);
                for scanner in [scanner(delimiter), scanner(delimiter).portable()] {
                    assert_eq!(
                        run(scanner, &chunks),
                        want,
                        "delimiter {:?}, input {:?} cut at {cuts:?}",
                        char::from(delimiter),
                        String::from_utf8_lossy(&input)
                    );
                }
            }
        }
        assert!(checked > 500, "{checked} quote-free inputs");
        assert!(
            multi_field > 500,
            "{multi_field} records with several fields"
        );
        if delimiter != b',' {
            assert!(comma_in_field > 100, "{comma_in_field} fields with a comma");
        }
    }

    /// The records of an input without quotes, the obvious way: strip a BOM, split at
    /// CRLF, CR or LF, drop empty lines, split each line at the delimiter.
    fn split_quote_free(input: &[u8], delimiter: u8) -> Vec<Vec<Vec<u8>>> {
        let input = input.strip_prefix(BOM).unwrap_or(input);
        let mut lines = vec![Vec::new()];
        let mut bytes = input.iter().peekable();
        while let Some(&b) = bytes.next() {
            match b {
                b'\r' | b'\n' => {
                    if b == b'\r' {
                        bytes.next_if_eq(&&b'\n');
                    }
                    lines.push(Vec::new());
                }
                _ => lines.last_mut().unwrap().push(b),
            }
        }
        lines
            .into_iter()
            .filter(|l| !l.is_empty())
            .map(|l| l.split(|&b| b == delimiter).map(<[u8]>::to_vec).collect())
            .collect()
    }

    #[test]
    fn fast_path_takes_long_quote_free_records() {
        // Delimiters and line ends at every offset of a 64-byte block, and rows longer
        // than a block: the fast path must agree with the scalar path.
        for d in DELIMITERS {
            let mut input = [&b"h1"[..], &[d], b"h2", &[d], b"h3\n"].concat();
            for row in 0..200 {
                let w = row % 70;
                input.extend_from_slice(&vec![b'x'; w]);
                input.extend_from_slice(&[d, d][..1 + usize::from(row.is_multiple_of(3))]);
                input.extend_from_slice(&vec![b'7'; 130 - w]);
                input.extend_from_slice(if row.is_multiple_of(5) {
                    b"\r\n"
                } else {
                    b"\n"
                });
            }
            let want = run(scanner(d).scalar_only(), &[&input]);
            assert_eq!(want.as_ref().map(|(r, _)| r.len()), Ok(201));
            // Header, row 0 (`x`s, two delimiters), row 1 (one delimiter).
            let widths = want
                .as_ref()
                .map(|(r, _)| [r[0].1.len(), r[1].1.len(), r[2].1.len()]);
            assert_eq!(widths, Ok([3, 3, 2]));
            for size in [64, 100, 4096, input.len()] {
                let chunks: Vec<&[u8]> = input.chunks(size).collect();
                assert_eq!(
                    run(scanner(d), &chunks),
                    want,
                    "delimiter {:?}, chunks of {size}",
                    char::from(d)
                );
            }
        }
    }

    #[test]
    fn invalid_utf8_across_a_delimiter_is_reported_as_before() {
        // The fields' bytes are checked as the scalar path always did; the fast path
        // must not change which inputs are accepted.
        for input in [
            &b"a,b\n\xC3,\xA9\n"[..],
            b"a\n\xC3\xA9\n\xC3\n",
            b"a\n\xA9\n",
        ] {
            assert_eq!(
                run(CsvScanner::new(), &[input]),
                run(CsvScanner::new().scalar_only(), &[input])
            );
        }
    }

    #[test]
    fn block_classifiers_agree_with_the_scalar_one() {
        let mut next = rng(3);
        let alphabet = b",;\t|\"\n\rab\xC3\x00\xFF";
        for _ in 0..20_000 {
            let len = 1 + (next() % 130) as usize;
            let region: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let base = (next() % len as u64) as usize;
            let end = (base + 64).min(len);
            // NUL too: it is what pads the last, short block.
            for d in DELIMITERS.into_iter().chain([0]) {
                let want = structural::block_mask_scalar(&region[base..end], d);
                assert_eq!(structural::mask(&region, base, d), want);
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 is present (checked just above).
                    assert_eq!(unsafe { structural::mask_avx2(&region, base, d) }, want);
                }
            }
        }
    }

    /// Throughput of the whole scanner (fast and scalar path) on ~200 MB of generated
    /// CSV in 256 KiB chunks, per delimiter; a measurement, not a check. Run it with
    /// `cargo test --release --lib csv_scan::tests::throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "benchmark: run in release mode by hand"]
    fn throughput() {
        struct Count(u64);
        impl RecordSink for Count {
            fn record(&mut self, r: &Record<'_>) {
                self.0 += std::hint::black_box(r).len() as u64;
            }
        }
        for delimiter in [b',', b';', b'\t'] {
            let input = bench_input(delimiter, 200 << 20);
            let mut best = f64::INFINITY;
            let mut fields = 0;
            for _ in 0..7 {
                let t = std::time::Instant::now();
                let mut scanner = CsvScanner::with_delimiter(delimiter).unwrap();
                let mut sink = Count(0);
                for chunk in input.chunks(256 << 10) {
                    scanner.feed(chunk, &mut sink).unwrap();
                }
                scanner.finish(&mut sink).unwrap();
                best = best.min(t.elapsed().as_secs_f64());
                fields = sink.0;
            }
            println!(
                "delimiter {:?}: {} MB, {fields} fields, best of 7: {:.0} MB/s",
                char::from(delimiter),
                input.len() >> 20,
                input.len() as f64 / 1e6 / best
            );
        }
    }

    /// About `len` bytes of rows like `1234,name7,0.5,,2024-01-05,x` (every 50th row has
    /// a quoted field, so the scalar path takes a share too).
    fn bench_input(delimiter: u8, len: usize) -> Vec<u8> {
        let mut next = rng(7);
        let mut v = Vec::with_capacity(len + 128);
        let mut row = 0u64;
        while v.len() < len {
            let r = next();
            let d = char::from(delimiter);
            let name = if row.is_multiple_of(50) {
                format!("\"n{d}{}\"", r % 1000)
            } else {
                format!("name{}", r % 1000)
            };
            let empty = if r.is_multiple_of(7) { "" } else { "x" };
            let line = format!(
                "{}{d}{name}{d}{}.{}{d}{empty}{d}2024-01-{:02}{d}{}\n",
                r % 100_000,
                (r >> 20) % 1000,
                (r >> 30) % 100,
                (r >> 40) % 28 + 1,
                (r >> 45) % 1_000_000
            );
            v.extend_from_slice(line.as_bytes());
            row += 1;
        }
        v
    }
}
