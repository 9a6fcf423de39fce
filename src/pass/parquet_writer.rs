//! `feature.parquet`, written on the feature thread beside `feature.csv`, from the same row
//! batches: what a feature store (Feast's file source reads only Parquet) and training
//! jobs load.
//!
//! Column types follow the feature schema: floats are `DOUBLE`, integers `INT64`, strings
//! `BYTE_ARRAY` (UTF-8), booleans `BOOLEAN`, timestamps `INT64` `TIMESTAMP(MICROS, UTC)`.
//! A feature set without a timestamp column gets an `event_timestamp` column holding the
//! execution date: a feature store needs an event time on every row. Every column is
//! `OPTIONAL`; a null is what an empty cell is in `feature.csv`, except for entity-grain
//! group keys, where the empty key is a group of its own (`""`, not null).
//!
//! Memory is flat in the input size: values are encoded and compressed (zstd) page by page
//! as batches arrive, each column into its own in-memory chunk, and a row group is closed
//! (its chunks spliced into the file and streamed out in 1 MiB blocks) once it holds
//! [`ROW_GROUP_ROWS`] rows or about [`ROW_GROUP_BYTES`] bytes of values. So at most one
//! row group's compressed chunks are held, whatever the number of rows.
//!
//! Deterministic: the same rows give the same bytes (no wall clock, no random ids, no
//! hash-map order in the file), so a re-run publishes a byte-identical file.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use parquet::basic::{
    Compression, LogicalType, Repetition, TimeUnit, TimestampType, Type as Physical, ZstdLevel,
};
use parquet::column::page::{CompressedPage, PageWriteSpec, PageWriter};
use parquet::column::writer::{get_column_writer, ColumnCloseResult, ColumnWriter};
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor, Type};

use super::batch::{text_at, BatchColumn, RowBatch};
pub use crate::config::spec::EVENT_TIMESTAMP;
use crate::config::spec::{parquet_columns_conflict, ColumnType};
use crate::error::{Error, Result};
use crate::values::timestamp::epoch_micros;

/// A row group is closed at this many rows: about 8 MiB of doubles per float column, a
/// size Parquet readers handle well, and small enough to hold compressed in memory.
pub const ROW_GROUP_ROWS: usize = 1 << 20;
/// ... or once this many bytes of values (text bytes, 8 per number) went into it, so long
/// texts cannot make a row group (and memory) large.
pub const ROW_GROUP_BYTES: usize = 64 << 20;
/// zstd level 1: most of the size gain of higher levels at a fraction of the CPU (the
/// feature thread must not become the pass's bottleneck).
const ZSTD_LEVEL: i32 = 1;

/// The columns of `feature.parquet`, decided before the pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ParquetLayout {
    columns: Vec<ParquetColumn>,
    /// The event time every row gets when the feature set has no timestamp column
    /// (microseconds since the epoch): the last column, [`EVENT_TIMESTAMP`].
    event_timestamp: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
struct ParquetColumn {
    name: String,
    ty: ColumnType,
    /// An empty text is the value `""`, not a null (entity-grain group keys).
    empty_is_value: bool,
}

impl ParquetLayout {
    /// The layout for output columns (in CSV order). `empty_is_value` names the string
    /// columns whose empty cell is a value; `execution_micros` is the event time of a
    /// feature set without a timestamp column. Fails when such a feature set already has
    /// a column named [`EVENT_TIMESTAMP`].
    pub fn new(
        columns: &[(String, ColumnType)],
        empty_is_value: &[String],
        execution_micros: i64,
    ) -> std::result::Result<Self, String> {
        if let Some(conflict) = parquet_columns_conflict(columns) {
            return Err(conflict);
        }
        let has_time = columns.iter().any(|(_, ty)| *ty == ColumnType::Timestamp);
        Ok(ParquetLayout {
            columns: columns
                .iter()
                .map(|(name, ty)| ParquetColumn {
                    name: name.clone(),
                    ty: *ty,
                    empty_is_value: *ty == ColumnType::String && empty_is_value.contains(name),
                })
                .collect(),
            event_timestamp: (!has_time).then_some(execution_micros),
        })
    }

