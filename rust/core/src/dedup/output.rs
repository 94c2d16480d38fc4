//! Writing the kept documents of one input file, in the input's own format.
//!
//! JSONL records are copied byte for byte (every field carried untouched) without parsing them
//! again; Parquet rows are filtered with Arrow and rewritten with zstd compression.

use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::input::{Format, InputFile};
use crate::reader::{LineReader, parquet_reader};
use arrow_array::{BooleanArray, RecordBatchReader};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

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
    match file.format {
        Format::Parquet => write_parquet(file, kept, dest, incomplete),
        _ => write_jsonl(file, kept, dest, incomplete),
    }
}

fn write_jsonl(file: &InputFile, kept: &[u64], dest: &Path, incomplete: bool) -> Result<u64> {
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

fn write_parquet(file: &InputFile, kept: &[u64], dest: &Path, incomplete: bool) -> Result<u64> {
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
        row += batch.num_rows() as u64;
        let filtered =
            arrow_select::filter::filter_record_batch(&batch, &mask).map_err(|e| perr(&e))?;
        written += filtered.num_rows() as u64;
        writer.write(&filtered).map_err(|e| perr(&e))?;
    }
    let f = writer.into_inner().map_err(|e| perr(&e))?;
    guard.commit(f)?;
    Ok(written)
}
