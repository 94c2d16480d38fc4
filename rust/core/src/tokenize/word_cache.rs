//! The encoder's word → ids cache: an open-addressing table whose slots hold short words and
//! their ids inline.
//!
//! Nearly every word is at most 16 bytes and becomes at most 3 ids. Such a word is kept as two
//! overlapping 8-byte loads and its length, which together determine it, so a lookup hashes and
//! compares two integers instead of hashing bytes and calling `memcmp`, and finds the ids in the
//! same 32-byte slot. This replaced a `HashMap<Box<str>, Box<[u32]>>` whose hashing, key compare
//! and id copy were 60 % of encoding time once the split was fast. Longer words keep that map.

use std::collections::HashMap;
use xxhash_rust::xxh3::Xxh3Builder;

/// Words cached before the cache is cleared (bounds memory on very diverse text).
const MAX_WORDS: usize = 1 << 18;
/// Longer words are not cached (rare, and they would crowd out the common ones).
const MAX_WORD: usize = 64;
/// The longest word held in a slot.
const SLOT_WORD: usize = 16;
/// Ids held in a slot; a word with more keeps them in `spilled`.
const SLOT_IDS: usize = 3;
const FIRST_SLOTS: usize = 1 << 12;

#[derive(Clone, Copy, Default)]
struct Slot {
    /// `load(word)`.
    a: u64,
    b: u64,
    /// The ids, or `[offset into spilled, ..]` when there are more than `SLOT_IDS`.
    ids: [u32; SLOT_IDS],
    /// 0 marks an empty slot (the empty word is never cached).
    len: u8,
    n_ids: u8,
}

#[derive(Default)]
pub struct WordCache {
    /// A power of two in length, at most half full.
    slots: Vec<Slot>,
    used: usize,
    spilled: Vec<u32>,
    long: HashMap<Box<[u8]>, Box<[u32]>, Xxh3Builder>,
}

impl WordCache {
    /// The ids cached for `word`.
    #[inline]
    #[must_use]
    pub fn get(&self, word: &[u8]) -> Option<&[u32]> {
        if word.len() > SLOT_WORD {
            return self.long.get(word).map(|ids| &ids[..]);
        }
        if self.slots.is_empty() || word.is_empty() {
            return None;
        }
        let (a, b) = load(word);
        let mask = self.slots.len() - 1;
        let mut i = slot_hash(a, b, word.len()) as usize & mask;
        loop {
            let s = &self.slots[i];
            if s.len == 0 {
                return None;
            }
            if s.a == a && s.b == b && usize::from(s.len) == word.len() {
                return Some(self.ids_of(s));
            }
            i = (i + 1) & mask;
        }
    }

    /// Appends the ids cached for `word` to `out`; false when there are none.
    #[inline]
    pub fn extend_into(&self, word: &[u8], out: &mut Vec<u32>) -> bool {
        let Some(ids) = self.get(word) else {
            return false;
        };
        // Most words are one or two ids: a loop of pushes beats `extend_from_slice`'s `memcpy`.
        if ids.len() <= SLOT_IDS {
            for &id in ids {
                out.push(id);
            }
        } else {
            out.extend_from_slice(ids);
        }
        true
    }

    /// Caches `ids` for `word` (not already cached).
    pub fn insert(&mut self, word: &[u8], ids: &[u32]) {
        if word.is_empty() || word.len() > MAX_WORD {
            return;
        }
        if self.used + self.long.len() >= MAX_WORDS {
            self.clear();
        }
        if word.len() > SLOT_WORD {
            self.long.insert(word.into(), ids.into());
            return;
        }
        if 2 * (self.used + 1) > self.slots.len() {
            self.grow();
        }
        let (a, b) = load(word);
        let mut slot = Slot {
            a,
            b,
            ids: [0; SLOT_IDS],
            len: word.len() as u8,
            n_ids: u8::try_from(ids.len()).expect("at most one id per byte"),
        };
        if ids.len() <= SLOT_IDS {
            slot.ids[..ids.len()].copy_from_slice(ids);
        } else {
            slot.ids[0] = u32::try_from(self.spilled.len()).expect("spilled ids fit in u32");
            self.spilled.extend_from_slice(ids);
        }
        self.place(slot);
        self.used += 1;
    }

    pub fn clear(&mut self) {
        self.slots.clear();
        self.used = 0;
        self.spilled.clear();
        self.long.clear();
    }

