//! The sled index over the packs: looking things up, and applying records to it.
//!
//! Records are applied one at a time, each ending with its `n`, `b` or `t` key, and the
//! packs' indexed lengths are written after them; so a crash part-way leaves records that the
//! next open applies again, and applying a record that is already applied changes nothing.
//!
//! sled's background flusher is off: the store flushes the index itself (`INDEX_LAG` in
//! `sled_store`), and without that thread a closed index lets go of its files at once, so the
//! same process can open the store again straight away.
//!
//! A put that carries a shared body places it only if the store holds none (the same bytes
//! under another name are kept once); a body record always becomes the place of its bytes:
//! it is written to move a body (compaction) or to replace a damaged one (repair).

use std::collections::BTreeSet;
use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::durable;
use crate::error::{IndexResult, IoContext};
use crate::pack_record::Op;
use crate::pack_scan::Scanned;
use crate::packs::{BodyAt, Packs};
use crate::sled_record::{self as key, Entry};
use crate::{INLINE_MAX, PartHash, PartInfo, PartName, StoreError};

/// sled's page cache; it only grows this large with use.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

pub(crate) struct Index {
    db: sled::Db,
    log: File,
    dir: PathBuf,
    /// Whether any `t` key may be held: false spares every put of a store that has never
    /// removed a part a lookup that cannot find anything. Set by [`Index::put_tomb`], the
    /// only way one is written, and never cleared while open.
    may_hold_tombs: AtomicBool,
}

/// Packs whose state changed since it was last written to the index.
pub(crate) type Touched = BTreeSet<u64>;

/// How long an open waits for sled to let go of the index's file lock. sled releases it from
/// its IO threads a moment after the last handle of a store that held it is dropped; other
/// processes are already kept out by the store directory's own lock.
const LOCK_RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Opens sled at `path`, waiting out a lock this process's dropped store still holds; a
/// panic of sled is caught and returned.
fn open_sled(path: &Path) -> std::thread::Result<sled::Result<sled::Db>> {
    let deadline = Instant::now() + LOCK_RELEASE_WAIT;
    loop {
        let opened = std::panic::catch_unwind(AssertUnwindSafe(|| {
            sled::Config::new()
                .path(path)
                .cache_capacity(CACHE_BYTES)
                .flush_every_ms(None)
                .open()
        }));
        match &opened {
            Ok(Err(sled::Error::Io(err)))
                if err.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => return opened,
        }
    }
}

/// Whether a part of `size` keeps its body with its own record rather than sharing it.
pub(crate) fn shares_body(size: u64) -> bool {
    size > INLINE_MAX
}

