//! The file-to-file filter job: tag every document with the rules' statistics and failures, write
//! the documents that stay (with C4's line removals applied) in the input's format, and
//! `stats.parquet` (one row per document), `removed_lines.parquet` (one row per removed line),
//! `rejects.jsonl` and `report.json`.
//!
//! Files are done one after another, each one's documents in parallel. A finished file leaves its
//! rows and counts in the work directory; a rerun with the same inputs and config skips it.

use super::{FilterConfig, Outcome, Scratch};
use crate::atomic::AtomicFile;
use crate::control::{Control, peak_rss_bytes};
use crate::dedup::OnError;
use crate::dedup::output::{OutputFormat, output_rels, write_kept_edited};
use crate::error::{Error, Result};
use crate::input::InputFile;
use crate::job::{self, end_of_read, prepare, worker_pool, write_rejects_and_report, write_table};
use crate::reader::{FieldConfig, Item, read_file};
use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

const RESERVED: [&str; 4] = [
    "stats.parquet",
    "removed_lines.parquet",
    "rejects.jsonl",
    "report.json",
];

/// `drop` writes the documents that pass (line removals applied); `tag` writes every document as
/// it came and only records the findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterAction {
    Drop,
    Tag,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterJobConfig {
    pub filter: FilterConfig,
    pub action: FilterAction,
    pub fields: FieldConfig,
    pub on_error: OnError,
    /// Format of the documents written out: each input's own, or Parquet.
    pub output_format: OutputFormat,
    pub threads: Option<usize>,
}

impl Default for FilterJobConfig {
    fn default() -> Self {
        Self {
            filter: FilterConfig::default(),
            action: FilterAction::Drop,
            fields: FieldConfig::default(),
            on_error: OnError::Raise,
            output_format: OutputFormat::Input,
            threads: None,
        }
    }
}

/// What a finished file leaves in the work directory (its rows go to Parquet part files).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct FileDone {
    fingerprint: String,
    docs: u64,
    kept: u64,
    edited: u64,
    chars_in: u64,
    chars_out: u64,
    rejects: Vec<String>,
    /// Documents failing each rule (a document may fail several).
    rule_failures: BTreeMap<String, u64>,
    /// Lines removed by each line-level rule, over the documents that stayed.
    lines_removed: BTreeMap<String, u64>,
    text_bytes: u64,
    /// UTF-8 bytes of the text written out (after line removals).
    /// No default: a record written before this field existed is redone, not reported as 0.
    text_bytes_out: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FilterReport {
    pub files: usize,
    pub files_resumed: usize,
    pub docs_in: u64,
    pub docs_out: u64,
    pub docs_dropped: u64,
    pub docs_edited: u64,
    pub rejects: u64,
    pub chars_in: u64,
    pub chars_out: u64,
    pub rule_failures: BTreeMap<String, u64>,
    pub lines_removed: BTreeMap<String, u64>,
    pub text_bytes: u64,
    pub text_bytes_out: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
    pub peak_rss_bytes: u64,
}

pub fn run(
    inputs: &[String],
    output: &Path,
    cfg: &FilterJobConfig,
    ctl: &Control,
) -> Result<FilterReport> {
    cfg.filter.validate()?;
    worker_pool(cfg.threads)?.install(|| run_in_pool(inputs, output, cfg, ctl))
}

fn run_in_pool(
    inputs: &[String],
    output: &Path,
    cfg: &FilterJobConfig,
    ctl: &Control,
) -> Result<FilterReport> {
    let t0 = Instant::now();
    let (files, work) = prepare(inputs, output, &RESERVED)?;
    let rels = output_rels(&files, cfg.output_format, &RESERVED)?;
    ctl.files_total.store(files.len() as u64, Ordering::Relaxed);
    ctl.stage.store(1, Ordering::Relaxed);
    let names = cfg.filter.stat_names();

    let mut done = Vec::with_capacity(files.len());
    let mut resumed = 0;
    for (i, file) in files.iter().enumerate() {
        let fp = file_fingerprint(cfg, file);
        let marker = work.join(format!("{i:05}.filter.json"));
        let parts = [
            work.join(format!("{i:05}.stats.parquet")),
            work.join(format!("{i:05}.removed.parquet")),
        ];
        let dest = output.join(&rels[i]);
        let (d, was_resumed) = job::resume_or_run(
            &marker,
            &fp,
            &[&dest, &parts[0], &parts[1]],
            |d: &FileDone| &d.fingerprint,
            || filter_file(file, &dest, &parts, &names, cfg, fp.clone(), ctl),
        )?;
        resumed += usize::from(was_resumed);
        ctl.files_done.fetch_add(1, Ordering::Relaxed);
        done.push(d);
    }

    let part = |i: usize, kind: &str| work.join(format!("{i:05}.{kind}.parquet"));
    concat_parquet(
        &(0..files.len())
            .map(|i| part(i, "stats"))
            .collect::<Vec<_>>(),
        &stats_schema(&names),
        &output.join("stats.parquet"),
    )?;
    concat_parquet(
        &(0..files.len())
            .map(|i| part(i, "removed"))
            .collect::<Vec<_>>(),
        &removed_schema(),
        &output.join("removed_lines.parquet"),
    )?;
    let report = summarize(&files, &done, resumed, t0);
    let rejects = done
        .iter()
        .flat_map(|d| d.rejects.iter().map(String::as_str));
    write_rejects_and_report(output, rejects, &report)?;
    ctl.stage.store(2, Ordering::Relaxed);
    Ok(report)
}