    fn ids_of<'a>(&'a self, s: &'a Slot) -> &'a [u32] {
        let n = usize::from(s.n_ids);
        if n <= SLOT_IDS {
            &s.ids[..n]
        } else {
            let at = s.ids[0] as usize;
            &self.spilled[at..at + n]
        }
    }

    fn place(&mut self, slot: Slot) {
        let mask = self.slots.len() - 1;
        let mut i = slot_hash(slot.a, slot.b, usize::from(slot.len)) as usize & mask;
        while self.slots[i].len != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    fn grow(&mut self) {
        let size = (2 * self.slots.len()).max(FIRST_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); size]);
        for s in old.into_iter().filter(|s| s.len != 0) {
            self.place(s);
        }
    }
}

/// A word of 1..=16 bytes as two 8-byte values that, with its length, determine it: the first and
/// last 8 bytes (overlapping when shorter than 16), or the first and last 4, or for 1..=3 bytes
/// the first, middle and last byte. Every byte is covered, so equal values and lengths mean equal
/// words.
#[inline]
fn load(w: &[u8]) -> (u64, u64) {
    let n = w.len();
    let u64_at = |i: usize| u64::from_le_bytes(w[i..i + 8].try_into().expect("8 bytes"));
    let u32_at = |i: usize| u64::from(u32::from_le_bytes(w[i..i + 4].try_into().expect("4 bytes")));
    if n >= 8 {
        (u64_at(0), u64_at(n - 8))
    } else if n >= 4 {
        (u32_at(0), u32_at(n - 4))
    } else {
        let (x, y, z) = (w[0], w[n / 2], w[n - 1]);
        (u64::from(x) | u64::from(y) << 8 | u64::from(z) << 16, 0)
    }
}

/// Two folded 64 x 64 -> 128-bit multiplies, as rapidhash does for short input.
#[inline]
fn slot_hash(a: u64, b: u64, len: usize) -> u64 {
    const K: [u64; 3] = [
        0x2D35_8DCC_AA6C_78A5,
        0x8BB8_4B93_962E_ACC9,
        0x4B33_A62E_D433_D4A3,
    ];
    let fold = |x: u64, y: u64| {
        let p = u128::from(x) * u128::from(y);
        (p >> 64) as u64 ^ p as u64
    };
    fold(fold(a ^ K[0], b ^ K[1]) ^ K[2], K[1] ^ len as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every word of up to 3 letters over a small alphabet, words that differ only in length or in
    /// one byte, and long words: the cache must hand back exactly what a map would, through growth
    /// and clearing.
    #[test]
    fn behaves_like_a_map() {
        let alphabet = b"ab\xff ";
        let mut words: Vec<Vec<u8>> = Vec::new();
        for &x in alphabet {
            words.push(vec![x]);
            for &y in alphabet {
                words.push(vec![x, y]);
                for &z in alphabet {
                    words.push(vec![x, y, z]);
                }
            }
        }
        for len in 4..=70 {
            for at in [0, len / 2, len - 1] {
                let mut w = vec![b'q'; len];
                words.push(w.clone());
                w[at] = b'r';
                words.push(w);
            }
        }
        words.sort();
        words.dedup();
        // One to five ids, so some words spill.
        let ids_for = |i: usize| -> Vec<u32> { (0..=i % 5).map(|k| (5 * i + k) as u32).collect() };
        let mut cache = WordCache::default();
        let mut map = HashMap::new();
        for (i, w) in words.iter().enumerate() {
            assert_eq!(cache.get(w), None, "{w:?} before insertion");
            let ids = ids_for(i);
            cache.insert(w, &ids);
            map.insert(w.clone(), ids);
            for (v, ids) in &map {
                let expected = (v.len() <= MAX_WORD).then_some(&ids[..]);
                assert_eq!(cache.get(v), expected, "{v:?}");
            }
        }
        let mut out = vec![9];
        assert!(cache.extend_into(b"ab", &mut out));
        assert_eq!(out[1..], map[&b"ab".to_vec()][..]);
        cache.clear();
        assert!(words.iter().all(|w| cache.get(w).is_none()));
    }

    #[test]
    fn clears_itself_when_full() {
        let mut cache = WordCache::default();
        for i in 0..MAX_WORDS as u32 + 10 {
            let w = format!("w{i}");
            cache.insert(w.as_bytes(), &[i]);
            assert_eq!(cache.get(w.as_bytes()), Some(&[i][..]));
        }
        assert!(cache.used <= MAX_WORDS);
        assert_eq!(cache.get(b"w0"), None);
    }
}
