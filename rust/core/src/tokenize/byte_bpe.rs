//! BPE merges for byte-level words, on raw bytes and token ids, for the words the cache misses.
//!
//! The crate's `BPE::tokenize` spells a word out, looks each character up as a `String`, merges,
//! and returns a `Token` (with an owned `String`) per id; on a first pass over a corpus, when many
//! words miss the cache, that was almost half of encoding time. Here each byte maps straight to its token id and the merges run on ids,
//! in the crate's own order: a min-heap of candidate pairs by (rank, position), with the same checks
//! for entries that went stale. That order is not always "lowest rank first" (two pairs can merge
//! into the same token, and a stale entry of one then merges the other), so it is reproduced as is
//! rather than by a simpler scan. Tests compare the ids with the crate's on every vocabulary token
//! and on random words.

use rustc_hash::FxBuildHasher;
use serde::Deserialize;
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use tokenizers::Tokenizer;

/// Merges of a byte-level BPE model whose every byte is a token.
pub struct ByteBpe {
    /// Byte → the id of the token that spells it.
    byte_ids: [u32; 256],
    /// `pair(left, right)` → (rank, merged id).
    merges: HashMap<u64, (u32, u32), BuildHasherDefault<PairHasher>>,
    /// Whether a word that is a token is that token, without merging (Llama 3).
    ignore_merges: bool,
}

#[derive(Deserialize)]
struct FileJson<'a> {
    #[serde(borrow)]
    model: ModelJson<'a>,
}

/// The fields of the crate's serialized BPE model that matter here. Strings borrow from the JSON
/// unless they hold an escape.
#[derive(Deserialize)]
struct ModelJson<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    dropout: Option<f64>,
    #[serde(borrow)]
    continuing_subword_prefix: Option<Cow<'a, str>>,
    #[serde(borrow)]
    end_of_word_suffix: Option<Cow<'a, str>>,
    #[serde(default)]
    ignore_merges: bool,
    #[serde(borrow)]
    vocab: HashMap<Cow<'a, str>, u32, FxBuildHasher>,
    #[serde(borrow)]
    merges: Vec<Merge<'a>>,
}

/// A merge as a pair, or as `"a b"` in files written before `tokenizers` 0.20.
#[derive(Deserialize)]
#[serde(untagged)]
enum Merge<'a> {
    Pair(#[serde(borrow)] Cow<'a, str>, #[serde(borrow)] Cow<'a, str>),
    Joined(#[serde(borrow)] Cow<'a, str>),
}

/// Per-thread buffers for `ByteBpe::encode`.
#[derive(Default)]
pub struct BpeScratch {
    symbols: Vec<Symbol>,
    queue: BinaryHeap<Reverse<(u32, u32, u32)>>,
}

/// A token in the word being merged; merged-away symbols are marked `gone`, and the live ones
/// form a linked list (`prev`/`next`, `NONE` at the ends), as in the crate.
#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    prev: u32,
    next: u32,
    gone: bool,
}

const NONE: u32 = u32::MAX;

impl ByteBpe {
    /// The merges of `tk`'s model, when it is a BPE without dropout, subword prefix or suffix, and
    /// every byte (spelled by `chars`) is in its vocabulary; None otherwise.
    #[must_use]
    pub fn detect(tk: &Tokenizer, chars: &[char; 256], json: Option<&str>) -> Option<Self> {
        // The crate has no accessor for the merges. They are read in rank order from the
        // `tokenizer.json` text `tk` was loaded from, or else from the crate's serialization of
        // the model (which costs more than the rest of this function together).
        let serialized;
        let model: ModelJson = if let Some(text) = json {
            serde_json::from_str::<FileJson>(text).ok()?.model
        } else {
            serialized = serde_json::to_string(tk.get_model()).ok()?;
            serde_json::from_str(&serialized).ok()?
        };
        let plain = model.kind == "BPE"
            && model.dropout.is_none_or(|d| d == 0.0)
            && model.continuing_subword_prefix.is_none()
            && model.end_of_word_suffix.is_none();
        if !plain {
            return None;
        }
        let vocab = &model.vocab;
        let mut byte_ids = [0u32; 256];
        for (b, id) in byte_ids.iter_mut().enumerate() {
            *id = *vocab.get(chars[b].encode_utf8(&mut [0; 4]) as &str)?;
        }
        let mut merges =
            HashMap::with_capacity_and_hasher(model.merges.len(), BuildHasherDefault::default());
        let mut joined = String::new();
        for (rank, merge) in model.merges.iter().enumerate() {
            let (a, b) = match merge {
                Merge::Pair(a, b) => (a.as_ref(), b.as_ref()),
                Merge::Joined(ab) => ab.split_once(' ')?,
            };
            joined.clear();
            joined.push_str(a);
            joined.push_str(b);
            merges.insert(
                pair(*vocab.get(a)?, *vocab.get(b)?),
                (u32::try_from(rank).ok()?, *vocab.get(joined.as_str())?),
            );
        }
        Some(Self {
            byte_ids,
            merges,
            ignore_merges: model.ignore_merges,
        })
    }