    /// The column a feature store reads as each row's event time: the first timestamp
    /// column, else the added [`EVENT_TIMESTAMP`].
    pub fn timestamp_field(&self) -> &str {
        self.columns
            .iter()
            .find(|c| c.ty == ColumnType::Timestamp)
            .map_or(EVENT_TIMESTAMP, |c| c.name.as_str())
    }

    /// Every column of the file with its Parquet type, in file order (for `schema.json`).
    pub fn describe(&self) -> Vec<(String, &'static str)> {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), parquet_type_name(c.ty)))
            .chain(self.event_timestamp.map(|_| {
                (
                    EVENT_TIMESTAMP.to_string(),
                    parquet_type_name(ColumnType::Timestamp),
                )
            }))
            .collect()
    }

    fn schema(&self) -> Result<Type> {
        let mut fields: Vec<Arc<Type>> = self
            .columns
            .iter()
            .map(|c| field(&c.name, c.ty))
            .collect::<Result<_>>()?;
        if self.event_timestamp.is_some() {
            fields.push(field(EVENT_TIMESTAMP, ColumnType::Timestamp)?);
        }
        Type::group_type_builder("schema")
            .with_fields(fields)
            .build()
            .map_err(internal)
    }
}

/// How `schema.json` names a column's Parquet type.
fn parquet_type_name(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Float => "DOUBLE",
        ColumnType::Integer => "INT64",
        ColumnType::String => "STRING",
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::Timestamp => "TIMESTAMP(MICROS,UTC)",
    }
}

fn field(name: &str, ty: ColumnType) -> Result<Arc<Type>> {
    let (physical, logical) = match ty {
        ColumnType::Float => (Physical::DOUBLE, None),
        ColumnType::Integer => (Physical::INT64, None),
        ColumnType::String => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
        ColumnType::Boolean => (Physical::BOOLEAN, None),
        ColumnType::Timestamp => (
            Physical::INT64,
            Some(LogicalType::Timestamp(TimestampType {
                is_adjusted_to_u_t_c: true,
                unit: TimeUnit::MICROS,
            })),
        ),
    };
    Type::primitive_type_builder(name, physical)
        .with_repetition(Repetition::OPTIONAL)
        .with_logical_type(logical)
        .build()
        .map(Arc::new)
        .map_err(internal)
}

fn internal(e: ParquetError) -> Error {
    Error::Internal(format!("cannot write feature.parquet: {e}"))
}

/// Writer settings: zstd, dictionaries only for strings (numbers rarely repeat enough to
/// pay for them, and trying costs CPU), statistics per column chunk, and a fixed
/// `created_by` so the bytes depend only on the rows.
fn properties(layout: &ParquetLayout) -> Result<WriterPropertiesPtr> {
    let level = ZstdLevel::try_new(ZSTD_LEVEL).map_err(internal)?;
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_created_by(format!(
            "{} {} (parquet-rs)",
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION")
        ));
    for c in &layout.columns {
        if c.ty == ColumnType::String {
            let path = parquet::schema::types::ColumnPath::from(c.name.as_str());
            builder = builder.set_column_dictionary_enabled(path, true);
        }
    }
    Ok(Arc::new(builder.build()))
}

/// One column's chunk of the open row group: its pages, serialized as they are completed.
type Chunk = Arc<Mutex<TrackedWrite<Vec<u8>>>>;

/// Pages of one column go into its in-memory chunk (a row group's columns must each be
/// contiguous in the file, while batches bring all columns at once).
struct ChunkPages(Chunk);

impl PageWriter for ChunkPages {
    fn write_page(&mut self, page: CompressedPage) -> parquet::errors::Result<PageWriteSpec> {
        let mut sink = self
            .0
            .lock()
            .map_err(|_| ParquetError::General("a column chunk's lock was poisoned".into()))?;
        SerializedPageWriter::new(&mut sink).write_page(page)
    }

    fn close(&mut self) -> parquet::errors::Result<()> {
        Ok(())
    }
}

/// The row group being written: one open column writer and chunk per column.
struct OpenGroup {
    writers: Vec<ColumnWriter<'static>>,
    chunks: Vec<Chunk>,
    rows: usize,
    value_bytes: usize,
}

