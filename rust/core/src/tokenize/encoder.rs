//! Text → token ids with the HF `tokenizers` crate, without building `Encoding`s.
//!
//! The crate's own `encode` runs the added-vocabulary split, the normalizer and the pre-tokenizer,
//! then asks the model for every word and builds an `Encoding` (a `String`, offsets and masks per
//! token). A data pipeline needs only the ids, so `Encoder` runs the same first three steps through
//! the crate and then looks each pre-tokenized word up in a per-thread cache of ids; only words it
//! has not seen go to the model. Byte-level BPE tokenizers skip the crate's pre-tokenization too
//! (`byte_level`). The ids are the crate's ids by construction, and a test checks them against the
//! Python `tokenizers` package.

use super::byte_bpe::BpeScratch;
use super::byte_level::ByteLevelPath;
use super::word_cache::WordCache;
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use tokenizers::{AddedToken, Model, OffsetReferential, OffsetType, PreTokenizer, Tokenizer};

const EOS_CANDIDATES: [&str; 5] = ["<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "[SEP]"];
const BOS_CANDIDATES: [&str; 4] = ["<|begin_of_text|>", "<s>", "<bos>", "[CLS]"];
const PAD_CANDIDATES: [&str; 4] = ["<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>"];

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The word cache of the encoder this thread used last (its id, its scratch).
    static SCRATCH: RefCell<(u64, EncodeScratch)> = RefCell::new((0, EncodeScratch::default()));
}

/// Special token ids of a tokenizer, as the token dataset's manifest records them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpecialIds {
    pub eos: u32,
    pub bos: Option<u32>,
    pub pad: Option<u32>,
}

pub struct Encoder {
    /// Distinguishes encoders in the per-thread caches.
    id: u64,
    tokenizer: Tokenizer,
    pub special: SpecialIds,
    /// Number of ids, added tokens included.
    pub vocab_size: usize,
    /// Special tokens this encoder added to the vocabulary (see `new`).
    pub added: Vec<String>,
    /// The direct path, for byte-level BPE tokenizers.
    byte_level: Option<ByteLevelPath>,
}

/// Per-thread scratch: word → ids caches (by pre-tokenized word, and by raw word for the
/// byte-level path) and a buffer for spelled-out words.
#[derive(Default)]
pub struct EncodeScratch {
    cache: WordCache,
    raw_cache: WordCache,
    spelled: String,
    bpe: BpeScratch,
}

impl EncodeScratch {
    fn clear(&mut self) {
        self.cache.clear();
        self.raw_cache.clear();
    }
}

