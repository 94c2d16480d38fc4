//! What every file-to-file job (dedup, tokenize, decontaminate) does the same way: its worker pool,
//! its output directory checks, and the fingerprints that decide what a rerun may reuse.

use crate::error::{Error, Result};
use crate::input::{InputFile, discover};
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
