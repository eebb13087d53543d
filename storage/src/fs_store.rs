//! `FsStore`: a plain directory a person can inspect.
//!
//! `names/<name>` holds one line, `<blake3 hex> <size> <kind: 0 plain, 1 manifest>`, and `bodies/<blake3 hex>` holds the
//! bytes, so `b3sum bodies/*` checks a store by hand. The index lives in memory, rebuilt from
//! `names/` on open.
//!
//! Durability: a batch writes and fsyncs every new body, fsyncs `bodies/`, then writes every
//! name file (temp file, fsync, rename) and fsyncs `names/`. A name is therefore never durable
//! before the body it points at; a crash in between leaves at most an unreferenced or partial
//! body that no name points at, which the sweep on the next open deletes with any temp file.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::batch::{self, Step};
use crate::body_files::BodyFiles;
use crate::damage::DamageLog;
use crate::durable::{self, NewFile, Placement};
use crate::error::IoContext;
use crate::name_index::NameIndex;
use crate::store::BatchOutcome;
use crate::store_dir::StoreDir;
use crate::{
    OnConflict, PartHash, PartInfo, PartKind, PartName, PartStore, StoreError, StoreStats,
    VerifiedPart, check_size,
};

pub struct FsStore {
    dir: StoreDir,
    names: PathBuf,
    bodies: BodyFiles,
    damage: DamageLog,
    index: RwLock<NameIndex>,
    writer: Mutex<()>,
}

impl FsStore {
    pub(crate) fn open(dir: StoreDir) -> Result<Self, StoreError> {
        let names = dir.root().join("names");
        durable::ensure_dir(&names)?;
        let bodies = BodyFiles::open(dir.bodies(), dir.temp())?;
        let index = load_index(&names)?;
        bodies.sweep(|hash| Ok(index.is_referenced(hash)))?;
        Ok(Self {
            damage: DamageLog::open(dir.damage_log()),
            dir,
            names,
            bodies,
            index: RwLock::new(index),
            writer: Mutex::new(()),
        })
    }

    fn index(&self) -> RwLockReadGuard<'_, NameIndex> {
        self.index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn index_mut(&self) -> RwLockWriteGuard<'_, NameIndex> {
        self.index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn name_path(&self, name: &PartName) -> PathBuf {
        self.names.join(name.as_str())
    }
}

impl PartStore for FsStore {
    fn put_batch(
        &self,
        parts: &[VerifiedPart],
        on_conflict: OnConflict,
    ) -> Result<BatchOutcome, StoreError> {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let steps = batch::plan(
            parts,
            on_conflict,
            |name| Ok(self.index().hash_of(name)),
            |held| self.known_damaged(held),
        )?;
        // A repair writes the body only: the name already points at it.
        let bodies: Vec<(PartHash, &[u8])> = parts
            .iter()
            .zip(&steps)
            .filter(|(_, step)| matches!(step, Step::Write { .. } | Step::Repair))
            .map(|(part, _)| (part.hash(), part.bytes()))
            .collect();
        if !bodies.is_empty() {
            self.bodies.write_all(&bodies)?;
            self.bodies.sync()?;
            self.damage.rewritten(bodies.iter().map(|(hash, _)| *hash));
        }
        let writes: Vec<&VerifiedPart> = parts
            .iter()
            .zip(&steps)
            .filter(|(_, step)| matches!(step, Step::Write { .. }))
            .map(|(part, _)| part)
            .collect();
        if !writes.is_empty() {
            let records: Vec<(PathBuf, String)> = writes
                .iter()
                .map(|part| {
                    let record =
                        format!("{} {} {}\n", part.hash(), part.size(), part.kind().code());
                    (self.name_path(part.name()), record)
                })
                .collect();
            let records: Vec<NewFile<'_>> = records
                .iter()
                .map(|(dest, record)| NewFile {
                    dest: dest.clone(),
                    bytes: record.as_bytes(),
                    placement: Placement::Replace,
                })
                .collect();
            durable::write_files(&self.dir.temp(), &records)?;
            durable::sync_dir(&self.names)?;
            let orphans: Vec<PartHash> = {
                let mut index = self.index_mut();
                writes
                    .iter()
                    .filter_map(|part| index.insert(part.info()))
                    .collect()
            };
            for orphan in orphans {
                if !self.index().is_referenced(&orphan) {
                    self.bodies.remove(&orphan)?;
                }
            }
        }
        Ok(steps.into_iter().map(Step::into_outcome).collect())
    }

