//! Streaming readers for JSONL (plain, gzip, zstd) and Parquet documents.
//!
//! Files are read in batches of lines (about 4 MiB); each batch is parsed in parallel and handed to
//! the caller in file order, so memory stays bounded and results do not depend on the thread count.
//! Every bad record becomes a `Reject` naming the file and line (for Parquet: the 1-based row), and
//! the caller decides whether to raise or to skip it.

use crate::error::{Error, Result};
use crate::input::{Format, InputFile};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchReader};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

const BATCH_BYTES: usize = 4 << 20;
const PARQUET_BATCH_ROWS: usize = 4096;
/// Rejected lines longer than this are cut in the rejects file (the file and line still point at
/// the whole record).
pub const MAX_REJECT_RAW: usize = 64 << 10;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FieldConfig {
    pub text_field: String,
    /// Field holding the document id; documents without one get `<file>:<line>`, the file
    /// named relative to its input root (unique within a run).
    pub id_field: Option<String>,
    /// Numeric field read for the `max_column` keep policy.
    pub key_field: Option<String>,
    /// Further fields read into `Doc::extra` (metadata a later stage carries along).
    pub carry: Vec<String>,
}

impl Default for FieldConfig {
    fn default() -> Self {
        Self {
            text_field: "text".into(),
            id_field: Some("id".into()),
            key_field: None,
            carry: Vec::new(),
        }
    }
}

#[derive(Debug)]
pub struct Doc {
    /// 1-based line number (JSONL) or row number (Parquet).
    pub line: u64,
    pub id: String,
    pub text: String,
    /// Value of the key field; NaN when absent.
    pub key: f64,
    /// Values of `FieldConfig::carry`, in its order; `Null` when absent.
    pub extra: Vec<serde_json::Value>,
}

#[derive(Debug)]
pub struct Reject {
    pub error: Error,
    /// The record's bytes as read (JSONL), cut at `MAX_REJECT_RAW`.
    pub raw: Option<Vec<u8>>,
}

impl Reject {
    /// The reject as one line of a rejects file: file, line, kind, message and the raw record.
    #[must_use]
    pub fn json_line(&self, file: &Path) -> Vec<u8> {
        let raw = self.raw.as_deref().map(String::from_utf8_lossy);
        let line = serde_json::json!({
            "file": file.display().to_string(),
            "line": self.error.line(),
            "kind": self.error.kind(),
            "error": self.error.to_string(),
            "raw": raw,
        });
        let mut bytes = serde_json::to_vec(&line).expect("a JSON value serializes");
        bytes.push(b'\n');
        bytes
    }
}

#[derive(Debug)]
pub enum Item {
    Doc(Doc),
    Reject(Reject),
}

/// Read every record of `file`, calling `on_batch` with consecutive batches in file order. A
/// file-level failure (unreadable, truncated stream, bad Parquet) is returned after the records
/// read before it were delivered.
pub fn read_file(
    file: &InputFile,
    fields: &FieldConfig,
    cancel: &AtomicBool,
    on_batch: impl FnMut(Vec<Item>) -> Result<()>,
) -> Result<()> {
    // Generated ids name the file by its path relative to the input root, unique in a run.
    let name = file.rel.to_string_lossy();
    match file.format {
        Format::Parquet => read_parquet(&file.path, &name, fields, cancel, on_batch),
        _ => read_jsonl(&file.path, &name, file.format, fields, cancel, on_batch),
    }
}

/// Open a JSONL file of any supported compression as a buffered stream of decompressed bytes.
pub fn open_jsonl(path: &Path, format: Format) -> Result<Box<dyn BufRead + Send>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let inner = BufReader::with_capacity(1 << 16, f);
    Ok(match format {
        Format::Jsonl => Box::new(inner),
        Format::JsonlGz => Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::bufread::MultiGzDecoder::new(inner),
        )),
        Format::JsonlZst => {
            let dec =
                zstd::stream::read::Decoder::with_buffer(inner).map_err(|e| Error::io(path, e))?;
            Box::new(BufReader::with_capacity(1 << 16, dec))
        }
        Format::Parquet => unreachable!("parquet is not line based"),
    })
}

/// Reads lines of a decompressed stream, turning stream errors into `Truncated` with the position.
pub struct LineReader<'a> {
    path: &'a Path,
    inner: Box<dyn BufRead + Send>,
    pub line: u64,
    pub offset: u64,
    compressed: bool,
}

