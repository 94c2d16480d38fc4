//! The LSH band index: (band key, document) entries grouped by key to find candidate pairs.
//!
//! Entries are 12 bytes. While they fit in the memory budget they are sorted in memory. Past the
//! budget the index spills: entries are hash-partitioned by key into files on disk so that each
//! partition fits the budget, then each partition is sorted and scanned alone. Grouping only needs
//! equal keys to meet, so hash partitioning replaces a k-way merge and every partition is read once.

use crate::error::{Error, Result};
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Band key and document index, packed to 12 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed(4))]
pub struct Entry {
    pub key: u64,
    pub doc: u32,
}

pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();
const _: () = assert!(ENTRY_BYTES == 12);

/// Groups larger than this contribute a star (every member linked to the first) plus a chain
/// (each member to the next) as candidates instead of all pairs, bounding the work on degenerate
/// keys (boilerplate shared by thousands of documents).
pub const MAX_ALL_PAIRS_GROUP: usize = 64;

pub struct BandIndex {
    budget_entries: usize,
    spill_dir: PathBuf,
    entries: Vec<Entry>,
    partitions: Vec<BufWriter<File>>,
    spilled_entries: u64,
    total_entries: u64,
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct IndexStats {
    pub entries: u64,
    pub spilled: bool,
    pub partitions: usize,
    pub peak_bytes: u64,
}

impl BandIndex {
    /// `budget_bytes` bounds the in-memory entries; `spill_dir` receives partition files if needed.
    /// `expected_entries`, when known, sizes the partitions so each one fits the budget.
    pub fn new(budget_bytes: u64, spill_dir: &Path, expected_entries: u64) -> Result<Self> {
        let budget_entries = ((budget_bytes as usize) / ENTRY_BYTES).max(1024);
        let mut idx = Self {
            budget_entries,
            spill_dir: spill_dir.to_path_buf(),
            entries: Vec::new(),
            partitions: Vec::new(),
            spilled_entries: 0,
            total_entries: 0,
        };
        if expected_entries as usize > budget_entries {
            // Twice the minimum number of partitions leaves room for uneven hash spread.
            let n = (expected_entries as usize).div_ceil(budget_entries) * 2;
            idx.open_partitions(n)?;
        }
        Ok(idx)
    }

    fn open_partitions(&mut self, n: usize) -> Result<()> {
        std::fs::create_dir_all(&self.spill_dir).map_err(|e| Error::io(&self.spill_dir, e))?;
        for p in 0..n {
            let path = self.partition_path(p);
            let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
            self.partitions.push(BufWriter::with_capacity(1 << 16, f));
        }
        Ok(())
    }

    fn partition_path(&self, p: usize) -> PathBuf {
        self.spill_dir.join(format!("band-partition-{p:05}.bin"))
    }

    pub fn push(&mut self, doc: u32, keys: &[u64]) -> Result<()> {
        self.total_entries += keys.len() as u64;
        if self.partitions.is_empty() {
            self.entries
                .extend(keys.iter().map(|&key| Entry { key, doc }));
            if self.entries.len() > self.budget_entries {
                // More documents than announced: start spilling now.
                let n = (self.entries.len().div_ceil(self.budget_entries) * 4).max(8);
                self.open_partitions(n)?;
                let pending = std::mem::take(&mut self.entries);
                for e in pending {
                    self.spill(e)?;
                }
            }
            return Ok(());
        }
        for &key in keys {
            self.spill(Entry { key, doc })?;
        }
        Ok(())
    }

    fn spill(&mut self, e: Entry) -> Result<()> {
        let p = (((e.key >> 32) * self.partitions.len() as u64) >> 32) as usize;
        let mut buf = [0u8; ENTRY_BYTES];
        buf[..8].copy_from_slice(&{ e.key }.to_le_bytes());
        buf[8..].copy_from_slice(&{ e.doc }.to_le_bytes());
        self.spilled_entries += 1;
        let path = self.partition_path(p);
        self.partitions[p]
            .write_all(&buf)
            .map_err(|err| Error::io(path, err))
    }

