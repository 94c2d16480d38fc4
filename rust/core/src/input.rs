//! Input discovery: files, directories (walked recursively) and globs, in a deterministic order.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Jsonl,
    JsonlGz,
    JsonlZst,
    Parquet,
}

/// The file name suffixes we read, and their formats.
const SUFFIXES: [(&str, Format); 10] = [
    (".ndjson.zst", Format::JsonlZst),
    (".jsonl.zst", Format::JsonlZst),
    (".json.zst", Format::JsonlZst),
    (".ndjson.gz", Format::JsonlGz),
    (".jsonl.gz", Format::JsonlGz),
    (".json.gz", Format::JsonlGz),
    (".parquet", Format::Parquet),
    (".ndjson", Format::Jsonl),
    (".jsonl", Format::Jsonl),
    (".json", Format::Jsonl),
];

impl Format {
    /// The format a file name implies, if it is one we read.
    #[must_use]
    pub fn from_path(path: &Path) -> Option<Self> {
        split_suffix(path.file_name()?.to_str()?).map(|(_, format)| format)
    }
}

/// A file name split into its stem and the format its suffix (any case) names, if we read it.
#[must_use]
pub fn split_suffix(name: &str) -> Option<(&str, Format)> {
    let lower = name.to_ascii_lowercase();
    SUFFIXES
        .iter()
        .find(|(suffix, _)| lower.ends_with(suffix))
        .map(|&(suffix, format)| (&name[..name.len() - suffix.len()], format))
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct InputFile {
    pub path: PathBuf,
    /// Name of this file's output, relative to the output directory.
    pub rel: PathBuf,
    pub format: Format,
    pub size: u64,
    /// Modification time in nanoseconds since the epoch; with `size`, what resume checks.
    pub mtime_ns: u64,
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn walk(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, PathBuf)>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if ft.is_dir() {
            walk(&path, root, out)?;
        } else if Format::from_path(&path).is_some() {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            out.push((path, rel));
        }
    }
    Ok(())
}

/// Expand `inputs` (files, directories, globs) into the sorted list of files to read. Output names
/// keep the directory structure below a directory input; files and glob matches keep their name.
pub fn discover(inputs: &[String]) -> Result<Vec<InputFile>> {
    let mut found: Vec<(PathBuf, PathBuf)> = Vec::new();
    for input in inputs {
        if has_glob_chars(input) {
            let paths =
                glob::glob(input).map_err(|e| Error::Config(format!("bad glob {input:?}: {e}")))?;
            let before = found.len();
            for p in paths {
                let p = p.map_err(|e| {
                    let path = e.path().to_path_buf();
                    Error::io(path, e.into())
                })?;
                if p.is_file() && Format::from_path(&p).is_some() {
                    let rel = PathBuf::from(p.file_name().expect("a file has a name"));
                    found.push((p, rel));
                }
            }
            if found.len() == before {
                return Err(Error::NoInput(format!(
                    "{input:?} matches no .jsonl/.jsonl.gz/.jsonl.zst/.parquet file"
                )));
            }
        } else {
            let path = PathBuf::from(input);
            let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
            if meta.is_dir() {
                let before = found.len();
                walk(&path, &path, &mut found)?;
                if found.len() == before {
                    return Err(Error::NoInput(format!(
                        "directory {input:?} holds no .jsonl/.jsonl.gz/.jsonl.zst/.parquet file"
                    )));
                }
            } else if Format::from_path(&path).is_some() {
                let rel = PathBuf::from(path.file_name().expect("a file has a name"));
                found.push((path, rel));
            } else {
                return Err(Error::Config(format!(
                    "{input}: unsupported file type (expected .jsonl, .jsonl.gz, .jsonl.zst or .parquet)"
                )));
            }
        }
    }
    if found.is_empty() {
        return Err(Error::NoInput("no inputs given".into()));
    }
    found.sort();
    found.dedup_by(|a, b| a.0 == b.0);
    let mut by_rel: BTreeMap<&Path, &Path> = BTreeMap::new();
    for (path, rel) in &found {
        if let Some(other) = by_rel.insert(rel, path) {
            return Err(Error::Config(format!(
                "{} and {} would both be written as {}; pass their common directory instead",
                other.display(),
                path.display(),
                rel.display()
            )));
        }
    }
    found
        .into_iter()
        .map(|(path, rel)| {
            let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as u64);
            let format = Format::from_path(&path).expect("filtered above");
            Ok(InputFile {
                path,
                rel,
                format,
                size: meta.len(),
                mtime_ns,
            })
        })
        .collect()
}
