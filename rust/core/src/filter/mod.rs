//! Heuristic quality rules: Gopher quality and repetition, C4 and `FineWeb`, in one pass per
//! document.
//!
//! Every rule computes its statistic whether it fails or not, and every failed rule is named (not
//! only the first), so a corpus is tagged once and filtered many times: the statistics become
//! columns that a later filter reads without recomputing anything. Thresholds default to the
//! published ones (datatrove's defaults); `None` switches a rule off, `enabled: false` a family.
//!
//! Order within a document, as in `FineWeb`'s pipeline: Gopher repetition and quality look at the
//! text as given, C4 removes lines, and `FineWeb`'s rules look at what C4 left.

pub mod c4;
pub mod charsets;
pub mod fineweb;
pub mod gopher;
pub mod pipeline;
pub mod text;
pub mod words;

pub use c4::C4Config;
pub use fineweb::FineWebConfig;
pub use gopher::{GopherQualityConfig, GopherRepetitionConfig};
pub use pipeline::{FilterJobConfig, FilterReport, run};

use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer};

/// A threshold: a number, or `null`/`false` to switch its rule off (TOML has no null).
pub(crate) fn off_or<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value<T> {
        Flag(bool),
        Number(T),
    }
    match Option::<Value<T>>::deserialize(d)? {
        None | Some(Value::Flag(false)) => Ok(None),
        Some(Value::Number(t)) => Ok(Some(t)),
        Some(Value::Flag(true)) => Err(serde::de::Error::custom(
            "a threshold is a number, or false/null to switch its rule off",
        )),
    }
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    pub gopher_repetition: GopherRepetitionConfig,
    pub gopher_quality: GopherQualityConfig,
    pub c4: C4Config,
    pub fineweb: FineWebConfig,
}

impl FilterConfig {
    pub fn validate(&self) -> Result<()> {
        let r = &self.gopher_repetition;
        for &(n, max) in r.top_n_grams.iter().chain(&r.dup_n_grams) {
            if !(1..=32).contains(&n) || !(0.0..=1.0).contains(&max) {
                return Err(Error::Config(format!(
                    "gopher_repetition n-gram rule ({n}, {max}): n must be 1 to 32 and the \
                     fraction 0 to 1"
                )));
            }
        }
        Ok(())
    }

    /// Names of the statistics `evaluate` returns, in their order.
    #[must_use]
    pub fn stat_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.gopher_repetition.enabled || self.gopher_quality.enabled {
            out.push("words".into());
        }
        if self.gopher_repetition.enabled {
            self.gopher_repetition.stat_names(&mut out);
        }
        if self.gopher_quality.enabled {
            self.gopher_quality.stat_names(&mut out);
        }
        if self.c4.enabled {
            C4Config::stat_names(&mut out);
        }
        if self.fineweb.enabled {
            FineWebConfig::stat_names(&mut out);
        }
        out
    }

    /// Apply every enabled rule to `text`.
    pub fn evaluate(&self, text: &str, s: &mut Scratch) -> Outcome {
        let mut out = Outcome::default();
        s.words.split(text);
        if self.gopher_repetition.enabled || self.gopher_quality.enabled {
            out.stats.push(s.words.len() as f64);
        }
        if self.gopher_repetition.enabled {
            self.gopher_repetition
                .evaluate(text, &s.words, &mut s.repetition, &mut out);
        }
        if self.gopher_quality.enabled {
            self.gopher_quality.evaluate(text, &s.words, &mut out);
        }
        s.c4.kept_words = None;
        if self.c4.enabled {
            out.text = self.c4.evaluate(text, &mut s.c4, &mut out);
        }
        if self.fineweb.enabled {
            if let Some(edited) = out.text.take() {
                let words = if let Some(n) = s.c4.kept_words {
                    n
                } else {
                    s.words.split(&edited);
                    s.words.len()
                };
                self.fineweb.evaluate(&edited, words, &mut out);
                out.text = Some(edited);
            } else {
                self.fineweb.evaluate(text, s.words.len(), &mut out);
            }
        }
        out
    }
}

/// The word spans of one text.
#[derive(Default)]
pub struct Words {
    spans: Vec<(u32, u32)>,
}

impl Words {
    pub fn split(&mut self, text: &str) {
        words::split_words(text, &mut self.spans);
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn iter<'t>(&'t self, text: &'t str) -> impl Iterator<Item = &'t str> + 't {
        self.spans
            .iter()
            .map(move |&(a, b)| &text[a as usize..b as usize])
    }
}

/// A line a line-level rule removed from a document.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemovedLine {
    /// 1-based line within the document.
    pub line: u64,
    pub reason: &'static str,
    pub text: String,
}

/// What the rules found in one document.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// In the order of `FilterConfig::stat_names`.
    pub stats: Vec<f64>,
    /// Names of the failed rules; empty means the document is kept.
    pub failed: Vec<String>,
    /// The text after line-level removals, when they changed it.
    pub text: Option<String>,
    pub removed: Vec<RemovedLine>,
}

impl Outcome {
    fn fail(&mut self, rule: &str) {
        self.failed.push(rule.to_owned());
    }

    fn fail_if(&mut self, failed: bool, rule: &str) {
        if failed {
            self.fail(rule);
        }
    }

    #[must_use]
    pub fn kept(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Per-thread buffers reused across documents.
#[derive(Default)]
pub struct Scratch {
    words: Words,
    repetition: gopher::RepetitionScratch,
    c4: c4::C4Scratch,
}

#[cfg(test)]
mod tests;
