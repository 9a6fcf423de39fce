//! Insert-only sets of byte strings with a compact open-addressing index: the keys of
//! entity-grain groups, the `count_distinct` pairs and `unique`'s keys. One allocation
//! per table growth instead of one per key, about 20 bytes per key beside its bytes.

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

    /// Bytes the slots take (for the memory measurement test).
    #[cfg(test)]
    pub(crate) fn slot_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<u64>()
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

/// A deterministic 64-bit hash of a byte string: 8 bytes at a time through a folded
/// multiply, then a final one, so that the low bits (the table position) and the high
/// bits (the tag) both depend on every input byte.
#[inline]
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xD6E8_FEB8_6659_FD93;
    #[inline]
    fn fold(a: u64, b: u64) -> u64 {
        let r = u128::from(a) * u128::from(b);
        (r as u64) ^ ((r >> 64) as u64)
    }
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
}
