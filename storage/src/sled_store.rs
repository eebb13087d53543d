//! `SledStore`, the default backend: a sled index with small bodies inline and larger bodies
//! appended to pack files beside it.
//!
//! sled does well with many small values and poorly with large ones (measured on these
//! machines: 1 MiB values ran at about a sixth of plain files and took 2.87x their size on disk,
//! and sled does not fsync the blob files it keeps them in). So bodies up to [`INLINE_MAX`]
//! live inside their index entry (one insert per small part) and larger ones in `packs/`
//! (see `packs` for why packs rather than a file per body), shared by every name with the same
//! content. `sled_record` has the key layout.
//!
//! Durability: a batch appends its new bodies to a pack and fsyncs it before one atomic sled
//! `Batch` records the entries, where the bodies are and the pack's new committed length; then
//! it flushes sled and fsyncs its log file. sled's own flush only calls `sync_file_range`,
//! which neither persists the file's size nor flushes the drive's cache; the extra `fdatasync`
//! does both. Bytes appended past a pack's committed length are cut off on the next open.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use crate::batch::{self, Step};
use crate::damage::DamageLog;
use crate::error::{IndexResult, IoContext};
use crate::packs::{self, BodyAt, Packs};
use crate::sled_record::{self as record, Location};
use crate::store::BatchOutcome;
use crate::store_dir::StoreDir;
use crate::{
    OnConflict, PartHash, PartInfo, PartName, PartStore, StoreError, StoreStats, VerifiedPart,
};

/// Bodies up to this size are stored inline in the sled index.
pub const INLINE_MAX: u64 = 16 * 1024;

/// sled's page cache; it only grows this large with use.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Live bytes a compaction moves per index commit, bounding the memory it holds.
const COMPACTION_STEP: u64 = 32 * 1024 * 1024;

pub struct SledStore {
    _dir: StoreDir,
    db: sled::Db,
    log: File,
    packs_dir: PathBuf,
    damage: DamageLog,
    /// The packs, behind the one lock every writer takes.
    writer: Mutex<Packs>,
}

