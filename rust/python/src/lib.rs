//! `shardforge._core`: thin `PyO3` bindings over `shardforge-core`. Inputs are converted to owned Rust
//! data, the GIL is released for the work, errors map through `errors::to_pyerr`.

// PyO3 extracts arguments as owned values; taking them by reference is not an option.
#![allow(clippy::needless_pass_by_value)]

mod errors;

use pyo3::prelude::*;

#[pymodule]
mod _core {
    use super::errors::{self, to_pyerr};
    use numpy::{
        IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    };
    use pyo3::prelude::*;
    use pyo3::types::PyDict;
    use shardforge_core::decontam;
    use shardforge_core::dedup as core_dedup;
    use shardforge_core::dedup::output::{self, OutputFormat};
    use shardforge_core::dedup::{Control, DedupConfig};
    use shardforge_core::filter;
    use shardforge_core::input::{Format, InputFile};
    use shardforge_core::loader;
    use shardforge_core::lsh::{LshParams, band_hashes, optimal_params};
    use shardforge_core::reader::FieldConfig;
    use shardforge_core::sketch::{SketchConfig, Sketcher};
    use shardforge_core::tokenize as core_tokenize;
    use shardforge_core::tokenize::{TokenizeConfig, train::TrainConfig};
    use shardforge_core::{Error, band_index::BandIndex, normalize, shingle, union_find};
    use std::path::PathBuf;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        let py = m.py();
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("ShardforgeError", py.get_type::<errors::ShardforgeError>())?;
        m.add("ConfigError", py.get_type::<errors::ConfigError>())?;
        m.add("NoInputError", py.get_type::<errors::NoInputError>())?;
        m.add(
            "MalformedRecordError",
            py.get_type::<errors::MalformedRecordError>(),
        )?;
        m.add(
            "TruncatedInputError",
            py.get_type::<errors::TruncatedInputError>(),
        )?;
        m.add("ParquetError", py.get_type::<errors::ParquetError>())?;
        m.add("TokenizerError", py.get_type::<errors::TokenizerError>())?;
        m.add(
            "CorruptDatasetError",
            py.get_type::<errors::CorruptDatasetError>(),
        )?;
        Ok(())
    }

    fn parse<T: serde::de::DeserializeOwned>(json: &str) -> PyResult<T> {
        serde_json::from_str(json).map_err(|e| to_pyerr(Error::Config(e.to_string())))
    }

    /// Run `job` on a worker thread with the GIL released, while this (main) thread checks for
    /// Ctrl-C and calls `progress(stage, files_done, files_total, docs, text_bytes)` about ten times
    /// a second. A signal or a failing callback cancels the job; finished work stays on disk.
    fn run_watched<R: Send>(
        py: Python<'_>,
        progress: Option<&Py<PyAny>>,
        job: impl FnOnce(&Control) -> Result<R, Error> + Send,
    ) -> PyResult<R> {
        let ctl = Control::default();
        let mut py_err: Option<PyErr> = None;
        let report_progress = |py: Python<'_>, cb: &Py<PyAny>| {
            cb.call1(
                py,
                (
                    ctl.stage.load(Ordering::Relaxed),
                    ctl.files_done.load(Ordering::Relaxed),
                    ctl.files_total.load(Ordering::Relaxed),
                    ctl.docs_read.load(Ordering::Relaxed),
                    ctl.bytes_read.load(Ordering::Relaxed),
                ),
            )
            .map(drop)
        };
        let result = py.detach(|| {
            std::thread::scope(|s| {
                // The worker wakes this thread when it is done: a plain sleep made every call
                // last a whole number of ticks (a 60 ms job took 100 ms).
                let watcher = std::thread::current();
                let ctl = &ctl;
                let worker = s.spawn(move || {
                    let out = job(ctl);
                    watcher.unpark();
                    out
                });
                while !worker.is_finished() {
                    std::thread::park_timeout(Duration::from_millis(100));
                    Python::attach(|py| {
                        // Signals are only seen on the main thread, which is this one.
                        let step = py.check_signals().and_then(|()| match progress {
                            Some(cb) => report_progress(py, cb),
                            None => Ok(()),
                        });
                        if let Err(e) = step {
                            py_err.get_or_insert(e);
                            ctl.cancel();
                        }
                    });
                }
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        });
        if let Some(e) = py_err {
            return Err(e);
        }
        let out = result.map_err(to_pyerr)?;
        if let Some(cb) = progress {
            report_progress(py, cb)?;
        }
        Ok(out)
    }

    fn to_json(value: &impl serde::Serialize) -> String {
        serde_json::to_string(value).expect("reports serialize")
    }

    /// Run the file-to-file dedup job; returns the report as JSON.
    #[pyfunction]
    #[pyo3(signature = (inputs, output, config_json, progress=None))]
    fn dedup(
        py: Python<'_>,
        inputs: Vec<String>,
        output: PathBuf,
        config_json: &str,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let cfg: DedupConfig = parse(config_json)?;
        let report = run_watched(py, progress.as_ref(), |ctl| {
            core_dedup::run(&inputs, &output, &cfg, ctl)
        })?;
        Ok(to_json(&report))
    }

    /// Run the tokenize job into a token dataset; returns the report as JSON.
    #[pyfunction]
    #[pyo3(signature = (inputs, output, config_json, progress=None))]
    fn tokenize(
        py: Python<'_>,
        inputs: Vec<String>,
        output: PathBuf,
        config_json: &str,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let cfg: TokenizeConfig = parse(config_json)?;
        let report = run_watched(py, progress.as_ref(), |ctl| {
            core_tokenize::run(&inputs, &output, &cfg, ctl)
        })?;
        Ok(to_json(&report))
    }

    /// Run the file-to-file decontamination job; returns the report as JSON.
    #[pyfunction]
    #[pyo3(signature = (inputs, output, config_json, progress=None))]
    fn decontaminate(
        py: Python<'_>,
        inputs: Vec<String>,
        output: PathBuf,
        config_json: &str,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let cfg: decontam::DecontamJobConfig = parse(config_json)?;
        let report = run_watched(py, progress.as_ref(), |ctl| {
            decontam::run(&inputs, &output, &cfg, ctl)
        })?;
        Ok(to_json(&report))
    }

    /// Run the file-to-file quality filter job; returns the report as JSON.
    #[pyfunction]
    #[pyo3(signature = (inputs, output, config_json, progress=None))]
    fn filter_files(
        py: Python<'_>,
        inputs: Vec<String>,
        output: PathBuf,
        config_json: &str,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let cfg: filter::FilterJobConfig = parse(config_json)?;
        let report = run_watched(py, progress.as_ref(), |ctl| {
            filter::run(&inputs, &output, &cfg, ctl)
        })?;
        Ok(to_json(&report))
    }

    /// Copy the records of the input file `path` at the sorted 1-based `lines` to `dest`,
    /// atomically, with the dedup job's writer: in the input's format, or as Parquet
    /// (`output_format="parquet"`). `rel` names the file in generated ids (`<rel>:<line>`). A
    /// stream that breaks off after the last kept line is not an error: reading it has already
    /// reported the break. Returns the records written.
    #[pyfunction]
    #[pyo3(signature = (path, rel, lines, dest, output_format, text_field, id_field))]
    #[allow(clippy::too_many_arguments)]
    fn write_kept(
        py: Python<'_>,
        path: PathBuf,
        rel: PathBuf,
        lines: Vec<u64>,
        dest: PathBuf,
        output_format: &str,
        text_field: String,
        id_field: Option<String>,
    ) -> PyResult<u64> {
        let format: OutputFormat = parse(&serde_json::to_string(output_format).expect("a string"))?;
        let Some(input_format) = Format::from_path(&path) else {
            return Err(to_pyerr(Error::Config(format!(
                "{}: not a .jsonl, .jsonl.gz, .jsonl.zst or .parquet file",
                path.display()
            ))));
        };
        if lines.windows(2).any(|w| w[0] >= w[1]) {
            return Err(to_pyerr(Error::Config(
                "write_kept: lines must be sorted and distinct".into(),
            )));
        }
        let file = InputFile {
            path,
            rel,
            format: input_format,
            size: 0,
            mtime_ns: 0,
        };
        let fields = FieldConfig {
            text_field,
            id_field,
            ..FieldConfig::default()
        };
        py.detach(|| output::write_kept(&file, &lines, &fields, format, &dest, true))
            .map_err(to_pyerr)
    }

    /// Statistics, failed rules and edited texts of a batch of texts.
    type FilterColumns<'py> = (
        Vec<String>,
        Bound<'py, PyArray2<f64>>,
        Vec<Vec<String>>,
        Vec<Option<String>>,
    );

    /// Apply the quality rules to `texts` in parallel: the statistic names, one row of statistics
    /// per text, each text's failed rules and its text after line removals (None: unchanged).
    #[pyfunction]
    fn filter_texts<'py>(
        py: Python<'py>,
        texts: Vec<String>,
        config_json: &str,
    ) -> PyResult<FilterColumns<'py>> {
        use rayon::prelude::*;
        let cfg: filter::FilterConfig = parse(config_json)?;
        cfg.validate().map_err(to_pyerr)?;
        let names = cfg.stat_names();
        let outcomes: Vec<filter::Outcome> = py.detach(|| {
            texts
                .par_iter()
                .map_init(filter::Scratch::default, |s, t| cfg.evaluate(t, s))
                .collect()
        });
        let mut flat = Vec::with_capacity(outcomes.len() * names.len());
        let (mut failed, mut edited) = (Vec::new(), Vec::new());
        for o in outcomes {
            flat.extend_from_slice(&o.stats);
            failed.push(o.failed);
            edited.push(o.text);
        }
        let stats = numpy::ndarray::Array2::from_shape_vec((failed.len(), names.len()), flat)
            .expect("one row of statistics per text")
            .into_pyarray(py);
        Ok((names, stats, failed, edited))
    }

    /// The words the quality rules count in `text` (spaCy-style English tokens).
    #[pyfunction]
    fn filter_words(text: &str) -> Vec<String> {
        let mut spans = Vec::new();
        filter::words::split_words(text, &mut spans);
        spans
            .iter()
            .map(|&(a, b)| text[a as usize..b as usize].to_owned())
            .collect()
    }

    /// Train a byte-level BPE tokenizer and write its `tokenizer.json`; returns the report as JSON.
    #[pyfunction]
    #[pyo3(signature = (inputs, output, config_json, progress=None))]
    fn train_tokenizer(
        py: Python<'_>,
        inputs: Vec<String>,
        output: PathBuf,
        config_json: &str,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let cfg: TrainConfig = parse(config_json)?;
        let report = run_watched(py, progress.as_ref(), |ctl| {
            core_tokenize::train::train(&inputs, &output, &cfg, ctl)
        })?;
        Ok(to_json(&report))
    }

    /// The n-gram index of evaluation sets, for scanning texts for contamination.
    #[pyclass(frozen, module = "shardforge._core")]
    struct EvalIndex {
        inner: decontam::EvalIndex,
        cut: decontam::CutConfig,
    }

    /// Hits as columns: document index, item index, byte start/end, n-gram count, first n-gram.
    type HitColumns = (
        Vec<u64>,
        Vec<u32>,
        Vec<u64>,
        Vec<u64>,
        Vec<u32>,
        Vec<String>,
    );

    #[pymethods]
    impl EvalIndex {
        /// Load the evaluation sets of a `DecontamConfig` (JSON) and index their n-grams.
        #[new]
        fn new(py: Python<'_>, config_json: &str) -> PyResult<Self> {
            let cfg: decontam::DecontamConfig = parse(config_json)?;
            let inner = py.detach(|| cfg.build_index()).map_err(to_pyerr)?;
            Ok(Self {
                inner,
                cut: cfg.cut,
            })
        }

        /// Number of distinct n-grams indexed.
        fn __len__(&self) -> usize {
            self.inner.len()
        }

        /// `(benchmark name, item id)` of every item, in index order.
        fn items(&self) -> Vec<(String, String)> {
            self.inner
                .items
                .iter()
                .map(|i| {
                    let b = &self.inner.benchmarks[i.benchmark as usize].name;
                    (b.clone(), i.id.clone())
                })
                .collect()
        }

        /// Per-benchmark statistics of the index, as JSON.
        fn stats(&self) -> String {
            to_json(&(&self.inner.benchmarks, self.inner.boilerplate_ngrams))
        }

        /// Every hit in `texts` as columns (see `HitColumns`), scanned in parallel.
        fn scan(&self, py: Python<'_>, texts: Vec<String>) -> HitColumns {
            let hits = py.detach(|| decontam::scan_texts(&self.inner, &texts));
            let mut cols = HitColumns::default();
            for (d, (doc_hits, text)) in hits.iter().zip(&texts).enumerate() {
                for h in doc_hits {
                    cols.0.push(d as u64);
                    cols.1.push(h.item);
                    cols.2.push(h.start as u64);
                    cols.3.push(h.end as u64);
                    cols.4.push(h.ngrams);
                    cols.5.push(h.ngram(text));
                }
            }
            cols
        }

        /// The pieces of each text left after cutting its hits (one piece, the whole text, when it
        /// has none; no pieces when it is dropped whole).
        fn cut(&self, py: Python<'_>, texts: Vec<String>) -> Vec<Vec<String>> {
            py.detach(|| {
                let hits = decontam::scan_texts(&self.inner, &texts);
                texts
                    .iter()
                    .zip(&hits)
                    .map(|(t, h)| {
                        if h.is_empty() {
                            return vec![t.clone()];
                        }
                        decontam::cut(t, h, &self.cut)
                            .map(|p| p.into_iter().map(str::to_owned).collect())
                            .unwrap_or_default()
                    })
                    .collect()
            })
        }
    }

    /// Check a token dataset against its manifest; returns the report as JSON.
    #[pyfunction]
    fn verify_dataset(py: Python<'_>, path: PathBuf) -> PyResult<String> {
        let report = py
            .detach(|| core_tokenize::verify::verify(&path))
            .map_err(to_pyerr)?;
        Ok(to_json(&report))
    }

    /// The loader's sample index: global sample number → training arrays.
    #[pyclass(frozen, module = "shardforge._core")]
    struct SampleIndex {
        inner: loader::SampleIndex,
    }

    /// One source's selected documents: shard number, token offset and length of each.
    type DocColumns<'py> = (
        PyReadonlyArray1<'py, u32>,
        PyReadonlyArray1<'py, u64>,
        PyReadonlyArray1<'py, u32>,
    );

    #[pymethods]
    impl SampleIndex {
        /// Build from a `LoaderSpec` (JSON) and one `DocColumns` per source.
        #[new]
        fn new(py: Python<'_>, spec_json: &str, docs: Vec<DocColumns<'_>>) -> PyResult<Self> {
            let spec: loader::LoaderSpec = parse(spec_json)?;
            let docs: Vec<loader::Docs> = docs
                .iter()
                .map(|(shard, offset, len)| loader::Docs {
                    shard: shard.as_array().to_vec(),
                    offset: offset.as_array().to_vec(),
                    len: len.as_array().to_vec(),
                })
                .collect();
            for d in &docs {
                if d.shard.len() != d.offset.len() || d.shard.len() != d.len.len() {
                    return Err(to_pyerr(Error::Config(
                        "document columns differ in length".into(),
                    )));
                }
            }
            let inner = py
                .detach(|| loader::SampleIndex::new(spec, docs))
                .map_err(to_pyerr)?;
            Ok(Self { inner })
        }

        /// Global samples available (`None`: endless).
        #[getter]
        fn end(&self) -> Option<u64> {
            self.inner.end()
        }

        /// Per-source samples, epochs and packing statistics, as JSON.
        fn plan(&self) -> String {
            to_json(&self.inner.plan())
        }

        /// Curriculum phase of global sample `k`.
        fn phase(&self, k: u64) -> usize {
            self.inner.phase(k)
        }

        /// `(source, index in the source's stream, [(document, start, length), ...])` of sample `k`.
        fn pieces(&self, k: u64) -> (usize, u64, Vec<(u32, u32, u32)>) {
            let mut out = Vec::new();
            let (s, local) = self.inner.pieces(k, &mut out);
            (
                s,
                local,
                out.iter().map(|p| (p.doc, p.start, p.len)).collect(),
            )
        }

        /// Global samples `first..first + count` as a dict of arrays: `input_ids`, `labels`,
        /// `position_ids` (count × `seq_len`, int64), `cu_seqlens` (int32), `source` (int64) and
        /// `filtered` (bool).
        fn batch<'py>(
            &self,
            py: Python<'py>,
            first: u64,
            count: usize,
        ) -> PyResult<Bound<'py, PyDict>> {
            let b = py
                .detach(|| self.inner.batch(first, count))
                .map_err(to_pyerr)?;
            let l = self.inner.spec().seq_len as usize;
            let d = PyDict::new(py);
            d.set_item(
                "input_ids",
                b.input_ids.into_pyarray(py).reshape([count, l])?,
            )?;
            d.set_item("labels", b.labels.into_pyarray(py).reshape([count, l])?)?;
            d.set_item(
                "position_ids",
                b.position_ids.into_pyarray(py).reshape([count, l])?,
            )?;
            d.set_item("cu_seqlens", b.cu_seqlens.into_pyarray(py))?;
            let source: Vec<i64> = b.source.iter().map(|&s| i64::from(s)).collect();
            d.set_item("source", source.into_pyarray(py))?;
            d.set_item("filtered", b.filtered.into_pyarray(py))?;
            Ok(d)
        }
    }

    type TokensAndOffsets<'py> = (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u64>>);

    /// A loaded tokenizer that encodes batches of texts in parallel into flat `NumPy` buffers.
    #[pyclass(frozen, module = "shardforge._core")]
    struct Encoder {
        inner: core_tokenize::Encoder,
    }

    #[pymethods]
    impl Encoder {
        #[new]
        #[pyo3(signature = (path, eos_token=None, bos_token=None))]
        fn new(path: PathBuf, eos_token: Option<&str>, bos_token: Option<&str>) -> PyResult<Self> {
            let inner =
                core_tokenize::Encoder::from_file(&path, eos_token, bos_token).map_err(to_pyerr)?;
            Ok(Self { inner })
        }

        #[getter]
        fn vocab_size(&self) -> usize {
            self.inner.vocab_size
        }

        #[getter]
        fn eos_id(&self) -> u32 {
            self.inner.special.eos
        }

        #[getter]
        fn bos_id(&self) -> Option<u32> {
            self.inner.special.bos
        }

        #[getter]
        fn pad_id(&self) -> Option<u32> {
            self.inner.special.pad
        }

        /// `(tokens, offsets)`: the ids of all texts concatenated (uint32) and n + 1 offsets
        /// (uint64) so that text i is `tokens[offsets[i]:offsets[i + 1]]`.
        #[pyo3(signature = (texts, add_eos=false, add_bos=false))]
        fn encode_batch<'py>(
            &self,
            py: Python<'py>,
            texts: Vec<String>,
            add_eos: bool,
            add_bos: bool,
        ) -> PyResult<TokensAndOffsets<'py>> {
            let enc = &self.inner;
            let bos = if add_bos {
                Some(enc.special.bos.ok_or_else(|| {
                    to_pyerr(Error::Config(
                        "the tokenizer has no beginning-of-document token".into(),
                    ))
                })?)
            } else {
                None
            };
            let (tokens, offsets) = py
                .detach(|| enc.encode_many(&texts, bos, add_eos))
                .map_err(to_pyerr)?;
            Ok((tokens.into_pyarray(py), offsets.into_pyarray(py)))
        }

        fn decode(&self, ids: Vec<u32>) -> PyResult<String> {
            self.inner.decode(&ids).map_err(to_pyerr)
        }
    }

    fn signatures_to_numpy(
        py: Python<'_>,
        flat: Vec<u32>,
        k: usize,
    ) -> PyResult<Bound<'_, PyArray2<u32>>> {
        let n = flat.len() / k;
        flat.into_pyarray(py).reshape([n, k])
    }

    /// Signatures of `texts` as an `(n, num_perm)` uint32 array. The strings are borrowed, not
    /// copied: `PyBackedStr` points at the interpreter's own UTF-8 form (the string itself when ASCII).
    #[pyfunction]
    fn minhash<'py>(
        py: Python<'py>,
        texts: Vec<pyo3::pybacked::PyBackedStr>,
        sketch_json: &str,
    ) -> PyResult<Bound<'py, PyArray2<u32>>> {
        let cfg: SketchConfig = parse(sketch_json)?;
        let sketcher = Sketcher::new(&cfg).map_err(to_pyerr)?;
        let flat = py.detach(|| sketcher.sign_batch(&texts));
        signatures_to_numpy(py, flat, cfg.num_perm)
    }

    /// Signatures of the strings in a flat UTF-8 buffer with Arrow-style `offsets` (n + 1 values):
    /// zero-copy input from a `pyarrow` string array.
    #[pyfunction]
    fn minhash_buffers<'py>(
        py: Python<'py>,
        data: PyReadonlyArray1<'py, u8>,
        offsets: PyReadonlyArray1<'py, i64>,
        sketch_json: &str,
    ) -> PyResult<Bound<'py, PyArray2<u32>>> {
        let cfg: SketchConfig = parse(sketch_json)?;
        let sketcher = Sketcher::new(&cfg).map_err(to_pyerr)?;
        let data = data.as_slice()?;
        let offsets = offsets.as_slice()?;
        let mut texts = Vec::with_capacity(offsets.len().saturating_sub(1));
        for (i, w) in offsets.windows(2).enumerate() {
            let (a, b) = (w[0] as usize, w[1] as usize);
            if a > b || b > data.len() {
                return Err(to_pyerr(Error::Config(format!(
                    "offsets[{i}..{}] = {a}..{b} out of range",
                    i + 1
                ))));
            }
            let s = std::str::from_utf8(&data[a..b]).map_err(|e| {
                to_pyerr(Error::Config(format!(
                    "string {i} is not UTF-8 at byte {}",
                    e.valid_up_to()
                )))
            })?;
            texts.push(s);
        }
        let flat = py.detach(|| sketcher.sign_batch(&texts));
        signatures_to_numpy(py, flat, cfg.num_perm)
    }

    /// (bands, rows) for a Jaccard threshold, chosen as datasketch's `MinHashLSH` chooses them.
    #[pyfunction]
    #[pyo3(signature = (threshold, num_perm, fp_weight=0.5, fn_weight=0.5))]
    fn lsh_params(
        py: Python<'_>,
        threshold: f64,
        num_perm: usize,
        fp_weight: f64,
        fn_weight: f64,
    ) -> (usize, usize) {
        let p = py.detach(|| optimal_params(threshold, num_perm, fp_weight, fn_weight));
        (p.bands, p.rows)
    }

    /// Candidate pairs `(i, j)`, `i < j`, of signatures that share at least one band: `(m, 2)` uint32.
    #[pyfunction]
    fn candidate_pairs<'py>(
        py: Python<'py>,
        signatures: PyReadonlyArray2<'py, u32>,
        bands: usize,
        rows: usize,
    ) -> PyResult<Bound<'py, PyArray2<u32>>> {
        let sigs = signatures.as_array();
        let (n, k) = sigs.dim();
        if bands == 0 || rows == 0 || bands * rows > k {
            return Err(to_pyerr(Error::Config(format!(
                "bands × rows = {bands} × {rows} must be in 1..={k}"
            ))));
        }
        let flat: Vec<u32> = sigs.iter().copied().collect();
        let pairs = py
            .detach(|| {
                let params = LshParams { bands, rows };
                let mut index = BandIndex::new(u64::MAX / 2, &std::env::temp_dir(), 0)?;
                let mut keys = vec![0u64; bands];
                for d in 0..n {
                    band_hashes(&flat[d * k..(d + 1) * k], params, &mut keys);
                    index.push(d as u32, &keys)?;
                }
                index.candidate_pairs().map(|(p, _)| p)
            })
            .map_err(to_pyerr)?;
        let m = pairs.len();
        let flat_pairs: Vec<u32> = pairs.into_iter().flat_map(|(a, b)| [a, b]).collect();
        flat_pairs.into_pyarray(py).reshape([m, 2])
    }

    /// Connected components of `n` nodes joined by `pairs` (`(m, 2)`): each node's label is the
    /// smallest node of its component.
    #[pyfunction]
    fn connected_components<'py>(
        py: Python<'py>,
        n: usize,
        pairs: PyReadonlyArray2<'py, u32>,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        let view = pairs.as_array();
        if view.ncols() != 2 {
            return Err(to_pyerr(Error::Config(
                "pairs must have shape (m, 2)".into(),
            )));
        }
        let list: Vec<(u32, u32)> = view.rows().into_iter().map(|r| (r[0], r[1])).collect();
        if let Some(&(a, b)) = list
            .iter()
            .find(|(a, b)| *a as usize >= n || *b as usize >= n)
        {
            return Err(to_pyerr(Error::Config(format!(
                "pair ({a}, {b}) names a node ≥ n = {n}"
            ))));
        }
        Ok(py
            .detach(|| union_find::components(n, &list))
            .into_pyarray(py))
    }

    /// Deduplicate in-memory texts; returns a dict of `NumPy` arrays (`kept`, `cluster`,
    /// `cluster_size`, `pairs`) and the list `reason`.
    #[pyfunction]
    #[pyo3(signature = (texts, config_json, keys=None))]
    fn dedup_texts<'py>(
        py: Python<'py>,
        texts: Vec<String>,
        config_json: &str,
        keys: Option<PyReadonlyArray1<'py, f64>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let cfg: DedupConfig = parse(config_json)?;
        let keys: Option<Vec<f64>> = keys.map(|k| k.as_array().to_vec());
        if let Some(k) = &keys
            && k.len() != texts.len()
        {
            return Err(to_pyerr(Error::Config(format!(
                "{} keys for {} texts",
                k.len(),
                texts.len()
            ))));
        }
        let res = py
            .detach(|| core_dedup::dedup_texts(&texts, keys.as_deref(), &cfg))
            .map_err(to_pyerr)?;
        let out = PyDict::new(py);
        let d = res.decision;
        out.set_item("kept", d.kept.into_pyarray(py))?;
        out.set_item("cluster", d.cluster.into_pyarray(py))?;
        out.set_item("cluster_size", d.cluster_size.into_pyarray(py))?;
        out.set_item(
            "reason",
            d.reason.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        )?;
        let m = res.pairs.len();
        let flat: Vec<u32> = res.pairs.into_iter().flat_map(|(a, b)| [a, b]).collect();
        out.set_item("pairs", flat.into_pyarray(py).reshape([m, 2])?)?;
        Ok(out)
    }

    /// The normalized form of `text` that shingles and exact hashes are computed on.
    #[pyfunction]
    fn normalize_text(text: &str, normalize_json: &str) -> PyResult<String> {
        let cfg: normalize::NormalizeConfig = parse(normalize_json)?;
        Ok(normalize::normalize(text, &cfg))
    }

    /// The sorted, distinct xxh3-64 shingle hashes of `text`: the exact set Jaccard is defined on.
    #[pyfunction]
    fn shingle_hashes<'py>(
        py: Python<'py>,
        text: &str,
        sketch_json: &str,
    ) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let cfg: SketchConfig = parse(sketch_json)?;
        let norm = normalize::normalize(text, &cfg.normalize);
        Ok(shingle::shingle_set(&norm, cfg.ngram).into_pyarray(py))
    }
}
