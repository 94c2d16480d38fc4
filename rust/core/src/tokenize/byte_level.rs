//! A direct path for byte-level BPE tokenizers (GPT-2, Llama 3, most tiktoken conversions).
//!
//! For these the crate's pre-tokenization is: split the text with one regex (matches and the gaps
//! between them become words), then spell every byte of a word as one of 256 printable characters.
//! The crate does this on `NormalizedString`s, which carry an alignment pair per byte; that
//! bookkeeping, not BPE, is most of its time. Here the text is split over the raw `&str`, by a
//! hand-written matcher when the regex is GPT-2's or cl100k's (`pretokenize`), otherwise by the
//! same regex compiled by the crate's own `SysRegex` (oniguruma, as in the Python package). Each
//! word is looked up in the per-thread cache by its raw bytes, and only a miss is merged: on ids
//! (`byte_bpe`) when the model is a plain BPE, otherwise spelled out and sent to the model. Only tokenizer shapes that are recognised exactly take this path, and a
//! document that contains the text of an added token goes through the crate's path instead, so the
//! ids are the crate's ids; a test checks them against the Python `tokenizers` package.

use super::byte_bpe::ByteBpe;
use super::pretokenize::{GPT2_PATTERN, Split};
use aho_corasick::AhoCorasick;
use serde_json::Value;
use tokenizers::Tokenizer;
use tokenizers::utils::SysRegex;

/// How words are split off the text.
enum Splitter {
    Known(Split),
    Regex(SysRegex),
}

pub struct ByteLevelPath {
    splitter: Splitter,
    /// Contents of the added tokens; a document containing one takes the crate's path.
    added: Option<AhoCorasick>,
    /// Byte → the character GPT-2's `bytes_to_unicode` spells it with.
    chars: [char; 256],
    /// The model's merges on raw bytes, when the model is a plain BPE (else the crate's model).
    pub bpe: Option<ByteBpe>,
}

impl ByteLevelPath {
    /// The direct path for `tk`, when its normalizer and pre-tokenizer are exactly a byte-level
    /// shape this module reproduces; None otherwise.
    #[must_use]
    pub fn detect(tk: &Tokenizer, json: Option<&str>) -> Option<Self> {
        if tk.get_normalizer().is_some() {
            return None;
        }
        let pre = serde_json::to_value(tk.get_pre_tokenizer()?).ok()?;
        let pattern = split_pattern(&pre)?;
        let splitter = match Split::for_pattern(&pattern) {
            Some(split) => Splitter::Known(split),
            None => Splitter::Regex(SysRegex::new(&pattern).ok()?),
        };
        let contents: Vec<String> = tk
            .get_added_tokens_decoder()
            .values()
            .map(|t| t.content.clone())
            .filter(|c| !c.is_empty())
            .collect();
        let added = if contents.is_empty() {
            None
        } else {
            Some(AhoCorasick::new(&contents).ok()?)
        };
        let chars = bytes_to_chars();
        Some(Self {
            splitter,
            added,
            chars,
            bpe: ByteBpe::detect(tk, &chars, json),
        })
    }

    /// The hand-written split this path uses, if its regex is one of those (`pretokenize`).
    #[must_use]
    pub fn known_split(&self) -> Option<Split> {
        match self.splitter {
            Splitter::Known(split) => Some(split),
            Splitter::Regex(_) => None,
        }
    }

    /// Whether `text` must take the crate's path (it holds an added token's text).
    #[must_use]
    pub fn needs_added_vocabulary(&self, text: &str) -> bool {
        self.added.as_ref().is_some_and(|ac| ac.is_match(text))
    }

    /// Call `word` with every pre-tokenized word of `text`, in order (raw text, not spelled out).
    pub fn for_each_word<E>(
        &self,
        text: &str,
        mut word: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        let regex = match &self.splitter {
            Splitter::Known(split) => return split.for_each_word(text, word),
            Splitter::Regex(regex) => regex,
        };
        let mut prev = 0;
        for (start, end) in regex.find_iter(text) {
            if start > prev {
                word(&text[prev..start])?;
            }
            if end > start {
                word(&text[start..end])?;
            }
            prev = end;
        }
        if prev < text.len() {
            word(&text[prev..])?;
        }
        Ok(())
    }

    /// `word` spelled out in the byte characters, into `out` (cleared first).
    pub fn spell(&self, word: &str, out: &mut String) {
        out.clear();
        out.extend(word.bytes().map(|b| self.chars[b as usize]));
    }
}

/// The split regex of a recognised pre-tokenizer (as serialized in `tokenizer.json`):
/// `ByteLevel { use_regex: true, add_prefix_space: false }`, or `Sequence [Split { Regex,
/// Isolated, invert: false }, ByteLevel { use_regex: false, add_prefix_space: false }]`.
fn split_pattern(pre: &Value) -> Option<String> {
    let byte_level = |v: &Value, use_regex: bool| {
        v["type"] == "ByteLevel"
            && v["add_prefix_space"] == false
            && v["use_regex"] == Value::Bool(use_regex)
    };
    if byte_level(pre, true) {
        return Some(GPT2_PATTERN.to_owned());
    }
    if pre["type"] != "Sequence" {
        return None;
    }
    let steps = pre["pretokenizers"].as_array()?;
    let [split, bl] = steps.as_slice() else {
        return None;
    };
    if split["type"] == "Split"
        && split["behavior"] == "Isolated"
        && split["invert"] == false
        && byte_level(bl, false)
    {
        return split["pattern"]["Regex"].as_str().map(str::to_owned);
    }
    None
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the other 68 bytes
/// take the code points from 256 up, in byte order.
pub(super) fn bytes_to_chars() -> [char; 256] {
    let mut chars = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        chars[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).expect("below the surrogate range");
            next += 1;
            c
        };
    }
    chars
}
