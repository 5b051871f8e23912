//! Every family's scoring projection in memory, in its compact form
//! ([`crate::compact`]): what a what-if and a re-score scan read, at memory
//! speed, instead of reading and decoding every family record.
//!
//! The table is a cache of the family records, never the truth: `serve` fills
//! it at start ([`crate::Store::take_saved_scoring_table`] from what a clean
//! stop or a load saved, else [`crate::Store::build_scoring_table`] from every record, in the
//! background), and every family write puts the family's compact form here
//! after its record ([`ScoringTable::put`]). The build only adds families the
//! table does not have yet ([`ScoringTable::put_if_absent`]): whichever way a
//! commit and the build interleave, a family ends with its newest form.
//! Families are never removed from the store, so the table never removes one
//! either.
//!
//! Families are spread over shards by a hash of their id. A shard keeps its
//! entries one after the other in one buffer (`live:u8 id_len:u8 len:varint id
//! compact`) and an index from id to entry; a family that changes is written
//! anew at the end and its old entry marked dead, and a shard whose buffer is
//! more than an eighth dead is packed again. A shard's buffer keeps room for
//! that eighth beyond its live entries, and a full buffer with dead entries is
//! packed rather than grown: a buffer grown by doubling copies the whole shard
//! into a new one twice its size, and the first re-score after a start made
//! every shard do that at once (280 MiB more at 6 million families, which
//! stayed for most of the re-score). A scan walks each shard's buffer in order under
//! its read lock, so a commit to that shard waits for at most one shard's scan
//! (about 23,000 families at a national population: about 30 ms).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use hashbrown::HashTable;

use crate::compact::{CompactError, IncomeNeed, Scratch};
use crate::projection::Outcome;
use crate::record::FamilyRecord;

/// Shards of a table; a saved table is saved shard by shard.
pub const SHARDS: usize = 256;
/// A shard is packed again when more than [`PACK_DEAD_SHARE`] of its buffer,
/// and at least this much, is dead entries.
const PACK_MIN_DEAD: usize = 4 * 1024;
/// The share of a shard's buffer (1 in this many bytes) that may be dead
/// entries. A re-score rewrites the families whose outcome changes, 18 % of a
/// national population: at one in two, the table kept their old entries too
/// (about 130 MB at 6 million families) until the next start; packing a shard
/// copies about 3 MB at that population.
const PACK_DEAD_SHARE: usize = 8;

/// The most bytes an entry takes besides its id and compact form: the live
/// flag, the id's length and the form's length as a varint.
const ENTRY_HEAD_MAX: usize = 2 + 10;

/// The buffer a shard with `live` bytes of live entries keeps: room for the
/// dead entries it may hold before it is packed again.
fn with_room(live: usize) -> usize {
    live + live / PACK_DEAD_SHARE + PACK_MIN_DEAD
}

