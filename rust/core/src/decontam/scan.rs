//! Scanning documents against an `EvalIndex`, and what to do with a contaminated document.

use super::index::EvalIndex;
use super::ngram::{Word, ngram_keys, normalized_words, words_into};

/// A run of consecutive matching n-grams of one evaluation item in one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Index into `EvalIndex::items`.
    pub item: u32,
    /// Byte range in the document, from the first word of the first n-gram to the last word of
    /// the last one.
    pub start: usize,
    pub end: usize,
    /// Byte range of the first matched n-gram (its normalized text is the report's `ngram`).
    pub first_end: usize,
    pub ngrams: u32,
}

impl Hit {
    /// The first matched n-gram, normalized (lowercase words joined by single spaces).
    #[must_use]
    pub fn ngram(&self, text: &str) -> String {
        normalized_words(&text[self.start..self.first_end])
    }
}

#[derive(Default)]
pub struct ScanScratch {
    words: Vec<Word>,
    buf: Vec<u8>,
    keys: Vec<u64>,
    /// item → index of its open run in the output (the run is open while windows keep matching).
    open: Vec<(u32, usize, usize)>,
}

/// The hits of `text`, ordered by start.
pub fn scan(index: &EvalIndex, text: &str, scratch: &mut ScanScratch) -> Vec<Hit> {
    let n = index.n;
    words_into(text, &mut scratch.words, &mut scratch.buf);
    ngram_keys(&scratch.words, n, &mut scratch.keys);
    let words = &scratch.words;
    let mut hits: Vec<Hit> = Vec::new();
    // (item, hit index, last window) of runs still extendable.
    let open = &mut scratch.open;
    open.clear();
    for (w, &key) in scratch.keys.iter().enumerate() {
        let Some(items) = index.lookup(key) else {
            continue;
        };
        let (start, end) = (words[w].start, words[w + n - 1].end);
        for &item in items {
            if let Some(slot) = open
                .iter_mut()
                .find(|(i, _, last)| *i == item && *last + 1 == w)
            {
                let hit = &mut hits[slot.1];
                hit.end = end;
                hit.ngrams += 1;
                slot.2 = w;
            } else {
                open.retain(|(i, _, _)| *i != item);
                open.push((item, hits.len(), w));
                hits.push(Hit {
                    item,
                    start,
                    end,
                    first_end: end,
                    ngrams: 1,
                });
            }
        }
        // Runs that ended before this window can no longer grow.
        open.retain(|(_, _, last)| *last + 1 >= w);
    }
    hits.sort_by_key(|h| (h.start, h.item));
    hits
}

/// What happens to a document with hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The document is removed.
    Drop,
    /// Each matched span is cut out with `cut_margin` characters on either side; the pieces left
    /// become documents of their own, and pieces under `min_piece_chars` are dropped (GPT-3,
    /// NeMo). A document cut into more than `max_pieces` pieces is dropped whole.
    Cut,
    /// The document is kept as it is; only the report lists the hits.
    Tag,
}

/// Cut parameters (GPT-3 / NeMo defaults: 200-character margins and minimum pieces).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CutConfig {
    pub cut_margin: usize,
    pub min_piece_chars: usize,
    pub max_pieces: usize,
}

impl Default for CutConfig {
    fn default() -> Self {
        Self {
            cut_margin: 200,
            min_piece_chars: 200,
            max_pieces: 10,
        }
    }
}

/// Byte position `chars` characters before `pos` (or 0).
fn back_chars(text: &str, pos: usize, chars: usize) -> usize {
    if chars == 0 {
        return pos;
    }
    text[..pos]
        .char_indices()
        .rev()
        .nth(chars - 1)
        .map_or(0, |(i, _)| i)
}

/// Byte position `chars` characters after `pos` (or the end).
fn forward_chars(text: &str, pos: usize, chars: usize) -> usize {
    text[pos..]
        .char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| pos + i)
}

/// The pieces of `text` left after cutting every hit with its margins; None when the document is
/// to be dropped whole (more than `max_pieces` pieces would remain).
#[must_use]
pub fn cut<'t>(text: &'t str, hits: &[Hit], cfg: &CutConfig) -> Option<Vec<&'t str>> {
    let mut ranges: Vec<(usize, usize)> = hits
        .iter()
        .map(|h| {
            (
                back_chars(text, h.start, cfg.cut_margin),
                forward_chars(text, h.end, cfg.cut_margin),
            )
        })
        .collect();
    ranges.sort_unstable();
    let mut pieces = Vec::new();
    let mut pos = 0;
    for (s, e) in ranges {
        if s > pos {
            pieces.push(&text[pos..s]);
        }
        pos = pos.max(e);
    }
    if pos < text.len() {
        pieces.push(&text[pos..]);
    }
    pieces.retain(|p| p.chars().count() >= cfg.min_piece_chars);
    (pieces.len() <= cfg.max_pieces).then_some(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decontam::index::EvalItem;

    fn index(texts: &[&str], n: usize) -> EvalIndex {
        let items = texts
            .iter()
            .enumerate()
            .map(|(i, t)| EvalItem {
                benchmark: 0,
                id: format!("item{i}"),
                text: (*t).to_owned(),
            })
            .collect();
        EvalIndex::build(items, &["bench".to_owned()], n, 10)
    }

    #[test]
    fn finds_a_planted_item_as_one_run() {
        let item =
            "Janet's ducks lay 16 eggs per day and she eats three for breakfast every morning";
        let idx = index(
            &[
                item,
                "an unrelated item with enough words to make a few n grams here",
            ],
            5,
        );
        let doc = format!("Some text before. {} And after it.", item.to_uppercase());
        let hits = scan(&idx, &doc, &mut ScanScratch::default());
        assert_eq!(hits.len(), 1);
        let h = &hits[0];
        assert_eq!(h.item, 0);
        assert_eq!(&doc[h.start..h.end], item.to_uppercase());
        // 16 words ("Janet's" is two): 12 five-word windows.
        assert_eq!(h.ngrams, 16 - 5 + 1);
        assert_eq!(h.ngram(&doc), "janet s ducks lay 16");
        assert!(
            scan(
                &idx,
                "nothing to see here at all, just words",
                &mut ScanScratch::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn cut_removes_margins_and_short_pieces() {
        let item = "one two three four five six seven";
        let idx = index(&[item], 4);
        let doc = format!("{} {item} {}", "a".repeat(500), "b".repeat(250));
        let hits = scan(&idx, &doc, &mut ScanScratch::default());
        let cfg = CutConfig::default();
        let pieces = cut(&doc, &hits, &cfg).unwrap();
        // The item starts at char 501: the 301 chars before its margin stay; the 251 after it
        // lose 200 to the margin, and the 51 left are under 200, so they go.
        assert_eq!(pieces, vec!["a".repeat(301).as_str()]);
        let strict = CutConfig {
            max_pieces: 0,
            ..cfg
        };
        assert!(cut(&doc, &hits, &strict).is_none());
    }
}
