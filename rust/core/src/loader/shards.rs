//! The token files every source reads, memory-mapped once and read without copies.

use super::ShardSpec;
use super::packing::Docs;
use crate::error::{Error, Result};
use crate::tokenize::manifest::Dtype;
use memmap2::Mmap;

pub struct Shards {
    maps: Vec<(Mmap, Dtype)>,
}

impl Shards {
    pub fn open(specs: &[ShardSpec]) -> Result<Self> {
        let mut maps = Vec::with_capacity(specs.len());
        for s in specs {
            let file = std::fs::File::open(&s.path).map_err(|e| Error::io(&s.path, e))?;
            // SAFETY: token files are written once, atomically, and never modified in place; a
            // file replaced by a rerun keeps this mapping's inode alive.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&s.path, e))?;
            let want = s.tokens * s.dtype.size() as u64;
            if map.len() as u64 != want {
                return Err(Error::Corrupt {
                    path: s.path.clone(),
                    message: format!(
                        "{} bytes, the manifest says {} tokens ({want} bytes)",
                        map.len(),
                        s.tokens
                    ),
                });
            }
            maps.push((map, s.dtype));
        }
        Ok(Shards { maps })
    }

    /// Refuse documents that reach past the end of their shard.
    pub fn check(specs: &[ShardSpec], source: &str, docs: &Docs) -> Result<()> {
        for i in 0..docs.len.len() {
            let s = docs.shard[i] as usize;
            let Some(spec) = specs.get(s) else {
                return Err(Error::Config(format!(
                    "source '{source}': document {i} names shard {s}, there are {}",
                    specs.len()
                )));
            };
            if docs.offset[i] + u64::from(docs.len[i]) > spec.tokens {
                return Err(Error::Corrupt {
                    path: spec.path.clone(),
                    message: format!(
                        "document at token offset {} with {} tokens reaches past the shard's {} tokens",
                        docs.offset[i], docs.len[i], spec.tokens
                    ),
                });
            }
        }
        Ok(())
    }

    /// Append tokens `offset..offset + len` of shard `shard` to `out`.
    pub fn read(&self, shard: u32, offset: u64, len: u32, out: &mut Vec<u32>) {
        let (map, dtype) = &self.maps[shard as usize];
        let w = dtype.size();
        let bytes = &map[offset as usize * w..(offset as usize + len as usize) * w];
        match dtype {
            Dtype::Uint16 => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]]))),
            ),
            Dtype::Uint32 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
        }
    }
}
