//! The tokenize job: documents from any reader → token ids (in parallel) → shards, in input order.
//!
//! Files are read in order and each batch of documents is tokenized in parallel, then appended to
//! the open shard in input order; a shard closes after the document that takes it past the size
//! limit. Shard boundaries therefore depend only on the input and the config, never on the thread
//! count, and a rerun after an interruption keeps every closed shard and restarts reading just
//! after the last document it holds. Each closed shard leaves a record in the work directory; the
//! manifest is written last, so a dataset with a manifest is complete.

use super::config::{MetadataColumn, TokenizeConfig};
use super::encoder::Encoder;
use super::manifest::{
    Dtype, MANIFEST, Manifest, ShardEntry, TOKENIZER, TokenizerInfo, Totals, sha256_hex,
};
use super::shard::{ShardWriter, table_name, tokens_name};
use crate::atomic::write_atomic;
use crate::control::{Control, peak_rss_bytes};
use crate::dedup::OnError;
use crate::error::{Error, Result};
use crate::input::InputFile;
use crate::job::{fingerprint, prepare, worker_pool};
use crate::reader::{Item, Reject, read_file};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

const REJECTS: &str = "rejects.jsonl";
const REPORT: &str = "report.json";

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TokenizeReport {
    pub files: usize,
    pub documents: u64,
    pub tokens: u64,
    pub shards: u64,
    /// Shards an earlier, interrupted run had finished (not redone).
    pub shards_resumed: u64,
    pub rejected: u64,
    pub text_bytes: u64,
    pub dtype: Option<Dtype>,
    pub seconds: f64,
    /// Throughput of this run's own work (resumed shards excluded).
    pub mb_per_s: f64,
    pub tokens_per_s: f64,
    pub peak_rss_bytes: u64,
    pub threads: usize,
    /// True when the dataset was already complete for these inputs and config.
    pub up_to_date: bool,
}

/// What a closed shard leaves in the work directory: its entry and where reading stopped.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct ShardRecord {
    fingerprint: String,
    entry: ShardEntry,
    /// Index of the input file and 1-based line (row) of the last record the shard consumed.
    end_file: usize,
    end_line: u64,
    rejected: u64,
    text_bytes: u64,
}

fn record_path(work: &Path, index: usize) -> PathBuf {
    work.join(format!("{index:05}.json"))
}

fn rejects_path(work: &Path, index: usize) -> PathBuf {
    work.join(format!("{index:05}.rej"))
}

/// Tokenize `inputs` (files, directories, globs) into the token dataset directory `output`.
pub fn run(
    inputs: &[String],
    output: &Path,
    cfg: &TokenizeConfig,
    ctl: &Control,
) -> Result<TokenizeReport> {
    cfg.validate()?;
    let pool = worker_pool(cfg.threads)?;
    // This thread only coordinates (orders results, writes shards); the pool's threads tokenize.
    run_with_pool(inputs, output, cfg, ctl, &pool)
}

struct Job<'a> {
    cfg: &'a TokenizeConfig,
    ctl: &'a Control,
    encoder: &'a Encoder,
    dtype: Dtype,
    columns: Vec<MetadataColumn>,
    output: &'a Path,
    work: PathBuf,
    fingerprint: String,
    limit_tokens: u64,
    /// Closed shards, resumed ones first.
    records: Vec<ShardRecord>,
    open: Option<ShardWriter>,
    pending_rejects: Vec<u8>,
    pending_rejected: u64,
    pending_text_bytes: u64,
}