    /// Appends the ids of `word` to `out`. `token_id` gives the id of the whole word when it is a
    /// token; it is asked only when the model ignores merges for those.
    pub fn encode(
        &self,
        word: &[u8],
        token_id: impl FnOnce() -> Option<u32>,
        scratch: &mut BpeScratch,
        out: &mut Vec<u32>,
    ) {
        if self.ignore_merges
            && let Some(id) = token_id()
        {
            out.push(id);
            return;
        }
        let BpeScratch { symbols, queue } = scratch;
        symbols.clear();
        queue.clear();
        let n = word.len() as u32;
        symbols.extend(word.iter().zip(0..).map(|(&b, i)| Symbol {
            id: self.byte_ids[usize::from(b)],
            prev: if i == 0 { NONE } else { i - 1 },
            next: if i + 1 == n { NONE } else { i + 1 },
            gone: false,
        }));
        for i in 1..n {
            let (l, r) = (symbols[i as usize - 1].id, symbols[i as usize].id);
            if let Some(&(rank, merged)) = self.merges.get(&pair(l, r)) {
                queue.push(Reverse((rank, i - 1, merged)));
            }
        }
        while let Some(Reverse((_, pos, merged))) = queue.pop() {
            let at = symbols[pos as usize];
            if at.gone || at.next == NONE {
                continue;
            }
            let right = symbols[at.next as usize];
            // A stale entry: the pair here changed since it was pushed, into one that does not make
            // the same token.
            if self.merges.get(&pair(at.id, right.id)).map(|m| m.1) != Some(merged) {
                continue;
            }
            symbols[pos as usize] = Symbol {
                id: merged,
                next: right.next,
                ..at
            };
            symbols[at.next as usize].gone = true;
            if right.next != NONE {
                symbols[right.next as usize].prev = pos;
            }
            if at.prev != NONE {
                let left = symbols[at.prev as usize].id;
                if let Some(&(rank, m)) = self.merges.get(&pair(left, merged)) {
                    queue.push(Reverse((rank, at.prev, m)));
                }
            }
            if right.next != NONE {
                let next = symbols[right.next as usize].id;
                if let Some(&(rank, m)) = self.merges.get(&pair(merged, next)) {
                    queue.push(Reverse((rank, pos, m)));
                }
            }
        }
        out.extend(symbols.iter().filter(|s| !s.gone).map(|s| s.id));
    }
}

fn pair(left: u32, right: u32) -> u64 {
    u64::from(left) << 32 | u64::from(right)
}

/// Hashes a pair of ids with one folded multiply: the merge table is probed for every candidate
/// pair, and `SipHash` cost more than the merging.
#[derive(Default)]
struct PairHasher(u64);

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        let p = u128::from(v ^ self.0) * 0x9E37_79B9_7F4A_7C15;
        self.0 = (p >> 64) as u64 ^ p as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::Model;

    use super::super::shared_tokenizer;

    /// The crate's ids for a word spelled out in the byte characters: its model's `tokenize`.
    fn crate_ids(tk: &Tokenizer, spelled: &str) -> Vec<u32> {
        let tokens = tk.get_model().tokenize(spelled).unwrap();
        tokens.iter().map(|t| t.id).collect()
    }

    /// Every vocabulary token as a word, and two random tokens' bytes run together (merges across
    /// the seam), and random byte strings: GPT-2 merges everything, Llama 3 ignores merges for
    /// words in its vocabulary.
    #[test]
    fn ids_equal_the_crates() {
        let chars = super::super::byte_level::bytes_to_chars();
        let byte_of: HashMap<char, u8> = (0..=255u8).map(|b| (chars[b as usize], b)).collect();
        let mut rng = crate::test_rng::XorShift::new(0x9E37_79B9_7F4A_7C15);
        for name in ["gpt2.json", "llama3.json"] {
            let tk = Tokenizer::from_file(shared_tokenizer(name)).unwrap();
            let bpe = ByteBpe::detect(&tk, &chars, None).expect("a byte-level BPE");
            // Read from the file, the merges and their ranks are the same.
            let text = std::fs::read_to_string(shared_tokenizer(name)).unwrap();
            let from_file = ByteBpe::detect(&tk, &chars, Some(&text)).unwrap();
            assert_eq!(from_file.merges, bpe.merges);
            assert_eq!(from_file.byte_ids, bpe.byte_ids);
            assert_eq!(bpe.ignore_merges, name == "llama3.json");
            let mut tokens: Vec<Vec<u8>> = tk
                .get_model()
                .get_vocab()
                .keys()
                .filter_map(|t| t.chars().map(|c| byte_of.get(&c).copied()).collect())
                .collect();
            // In a fixed order, so the random pairs below are the same on every run.
            tokens.sort_unstable();
            let mut scratch = BpeScratch::default();
            let mut check = |word: &[u8]| {
                let spelled: String = word.iter().map(|&b| chars[usize::from(b)]).collect();
                let token_id = || tk.get_model().token_to_id(&spelled);
                let mut got = Vec::new();
                bpe.encode(word, token_id, &mut scratch, &mut got);
                assert_eq!(got, crate_ids(&tk, &spelled), "{name}: {word:?}");
            };
            for t in &tokens {
                check(t);
            }
            for _ in 0..20_000 {
                let a = &tokens[rng.below(tokens.len())];
                let b = &tokens[rng.below(tokens.len())];
                check(&[&a[..], &b[..]].concat());
                let len = 1 + rng.below(12);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                check(&bytes);
            }
        }
    }
}