impl SledStore {
    pub(crate) fn open(dir: StoreDir) -> Result<Self, StoreError> {
        let index = dir.root().join("index");
        let db = sled::Config::new()
            .path(&index)
            .cache_capacity(CACHE_BYTES)
            .open()
            .index()?;
        let log_path = index.join("db");
        let log = File::open(&log_path).context(|| format!("opening {}", log_path.display()))?;
        let mut states = BTreeMap::new();
        for entry in db.scan_prefix(record::PACK_PREFIX) {
            let (key, value) = entry.index()?;
            let (id, state) = record::decode_pack_state(&key, &value)?;
            states.insert(id, state);
        }
        let packs = Packs::open(dir.root().join("packs"), states)?;
        let store = Self {
            damage: DamageLog::open(dir.damage_log()),
            _dir: dir,
            db,
            log,
            packs_dir: packs.dir().to_owned(),
            writer: Mutex::new(packs),
        };
        store.sweep()?;
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Packs> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Releases bodies no entry refers to (a crash between an entry's removal and its body's
    /// release leaves one) and compacts what that frees.
    fn sweep(&self) -> Result<(), StoreError> {
        let mut unreferenced = Vec::new();
        for entry in self.db.scan_prefix(record::BODY_PREFIX) {
            let (key, value) = entry.index()?;
            let (hash, _) = record::decode_body_at(&key, &value)?;
            if !self.is_referenced(&hash)? {
                unreferenced.push(hash);
            }
        }
        let mut packs = self.lock();
        self.release(&mut packs, &unreferenced)?;
        self.compact(&mut packs)
    }

    fn is_referenced(&self, hash: &PartHash) -> Result<bool, StoreError> {
        Ok(self
            .db
            .scan_prefix(record::ref_prefix(hash))
            .next()
            .transpose()
            .index()?
            .is_some())
    }

    fn body_at(&self, hash: &PartHash) -> Result<Option<BodyAt>, StoreError> {
        let key = record::body_key(hash);
        self.db
            .get(&key)
            .index()?
            .map(|value| record::decode_body_at(&key, &value).map(|(_, at)| at))
            .transpose()
    }

    fn durable_flush(&self) -> Result<(), StoreError> {
        self.db.flush().index()?;
        self.log
            .sync_data()
            .context(|| "syncing the sled log".to_owned())
    }

    fn commit(&self, entries: sled::Batch) -> Result<(), StoreError> {
        self.db.apply_batch(entries).index()?;
        self.durable_flush()
    }

    /// The entry for `name`, and its raw value (which holds an inline body).
    fn entry(
        &self,
        name: &PartName,
    ) -> Result<Option<(PartInfo, Location, sled::IVec)>, StoreError> {
        let key = record::name_key(name);
        let Some(value) = self.db.get(&key).index()? else {
            return Ok(None);
        };
        let (info, location) = record::decode(&key, &value)?;
        Ok(Some((info, location, value)))
    }

    /// Reads a packed body of the `size` its entry records (a location of another length is
    /// a damaged index, read as a missing body, never a size to allocate). A compaction may
    /// move the body between finding and reading it, so a miss is retried once at its new
    /// place.
    fn read_packed(&self, hash: &PartHash, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let mut last = None;
        for _ in 0..2 {
            let Some(at) = self.body_at(hash)? else {
                return Ok(None);
            };
            if last == Some(at) || at.len != size {
                break;
            }
            if let Some(bytes) = packs::read_body(&self.packs_dir, at)? {
                return Ok(Some(bytes));
            }
            last = Some(at);
        }
        Ok(None)
    }

    /// Whether the packed body of `hash`, recorded at `at`, cannot be read back as far as can
    /// be told without reading it: not recorded, of another length than its entry, past its
    /// pack's end, or found damaged by a read.
    fn packed_damaged(
        &self,
        hash: &PartHash,
        at: Option<BodyAt>,
        size: u64,
    ) -> Result<bool, StoreError> {
        let Some(at) = at else { return Ok(true) };
        Ok(at.len != size || self.damage.is_damaged(hash) || !packs::holds(&self.packs_dir, at)?)
    }

    /// Forgets the bodies among `hashes` that no entry refers to any more, counting them as
    /// dead bytes of their packs, then compacts the packs that are mostly dead.
    fn release(&self, packs: &mut Packs, hashes: &[PartHash]) -> Result<(), StoreError> {
        let mut entries = sled::Batch::default();
        let mut any = false;
        let mut seen = HashSet::new();
        for hash in hashes {
            if !seen.insert(*hash) || self.is_referenced(hash)? {
                continue;
            }
            if let Some(at) = self.body_at(hash)? {
                entries.remove(record::body_key(hash));
                if let Some((id, state)) = packs.mark_dead(at) {
                    entries.insert(record::pack_key(id), record::encode_pack_state(state));
                }
                any = true;
            }
        }
        if any {
            self.commit(entries)?;
            self.compact(packs)?;
        }
        Ok(())
    }

    /// Moves the live bodies out of every pack that is at least half dead, then deletes it.
    fn compact(&self, packs: &mut Packs) -> Result<(), StoreError> {
        while let Some(old) = packs.next_to_compact() {
            let mut live = Vec::new();
            for entry in self.db.scan_prefix(record::BODY_PREFIX) {
                let (key, value) = entry.index()?;
                let (hash, at) = record::decode_body_at(&key, &value)?;
                if at.pack == old {
                    live.push((hash, at));
                }
            }
            // In pack order, so a step moves about COMPACTION_STEP bytes with one commit.
            live.sort_unstable_by_key(|(_, at)| at.offset);
            let mut start = 0;
            while start < live.len() {
                let mut end = start;
                let mut bytes = 0;
                while end < live.len()
                    && (end == start || bytes + live[end].1.len <= COMPACTION_STEP)
                {
                    bytes += live[end].1.len;
                    end += 1;
                }
                self.move_bodies(packs, &live[start..end])?;
                start = end;
            }
            let mut entries = sled::Batch::default();
            entries.remove(record::pack_key(old));
            self.commit(entries)?;
            packs.delete(old)?;
            tracing::info!(pack = old, moved = live.len(), "compacted a pack");
        }
        Ok(())
    }

    /// Copies bodies to the current pack and points their entries there; a body that cannot
    /// be read stays where it is, reported missing as before.
    fn move_bodies(
        &self,
        packs: &mut Packs,
        group: &[(PartHash, BodyAt)],
    ) -> Result<(), StoreError> {
        let mut moving = Vec::new();
        let mut bytes = Vec::new();
        for &(hash, at) in group {
            if let Some(body) = packs::read_body(&self.packs_dir, at)? {
                moving.push((hash, at));
                bytes.push(body);
            }
        }
        let slices: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        let (placed, touched) = packs.append(&slices)?;
        let mut entries = sled::Batch::default();
        for ((hash, old_at), new_at) in moving.iter().zip(placed) {
            entries.insert(record::body_key(hash), record::encode_body_at(new_at));
            if let Some((id, state)) = packs.mark_dead(*old_at) {
                entries.insert(record::pack_key(id), record::encode_pack_state(state));
            }
        }
        for (id, state) in touched {
            entries.insert(record::pack_key(id), record::encode_pack_state(state));
        }
        self.commit(entries)
    }
}

impl PartStore for SledStore {
    fn put_batch(
        &self,
        parts: &[VerifiedPart],
        on_conflict: OnConflict,
    ) -> Result<BatchOutcome, StoreError> {
        let mut packs = self.lock();
        let steps = batch::plan(
            parts,
            on_conflict,
            |name| Ok(self.entry(name)?.map(|(info, _, _)| info.hash)),
            |held| self.known_damaged(held),
        )?;
        let mut entries = sled::Batch::default();
        let mut released = Vec::new();
        let mut new_bodies = Vec::new();
        let mut damaged_bodies = Vec::new();
        let mut placing = HashSet::new();
        let mut written = Vec::new();
        for (part, step) in parts.iter().zip(&steps) {
            let (info, previous) = match step {
                Step::Write { previous } => (part.info(), *previous),
                // The entry is written again as it is (its kind too), with its body.
                Step::Repair => match self.entry(part.name())? {
                    Some((held, _, _)) => (held, None),
                    None => continue,
                },
                Step::Done(_) => continue,
            };
            written.push(part.hash());
            if let Some(previous) = previous {
                entries.remove(record::ref_key(&previous, part.name()));
                released.push(previous);
            }
            let key = record::name_key(part.name());
            if part.size() <= INLINE_MAX {
                entries.insert(key, record::encode_inline(&info, part.bytes()));
            } else {
                entries.insert(key, record::encode_packed(&info));
                entries.insert(record::ref_key(&part.hash(), part.name()), &[][..]);
                let hash = part.hash();
                if placing.insert(hash) {
                    let at = self.body_at(&hash)?;
                    if self.packed_damaged(&hash, at, part.size())? {
                        new_bodies.push(part);
                        damaged_bodies.extend(at);
                    }
                }
            }
        }
        if !written.is_empty() {
            if !new_bodies.is_empty() {
                let bytes: Vec<&[u8]> = new_bodies.iter().map(|part| part.bytes()).collect();
                let (placed, touched) = packs.append(&bytes)?;
                for (part, at) in new_bodies.iter().zip(placed) {
                    entries.insert(record::body_key(&part.hash()), record::encode_body_at(at));
                }
                for (id, state) in touched {
                    entries.insert(record::pack_key(id), record::encode_pack_state(state));
                }
                for at in damaged_bodies {
                    if let Some((id, state)) = packs.mark_dead(at) {
                        entries.insert(record::pack_key(id), record::encode_pack_state(state));
                    }
                }
            }
            self.commit(entries)?;
            self.damage.rewritten(written);
            self.release(&mut packs, &released)?;
        }
        Ok(steps.into_iter().map(Step::into_outcome).collect())
    }

    fn lookup(&self, name: &PartName) -> Result<Option<PartInfo>, StoreError> {
        Ok(self.entry(name)?.map(|(info, _, _)| info))
    }

    fn get(&self, name: &PartName) -> Result<Vec<u8>, StoreError> {
        let (info, location, value) = self
            .entry(name)?
            .ok_or_else(|| StoreError::NotFound(name.clone()))?;
        let bytes = match location {
            Location::Inline => Some(value[record::HEADER_LEN..].to_vec()),
            Location::Packed => self.read_packed(&info.hash, info.size)?,
        };
        let bytes = bytes.ok_or_else(|| StoreError::BodyMissing {
            name: name.clone(),
            hash: info.hash,
        })?;
        self.damage.verify_read(&info, bytes)
    }

    fn known_damaged(&self, held: &PartInfo) -> Result<bool, StoreError> {
        match self.entry(&held.name)? {
            // An inline body came with its entry: hashing it costs less than the lookup.
            Some((info, Location::Inline, value)) if info.hash == held.hash => {
                Ok(PartHash::of(&value[record::HEADER_LEN..]) != held.hash)
            }
            _ => self.packed_damaged(&held.hash, self.body_at(&held.hash)?, held.size),
        }
    }

    fn list(&self) -> Result<Vec<PartInfo>, StoreError> {
        self.db
            .scan_prefix(record::NAME_PREFIX)
            .map(|entry| {
                let (key, value) = entry.index()?;
                record::decode(&key, &value).map(|(info, _)| info)
            })
            .collect()
    }

    fn list_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<PartInfo>, StoreError> {
        self.db
            .range(record::names_after(after))
            .take(limit)
            .map(|entry| {
                let (key, value) = entry.index()?;
                record::decode(&key, &value).map(|(info, _)| info)
            })
            .collect()
    }

    fn remove(&self, name: &PartName) -> Result<bool, StoreError> {
        let mut packs = self.lock();
        let Some((info, location, _)) = self.entry(name)? else {
            return Ok(false);
        };
        let mut entries = sled::Batch::default();
        entries.remove(record::name_key(name));
        if location == Location::Packed {
            entries.remove(record::ref_key(&info.hash, name));
        }
        self.commit(entries)?;
        if location == Location::Packed {
            self.release(&mut packs, &[info.hash])?;
        }
        Ok(true)
    }

    fn sync(&self) -> Result<(), StoreError> {
        let _packs = self.lock();
        self.durable_flush()
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.list().map(|parts| StoreStats {
            parts: parts.len() as u64,
            bytes: parts.iter().map(|part| part.size).sum(),
        })
    }
}