fn run_with_pool(
    inputs: &[String],
    output: &Path,
    cfg: &TokenizeConfig,
    ctl: &Control,
    pool: &rayon::ThreadPool,
) -> Result<TokenizeReport> {
    let t0 = Instant::now();
    // Inputs are never written into the dataset, so no input name is reserved.
    let (files, work) = prepare(inputs, output, &[])?;
    let tok_path = Path::new(&cfg.tokenizer);
    let tok_bytes = std::fs::read(tok_path).map_err(|e| Error::io(tok_path, e))?;
    let encoder = Encoder::from_file(tok_path, cfg.eos_token.as_deref(), cfg.bos_token.as_deref())?;
    if cfg.add_bos && encoder.special.bos.is_none() {
        return Err(Error::Tokenizer {
            path: tok_path.to_path_buf(),
            message: "add_bos is set but the tokenizer has no beginning-of-document token; name one with bos_token".into(),
        });
    }
    // The dataset keeps the tokenizer it was made with: the given file, or its extension.
    let tok_bytes = if encoder.added.is_empty() {
        tok_bytes
    } else {
        encoder.to_json()?.into_bytes()
    };
    let tok_sha = sha256_hex(&tok_bytes);
    let dtype = Dtype::for_vocab(encoder.vocab_size);
    let columns = cfg.metadata_columns()?;
    let fingerprint = dataset_fingerprint(cfg, &files, &tok_sha);
    let threads = pool.current_num_threads();

    if let Ok(m) = Manifest::read(output)
        && m.fingerprint == fingerprint
        && outputs_present(output, &m.shards)
    {
        ctl.stage.store(2, Ordering::Relaxed);
        return Ok(TokenizeReport {
            files: files.len(),
            documents: m.totals.documents,
            tokens: m.totals.tokens,
            shards: m.totals.shards,
            shards_resumed: m.totals.shards,
            rejected: m.totals.rejected,
            text_bytes: m.totals.text_bytes,
            dtype: Some(m.dtype),
            seconds: t0.elapsed().as_secs_f64(),
            peak_rss_bytes: peak_rss_bytes(),
            threads,
            up_to_date: true,
            ..TokenizeReport::default()
        });
    }

    let records = load_records(output, &work, &fingerprint);
    // A dataset being rewritten must not keep shards of an older run past the resumed ones, nor a
    // manifest that describes them.
    remove_stale(output, &work, records.len())?;
    let limit_tokens = cfg
        .shard_tokens
        .unwrap_or_else(|| (cfg.shard_bytes / dtype.size() as u64).max(1));
    let resume_at = records.last().map(|r| (r.end_file, r.end_line));
    let shards_resumed = records.len() as u64;

    let mut job = Job {
        cfg,
        ctl,
        encoder: &encoder,
        dtype,
        columns,
        output,
        work,
        fingerprint,
        limit_tokens,
        records,
        open: None,
        pending_rejects: Vec::new(),
        pending_rejected: 0,
        pending_text_bytes: 0,
    };
    let fields = cfg.reader_fields()?;
    ctl.files_total.store(files.len() as u64, Ordering::Relaxed);
    ctl.stage.store(1, Ordering::Relaxed);
    // A reader thread reads, decompresses and parses the next batches while this one tokenizes;
    // the channel holds two batches, which bounds memory. The reader has a one-thread pool of its
    // own: a worker of the tokenizing pool blocked on a full channel could be the one the
    // tokenizing batch waits for. Parsing runs at hundreds of MB/s, far ahead of tokenizing.
    let reader_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| Error::Config(format!("cannot start the reader thread: {e}")))?;
    let first_file = resume_at.map_or(0, |(f, _)| f);
    ctl.files_done.store(first_file as u64, Ordering::Relaxed);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(2);
    std::thread::scope(|scope| -> Result<()> {
        let reader = scope.spawn(|| {
            reader_pool.install(|| {
                for (fi, file) in files.iter().enumerate().skip(first_file) {
                    let result = read_file(file, &fields, &ctl.cancel, |items| {
                        tx.send(Msg::Batch(fi, items))
                            .map_err(|_| Error::Interrupted)
                    });
                    if tx.send(Msg::FileEnd(fi, result)).is_err() {
                        break;
                    }
                }
                drop(tx);
            });
        });
        let consumed =
            pool.in_place_scope(|tasks| consume(&mut job, &files, resume_at, &rx, tasks));
        if consumed.is_err() {
            // Stop the reader: it sees the flag between batches, or a closed channel.
            ctl.cancel();
        }
        drop(rx);
        reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        consumed
    })?;
    ctl.check()?;
    if job.open.as_ref().is_some_and(|s| s.n_docs() > 0) {
        let (fi, line) = (files.len().saturating_sub(1), u64::MAX);
        job.close_shard(fi, line)?;
    }
    job.finish(
        &tok_bytes,
        tok_path,
        tok_sha,
        t0,
        files.len(),
        shards_resumed,
        threads,
    )
}

enum Msg {
    /// A batch of records of input file `.0`.
    Batch(usize, Vec<Item>),
    /// Input file `.0` was read to its end (or to a failure).
    FileEnd(usize, Result<()>),
}

/// Text being tokenized at once, at most; bounds memory while long documents finish.
const IN_FLIGHT_BYTES: usize = 64 << 20;

/// A record waiting for its turn to be written, in input order.
enum Pending {
    Doc {
        fi: usize,
        line: u64,
        id: String,
        extra: Vec<serde_json::Value>,
        text_len: usize,
        ids: std::sync::mpsc::Receiver<Result<Vec<u32>>>,
    },
    Reject(usize, Reject),
    FileEnd(usize, Result<()>),
}

