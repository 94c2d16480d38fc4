//! The file-to-file decontamination job: scan every document of the inputs against the evaluation
//! index, write the documents that stay (contaminated ones dropped, cut, or all kept when tagging)
//! in the input's format, `hits.parquet` (one row per hit), `rejects.jsonl` and `report.json`.
//!
//! Files are done one after another, each one's documents scanned in parallel. A finished file
//! leaves its hits and counts in the work directory; a rerun with the same inputs and config skips
//! it.

use super::DecontamConfig;
use super::index::EvalIndex;
use super::scan::{Action, Hit, ScanScratch, cut, scan};
use crate::control::{Control, peak_rss_bytes};
use crate::dedup::OnError;
use crate::dedup::output::{OutputFormat, output_rels, write_kept_edited};
use crate::error::{Error, Result};
use crate::input::InputFile;
use crate::job::{self, end_of_read, prepare, worker_pool, write_rejects_and_report, write_table};
use crate::reader::{FieldConfig, Item, read_file};
use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use rayon::prelude::*;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

const RESERVED: [&str; 3] = ["hits.parquet", "rejects.jsonl", "report.json"];

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecontamJobConfig {
    pub decontam: DecontamConfig,
    pub fields: FieldConfig,
    pub on_error: OnError,
    /// Format of the documents written out: each input's own, or Parquet.
    pub output_format: OutputFormat,
    pub threads: Option<usize>,
}

impl Default for DecontamJobConfig {
    fn default() -> Self {
        Self {
            decontam: DecontamConfig::default(),
            fields: FieldConfig::default(),
            on_error: OnError::Raise,
            output_format: OutputFormat::Input,
            threads: None,
        }
    }
}

/// One hit as `hits.parquet` stores it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct HitRow {
    doc_id: String,
    line: u64,
    benchmark: String,
    item_id: String,
    ngram: String,
    start: u64,
    end: u64,
    ngrams: u32,
}

