//! Reply codes picked for consent requests that are not written yet.
//!
//! Each open request of one phone has its own 4-digit code (CONTRACT.md): a
//! reply "YES 4821" must match one request. A family picks the code of a new
//! request past the codes of the phone's requests in the `phone_requests` tree.
//! But the dispatcher applies a batch's families concurrently and writes them
//! afterwards, while the next batch is already being applied. Two families that
//! share a phone could each pick a code that the other's unwritten request
//! holds, and the reply naming it would then be ambiguous for both.
//!
//! So a code is reserved here from the moment it is picked until its request is
//! in the tree: [`ReplyCodes::pick`] sees the tree's codes and the reserved
//! ones under one lock per phone, and the store's writers
//! [`ReplyCodes::release`] a request once they have written it. A reservation
//! is the entitlement's: picking again for the same entitlement (a retry, a
//! replay) replaces it. Only an input set aside as poison leaves its
//! reservation behind, until the process stops.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

const SHARDS: usize = 16;

type Reserved = HashMap<Box<str>, Vec<(u16, Box<str>)>>;

/// Reserved codes by phone, each with its entitlement id.
pub struct ReplyCodes {
    shards: Box<[Mutex<Reserved>]>,
}

impl Default for ReplyCodes {
    fn default() -> ReplyCodes {
        ReplyCodes {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl ReplyCodes {
    fn shard(&self, phone: &str) -> std::sync::MutexGuard<'_, Reserved> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        phone.hash(&mut hasher);
        self.shards[hasher.finish() as usize % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Picks and reserves the code of `entitlement_id`'s request to `phone`:
    /// `pick` is given every code that `written` (the codes of the phone's
    /// requests in the tree) and the other entitlements' reservations hold.
    /// `written` is read under the phone's lock, so that a request written and
    /// released meanwhile is seen in one of the two.
    pub fn pick<E>(
        &self,
        phone: &str,
        entitlement_id: &str,
        written: impl FnOnce() -> Result<BTreeSet<u16>, E>,
        pick: impl FnOnce(&BTreeSet<u16>) -> u16,
    ) -> Result<u16, E> {
        let mut reserved = self.shard(phone);
        let mut taken = written()?;
        let held = reserved.entry(phone.into()).or_default();
        held.retain(|(_, holder)| &**holder != entitlement_id);
        taken.extend(held.iter().map(|(code, _)| *code));
        let code = pick(&taken);
        held.push((code, entitlement_id.into()));
        Ok(code)
    }

    /// Drops the reservation of `entitlement_id`'s request to `phone`: the
    /// request is in the tree now.
    pub fn release(&self, phone: &str, entitlement_id: &str) {
        let mut reserved = self.shard(phone);
        if let Some(held) = reserved.get_mut(phone) {
            held.retain(|(_, holder)| &**holder != entitlement_id);
            if held.is_empty() {
                reserved.remove(phone);
            }
        }
    }

    /// How many codes are reserved (for the metric and tests).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
                shard.values().map(Vec::len).sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lowest code not taken from 1000 up, like a family whose
    /// entitlement ids all hash to 1000.
    fn lowest(taken: &BTreeSet<u16>) -> u16 {
        (1000..).find(|code| !taken.contains(code)).unwrap()
    }

    fn none() -> Result<BTreeSet<u16>, ()> {
        Ok(BTreeSet::new())
    }

    #[test]
    fn a_reserved_code_is_not_picked_for_another_entitlement_of_the_phone() {
        let codes = ReplyCodes::default();
        assert_eq!(codes.pick("+77010000001", "e1", none, lowest), Ok(1000));
        assert_eq!(codes.pick("+77010000001", "e2", none, lowest), Ok(1001));
        // Another phone is not affected.
        assert_eq!(codes.pick("+77010000002", "e3", none, lowest), Ok(1000));
        // The tree's codes count as well as the reserved ones.
        let written = || Ok::<_, ()>(BTreeSet::from([1002]));
        assert_eq!(codes.pick("+77010000001", "e4", written, lowest), Ok(1003));
        assert_eq!(codes.len(), 4);
    }

    #[test]
    fn picking_again_for_the_same_entitlement_replaces_its_reservation() {
        let codes = ReplyCodes::default();
        assert_eq!(codes.pick("+77010000001", "e1", none, lowest), Ok(1000));
        assert_eq!(codes.pick("+77010000001", "e1", none, lowest), Ok(1000));
        assert_eq!(codes.len(), 1);
    }

    #[test]
    fn a_released_code_is_free_again_and_nothing_is_kept_for_the_phone() {
        let codes = ReplyCodes::default();
        codes.pick("+77010000001", "e1", none, lowest).unwrap();
        codes.pick("+77010000001", "e2", none, lowest).unwrap();
        codes.release("+77010000001", "e1");
        assert_eq!(codes.pick("+77010000001", "e3", none, lowest), Ok(1000));
        codes.release("+77010000001", "e2");
        codes.release("+77010000001", "e3");
        codes.release("+77010000009", "e9");
        assert_eq!(codes.len(), 0);
        assert!(codes.shards.iter().all(|s| s.lock().unwrap().is_empty()));
    }

    #[test]
    fn a_failed_read_of_the_tree_reserves_nothing() {
        let codes = ReplyCodes::default();
        let failed = || Err::<BTreeSet<u16>, _>("disk");
        assert_eq!(
            codes.pick("+77010000001", "e1", failed, lowest),
            Err("disk")
        );
        assert_eq!(codes.len(), 0);
    }
}