impl<'a> LineReader<'a> {
    pub fn open(path: &'a Path, format: Format) -> Result<Self> {
        Ok(Self {
            path,
            inner: open_jsonl(path, format)?,
            line: 0,
            offset: 0,
            compressed: format != Format::Jsonl,
        })
    }

    /// Append the next line (without its newline) to `buf`; false at the end of the stream.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> Result<bool> {
        let start = buf.len();
        let n = self
            .inner
            .read_until(b'\n', buf)
            .map_err(|e| self.stream_error(&e))?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        self.offset += n as u64;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') && buf.len() > start {
                buf.pop();
            }
        }
        Ok(true)
    }

    fn stream_error(&self, e: &std::io::Error) -> Error {
        if self.compressed {
            Error::Truncated {
                path: self.path.to_path_buf(),
                line: self.line,
                offset: self.offset,
                message: e.to_string(),
            }
        } else {
            Error::io(self.path, std::io::Error::new(e.kind(), e.to_string()))
        }
    }
}

fn read_jsonl(
    path: &Path,
    file_name: &str,
    format: Format,
    fields: &FieldConfig,
    cancel: &AtomicBool,
    mut on_batch: impl FnMut(Vec<Item>) -> Result<()>,
) -> Result<()> {
    let mut reader = LineReader::open(path, format)?;
    let mut buf: Vec<u8> = Vec::with_capacity(BATCH_BYTES + (1 << 16));
    let mut spans: Vec<(u64, usize, usize)> = Vec::new();
    loop {
        buf.clear();
        spans.clear();
        let mut end_of_stream = false;
        let mut stream_err = None;
        while buf.len() < BATCH_BYTES {
            let start = buf.len();
            match reader.next_line(&mut buf) {
                Ok(true) => spans.push((reader.line, start, buf.len())),
                Ok(false) => {
                    end_of_stream = true;
                    break;
                }
                Err(e) => {
                    // Keep what was read; a partial last line is part of the truncation.
                    buf.truncate(start);
                    stream_err = Some(e);
                    break;
                }
            }
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let items: Vec<Item> = spans
            .par_iter()
            .filter_map(|&(line, s, e)| parse_line(path, file_name, line, &buf[s..e], fields))
            .collect();
        if !items.is_empty() {
            on_batch(items)?;
        }
        if let Some(e) = stream_err {
            return Err(e);
        }
        if end_of_stream {
            return Ok(());
        }
    }
}

#[derive(Clone, Copy)]
enum Key {
    Text,
    Id,
    Sort,
    Carry(usize),
    Other,
}

struct KeySeed<'f>(&'f FieldConfig);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Key;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(if v == self.0.text_field {
            Key::Text
        } else if self.0.id_field.as_deref() == Some(v) {
            Key::Id
        } else if self.0.key_field.as_deref() == Some(v) {
            Key::Sort
        } else if let Some(i) = self.0.carry.iter().position(|c| c == v) {
            Key::Carry(i)
        } else {
            Key::Other
        })
    }
}

#[derive(Default)]
struct Parsed {
    text: Option<serde_json::Value>,
    id: Option<serde_json::Value>,
    key: Option<serde_json::Value>,
    extra: Vec<serde_json::Value>,
}

struct RecordSeed<'f>(&'f FieldConfig);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Parsed;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = Parsed;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut p = Parsed {
            extra: vec![serde_json::Value::Null; self.0.carry.len()],
            ..Parsed::default()
        };
        while let Some(k) = map.next_key_seed(KeySeed(self.0))? {
            match k {
                Key::Text => p.text = Some(map.next_value()?),
                Key::Id => p.id = Some(map.next_value()?),
                Key::Sort => p.key = Some(map.next_value()?),
                Key::Carry(i) => p.extra[i] = map.next_value()?,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(p)
    }
}

fn reject(error: Error, raw: &[u8]) -> Item {
    Item::Reject(Reject {
        error,
        raw: Some(raw[..raw.len().min(MAX_REJECT_RAW)].to_vec()),
    })
}

/// The document id a JSON record's id value gives: a string as is, a number as written, and
/// `<file>:<line>` when absent or null (`file`: the input's path relative to its root). `None` for other kinds, which are rejected.
pub(crate) fn json_doc_id(
    value: Option<&serde_json::Value>,
    file_name: &str,
    line: u64,
) -> Option<String> {
    match value {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::Null) | None => Some(format!("{file_name}:{line}")),
        Some(_) => None,
    }
}