    /// Consume the index and return the sorted, deduplicated candidate pairs `(a, b)` with `a < b`.
    pub fn candidate_pairs(mut self) -> Result<(Vec<(u32, u32)>, IndexStats)> {
        let mut stats = IndexStats {
            entries: self.total_entries,
            spilled: !self.partitions.is_empty(),
            partitions: self.partitions.len(),
            peak_bytes: 0,
        };
        let mut pairs = Vec::new();
        if self.partitions.is_empty() {
            stats.peak_bytes = (self.entries.capacity() * ENTRY_BYTES) as u64;
            group_pairs(&mut self.entries, &mut pairs);
        } else {
            let writers = std::mem::take(&mut self.partitions);
            let paths: Vec<PathBuf> = (0..writers.len()).map(|p| self.partition_path(p)).collect();
            for (w, path) in writers.into_iter().zip(&paths) {
                w.into_inner()
                    .map_err(|e| Error::io(path, e.into_error()))?
                    .sync_all()
                    .map_err(|e| Error::io(path, e))?;
            }
            for path in &paths {
                let mut entries = read_partition(path)?;
                stats.peak_bytes = stats
                    .peak_bytes
                    .max((entries.capacity() * ENTRY_BYTES) as u64);
                group_pairs(&mut entries, &mut pairs);
                std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
            }
        }
        pairs.par_sort_unstable();
        pairs.dedup();
        Ok((pairs, stats))
    }
}

fn read_partition(path: &Path) -> Result<Vec<Entry>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len() as usize;
    let mut r = BufReader::with_capacity(1 << 16, f);
    let mut entries = Vec::with_capacity(len / ENTRY_BYTES);
    let mut buf = [0u8; ENTRY_BYTES];
    for _ in 0..len / ENTRY_BYTES {
        r.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
        entries.push(Entry {
            key: u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")),
            doc: u32::from_le_bytes(buf[8..].try_into().expect("4 bytes")),
        });
    }
    Ok(entries)
}

/// Sort entries by (key, doc) and append the candidate pairs of every group of equal keys.
fn group_pairs(entries: &mut [Entry], pairs: &mut Vec<(u32, u32)>) {
    entries.par_sort_unstable_by_key(|e| (e.key, e.doc));
    let mut start = 0;
    while start < entries.len() {
        let key = entries[start].key;
        let mut end = start + 1;
        while end < entries.len() && entries[end].key == key {
            end += 1;
        }
        let group = &entries[start..end];
        if group.len() <= MAX_ALL_PAIRS_GROUP {
            for i in 0..group.len() {
                for j in i + 1..group.len() {
                    push_pair(pairs, group[i].doc, group[j].doc);
                }
            }
        } else {
            for j in 1..group.len() {
                push_pair(pairs, group[0].doc, group[j].doc);
                push_pair(pairs, group[j - 1].doc, group[j].doc);
            }
        }
        start = end;
    }
}

fn push_pair(pairs: &mut Vec<(u32, u32)>, a: u32, b: u32) {
    if a != b {
        pairs.push((a.min(b), a.max(b)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs_with_budget(budget: u64, expected: u64) -> (Vec<(u32, u32)>, IndexStats) {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = BandIndex::new(budget, dir.path(), expected).unwrap();
        let mut s = 3u64;
        for doc in 0..20_000u32 {
            // Each doc shares band 0 with doc ^ 1, and has random keys elsewhere.
            let k0 = u64::from(doc / 2).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let keys = [
                k0,
                crate::minhash::splitmix64(&mut s),
                crate::minhash::splitmix64(&mut s),
            ];
            idx.push(doc, &keys).unwrap();
        }
        idx.candidate_pairs().unwrap()
    }

    #[test]
    fn spilled_and_in_memory_agree() {
        let (mem, s1) = pairs_with_budget(1 << 30, 0);
        let (disk, s2) = pairs_with_budget(64 << 10, 60_000);
        let (late, s3) = pairs_with_budget(64 << 10, 0);
        assert!(!s1.spilled && s2.spilled && s3.spilled);
        assert!(
            s2.peak_bytes < 64 << 10,
            "partition exceeded budget: {}",
            s2.peak_bytes
        );
        assert_eq!(mem.len(), 10_000);
        assert_eq!(mem, disk);
        assert_eq!(mem, late);
    }
}
