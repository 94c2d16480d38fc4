//! `shardforge verify`: check a token dataset against its manifest, naming the first broken file and
//! offset: file sizes and xxh3 checksums, the tokenizer's sha256, document offsets consistent with
//! token counts, every document ending with EOS, every id inside the vocabulary.

use super::manifest::{
    Dtype, MANIFEST, Manifest, ShardEntry, TOKENIZER, file_xxh3, hex64, sha256_hex,
};
use crate::error::{Error, Result};
use crate::reader::parquet_reader;
use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use std::io::Read;
use std::path::Path;
use xxhash_rust::xxh3::Xxh3;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub shards: u64,
    pub documents: u64,
    pub tokens: u64,
    pub bytes: u64,
}

fn corrupt(path: &Path, message: String) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        message,
    }
}

pub fn verify(dir: &Path) -> Result<VerifyReport> {
    let m = Manifest::read(dir)?;
    let tok = dir.join(TOKENIZER);
    let tok_bytes = std::fs::read(&tok).map_err(|e| Error::io(&tok, e))?;
    if sha256_hex(&tok_bytes) != m.tokenizer.sha256 {
        return Err(corrupt(&tok, "sha256 differs from the manifest's".into()));
    }
    let mut report = VerifyReport::default();
    for s in &m.shards {
        let (docs, bytes) = verify_shard(dir, &m, s)?;
        report.shards += 1;
        report.documents += docs;
        report.tokens += s.tokens;
        report.bytes += bytes;
    }
    let path = dir.join(MANIFEST);
    if report.documents != m.totals.documents || report.tokens != m.totals.tokens {
        return Err(corrupt(
            &path,
            format!(
                "totals say {} documents / {} tokens, the shards hold {} / {}",
                m.totals.documents, m.totals.tokens, report.documents, report.tokens
            ),
        ));
    }
    if m.shards.len() as u64 != m.totals.shards {
        return Err(corrupt(
            &path,
            "shard count differs from the shard list".into(),
        ));
    }
    Ok(report)
}

fn verify_shard(dir: &Path, m: &Manifest, s: &ShardEntry) -> Result<(u64, u64)> {
    let table = dir.join(&s.table_file);
    let (h, n) = file_xxh3(&table)?;
    if n != s.table_bytes || hex64(h) != s.table_xxh3 {
        return Err(corrupt(
            &table,
            format!(
                "{n} bytes with xxh3 {}, the manifest says {} bytes with xxh3 {}",
                hex64(h),
                s.table_bytes,
                s.table_xxh3
            ),
        ));
    }
    // Document ends, in token positions, from the table.
    let mut ends: Vec<u64> = Vec::new();
    let mut expect = 0u64;
    let mut row = 0u64;
    for batch in parquet_reader(&table, Some(&["token_offset", "n_tokens"]))? {
        let batch = batch.map_err(|e| corrupt(&table, e.to_string()))?;
        let (Some(off), Some(len)) = (
            batch.column_by_name("token_offset"),
            batch.column_by_name("n_tokens"),
        ) else {
            return Err(corrupt(&table, "no token_offset / n_tokens columns".into()));
        };
        let (Some(off), Some(len)) = (
            off.as_primitive_opt::<UInt64Type>(),
            len.as_primitive_opt::<UInt32Type>(),
        ) else {
            return Err(corrupt(
                &table,
                "token_offset / n_tokens have the wrong types".into(),
            ));
        };
        for (o, l) in off.values().iter().zip(len.values()) {
            row += 1;
            if *o != expect || *l == 0 {
                return Err(corrupt(
                    &table,
                    format!(
                        "row {row}: token_offset {o} n_tokens {l}, expected offset {expect} and at least one token"
                    ),
                ));
            }
            expect += u64::from(*l);
            ends.push(expect - 1);
        }
    }
    if row != s.documents || expect != s.tokens {
        return Err(corrupt(
            &table,
            format!(
                "{row} documents / {expect} tokens, the manifest says {} / {}",
                s.documents, s.tokens
            ),
        ));
    }

    let tokens = dir.join(&s.tokens_file);
    let width = m.dtype.size() as u64;
    let mut f = std::fs::File::open(&tokens).map_err(|e| Error::io(&tokens, e))?;
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64; // bytes read so far
    let mut next_end = 0usize;
    let vocab = m.tokenizer.vocab_size as u64;
    loop {
        let k = read_full(&mut f, &mut buf).map_err(|e| Error::io(&tokens, e))?;
        if k == 0 {
            break;
        }
        let chunk = &buf[..k];
        hasher.update(chunk);
        // Chunks are 1 MiB and reads are filled, so ids never straddle two chunks.
        for (i, id) in chunk.chunks_exact(width as usize).enumerate() {
            let id = match m.dtype {
                Dtype::Uint16 => u64::from(u16::from_le_bytes([id[0], id[1]])),
                Dtype::Uint32 => u64::from(u32::from_le_bytes([id[0], id[1], id[2], id[3]])),
            };
            let t = pos / width + i as u64;
            if id >= vocab {
                return Err(corrupt(
                    &tokens,
                    format!(
                        "id {id} at byte offset {} is outside the vocabulary ({vocab})",
                        t * width
                    ),
                ));
            }
            if next_end < ends.len() && ends[next_end] == t {
                if id != u64::from(m.special_ids.eos) {
                    return Err(corrupt(
                        &tokens,
                        format!(
                            "document {} does not end with EOS (id {id} at byte offset {})",
                            next_end,
                            t * width
                        ),
                    ));
                }
                next_end += 1;
            }
        }
        pos += k as u64;
    }
    if pos != s.tokens_bytes || pos != s.tokens * width {
        return Err(corrupt(
            &tokens,
            format!(
                "{pos} bytes, the manifest says {} ({} tokens)",
                s.tokens_bytes, s.tokens
            ),
        ));
    }
    if hex64(hasher.digest()) != s.tokens_xxh3 {
        return Err(corrupt(
            &tokens,
            format!(
                "xxh3 {} differs from the manifest's {}",
                hex64(hasher.digest()),
                s.tokens_xxh3
            ),
        ));
    }
    Ok((row, pos + n))
}

/// Fill `buf` unless the file ends first.
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut k = 0;
    while k < buf.len() {
        let n = f.read(&mut buf[k..])?;
        if n == 0 {
            break;
        }
        k += n;
    }
    Ok(k)
}
