//! Writing the kept documents of one input file, in the input's own format or as Parquet.
//!
//! JSONL records are copied byte for byte (every field carried untouched) without parsing them
//! again; Parquet rows are filtered with Arrow and rewritten with zstd compression. A record whose
//! text a stage changed (C4's line removals) gets its text field replaced and nothing else.
//! Converting JSONL to Parquet (`OutputFormat::Parquet`) reads the kept records twice: once to
//! infer the columns (`json_table`), once to fill them. The id column then holds the same doc id
//! as `clusters.parquet`, so the two join.

use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::input::{Format, InputFile, split_suffix};
use crate::json_table::{RawRecord, SchemaInference, TableBuilder};
use crate::reader::{FieldConfig, LineReader, json_doc_id, parquet_reader};
use arrow_array::cast::AsArray;
use arrow_array::{
    ArrayRef, BooleanArray, LargeStringArray, RecordBatch, RecordBatchReader, StringArray,
};
use arrow_schema::{DataType, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per converted record batch, and the bytes that cut one early.
const BATCH_ROWS: usize = 8192;
const BATCH_BYTES: usize = 64 << 20;

/// The format a job writes its kept records in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// Each input's own format, under its own name.
    #[default]
    Input,
    /// Parquet with zstd; JSONL inputs are converted and named `<stem>.parquet`.
    Parquet,
}

/// The output name of `file`, relative to the output directory, when written in `format`.
#[must_use]
pub fn output_rel(file: &InputFile, format: OutputFormat) -> PathBuf {
    if format == OutputFormat::Input || file.format == Format::Parquet {
        return file.rel.clone();
    }
    let name = file
        .rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = split_suffix(&name).map_or(name.as_str(), |(stem, _)| stem);
    file.rel.with_file_name(format!("{stem}.parquet"))
}

/// The output names of `files` in `format`. Two inputs may not share one (`a.jsonl` and
/// `a.jsonl.gz` both become `a.parquet`), nor take one of the job's `reserved` names.
pub fn output_rels(
    files: &[InputFile],
    format: OutputFormat,
    reserved: &[&str],
) -> Result<Vec<PathBuf>> {
    let rels: Vec<PathBuf> = files.iter().map(|f| output_rel(f, format)).collect();
    let mut seen: HashMap<&Path, &Path> = HashMap::new();
    for (rel, f) in rels.iter().zip(files) {
        if reserved.iter().any(|r| rel == Path::new(r)) {
            return Err(Error::Config(format!(
                "input {} would be written as {}, a name the run writes itself",
                f.path.display(),
                rel.display()
            )));
        }
        if let Some(other) = seen.insert(rel, &f.path) {
            return Err(Error::Config(format!(
                "inputs {} and {} would both be written as {}",
                other.display(),
                f.path.display(),
                rel.display()
            )));
        }
    }
    Ok(rels)
}

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
pub fn write_kept(
    file: &InputFile,
    kept: &[u64],
    fields: &FieldConfig,
    format: OutputFormat,
    dest: &Path,
    incomplete: bool,
) -> Result<u64> {
    write_kept_edited(
        file,
        kept,
        &HashMap::new(),
        fields,
        format,
        dest,
        incomplete,
    )
}

/// `write_kept`, with the text field of the records in `edits` (line → new text) replaced.
#[allow(clippy::implicit_hasher)]
pub fn write_kept_edited(
    file: &InputFile,
    kept: &[u64],
    edits: &HashMap<u64, String>,
    fields: &FieldConfig,
    format: OutputFormat,
    dest: &Path,
    incomplete: bool,
) -> Result<u64> {
    let text_field = fields.text_field.as_str();
    match (file.format, format) {
        (Format::Parquet, _) => write_parquet(file, kept, edits, text_field, dest, incomplete),
        (_, OutputFormat::Input) => write_jsonl(file, kept, edits, text_field, dest, incomplete),
        (_, OutputFormat::Parquet) => {
            write_jsonl_as_parquet(file, kept, edits, fields, dest, incomplete)
        }
    }
}

/// Call `f(line, raw)` for each record of the JSONL `file` whose line is in `kept` (sorted).
/// An input that no longer holds every kept line is an error: it changed since it was read.
fn for_each_kept_line(
    file: &InputFile,
    kept: &[u64],
    incomplete: bool,
    mut f: impl FnMut(u64, &mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    let mut reader = LineReader::open(&file.path, file.format)?;
    let mut buf = Vec::with_capacity(1 << 16);
    let mut next = kept.iter().peekable();
    let mut found = 0u64;
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
            f(reader.line, &mut buf)?;
            found += 1;
        }
    }
    if found != kept.len() as u64 {
        return Err(Error::Config(format!(
            "{}: input changed since it was read ({} of {} kept records found); rerun from scratch",
            file.path.display(),
            found,
            kept.len()
        )));
    }
    Ok(())
}

/// The JSON record `line` with its `text_field` set to `text`, other fields in their order.
fn replace_text(
    file: &InputFile,
    line: u64,
    raw: &[u8],
    text_field: &str,
    text: &str,
) -> Result<Vec<u8>> {
    let mut record: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(raw).map_err(|e| changed(file, line, &e))?;
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
    for_each_kept_line(file, kept, incomplete, |line, buf| {
        if let Some(text) = edits.get(&line) {
            *buf = replace_text(file, line, buf, text_field, text)?;
        }
        buf.push(b'\n');
        enc.writer()
            .write_all(buf)
            .map_err(|e| Error::io(guard.tmp_path(), e))
    })?;
    let f = enc.finish().map_err(|e| Error::io(guard.tmp_path(), e))?;
    guard.commit(f)?;
    Ok(kept.len() as u64)
}

