//! Which phones may have an open consent request: a Bloom filter over the
//! phones of the `phone_requests` tree, so that a family offering a benefit to a
//! phone that has none (nearly every offer) does not read that tree.
//!
//! Each offer picks a reply code that no other open request on the phone uses,
//! and the only way sled 0.34 finds a phone's requests is a prefix scan, which
//! copies the leaf it lands on: at a million families a re-score that offered
//! 179,127 families spent 13 % of its samples there (BENCHMARKS.md).
//!
//! A phone is marked before its request is written and never unmarked, so the
//! filter only answers "maybe" (read the tree) or "none" (certain). Until the
//! filter has read the tree once after opening ([`PhoneFilter::fill`], on a
//! thread of the service's own), every answer is "maybe". Closed requests leave
//! their phones marked until the next start: with 2^26 bits and two probes, 5
//! million marked phones make one "maybe" in fifty a needless read.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// log2 of the number of bits: 2^26 bits are 8 MiB.
const BITS_LOG2: u32 = 26;
const WORDS: usize = 1 << (BITS_LOG2 - 6);

pub struct PhoneFilter {
    words: Box<[AtomicU64]>,
    filled: AtomicBool,
    abandoned: AtomicBool,
}

impl Default for PhoneFilter {
    fn default() -> PhoneFilter {
        PhoneFilter {
            words: (0..WORDS).map(|_| AtomicU64::new(0)).collect(),
            filled: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
        }
    }
}

impl PhoneFilter {
    /// The phone's two bits: one 64-bit SipHash (fixed keys) split in two.
    fn probes(phone: &[u8]) -> [usize; 2] {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        phone.hash(&mut hasher);
        let hash = hasher.finish();
        let mask = (1u64 << BITS_LOG2) - 1;
        [(hash & mask) as usize, ((hash >> 32) & mask) as usize]
    }

    /// Marks a phone; called before its request is written.
    pub fn mark(&self, phone: &[u8]) {
        for bit in PhoneFilter::probes(phone) {
            self.words[bit / 64].fetch_or(1 << (bit % 64), Ordering::Release);
        }
    }

    /// False only if the phone certainly has no request in the tree.
    pub fn may_have(&self, phone: &[u8]) -> bool {
        !self.filled.load(Ordering::Acquire)
            || PhoneFilter::probes(phone)
                .into_iter()
                .all(|bit| self.words[bit / 64].load(Ordering::Acquire) & (1 << (bit % 64)) != 0)
    }

    /// Marks every phone of `phones` (the tree's phones, as they are read), then
    /// starts answering "none"; gives up, still answering "maybe", when
    /// [`PhoneFilter::abandon`] is called or `phones` fails.
    pub fn fill<E>(&self, phones: impl Iterator<Item = Result<Vec<u8>, E>>) -> Result<bool, E> {
        for phone in phones {
            if self.abandoned.load(Ordering::Acquire) {
                return Ok(false);
            }
            self.mark(&phone?);
        }
        self.filled.store(true, Ordering::Release);
        Ok(true)
    }

    /// Tells a [`PhoneFilter::fill`] still running to stop (the store closes).
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
    fn answers_maybe_until_filled_then_none_for_unmarked_phones() {
        let filter = PhoneFilter::default();
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
        let filter = PhoneFilter::default();
        filter.abandon();
        assert_eq!(
            filter.fill((0..10).map(|n| Ok::<_, ()>(phone(n)))),
            Ok(false)
        );
        assert!(filter.may_have(&phone(1_000_000)));
        let filter = PhoneFilter::default();
        let failing = (0..3).map(|n| if n == 2 { Err("io") } else { Ok(phone(n)) });
        assert_eq!(filter.fill(failing), Err("io"));
        assert!(filter.may_have(&phone(1_000_000)));
    }
}
