//! What every file-to-file job (dedup, tokenize, decontaminate, filter) does the same way: its worker
//! pool, its output directory checks, the fingerprints that decide what a rerun may reuse, how a
//! file that ends early is recorded, and how a report table is written.

use crate::atomic::AtomicFile;
use crate::dedup::OnError;
use crate::error::{Error, Result};
use crate::input::{InputFile, discover};
use crate::reader::Reject;
use arrow_array::RecordBatch;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_64;

/// Work files that let a rerun resume live here, inside the output directory.
pub const WORK_DIR: &str = ".shardforge-work";

/// The job's own thread pool (`None`: one thread per core).
pub fn worker_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| Error::Config(format!("cannot start worker threads: {e}")))
}

/// Stable fingerprint (xxh3-64 of the JSON) of whatever decides a job's output.
#[must_use]
pub fn fingerprint(value: &impl serde::Serialize) -> String {
    format!(
        "{:016x}",
        xxh3_64(&serde_json::to_vec(value).expect("fingerprinted values serialize"))
    )
}

/// What decides one file's output: the job's config (its thread count cleared by the caller, as
/// threads never change the output) and the file's name, size and modification time.
#[must_use]
pub fn file_fingerprint(cfg: &impl serde::Serialize, file: &InputFile) -> String {
    fingerprint(&(cfg, file.rel.to_string_lossy(), file.size, file.mtime_ns))
}

/// One file's result: an earlier run's, read from `marker`, when its fingerprint (`fingerprint_of`)
/// is `fingerprint` and every one of `outputs` still exists; else `run`'s, and then `marker`
/// records it (atomically) for the next rerun. The flag says whether it was resumed.
pub fn resume_or_run<D: serde::Serialize + serde::de::DeserializeOwned>(
    marker: &Path,
    fingerprint: &str,
    outputs: &[&Path],
    fingerprint_of: impl Fn(&D) -> &str,
    run: impl FnOnce() -> Result<D>,
) -> Result<(D, bool)> {
    let previous = std::fs::read(marker)
        .ok()
        .and_then(|b| serde_json::from_slice::<D>(&b).ok())
        .filter(|d| fingerprint_of(d) == fingerprint && outputs.iter().all(|p| p.exists()));
    if let Some(d) = previous {
        return Ok((d, true));
    }
    let d = run()?;
    crate::atomic::write_atomic(marker, &serde_json::to_vec(&d).expect("serializes"))?;
    Ok((d, false))
}

/// A job's last two files, each atomically: every file's rejects in file order, then the report.
pub fn write_rejects_and_report<'a>(
    output: &Path,
    rejects: impl IntoIterator<Item = &'a str>,
    report: &impl serde::Serialize,
) -> Result<()> {
    let rejects: String = rejects.into_iter().collect();
    crate::atomic::write_atomic(&output.join("rejects.jsonl"), rejects.as_bytes())?;
    crate::atomic::write_atomic(
        &output.join("report.json"),
        &serde_json::to_vec_pretty(report).expect("serializes"),
    )
}

/// Discover the inputs and create `output` and its work directory. Refuses an output inside an
/// input directory (a rerun would read its own output) and inputs whose relative names are among
/// `reserved` (the job's own files in `output`). Returns the inputs and the work directory.
pub fn prepare(
    inputs: &[String],
    output: &Path,
    reserved: &[&str],
) -> Result<(Vec<InputFile>, PathBuf)> {
    let files = discover(inputs)?;
    std::fs::create_dir_all(output).map_err(|e| Error::io(output, e))?;
    let out = std::fs::canonicalize(output).map_err(|e| Error::io(output, e))?;
    for input in inputs {
        let p = Path::new(input);
        if p.is_dir()
            && let Ok(inp) = std::fs::canonicalize(p)
            && out.starts_with(&inp)
        {
            return Err(Error::Config(format!(
                "output {} lies inside input directory {input}; a rerun would read its own output",
                output.display()
            )));
        }
    }
    for f in &files {
        if reserved.iter().any(|r| f.rel == Path::new(r)) {
            return Err(Error::Config(format!(
                "input {} would overwrite the run's own {}",
                f.path.display(),
                f.rel.display()
            )));
        }
    }
    let work = output.join(WORK_DIR);
    std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    Ok((files, work))
}

/// The end of reading one file. A stream that fails after some documents were read (truncated
/// compression, I/O error, bad Parquet) is, with `on_error = skip`, one more reject and the file
/// counts as incomplete (`true`): its documents read so far are kept. Anything else is an error.
pub fn end_of_read(
    read: Result<()>,
    on_error: OnError,
    docs_read: u64,
    path: &Path,
    rejects: &mut Vec<String>,
) -> Result<bool> {
    match read {
        Ok(()) => Ok(false),
        Err(e @ (Error::Truncated { .. } | Error::Io { .. } | Error::Parquet { .. }))
            if on_error == OnError::Skip && docs_read > 0 =>
        {
            let reject = Reject {
                error: e,
                raw: None,
            };
            rejects.push(String::from_utf8_lossy(&reject.json_line(path)).into_owned());
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// Write `batch` as the Parquet file `dest`, atomically.
pub fn write_table(dest: &Path, batch: &RecordBatch) -> Result<()> {
    let (guard, f) = AtomicFile::create(dest)?;
    let err = |e: &dyn std::fmt::Display| Error::Parquet {
        path: guard.tmp_path().to_path_buf(),
        message: e.to_string(),
    };
    let mut w =
        parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).map_err(|e| err(&e))?;
    w.write(batch).map_err(|e| err(&e))?;
    let f = w.into_inner().map_err(|e| err(&e))?;
    guard.commit(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Done {
        fingerprint: String,
        docs: u64,
    }

    #[test]
    fn a_file_is_resumed_only_with_its_fingerprint_and_every_output() {
        let dir = tempfile::tempdir().unwrap();
        let (marker, out) = (dir.path().join("0.json"), dir.path().join("0.out"));
        let mut runs = 0;
        let mut step = |fp: &str| {
            resume_or_run(
                &marker,
                fp,
                &[&out],
                |d: &Done| &d.fingerprint,
                || {
                    runs += 1;
                    std::fs::write(&out, b"x").unwrap();
                    Ok(Done {
                        fingerprint: fp.into(),
                        docs: runs,
                    })
                },
            )
            .unwrap()
        };
        let first = Done {
            fingerprint: "a".into(),
            docs: 1,
        };
        assert_eq!(step("a"), (first, false));
        // Resumed: the marker's result, and `run` is not called.
        assert!(step("a").1);
        // Another config, a lost output, a corrupt marker: each runs the file again.
        assert_eq!(step("b").0.docs, 2);
        std::fs::remove_file(&out).unwrap();
        assert_eq!(
            step("b"),
            (
                Done {
                    fingerprint: "b".into(),
                    docs: 3
                },
                false
            )
        );
        std::fs::write(&marker, b"{\"fingerprint\": \"b\"").unwrap();
        assert_eq!(step("b").0.docs, 4);
        assert!(step("b").1);
    }

    #[test]
    fn a_failed_run_leaves_no_marker() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("0.json");
        let failed = resume_or_run(
            &marker,
            "a",
            &[],
            |d: &Done| &d.fingerprint,
            || Err(Error::Interrupted),
        );
        assert!(matches!(failed, Err(Error::Interrupted)));
        assert!(!marker.exists());
    }
}