/// A kept JSONL record, split into its fields again for conversion.
fn parse_kept<'a>(file: &InputFile, line: u64, raw: &'a [u8]) -> Result<RawRecord<'a>> {
    RawRecord::parse(raw).map_err(|e| changed(file, line, &e))
}

fn changed(file: &InputFile, line: u64, why: &dyn std::fmt::Display) -> Error {
    Error::Config(format!(
        "{}:{line}: record changed since it was read: {why}",
        file.path.display()
    ))
}

/// Convert the kept records of a JSONL `file` to one Parquet file: the id column (named by
/// `fields.id_field`, holding the doc id), the text column, then every other field.
fn write_jsonl_as_parquet(
    file: &InputFile,
    kept: &[u64],
    edits: &HashMap<u64, String>,
    fields: &FieldConfig,
    dest: &Path,
    incomplete: bool,
) -> Result<u64> {
    let text_field = fields.text_field.as_str();
    let id_field = fields.id_field.as_deref();
    let mut pinned: Vec<&str> = id_field.into_iter().collect();
    pinned.push(text_field);
    let mut inference = SchemaInference::new(&pinned);
    for_each_kept_line(file, kept, incomplete, |line, raw| {
        inference.observe(&parse_kept(file, line, raw)?);
        Ok(())
    })?;
    let mut table = inference.finish();
    let (guard, f) = AtomicFile::create(dest)?;
    let perr = |e: &dyn std::fmt::Display| Error::Parquet {
        path: dest.to_path_buf(),
        message: e.to_string(),
    };
    let mut writer = parquet_writer(f, table.schema()).map_err(|e| perr(&e))?;
    let file_name = file.rel.to_string_lossy();
    let mut flush = |table: &mut TableBuilder| writer.write(&table.take_batch());
    for_each_kept_line(file, kept, incomplete, |line, raw| {
        let record = parse_kept(file, line, raw)?;
        let text = match edits.get(&line) {
            Some(t) => Cow::Borrowed(t.as_str()),
            None => record
                .get_str(text_field)
                .ok_or_else(|| changed(file, line, &format!("no text field {text_field:?}")))?,
        };
        match id_field {
            Some(name) => {
                let value = record
                    .get(name)
                    .map(|v| serde_json::from_str::<serde_json::Value>(v.get()))
                    .transpose()
                    .map_err(|e| changed(file, line, &e))?;
                let id = json_doc_id(value.as_ref(), &file_name, line)
                    .ok_or_else(|| changed(file, line, &format!("bad id field {name:?}")))?;
                table.append(&[&id, &text], &record)
            }
            None => table.append(&[&text], &record),
        }
        .map_err(|why| changed(file, line, &why))?;
        if table.rows() >= BATCH_ROWS || table.bytes() >= BATCH_BYTES {
            flush(&mut table).map_err(|e| perr(&e))?;
        }
        Ok(())
    })?;
    if table.rows() > 0 {
        flush(&mut table).map_err(|e| perr(&e))?;
    }
    let f = writer.into_inner().map_err(|e| perr(&e))?;
    guard.commit(f)?;
    Ok(kept.len() as u64)
}

/// A zstd Parquet writer for `schema`.
fn parquet_writer(
    f: File,
    schema: SchemaRef,
) -> std::result::Result<ArrowWriter<File>, parquet::errors::ParquetError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .build();
    ArrowWriter::try_new(f, schema, Some(props))
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
    let perr = |e: &dyn std::fmt::Display| Error::Parquet {
        path: dest.to_path_buf(),
        message: e.to_string(),
    };
    let mut writer = parquet_writer(f, schema).map_err(|e| perr(&e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn input(rel: &str) -> InputFile {
        InputFile {
            path: Path::new("/data").join(rel),
            rel: rel.into(),
            format: Format::from_path(Path::new(rel)).expect("a known format"),
            size: 0,
            mtime_ns: 0,
        }
    }

    #[test]
    fn converted_outputs_are_named_by_stem() {
        let names = |format| -> Vec<PathBuf> {
            [
                "a.JSONL.gz",
                "sub/b.ndjson.zst",
                "c.json",
                "d.parquet",
                "e.v2.jsonl",
            ]
            .iter()
            .map(|r| output_rel(&input(r), format))
            .collect()
        };
        assert_eq!(
            names(OutputFormat::Parquet),
            [
                "a.parquet",
                "sub/b.parquet",
                "c.parquet",
                "d.parquet",
                "e.v2.parquet"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(
            names(OutputFormat::Input),
            [
                "a.JSONL.gz",
                "sub/b.ndjson.zst",
                "c.json",
                "d.parquet",
                "e.v2.jsonl"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn clashing_output_names_are_refused() {
        let files = [input("a.jsonl"), input("a.jsonl.gz")];
        assert!(output_rels(&files, OutputFormat::Input, &[]).is_ok());
        let err = output_rels(&files, OutputFormat::Parquet, &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/data/a.jsonl and /data/a.jsonl.gz") && msg.contains("a.parquet"));
        let err = output_rels(
            &[input("clusters.jsonl")],
            OutputFormat::Parquet,
            &["clusters.parquet"],
        )
        .unwrap_err();
        assert!(err.to_string().contains("a name the run writes itself"));
    }
}