fn hash(id: &[u8]) -> u64 {
    let hash = id.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    hash.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn shard_of(hash: u64) -> usize {
    (hash >> 56) as usize % SHARDS
}

#[derive(Default)]
struct Shard {
    entries: Vec<u8>,
    /// Offsets of the live entries in `entries`.
    index: HashTable<u32>,
    dead: usize,
}

/// The id and the compact form of the entry at `offset`, and the entry's size;
/// `None` where the bytes do not hold an entry.
fn entry(entries: &[u8], offset: usize) -> Option<(&[u8], &[u8], usize)> {
    let id_len = usize::from(*entries.get(offset + 1)?);
    let at = offset + 2;
    let (len, used) = crate::compact::read_number(entries.get(at..)?)?;
    let id_start = at + used;
    let compact_start = id_start + id_len;
    let end = compact_start.checked_add(usize::try_from(len).ok()?)?;
    entries.get(id_start..end)?;
    Some((
        &entries[id_start..compact_start],
        &entries[compact_start..end],
        end - offset,
    ))
}

/// [`entry`] for a shard's own buffer, which holds only what `append` wrote.
fn entry_at(entries: &[u8], offset: usize) -> (&[u8], &[u8], usize) {
    entry(entries, offset).expect("a shard holds whole entries")
}

/// [`entry`] for bytes from outside: `None` where they do not hold a live
/// entry with an id.
fn checked_entry_at(entries: &[u8], offset: usize) -> Option<(&[u8], &[u8], usize)> {
    let header = entries.get(offset..offset + 2)?;
    if header[0] != 1 || header[1] == 0 {
        return None;
    }
    entry(entries, offset)
}

impl Shard {
    fn find(&self, hash: u64, id: &[u8]) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(hash, |offset| entry_at(entries, *offset as usize).0 == id)
            .map(|offset| *offset as usize)
    }

    fn append(&mut self, id: &[u8], compact: &[u8]) -> u32 {
        let offset = self.entries.len();
        self.entries.push(1);
        self.entries
            .push(u8::try_from(id.len()).expect("family ids are at most 64 bytes"));
        crate::compact::put(&mut self.entries, compact.len() as u64);
        self.entries.extend_from_slice(id);
        self.entries.extend_from_slice(compact);
        u32::try_from(offset).expect("a shard holds less than 4 GiB")
    }

    fn insert(&mut self, hash: u64, id: &[u8], compact: &[u8], replace: bool) {
        let room = self.entries.capacity() - self.entries.len();
        if room < ENTRY_HEAD_MAX + id.len() + compact.len() && self.dead > 0 {
            self.pack();
        }
        if let Some(old) = self.find(hash, id) {
            if !replace {
                return;
            }
            let (_, _, size) = entry_at(&self.entries, old);
            self.entries[old] = 0;
            self.dead += size;
            let offset = self.append(id, compact);
            let entries = &self.entries;
            let slot = self
                .index
                .find_mut(hash, |at| {
                    *at as usize == old || entry_at(entries, *at as usize).0 == id
                })
                .expect("the entry was just found");
            *slot = offset;
        } else {
            let offset = self.append(id, compact);
            let entries = &self.entries;
            self.index.insert_unique(hash, offset, |at| {
                self::hash(entry_at(entries, *at as usize).0)
            });
        }
        if self.dead >= PACK_MIN_DEAD && self.dead * PACK_DEAD_SHARE > self.entries.len() {
            self.pack();
        }
    }

    /// Copies the live entries into a new buffer, with room
    /// ([`with_room`]), and indexes them again.
    fn pack(&mut self) {
        let old = std::mem::take(&mut self.entries);
        self.entries.reserve_exact(with_room(old.len() - self.dead));
        self.index.clear();
        self.dead = 0;
        let mut offset = 0;
        while offset < old.len() {
            let (id, compact, size) = entry_at(&old, offset);
            if old[offset] == 1 {
                let at = self.append(id, compact);
                let entries = &self.entries;
                self.index
                    .insert_unique(hash(id), at, |at| hash(entry_at(entries, *at as usize).0));
            }
            offset += size;
        }
    }

    fn live(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut offset = 0;
        std::iter::from_fn(move || {
            while offset < self.entries.len() {
                let at = offset;
                let (id, compact, size) = entry_at(&self.entries, at);
                offset += size;
                if self.entries[at] == 1 {
                    return Some((id, compact));
                }
            }
            None
        })
    }
}

/// Every family's compact scoring form, in memory. See the module docs.
pub struct ScoringTable {
    shards: Vec<RwLock<Shard>>,
    built: AtomicBool,
    /// Set when the service stops: a build in progress gives up.
    abandoned: AtomicBool,
}

impl Default for ScoringTable {
    fn default() -> Self {
        ScoringTable {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            built: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
        }
    }
}