fn file_fingerprint(cfg: &FilterJobConfig, file: &InputFile) -> String {
    let mut c = cfg.clone();
    c.threads = None;
    job::file_fingerprint(&c, file)
}

/// The rows of one file, column by column.
#[derive(Default)]
struct Rows {
    line: Vec<u64>,
    doc_id: Vec<String>,
    kept: Vec<bool>,
    edited: Vec<bool>,
    chars: Vec<u64>,
    failed: Vec<Vec<String>>,
    stats: Vec<Vec<f64>>,
    removed: Vec<(u64, String, u64, &'static str, String)>,
}

fn filter_file(
    file: &InputFile,
    dest: &Path,
    parts: &[std::path::PathBuf; 2],
    names: &[String],
    cfg: &FilterJobConfig,
    fingerprint: String,
    ctl: &Control,
) -> Result<FileDone> {
    let mut d = FileDone {
        fingerprint,
        ..FileDone::default()
    };
    let mut rows = Rows {
        stats: vec![Vec::new(); names.len()],
        ..Rows::default()
    };
    let mut kept: Vec<u64> = Vec::new();
    let mut edits: HashMap<u64, String> = HashMap::new();
    let tag = cfg.action == FilterAction::Tag;
    let read = read_file(file, &cfg.fields, &ctl.cancel, |items| {
        let outcomes: Vec<Option<Outcome>> = items
            .par_iter()
            .map_init(Scratch::default, |s, it| match it {
                Item::Doc(doc) => Some(cfg.filter.evaluate(&doc.text, s)),
                Item::Reject(_) => None,
            })
            .collect();
        for (item, outcome) in items.into_iter().zip(outcomes) {
            let doc = match item {
                Item::Reject(r) => {
                    if cfg.on_error == OnError::Raise {
                        return Err(r.error);
                    }
                    d.rejects
                        .push(String::from_utf8_lossy(&r.json_line(&file.path)).into_owned());
                    continue;
                }
                Item::Doc(doc) => doc,
            };
            let o = outcome.expect("documents are evaluated");
            let chars = super::text::char_len(&doc.text) as u64;
            d.docs += 1;
            d.chars_in += chars;
            d.text_bytes += doc.text.len() as u64;
            ctl.docs_read.fetch_add(1, Ordering::Relaxed);
            ctl.bytes_read
                .fetch_add(doc.text.len() as u64, Ordering::Relaxed);
            for rule in &o.failed {
                *d.rule_failures.entry(rule.clone()).or_default() += 1;
            }
            let keep = tag || o.kept();
            if keep {
                kept.push(doc.line);
                if let (Some(t), false) = (&o.text, tag) {
                    d.edited += 1;
                    d.chars_out += super::text::char_len(t) as u64;
                    d.text_bytes_out += t.len() as u64;
                    for r in &o.removed {
                        *d.lines_removed.entry(r.reason.to_owned()).or_default() += 1;
                    }
                    edits.insert(doc.line, t.clone());
                } else {
                    d.chars_out += chars;
                    d.text_bytes_out += doc.text.len() as u64;
                }
            }
            for r in o.removed {
                rows.removed
                    .push((doc.line, doc.id.clone(), r.line, r.reason, r.text));
            }
            rows.line.push(doc.line);
            rows.kept.push(o.failed.is_empty());
            rows.edited.push(o.text.is_some());
            rows.chars.push(chars);
            rows.doc_id.push(doc.id);
            rows.failed.push(o.failed);
            for (col, v) in rows.stats.iter_mut().zip(o.stats) {
                col.push(v);
            }
        }
        Ok(())
    });
    let incomplete = end_of_read(read, cfg.on_error, d.docs, &file.path, &mut d.rejects)?;
    d.kept = write_kept_edited(
        file,
        &kept,
        &edits,
        &cfg.fields,
        cfg.output_format,
        dest,
        incomplete,
    )?;
    let rel = file.rel.to_string_lossy().into_owned();
    write_table(
        &parts[0],
        &stats_batch(&rel, names, rows.line.len(), &rows)?,
    )?;
    write_table(&parts[1], &removed_batch(&rel, &rows.removed)?)?;
    Ok(d)
}

fn stats_schema(names: &[String]) -> Arc<Schema> {
    let mut fields = vec![
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::UInt64, false),
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("kept", DataType::Boolean, false),
        Field::new("edited", DataType::Boolean, false),
        Field::new("chars", DataType::UInt64, false),
        Field::new(
            "failed",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
    ];
    fields.extend(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Float64, false)),
    );
    Arc::new(Schema::new(fields))
}

