//! `FineWeb`'s own rules (Penedo et al. 2024), aimed at what Gopher and C4 let through: lists,
//! navigation menus and repeated lines.

use super::Outcome;
use super::charsets::is_terminal_punctuation;
use super::text::{char_len, duplicates, py_strip, ratio};
use std::collections::HashSet;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FineWebConfig {
    pub enabled: bool,
    /// At least this fraction of non-empty lines must end in sentence-final punctuation.
    #[serde(deserialize_with = "super::off_or")]
    pub line_punct_thr: Option<f64>,
    /// Let documents with no such line at all through (`FineWeb` keeps this off).
    pub line_punct_exclude_zero: bool,
    /// At most this fraction of non-empty lines may be `short_line_length` code points or shorter.
    #[serde(deserialize_with = "super::off_or")]
    pub short_line_thr: Option<f64>,
    pub short_line_length: usize,
    /// Characters of repeated lines over the text's (newlines not counted).
    #[serde(deserialize_with = "super::off_or")]
    pub char_duplicates_ratio: Option<f64>,
    /// Newlines per word.
    #[serde(deserialize_with = "super::off_or")]
    pub new_line_ratio: Option<f64>,
}

impl Default for FineWebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            line_punct_thr: Some(0.12),
            line_punct_exclude_zero: false,
            short_line_thr: Some(0.67),
            short_line_length: 30,
            char_duplicates_ratio: Some(0.01),
            new_line_ratio: Some(0.3),
        }
    }
}

impl FineWebConfig {
    pub fn stat_names(out: &mut Vec<String>) {
        out.extend(
            [
                "fineweb_line_punct_frac",
                "fineweb_short_line_frac",
                "fineweb_dup_line_char_frac",
                "fineweb_newline_word_ratio",
            ]
            .map(String::from),
        );
    }

    /// `words`: how many words `text` splits into.
    pub fn evaluate(&self, text: &str, words: usize, out: &mut Outcome) {
        let lines: Vec<&str> = text
            .split('\n')
            .filter(|l| !py_strip(l).is_empty())
            .collect();
        if lines.is_empty() {
            out.stats.extend([0.0; 4]);
            out.fail("fineweb_empty");
            return;
        }
        let punct = lines
            .iter()
            .filter(|l| l.chars().next_back().is_some_and(is_terminal_punctuation))
            .count();
        let punct_frac = ratio(punct, lines.len());
        let short = lines
            .iter()
            .filter(|l| char_len(l) <= self.short_line_length)
            .count();
        let short_frac = ratio(short, lines.len());
        let (_, dup_chars) = duplicates(lines.iter().copied(), &mut HashSet::default());
        let dup_frac = ratio(dup_chars, char_len(text) - text.matches('\n').count());
        let newlines = text.matches('\n').count();
        let newline_ratio = if words == 0 {
            f64::INFINITY
        } else {
            ratio(newlines, words)
        };
        out.stats
            .extend([punct_frac, short_frac, dup_frac, newline_ratio]);
        out.fail_if(
            self.line_punct_thr
                .is_some_and(|m| punct_frac < m && !(punct == 0 && self.line_punct_exclude_zero)),
            "fineweb_line_punct",
        );
        out.fail_if(
            self.short_line_thr.is_some_and(|m| short_frac > m),
            "fineweb_short_lines",
        );
        out.fail_if(
            self.char_duplicates_ratio.is_some_and(|m| dup_frac > m),
            "fineweb_dup_line_chars",
        );
        out.fail_if(
            self.new_line_ratio.is_some_and(|m| newline_ratio > m),
            "fineweb_list_ratio",
        );
    }
}
