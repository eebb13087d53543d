//! Pack files kept open for reads. Opening the pack for every read cost a fifth of `send`'s
//! CPU when it pushed 100,000 parts of 1 KiB from a store (perf: `File::open` 20% of the
//! samples), and a server's gets paid the same.
//!
//! A handle never outlives its pack's file: [`Packs::delete_file`](crate::packs::Packs)
//! retires the handle before it deletes the file, and a retired pack is never opened into
//! the cache again, so a compacted pack's space goes back to the disk as soon as the reads
//! already under way end. Pack ids are never reused while a store is open.
//!
//! Small reads that follow each other are served from a block read ahead ([`ReadAhead`]),
//! which holds only bytes the index has applied ([`PackReaders::settle`]).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::StoreError;
use crate::packs::{self, BodyAt};
use crate::read_ahead::{Plan, ReadAhead};

/// Packs held open at most; past it the cache starts again, so a store of many packs keeps
/// few descriptors.
const OPEN_PACKS: usize = 32;

#[derive(Debug)]
pub(crate) struct PackReaders {
    dir: PathBuf,
    open: Mutex<Open>,
}

/// The open handles, and what reads ahead may rely on.
#[derive(Debug, Default)]
struct Open {
    files: HashMap<u64, Arc<OpenPack>>,
    retired: HashSet<u64>,
    /// Per pack, how far its bytes are settled: applied by the index, so never to change.
    settled: HashMap<u64, u64>,
    ahead: ReadAhead,
}

/// A pack's file, and its path for the errors of reads.
#[derive(Debug)]
struct OpenPack {
    file: File,
    path: PathBuf,
}

impl PackReaders {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            open: Mutex::new(Open::default()),
        }
    }

    /// Reads the bytes at `at`: `None` when the pack is gone or shorter than `at` says. Bytes
    /// the index points at never change, so no writer's lock is needed.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub(crate) fn read(&self, at: BodyAt) -> Result<Option<Vec<u8>>, StoreError> {
        let plan = {
            let mut open = self.lock();
            let settled = open.settled.get(&at.pack).copied().unwrap_or(0);
            open.ahead.plan(at, settled)
        };
        let block = match plan {
            Plan::Cached(bytes) => return Ok(Some(bytes)),
            Plan::Block(block) => block,
            Plan::Direct => return self.read_direct(at),
        };
        let Some(pack) = self.open(at.pack)? else {
            return Ok(None);
        };
        // Shorter than its settled length, or failing past the bytes asked for (damage
        // from outside): read just those, which says what they are.
        let Ok(Some(bytes)) = packs::read_at(&pack.file, &pack.path, block) else {
            return packs::read_at(&pack.file, &pack.path, at);
        };
        let wanted = bytes[..usize::try_from(at.len).expect("a small read")].to_vec();
        let mut open = self.lock();
        if !open.retired.contains(&at.pack) {
            open.ahead.keep(block, bytes);
        }
        Ok(Some(wanted))
    }

    /// Reads the bytes at `at` from the file, never from a block: for a check of what the
    /// disk holds now.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub(crate) fn read_direct(&self, at: BodyAt) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(pack) = self.open(at.pack)? else {
            return Ok(None);
        };
        packs::read_at(&pack.file, &pack.path, at)
    }

    /// Records that pack `id`'s bytes up to `len` are applied by the index: they never
    /// change again while the store is open, so a block may hold them.
    pub(crate) fn settle(&self, id: u64, len: u64) {
        let mut open = self.lock();
        let settled = open.settled.entry(id).or_default();
        *settled = (*settled).max(len);
    }

    /// Drops the handle of pack `id`, whose file is about to be deleted, and keeps it from
    /// being cached again.
    pub(crate) fn retire(&self, id: u64) {
        let mut open = self.lock();
        open.files.remove(&id);
        open.settled.remove(&id);
        open.ahead.forget(id);
        open.retired.insert(id);
    }

    fn open(&self, id: u64) -> Result<Option<Arc<OpenPack>>, StoreError> {
        if let Some(pack) = self.lock().files.get(&id) {
            return Ok(Some(Arc::clone(pack)));
        }
        let path = packs::pack_path(&self.dir, id);
        let pack = match File::open(&path) {
            Ok(file) => Arc::new(OpenPack { file, path }),
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => {
                return Err(StoreError::Io {
                    context: format!("opening {}", path.display()),
                    source: err,
                });
            }
        };
        let mut open = self.lock();
        if !open.retired.contains(&id) {
            if open.files.len() >= OPEN_PACKS {
                open.files.clear();
            }
            open.files.insert(id, Arc::clone(&pack));
        }
        Ok(Some(pack))
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests;
