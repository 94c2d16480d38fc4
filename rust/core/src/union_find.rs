//! Union-find over document indices; components are labelled by their smallest member, so labels
//! do not depend on the order pairs were found in (or the thread count).

pub struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    #[must_use]
    pub fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
        }
    }

    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            // Path halving.
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    /// Union by smallest index: the root of every set is its minimum member.
    pub fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }

    /// Label of every element: the smallest index in its set.
    #[must_use]
    pub fn labels(mut self) -> Vec<u32> {
        (0..self.parent.len() as u32)
            .map(|x| self.find(x))
            .collect()
    }
}

/// Connected components of `n` nodes joined by `pairs`, labelled by their smallest member.
#[must_use]
pub fn components(n: usize, pairs: &[(u32, u32)]) -> Vec<u32> {
    let mut uf = UnionFind::new(n);
    for &(a, b) in pairs {
        uf.union(a, b);
    }
    uf.labels()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_minimum_members() {
        let labels = components(7, &[(5, 3), (3, 6), (1, 2), (6, 4)]);
        assert_eq!(labels, vec![0, 1, 1, 3, 3, 3, 3]);
    }
}
