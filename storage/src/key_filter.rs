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
//!
//! Reading a national store's trees to fill the filters took 5.9 GB of disk
//! reads and about 40 s after a start with a cold page cache, beside the
//! feeds. So a clean stop saves the filled filters ([`KeyFilter::to_bytes`])
//! and the next start reads them back ([`KeyFilter::fill_from_bytes`]); see
//! [`crate::Store::take_saved_key_filters`]. The phones' filter is saved only
//! while it is not crowded ([`KeyFilter::is_crowded`]): closed requests stay
//! marked, and only a fill from the tree forgets them.

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

    /// Whether the filter has read its tree (or a saved copy of it): only then
    /// does it answer "none".
    pub fn is_filled(&self) -> bool {
        self.filled.load(Ordering::Acquire)
    }

    /// Whether more than a quarter of the bits are set, when one "maybe" in
    /// sixteen or more is a needless read (two probes). Keys removed from the
    /// tree stay marked, so a filter of the phones with an open request fills
    /// up over the months; filled from its tree instead, it holds only the
    /// phones that still have one.
    pub fn is_crowded(&self) -> bool {
        let set: u64 = (self.words.iter())
            .map(|word| u64::from(word.load(Ordering::Acquire).count_ones()))
            .sum();
        set * 4 > 1 << BITS_LOG2
    }

    /// Sets a third of the bits, for tests of what a crowded filter does.
    #[cfg(test)]
    pub(crate) fn crowd(&self) {
        for word in &self.words[..WORDS / 3] {
            word.store(u64::MAX, Ordering::Release);
        }
    }

    /// The filter's bits, to be read back by [`KeyFilter::fill_from_bytes`]:
    /// the number of bits as a power of two, then the words, little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(1 + WORDS * 8);
        bytes.push(BITS_LOG2 as u8);
        for word in self.words.iter() {
            bytes.extend_from_slice(&word.load(Ordering::Acquire).to_le_bytes());
        }
        bytes
    }

    /// Marks every bit of `bytes` ([`KeyFilter::to_bytes`] of a filled filter
    /// of this size) beside the marks made so far, then starts answering
    /// "none". False, changing nothing, for bytes of another size or shape.
    pub fn fill_from_bytes(&self, bytes: &[u8]) -> bool {
        let Some((&bits_log2, words)) = bytes.split_first() else {
            return false;
        };
        if u32::from(bits_log2) != BITS_LOG2 || words.len() != WORDS * 8 {
            return false;
        }
        for (word, saved) in self.words.iter().zip(words.chunks_exact(8)) {
            let saved = u64::from_le_bytes(saved.try_into().expect("chunks of eight"));
            word.fetch_or(saved, Ordering::Release);
        }
        self.filled.store(true, Ordering::Release);
        true
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
    fn a_filter_read_back_from_its_bytes_answers_as_the_saved_one() {
        let saved = KeyFilter::default();
        assert_eq!(
            saved.fill((0..1000).map(|n| Ok::<_, ()>(phone(n)))),
            Ok(true)
        );
        let bytes = saved.to_bytes();
        let read = KeyFilter::default();
        read.mark(&phone(5000));
        assert!(!read.is_filled());
        assert!(read.fill_from_bytes(&bytes));
        assert!(read.is_filled());
        assert!((0..1000).all(|n| read.may_have(&phone(n))), "saved marks");
        assert!(read.may_have(&phone(5000)), "marks made before the read");
        let unmarked = (10_000..110_000).filter(|n| read.may_have(&phone(*n)));
        assert!(unmarked.count() < 10);
        let other = KeyFilter::default();
        assert!(!other.fill_from_bytes(&bytes[..bytes.len() - 8]));
        assert!(!other.fill_from_bytes(&[&[BITS_LOG2 as u8 + 1], &bytes[1..]].concat()));
        assert!(!other.fill_from_bytes(&[]));
        assert!(!other.is_filled() && other.may_have(&phone(20_000)));
    }

    #[test]
    fn a_filter_with_more_than_a_quarter_of_its_bits_set_is_crowded() {
        let filter = KeyFilter::default();
        assert!(!filter.is_crowded());
        let quarter = WORDS / 4;
        for word in &filter.words[..quarter] {
            word.store(u64::MAX, Ordering::Release);
        }
        assert!(!filter.is_crowded(), "exactly a quarter");
        filter.mark(b"one more");
        filter.mark(b"and another");
        assert!(filter.is_crowded());
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
