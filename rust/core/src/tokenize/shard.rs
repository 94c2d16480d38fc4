//! Writing one shard: `NNNNN.tokens` (little-endian ids, streamed to disk with a running xxh3) and
//! `NNNNN.parquet` (one row per document), both committed atomically when the shard closes.

use super::config::{ColumnType, MetadataColumn};
use super::manifest::{Dtype, ShardEntry, hex64};
use crate::atomic::{AtomicFile, write_atomic};
use crate::error::{Error, Result};
use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::Value;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

#[must_use]
pub fn tokens_name(index: usize) -> String {
    format!("{index:05}.tokens")
}

#[must_use]
pub fn table_name(index: usize) -> String {
    format!("{index:05}.parquet")
}

enum MetaBuilder {
    String(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
}

impl MetaBuilder {
    fn new(ty: ColumnType) -> Self {
        match ty {
            ColumnType::String => MetaBuilder::String(StringBuilder::new()),
            ColumnType::Int64 => MetaBuilder::Int64(Int64Builder::new()),
            ColumnType::Float64 => MetaBuilder::Float64(Float64Builder::new()),
            ColumnType::Bool => MetaBuilder::Bool(BooleanBuilder::new()),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            MetaBuilder::String(b) => Arc::new(b.finish()),
            MetaBuilder::Int64(b) => Arc::new(b.finish()),
            MetaBuilder::Float64(b) => Arc::new(b.finish()),
            MetaBuilder::Bool(b) => Arc::new(b.finish()),
        }
    }
}

fn data_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
    }
}

/// A metadata value as the column's type, or why it cannot be one. Strings take any scalar (numbers
/// and booleans as their JSON text); numbers are not parsed out of strings.
enum Cell {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

fn convert(v: &Value, ty: ColumnType) -> Result<Cell, String> {
    Ok(match (ty, v) {
        (_, Value::Null) => Cell::Null,
        (ColumnType::String, Value::String(s)) => Cell::Str(s.clone()),
        (ColumnType::String, Value::Number(_) | Value::Bool(_)) => Cell::Str(v.to_string()),
        (ColumnType::Int64, Value::Number(n)) => Cell::Int(
            n.as_i64()
                .ok_or_else(|| format!("{n} is not a 64-bit integer"))?,
        ),
        (ColumnType::Float64, Value::Number(n)) => Cell::Float(n.as_f64().unwrap_or(f64::NAN)),
        (ColumnType::Bool, Value::Bool(b)) => Cell::Bool(*b),
        _ => {
            let kind = match v {
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                Value::Array(_) => "an array",
                _ => "an object",
            };
            return Err(format!(
                "is {kind}, not {}",
                serde_json::to_string(&ty).unwrap_or_default()
            ));
        }
    })
}

pub struct ShardWriter {
    index: usize,
    dtype: Dtype,
    guard: AtomicFile,
    out: BufWriter<File>,
    hasher: Xxh3,
    bytes: Vec<u8>,
    n_tokens: u64,
    doc_ids: StringBuilder,
    offsets: Vec<u64>,
    lens: Vec<u32>,
    sources: StringBuilder,
    columns: Vec<MetadataColumn>,
    meta: Vec<MetaBuilder>,
}

impl ShardWriter {
    pub fn create(
        dir: &Path,
        index: usize,
        dtype: Dtype,
        columns: &[MetadataColumn],
    ) -> Result<Self> {
        let (guard, f) = AtomicFile::create(&dir.join(tokens_name(index)))?;
        Ok(Self {
            index,
            dtype,
            guard,
            out: BufWriter::with_capacity(1 << 20, f),
            hasher: Xxh3::new(),
            bytes: Vec::new(),
            n_tokens: 0,
            doc_ids: StringBuilder::new(),
            offsets: Vec::new(),
            lens: Vec::new(),
            sources: StringBuilder::new(),
            columns: columns.to_vec(),
            meta: columns.iter().map(|c| MetaBuilder::new(c.ty)).collect(),
        })
    }

    #[must_use]
    pub fn n_tokens(&self) -> u64 {
        self.n_tokens
    }

