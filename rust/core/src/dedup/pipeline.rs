//! The file-to-file dedup job: sketch → cluster → write.
//!
//! 1. Sketch: every input file (in parallel) is read, normalized, sketched and band-hashed into
//!    work files (`workfiles`); finished files are skipped on a rerun.
//! 2. Cluster: exact groups from the content hashes, near-duplicate candidates from the band index
//!    (which spills to disk past the memory budget), optional verification, union-find, one survivor
//!    per cluster by the keep policy.
//! 3. Write: kept records of each input to the output directory (atomic per file, skipped on a
//!    rerun when already written for the same decision), then `clusters.parquet`, `rejects.jsonl`
//!    and `report.json`.

use super::cluster::{Decision, DocTable, Reason};
use super::config::{DedupConfig, OnError, Verify};
use super::output::{output_rels, write_kept};
use super::report::{Report, Timings};
use super::workfiles::{self, Done, MetaRecord, SigFile, SketchWriter};
use crate::atomic::{AtomicFile, write_atomic};
use crate::band_index::BandIndex;
use crate::control::{Control, peak_rss_bytes};
use crate::error::{Error, Result};
use crate::input::InputFile;
use crate::job::{fingerprint, prepare, worker_pool};
use crate::lsh::{LshParams, band_hashes};
use crate::reader::{Item, read_file};
use crate::shingle::{jaccard, shingle_set};
use crate::sketch::{Scratch, Sketcher, estimate_jaccard};
use arrow_array::{ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use xxhash_rust::xxh3::xxh3_128;

const RESERVED: [&str; 3] = ["clusters.parquet", "rejects.jsonl", "report.json"];

/// Run the dedup job over `inputs` (files, directories, globs) into the directory `output`.
pub fn run(inputs: &[String], output: &Path, cfg: &DedupConfig, ctl: &Control) -> Result<Report> {
    cfg.validate()?;
    worker_pool(cfg.threads)?.install(|| run_in_pool(inputs, output, cfg, ctl))
}

fn run_in_pool(
    inputs: &[String],
    output: &Path,
    cfg: &DedupConfig,
    ctl: &Control,
) -> Result<Report> {
    let t0 = Instant::now();
    let (files, work) = prepare(inputs, output, &RESERVED)?;
    let rels = output_rels(&files, cfg.output_format, &RESERVED)?;
    let params = cfg.lsh_params();
    let sketch_fp = fingerprint(&(
        &cfg.fields,
        &cfg.sketch,
        params,
        cfg.on_error,
        crate::shingle::SHINGLE_HASH_VERSION,
    ));
    ctl.files_total.store(files.len() as u64, Ordering::Relaxed);
    ctl.stage.store(1, Ordering::Relaxed);

    // 1. Sketch.
    let sketcher = Sketcher::new(&cfg.sketch)?;
    let sketched: Vec<(Done, bool)> = files
        .par_iter()
        .enumerate()
        .map(|(i, f)| {
            ctl.check()?;
            let result = if let Some(done) = workfiles::load_done(&work, i, f, &sketch_fp) {
                ctl.docs_read.fetch_add(done.docs, Ordering::Relaxed);
                ctl.bytes_read.fetch_add(done.text_bytes, Ordering::Relaxed);
                (done, true)
            } else {
                (
                    sketch_file(&work, i, f, cfg, &sketcher, params, &sketch_fp, ctl)?,
                    false,
                )
            };
            ctl.files_done.fetch_add(1, Ordering::Relaxed);
            Ok(result)
        })
        .collect::<Result<_>>()
        .inspect_err(|_| ctl.cancel())?;
    let t_sketch = t0.elapsed().as_secs_f64();

    // 2. Cluster.
    ctl.check()?;
    ctl.stage.store(2, Ordering::Relaxed);
    let mut offsets = vec![0u64];
    for (d, _) in &sketched {
        offsets.push(offsets.last().expect("non-empty") + d.docs);
    }
    let n = *offsets.last().expect("non-empty");
    if n > u64::from(u32::MAX) {
        return Err(Error::Config(format!(
            "{n} documents exceed the 2^32 a single run handles; split the input"
        )));
    }
    let mut table = DocTable::with_capacity(n as usize);
    let mut lines = Vec::with_capacity(n as usize);
    for i in 0..files.len() {
        workfiles::read_meta(&work, i, params.bands, |rec: &MetaRecord, _| {
            table.push(rec.exact, rec.len, rec.key, rec.shingles);
            lines.push(rec.line);
        })?;
    }
    let mut uf = table.exact_union_find(cfg.exact);
    let mut report = Report {
        lsh: cfg.near.then_some(params),
        ..Report::default()
    };
    if cfg.near {
        let reps = table.near_candidates(&mut uf);
        let mut is_rep = vec![false; n as usize];
        for &r in &reps {
            is_rep[r as usize] = true;
        }
        let spill = work.join("spill");
        let mut index = BandIndex::new(
            cfg.memory_budget,
            &spill,
            (reps.len() * params.bands) as u64,
        )?;
        let mut g = 0usize;
        let mut push_err = None;
        for i in 0..files.len() {
            workfiles::read_meta(&work, i, params.bands, |_, keys| {
                if is_rep[g] && push_err.is_none() {
                    push_err = index.push(g as u32, keys).err();
                }
                g += 1;
            })?;
            if let Some(e) = push_err.take() {
                return Err(e);
            }
        }
        ctl.check()?;
        let (candidates, stats) = index.candidate_pairs()?;
        let _ = std::fs::remove_dir(&spill);
        report.candidate_pairs = candidates.len() as u64;
        report.index_bytes_per_doc = if reps.is_empty() {
            0.0
        } else {
            stats.peak_bytes as f64 / reps.len() as f64
        };
        report.index = stats;
        let joined = verify_pairs(candidates, cfg, &files, &offsets, &work, ctl)?;
        report.joined_pairs = joined.len() as u64;
        for (a, b) in joined {
            uf.union(a, b);
        }
    }
    let decision = table.decide(uf.labels(), cfg.keep);
    let t_cluster = t0.elapsed().as_secs_f64() - t_sketch;

    // 3. Write.
    ctl.check()?;
    ctl.stage.store(3, Ordering::Relaxed);
    let decision_fp = fingerprint(&(
        &sketch_fp,
        cfg.exact,
        cfg.near,
        cfg.threshold,
        cfg.verify,
        cfg.keep,
        params,
        cfg.output_format,
    ));
    let resumed_outputs: Vec<bool> = files
        .par_iter()
        .enumerate()
        .map(|(i, f)| {
            ctl.check()?;
            let range = offsets[i] as usize..offsets[i + 1] as usize;
            let kept: Vec<u64> = range
                .filter(|&g| decision.kept[g])
                .map(|g| lines[g])
                .collect();
            let kept_bytes: Vec<u8> = kept.iter().flat_map(|l| l.to_le_bytes()).collect();
            let marker_value = format!("{decision_fp}:{:032x}", xxh3_128(&kept_bytes));
            let marker = workfiles::path(&work, i, "out");
            let dest = output.join(&rels[i]);
            if dest.exists() && std::fs::read_to_string(&marker).is_ok_and(|m| m == marker_value) {
                return Ok(true);
            }
            let _ = std::fs::remove_file(&marker);
            write_kept(
                f,
                &kept,
                &cfg.fields,
                cfg.output_format,
                &dest,
                sketched[i].0.incomplete,
            )?;
            write_atomic(&marker, marker_value.as_bytes())?;
            Ok(false)
        })
        .collect::<Result<_>>()
        .inspect_err(|_| ctl.cancel())?;
    write_clusters(
        &output.join("clusters.parquet"),
        &files,
        &offsets,
        &lines,
        &decision,
        &work,
    )?;
    write_rejects(&output.join("rejects.jsonl"), files.len(), &work)?;

    // Report.
    report.files = files.len();
    report.files_resumed = sketched.iter().filter(|(_, r)| *r).count();
    report.outputs_resumed = resumed_outputs.iter().filter(|r| **r).count();
    report.docs_in = n;
    report.rejects = sketched.iter().map(|(d, _)| d.rejects).sum();
    report.incomplete_files = sketched.iter().filter(|(d, _)| d.incomplete).count() as u64;
    report.input_bytes = files.iter().map(|f| f.size).sum();
    let mut largest = 0;
    for i in 0..n as usize {
        let len = table.len[i];
        report.text_bytes_in += len;
        match decision.reason[i] {
            Reason::ExactDuplicate => report.exact_duplicates += 1,
            Reason::NearDuplicate => report.near_duplicates += 1,
            Reason::Kept => {
                report.clusters += 1;
                largest = largest.max(decision.cluster_size[i]);
            }
            Reason::Unique => {}
        }
        if decision.kept[i] {
            report.docs_out += 1;
            report.text_bytes_out += len;
        }
    }
    report.largest_cluster = u64::from(largest);
    report.resident_bytes_per_doc = (DocTable::bytes_per_doc() + 8 + 4 + 4 + 4 + 1 + 1) as f64;
    report.threads = rayon::current_num_threads();
    report.output_files = rels.iter().map(|r| r.display().to_string()).collect();
    report.peak_rss_bytes = peak_rss_bytes();
    let total = t0.elapsed().as_secs_f64();
    report.timings = Timings {
        sketch_s: t_sketch,
        cluster_s: t_cluster,
        write_s: total - t_sketch - t_cluster,
        total_s: total,
    };
    write_atomic(
        &output.join("report.json"),
        &serde_json::to_vec_pretty(&report).expect("serializes"),
    )?;
    ctl.stage.store(4, Ordering::Relaxed);
    Ok(report)
}

/// A document's meta record, band keys and signature.
type Sketched = (MetaRecord, Vec<u64>, Vec<u32>);

#[allow(clippy::too_many_arguments)]
fn sketch_file(
    work: &Path,
    index: usize,
    file: &InputFile,
    cfg: &DedupConfig,
    sketcher: &Sketcher,
    params: LshParams,
    fingerprint: &str,
    ctl: &Control,
) -> Result<Done> {
    let k = sketcher.num_perm();
    let mut writer = SketchWriter::create(work, index)?;
    let outcome = read_file(file, &cfg.fields, &ctl.cancel, |items| {
        let computed: Vec<Option<Sketched>> = items
            .par_iter()
            .map_init(Scratch::default, |scratch, item| {
                let Item::Doc(doc) = item else { return None };
                let mut sig = vec![0u32; k];
                let shingles = sketcher.sign_and_normalize(&doc.text, scratch, &mut sig);
                let mut bands = vec![0u64; params.bands];
                band_hashes(&sig, params, &mut bands);
                let rec = MetaRecord {
                    line: doc.line,
                    exact: xxh3_128(scratch.normalized.as_bytes()),
                    len: doc.text.len() as u64,
                    key: doc.key,
                    shingles: shingles.min(u32::MAX as usize) as u32,
                };
                Some((rec, bands, sig))
            })
            .collect();
        let mut docs = 0;
        let mut bytes = 0;
        for (item, comp) in items.into_iter().zip(computed) {
            match item {
                Item::Doc(doc) => {
                    let (rec, bands, sig) = comp.expect("computed for every doc");
                    writer.push_doc(&rec, &bands, &sig, &doc.id)?;
                    docs += 1;
                    bytes += rec.len;
                }
                Item::Reject(r) => {
                    if cfg.on_error == OnError::Raise {
                        return Err(r.error);
                    }
                    writer.push_reject(&file.path, &r)?;
                }
            }
        }
        ctl.docs_read.fetch_add(docs, Ordering::Relaxed);
        ctl.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    });
    match outcome {
        Ok(()) => writer.finish(file, fingerprint, false),
        Err(e @ (Error::Io { .. } | Error::Truncated { .. } | Error::Parquet { .. }))
            if cfg.on_error == OnError::Skip =>
        {
            writer.push_reject(
                &file.path,
                &crate::reader::Reject {
                    error: e,
                    raw: None,
                },
            )?;
            writer.finish(file, fingerprint, true)
        }
        Err(e) => Err(e),
    }
}

fn locate(offsets: &[u64], g: u32) -> (usize, u64) {
    let file = offsets.partition_point(|&o| o <= u64::from(g)) - 1;
    (file, u64::from(g) - offsets[file])
}

fn verify_pairs(
    candidates: Vec<(u32, u32)>,
    cfg: &DedupConfig,
    files: &[InputFile],
    offsets: &[u64],
    work: &Path,
    ctl: &Control,
) -> Result<Vec<(u32, u32)>> {
    match cfg.verify {
        Verify::None => Ok(candidates),
        Verify::Signature => {
            let k = cfg.sketch.num_perm;
            let sigs = (0..files.len())
                .map(|i| SigFile::open(work, i, k))
                .collect::<Result<Vec<_>>>()?;
            let keep = candidates
                .par_iter()
                .map_init(
                    || (vec![0u32; k], vec![0u32; k]),
                    |(sa, sb), &(a, b)| {
                        let (fa, la) = locate(offsets, a);
                        let (fb, lb) = locate(offsets, b);
                        sigs[fa].read(la, sa)?;
                        sigs[fb].read(lb, sb)?;
                        Ok(estimate_jaccard(sa, sb) >= cfg.threshold)
                    },
                )
                .collect::<Result<Vec<bool>>>()?;
            Ok(candidates
                .into_iter()
                .zip(keep)
                .filter_map(|(p, k)| k.then_some(p))
                .collect())
        }
        Verify::Exact => {
            let n = *offsets.last().expect("non-empty") as usize;
            let mut wanted = vec![false; n];
            for &(a, b) in &candidates {
                wanted[a as usize] = true;
                wanted[b as usize] = true;
            }
            let sets: HashMap<u32, Vec<u64>> = files
                .par_iter()
                .enumerate()
                .map(|(i, f)| {
                    let mut g = offsets[i] as u32;
                    let mut out = Vec::new();
                    let res = read_file(f, &cfg.fields, &ctl.cancel, |items| {
                        for item in items {
                            if let Item::Doc(doc) = item {
                                if wanted[g as usize] {
                                    let norm = crate::normalize::normalize(
                                        &doc.text,
                                        &cfg.sketch.normalize,
                                    );
                                    out.push((g, shingle_set(&norm, cfg.sketch.ngram)));
                                }
                                g += 1;
                            }
                        }
                        Ok(())
                    });
                    match res {
                        Ok(()) => Ok(out),
                        Err(Error::Interrupted) => Err(Error::Interrupted),
                        // A damaged file was already recorded as incomplete; its docs before the
                        // damage were collected.
                        Err(_) if cfg.on_error == OnError::Skip => Ok(out),
                        Err(e) => Err(e),
                    }
                })
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect();
            Ok(candidates
                .into_par_iter()
                .filter(|(a, b)| match (sets.get(a), sets.get(b)) {
                    (Some(sa), Some(sb)) => jaccard(sa, sb) >= cfg.threshold,
                    _ => false,
                })
                .collect())
        }
    }
}

fn write_clusters(
    dest: &Path,
    files: &[InputFile],
    offsets: &[u64],
    lines: &[u64],
    decision: &Decision,
    work: &Path,
) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::UInt64, false),
        Field::new("cluster_id", DataType::UInt64, false),
        Field::new("cluster_size", DataType::UInt32, false),
        Field::new("kept", DataType::Boolean, false),
        Field::new("reason", DataType::Utf8, false),
    ]));
    let (guard, f) = AtomicFile::create(dest)?;
    let perr = |e: &dyn std::fmt::Display| Error::Parquet {
        path: dest.to_path_buf(),
        message: e.to_string(),
    };
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(
            parquet::basic::ZstdLevel::default(),
        ))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(f, schema.clone(), Some(props))
        .map_err(|e| perr(&e))?;
    for (i, file) in files.iter().enumerate() {
        let mut ids = Vec::with_capacity((offsets[i + 1] - offsets[i]) as usize);
        workfiles::read_ids(work, i, |id| ids.push(id.to_owned()))?;
        let range = offsets[i] as usize..offsets[i + 1] as usize;
        let name = file.rel.display().to_string();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(vec![name; range.len()])),
            Arc::new(UInt64Array::from(lines[range.clone()].to_vec())),
            Arc::new(UInt64Array::from(
                decision.cluster[range.clone()]
                    .iter()
                    .map(|&c| u64::from(c))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(UInt32Array::from(
                decision.cluster_size[range.clone()].to_vec(),
            )),
            Arc::new(BooleanArray::from(decision.kept[range.clone()].to_vec())),
            Arc::new(StringArray::from(
                decision.reason[range]
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>(),
            )),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| perr(&e))?;
        writer.write(&batch).map_err(|e| perr(&e))?;
    }
    let f = writer.into_inner().map_err(|e| perr(&e))?;
    guard.commit(f)
}

fn write_rejects(dest: &Path, n_files: usize, work: &Path) -> Result<()> {
    let (guard, f) = AtomicFile::create(dest)?;
    let mut w = std::io::BufWriter::new(f);
    for i in 0..n_files {
        let p: PathBuf = workfiles::path(work, i, "rej");
        let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        w.write_all(&bytes)
            .map_err(|e| Error::io(guard.tmp_path(), e))?;
    }
    let f = w
        .into_inner()
        .map_err(|e| Error::io(guard.tmp_path(), e.into_error()))?;
    guard.commit(f)
}
