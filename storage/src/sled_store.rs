//! `SledStore`, the default backend: pack files are the log of record, and a sled index says
//! where everything is.
//!
//! sled does well with many small values and poorly with large ones (measured on these
//! machines: 1 MiB values ran at about a sixth of plain files and took 2.87x their size on
//! disk), and any sled log item over about 128 KiB goes to a blob file sled never fsyncs. So
//! every put and remove is appended to a pack as a self-describing record (`pack_record`),
//! bodies included, and the sled index holds only small entries: its largest node stays far
//! below sled's blob threshold, and nothing acknowledged depends on a file nobody fsyncs.
//!
//! Durability: a batch appends its records and fdatasyncs the pack; that is the commit, and
//! the parts are acknowledged then. The index is updated next and flushed by sled in the
//! background; records past a pack's indexed length are applied again when the store opens
//! (`sled_index` makes that harmless). A damaged or lost index is rebuilt from the packs by
//! [`crate::recover`].

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::batch::{self, Step};
use crate::damage::DamageLog;
use crate::error::IndexResult;
use crate::pack_readers::PackReaders;
use crate::pack_record::{Op, Record};
use crate::pack_scan::{PackScan, Scanned};
use crate::packs::{self, Appending, BodyAt, Compaction, Packs, Tail};
use crate::reserve;
use crate::sled_compact;
use crate::sled_index::{Index, Touched, shares_body};
use crate::sled_record::{self as key, Entry};
use crate::store::BatchOutcome;
use crate::store_dir::StoreDir;
use crate::{
    OnConflict, PartHash, PartInfo, PartName, PartStore, StoreError, StoreStats, VerifiedPart,
};

/// Bodies up to this size follow their own record and are kept once per name; larger ones
/// are shared by every name with the same bytes.
pub const INLINE_MAX: u64 = 16 * 1024;

pub struct SledStore {
    /// Holds the store's lock while open.
    dir: StoreDir,
    index: Index,
    packs_dir: PathBuf,
    readers: Arc<PackReaders>,
    damage: DamageLog,
    /// The packs and the next sequence number, behind the one lock every writer takes.
    writer: Mutex<Writer>,
}

pub(crate) struct Writer {
    pub(crate) packs: Packs,
    pub(crate) next_seq: u64,
    /// When the index was last made durable: what a crash would make the next open replay.
    flushed_at: Instant,
}

/// How far the index may lag behind the packs before a commit makes it durable: bounds what
/// an open after a crash replays (sled's own background flusher is off, see `sled_index`).
const INDEX_LAG: Duration = Duration::from_secs(1);

