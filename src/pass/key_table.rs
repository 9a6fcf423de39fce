//! Insert-only sets with a compact open-addressing index: byte strings (the keys of
//! entity-grain groups, `count_distinct`'s values and `unique`'s keys), about 20 bytes per
//! key beside its bytes, and pairs of numbers (`count_distinct`'s (group, value) pairs),
//! 21 to 43 bytes per pair. One allocation per table growth instead of one per key.

/// Bits of a [`KeyIndex`] slot holding the entry number plus one; the rest hold a tag
/// from the hash.
const INDEX_BITS: u32 = 40;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

/// The hash index of an insert-only set of byte strings numbered in insertion order;
/// the caller keeps the strings and shows them to it through `key_of` / `hash_of`.
/// Open addressing with linear probing, at most 3/4 full; a slot holds the entry
/// number and a tag from the hash, so a lookup compares key bytes only on a tag match.
pub(crate) struct KeyIndex {
    /// 0: empty; else `tag << INDEX_BITS | (number + 1)`.
    slots: Vec<u64>,
    /// Entries so far.
    len: usize,
}

impl KeyIndex {
    pub(crate) fn new() -> Self {
        KeyIndex {
            slots: vec![0; 16],
            len: 0,
        }
    }

    /// Entries so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes the slots take.
    pub(crate) fn slot_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<u64>()
    }

    /// The bytes of the slots the next insertion allocates (the table doubles, the old
    /// slots live until the new ones are filled), or 0 when it fits.
    pub(crate) fn growth_bytes(&self) -> usize {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            2 * self.slot_bytes()
        } else {
            0
        }
    }

    /// `Ok(number)` of `key` (whose hash is `h`), or `Err(slot)` where it would go.
    #[inline]
    pub(crate) fn find<'k>(
        &self,
        key: &[u8],
        h: u64,
        key_of: impl Fn(usize) -> &'k [u8],
    ) -> Result<usize, usize> {
        let tag = h >> INDEX_BITS;
        let mask = self.slots.len() - 1;
        let mut pos = h as usize & mask;
        loop {
            let slot = self.slots[pos];
            if slot == 0 {
                return Err(pos);
            }
            if slot >> INDEX_BITS == tag {
                let i = (slot & INDEX_MASK) as usize - 1;
                if key_of(i) == key {
                    return Ok(i);
                }
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Asks the CPU to fetch the slot where a lookup of hash `h` starts (see [`prefetch`]).
    #[inline]
    pub(crate) fn prefetch(&self, h: u64) {
        prefetch(&self.slots[h as usize & (self.slots.len() - 1)]);
    }

    /// The entry the first slot with `h`'s tag holds: the likely answer of a lookup,
    /// found without comparing keys, so that its data can be prefetched.
    #[inline]
    pub(crate) fn likely(&self, h: u64) -> Option<usize> {
        let tag = h >> INDEX_BITS;
        let mask = self.slots.len() - 1;
        let mut pos = h as usize & mask;
        loop {
            let slot = self.slots[pos];
            if slot == 0 {
                return None;
            }
            if slot >> INDEX_BITS == tag {
                return Some((slot & INDEX_MASK) as usize - 1);
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Records the next entry (number `len`) at `slot`, which [`KeyIndex::find`] just
    /// returned for its hash `h`; past 3/4 full the table doubles, rehashing every entry
    /// through `hash_of`.
    pub(crate) fn insert(&mut self, slot: usize, h: u64, hash_of: impl Fn(usize) -> u64) {
        // Unreachable in practice: 2^40 entries need terabytes of memory first.
        debug_assert!((self.len as u64) < INDEX_MASK, "more than 2^40 keys");
        self.slots[slot] = (h >> INDEX_BITS) << INDEX_BITS | (self.len as u64 + 1);
        self.len += 1;
        if self.len * 4 > self.slots.len() * 3 {
            let mut slots = vec![0u64; self.slots.len() * 2];
            let mask = slots.len() - 1;
            for i in 0..self.len {
                let h = hash_of(i);
                let mut pos = h as usize & mask;
                while slots[pos] != 0 {
                    pos = (pos + 1) & mask;
                }
                slots[pos] = (h >> INDEX_BITS) << INDEX_BITS | (i as u64 + 1);
            }
            self.slots = slots;
        }
    }
}

/// An insert-only set of byte strings numbered in insertion order, the strings back to
/// back in one arena (the `count_distinct` pairs).
pub(crate) struct KeyTable {
    index: KeyIndex,
    /// Key `i` is `bytes[ends[i - 1]..ends[i]]` (from 0 for the first).
    ends: Vec<usize>,
    bytes: Vec<u8>,
}

impl KeyTable {
    pub(crate) fn new() -> Self {
        KeyTable {
            index: KeyIndex::new(),
            ends: Vec::new(),
            bytes: Vec::new(),
        }
    }

    /// Where key `i` is in `bytes`.
    fn range(ends: &[usize], i: usize) -> std::ops::Range<usize> {
        let start = match i {
            0 => 0,
            _ => ends[i - 1],
        };
        start..ends[i]
    }

    #[cfg(test)]
    fn key(&self, i: usize) -> &[u8] {
        &self.bytes[KeyTable::range(&self.ends, i)]
    }

    /// Bytes allocated: slots, ends and key bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.index.slot_bytes()
            + self.ends.capacity() * std::mem::size_of::<usize>()
            + self.bytes.capacity()
    }

    /// The number of `key`, and whether it was inserted just now.
    pub(crate) fn intern(&mut self, key: &[u8]) -> (usize, bool) {
        let h = hash(key);
        let (ends, bytes) = (&self.ends, &self.bytes);
        match self
            .index
            .find(key, h, |i| &bytes[KeyTable::range(ends, i)])
        {
            Ok(i) => (i, false),
            Err(slot) => {
                self.bytes.extend_from_slice(key);
                self.ends.push(self.bytes.len());
                let (ends, bytes) = (&self.ends, &self.bytes);
                self.index
                    .insert(slot, h, |i| hash(&bytes[KeyTable::range(ends, i)]));
                (self.ends.len() - 1, true)
            }
        }
    }
}

/// An insert-only set of pairs of numbers below `u64::MAX` (`count_distinct`'s (group,
/// value number) pairs): open addressing with linear probing, at most 3/4 full, the pair
/// itself in the slot (no key bytes elsewhere to compare).
pub(crate) struct PairSet {
    /// [`NO_PAIR`]: empty.
    slots: Vec<(u64, u64)>,
    len: usize,
}

const NO_PAIR: (u64, u64) = (u64::MAX, u64::MAX);

impl PairSet {
    pub(crate) fn new() -> Self {
        PairSet {
            slots: vec![NO_PAIR; 16],
            len: 0,
        }
    }

    /// Adds `(a, b)` (neither `u64::MAX`); whether it was new.
    #[inline]
    pub(crate) fn insert(&mut self, a: u64, b: u64) -> bool {
        debug_assert!(a != u64::MAX && b != u64::MAX);
        let mask = self.slots.len() - 1;
        let mut pos = pair_hash(a, b) as usize & mask;
        loop {
            let slot = self.slots[pos];
            if slot == (a, b) {
                return false;
            }
            if slot == NO_PAIR {
                break;
            }
            pos = (pos + 1) & mask;
        }
        self.slots[pos] = (a, b);
        self.len += 1;
        if self.len * 4 > self.slots.len() * 3 {
            let mut slots = vec![NO_PAIR; self.slots.len() * 2];
            let mask = slots.len() - 1;
            for &pair in self.slots.iter().filter(|&&p| p != NO_PAIR) {
                let mut pos = pair_hash(pair.0, pair.1) as usize & mask;
                while slots[pos] != NO_PAIR {
                    pos = (pos + 1) & mask;
                }
                slots[pos] = pair;
            }
            self.slots = slots;
        }
        true
    }

    /// Bytes allocated.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<(u64, u64)>()
    }
}

/// Asks the CPU to bring the cache line of `value` into its caches, without waiting for
/// it: a table lookup that would miss the caches can then overlap with other work.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint that never faults and changes no memory; the
    // pointer comes from a reference, so it is valid anyway. (SSE is part of x86_64.)
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xD6E8_FEB8_6659_FD93;

/// The folded multiply: both halves of the 128-bit product, xored.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline]
fn pair_hash(a: u64, b: u64) -> u64 {
    fold(fold(a ^ K1, K2) ^ b, K1)
}

/// A deterministic 64-bit hash of a byte string: 8 bytes at a time through a folded
/// multiply, then a final one, so that the low bits (the table position) and the high
/// bits (the tag) both depend on every input byte.
#[inline]
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    let mut h = (bytes.len() as u64).wrapping_mul(K1);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = fold(h ^ u64::from_le_bytes(w), K2);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut w = [0u8; 8];
        w[..tail.len()].copy_from_slice(tail);
        h = fold(h ^ u64::from_le_bytes(w), K2);
    }
    fold(h, K1)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::test_rng::rng;

    #[test]
    fn key_table_numbers_keys_and_survives_growth() {
        let mut table = KeyTable::new();
        let mut next = rng(8);
        let mut reference: HashMap<Vec<u8>, usize> = HashMap::new();
        for _ in 0..50_000 {
            let len = (next() % 12) as usize;
            let key: Vec<u8> = (0..len).map(|_| (next() % 4) as u8).collect();
            let (i, new) = table.intern(&key);
            let n = reference.len();
            let want = *reference.entry(key.clone()).or_insert(n);
            assert_eq!((i, new), (want, want == n), "{key:?}");
            assert_eq!(table.key(i), key.as_slice());
        }
        assert!(table.ends.len() > 10_000);
    }

    #[test]
    fn pair_set_tells_new_pairs_and_survives_growth() {
        let mut set = PairSet::new();
        let mut next = rng(9);
        let mut reference = std::collections::HashSet::new();
        for _ in 0..50_000 {
            let (a, b) = (next() % 3000, next() % 7);
            assert_eq!(set.insert(a, b), reference.insert((a, b)), "{a} {b}");
        }
        assert_eq!(set.len, reference.len());
        assert!(set.len > 10_000);
    }
}
