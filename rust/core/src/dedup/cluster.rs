//! Per-document facts and the keep decision: exact groups, clusters, one survivor per cluster.

use super::config::KeepPolicy;
use crate::union_find::UnionFind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Alone in its cluster.
    Unique,
    /// Kept as the survivor of a cluster of two or more.
    Kept,
    /// Dropped: same normalized text as the survivor.
    ExactDuplicate,
    /// Dropped: near duplicate of a cluster member.
    NearDuplicate,
}

impl Reason {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unique => "unique",
            Reason::Kept => "kept",
            Reason::ExactDuplicate => "exact_duplicate",
            Reason::NearDuplicate => "near_duplicate",
        }
    }
}

/// What clustering needs of each document, in global input order.
#[derive(Default)]
pub struct DocTable {
    pub exact: Vec<u128>,
    pub len: Vec<u64>,
    pub key: Vec<f64>,
    pub shingles: Vec<u32>,
}

pub struct Decision {
    /// Cluster id: index of the cluster's first document.
    pub cluster: Vec<u32>,
    pub cluster_size: Vec<u32>,
    pub kept: Vec<bool>,
    pub reason: Vec<Reason>,
}

impl DocTable {
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        Self {
            exact: Vec::with_capacity(n),
            len: Vec::with_capacity(n),
            key: Vec::with_capacity(n),
            shingles: Vec::with_capacity(n),
        }
    }

    pub fn push(&mut self, exact: u128, len: u64, key: f64, shingles: u32) {
        self.exact.push(exact);
        self.len.push(len);
        self.key.push(key);
        self.shingles.push(shingles);
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.exact.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
    }

    /// Bytes held per document by this table.
    #[must_use]
    pub const fn bytes_per_doc() -> usize {
        16 + 8 + 8 + 4
    }

    /// A union-find with every exact-duplicate group already joined (when `exact` is on).
    #[must_use]
    pub fn exact_union_find(&self, exact: bool) -> UnionFind {
        let mut uf = UnionFind::new(self.len());
        if exact {
            let mut order: Vec<u32> = (0..self.len() as u32).collect();
            order.sort_unstable_by_key(|&i| (self.exact[i as usize], i));
            for w in order.windows(2) {
                if self.exact[w[0] as usize] == self.exact[w[1] as usize] {
                    uf.union(w[0], w[1]);
                }
            }
        }
        uf
    }

    /// Documents that take part in near-duplicate search: the first of each exact group, and only
    /// if it has at least one shingle (texts without words are left to exact dedup).
    pub fn near_candidates(&self, uf: &mut UnionFind) -> Vec<u32> {
        (0..self.len() as u32)
            .filter(|&i| self.shingles[i as usize] > 0 && uf.find(i) == i)
            .collect()
    }

    fn better(&self, policy: KeepPolicy, a: u32, b: u32) -> bool {
        // True when `a` should be kept over `b`; ties go to the earlier document.
        let (ia, ib) = (a as usize, b as usize);
        let by = match policy {
            KeepPolicy::First => std::cmp::Ordering::Equal,
            KeepPolicy::Longest => self.len[ia].cmp(&self.len[ib]),
            KeepPolicy::MaxColumn => {
                let ka = if self.key[ia].is_nan() {
                    f64::NEG_INFINITY
                } else {
                    self.key[ia]
                };
                let kb = if self.key[ib].is_nan() {
                    f64::NEG_INFINITY
                } else {
                    self.key[ib]
                };
                ka.total_cmp(&kb)
            }
        };
        by.then(b.cmp(&a)).is_gt()
    }

    /// Choose one survivor per cluster (`labels`: smallest member of each document's cluster).
    #[must_use]
    pub fn decide(&self, labels: Vec<u32>, policy: KeepPolicy) -> Decision {
        let n = self.len();
        let mut size = vec![0u32; n];
        let mut best: Vec<u32> = (0..n as u32).collect();
        for i in 0..n as u32 {
            let root = labels[i as usize] as usize;
            size[root] += 1;
            if self.better(policy, i, best[root]) {
                best[root] = i;
            }
        }
        let mut kept = vec![false; n];
        let mut reason = vec![Reason::Unique; n];
        let mut cluster_size = vec![0u32; n];
        for i in 0..n {
            let root = labels[i] as usize;
            let survivor = best[root] as usize;
            cluster_size[i] = size[root];
            kept[i] = survivor == i;
            reason[i] = if size[root] == 1 {
                Reason::Unique
            } else if kept[i] {
                Reason::Kept
            } else if self.exact[i] == self.exact[survivor] {
                Reason::ExactDuplicate
            } else {
                Reason::NearDuplicate
            };
        }
        Decision {
            cluster: labels,
            cluster_size,
            kept,
            reason,
        }
    }
}