    #[must_use]
    pub fn n_docs(&self) -> usize {
        self.lens.len()
    }

    /// Check that `extra` converts to the metadata column types; the message names the column.
    pub fn check_metadata(&self, extra: &[Value]) -> Result<(), String> {
        for (c, v) in self.columns.iter().zip(extra) {
            convert(v, c.ty).map_err(|m| format!("metadata field {:?} {m}", c.name))?;
        }
        Ok(())
    }

    /// Append one document (its ids already end with EOS). `extra` must have passed
    /// `check_metadata`.
    pub fn push(&mut self, doc_id: &str, source: &str, ids: &[u32], extra: &[Value]) -> Result<()> {
        self.bytes.clear();
        match self.dtype {
            Dtype::Uint16 => {
                for &t in ids {
                    self.bytes.extend_from_slice(&(t as u16).to_le_bytes());
                }
            }
            Dtype::Uint32 => {
                for &t in ids {
                    self.bytes.extend_from_slice(&t.to_le_bytes());
                }
            }
        }
        self.hasher.update(&self.bytes);
        self.out
            .write_all(&self.bytes)
            .map_err(|e| Error::io(self.guard.tmp_path(), e))?;
        self.doc_ids.append_value(doc_id);
        self.sources.append_value(source);
        self.offsets.push(self.n_tokens);
        self.lens.push(ids.len() as u32);
        self.n_tokens += ids.len() as u64;
        for ((b, c), v) in self.meta.iter_mut().zip(&self.columns).zip(extra) {
            match (b, convert(v, c.ty).unwrap_or(Cell::Null)) {
                (MetaBuilder::String(b), Cell::Str(s)) => b.append_value(s),
                (MetaBuilder::Int64(b), Cell::Int(x)) => b.append_value(x),
                (MetaBuilder::Float64(b), Cell::Float(x)) => b.append_value(x),
                (MetaBuilder::Bool(b), Cell::Bool(x)) => b.append_value(x),
                (MetaBuilder::String(b), _) => b.append_null(),
                (MetaBuilder::Int64(b), _) => b.append_null(),
                (MetaBuilder::Float64(b), _) => b.append_null(),
                (MetaBuilder::Bool(b), _) => b.append_null(),
            }
        }
        Ok(())
    }

    /// Commit both files of the shard and describe them.
    pub fn finish(mut self, dir: &Path) -> Result<ShardEntry> {
        let tmp = self.guard.tmp_path().to_path_buf();
        let f = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        let tokens_bytes = self.n_tokens * self.dtype.size() as u64;
        self.guard.commit(f)?;

        let mut fields = vec![
            Field::new("doc_id", DataType::Utf8, false),
            Field::new("token_offset", DataType::UInt64, false),
            Field::new("n_tokens", DataType::UInt32, false),
            Field::new("source", DataType::Utf8, false),
        ];
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(self.doc_ids.finish()),
            Arc::new(UInt64Array::from(std::mem::take(&mut self.offsets))),
            Arc::new(UInt32Array::from(std::mem::take(&mut self.lens))),
            Arc::new(self.sources.finish()),
        ];
        for (c, b) in self.columns.iter().zip(&mut self.meta) {
            fields.push(Field::new(&c.name, data_type(c.ty), true));
            arrays.push(b.finish());
        }
        let table_path = dir.join(table_name(self.index));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| {
            Error::Parquet {
                path: table_path.clone(),
                message: e.to_string(),
            }
        })?;
        let table = parquet_bytes(&batch).map_err(|e| Error::Parquet {
            path: table_path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&table_path, &table)?;
        Ok(ShardEntry {
            index: self.index,
            tokens_file: tokens_name(self.index),
            table_file: table_name(self.index),
            documents: batch.num_rows() as u64,
            tokens: self.n_tokens,
            tokens_bytes,
            tokens_xxh3: hex64(self.hasher.digest()),
            table_bytes: table.len() as u64,
            table_xxh3: hex64(xxh3_64(&table)),
        })
    }
}

fn parquet_bytes(batch: &RecordBatch) -> parquet::errors::Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    Ok(buf)
}