/// Tokenize the reader's records on the pool, one task per document, and append the results to
/// the shards in input order. Documents are not grouped into batches that wait for their slowest
/// member: a long document occupies one thread while the others go on with the documents after it.
fn consume<'a: 's, 's>(
    job: &mut Job<'a>,
    files: &[InputFile],
    resume_at: Option<(usize, u64)>,
    rx: &std::sync::mpsc::Receiver<Msg>,
    tasks: &rayon::Scope<'s>,
) -> Result<()> {
    let skip_to = |fi: usize| match resume_at {
        Some((f, line)) if fi == f => line,
        _ => 0,
    };
    let encoder: &'a Encoder = job.encoder;
    let bos = if job.cfg.add_bos {
        encoder.special.bos
    } else {
        None
    };
    let mut queue: std::collections::VecDeque<Pending> = std::collections::VecDeque::new();
    let mut in_flight = 0usize;
    let mut sources: Vec<Option<String>> = vec![None; files.len()];
    for msg in rx {
        match msg {
            Msg::Batch(fi, items) => {
                let skip = skip_to(fi);
                for item in items {
                    match item {
                        Item::Doc(d) if d.line > skip => {
                            let (tx, ids) = std::sync::mpsc::sync_channel(1);
                            let text = d.text;
                            let text_len = text.len();
                            tasks.spawn(move |_| {
                                let mut out = Vec::with_capacity(text.len() / 3 + 2);
                                out.extend(bos);
                                let r = encoder.encode_cached(&text, &mut out).map(|()| {
                                    out.push(encoder.special.eos);
                                    out
                                });
                                let _ = tx.send(r);
                            });
                            in_flight += text_len;
                            queue.push_back(Pending::Doc {
                                fi,
                                line: d.line,
                                id: d.id,
                                extra: d.extra,
                                text_len,
                                ids,
                            });
                        }
                        Item::Reject(r) if r.error.line().is_none_or(|l| l > skip) => {
                            queue.push_back(Pending::Reject(fi, r));
                        }
                        _ => {}
                    }
                }
            }
            Msg::FileEnd(fi, result) => queue.push_back(Pending::FileEnd(fi, result)),
        }
        // Write what is ready; wait for the oldest document while too much text is in flight.
        while let Some(front) = queue.front() {
            let ids = match front {
                Pending::Doc { ids, .. } if in_flight <= IN_FLIGHT_BYTES => match ids.try_recv() {
                    Ok(r) => Some(r?),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => return Err(task_failed()),
                },
                Pending::Doc { ids, .. } => Some(ids.recv().map_err(|_| task_failed())??),
                _ => None,
            };
            let entry = queue.pop_front().expect("front exists");
            in_flight -= settle(job, files, &mut sources, entry, ids)?;
        }
    }
    while let Some(entry) = queue.pop_front() {
        let ids = match &entry {
            Pending::Doc { ids, .. } => Some(ids.recv().map_err(|_| task_failed())??),
            _ => None,
        };
        settle(job, files, &mut sources, entry, ids)?;
    }
    Ok(())
}

fn task_failed() -> Error {
    Error::Config("a tokenizing task stopped without a result".into())
}

/// Write one record in its turn; returns the text bytes it releases from the in-flight budget.
fn settle(
    job: &mut Job<'_>,
    files: &[InputFile],
    sources: &mut [Option<String>],
    entry: Pending,
    ids: Option<Vec<u32>>,
) -> Result<usize> {
    match entry {
        Pending::Doc {
            fi,
            line,
            id,
            extra,
            text_len,
            ..
        } => {
            let source = sources[fi]
                .get_or_insert_with(|| source_name(&files[fi]))
                .clone();
            let ids = ids.expect("documents come with their ids");
            job.push_doc(fi, &files[fi], &source, line, &id, &extra, text_len, &ids)?;
            Ok(text_len)
        }
        Pending::Reject(fi, r) => {
            job.reject(&files[fi].path, &r)?;
            Ok(0)
        }
        Pending::FileEnd(fi, result) => {
            match result {
                Ok(()) => {}
                // The file ends early or cannot be read: what was read is kept, and the failure
                // is a reject of its own.
                Err(e) if job.cfg.on_error == OnError::Skip && is_file_level(&e) => {
                    let reject = Reject {
                        error: e,
                        raw: None,
                    };
                    job.reject(&files[fi].path, &reject)?;
                }
                Err(e) => return Err(e),
            }
            job.ctl.files_done.fetch_add(1, Ordering::Relaxed);
            Ok(0)
        }
    }
}