impl SledStore {
    pub(crate) fn open(dir: StoreDir) -> Result<Self, StoreError> {
        let index_path = dir.root().join("index");
        let packs_dir = dir.root().join("packs");
        let packs_exist = packs_dir.is_dir() && !packs::pack_files(&packs_dir)?.is_empty();
        if packs_exist && !index_path.exists() {
            return Err(StoreError::IndexDamaged {
                path: index_path,
                reason: "it is missing, but the packs hold records".to_owned(),
            });
        }
        let index = match Index::open(&index_path) {
            Err(err) if reserve::is_disk_full(&err) && reserve::release(dir.root()) => {
                Index::open(&index_path)?
            }
            opened => opened?,
        };
        let format = index.format()?;
        if format.is_some_and(|format| format != key::FORMAT) {
            return Err(StoreError::IndexDamaged {
                path: index_path,
                reason: format!("it is in an unknown format {format:?}"),
            });
        }
        if format.is_none() {
            if packs_exist {
                return Err(StoreError::IndexDamaged {
                    path: index_path,
                    reason: "it is empty, but the packs hold records".to_owned(),
                });
            }
            index.initialise()?;
        }
        let states = read_states(&index)?;
        if let Some(gone) = states
            .keys()
            .find(|&&id| !packs::pack_path(&packs_dir, id).exists())
        {
            return Err(StoreError::IndexDamaged {
                path: index_path,
                reason: format!("it points into pack {gone:016x}, which is gone"),
            });
        }
        let (packs, tails) = Packs::open(packs_dir.clone(), states)?;
        let next_seq = index.next_seq()?;
        let store = Self {
            damage: DamageLog::open(dir.damage_log()),
            dir,
            index,
            packs_dir,
            readers: packs.readers(),
            writer: Mutex::new(Writer {
                packs,
                next_seq,
                flushed_at: Instant::now(),
            }),
        };
        store.replay(&tails)?;
        store.sweep()?;
        reserve::keep(store.dir.root());
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies the records the index had not caught up with when the store was last closed;
    /// an append the crash cut short is cut off. A crash tears only the last append, so a
    /// record found after the damage (past a torn record's extent, never inside its body)
    /// means damage, not a crash: the store refuses to guess and asks for a recovery.
    fn replay(&self, tails: &[Tail]) -> Result<(), StoreError> {
        let mut writer = self.lock();
        let writer = &mut *writer;
        let mut touched = Touched::new();
        let mut released = Vec::new();
        let mut replayed = 0;
        for tail in tails {
            let mut scan = PackScan::open(&self.packs_dir, tail.pack, tail.from, tail.to)?;
            // Where the damage starts, and whether it is the last append cut short.
            let mut cut = None;
            loop {
                match scan.next_record()? {
                    Some(scanned) if intact(&scan, &scanned)? => {
                        writer.next_seq = writer.next_seq.max(scanned.record.seq + 1);
                        released.extend(self.index.apply(
                            &mut writer.packs,
                            &scanned,
                            &mut touched,
                        )?);
                        writer.packs.indexed(tail.pack, scan.pos());
                        touched.insert(tail.pack);
                        replayed += 1;
                    }
                    // A whole header over a body that does not hash: the scan is past it.
                    Some(scanned) => {
                        cut = Some((scanned.at.offset, scan.at_end()));
                        break;
                    }
                    None if scan.at_end() => break,
                    None => {
                        cut = Some((scan.pos(), scan.at_torn_record()?));
                        break;
                    }
                }
            }
            if let Some((torn_at, last)) = cut {
                if !last && scan.record_follows()? {
                    return Err(StoreError::PackDamaged {
                        pack: tail.pack,
                        offset: torn_at,
                    });
                }
                writer.packs.cut_back(tail.pack, torn_at)?;
                writer.packs.indexed(tail.pack, torn_at);
                touched.insert(tail.pack);
            }
        }
        if touched.is_empty() {
            return Ok(());
        }
        tracing::info!(
            records = replayed,
            "applied records the index had not caught up with"
        );
        self.index
            .release(&mut writer.packs, &released, &mut touched)?;
        self.index
            .write_states(&writer.packs, &touched, writer.next_seq)?;
        self.index.durable_flush()
    }

    /// Releases shared bodies no entry refers to (a crash between an entry's removal and its
    /// body's release leaves one) and compacts what that frees.
    fn sweep(&self) -> Result<(), StoreError> {
        let mut unreferenced = Vec::new();
        for item in self.index.db().scan_prefix(key::BODY_PREFIX) {
            let (body_key, value) = item.index()?;
            let (hash, _) = key::decode_body_at(&body_key, &value)?;
            if !self.index.is_referenced(&hash)? {
                unreferenced.push(hash);
            }
        }
        let mut writer = self.lock();
        if !unreferenced.is_empty() {
            let mut touched = Touched::new();
            self.index
                .release(&mut writer.packs, &unreferenced, &mut touched)?;
            self.index
                .write_states(&writer.packs, &touched, writer.next_seq)?;
        }
        self.compact_quietly(&mut writer);
        Ok(())
    }

    /// Compacts, logging a failure instead of returning it: what was committed before stays
    /// committed, and the store stays usable with the space not yet won back.
    fn compact_quietly(&self, writer: &mut Writer) {
        if let Err(err) = sled_compact::compact(&self.index, writer, Compaction::HalfDead) {
            tracing::warn!(%err, "compaction failed; the space will be won back later");
        }
    }

    /// Appends `records` (the commit), then applies them to the index.
    fn commit(&self, writer: &mut Writer, records: Vec<Appending<'_>>) -> Result<(), StoreError> {
        let placed = writer.packs.append(&records)?;
        let mut touched = Touched::new();
        let mut released = Vec::new();
        for (appending, at) in records.into_iter().zip(placed) {
            let scanned = Scanned {
                record: appending.record,
                at,
            };
            released.extend(
                self.index
                    .apply(&mut writer.packs, &scanned, &mut touched)?,
            );
            writer.packs.indexed(at.pack, at.offset + at.len);
            touched.insert(at.pack);
        }
        self.index
            .release(&mut writer.packs, &released, &mut touched)?;
        self.index
            .write_states(&writer.packs, &touched, writer.next_seq)?;
        if writer.flushed_at.elapsed() >= INDEX_LAG {
            self.index.durable_flush()?;
            writer.flushed_at = Instant::now();
        }
        Ok(())
    }

    fn next_seq(next: &mut u64) -> u64 {
        *next += 1;
        *next - 1
    }

    /// Where an entry's body is now.
    fn body_of(&self, entry: &Entry) -> Result<Option<BodyAt>, StoreError> {
        if entry.shared {
            self.index.body_at(&entry.info.hash)
        } else {
            Ok(Some(entry.own_body()))
        }
    }

    /// Whether the body of `hash`, of `size` bytes, recorded at `at`, cannot be read back as
    /// far as can be told without reading it: not recorded, of another length, past its
    /// pack's end, or found damaged by a read.
    fn body_damaged(
        &self,
        hash: &PartHash,
        at: Option<BodyAt>,
        size: u64,
    ) -> Result<bool, StoreError> {
        let Some(at) = at else { return Ok(true) };
        Ok(at.len != size || self.damage.is_damaged(hash) || !packs::holds(&self.packs_dir, at)?)
    }

    /// The records that write `part` as `step` says, given the bodies this batch already
    /// places. A body of `INLINE_MAX` or less follows its put; a shared one is carried by the
    /// put when the store has none, and by a body record (which takes its place) when the
    /// store's copy is damaged.
    fn records_for<'a>(
        &self,
        part: &'a VerifiedPart,
        step: &Step,
        placing: &mut HashSet<PartHash>,
        seq: &mut impl FnMut() -> u64,
    ) -> Result<Vec<Appending<'a>>, StoreError> {
        let (kind, write_entry) = match step {
            Step::Write { .. } => (part.kind(), true),
            Step::Repair => match self.index.entry(part.name())? {
                Some(held) => (held.info.kind, !held.shared),
                None => return Ok(Vec::new()),
            },
            Step::Done(_) => return Ok(Vec::new()),
        };
        let info = (part.hash(), part.size(), kind);
        if !shares_body(part.size()) {
            let record = Record::put(part.name().clone(), info, true).with_seq(seq());
            return Ok(vec![Appending {
                record,
                body: part.bytes(),
            }]);
        }
        let hash = part.hash();
        let held = self.index.body_at(&hash)?;
        let needs_body = placing.insert(hash) && self.body_damaged(&hash, held, part.size())?;
        let mut records = Vec::new();
        if needs_body && held.is_some() {
            records.push(Appending {
                record: Record::body(hash, part.size()),
                body: part.bytes(),
            });
        }
        if write_entry {
            let carries = needs_body && held.is_none();
            let record = Record::put(part.name().clone(), info, carries).with_seq(seq());
            let body = if carries { part.bytes() } else { &[] };
            records.push(Appending { record, body });
        }
        Ok(records)
    }

    /// Reads an entry's body of the size its entry records (a location of another length is
    /// a damaged index, read as a missing body, never a size to allocate). A compaction may
    /// move the body between finding and reading it, so a miss is retried once at its new
    /// place.
    fn read_body(&self, name: &PartName) -> Result<(PartInfo, Option<Vec<u8>>), StoreError> {
        let mut last = None;
        loop {
            let entry = self
                .index
                .entry(name)?
                .ok_or_else(|| StoreError::NotFound(name.clone()))?;
            let at = self.body_of(&entry)?;
            let usable = at.filter(|at| at.len == entry.info.size && last != Some(*at));
            let Some(at) = usable else {
                return Ok((entry.info, None));
            };
            if let Some(bytes) = self.readers.read(at)? {
                return Ok((entry.info, Some(bytes)));
            }
            last = Some(at);
        }
    }
}