impl Encoder {
    /// Load a `tokenizer.json`. `eos`/`bos` name the special tokens; `None` picks the first known
    /// name present (`<|endoftext|>`, `<|end_of_text|>`, `</s>`, …).
    pub fn from_file(path: &Path, eos: Option<&str>, bos: Option<&str>) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let json = std::str::from_utf8(&bytes).ok();
        Self::new(tokenizer, path, eos, bos, json)
    }

    /// A named `eos`/`bos` token the vocabulary lacks is added as a special token after the last
    /// id (tiktoken-converted vocabularies often have no special tokens); `added` lists them.
    pub fn new(
        mut tokenizer: Tokenizer,
        path: &Path,
        eos: Option<&str>,
        bos: Option<&str>,
        json: Option<&str>,
    ) -> Result<Self> {
        let mut added = Vec::new();
        for name in [eos, bos].into_iter().flatten() {
            if tokenizer.token_to_id(name).is_none() {
                tokenizer.add_special_tokens(&[AddedToken::from(name.to_owned(), true)]);
                added.push(name.to_owned());
            }
        }
        let find = |given: Option<&str>, candidates: &[&str], what: &str| -> Result<Option<u32>> {
            match given {
                Some(name) => {
                    tokenizer
                        .token_to_id(name)
                        .map(Some)
                        .ok_or_else(|| Error::Tokenizer {
                            path: path.to_path_buf(),
                            message: format!("has no {what} token {name:?}"),
                        })
                }
                None => Ok(candidates.iter().find_map(|c| tokenizer.token_to_id(c))),
            }
        };
        let eos_id = find(eos, &EOS_CANDIDATES, "end-of-document")?.ok_or_else(|| {
            Error::Tokenizer {
                path: path.to_path_buf(),
                message: format!(
                    "has none of the usual end-of-document tokens {EOS_CANDIDATES:?}; name one with eos_token (it is added as a special token if the vocabulary lacks it)"
                ),
            }
        })?;
        let special = SpecialIds {
            eos: eos_id,
            bos: find(bos, &BOS_CANDIDATES, "beginning-of-document")?,
            pad: find(None, &PAD_CANDIDATES, "padding")?,
        };
        let vocab_size = tokenizer.get_vocab_size(true);
        let byte_level = ByteLevelPath::detect(&tokenizer, json);
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            tokenizer,
            special,
            vocab_size,
            added,
            byte_level,
        })
    }

    #[must_use]
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Whether this tokenizer takes the direct byte-level path.
    #[must_use]
    pub fn is_byte_level(&self) -> bool {
        self.byte_level.is_some()
    }

    /// Append the ids of `text` (no special tokens added) to `out`.
    pub fn encode_into(
        &self,
        text: &str,
        scratch: &mut EncodeScratch,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        match &self.byte_level {
            Some(bl) if !bl.needs_added_vocabulary(text) => {
                self.encode_byte_level(bl, text, scratch, out)
            }
            _ => self.encode_generic(text, scratch, out),
        }
    }

    fn encode_byte_level(
        &self,
        bl: &ByteLevelPath,
        text: &str,
        scratch: &mut EncodeScratch,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        let model = self.tokenizer.get_model();
        let EncodeScratch {
            raw_cache,
            spelled,
            bpe: bpe_scratch,
            ..
        } = scratch;
        bl.for_each_word(text, |word| {
            if raw_cache.extend_into(word.as_bytes(), out) {
                return Ok(());
            }
            let start = out.len();
            if let Some(bpe) = &bl.bpe {
                let token_id = || {
                    bl.spell(word, spelled);
                    model.token_to_id(spelled)
                };
                bpe.encode(word.as_bytes(), token_id, bpe_scratch, out);
            } else {
                bl.spell(word, spelled);
                out.extend(
                    model
                        .tokenize(spelled)
                        .map_err(encode_error)?
                        .iter()
                        .map(|t| t.id),
                );
            }
            raw_cache.insert(word.as_bytes(), &out[start..]);
            Ok(())
        })
    }

    /// The crate's added-vocabulary split, normalizer and pre-tokenizer, then the word cache.
    pub fn encode_generic(
        &self,
        text: &str,
        scratch: &mut EncodeScratch,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        let tk = &self.tokenizer;
        let mut pre = tk
            .get_added_vocabulary()
            .extract_and_normalize(tk.get_normalizer(), text);
        if let Some(pt) = tk.get_pre_tokenizer() {
            pt.pre_tokenize(&mut pre).map_err(encode_error)?;
        }
        let model = tk.get_model();
        for (word, _, tokens) in pre.get_splits(OffsetReferential::Original, OffsetType::None) {
            if let Some(tokens) = tokens {
                // An added token matched by the added vocabulary.
                out.extend(tokens.iter().map(|t| t.id));
                continue;
            }
            if word.is_empty() {
                continue;
            }
            if scratch.cache.extend_into(word.as_bytes(), out) {
                continue;
            }
            let start = out.len();
            out.extend(
                model
                    .tokenize(word)
                    .map_err(encode_error)?
                    .iter()
                    .map(|t| t.id),
            );
            scratch.cache.insert(word.as_bytes(), &out[start..]);
        }
        Ok(())
    }

    /// `encode_into` with this thread's cache (kept across calls, dropped when another encoder
    /// uses the thread).
    pub fn encode_cached(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (owner, scratch) = &mut *guard;
            if *owner != self.id {
                *owner = self.id;
                scratch.clear();
            }
            self.encode_into(text, scratch, out)
        })
    }

    /// Encode `texts` in parallel into one flat id buffer and n + 1 offsets into it.
    pub fn encode_many<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        bos: Option<u32>,
        add_eos: bool,
    ) -> Result<(Vec<u32>, Vec<u64>)> {
        use rayon::prelude::*;
        let eos = add_eos.then_some(self.special.eos);
        let per_text: Vec<Vec<u32>> = texts
            .par_iter()
            .map(|t| {
                let t = t.as_ref();
                let mut ids = Vec::with_capacity(t.len() / 3 + 2);
                ids.extend(bos);
                self.encode_cached(t, &mut ids)?;
                ids.extend(eos);
                Ok(ids)
            })
            .collect::<Result<_>>()?;
        let mut offsets = Vec::with_capacity(texts.len() + 1);
        offsets.push(0u64);
        let total: usize = per_text.iter().map(Vec::len).sum();
        let mut flat = Vec::with_capacity(total);
        for ids in per_text {
            flat.extend_from_slice(&ids);
            offsets.push(flat.len() as u64);
        }
        Ok((flat, offsets))
    }

    /// Ids of `text`, through the crate's own `encode_fast` (the reference path for tests).
    pub fn encode_reference(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .tokenizer
            .encode_fast(text, false)
            .map_err(encode_error)?
            .get_ids()
            .to_vec())
    }

    /// The tokenizer as `tokenizer.json` text (with any tokens `new` added).
    pub fn to_json(&self) -> Result<String> {
        self.tokenizer.to_string(true).map_err(encode_error)
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, false).map_err(encode_error)
    }
}