/// Writes row batches as `feature.parquet` into `W` (on the feature thread, an
/// [`Output`](super::feature_writer::Output): hashed, sent in blocks).
pub struct ParquetWriter<W: Write + Send> {
    layout: ParquetLayout,
    file: SerializedFileWriter<W>,
    /// [`ROW_GROUP_ROWS`] (tests make it small).
    group_rows: usize,
    props: WriterPropertiesPtr,
    descriptors: Vec<ColumnDescPtr>,
    group: Option<OpenGroup>,
    rows: u64,
    scratch: Scratch,
}

/// Buffers reused from batch to batch.
#[derive(Default)]
struct Scratch {
    defs: Vec<i16>,
    floats: Vec<f64>,
    ints: Vec<i64>,
    bools: Vec<bool>,
    texts: Vec<ByteArray>,
}

impl<W: Write + Send> ParquetWriter<W> {
    pub fn new(layout: ParquetLayout, out: W) -> Result<Self> {
        let schema = Arc::new(layout.schema()?);
        let props = properties(&layout)?;
        let descriptors = SchemaDescriptor::new(schema.clone()).columns().to_vec();
        let file = SerializedFileWriter::new(out, schema, props.clone()).map_err(internal)?;
        Ok(ParquetWriter {
            layout,
            file,
            props,
            descriptors,
            group_rows: ROW_GROUP_ROWS,
            group: None,
            rows: 0,
            scratch: Scratch::default(),
        })
    }

    /// Appends a batch's rows; closes the row group once it is full.
    pub fn write_batch(&mut self, batch: &RowBatch) -> Result<()> {
        let rows = batch.len();
        if rows == 0 {
            return Ok(());
        }
        let group = match self.group.take() {
            Some(group) => group,
            None => self.open_group(),
        };
        let mut group = group;
        let mut bytes = 0;
        for (i, column) in batch.columns().iter().enumerate() {
            let spec = &self.layout.columns[i];
            bytes += write_column(&mut group.writers[i], spec, column, rows, &mut self.scratch)?;
        }
        if let Some(micros) = self.layout.event_timestamp {
            let s = &mut self.scratch;
            s.ints.clear();
            s.ints.resize(rows, micros);
            s.defs.clear();
            s.defs.resize(rows, 1);
            let last = group.writers.len() - 1;
            if let ColumnWriter::Int64ColumnWriter(w) = &mut group.writers[last] {
                w.write_batch(&s.ints, Some(&s.defs), None)
                    .map_err(internal)?;
            }
            bytes += 8 * rows;
        }
        group.rows += rows;
        group.value_bytes += bytes;
        self.rows += rows as u64;
        if group.rows >= self.group_rows || group.value_bytes >= ROW_GROUP_BYTES {
            self.close_group(group)
        } else {
            self.group = Some(group);
            Ok(())
        }
    }

    fn open_group(&self) -> OpenGroup {
        let chunks: Vec<Chunk> = self
            .descriptors
            .iter()
            .map(|_| Arc::new(Mutex::new(TrackedWrite::new(Vec::new()))))
            .collect();
        let writers = self
            .descriptors
            .iter()
            .zip(&chunks)
            .map(|(descr, chunk)| {
                let pages: Box<dyn PageWriter> = Box::new(ChunkPages(chunk.clone()));
                get_column_writer(descr.clone(), self.props.clone(), pages)
            })
            .collect();
        OpenGroup {
            writers,
            chunks,
            rows: 0,
            value_bytes: 0,
        }
    }

    /// Finishes the row group's column chunks and splices them into the file, in schema
    /// order.
    fn close_group(&mut self, group: OpenGroup) -> Result<()> {
        let closed: Vec<ColumnCloseResult> = group
            .writers
            .into_iter()
            .map(|w| w.close().map_err(internal))
            .collect::<Result<_>>()?;
        let mut row_group = self.file.next_row_group().map_err(internal)?;
        for (close, chunk) in closed.into_iter().zip(group.chunks) {
            let pages = {
                let mut sink = chunk
                    .lock()
                    .map_err(|_| Error::Internal("a column chunk's lock was poisoned".into()))?;
                std::mem::replace(&mut *sink, TrackedWrite::new(Vec::new()))
            };
            let bytes = Bytes::from(pages.into_inner().map_err(internal)?);
            row_group.append_column(&bytes, close).map_err(internal)?;
        }
        row_group.close().map_err(internal)?;
        Ok(())
    }