/// What a finished file leaves in the work directory.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct FileDone {
    fingerprint: String,
    docs: u64,
    kept: u64,
    rejects: Vec<String>,
    hits: Vec<HitRow>,
    text_bytes: u64,
    /// Documents kept with their matched spans cut out (action `cut`).
    #[serde(default)]
    cut: u64,
    /// UTF-8 bytes of the text written out (cut documents count what is left).
    /// No default: a record written before this field existed is redone, not reported as 0.
    text_bytes_out: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct BenchmarkReport {
    pub name: String,
    pub items: u64,
    pub items_too_short: u64,
    pub contaminated_items: u64,
    pub hits: u64,
    pub documents: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DecontamReport {
    pub files: usize,
    pub files_resumed: usize,
    pub docs_in: u64,
    pub docs_out: u64,
    pub docs_contaminated: u64,
    /// Contaminated documents kept with the matched spans (and margins) cut out.
    pub docs_cut: u64,
    pub rejects: u64,
    pub text_bytes: u64,
    pub text_bytes_out: u64,
    pub benchmarks: Vec<BenchmarkReport>,
    pub boilerplate_ngrams: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
    pub peak_rss_bytes: u64,
}

pub fn run(
    inputs: &[String],
    output: &Path,
    cfg: &DecontamJobConfig,
    ctl: &Control,
) -> Result<DecontamReport> {
    worker_pool(cfg.threads)?.install(|| run_in_pool(inputs, output, cfg, ctl))
}

fn run_in_pool(
    inputs: &[String],
    output: &Path,
    cfg: &DecontamJobConfig,
    ctl: &Control,
) -> Result<DecontamReport> {
    let t0 = Instant::now();
    let index = cfg.decontam.build_index()?;
    let (files, work) = prepare(inputs, output, &RESERVED)?;
    let rels = output_rels(&files, cfg.output_format, &RESERVED)?;
    ctl.files_total.store(files.len() as u64, Ordering::Relaxed);
    ctl.stage.store(1, Ordering::Relaxed);

    let mut done = Vec::with_capacity(files.len());
    let mut resumed = 0;
    for (i, file) in files.iter().enumerate() {
        let fp = file_fingerprint(cfg, file);
        let marker = work.join(format!("{i:05}.decontam.json"));
        let dest = output.join(&rels[i]);
        let (d, was_resumed) = job::resume_or_run(
            &marker,
            &fp,
            &[&dest],
            |d: &FileDone| &d.fingerprint,
            || decontaminate_file(&index, file, &dest, cfg, fp.clone(), ctl),
        )?;
        resumed += usize::from(was_resumed);
        ctl.files_done.fetch_add(1, Ordering::Relaxed);
        done.push(d);
    }

    let names: Vec<&str> = index.benchmarks.iter().map(|b| b.name.as_str()).collect();
    write_hits(&output.join("hits.parquet"), &files, &done)?;
    let report = summarize(&index, &names, &files, &done, resumed, t0);
    let rejects = done
        .iter()
        .flat_map(|d| d.rejects.iter().map(String::as_str));
    write_rejects_and_report(output, rejects, &report)?;
    ctl.stage.store(2, Ordering::Relaxed);
    Ok(report)
}

fn file_fingerprint(cfg: &DecontamJobConfig, file: &InputFile) -> String {
    let mut c = cfg.clone();
    c.threads = None;
    job::file_fingerprint(&c, file)
}

fn decontaminate_file(
    index: &EvalIndex,
    file: &InputFile,
    dest: &Path,
    cfg: &DecontamJobConfig,
    fingerprint: String,
    ctl: &Control,
) -> Result<FileDone> {
    let mut kept: Vec<u64> = Vec::new();
    let mut edits = std::collections::HashMap::new();
    let mut d = FileDone {
        fingerprint,
        docs: 0,
        kept: 0,
        rejects: Vec::new(),
        hits: Vec::new(),
        text_bytes: 0,
        text_bytes_out: 0,
        cut: 0,
    };
    let action = cfg.decontam.action;
    let read = read_file(file, &cfg.fields, &ctl.cancel, |items| {
        let scanned: Vec<Option<Vec<Hit>>> = items
            .par_iter()
            .map_init(ScanScratch::default, |scratch, it| match it {
                Item::Doc(doc) => Some(scan(index, &doc.text, scratch)),
                Item::Reject(_) => None,
            })
            .collect();
        for (item, hits) in items.into_iter().zip(scanned) {
            match item {
                Item::Reject(r) => {
                    if cfg.on_error == OnError::Raise {
                        return Err(r.error);
                    }
                    d.rejects
                        .push(String::from_utf8_lossy(&r.json_line(&file.path)).into_owned());
                }
                Item::Doc(doc) => {
                    let hits = hits.expect("documents are scanned");
                    d.docs += 1;
                    d.text_bytes += doc.text.len() as u64;
                    ctl.docs_read.fetch_add(1, Ordering::Relaxed);
                    ctl.bytes_read
                        .fetch_add(doc.text.len() as u64, Ordering::Relaxed);
                    if hits.is_empty() || action == Action::Tag {
                        kept.push(doc.line);
                        d.text_bytes_out += doc.text.len() as u64;
                    } else if action == Action::Cut {
                        // GPT-3 / NeMo: the pieces left between cut spans, joined by a blank
                        // line; a document with none left (or too many) is dropped.
                        if let Some(pieces) = cut(&doc.text, &hits, &cfg.decontam.cut)
                            && !pieces.is_empty()
                        {
                            let text = pieces.join("\n\n");
                            d.text_bytes_out += text.len() as u64;
                            kept.push(doc.line);
                            edits.insert(doc.line, text);
                            d.cut += 1;
                        }
                    }
                    for h in &hits {
                        let item = &index.items[h.item as usize];
                        d.hits.push(HitRow {
                            doc_id: doc.id.clone(),
                            line: doc.line,
                            benchmark: index.benchmarks[item.benchmark as usize].name.clone(),
                            item_id: item.id.clone(),
                            ngram: h.ngram(&doc.text),
                            start: h.start as u64,
                            end: h.end as u64,
                            ngrams: h.ngrams,
                        });
                    }
                }
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
    Ok(d)
}

fn write_hits(dest: &Path, files: &[InputFile], done: &[FileDone]) -> Result<()> {
    let rows: Vec<(&InputFile, &HitRow)> = files
        .iter()
        .zip(done)
        .flat_map(|(f, d)| d.hits.iter().map(move |h| (f, h)))
        .collect();
    let strings = |get: &dyn Fn(&InputFile, &HitRow) -> String| -> ArrayRef {
        Arc::new(StringArray::from(
            rows.iter().map(|(f, h)| get(f, h)).collect::<Vec<_>>(),
        ))
    };
    let schema = Schema::new(vec![
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::UInt64, false),
        Field::new("benchmark", DataType::Utf8, false),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("ngram", DataType::Utf8, false),
        Field::new("start", DataType::UInt64, false),
        Field::new("end", DataType::UInt64, false),
        Field::new("ngrams", DataType::UInt32, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        strings(&|_, h| h.doc_id.clone()),
        strings(&|f, _| f.rel.to_string_lossy().into_owned()),
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|(_, h)| h.line),
        )),
        strings(&|_, h| h.benchmark.clone()),
        strings(&|_, h| h.item_id.clone()),
        strings(&|_, h| h.ngram.clone()),
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|(_, h)| h.start),
        )),
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|(_, h)| h.end),
        )),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|(_, h)| h.ngrams),
        )),
    ];
    let parquet_err = |e: &dyn std::fmt::Display| Error::Parquet {
        path: dest.to_path_buf(),
        message: e.to_string(),
    };
    let batch = RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| parquet_err(&e))?;
    write_table(dest, &batch)
}

