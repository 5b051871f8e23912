//! Which keys a tree may hold: a Bloom filter that a store fills once from
//! the tree after opening and marks before each later write, so that a lookup
//! of a key the filter never saw reads nothing. The store keeps two: the phones
//! with an open consent request, and the feed's ids packed into buckets.
//!
//! A key is marked before it is written and never unmarked, so the filter only
//! answers "maybe" (read the tree) or "none" (certain). Until the filter has
//! read the tree once after opening ([`KeyFilter::fill`], on a thread of the
//! service's own), every answer is "maybe". Keys removed from the tree stay
//! marked until the next start. With 2^26 bits and two probes, 5 million
//! marked keys make one "maybe" in fifty a needless read, 20 million one in
//! five.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// log2 of the number of bits: 2^26 bits are 8 MiB.
const BITS_LOG2: u32 = 26;
const WORDS: usize = 1 << (BITS_LOG2 - 6);

pub struct KeyFilter {
    words: Box<[AtomicU64]>,
    filled: AtomicBool,
    abandoned: AtomicBool,
}

impl Default for KeyFilter {
    fn default() -> KeyFilter {
        KeyFilter {
            words: (0..WORDS).map(|_| AtomicU64::new(0)).collect(),
            filled: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
        }
    }
}

impl KeyFilter {
    /// The key's two bits: one 64-bit SipHash (fixed keys) split in two.
    fn probes(key: &[u8]) -> [usize; 2] {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let hash = hasher.finish();
        let mask = (1u64 << BITS_LOG2) - 1;
        [(hash & mask) as usize, ((hash >> 32) & mask) as usize]
    }

    /// Marks a key; called before it is written.
    pub fn mark(&self, key: &[u8]) {
        for bit in KeyFilter::probes(key) {
            self.words[bit / 64].fetch_or(1 << (bit % 64), Ordering::Release);
        }
    }

    /// False only if the tree certainly does not hold the key.
    pub fn may_have(&self, key: &[u8]) -> bool {
        !self.filled.load(Ordering::Acquire)
            || KeyFilter::probes(key)
                .into_iter()
                .all(|bit| self.words[bit / 64].load(Ordering::Acquire) & (1 << (bit % 64)) != 0)
    }

    /// Marks every key of `keys` (the tree's, as they are read), then starts
    /// answering "none"; gives up, still answering "maybe", when
    /// [`KeyFilter::abandon`] is called or `keys` fails.
    pub fn fill<E>(&self, keys: impl Iterator<Item = Result<Vec<u8>, E>>) -> Result<bool, E> {
        for key in keys {
            if self.abandoned.load(Ordering::Acquire) {
                return Ok(false);
            }
            self.mark(&key?);
        }
        self.filled.store(true, Ordering::Release);
        Ok(true)
    }

    /// Tells a [`KeyFilter::fill`] still running to stop (the store closes).
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(n: u32) -> Vec<u8> {
        format!("+770{n:08}").into_bytes()
    }

    #[test]
    fn answers_maybe_until_filled_then_none_for_unmarked_keys() {
        let filter = KeyFilter::default();
        assert!(filter.may_have(&phone(1)), "not filled: maybe");
        let filled = filter.fill((0..1000).map(|n| Ok::<_, ()>(phone(n))));
        assert_eq!(filled, Ok(true));
        assert!((0..1000).all(|n| filter.may_have(&phone(n))));
        filter.mark(&phone(5000));
        assert!(filter.may_have(&phone(5000)), "marked after the fill");
        let false_maybes = (10_000..110_000)
            .filter(|n| filter.may_have(&phone(*n)))
            .count();
        assert!(
            false_maybes < 10,
            "{false_maybes} of 100,000 unmarked phones said maybe"
        );
    }

    #[test]
    fn an_abandoned_or_failed_fill_keeps_answering_maybe() {
        let filter = KeyFilter::default();
        filter.abandon();
        assert_eq!(
            filter.fill((0..10).map(|n| Ok::<_, ()>(phone(n)))),
            Ok(false)
        );
        assert!(filter.may_have(&phone(1_000_000)));
        let filter = KeyFilter::default();
        let failing = (0..3).map(|n| if n == 2 { Err("io") } else { Ok(phone(n)) });
        assert_eq!(filter.fill(failing), Err("io"));
        assert!(filter.may_have(&phone(1_000_000)));
    }
}