impl Index {
    /// Opens the sled database at `path`; a database sled cannot read (or panics on) is
    /// [`StoreError::IndexDamaged`]; a failure of the disk or the system (a full disk, no
    /// permission) is an I/O error.
    ///
    /// # Errors
    /// [`StoreError::IndexDamaged`], [`StoreError::Io`].
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        durable::ensure_dir(path)?;
        remove_unfinished_snapshots(path)?;
        let db = match open_sled(path) {
            Ok(Ok(db)) => db,
            // The environment (a full disk, permissions), not the index's contents.
            Ok(Err(sled::Error::Io(err))) => {
                return Err(StoreError::Io {
                    context: format!("opening the index at {}", path.display()),
                    source: err,
                });
            }
            Ok(Err(err)) => return Err(damaged(path, err.to_string())),
            Err(_) => return Err(damaged(path, "the index engine panicked".to_owned())),
        };
        let log_path = path.join("db");
        let log = File::open(&log_path).context(|| format!("opening {}", log_path.display()))?;
        let may_hold_tombs = db.scan_prefix(key::TOMB_PREFIX).next().is_some();
        Ok(Self {
            db,
            log,
            dir: path.to_owned(),
            may_hold_tombs: AtomicBool::new(may_hold_tombs),
        })
    }

    /// The format the index was written in, `None` for an index never initialised.
    ///
    /// # Errors
    /// When the index cannot be read.
    pub(crate) fn format(&self) -> Result<Option<u64>, StoreError> {
        self.number(key::FORMAT_KEY)
    }

    /// Marks a fresh index as holding the current format.
    ///
    /// # Errors
    /// When the index cannot be written.
    pub(crate) fn initialise(&self) -> Result<(), StoreError> {
        self.db
            .insert(key::FORMAT_KEY, key::FORMAT.to_le_bytes().to_vec())
            .index()?;
        self.durable_flush()
    }

    pub(crate) fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.number(key::SEQ_KEY)?.unwrap_or(0))
    }

    fn number(&self, name: &[u8]) -> Result<Option<u64>, StoreError> {
        self.db
            .get(name)
            .index()?
            .map(|value| key::decode_u64(name, &value))
            .transpose()
    }

    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Flushes sled, fsyncs its log and its directory: sled's own flush only calls
    /// `sync_file_range`, which neither persists the file's size nor flushes the drive's
    /// cache, and sled never fsyncs the directory it creates its files and snapshots in.
    ///
    /// # Errors
    /// When the flush or a sync fails.
    pub(crate) fn durable_flush(&self) -> Result<(), StoreError> {
        self.db.flush().index()?;
        self.log
            .sync_data()
            .context(|| "syncing the sled log".to_owned())?;
        durable::sync_dir(&self.dir)
    }

    pub(crate) fn entry(&self, name: &PartName) -> Result<Option<Entry>, StoreError> {
        let name_key = key::name_key(name);
        self.db
            .get(&name_key)
            .index()?
            .map(|value| key::decode_entry(&name_key, &value))
            .transpose()
    }

    pub(crate) fn body_at(&self, hash: &PartHash) -> Result<Option<BodyAt>, StoreError> {
        self.at(&key::body_key(hash))
    }

    pub(crate) fn tomb(&self, name: &PartName) -> Result<Option<BodyAt>, StoreError> {
        if !self.may_hold_tombs.load(Ordering::Relaxed) {
            return Ok(None);
        }
        self.at(&key::tomb_key(name))
    }

    /// Records that `name` was removed by the record at `at`.
    ///
    /// # Errors
    /// When the index cannot be written.
    pub(crate) fn put_tomb(&self, name: &PartName, at: BodyAt) -> Result<(), StoreError> {
        self.may_hold_tombs.store(true, Ordering::Relaxed);
        self.db
            .insert(key::tomb_key(name), key::encode_body_at(at))
            .index()?;
        Ok(())
    }

    fn at(&self, at_key: &[u8]) -> Result<Option<BodyAt>, StoreError> {
        self.db
            .get(at_key)
            .index()?
            .map(|value| key::decode_at(at_key, &value))
            .transpose()
    }

    pub(crate) fn is_referenced(&self, hash: &PartHash) -> Result<bool, StoreError> {
        Ok(self
            .db
            .scan_prefix(key::ref_prefix(hash))
            .next()
            .transpose()
            .index()?
            .is_some())
    }

    /// Applies one record found at `scanned.at`. Returns the shared bodies the change may
    /// have left unused, for [`Index::release`].
    ///
    /// # Errors
    /// When the index cannot be read or written.
    pub(crate) fn apply(
        &self,
        packs: &mut Packs,
        scanned: &Scanned,
        touched: &mut Touched,
    ) -> Result<Vec<PartHash>, StoreError> {
        let record = &scanned.record;
        let mut released = Vec::new();
        match (record.op, &record.name) {
            (Op::Put { kind, carries_body }, Some(name)) => {
                let entry = Entry {
                    info: PartInfo {
                        name: name.clone(),
                        size: record.size,
                        hash: record.hash,
                        kind,
                    },
                    shared: shares_body(record.size),
                    record: scanned.head(),
                };
                let old = self.entry(name)?;
                if old.as_ref().is_some_and(|old| old.record == entry.record) {
                    return Ok(released);
                }
                if let Some(old) = old {
                    released.extend(self.forget(packs, &old, touched)?);
                }
                if let Some(tomb) = self.tomb(name)? {
                    self.db.remove(key::tomb_key(name)).index()?;
                    dead(packs, tomb, touched);
                }
                if entry.shared {
                    self.db
                        .insert(key::ref_key(&record.hash, name), &[][..])
                        .index()?;
                    if carries_body {
                        self.place_body(packs, &record.hash, scanned.body(), touched)?;
                    }
                }
                self.db
                    .insert(key::name_key(name), key::encode_entry(&entry))
                    .index()?;
            }
            (Op::Remove, Some(name)) => {
                if self.tomb(name)? == Some(scanned.at) {
                    return Ok(released);
                }
                if let Some(old) = self.entry(name)? {
                    released.extend(self.forget(packs, &old, touched)?);
                    self.db.remove(key::name_key(name)).index()?;
                }
                if let Some(tomb) = self.tomb(name)? {
                    dead(packs, tomb, touched);
                }
                self.put_tomb(name, scanned.at)?;
            }
            (Op::Body, None) => {
                let held = self.body_at(&record.hash)?;
                if held != Some(scanned.body()) {
                    self.db
                        .insert(
                            key::body_key(&record.hash),
                            key::encode_body_at(scanned.body()),
                        )
                        .index()?;
                    if let Some(held) = held {
                        dead(packs, held, touched);
                    }
                }
            }
            _ => unreachable!("decoding pairs puts and removes with a name, bodies without"),
        }
        Ok(released)
    }

    /// Records a shared body's place unless the store already holds it elsewhere, in which
    /// case these bytes are dead.
    fn place_body(
        &self,
        packs: &mut Packs,
        hash: &PartHash,
        body: BodyAt,
        touched: &mut Touched,
    ) -> Result<(), StoreError> {
        match self.body_at(hash)? {
            None => {
                self.db
                    .insert(key::body_key(hash), key::encode_body_at(body))
                    .index()?;
            }
            Some(held) if held != body => dead(packs, body, touched),
            Some(_) => {}
        }
        Ok(())
    }

    /// Counts an entry's record (and its own body) as dead and drops its reference to a
    /// shared body; returns that body's hash, now perhaps unused.
    fn forget(
        &self,
        packs: &mut Packs,
        old: &Entry,
        touched: &mut Touched,
    ) -> Result<Option<PartHash>, StoreError> {
        dead(packs, old.record, touched);
        if old.shared {
            self.db
                .remove(key::ref_key(&old.info.hash, &old.info.name))
                .index()?;
            Ok(Some(old.info.hash))
        } else {
            dead(packs, old.own_body(), touched);
            Ok(None)
        }
    }

    /// Forgets the shared bodies among `hashes` that no entry refers to any more, counting
    /// their bytes as dead.
    ///
    /// # Errors
    /// When the index cannot be read or written.
    pub(crate) fn release(
        &self,
        packs: &mut Packs,
        hashes: &[PartHash],
        touched: &mut Touched,
    ) -> Result<(), StoreError> {
        for hash in hashes {
            if self.is_referenced(hash)? {
                continue;
            }
            if let Some(at) = self.body_at(hash)? {
                self.db.remove(key::body_key(hash)).index()?;
                dead(packs, at, touched);
            }
        }
        Ok(())
    }

    /// Points the index at a record's copy, `new`, if it still points at the original at
    /// `old` (compaction: the copy of a put, body or removal that was live when copied).
    ///
    /// # Errors
    /// When the index cannot be read or written.
    pub(crate) fn moved(&self, old: BodyAt, new: &Scanned) -> Result<(), StoreError> {
        let record = &new.record;
        match (record.op, &record.name) {
            (Op::Put { .. }, Some(name)) => {
                if let Some(mut entry) = self.entry(name)?
                    && entry.record == old
                {
                    entry.record = new.head();
                    self.db
                        .insert(key::name_key(name), key::encode_entry(&entry))
                        .index()?;
                }
            }
            (Op::Body, None) => {
                if self.body_at(&record.hash)? == Some(old) {
                    self.db
                        .insert(key::body_key(&record.hash), key::encode_body_at(new.body()))
                        .index()?;
                }
            }
            (Op::Remove, Some(name)) => {
                if self.tomb(name)? == Some(old) {
                    self.put_tomb(name, new.at)?;
                }
            }
            _ => unreachable!("decoding pairs puts and removes with a name, bodies without"),
        }
        Ok(())
    }

    /// Writes the state of every touched pack and the next sequence number.
    ///
    /// # Errors
    /// When the index cannot be written.
    pub(crate) fn write_states(
        &self,
        packs: &Packs,
        touched: &Touched,
        next_seq: u64,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for &id in touched {
            match packs.state(id) {
                Some(state) => batch.insert(key::pack_key(id), key::encode_pack_state(state)),
                None => batch.remove(key::pack_key(id)),
            }
        }
        batch.insert(key::SEQ_KEY, next_seq.to_le_bytes().to_vec());
        self.db.apply_batch(batch).index()
    }
}

/// Counts `at` as dead bytes of its pack.
pub(crate) fn dead(packs: &mut Packs, at: BodyAt, touched: &mut Touched) {
    if packs.mark_dead(at.pack, at.len).is_some() {
        touched.insert(at.pack);
    }
}

/// Deletes the snapshots sled began and never finished (`snap.*.generating`: a crash or a full
/// disk stopped the write before its rename). sled reads the newest snapshot file it finds,
/// unfinished or not, and refuses to open on an empty or partial one; without it, sled opens
/// from the snapshot before, which it keeps until a new one is in place.
fn remove_unfinished_snapshots(path: &Path) -> Result<(), StoreError> {
    let mut removed = false;
    for entry in std::fs::read_dir(path).context(|| format!("listing {}", path.display()))? {
        let entry = entry.context(|| format!("listing {}", path.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::info!(file = %name, "removing an unfinished index snapshot");
            std::fs::remove_file(entry.path())
                .context(|| format!("removing {}", entry.path().display()))?;
            removed = true;
        }
    }
    if removed {
        durable::sync_dir(path)?;
    }
    Ok(())
}

fn damaged(path: &Path, reason: String) -> StoreError {
    StoreError::IndexDamaged {
        path: path.to_owned(),
        reason,
    }
}
