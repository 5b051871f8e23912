//! The citizen → family routing index, packed into buckets.
//!
//! sled 0.34 keeps about 60 bytes of memory per key, whatever the value's size:
//! on opening, 4,000,000 keys of 100 bytes held 235 MB, and 400,000 keys of
//! 1,000 bytes (the same data) held 21 MB. With one key per citizen, the index
//! was 19.4 million of the national store's 31 million keys, and most of the
//! store's resident memory. So the index keeps [`BUCKETS`] keys, a hash of the
//! IIN choosing the bucket; a bucket holds its citizens' entries sorted by IIN,
//! about 19 of them at 19.4 million citizens.
//!
//! A bucket's value is [`BUCKET_FORMAT`], then its entries, each the IIN's 12
//! ASCII digits, the family id's length (one byte; ids are at most 64 bytes) and
//! the family id. It is read without decoding the entries it does not need.
//! The key is the bucket's number, 4 bytes big-endian.

use crate::ids::{FamilyId, Iin};

/// How many buckets the index spreads over (2^20). Fixed: a bucket's number is
/// part of the stored key.
pub const BUCKET_BITS: u32 = 20;
pub const BUCKETS: u32 = 1 << BUCKET_BITS;

/// The first byte of every bucket's value, so that the layout can be migrated.
pub const BUCKET_FORMAT: u8 = 1;

const IIN_BYTES: usize = 12;

/// Why a stored bucket cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("citizen index bucket: {0}")]
pub struct BucketError(&'static str);

/// The key of the bucket that holds `iin`.
pub fn bucket_key(iin: &Iin) -> [u8; 4] {
    let number = iin
        .as_str()
        .bytes()
        .fold(0u64, |number, digit| number * 10 + u64::from(digit - b'0'));
    // Fibonacci hashing: neighbouring IINs (one birth date, consecutive
    // serials) land in far-apart buckets.
    let bucket = number.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BUCKET_BITS);
    u32::try_from(bucket)
        .expect("a 20-bit number")
        .to_be_bytes()
}

/// One entry of a bucket: the IIN's digits and the family id's bytes.
type Entry<'a> = (&'a [u8], &'a [u8]);

/// A bucket's entries in order, read in place; a damaged entry ends them with
/// an error.
fn entries(
    bucket: &[u8],
) -> Result<impl Iterator<Item = Result<Entry<'_>, BucketError>>, BucketError> {
    let Some((&format, mut rest)) = bucket.split_first() else {
        return Err(BucketError("empty value"));
    };
    if format != BUCKET_FORMAT {
        return Err(BucketError("unknown format version"));
    }
    Ok(std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let entry = if rest.len() < IIN_BYTES + 1 {
            Err(BucketError("truncated entry"))
        } else {
            let (iin, after) = rest.split_at(IIN_BYTES);
            let length = usize::from(after[0]);
            if after.len() < 1 + length {
                Err(BucketError("truncated family id"))
            } else {
                rest = &after[1 + length..];
                return Some(Ok((iin, &after[1..1 + length])));
            }
        };
        rest = &[];
        Some(entry)
    }))
}

/// The family `iin` belongs to, per this bucket. Every entry is checked, so a
/// damaged bucket is an error whichever entry is asked for.
pub fn find(bucket: &[u8], iin: &Iin) -> Result<Option<FamilyId>, BucketError> {
    let wanted = iin.as_str().as_bytes();
    let mut found = None;
    for entry in entries(bucket)? {
        let (iin, family) = entry?;
        if found.is_none() && iin == wanted {
            found = Some(family);
        }
    }
    match found {
        None => Ok(None),
        Some(family) => std::str::from_utf8(family)
            .ok()
            .and_then(|text| FamilyId::parse(text).ok())
            .map(Some)
            .ok_or(BucketError("not a family id")),
    }
}

/// How many citizens this bucket holds.
pub fn count(bucket: &[u8]) -> Result<usize, BucketError> {
    entries(bucket)?.try_fold(0, |count, entry| entry.map(|_| count + 1))
}

