//! `SledStore`, the default backend: a sled index with small bodies inline and larger bodies
//! as hash-named files beside it.
//!
//! sled does well with many small values and poorly with large ones (measured on these
//! machines: 1 MiB values ran at about a sixth of plain files and took 2.87x their size on disk,
//! and sled does not fsync the blob files it keeps them in). So bodies up to [`INLINE_MAX`]
//! live inside their index entry (one insert per small part) and larger ones in `bodies/`,
//! shared by every name with the same content. `sled_record` has the key layout.
//!
//! Durability: a batch writes and fsyncs its new body files and fsyncs `bodies/` before
//! one atomic sled `Batch` records the entries, then flushes sled and fsyncs its log file.
//! sled's own flush only calls `sync_file_range`, which neither persists the file's size nor
//! flushes the drive's cache; the extra `fdatasync` does both. A body whose entry never made it
//! is deleted by the sweep on the next open.

use std::fs::File;
use std::sync::Mutex;

use crate::batch::{self, Step};
use crate::body_files::BodyFiles;
use crate::error::IoContext;
use crate::sled_record::{self as record, Location};
use crate::store::{BatchOutcome, verify_read};
use crate::store_dir::StoreDir;
use crate::{
    OnConflict, PartHash, PartInfo, PartName, PartStore, StoreError, StoreStats, VerifiedPart,
};

/// Bodies up to this size are stored inline in the sled index.
pub const INLINE_MAX: u64 = 16 * 1024;

/// sled's page cache; it only grows this large with use.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

pub struct SledStore {
    _dir: StoreDir,
    db: sled::Db,
    log: File,
    bodies: BodyFiles,
    writer: Mutex<()>,
}

impl SledStore {
    pub(crate) fn open(dir: StoreDir) -> Result<Self, StoreError> {
        let index = dir.root().join("index");
        let db = sled::Config::new()
            .path(&index)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let log_path = index.join("db");
        let log = File::open(&log_path).context(|| format!("opening {}", log_path.display()))?;
        let bodies = BodyFiles::open(dir.bodies(), dir.temp())?;
        let store = Self {
            _dir: dir,
            db,
            log,
            bodies,
            writer: Mutex::new(()),
        };
        store.sweep()?;
        Ok(store)
    }

    /// Removes temp files, and body files no entry refers to.
    fn sweep(&self) -> Result<(), StoreError> {
        self.bodies.sweep(|hash| self.is_referenced(hash))?;
        Ok(())
    }

    fn is_referenced(&self, hash: &PartHash) -> Result<bool, StoreError> {
        Ok(self
            .db
            .scan_prefix(record::ref_prefix(hash))
            .next()
            .transpose()?
            .is_some())
    }

    fn durable_flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.log
            .sync_data()
            .context(|| "syncing the sled log".to_owned())
    }

    /// The entry for `name`, and its raw value (which holds an inline body).
    fn entry(
        &self,
        name: &PartName,
    ) -> Result<Option<(PartInfo, Location, sled::IVec)>, StoreError> {
        let key = record::name_key(name);
        let Some(value) = self.db.get(&key)? else {
            return Ok(None);
        };
        let (info, location) = record::decode(&key, &value)?;
        Ok(Some((info, location, value)))
    }

    /// Deletes the body file of `hash` if no entry refers to it any more.
    fn release(&self, hash: &PartHash) -> Result<(), StoreError> {
        if !self.is_referenced(hash)? {
            self.bodies.remove(hash)?;
        }
        Ok(())
    }
}

impl PartStore for SledStore {
    fn put_batch(
        &self,
        parts: &[VerifiedPart],
        on_conflict: OnConflict,
    ) -> Result<BatchOutcome, StoreError> {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let steps = batch::plan(parts, on_conflict, |name| {
            Ok(self.entry(name)?.map(|(info, _, _)| info.hash))
        })?;
        let mut entries = sled::Batch::default();
        let mut released = Vec::new();
        let mut files = Vec::new();
        let mut writes = 0;
        for (part, step) in parts.iter().zip(&steps) {
            let Step::Write { previous } = step else {
                continue;
            };
            writes += 1;
            if let Some(previous) = previous {
                entries.remove(record::ref_key(previous, part.name()));
                released.push(*previous);
            }
            let key = record::name_key(part.name());
            if part.size() <= INLINE_MAX {
                entries.insert(key, record::encode_inline(&part.hash(), part.bytes()));
            } else {
                files.push((part.hash(), part.bytes()));
                entries.insert(key, record::encode_file(&part.hash(), part.size()));
                entries.insert(record::ref_key(&part.hash(), part.name()), &[][..]);
            }
        }
        if writes > 0 {
            if !files.is_empty() {
                self.bodies.write_all(&files)?;
                self.bodies.sync()?;
            }
            self.db.apply_batch(entries)?;
            self.durable_flush()?;
            for hash in &released {
                self.release(hash)?;
            }
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
            Location::File => self.bodies.read(&info.hash, info.size)?,
        };
        let bytes = bytes.ok_or_else(|| StoreError::BodyMissing {
            name: name.clone(),
            hash: info.hash,
        })?;
        verify_read(&info, bytes)
    }

    fn list(&self) -> Result<Vec<PartInfo>, StoreError> {
        self.db
            .scan_prefix(record::NAME_PREFIX)
            .map(|entry| {
                let (key, value) = entry?;
                record::decode(&key, &value).map(|(info, _)| info)
            })
            .collect()
    }

    fn remove(&self, name: &PartName) -> Result<bool, StoreError> {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some((info, location, _)) = self.entry(name)? else {
            return Ok(false);
        };
        let mut entries = sled::Batch::default();
        entries.remove(record::name_key(name));
        if location == Location::File {
            entries.remove(record::ref_key(&info.hash, name));
        }
        self.db.apply_batch(entries)?;
        self.durable_flush()?;
        if location == Location::File {
            self.release(&info.hash)?;
        }
        Ok(true)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.bodies.sync()?;
        self.durable_flush()
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.list().map(|parts| StoreStats {
            parts: parts.len() as u64,
            bytes: parts.iter().map(|part| part.size).sum(),
        })
    }
}
