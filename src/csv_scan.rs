//! A push-style, streaming RFC 4180 scanner that is fed arbitrary byte chunks.
//!
//! Why not the `csv` crate for reading: DESIGN.md needs three things it cannot give
//! us: a quoted field still open at the end of the input must be an error naming the
//! line where it opened, blank lines must be counted (not silently dropped), and bytes
//! arrive as async chunks. The quoting rules follow Python's `csv` module (the seed):
//! a quote opens a quoted field only at the start of a field, `""` inside quotes is a
//! quote, text after a closing quote is appended, a quote inside an unquoted field is
//! data, and CR, LF or CRLF end a record.
//!
//! Memory: one record at a time. A record larger than [`MAX_RECORD_BYTES`] is an error,
//! so an unterminated quote early in a 10 GB file cannot pull the rest into memory.

/// Upper bound on one record's size; larger records are rejected as malformed.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// One record: its fields as byte slices into a reused buffer (no allocation per cell).
pub struct Record<'a> {
    /// 1-based line on which the record starts.
    pub line: u64,
    buf: &'a [u8],
    ends: &'a [usize],
}

impl<'a> Record<'a> {
    /// Number of fields (cells) in the record.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True for a record with no fields (never produced: blank lines are not records).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `i` as UTF-8; the whole record was validated before it was handed out.
    pub fn field(&self, i: usize) -> &'a str {
        // Validated in `emit_record`; the fallback is unreachable but never panics.
        std::str::from_utf8(self.field_bytes(i)).unwrap_or_default()
    }

    /// Field `i` as raw bytes (valid UTF-8: the record was validated).
    #[inline]
    pub fn field_bytes(&self, i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }

    /// How many fields are empty strings (the seed's null cells), without decoding them.
    pub fn empty_fields(&self) -> u64 {
        let mut start = 0;
        let mut empty = 0;
        for &end in self.ends {
            empty += u64::from(end == start);
            start = end;
        }
        empty
    }

    /// All fields in order.
    pub fn fields(&self) -> impl DoubleEndedIterator<Item = &'a str> + ExactSizeIterator + '_ {
        (0..self.len()).map(move |i| self.field(i))
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

/// Bytes that end an unquoted field: one table lookup per byte in the hot loop.
static ENDS_UNQUOTED: [bool; 256] = {
    let mut t = [false; 256];
    t[b',' as usize] = true;
    t[b'\n' as usize] = true;
    t[b'\r' as usize] = true;
    t
};

/// The streaming scanner; feed it chunks, then call [`CsvScanner::finish`].
pub struct CsvScanner {
    state: State,
    /// Line of the byte being processed (1-based).
    line: u64,
    record_line: u64,
    quote_line: u64,
    /// A CR ended the last record; a following LF belongs to it.
    after_cr: bool,
    /// First bytes held back until we know whether they are a BOM.
    head: Vec<u8>,
    head_done: bool,
    buf: Vec<u8>,
    ends: Vec<usize>,
    stats: ScanStats,
}

impl Default for CsvScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvScanner {
    pub fn new() -> Self {
        CsvScanner {
            state: State::RecordStart,
            line: 1,
            record_line: 1,
            quote_line: 1,
            after_cr: false,
            head: Vec::with_capacity(3),
            head_done: false,
            buf: Vec::with_capacity(4096),
            ends: Vec::with_capacity(64),
            stats: ScanStats::default(),
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
                self.end_field();
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

    fn scan(&mut self, chunk: &[u8], sink: &mut impl RecordSink) -> Result<(), ScanError> {
        let mut i = 0;
        let n = chunk.len();
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
                        b',' => {
                            self.end_field();
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
                        }
                        _ => self.state = State::Unquoted,
                    }
                }
                State::Unquoted => {
                    // Bulk-copy up to the next delimiter or line end.
                    let start = i;
                    while i < n && !ENDS_UNQUOTED[usize::from(chunk[i])] {
                        i += 1;
                    }
                    self.push(&chunk[start..i])?;
                    if i < n {
                        let b = chunk[i];
                        i += 1;
                        if b == b',' {
                            self.end_field();
                            self.state = State::FieldStart;
                        } else {
                            self.end_record(b, sink)?;
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
                    b',' => {
                        self.end_field();
                        self.state = State::FieldStart;
                        i += 1;
                    }
                    b'\n' | b'\r' => {
                        self.end_record(chunk[i], sink)?;
                        i += 1;
                    }
                    // Text after the closing quote joins the field (Python's csv does this).
                    _ => self.state = State::Unquoted,
                },
            }
        }
        Ok(())
    }

    /// A line end outside quotes: closes the last field and hands the record out.
    fn end_record(&mut self, terminator: u8, sink: &mut impl RecordSink) -> Result<(), ScanError> {
        self.end_field();
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

    #[inline]
    fn push(&mut self, bytes: &[u8]) -> Result<(), ScanError> {
        if self.buf.len() + bytes.len() > MAX_RECORD_BYTES {
            return Err(ScanError {
                line: self.record_line,
                message: format!(
                    "record starting here is larger than {} MiB (is a closing quote missing?)",
                    MAX_RECORD_BYTES >> 20
                ),
            });
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    #[inline]
    fn end_field(&mut self) {
        self.ends.push(self.buf.len());
    }

    fn emit_record(&mut self, sink: &mut impl RecordSink) -> Result<(), ScanError> {
        if let Err(e) = std::str::from_utf8(&self.buf) {
            let before = &self.buf[..e.valid_up_to()];
            let newlines = before.iter().filter(|&&b| b == b'\n').count() as u64;
            return Err(ScanError {
                line: self.record_line + newlines,
                message: "bytes that are not valid UTF-8 (re-encode the file as UTF-8)".to_string(),
            });
        }
        sink.record(&Record {
            line: self.record_line,
            buf: &self.buf,
            ends: &self.ends,
        });
        self.buf.clear();
        self.ends.clear();
        Ok(())
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
        let mut first = None;
        for size in 1..=7 {
            let mut s = CsvScanner::new();
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
}