    fn lookup(&self, name: &PartName) -> Result<Option<PartInfo>, StoreError> {
        Ok(self.index().get(name))
    }

    fn get_part(&self, name: &PartName) -> Result<VerifiedPart, StoreError> {
        let info = self
            .lookup(name)?
            .ok_or_else(|| StoreError::NotFound(name.clone()))?;
        let bytes =
            self.bodies
                .read(&info.hash, info.size)?
                .ok_or_else(|| StoreError::BodyMissing {
                    name: name.clone(),
                    hash: info.hash,
                })?;
        self.damage.verify_read(&info, bytes)
    }

    fn known_damaged(&self, held: &PartInfo) -> Result<bool, StoreError> {
        Ok(self.bodies.len(&held.hash)? != Some(held.size) || self.damage.is_damaged(&held.hash))
    }

    fn list(&self) -> Result<Vec<PartInfo>, StoreError> {
        Ok(self.index().list())
    }

    fn list_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<PartInfo>, StoreError> {
        Ok(self.index().page(after, limit))
    }

    fn remove(&self, name: &PartName) -> Result<bool, StoreError> {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.index().get(name).is_none() {
            return Ok(false);
        }
        let path = self.name_path(name);
        std::fs::remove_file(&path).context(|| format!("removing {}", path.display()))?;
        durable::sync_dir(&self.names)?;
        let removed = self.index_mut().remove(name);
        if let Some((info, true)) = removed {
            self.bodies.remove(&info.hash)?;
        }
        Ok(true)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.bodies.sync()?;
        durable::sync_dir(&self.names)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(self.index().stats())
    }
}

/// Rebuilds the index from `names/`. A file there that is not an entry (an editor's backup,
/// a `.DS_Store`, a damaged record) is left where it is and named in a warning: the parts it
/// does not describe are not lost because of it.
fn load_index(names: &Path) -> Result<NameIndex, StoreError> {
    let mut index = NameIndex::default();
    let entries = std::fs::read_dir(names).context(|| format!("listing {}", names.display()))?;
    for entry in entries {
        let path = entry
            .context(|| format!("listing {}", names.display()))?
            .path();
        match read_entry(&path) {
            Ok(info) => {
                index.insert(info);
            }
            Err(reason) => {
                tracing::warn!(path = %path.display(), reason, "ignoring a file that is not an entry");
            }
        }
    }
    Ok(index)
}

/// The entry `path` records, or why it is not one.
fn read_entry(path: &Path) -> Result<PartInfo, &'static str> {
    let file_name = path.file_name().unwrap_or_default();
    let name = PartName::from_bytes(file_name.as_encoded_bytes())
        .map_err(|_| "the file name is not a valid part name")?;
    let record = std::fs::read_to_string(path).map_err(|_| "it cannot be read as text")?;
    let mut fields = record.trim_end().split(' ');
    let (Some(hash), Some(size), Some(kind), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err("expected `<hash> <size> <kind>`");
    };
    let kind = kind
        .parse()
        .ok()
        .and_then(PartKind::from_code)
        .ok_or("unknown part kind")?;
    let hash: PartHash = hash.parse().map_err(|_| "the hash is not 64 hex digits")?;
    let size: u64 = size.parse().map_err(|_| "the size is not a number")?;
    check_size(name.as_str(), size).map_err(|_| "the size is past the part limit")?;
    Ok(PartInfo {
        name,
        size,
        hash,
        kind,
    })
}