/// The bucket after `changes` (each IIN to its family, or out of the index),
/// applied in order to `bucket` (None: no bucket yet). None when it is left
/// empty, so that the key is removed.
pub fn with_changes(
    bucket: Option<&[u8]>,
    changes: &[(Iin, Option<FamilyId>)],
) -> Result<Option<Vec<u8>>, BucketError> {
    let mut sorted: std::collections::BTreeMap<&[u8], &[u8]> = match bucket {
        None => Default::default(),
        Some(bucket) => entries(bucket)?.collect::<Result<_, _>>()?,
    };
    for (iin, family) in changes {
        match family {
            Some(family) => sorted.insert(iin.as_str().as_bytes(), family.as_str().as_bytes()),
            None => sorted.remove(iin.as_str().as_bytes()),
        };
    }
    if sorted.is_empty() {
        return Ok(None);
    }
    let length = sorted
        .values()
        .map(|family| IIN_BYTES + 1 + family.len())
        .sum::<usize>();
    let mut value = Vec::with_capacity(1 + length);
    value.push(BUCKET_FORMAT);
    for (iin, family) in sorted {
        value.extend_from_slice(iin);
        value.push(u8::try_from(family.len()).expect("family ids are at most 64 bytes"));
        value.extend_from_slice(family);
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The `n`th valid IIN of people born on 1 January 1990.
    fn iin(n: u32) -> Iin {
        let born = chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap();
        (n * 10..)
            .find_map(|serial| Iin::from_parts(born, crate::ids::Sex::Female, serial))
            .unwrap()
    }

    fn family(text: &str) -> FamilyId {
        FamilyId::parse(text).unwrap()
    }

    #[test]
    fn entries_are_set_moved_and_removed() {
        let (a, b) = (iin(1), iin(2));
        let bucket = with_changes(None, &[(a, Some(family("F-1"))), (b, Some(family("F-2")))])
            .unwrap()
            .unwrap();
        assert_eq!(find(&bucket, &a).unwrap(), Some(family("F-1")));
        assert_eq!(find(&bucket, &b).unwrap(), Some(family("F-2")));
        assert_eq!(count(&bucket).unwrap(), 2);
        let moved = with_changes(Some(&bucket), &[(a, Some(family("F-3")))])
            .unwrap()
            .unwrap();
        assert_eq!(find(&moved, &a).unwrap(), Some(family("F-3")));
        assert_eq!(count(&moved).unwrap(), 2);
        let one_left = with_changes(Some(&moved), &[(b, None)]).unwrap().unwrap();
        assert_eq!(find(&one_left, &b).unwrap(), None);
        assert_eq!(with_changes(Some(&one_left), &[(a, None)]).unwrap(), None);
    }

    #[test]
    fn a_damaged_bucket_is_an_error_not_a_wrong_answer() {
        let a = iin(1);
        let bucket = with_changes(None, &[(a, Some(family("F-1")))])
            .unwrap()
            .unwrap();
        assert!(find(&bucket[..bucket.len() - 1], &a).is_err());
        assert!(find(&[], &a).is_err());
        let mut other_format = bucket.clone();
        other_format[0] = 9;
        assert!(find(&other_format, &a).is_err());
    }

    #[test]
    fn buckets_spread_neighbouring_iins() {
        let born = chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap();
        let iins: Vec<Iin> = (0..100)
            .filter_map(|serial| Iin::from_parts(born, crate::ids::Sex::Male, serial))
            .collect();
        let keys: std::collections::BTreeSet<[u8; 4]> = iins.iter().map(bucket_key).collect();
        assert!(
            keys.len() > iins.len() * 9 / 10,
            "{} IINs, {} buckets",
            iins.len(),
            keys.len()
        );
        assert!(keys.iter().all(|key| u32::from_be_bytes(*key) < BUCKETS));
    }

    proptest! {
        #[test]
        fn a_bucket_answers_like_a_map(
            changes in proptest::collection::vec((0usize..6, proptest::option::of(0usize..3)), 0..40)
        ) {
            let iins: Vec<Iin> = (0..6).map(iin).collect();
            let mut model = std::collections::BTreeMap::new();
            let mut bucket: Option<Vec<u8>> = None;
            for (who, to) in changes {
                let to = to.map(|n| family(&format!("F-{n}")));
                match &to {
                    Some(family) => { model.insert(iins[who], family.clone()); }
                    None => { model.remove(&iins[who]); }
                }
                bucket = with_changes(bucket.as_deref(), &[(iins[who], to)]).unwrap();
                prop_assert_eq!(bucket.is_none(), model.is_empty());
                for iin in &iins {
                    let found = bucket.as_deref().map(|b| find(b, iin).unwrap()).unwrap_or(None);
                    prop_assert_eq!(found.as_ref(), model.get(iin));
                }
            }
        }
    }
}
