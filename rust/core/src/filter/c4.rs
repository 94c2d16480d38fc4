//! C4's rules (Raffel et al. 2020, section 2.2), as datatrove applies them: line by line, lines
//! that fail are removed (and recorded), and some findings drop the whole document.

use super::charsets::{is_punctuation, is_terminal_punctuation};
use super::text::{char_len, is_py_space, py_strip, splitlines};
use super::words::split_words;
use super::{Outcome, RemovedLine};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct C4Config {
    pub enabled: bool,
    /// Strip `[1]`, `[edit]`, `[citation needed]` markers from every line.
    pub remove_citations: bool,
    /// Remove lines that do not end in `.`, `?`, `!`, `"` or `'` (or that end in `...`).
    pub filter_no_terminal_punct: bool,
    /// Drop the document when fewer sentences than this remain.
    #[serde(deserialize_with = "super::off_or")]
    pub min_num_sentences: Option<u64>,
    /// Remove lines with fewer words (whitespace separated) than this.
    #[serde(deserialize_with = "super::off_or")]
    pub min_words_per_line: Option<u64>,
    /// Remove lines holding a word longer than this (code points).
    #[serde(deserialize_with = "super::off_or")]
    pub max_word_length: Option<u64>,
    /// Drop documents containing "lorem ipsum".
    pub filter_lorem_ipsum: bool,
    /// Remove lines mentioning "javascript".
    pub filter_javascript: bool,
    /// Drop documents containing `{` (code, templates).
    pub filter_curly_bracket: bool,
    /// Remove cookie and terms-of-use boilerplate lines.
    pub filter_policy: bool,
}

impl Default for C4Config {
    fn default() -> Self {
        Self {
            enabled: true,
            remove_citations: true,
            filter_no_terminal_punct: true,
            min_num_sentences: Some(5),
            min_words_per_line: Some(3),
            max_word_length: Some(1000),
            filter_lorem_ipsum: true,
            filter_javascript: true,
            filter_curly_bracket: true,
            filter_policy: true,
        }
    }
}

const POLICY: [&str; 6] = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

/// A token that is one sentence-final character (spaCy's sentencizer list).
fn is_sentence_end(tok: &str) -> bool {
    let mut cs = tok.chars();
    matches!((cs.next(), cs.next()), (Some(c), None) if is_terminal_punctuation(c))
}

/// Tokens made only of punctuation do not open a sentence (a closing quote after a period).
fn is_punct_token(tok: &str) -> bool {
    tok.chars()
        .all(|c| c.is_ascii_punctuation() || is_punctuation(c))
}

/// Sentences in a line, as a sentencizer counts them: a new one starts at the first
/// non-punctuation token after a sentence-final one. At least 1, as the reference counts a line
/// without any.
fn count_sentences(line: &str, spans: &mut Vec<(u32, u32)>) -> u64 {
    split_words(line, spans);
    let mut n = 1;
    let mut seen_end = false;
    for &(a, b) in spans.iter() {
        let tok = &line[a as usize..b as usize];
        let end = is_sentence_end(tok);
        if seen_end && !end && !is_punct_token(tok) {
            n += 1;
            seen_end = false;
        } else if end {
            seen_end = true;
        }
    }
    n
}

/// Remove `[digits]`, `[edit]` and `[citation needed]` markers; how many went.
fn strip_citations(line: &str, out: &mut String) -> usize {
    out.clear();
    let mut removed = 0;
    let mut rest = line;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let len = if tail.starts_with("[edit]") {
            6
        } else if tail.starts_with("[citation needed]") {
            17
        } else {
            // `\d` of a Python regex: any decimal digit, not only ASCII.
            let digits: usize = tail[1..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric()))
                .map(char::len_utf8)
                .sum();
            if tail.as_bytes().get(1 + digits) == Some(&b']') {
                digits + 2
            } else {
                0
            }
        };
        if len == 0 {
            out.push('[');
            rest = &tail[1..];
        } else {
            removed += 1;
            rest = &tail[len..];
        }
    }
    out.push_str(rest);
    removed
}

#[derive(Default)]
pub struct C4Scratch {
    line: String,
    lower: String,
    spans: Vec<(u32, u32)>,
    /// Words of the kept lines, when sentences were counted (they are then already split, and
    /// `FineWeb` needs no second pass over the edited text).
    pub kept_words: Option<usize>,
}