    /// Closes the last row group and writes the footer; returns the rows written and the
    /// output (to finish: flush, size and digest).
    pub fn finish(mut self) -> Result<(u64, W)> {
        if let Some(group) = self.group.take() {
            self.close_group(group)?;
        }
        let out = self.file.into_inner().map_err(internal)?;
        Ok((self.rows, out))
    }
}

/// Writes one batch column into its column writer; returns about how many bytes of
/// values it held.
fn write_column(
    writer: &mut ColumnWriter<'static>,
    spec: &ParquetColumn,
    column: &BatchColumn,
    rows: usize,
    s: &mut Scratch,
) -> Result<usize> {
    s.defs.clear();
    match (writer, column) {
        (ColumnWriter::DoubleColumnWriter(w), BatchColumn::Float(values)) => {
            s.floats.clear();
            for v in values {
                s.defs.push(i16::from(v.is_some()));
                if let Some(v) = v {
                    s.floats.push(*v);
                }
            }
            w.write_batch(&s.floats, Some(&s.defs), None)
                .map_err(internal)?;
            Ok(8 * rows)
        }
        (ColumnWriter::Int64ColumnWriter(w), BatchColumn::Integer(values)) => {
            s.ints.clear();
            for v in values {
                s.defs.push(i16::from(v.is_some()));
                if let Some(v) = v {
                    s.ints.push(*v);
                }
            }
            w.write_batch(&s.ints, Some(&s.defs), None)
                .map_err(internal)?;
            Ok(8 * rows)
        }
        (ColumnWriter::ByteArrayColumnWriter(w), BatchColumn::Text { bytes, ends }) => {
            // One copy of the batch's text; each value is a slice of it (no allocation
            // per cell).
            let shared = Bytes::copy_from_slice(bytes);
            s.texts.clear();
            let mut start = 0;
            for &end in ends {
                let present = end > start || spec.empty_is_value;
                s.defs.push(i16::from(present));
                if present {
                    s.texts.push(ByteArray::from(shared.slice(start..end)));
                }
                start = end;
            }
            w.write_batch(&s.texts, Some(&s.defs), None)
                .map_err(internal)?;
            Ok(bytes.len() + rows)
        }
        (ColumnWriter::BoolColumnWriter(w), BatchColumn::Text { bytes, ends }) => {
            s.bools.clear();
            for row in 0..ends.len() {
                let v = match text_at(bytes, ends, row) {
                    b"true" => Some(true),
                    b"false" => Some(false),
                    _ => None,
                };
                s.defs.push(i16::from(v.is_some()));
                if let Some(v) = v {
                    s.bools.push(v);
                }
            }
            w.write_batch(&s.bools, Some(&s.defs), None)
                .map_err(internal)?;
            Ok(rows)
        }
        (ColumnWriter::Int64ColumnWriter(w), BatchColumn::Text { bytes, ends }) => {
            // Timestamps: the canonical text the scanner thread wrote, read back.
            s.ints.clear();
            for row in 0..ends.len() {
                let v = epoch_micros(text_at(bytes, ends, row));
                s.defs.push(i16::from(v.is_some()));
                if let Some(v) = v {
                    s.ints.push(v);
                }
            }
            w.write_batch(&s.ints, Some(&s.defs), None)
                .map_err(internal)?;
            Ok(8 * rows)
        }
        _ => Err(Error::Internal(format!(
            "feature.parquet: column {:?} of type {} got values of another type",
            spec.name,
            spec.ty.as_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    fn cols(spec: &[(&str, ColumnType)]) -> Vec<(String, ColumnType)> {
        spec.iter().map(|(n, t)| (n.to_string(), *t)).collect()
    }

    /// One batch per `rows` chunk of `per_batch` rows.
    type RowFn = dyn Fn(usize, &mut RowBatch);

    fn write(
        layout: ParquetLayout,
        types: &[ColumnType],
        rows: usize,
        per_batch: usize,
        group_rows: usize,
        row: &RowFn,
    ) -> Vec<u8> {
        let mut w = ParquetWriter::new(layout, Vec::new()).unwrap();
        w.group_rows = group_rows;
        let mut done = 0;
        while done < rows {
            let mut batch = RowBatch::new(types);
            for r in done..(done + per_batch).min(rows) {
                row(r, &mut batch);
                batch.end_row();
            }
            done += batch.len();
            w.write_batch(&batch).unwrap();
        }
        let (written, bytes) = w.finish().unwrap();
        assert_eq!(written, rows as u64);
        bytes
    }

    fn read(bytes: Vec<u8>) -> (SerializedFileReader<Bytes>, Vec<Vec<(String, Field)>>) {
        let reader = SerializedFileReader::new(Bytes::from(bytes)).unwrap();
        let rows = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| {
                r.unwrap()
                    .get_column_iter()
                    .map(|(n, f)| (n.clone(), f.clone()))
                    .collect()
            })
            .collect();
        (reader, rows)
    }

    #[test]
    fn every_column_type_reads_back_with_its_logical_type_and_nulls() {
        let columns = cols(&[
            ("user_id", ColumnType::String),
            ("note", ColumnType::String),
            ("amount", ColumnType::Float),
            ("qty", ColumnType::Integer),
            ("premium", ColumnType::Boolean),
            ("at", ColumnType::Timestamp),
        ]);
        let types: Vec<ColumnType> = columns.iter().map(|(_, t)| *t).collect();
        let layout = ParquetLayout::new(&columns, &["user_id".to_string()], 0).unwrap();
        assert_eq!(layout.timestamp_field(), "at");
        let bytes = write(layout, &types, 3, 8192, ROW_GROUP_ROWS, &|r, b| match r {
            0 => {
                b.push_text(0, b"1390");
                b.push_text(1, b"caf\xc3\xa9, \"x\"");
                b.push_float(2, Some(1.5));
                b.push_integer(3, Some(-7));
                b.push_text(4, b"true");
                b.push_text(5, b"2025-11-19T00:03:04.250+09:00");
            }
            1 => {
                b.push_text(0, b"");
                b.push_text(1, b"");
                b.push_float(2, Some(f64::NAN));
                b.push_integer(3, None);
                b.push_text(4, b"false");
                b.push_text(5, b"");
            }
            _ => {
                b.push_text(0, b"7");
                b.push_text(1, b"n");
                b.push_float(2, None);
                b.push_integer(3, Some(i64::MAX));
                b.push_text(4, b"");
                b.push_text(5, b"1970-01-01T00:00:00Z");
            }
        });
        let (reader, rows) = read(bytes);
        let schema = reader.metadata().file_metadata().schema_descr();
        let logical: Vec<String> = schema
            .columns()
            .iter()
            .map(|c| {
                format!(
                    "{} {:?} {:?}",
                    c.name(),
                    c.physical_type(),
                    c.logical_type_ref()
                )
            })
            .collect();
        assert_eq!(logical[0], "user_id BYTE_ARRAY Some(String)");
        assert_eq!(logical[2], "amount DOUBLE None");
        assert_eq!(logical[3], "qty INT64 None");
        assert_eq!(logical[4], "premium BOOLEAN None");
        assert!(
            logical[5].starts_with(
                "at INT64 Some(Timestamp(TimestampType { is_adjusted_to_u_t_c: true, unit: MICROS"
            ),
            "{}",
            logical[5]
        );
        assert_eq!(
            schema.num_columns(),
            6,
            "a timestamp column: no event_timestamp added"
        );
        let micros = 1_763_478_184_250_000; // 2025-11-18T15:03:04.25Z
        assert_eq!(
            rows[0].iter().map(|(_, f)| f.clone()).collect::<Vec<_>>(),
            vec![
                Field::Str("1390".into()),
                Field::Str("café, \"x\"".into()),
                Field::Double(1.5),
                Field::Long(-7),
                Field::Bool(true),
                Field::TimestampMicros(micros),
            ]
        );
        // The empty group key is a value; other empty texts are nulls.
        assert_eq!(rows[1][0].1, Field::Str(String::new()));
        assert_eq!(rows[1][1].1, Field::Null);
        assert!(matches!(rows[1][2].1, Field::Double(v) if v.is_nan()));
        assert_eq!(rows[1][3].1, Field::Null);
        assert_eq!(rows[1][4].1, Field::Bool(false));
        assert_eq!(rows[1][5].1, Field::Null);
        assert_eq!(rows[2][2].1, Field::Null);
        assert_eq!(rows[2][3].1, Field::Long(i64::MAX));
        assert_eq!(rows[2][4].1, Field::Null);
        assert_eq!(rows[2][5].1, Field::TimestampMicros(0));
    }

    #[test]
    fn without_a_timestamp_every_row_gets_the_execution_date() {
        let columns = cols(&[("row_sum", ColumnType::Float)]);
        let layout = ParquetLayout::new(&columns, &[], 42).unwrap();
        assert_eq!(layout.timestamp_field(), EVENT_TIMESTAMP);
        assert_eq!(
            layout.describe(),
            [
                ("row_sum".to_string(), "DOUBLE"),
                (EVENT_TIMESTAMP.to_string(), "TIMESTAMP(MICROS,UTC)")
            ]
        );
        let bytes = write(
            layout,
            &[ColumnType::Float],
            5,
            2,
            ROW_GROUP_ROWS,
            &|r, b| b.push_float(0, Some(r as f64)),
        );
        let (_, rows) = read(bytes);
        assert_eq!(rows.len(), 5);
        for (r, row) in rows.iter().enumerate() {
            assert_eq!(row[0], ("row_sum".to_string(), Field::Double(r as f64)));
            assert_eq!(
                row[1],
                (EVENT_TIMESTAMP.to_string(), Field::TimestampMicros(42))
            );
        }
        // A column of that name that is not a timestamp cannot stand beside it.
        let clash = cols(&[("event_timestamp", ColumnType::String)]);
        assert!(ParquetLayout::new(&clash, &[], 0).is_err());
    }

    #[test]
    fn row_groups_are_bounded_and_the_bytes_are_deterministic() {
        let columns = cols(&[("k", ColumnType::String), ("v", ColumnType::Integer)]);
        let types = [ColumnType::String, ColumnType::Integer];
        let make = || {
            let layout = ParquetLayout::new(&columns, &[], 0).unwrap();
            write(layout, &types, 10_000, 777, 3000, &|r, b| {
                b.push_text(0, format!("key-{}", r % 13).as_bytes());
                b.push_integer(1, Some(r as i64));
            })
        };
        let first = make();
        assert_eq!(first, make(), "same rows, same bytes");
        let (reader, rows) = read(first);
        let meta = reader.metadata();
        // 10 000 rows in groups closed at the first batch boundary past 3000 rows.
        let sizes: Vec<i64> = meta.row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(sizes.iter().sum::<i64>(), 10_000);
        assert!(sizes.len() >= 3, "{sizes:?}");
        assert!(sizes.iter().all(|&n| n <= 3000 + 777), "{sizes:?}");
        for (r, row) in rows.iter().enumerate() {
            assert_eq!(row[0].1, Field::Str(format!("key-{}", r % 13)));
            assert_eq!(row[1].1, Field::Long(r as i64));
        }
        let created_by = meta.file_metadata().created_by().unwrap_or_default();
        assert!(created_by.starts_with("featurepipe "), "{created_by}");
    }

    #[test]
    fn no_rows_is_a_valid_empty_file() {
        let columns = cols(&[("v", ColumnType::Float)]);
        let layout = ParquetLayout::new(&columns, &[], 0).unwrap();
        let bytes = write(
            layout,
            &[ColumnType::Float],
            0,
            1,
            ROW_GROUP_ROWS,
            &|_, _| {},
        );
        let (reader, rows) = read(bytes);
        assert!(rows.is_empty());
        assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
        assert_eq!(
            reader
                .metadata()
                .file_metadata()
                .schema_descr()
                .num_columns(),
            2
        );
    }
}