impl ScoringTable {
    fn shard(&self, hash: u64) -> std::sync::RwLockWriteGuard<'_, Shard> {
        self.shards[shard_of(hash)]
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Puts the family's newest compact form.
    pub fn put(&self, family_id: &[u8], compact: &[u8]) {
        let hash = hash(family_id);
        self.shard(hash).insert(hash, family_id, compact, true);
    }

    /// Adds the family's compact form unless the table has one, which is newer.
    pub fn put_if_absent(&self, family_id: &[u8], compact: &[u8]) {
        let hash = hash(family_id);
        self.shard(hash).insert(hash, family_id, compact, false);
    }

    /// Marks the table as holding every projection the store had when it
    /// was enabled, and leaves each buffer with the room it keeps
    /// ([`with_room`]): after a build, growing by doubling leaves up to half of
    /// them unused, and a buffer with no room would double at the next write.
    /// Room never written takes no memory of the process's.
    pub fn set_built(&self) {
        for shard in &self.shards {
            let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
            let shard = &mut *shard;
            let wanted = with_room(shard.entries.len() - shard.dead);
            if shard.entries.capacity() > wanted {
                shard.entries.shrink_to(wanted);
            } else {
                shard.entries.reserve_exact(wanted - shard.entries.len());
            }
            let entries = &shard.entries;
            shard
                .index
                .shrink_to(0, |at| hash(entry_at(entries, *at as usize).0));
        }
        self.built.store(true, Ordering::SeqCst);
    }

    /// Tells a build in progress to give up (the service stops).
    pub fn abandon_build(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }

    /// Lets a build run again (the service starts).
    pub fn allow_build(&self) {
        self.abandoned.store(false, Ordering::SeqCst);
    }