/// Whether a replayed record is whole: a put of an unshared body carries it, and a body
/// hashes to what its header says.
fn intact(scan: &PackScan, scanned: &Scanned) -> Result<bool, StoreError> {
    let record = &scanned.record;
    match record.op {
        Op::Put {
            carries_body: false,
            ..
        } if !shares_body(record.size) => Ok(false),
        _ if record.body_len() == 0 => Ok(true),
        _ => scan.body_matches(scanned.body(), &record.hash),
    }
}

fn read_states(
    index: &Index,
) -> Result<std::collections::BTreeMap<u64, packs::PackState>, StoreError> {
    index
        .db()
        .scan_prefix(key::PACK_PREFIX)
        .map(|item| {
            let (pack_key, value) = item.index()?;
            key::decode_pack_state(&pack_key, &value)
        })
        .collect()
}

impl PartStore for SledStore {
    fn put_batch(
        &self,
        parts: &[VerifiedPart],
        on_conflict: OnConflict,
    ) -> Result<BatchOutcome, StoreError> {
        let mut writer = self.lock();
        let steps = batch::plan(
            parts,
            on_conflict,
            |name| Ok(self.index.entry(name)?.map(|entry| entry.info.hash)),
            |held| self.known_damaged(held),
        )?;
        let mut records = Vec::new();
        let mut placing = HashSet::new();
        let mut written = Vec::new();
        let mut seq = || Self::next_seq(&mut writer.next_seq);
        for (part, step) in parts.iter().zip(&steps) {
            let more = self.records_for(part, step, &mut placing, &mut seq)?;
            if !more.is_empty() {
                written.push(part.hash());
            }
            records.extend(more);
        }
        if !records.is_empty() {
            self.commit(&mut writer, records)?;
            self.damage.rewritten(written);
            self.compact_quietly(&mut writer);
        }
        Ok(steps.into_iter().map(Step::into_outcome).collect())
    }

