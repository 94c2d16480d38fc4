//! Writing the kept documents of one input file, in the input's own format.
//!
//! JSONL records are copied byte for byte (every field carried untouched) without parsing them
//! again; Parquet rows are filtered with Arrow and rewritten with zstd compression. A record whose
//! text a stage changed (C4's line removals) gets its text field replaced and nothing else.

use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::input::{Format, InputFile};
use crate::reader::{LineReader, parquet_reader};
use arrow_array::cast::AsArray;
use arrow_array::{
    ArrayRef, BooleanArray, LargeStringArray, RecordBatch, RecordBatchReader, StringArray,
};
use arrow_schema::DataType;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

enum Encoder {
    Plain(BufWriter<File>),
    Gz(flate2::write::GzEncoder<BufWriter<File>>),
    Zst(zstd::stream::write::Encoder<'static, BufWriter<File>>),
}

impl Encoder {
    fn new(format: Format, f: File, path: &Path) -> Result<Self> {
        let w = BufWriter::with_capacity(1 << 18, f);
        Ok(match format {
            Format::JsonlGz => Encoder::Gz(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::new(6),
            )),
            Format::JsonlZst => Encoder::Zst(
                zstd::stream::write::Encoder::new(w, 3).map_err(|e| Error::io(path, e))?,
            ),
            _ => Encoder::Plain(w),
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Encoder::Plain(w) => w,
            Encoder::Gz(w) => w,
            Encoder::Zst(w) => w,
        }
    }