    pub fn build_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }

    /// Whether the table holds every projection of the store.
    pub fn is_built(&self) -> bool {
        self.built.load(Ordering::SeqCst)
    }

    /// The live entries of shard `index` one after the other, as
    /// [`ScoringTable::load_shard`] reads them back.
    pub fn shard_bytes(&self, index: usize) -> Vec<u8> {
        let shard = self.shards[index].read().unwrap_or_else(|e| e.into_inner());
        let mut bytes = Vec::with_capacity(shard.entries.len() - shard.dead);
        let mut offset = 0;
        while offset < shard.entries.len() {
            let (_, _, size) = entry_at(&shard.entries, offset);
            if shard.entries[offset] == 1 {
                bytes.extend_from_slice(&shard.entries[offset..offset + size]);
            }
            offset += size;
        }
        bytes
    }

    /// Adds the families of a shard that [`ScoringTable::shard_bytes`] wrote,
    /// unless the table has them; returns how many it read. Bytes that do not
    /// walk as entries are refused before anything is added.
    pub fn load_shard(&self, bytes: &[u8]) -> Result<u64, CompactError> {
        let mut entries: Vec<(&[u8], &[u8])> = Vec::new();
        let mut offset = 0;
        while offset < bytes.len() {
            let (id, compact, size) =
                checked_entry_at(bytes, offset).ok_or(CompactError("a saved shard"))?;
            entries.push((id, compact));
            offset += size;
        }
        for (id, compact) in &entries {
            self.put_if_absent(id, compact);
        }
        Ok(entries.len() as u64)
    }

    /// Families in the table, and the bytes its entries (dead ones too) and
    /// index take; the room a buffer keeps beyond its entries is not counted.
    pub fn size(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(families, bytes), shard| {
            let shard = shard.read().unwrap_or_else(|e| e.into_inner());
            (
                families + shard.index.len() as u64,
                bytes + (shard.entries.len() + shard.index.capacity() * 5) as u64,
            )
        })
    }

    /// Runs `work` on every family, read as `need` says, on `threads` threads,
    /// each with its own accumulator from `start`; returns the accumulators.
    /// Families come in no particular order.
    pub fn scan<T, S, W>(
        &self,
        threads: usize,
        need: IncomeNeed,
        start: S,
        work: W,
    ) -> Result<Vec<T>, CompactError>
    where
        T: Send,
        S: Fn() -> T + Sync,
        W: Fn(&mut T, &FamilyRecord, Option<&Outcome>) + Sync,
    {
        let threads = threads.clamp(1, SHARDS);
        let (start, work) = (&start, &work);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|first| {
                    scope.spawn(move || -> Result<T, CompactError> {
                        let mut accumulator = start();
                        let mut scratch = Scratch::default();
                        for shard in self.shards.iter().skip(first).step_by(threads) {
                            let shard = shard.read().unwrap_or_else(|e| e.into_inner());
                            for (id, compact) in shard.live() {
                                scratch.decode_for(compact, need)?;
                                scratch.set_family_id(id);
                                work(&mut accumulator, scratch.record(), scratch.outcome());
                            }
                        }
                        Ok(accumulator)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| {
                    worker
                        .join()
                        .unwrap_or_else(|e| std::panic::resume_unwind(e))
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{FamilyId, Iin};
    use std::collections::BTreeMap;

    fn family(id: &str, social_contract: bool) -> FamilyRecord {
        FamilyRecord {
            social_contract,
            ..FamilyRecord::new(FamilyId::parse(id).unwrap())
        }
    }

    fn compact(record: &FamilyRecord) -> Vec<u8> {
        let mut bytes = Vec::new();
        crate::compact::encode(record, &mut bytes);
        bytes
    }

    /// Each family's id and social contract, as a scan sees them.
    fn seen(table: &ScoringTable, threads: usize) -> BTreeMap<String, bool> {
        let parts = table
            .scan(
                threads,
                IncomeNeed::Read,
                Vec::new,
                |seen: &mut Vec<(String, bool)>, record, _| {
                    seen.push((record.family_id.to_string(), record.social_contract));
                },
            )
            .unwrap();
        let all: Vec<_> = parts.into_iter().flatten().collect();
        let map: BTreeMap<_, _> = all.iter().cloned().collect();
        assert_eq!(map.len(), all.len(), "each family once");
        map
    }

    #[test]
    fn the_newest_form_wins_and_the_build_never_overwrites_it() {
        let table = ScoringTable::default();
        let key = |n: u32| format!("fam-{n}");
        for n in 0..5_000 {
            table.put(key(n).as_bytes(), &compact(&family(&key(n), false)));
        }
        // A commit after the build read the family: the build's older form is
        // not taken.
        for n in 0..5_000 {
            table.put(key(n).as_bytes(), &compact(&family(&key(n), n % 3 == 0)));
            table.put_if_absent(key(n).as_bytes(), &compact(&family(&key(n), false)));
        }
        table.put_if_absent(b"fam-new", &compact(&family("fam-new", true)));
        for threads in [1, 2, 7] {
            let seen = seen(&table, threads);
            assert_eq!(seen.len(), 5_001);
            for n in 0..5_000 {
                assert_eq!(seen[&key(n)], n % 3 == 0, "{}", key(n));
            }
            assert!(seen["fam-new"]);
        }
        assert_eq!(table.size().0, 5_001);
    }

    #[test]
    fn a_saved_table_loads_back_whole_and_damage_is_refused() {
        let table = ScoringTable::default();
        for n in 0..3_000 {
            let id = format!("fam-{n}");
            table.put(id.as_bytes(), &compact(&family(&id, n % 2 == 0)));
        }
        table.put(b"fam-7", &compact(&family("fam-7", false)));
        let loaded = ScoringTable::default();
        let mut read = 0;
        for index in 0..SHARDS {
            read += loaded.load_shard(&table.shard_bytes(index)).unwrap();
        }
        assert_eq!(read, 3_000);
        assert_eq!(seen(&loaded, 2), seen(&table, 2));
        let bytes = (0..SHARDS)
            .map(|index| table.shard_bytes(index))
            .find(|bytes| bytes.len() > 40)
            .unwrap();
        // A shard cut short loads only if cut between entries, and then loads
        // exactly the entries before the cut.
        for cut in 1..bytes.len() {
            let shard = ScoringTable::default();
            if shard.load_shard(&bytes[..cut]).is_ok() {
                let saved: usize = (0..SHARDS).map(|i| shard.shard_bytes(i).len()).sum();
                assert_eq!(saved, cut);
            }
        }
        assert!(ScoringTable::default().load_shard(&[7, 3, 1]).is_err());
    }

    /// A re-score rewrites a share of the families once: the old entries do not
    /// stay beside the new ones.
    #[test]
    fn a_rewritten_share_of_the_families_is_packed_away() {
        let mut shard = Shard::default();
        let families = 20_000;
        let bytes = |n: usize, eligible: bool| compact(&family(&format!("f{n}"), eligible));
        for n in 0..families {
            let id = format!("f{n}");
            shard.insert(hash(id.as_bytes()), id.as_bytes(), &bytes(n, false), true);
        }
        let live = shard.entries.len();
        for n in 0..families / 5 {
            let id = format!("f{n}");
            shard.insert(hash(id.as_bytes()), id.as_bytes(), &bytes(n, true), true);
        }
        assert!(
            shard.dead * PACK_DEAD_SHARE <= shard.entries.len(),
            "{} of {} bytes dead",
            shard.dead,
            shard.entries.len()
        );
        assert!(
            shard.entries.len() < live * 9 / 8,
            "{} against {live}",
            shard.entries.len()
        );
        assert_eq!(shard.index.len(), families);
    }

    /// A re-score after a start rewrites a share of every shard, here three
    /// quarters of it with forms longer by half (a member more): each buffer takes the new entries
    /// in the room it keeps, or is packed, and is never copied into one twice
    /// its size.
    #[test]
    fn a_rewritten_share_after_a_build_stays_within_the_room_kept() {
        let table = ScoringTable::default();
        let families = 200_000;
        let bytes = |n: usize, social: bool| {
            let mut record = family(&format!("f{n}"), social);
            if social {
                let facts = crate::record::CitizenFacts::new(Iin::from_number(0).unwrap());
                let role = crate::record::Role::Head;
                record.members.push(crate::record::Member { role, facts });
            }
            compact(&record)
        };
        for n in 0..families {
            let id = format!("f{n}");
            table.put_if_absent(id.as_bytes(), &bytes(n, false));
        }
        table.set_built();
        for shard in &table.shards {
            let shard = shard.read().unwrap();
            let live = shard.entries.len() - shard.dead;
            assert_eq!(shard.entries.capacity(), with_room(live));
        }
        for n in (0..families).filter(|n| n % 4 != 0) {
            let id = format!("f{n}");
            table.put(id.as_bytes(), &bytes(n, true));
            let shard = table.shards[shard_of(hash(id.as_bytes()))].read().unwrap();
            let (live, capacity) = (shard.entries.len() - shard.dead, shard.entries.capacity());
            assert!(
                capacity <= with_room(live),
                "{capacity} for {live} after {id}"
            );
        }
        let seen = seen(&table, 2);
        assert_eq!(seen.len(), families);
        assert!((0..families).all(|n| seen[&format!("f{n}")] == (n % 4 != 0)));
    }

    #[test]
    fn a_shard_mostly_dead_is_packed_and_keeps_every_family() {
        let table = ScoringTable::default();
        for round in 0..60 {
            for n in 0..20_000 {
                let id = format!("f{n}");
                table.put(id.as_bytes(), &compact(&family(&id, round % 2 == 1)));
            }
        }
        let bytes = table.size().1;
        // 20,000 live entries of about 16 bytes, each written 60 times (19 MB):
        // packing keeps each shard within twice its live size plus 4 KiB.
        assert!(bytes < 4_000_000, "{bytes} bytes");
        let seen = seen(&table, 2);
        assert_eq!(seen.len(), 20_000);
        assert!(seen.values().all(|social| *social));
    }
}