fn summarize(
    index: &EvalIndex,
    names: &[&str],
    files: &[InputFile],
    done: &[FileDone],
    resumed: usize,
    t0: Instant,
) -> DecontamReport {
    let mut benchmarks: Vec<BenchmarkReport> = index
        .benchmarks
        .iter()
        .map(|b| BenchmarkReport {
            name: b.name.clone(),
            items: b.items,
            items_too_short: b.items_too_short,
            ..BenchmarkReport::default()
        })
        .collect();
    let mut items = std::collections::HashSet::new();
    let mut docs = std::collections::HashSet::new();
    let mut contaminated = std::collections::HashSet::new();
    for (fi, d) in done.iter().enumerate() {
        for h in &d.hits {
            let b = names
                .iter()
                .position(|n| *n == h.benchmark)
                .expect("known benchmark");
            benchmarks[b].hits += 1;
            if items.insert((b, h.item_id.clone())) {
                benchmarks[b].contaminated_items += 1;
            }
            if docs.insert((b, fi, h.line)) {
                benchmarks[b].documents += 1;
            }
            contaminated.insert((fi, h.line));
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let text_bytes: u64 = done.iter().map(|d| d.text_bytes).sum();
    DecontamReport {
        files: files.len(),
        files_resumed: resumed,
        docs_in: done.iter().map(|d| d.docs).sum(),
        docs_out: done.iter().map(|d| d.kept).sum(),
        docs_contaminated: contaminated.len() as u64,
        docs_cut: done.iter().map(|d| d.cut).sum(),
        rejects: done.iter().map(|d| d.rejects.len() as u64).sum(),
        text_bytes,
        text_bytes_out: done.iter().map(|d| d.text_bytes_out).sum(),
        benchmarks,
        boilerplate_ngrams: index.boilerplate_ngrams,
        seconds,
        mb_per_s: text_bytes as f64 / 1e6 / seconds.max(1e-9),
        peak_rss_bytes: peak_rss_bytes(),
    }
}