fn is_file_level(e: &Error) -> bool {
    matches!(
        e,
        Error::Truncated { .. } | Error::Io { .. } | Error::Parquet { .. }
    )
}

impl Job<'_> {
    #[allow(clippy::too_many_arguments)]
    fn push_doc(
        &mut self,
        fi: usize,
        file: &InputFile,
        source: &str,
        line: u64,
        id: &str,
        extra: &[serde_json::Value],
        text_len: usize,
        ids: &[u32],
    ) -> Result<()> {
        if self.open.is_none() {
            let index = self.records.len();
            self.open = Some(ShardWriter::create(
                self.output,
                index,
                self.dtype,
                &self.columns,
            )?);
        }
        let shard = self.open.as_mut().expect("opened above");
        if let Err(message) = shard.check_metadata(extra) {
            let error = Error::Field {
                path: file.path.clone(),
                line,
                message,
            };
            return self.reject(&file.path, &Reject { error, raw: None });
        }
        shard.push(id, source, ids, extra)?;
        self.pending_text_bytes += text_len as u64;
        self.ctl.docs_read.fetch_add(1, Ordering::Relaxed);
        self.ctl
            .bytes_read
            .fetch_add(text_len as u64, Ordering::Relaxed);
        if shard.n_tokens() >= self.limit_tokens {
            self.close_shard(fi, line)?;
        }
        Ok(())
    }

    fn reject(&mut self, path: &Path, r: &Reject) -> Result<()> {
        if self.cfg.on_error == OnError::Raise {
            return Err(clone_error(&r.error));
        }
        self.pending_rejects.extend_from_slice(&r.json_line(path));
        self.pending_rejected += 1;
        Ok(())
    }

    fn close_shard(&mut self, end_file: usize, end_line: u64) -> Result<()> {
        let shard = self.open.take().expect("a shard is open");
        let entry = shard.finish(self.output)?;
        let index = entry.index;
        write_atomic(&rejects_path(&self.work, index), &self.pending_rejects)?;
        let record = ShardRecord {
            fingerprint: self.fingerprint.clone(),
            entry,
            end_file,
            end_line,
            rejected: self.pending_rejected,
            text_bytes: self.pending_text_bytes,
        };
        let bytes = serde_json::to_vec_pretty(&record).expect("a record serializes");
        write_atomic(&record_path(&self.work, index), &bytes)?;
        self.records.push(record);
        self.pending_rejects.clear();
        self.pending_rejected = 0;
        self.pending_text_bytes = 0;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        self,
        tok_bytes: &[u8],
        tok_path: &Path,
        tok_sha: String,
        t0: Instant,
        n_files: usize,
        shards_resumed: u64,
        threads: usize,
    ) -> Result<TokenizeReport> {
        write_atomic(&self.output.join(TOKENIZER), tok_bytes)?;
        // Rejects of closed shards, then those after the last shard (a trailing run of rejects).
        let mut rejects = Vec::new();
        for r in &self.records {
            let p = rejects_path(&self.work, r.entry.index);
            rejects.extend(std::fs::read(&p).map_err(|e| Error::io(&p, e))?);
        }
        rejects.extend_from_slice(&self.pending_rejects);
        write_atomic(&self.output.join(REJECTS), &rejects)?;

        let totals = Totals {
            documents: self.records.iter().map(|r| r.entry.documents).sum(),
            tokens: self.records.iter().map(|r| r.entry.tokens).sum(),
            shards: self.records.len() as u64,
            rejected: self.records.iter().map(|r| r.rejected).sum::<u64>() + self.pending_rejected,
            text_bytes: self.records.iter().map(|r| r.text_bytes).sum(),
        };
        let manifest = Manifest {
            format: super::manifest::FORMAT.into(),
            version: super::manifest::VERSION,
            tokenizer: TokenizerInfo {
                file: TOKENIZER.into(),
                name: tok_path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256: tok_sha,
                vocab_size: self.encoder.vocab_size,
            },
            dtype: self.dtype,
            special_ids: self.encoder.special.clone(),
            bos_per_document: self.cfg.add_bos,
            fields: self.cfg.fields.clone(),
            metadata_columns: self.columns.clone(),
            totals: totals.clone(),
            shards: self.records.iter().map(|r| r.entry.clone()).collect(),
            fingerprint: self.fingerprint.clone(),
            created_by: format!("shardforge {}", env!("CARGO_PKG_VERSION")),
        };
        let seconds = t0.elapsed().as_secs_f64();
        let fresh = &self.records[shards_resumed as usize..];
        let fresh_bytes: u64 = fresh.iter().map(|r| r.text_bytes).sum();
        let fresh_tokens: u64 = fresh.iter().map(|r| r.entry.tokens).sum();
        let report = TokenizeReport {
            files: n_files,
            documents: totals.documents,
            tokens: totals.tokens,
            shards: totals.shards,
            shards_resumed,
            rejected: totals.rejected,
            text_bytes: totals.text_bytes,
            dtype: Some(self.dtype),
            seconds,
            mb_per_s: fresh_bytes as f64 / 1e6 / seconds.max(1e-9),
            tokens_per_s: fresh_tokens as f64 / seconds.max(1e-9),
            peak_rss_bytes: peak_rss_bytes(),
            threads,
            up_to_date: false,
        };
        let bytes = serde_json::to_vec_pretty(&report).expect("a report serializes");
        write_atomic(&self.output.join(REPORT), &bytes)?;
        let bytes = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
        write_atomic(&self.output.join(MANIFEST), &bytes)?;
        self.ctl.stage.store(2, Ordering::Relaxed);
        Ok(report)
    }
}