    fn finish(self) -> std::io::Result<File> {
        let w = match self {
            Encoder::Plain(w) => w,
            Encoder::Gz(w) => w.finish()?,
            Encoder::Zst(w) => w.finish()?,
        };
        w.into_inner().map_err(std::io::IntoInnerError::into_error)
    }
}

/// Write the records of `file` whose line (row) numbers are in `kept` (sorted) to `dest`,
/// atomically. `incomplete` inputs end at their known stream error instead of failing.
pub fn write_kept(file: &InputFile, kept: &[u64], dest: &Path, incomplete: bool) -> Result<u64> {
    write_kept_edited(file, kept, &HashMap::new(), "", dest, incomplete)
}

/// `write_kept`, with the text field of the records in `edits` (line → new text) replaced.
#[allow(clippy::implicit_hasher)]
pub fn write_kept_edited(
    file: &InputFile,
    kept: &[u64],
    edits: &HashMap<u64, String>,
    text_field: &str,
    dest: &Path,
    incomplete: bool,
) -> Result<u64> {
    match file.format {
        Format::Parquet => write_parquet(file, kept, edits, text_field, dest, incomplete),
        _ => write_jsonl(file, kept, edits, text_field, dest, incomplete),
    }
}

/// The JSON record `line` with its `text_field` set to `text`, other fields in their order.
fn replace_text(
    file: &InputFile,
    line: u64,
    raw: &[u8],
    text_field: &str,
    text: &str,
) -> Result<Vec<u8>> {
    let mut record: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(raw)
        .map_err(|e| {
            Error::Config(format!(
                "{}:{line}: record changed since it was read: {e}",
                file.path.display()
            ))
        })?;
    record.insert(
        text_field.to_owned(),
        serde_json::Value::String(text.to_owned()),
    );
    Ok(serde_json::to_vec(&record).expect("a JSON map serializes"))
}

fn write_jsonl(
    file: &InputFile,
    kept: &[u64],
    edits: &HashMap<u64, String>,
    text_field: &str,
    dest: &Path,
    incomplete: bool,
) -> Result<u64> {
    let (guard, f) = AtomicFile::create(dest)?;
    let mut enc = Encoder::new(file.format, f, guard.tmp_path())?;
    let mut reader = LineReader::open(&file.path, file.format)?;
    let mut buf = Vec::with_capacity(1 << 16);
    let mut next = kept.iter().peekable();
    let mut written = 0u64;
    while next.peek().is_some() {
        buf.clear();
        match reader.next_line(&mut buf) {
            Ok(true) => {}
            Ok(false) => break,
            Err(_) if incomplete => break,
            Err(e) => return Err(e),
        }
        if next.peek() == Some(&&reader.line) {
            next.next();
            if let Some(text) = edits.get(&reader.line) {
                buf = replace_text(file, reader.line, &buf, text_field, text)?;
            }
            buf.push(b'\n');
            enc.writer()
                .write_all(&buf)
                .map_err(|e| Error::io(guard.tmp_path(), e))?;
            written += 1;
        }
    }
    if written != kept.len() as u64 {
        return Err(Error::Config(format!(
            "{}: input changed since it was read ({} of {} kept records found); rerun from scratch",
            file.path.display(),
            written,
            kept.len()
        )));
    }
    let f = enc.finish().map_err(|e| Error::io(guard.tmp_path(), e))?;
    guard.commit(f)?;
    Ok(written)
}

fn write_parquet(
    file: &InputFile,
    kept: &[u64],
    edits: &HashMap<u64, String>,
    text_field: &str,
    dest: &Path,
    incomplete: bool,
) -> Result<u64> {
    let reader = match parquet_reader(&file.path, None) {
        Ok(r) => r,
        // A file that could not be opened in the sketch pass (and was skipped) has nothing to
        // write, and no schema to write it with.
        Err(_) if incomplete && kept.is_empty() => return Ok(0),
        Err(e) => return Err(e),
    };
    let schema = reader.schema();
    let (guard, f) = AtomicFile::create(dest)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .build();
    let perr = |e: &dyn std::fmt::Display| Error::Parquet {
        path: dest.to_path_buf(),
        message: e.to_string(),
    };
    let mut writer = ArrowWriter::try_new(f, schema, Some(props)).map_err(|e| perr(&e))?;
    let mut row = 0u64;
    let mut next = kept.iter().peekable();
    let mut written = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| Error::Parquet {
            path: file.path.clone(),
            message: e.to_string(),
        })?;
        let mask: BooleanArray = (0..batch.num_rows())
            .map(|i| {
                let line = row + i as u64 + 1;
                let keep = next.peek() == Some(&&line);
                if keep {
                    next.next();
                }
                Some(keep)
            })
            .collect();
        let kept_rows: Vec<u64> = (0..batch.num_rows() as u64)
            .filter(|&i| mask.value(i as usize))
            .map(|i| row + i + 1)
            .collect();
        row += batch.num_rows() as u64;
        let mut filtered =
            arrow_select::filter::filter_record_batch(&batch, &mask).map_err(|e| perr(&e))?;
        if kept_rows.iter().any(|l| edits.contains_key(l)) {
            filtered =
                replace_texts(&filtered, &kept_rows, edits, text_field).map_err(|e| perr(&e))?;
        }
        written += filtered.num_rows() as u64;
        writer.write(&filtered).map_err(|e| perr(&e))?;
    }
    let f = writer.into_inner().map_err(|e| perr(&e))?;
    guard.commit(f)?;
    Ok(written)
}

/// `batch` (whose rows are the input rows `rows`) with the texts of the rows in `edits` replaced.
fn replace_texts(
    batch: &RecordBatch,
    rows: &[u64],
    edits: &HashMap<u64, String>,
    text_field: &str,
) -> std::result::Result<RecordBatch, String> {
    let idx = batch
        .schema()
        .index_of(text_field)
        .map_err(|e| e.to_string())?;
    let col = batch.column(idx);
    let texts: Vec<Option<String>> = match col.data_type() {
        DataType::Utf8 => col
            .as_string::<i32>()
            .iter()
            .map(|t| t.map(str::to_owned))
            .collect(),
        DataType::LargeUtf8 => col
            .as_string::<i64>()
            .iter()
            .map(|t| t.map(str::to_owned))
            .collect(),
        other => return Err(format!("text column {text_field} is {other}, not a string")),
    };
    let replaced = texts
        .into_iter()
        .zip(rows)
        .map(|(t, line)| edits.get(line).cloned().or(t));
    let array: ArrayRef = match col.data_type() {
        DataType::Utf8 => Arc::new(replaced.collect::<StringArray>()),
        _ => Arc::new(replaced.collect::<LargeStringArray>()),
    };
    let mut columns = batch.columns().to_vec();
    columns[idx] = array;
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| e.to_string())
}
