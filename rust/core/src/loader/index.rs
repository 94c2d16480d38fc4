//! The sample index: global sample `k` → source (mixture) → epoch and sample (packing) → pieces of
//! documents. Epoch orders are built on first use and the last two per source are kept.

use super::mixture::Mixture;
use super::packing::{BestFit, ConcatEpoch, Docs, Packing, PackingStats, Piece, concat_samples};
use super::rng::{SplitMix64, permutation};
use super::shards::Shards;
use super::{LoaderSpec, RepeatFilter};
use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};
use xxhash_rust::xxh3::xxh3_64;

/// What the loader will read: per source, how many samples it gives and how many epochs that is.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    /// Global samples available (`None`: endless).
    pub samples: Option<u64>,
    pub sources: Vec<SourcePlan>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SourcePlan {
    pub name: String,
    /// Samples this source gives over the whole run (`None`: endless run).
    pub samples: Option<u64>,
    pub epochs: Option<f64>,
    pub max_epochs: Option<f64>,
    pub packing: PackingStats,
}

pub struct SampleIndex {
    pub(super) spec: LoaderSpec,
    pub(super) shards: Shards,
    pub(super) sources: Vec<Source>,
    mixture: Mixture,
    end: Option<u64>,
}

pub(super) struct Source {
    pub(super) docs: Docs,
    samples: u64,
    limit: Option<u64>,
    /// Seeds this source's shuffles, so adding a source leaves the others' orders alone.
    stream: u64,
    layout: Layout,
    stats: PackingStats,
}

enum Layout {
    Concat(Recent<ConcatEpoch>),
    BestFit(BestFit, Recent<Vec<u32>>),
}

/// The last two epochs built (a rank reads at most two epochs of a source at a time).
struct Recent<T>(Mutex<Vec<(u64, Arc<T>)>>);

impl<T> Recent<T> {
    fn new() -> Self {
        Recent(Mutex::new(Vec::new()))
    }

    fn get(&self, epoch: u64, build: impl FnOnce() -> T) -> Arc<T> {
        let mut recent = self.0.lock().expect("epoch cache lock");
        if let Some((_, e)) = recent.iter().find(|(n, _)| *n == epoch) {
            return Arc::clone(e);
        }
        let e = Arc::new(build());
        if recent.len() == 2 {
            recent.remove(0);
        }
        recent.push((epoch, Arc::clone(&e)));
        e
    }
}

const DOC_ORDER: u64 = 0;
const SAMPLE_ORDER: u64 = 1;
const PACKING: u64 = 2;