#[allow(clippy::needless_pass_by_value)]
fn encode_error(e: tokenizers::Error) -> Error {
    Error::Config(format!("tokenizer failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::super::pretokenize::Split;
    use super::*;

    fn shared(name: &str, eos: Option<&str>) -> Encoder {
        Encoder::from_file(&super::super::shared_tokenizer(name), eos, None).unwrap()
    }

    fn gpt2() -> Encoder {
        shared("gpt2.json", None)
    }

    /// The real GPT-2 and Llama 3 files take the hand-written split and the BPE on ids, not the
    /// slower fallbacks (a changed pattern string or model field would silently lose them).
    #[test]
    fn shared_tokenizers_take_the_fast_paths() {
        for (name, split) in [("gpt2.json", Split::Gpt2), ("llama3.json", Split::Cl100k)] {
            let enc = shared(name, Some("<|endoftext|>"));
            let bl = enc.byte_level.as_ref().expect("byte-level");
            assert_eq!(bl.known_split(), Some(split), "{name}");
            assert!(bl.bpe.is_some(), "{name}");
        }
    }

    #[test]
    fn cached_path_matches_the_crate() {
        let enc = gpt2();
        assert_eq!(enc.special.eos, 50256);
        let mut scratch = EncodeScratch::default();
        let texts = [
            "Hello world, hello world! <|endoftext|> again",
            "",
            "   leading spaces and\ttabs\n\nnewlines 1234567 ",
            "emoji 🤗 CJK 漢字 combining é e\u{301}",
            &"a".repeat(5000),
        ];
        assert!(enc.is_byte_level());
        for _ in 0..2 {
            for t in texts {
                let mut got = Vec::new();
                enc.encode_into(t, &mut scratch, &mut got).unwrap();
                assert_eq!(got, enc.encode_reference(t).unwrap(), "{t:?}");
                let mut generic = Vec::new();
                enc.encode_generic(t, &mut scratch, &mut generic).unwrap();
                assert_eq!(generic, got, "{t:?}");
                if !t.is_empty() {
                    assert_eq!(enc.decode(&got).unwrap(), t);
                }
            }
        }
    }
}