/// Errors are not `Clone` (they hold `io::Error`); a rejected record's error is re-raised by kind.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::Json {
            path,
            line,
            message,
        } => Error::Json {
            path: path.clone(),
            line: *line,
            message: message.clone(),
        },
        Error::Utf8 { path, line, offset } => Error::Utf8 {
            path: path.clone(),
            line: *line,
            offset: *offset,
        },
        Error::Field {
            path,
            line,
            message,
        } => Error::Field {
            path: path.clone(),
            line: *line,
            message: message.clone(),
        },
        other => Error::Config(other.to_string()),
    }
}

/// The `source` column: the input's path relative to its root, without the format extension.
fn source_name(file: &InputFile) -> String {
    let rel = file.rel.to_string_lossy();
    for ext in [".jsonl.gz", ".jsonl.zst", ".jsonl", ".parquet"] {
        if let Some(stem) = rel.strip_suffix(ext) {
            return stem.to_owned();
        }
    }
    rel.into_owned()
}

/// What decides the dataset: config, inputs and tokenizer; neither the thread count nor the
/// tokenizer's path does.
fn dataset_fingerprint(cfg: &TokenizeConfig, files: &[InputFile], tok_sha: &str) -> String {
    let mut c = cfg.clone();
    c.threads = None;
    c.tokenizer.clear();
    let inputs: Vec<_> = files
        .iter()
        .map(|f| (f.rel.to_string_lossy(), f.size, f.mtime_ns))
        .collect();
    fingerprint(&(c, inputs, tok_sha, super::manifest::VERSION))
}

fn outputs_present(dir: &Path, shards: &[ShardEntry]) -> bool {
    shards.iter().all(|s| {
        file_len(&dir.join(&s.tokens_file)) == Some(s.tokens_bytes)
            && file_len(&dir.join(&s.table_file)) == Some(s.table_bytes)
    })
}

fn file_len(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

/// Consecutive shard records of this fingerprint whose files are still there.
fn load_records(dir: &Path, work: &Path, fingerprint: &str) -> Vec<ShardRecord> {
    let mut out = Vec::new();
    while let Ok(bytes) = std::fs::read(record_path(work, out.len())) {
        let Ok(rec) = serde_json::from_slice::<ShardRecord>(&bytes) else {
            break;
        };
        if rec.fingerprint != fingerprint
            || !outputs_present(dir, std::slice::from_ref(&rec.entry))
            || !rejects_path(work, out.len()).exists()
        {
            break;
        }
        out.push(rec);
    }
    out
}

/// Remove shard files and records numbered `keep` and above, and the manifest.
fn remove_stale(dir: &Path, work: &Path, keep: usize) -> Result<()> {
    let remove = |p: &Path| match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    };
    remove(&dir.join(MANIFEST))?;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((num, ext)) = name.split_once('.')
            && num.len() == 5
            && let Ok(i) = num.parse::<usize>()
            && (ext == "tokens" || ext == "parquet")
            && i >= keep
        {
            debug_assert!(name == tokens_name(i) || name == table_name(i));
            remove(&entry.path())?;
        }
    }
    let mut i = keep;
    while record_path(work, i).exists() || rejects_path(work, i).exists() {
        remove(&record_path(work, i))?;
        remove(&rejects_path(work, i))?;
        i += 1;
    }
    Ok(())
}