/// Parse one JSONL line; blank lines yield nothing.
pub fn parse_line(
    path: &Path,
    file_name: &str,
    line: u64,
    raw: &[u8],
    fields: &FieldConfig,
) -> Option<Item> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let json = match std::str::from_utf8(raw) {
        Ok(json) => json,
        Err(e) => {
            return Some(reject(
                Error::Utf8 {
                    path: path.to_path_buf(),
                    line,
                    offset: e.valid_up_to(),
                },
                raw,
            ));
        }
    };
    // From the validated `str`: serde_json then does not check each string's UTF-8 again.
    let mut de = serde_json::Deserializer::from_str(json);
    let parsed = match RecordSeed(fields)
        .deserialize(&mut de)
        .and_then(|p| de.end().map(|()| p))
    {
        Ok(p) => p,
        Err(e) => {
            return Some(reject(
                Error::Json {
                    path: path.to_path_buf(),
                    line,
                    message: e.to_string(),
                },
                raw,
            ));
        }
    };
    let field_err = |message: String| {
        Some(reject(
            Error::Field {
                path: path.to_path_buf(),
                line,
                message,
            },
            raw,
        ))
    };
    let text = match parsed.text {
        Some(serde_json::Value::String(s)) => s,
        Some(other) => {
            return field_err(format!(
                "text field {:?} is {}, not a string",
                fields.text_field,
                json_kind(&other)
            ));
        }
        None => return field_err(format!("missing text field {:?}", fields.text_field)),
    };
    let Some(id) = json_doc_id(parsed.id.as_ref(), file_name, line) else {
        let name = fields.id_field.as_deref().unwrap_or_default();
        return field_err(format!(
            "id field {name:?} is {}, not a string or number",
            json_kind(parsed.id.as_ref().expect("only a present id is refused"))
        ));
    };
    let key = match parsed.key {
        Some(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(serde_json::Value::Null) | None => f64::NAN,
        Some(other) => {
            let name = fields.key_field.as_deref().unwrap_or_default();
            return field_err(format!(
                "key field {name:?} is {}, not a number",
                json_kind(&other)
            ));
        }
    };
    Some(Item::Doc(Doc {
        line,
        id,
        text,
        key,
        extra: parsed.extra,
    }))
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn parquet_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Open a Parquet file for reading record batches; `columns` limits the columns read (None = all).
pub fn parquet_reader(
    path: &Path,
    columns: Option<&[&str]>,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| parquet_err(path, e))?;
    let builder = if let Some(cols) = columns {
        let schema = builder.schema().clone();
        let mut roots = Vec::new();
        for c in cols {
            if let Ok(i) = schema.index_of(c) {
                roots.push(i);
            }
        }
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        builder.with_projection(mask)
    } else {
        builder
    };
    builder
        .with_batch_size(PARQUET_BATCH_ROWS)
        .build()
        .map_err(|e| parquet_err(path, e))
}

fn read_parquet(
    path: &Path,
    file_name: &str,
    fields: &FieldConfig,
    cancel: &AtomicBool,
    mut on_batch: impl FnMut(Vec<Item>) -> Result<()>,
) -> Result<()> {
    let mut wanted: Vec<&str> = vec![fields.text_field.as_str()];
    wanted.extend(fields.id_field.as_deref());
    wanted.extend(fields.key_field.as_deref());
    wanted.extend(fields.carry.iter().map(String::as_str));
    let reader = parquet_reader(path, Some(&wanted))?;
    let schema = reader.schema();
    if schema.index_of(&fields.text_field).is_err() {
        return Err(parquet_err(
            path,
            format!("no text column {:?}", fields.text_field),
        ));
    }
    let mut row0 = 0u64;
    for batch in reader {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let batch = batch.map_err(|e| Error::Parquet {
            path: path.to_path_buf(),
            message: format!("after row {row0}: {e}"),
        })?;
        let items = parquet_batch_items(path, file_name, row0, &batch, fields)?;
        row0 += batch.num_rows() as u64;
        on_batch(items)?;
    }
    Ok(())
}

fn column<'b>(batch: &'b RecordBatch, name: Option<&str>) -> Option<&'b ArrayRef> {
    name.and_then(|n| batch.schema().index_of(n).ok().map(|i| batch.column(i)))
}

