//! Benchmark decontamination: normalized word n-grams of evaluation sets (default n = 13, like
//! GPT-3 and lm-eval), a hash set of them, and a rolling scan over documents that reports every
//! matched span and drops, cuts or tags the document.

pub mod index;
pub mod ngram;
pub mod pipeline;
pub mod scan;

pub use index::{EvalFormat, EvalIndex, EvalItem, EvalSet, load_eval_set};
pub use pipeline::{DecontamJobConfig, DecontamReport, run};
pub use scan::{Action, CutConfig, Hit, ScanScratch, cut, scan};

use crate::error::{Error, Result};
use rayon::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecontamConfig {
    pub evals: Vec<EvalSet>,
    /// Words per n-gram (8–13).
    pub ngram: usize,
    /// An n-gram found in more evaluation items than this is boilerplate and ignored.
    pub max_items_per_ngram: usize,
    pub action: Action,
    pub cut: CutConfig,
}

impl Default for DecontamConfig {
    fn default() -> Self {
        Self {
            evals: Vec::new(),
            ngram: 13,
            max_items_per_ngram: 10,
            action: Action::Drop,
            cut: CutConfig::default(),
        }
    }
}

impl DecontamConfig {
    pub fn validate(&self) -> Result<()> {
        if !(8..=13).contains(&self.ngram) {
            return Err(Error::Config(format!(
                "ngram must be 8 to 13 words, not {}",
                self.ngram
            )));
        }
        if self.evals.is_empty() {
            return Err(Error::Config("no evaluation sets given".into()));
        }
        if self.max_items_per_ngram == 0 {
            return Err(Error::Config(
                "max_items_per_ngram must be at least 1".into(),
            ));
        }
        for (i, e) in self.evals.iter().enumerate() {
            if self.evals[..i].iter().any(|p| p.name == e.name) {
                return Err(Error::Config(format!(
                    "evaluation set name {:?} used twice",
                    e.name
                )));
            }
        }
        Ok(())
    }

    /// Load every evaluation set and index its n-grams.
    pub fn build_index(&self) -> Result<EvalIndex> {
        self.validate()?;
        let mut items = Vec::new();
        for (b, set) in self.evals.iter().enumerate() {
            items.extend(load_eval_set(set, b as u32)?);
        }
        let names: Vec<String> = self.evals.iter().map(|e| e.name.clone()).collect();
        Ok(EvalIndex::build(
            items,
            &names,
            self.ngram,
            self.max_items_per_ngram,
        ))
    }
}

/// Hits of every text, in parallel.
pub fn scan_texts<S: AsRef<str> + Sync>(index: &EvalIndex, texts: &[S]) -> Vec<Vec<Hit>> {
    texts
        .par_iter()
        .map_init(ScanScratch::default, |scratch, t| {
            scan(index, t.as_ref(), scratch)
        })
        .collect()
}