fn removed_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::UInt64, false),
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("doc_line", DataType::UInt64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
    ]))
}

fn batch_error(e: &dyn std::fmt::Display) -> Error {
    Error::Config(format!("building a report table: {e}"))
}

fn stats_batch(rel: &str, names: &[String], n: usize, rows: &Rows) -> Result<RecordBatch> {
    let mut failed = ListBuilder::new(StringBuilder::new());
    for f in &rows.failed {
        for r in f {
            failed.values().append_value(r);
        }
        failed.append(true);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![rel; n])),
        Arc::new(UInt64Array::from(rows.line.clone())),
        Arc::new(StringArray::from(rows.doc_id.clone())),
        Arc::new(BooleanArray::from(rows.kept.clone())),
        Arc::new(BooleanArray::from(rows.edited.clone())),
        Arc::new(UInt64Array::from(rows.chars.clone())),
        Arc::new(failed.finish()),
    ];
    columns.extend(
        rows.stats
            .iter()
            .map(|c| Arc::new(Float64Array::from(c.clone())) as ArrayRef),
    );
    RecordBatch::try_new(stats_schema(names), columns).map_err(|e| batch_error(&e))
}

fn removed_batch(
    rel: &str,
    removed: &[(u64, String, u64, &'static str, String)],
) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![rel; removed.len()])),
        Arc::new(UInt64Array::from_iter_values(removed.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter_values(removed.iter().map(|r| &r.1))),
        Arc::new(UInt64Array::from_iter_values(removed.iter().map(|r| r.2))),
        Arc::new(StringArray::from_iter_values(removed.iter().map(|r| r.3))),
        Arc::new(StringArray::from_iter_values(removed.iter().map(|r| &r.4))),
    ];
    RecordBatch::try_new(removed_schema(), columns).map_err(|e| batch_error(&e))
}

fn parquet_error(path: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// One Parquet file holding the rows of `parts`, in order.
fn concat_parquet(parts: &[std::path::PathBuf], schema: &Arc<Schema>, dest: &Path) -> Result<()> {
    let (guard, f) = AtomicFile::create(dest)?;
    let mut w = ArrowWriter::try_new(f, schema.clone(), None)
        .map_err(|e| parquet_error(guard.tmp_path(), &e))?;
    for p in parts {
        let file = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(ParquetRecordBatchReaderBuilder::build)
            .map_err(|e| parquet_error(p, &e))?;
        for batch in reader {
            let batch = batch.map_err(|e| parquet_error(p, &e))?;
            w.write(&batch)
                .map_err(|e| parquet_error(guard.tmp_path(), &e))?;
        }
    }
    let f = w
        .into_inner()
        .map_err(|e| parquet_error(guard.tmp_path(), &e))?;
    guard.commit(f)
}

fn summarize(files: &[InputFile], done: &[FileDone], resumed: usize, t0: Instant) -> FilterReport {
    let mut r = FilterReport {
        files: files.len(),
        files_resumed: resumed,
        ..FilterReport::default()
    };
    for d in done {
        r.docs_in += d.docs;
        r.docs_out += d.kept;
        r.docs_edited += d.edited;
        r.rejects += d.rejects.len() as u64;
        r.chars_in += d.chars_in;
        r.chars_out += d.chars_out;
        r.text_bytes += d.text_bytes;
        r.text_bytes_out += d.text_bytes_out;
        for (k, v) in &d.rule_failures {
            *r.rule_failures.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &d.lines_removed {
            *r.lines_removed.entry(k.clone()).or_default() += v;
        }
    }
    r.docs_dropped = r.docs_in - r.docs_out;
    r.seconds = t0.elapsed().as_secs_f64();
    r.mb_per_s = r.text_bytes as f64 / 1e6 / r.seconds.max(1e-9);
    r.peak_rss_bytes = peak_rss_bytes();
    r
}