fn string_at(col: &ArrayRef, i: usize) -> Option<String> {
    if col.is_null(i) {
        return None;
    }
    match col.data_type() {
        DataType::Utf8 => Some(col.as_string::<i32>().value(i).to_owned()),
        DataType::LargeUtf8 => Some(col.as_string::<i64>().value(i).to_owned()),
        DataType::Utf8View => Some(col.as_string_view().value(i).to_owned()),
        _ => None,
    }
}

fn number_at(col: &ArrayRef, i: usize) -> Option<f64> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Float32Type, Float64Type, Int32Type, Int64Type, UInt32Type, UInt64Type,
    };
    if col.is_null(i) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Float64 => col.as_primitive::<Float64Type>().value(i),
        DataType::Float32 => f64::from(col.as_primitive::<Float32Type>().value(i)),
        DataType::Int64 => col.as_primitive::<Int64Type>().value(i) as f64,
        DataType::Int32 => f64::from(col.as_primitive::<Int32Type>().value(i)),
        DataType::UInt64 => col.as_primitive::<UInt64Type>().value(i) as f64,
        DataType::UInt32 => f64::from(col.as_primitive::<UInt32Type>().value(i)),
        _ => return None,
    })
}

fn parquet_batch_items(
    path: &Path,
    file_name: &str,
    row0: u64,
    batch: &RecordBatch,
    fields: &FieldConfig,
) -> Result<Vec<Item>> {
    let text = column(batch, Some(&fields.text_field)).expect("checked by the caller");
    if !matches!(
        text.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return Err(parquet_err(
            path,
            format!(
                "text column {:?} has type {}, not a string",
                fields.text_field,
                text.data_type()
            ),
        ));
    }
    let id_col = column(batch, fields.id_field.as_deref());
    let key_col = column(batch, fields.key_field.as_deref());
    let carry_cols: Vec<Option<&ArrayRef>> = fields
        .carry
        .iter()
        .map(|c| column(batch, Some(c)))
        .collect();
    for (name, col) in fields.carry.iter().zip(&carry_cols) {
        if let Some(col) = col
            && !json_convertible(col.data_type())
        {
            return Err(parquet_err(
                path,
                format!(
                    "carried column {name:?} has type {}; only strings, integers, floats and booleans are carried",
                    col.data_type()
                ),
            ));
        }
    }
    let mut items = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let line = row0 + i as u64 + 1;
        let Some(text) = string_at(text, i) else {
            items.push(Item::Reject(Reject {
                error: Error::Field {
                    path: path.to_path_buf(),
                    line,
                    message: format!("text column {:?} is null", fields.text_field),
                },
                raw: None,
            }));
            continue;
        };
        let id = id_col
            .and_then(|c| string_at(c, i).or_else(|| number_at(c, i).map(|v| format!("{v}"))))
            .unwrap_or_else(|| format!("{file_name}:{line}"));
        let key = key_col.and_then(|c| number_at(c, i)).unwrap_or(f64::NAN);
        let extra = carry_cols
            .iter()
            .map(|c| c.map_or(serde_json::Value::Null, |c| json_at(c, i)))
            .collect();
        items.push(Item::Doc(Doc {
            line,
            id,
            text,
            key,
            extra,
        }));
    }
    Ok(items)
}

fn json_convertible(t: &DataType) -> bool {
    t.is_integer()
        || t.is_floating()
        || matches!(
            t,
            DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
}

/// One cell of a carried column as JSON (the type was checked by `json_convertible`).
fn json_at(col: &ArrayRef, i: usize) -> serde_json::Value {
    use arrow_array::types::{Int8Type, Int16Type, Int32Type, Int64Type};
    use arrow_array::types::{UInt8Type, UInt16Type, UInt32Type, UInt64Type};
    use serde_json::Value;
    if col.is_null(i) {
        return Value::Null;
    }
    let t = col.data_type();
    if let Some(s) = string_at(col, i) {
        return Value::String(s);
    }
    match t {
        DataType::Boolean => Value::Bool(col.as_boolean().value(i)),
        DataType::Int8 => col.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => col.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => col.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => col.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => col.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => col.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => col.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => col.as_primitive::<UInt64Type>().value(i).into(),
        _ => number_at(col, i)
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
    }
}
