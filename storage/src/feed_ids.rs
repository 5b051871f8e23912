//! The ids the log has taken (agencies' event ids, inbound SMS ids), packed
//! into buckets once there are many.
//!
//! The contract keeps an agency's event id for ever: a repeat is a duplicate,
//! however late. One sled key per id would grow memory for ever too: sled 0.34
//! holds about 50 bytes per key whatever the value (5,000,000 ids of 20 bytes
//! held 255 MB once opened, with a 16 MB cache as with 256 MB), and it never
//! merges the nodes that removals empty (the same 5,000,000 keys inserted and
//! then all removed still held 220 MB). So an accepted event's id stays in its
//! log chunk (and in memory) until the service packs the ids taken so far, in
//! one pass, into [`BUCKETS`] keys of the `feed_ids` tree: a hash of the id
//! chooses the bucket, and a bucket holds its ids sorted
//! ([`crate::store::Store::pack_feed_ids`]).
//!
//! A bucket's value is [`BUCKET_FORMAT`], then its entries, each the id's key
//! length (u16 BE), the key (`D` + agency + `\0` + event id, or `S` + inbound
//! SMS id) and the sequence number the log gave it (u64 BE). The bucket's own
//! key is its number, 4 bytes big-endian.

/// How many buckets the packed ids spread over (2^20). Fixed: a bucket's
/// number is part of the stored key.
pub const BUCKET_BITS: u32 = 20;
pub const BUCKETS: u32 = 1 << BUCKET_BITS;

/// The first byte of every bucket's value, so that the layout can be migrated.
pub const BUCKET_FORMAT: u8 = 1;

/// Accepted ids that wait before the service packs them, unless the
/// configuration says otherwise (`storage.feed_ids_pack_at`): about 30 MB of
/// ids in memory.
pub const DEFAULT_PACK_AT: usize = 500_000;

/// Why a stored bucket cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("feed id bucket: {0}")]
pub struct BucketError(&'static str);

/// The key of the bucket that holds the id whose key is `id`.
pub fn bucket_key(id: &[u8]) -> [u8; 4] {
    // FNV-1a: stable across builds and platforms, as a stored layout needs.
    let hash = id.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    // Fibonacci hashing takes the well-mixed high bits.
    let bucket = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BUCKET_BITS);
    u32::try_from(bucket)
        .expect("a 20-bit number")
        .to_be_bytes()
}

/// A bucket's entries in order, read in place; a damaged entry ends them with
/// an error, and so does an entry out of order.
fn entries(
    bucket: &[u8],
) -> Result<impl Iterator<Item = Result<(&[u8], u64), BucketError>>, BucketError> {
    let Some((&format, mut rest)) = bucket.split_first() else {
        return Err(BucketError("empty value"));
    };
    if format != BUCKET_FORMAT {
        return Err(BucketError("unknown format version"));
    }
    let mut previous: Option<&[u8]> = None;
    Ok(std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let entry = match rest {
            [high, low, after @ ..] => {
                let length = usize::from(u16::from_be_bytes([*high, *low]));
                if after.len() < length + 8 {
                    Err(BucketError("truncated entry"))
                } else if previous.is_some_and(|previous| after[..length] <= *previous) {
                    Err(BucketError("entries out of order"))
                } else {
                    let (id, after) = after.split_at(length);
                    let (seq, after) = after.split_at(8);
                    previous = Some(id);
                    rest = after;
                    let seq = u64::from_be_bytes(seq.try_into().expect("8 bytes"));
                    return Some(Ok((id, seq)));
                }
            }
            _ => Err(BucketError("truncated entry")),
        };
        rest = &[];
        Some(entry)
    }))
}

/// The sequence number of the id whose key is `id`, if this bucket holds it.
/// Every entry is checked, so a damaged bucket is an error whichever id is
/// asked for.
pub fn find(bucket: &[u8], id: &[u8]) -> Result<Option<u64>, BucketError> {
    let mut found = None;
    for entry in entries(bucket)? {
        let (key, seq) = entry?;
        if key == id {
            found = Some(seq);
        }
    }
    Ok(found)
}

/// The ids this bucket holds, in order.
pub fn ids(bucket: &[u8]) -> Result<Vec<&[u8]>, BucketError> {
    entries(bucket)?
        .map(|entry| entry.map(|(id, _)| id))
        .collect()
}

/// How many ids this bucket holds.
pub fn count(bucket: &[u8]) -> Result<usize, BucketError> {
    entries(bucket)?.try_fold(0, |count, entry| entry.map(|_| count + 1))
}