impl SampleIndex {
    /// `docs[i]`: the selected documents of `spec.sources[i]`.
    pub fn new(spec: LoaderSpec, docs: Vec<Docs>) -> Result<Self> {
        if spec.seq_len == 0 {
            return Err(Error::Config("seq_len must be at least 1".into()));
        }
        if spec.sources.is_empty() || docs.len() != spec.sources.len() {
            return Err(Error::Config(format!(
                "{} sources and {} document lists",
                spec.sources.len(),
                docs.len()
            )));
        }
        let names: Vec<String> = spec.sources.iter().map(|s| s.name.clone()).collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(Error::Config(format!("source '{n}' is named twice")));
            }
        }
        let shards = Shards::open(&spec.shards)?;
        let seq = spec.seq_len;
        let mut sources = Vec::with_capacity(docs.len());
        for (src, docs) in spec.sources.iter().zip(docs) {
            Shards::check(&spec.shards, &src.name, &docs)?;
            let stream = xxh3_64(src.name.as_bytes());
            let (layout, samples, stats) = match spec.packing {
                Packing::Concat => {
                    let samples = concat_samples(docs.tokens(), seq);
                    let layout = Layout::Concat(Recent::new());
                    (layout, samples, PackingStats::default())
                }
                Packing::BestFit => {
                    let mut rng = SplitMix64::for_stream(&[spec.seed, stream, PACKING]);
                    let packed = BestFit::build(&docs, seq, &mut rng);
                    let (samples, stats) = (packed.samples(), packed.stats().clone());
                    (Layout::BestFit(packed, Recent::new()), samples, stats)
                }
            };
            if samples == 0 {
                return Err(Error::Config(format!(
                    "source '{}' has {} documents and {} tokens, not enough for one sample of {} tokens",
                    src.name,
                    docs.len.len(),
                    docs.tokens(),
                    seq + 1
                )));
            }
            let limit = match src.max_epochs {
                Some(e) if e.is_nan() || e <= 0.0 => {
                    return Err(Error::Config(format!(
                        "source '{}': max_epochs must be > 0, got {e}",
                        src.name
                    )));
                }
                Some(e) => Some((e * samples as f64).floor() as u64),
                None => None,
            };
            let mut s = Source {
                docs,
                samples,
                limit,
                stream,
                layout,
                stats,
            };
            if spec.packing == Packing::Concat {
                s.stats = s.concat_epoch(&spec, 0).stats(&s.docs, seq);
            }
            sources.push(s);
        }
        let phases: Vec<(Option<u64>, Vec<f64>)> = spec
            .phases
            .iter()
            .map(|p| (p.samples, p.weights.clone()))
            .collect();
        let mixture = Mixture::new(&phases, spec.mixture_window, &names)?;
        let limits: Vec<Option<u64>> = sources.iter().map(|s| s.limit).collect();
        let end = last_sample(&mixture, &limits);
        if end == Some(0) {
            return Err(Error::Config(
                "the epoch limits leave no sample to read".into(),
            ));
        }
        Ok(SampleIndex {
            spec,
            shards,
            sources,
            mixture,
            end,
        })
    }

    #[must_use]
    pub fn spec(&self) -> &LoaderSpec {
        &self.spec
    }

    /// Global samples available (`None`: endless).
    #[must_use]
    pub fn end(&self) -> Option<u64> {
        self.end
    }

    #[must_use]
    pub fn repeat_filter(&self) -> Option<RepeatFilter> {
        self.spec.repeat_filter
    }

    /// Curriculum phase of global sample `k`.
    #[must_use]
    pub fn phase(&self, k: u64) -> usize {
        self.mixture.phase_index(k)
    }

    /// Source of global sample `k`, its index in that source's stream, and its pieces (appended to
    /// `out`; each names a document of the source by its index in the source's list).
    pub fn pieces(&self, k: u64, out: &mut Vec<Piece>) -> (usize, u64) {
        let (s, local) = self.mixture.locate(k);
        let src = &self.sources[s];
        let (epoch, j) = (local / src.samples, local % src.samples);
        match &src.layout {
            Layout::Concat(_) => {
                src.concat_epoch(&self.spec, epoch)
                    .pieces(j, self.spec.seq_len, &src.docs, out);
            }
            Layout::BestFit(packed, recent) => {
                let order = recent.get(epoch, || {
                    let mut rng =
                        SplitMix64::for_stream(&[self.spec.seed, src.stream, epoch, SAMPLE_ORDER]);
                    permutation(src.samples as usize, &mut rng)
                });
                out.extend_from_slice(packed.pieces(order[j as usize]));
            }
        }
        (s, local)
    }

    #[must_use]
    pub fn plan(&self) -> Plan {
        let used = self.end.map(|e| self.mixture.consumed(e));
        Plan {
            samples: self.end,
            sources: self
                .sources
                .iter()
                .zip(&self.spec.sources)
                .enumerate()
                .map(|(i, (s, spec))| {
                    let taken = used.as_ref().map(|u| u[i]);
                    SourcePlan {
                        name: spec.name.clone(),
                        samples: taken,
                        epochs: taken.map(|t| t as f64 / s.samples as f64),
                        max_epochs: spec.max_epochs,
                        packing: s.stats.clone(),
                    }
                })
                .collect(),
        }
    }
}

impl Source {
    fn concat_epoch(&self, spec: &LoaderSpec, epoch: u64) -> Arc<ConcatEpoch> {
        let Layout::Concat(recent) = &self.layout else {
            unreachable!("concat_epoch on a best-fit source")
        };
        recent.get(epoch, || {
            let mut docs = SplitMix64::for_stream(&[spec.seed, self.stream, epoch, DOC_ORDER]);
            let mut samples =
                SplitMix64::for_stream(&[spec.seed, self.stream, epoch, SAMPLE_ORDER]);
            ConcatEpoch::build(&self.docs, spec.seq_len, &mut docs, &mut samples)
        })
    }
}

/// The number of global samples before some source would pass its epoch limit (or the last
/// phase ends); `None` when neither bounds the run.
fn last_sample(mixture: &Mixture, limits: &[Option<u64>]) -> Option<u64> {
    let fits = |k: u64| {
        mixture
            .consumed(k)
            .iter()
            .zip(limits)
            .all(|(c, l)| l.is_none_or(|l| *c <= l))
    };
    let mut hi = match mixture.end() {
        Some(e) if fits(e) => return Some(e),
        Some(e) => e,
        None => {
            if limits.iter().all(Option::is_none) {
                return None;
            }
            let mut h = 1u64;
            while fits(h) {
                if h >= 1 << 62 {
                    return None; // only sources the open phase never reads are bounded
                }
                h *= 2;
            }
            h
        }
    };
    // Largest k with fits(k): fits(lo) holds, fits(hi) does not.
    let mut lo = 0u64;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(lo)
}