    fn lookup(&self, name: &PartName) -> Result<Option<PartInfo>, StoreError> {
        Ok(self.index.entry(name)?.map(|entry| entry.info))
    }

    fn get_part(&self, name: &PartName) -> Result<VerifiedPart, StoreError> {
        let (info, bytes) = self.read_body(name)?;
        let bytes = bytes.ok_or_else(|| StoreError::BodyMissing {
            name: name.clone(),
            hash: info.hash,
        })?;
        self.damage.verify_read(&info, bytes)
    }

    fn known_damaged(&self, held: &PartInfo) -> Result<bool, StoreError> {
        match self.index.entry(&held.name)? {
            // A small body is cheap to read back whole, from the disk, not from a block.
            Some(entry) if entry.info.hash == held.hash && !entry.shared => {
                let bytes = self.readers.read_direct(entry.own_body())?;
                Ok(bytes.is_none_or(|bytes| PartHash::of(&bytes) != held.hash))
            }
            _ => self.body_damaged(&held.hash, self.index.body_at(&held.hash)?, held.size),
        }
    }

    fn list(&self) -> Result<Vec<PartInfo>, StoreError> {
        self.index
            .db()
            .scan_prefix(key::NAME_PREFIX)
            .map(|item| {
                let (name_key, value) = item.index()?;
                key::decode_entry(&name_key, &value).map(|entry| entry.info)
            })
            .collect()
    }

    fn list_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<PartInfo>, StoreError> {
        self.index
            .db()
            .range(key::names_after(after))
            .take(limit)
            .map(|item| {
                let (name_key, value) = item.index()?;
                key::decode_entry(&name_key, &value).map(|entry| entry.info)
            })
            .collect()
    }

    fn remove(&self, name: &PartName) -> Result<bool, StoreError> {
        let mut writer = self.lock();
        if self.index.entry(name)?.is_none() {
            return Ok(false);
        }
        let record = Record::remove(name.clone()).with_seq(Self::next_seq(&mut writer.next_seq));
        let removal = || {
            vec![Appending {
                record: record.clone(),
                body: &[],
            }]
        };
        match self.commit(&mut writer, removal()) {
            // Removing is how a full store makes room: it may use the space kept for opening.
            Err(err) if reserve::is_disk_full(&err) && reserve::release(self.dir.root()) => {
                self.commit(&mut writer, removal())?;
            }
            committed => committed?,
        }
        self.compact_quietly(&mut writer);
        Ok(true)
    }

    fn sync(&self) -> Result<(), StoreError> {
        let _writer = self.lock();
        self.index.durable_flush()
    }

    fn compact(&self) -> Result<u64, StoreError> {
        let mut writer = self.lock();
        let dead = writer.packs.dead();
        sled_compact::compact(&self.index, &mut writer, Compaction::AnyDead)?;
        Ok(dead.saturating_sub(writer.packs.dead()))
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.list().map(|parts| StoreStats {
            parts: parts.len() as u64,
            bytes: parts.iter().map(|part| part.size).sum(),
        })
    }
}

impl Drop for SledStore {
    /// Leaves an index that needs no replay on the next open, when the disk allows.
    fn drop(&mut self) {
        if let Err(err) = self.index.durable_flush() {
            tracing::warn!(%err, "the index could not be flushed; the next open replays the packs");
        }
    }
}

#[cfg(test)]
mod tests;