/// The bucket with `additions` (id keys and their sequence numbers) added to
/// `bucket` (None: no bucket yet). An id the bucket holds already keeps its
/// number, so that adding the same ids twice is adding them once.
pub fn with_additions(
    bucket: Option<&[u8]>,
    additions: &[(&[u8], u64)],
) -> Result<Vec<u8>, BucketError> {
    let mut sorted: std::collections::BTreeMap<&[u8], u64> = match bucket {
        None => Default::default(),
        Some(bucket) => entries(bucket)?.collect::<Result<_, _>>()?,
    };
    for (id, seq) in additions {
        sorted.entry(id).or_insert(*seq);
    }
    let length = sorted.keys().map(|id| 2 + id.len() + 8).sum::<usize>();
    let mut value = Vec::with_capacity(1 + length);
    value.push(BUCKET_FORMAT);
    for (id, seq) in sorted {
        let length = u16::try_from(id.len()).expect("an id's key is far below 64 KiB");
        value.extend_from_slice(&length.to_be_bytes());
        value.extend_from_slice(id);
        value.extend_from_slice(&seq.to_be_bytes());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_are_added_once_and_found() {
        let bucket = with_additions(None, &[(b"Dincome\0b", 2), (b"Dincome\0a", 1)]).unwrap();
        assert_eq!(find(&bucket, b"Dincome\0a").unwrap(), Some(1));
        assert_eq!(find(&bucket, b"Dincome\0b").unwrap(), Some(2));
        assert_eq!(find(&bucket, b"Dhealth\0a").unwrap(), None);
        let again = with_additions(Some(&bucket), &[(b"Dincome\0a", 9), (b"Sm-1", 3)]).unwrap();
        assert_eq!(
            find(&again, b"Dincome\0a").unwrap(),
            Some(1),
            "the first number stays"
        );
        assert_eq!(find(&again, b"Sm-1").unwrap(), Some(3));
        assert_eq!(count(&again).unwrap(), 3);
    }

    #[test]
    fn a_damaged_bucket_is_an_error_not_a_wrong_answer() {
        let bucket = with_additions(None, &[(b"Da\0x", 1), (b"Da\0y", 2)]).unwrap();
        assert!(find(&bucket[..bucket.len() - 1], b"Da\0x").is_err());
        assert!(find(&[], b"Da\0x").is_err());
        let mut other_format = bucket.clone();
        other_format[0] = 9;
        assert!(find(&other_format, b"Da\0x").is_err());
        // The same two entries, swapped: out of order.
        let half = (bucket.len() - 1) / 2;
        let mut swapped = vec![BUCKET_FORMAT];
        swapped.extend_from_slice(&bucket[1 + half..]);
        swapped.extend_from_slice(&bucket[1..1 + half]);
        assert!(find(&swapped, b"Da\0x").is_err());
        assert!(with_additions(Some(&swapped), &[]).is_err());
    }

    #[test]
    fn buckets_spread_consecutive_ids() {
        let keys: std::collections::BTreeSet<[u8; 4]> = (0..1000)
            .map(|n| bucket_key(format!("Dincome\0inc-{n:08}").as_bytes()))
            .collect();
        assert!(keys.len() > 950, "1000 ids, {} buckets", keys.len());
    }

    proptest! {
        /// Against a map: whatever ids are added, in whatever groups, each is
        /// found with the number it was first added with, and no other is.
        #[test]
        fn a_bucket_is_a_map_of_first_numbers(
            groups in prop::collection::vec(
                prop::collection::vec((prop::collection::vec(any::<u8>(), 0..12), any::<u64>()), 0..8),
                1..6,
            ),
            probe in prop::collection::vec(any::<u8>(), 0..12),
        ) {
            let mut model = std::collections::BTreeMap::new();
            let mut bucket: Option<Vec<u8>> = None;
            for group in &groups {
                for (id, seq) in group {
                    model.entry(id.clone()).or_insert(*seq);
                }
                let additions: Vec<(&[u8], u64)> =
                    group.iter().map(|(id, seq)| (id.as_slice(), *seq)).collect();
                bucket = Some(with_additions(bucket.as_deref(), &additions).unwrap());
            }
            let bucket = bucket.unwrap();
            prop_assert_eq!(count(&bucket).unwrap(), model.len());
            for (id, seq) in &model {
                prop_assert_eq!(find(&bucket, id).unwrap(), Some(*seq));
            }
            prop_assert_eq!(find(&bucket, &probe).unwrap(), model.get(&probe).copied());
        }
    }
}