impl C4Config {
    pub fn stat_names(out: &mut Vec<String>) {
        out.extend(
            [
                "c4_lines",
                "c4_lines_removed",
                "c4_chars_removed",
                "c4_citations_removed",
                "c4_sentences",
            ]
            .map(String::from),
        );
    }

    /// Apply the rules to `text`: returns the text that is left (`None` when unchanged); removed
    /// lines go to `out.removed`.
    pub fn evaluate(&self, text: &str, s: &mut C4Scratch, out: &mut Outcome) -> Option<String> {
        let mut kept: Vec<String> = Vec::new();
        let (mut lines, mut removed_chars, mut citations, mut sentences) =
            (0u64, 0usize, 0u64, 0u64);
        let removed_before = out.removed.len();
        let mut kept_words = 0usize;
        let (mut lorem, mut curly) = (false, false);
        for (i, raw) in splitlines(text).enumerate() {
            lines += 1;
            let line = py_strip(raw);
            let mut remove = |reason: &'static str, out: &mut Outcome| {
                removed_chars += char_len(line);
                out.removed.push(RemovedLine {
                    line: i as u64 + 1,
                    reason,
                    text: line.to_owned(),
                });
            };
            let n_words = line.split(is_py_space).filter(|w| !w.is_empty()).count() as u64;
            if self
                .max_word_length
                .is_some_and(|m| line.split(is_py_space).any(|w| char_len(w) as u64 > m))
            {
                remove("too_long_word", out);
                continue;
            }
            let line: &str = if self.remove_citations {
                let n = strip_citations(line, &mut s.line);
                citations += n as u64;
                &s.line
            } else {
                line
            };
            if self.filter_no_terminal_punct
                && (!line.ends_with(['.', '?', '!', '"', '\'']) || line.ends_with("..."))
            {
                remove("no_terminal_punct", out);
                continue;
            }
            if self.min_words_per_line.is_some_and(|m| n_words < m) {
                remove("too_few_words", out);
                continue;
            }
            s.lower.clear();
            s.lower.extend(line.chars().flat_map(char::to_lowercase));
            if self.filter_lorem_ipsum && s.lower.contains("lorem ipsum") {
                lorem = true;
                break;
            }
            if self.filter_javascript && s.lower.contains("javascript") {
                remove("javascript", out);
                continue;
            }
            if self.filter_curly_bracket && line.contains('{') {
                curly = true;
                break;
            }
            if self.filter_policy && POLICY.iter().any(|p| s.lower.contains(p)) {
                remove("policy", out);
                continue;
            }
            if self.min_num_sentences.is_some() {
                sentences += count_sentences(line, &mut s.spans);
                kept_words += s.spans.len();
            }
            kept.push(line.to_owned());
        }
        let removed_lines = (out.removed.len() - removed_before) as u64;
        out.stats.extend([
            lines as f64,
            removed_lines as f64,
            removed_chars as f64,
            citations as f64,
            sentences as f64,
        ]);
        if lorem {
            out.fail("c4_lorem_ipsum");
            return None;
        }
        if curly {
            out.fail("c4_curly_bracket");
            return None;
        }
        if self.min_num_sentences.is_some_and(|m| sentences < m) {
            out.fail("c4_too_few_sentences");
        }
        // Kept lines joined by newlines split into the same words as line by line.
        s.kept_words = self.min_num_sentences.is_some().then_some(kept_words);
        // The reference rewrites every kept document this way (lines stripped, joined by "\n").
        let joined = kept.join("\n");
        let joined = py_strip(&joined);
        (joined != text).then(|| joined.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_go() {
        let mut s = String::new();
        assert_eq!(
            strip_citations("A fact.[1] More[edit] [citation needed] [x] [12a]", &mut s),
            3
        );
        assert_eq!(s, "A fact. More  [x] [12a]");
    }

    #[test]
    fn sentences_count_like_a_sentencizer() {
        let mut spans = Vec::new();
        assert_eq!(count_sentences("One. Two! \"Three?\" Four", &mut spans), 4);
        assert_eq!(
            count_sentences("Mr. Smith went to Washington.", &mut spans),
            1
        );
        assert_eq!(count_sentences("", &mut spans), 1);
    }
}
