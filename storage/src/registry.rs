//! Opening a store by backend name: the one place that maps a `BackendKind` to its type.

use std::path::Path;

use crate::fs_store::FsStore;
use crate::sled_store::SledStore;
use crate::store_dir::StoreDir;
use crate::{BackendKind, PartStore, StoreError};

/// Opens the store at `path` only if one is there: what a command that only reads or removes
/// wants, so a mistyped path is an error, never a new empty store.
///
/// # Errors
/// [`StoreError::NoStore`] when `path` is missing or empty, and the errors of [`open_store`]
/// (a directory holding something else is [`StoreError::NotAStore`]).
pub fn open_existing_store(
    path: &Path,
    requested: Option<BackendKind>,
) -> Result<Box<dyn PartStore>, StoreError> {
    let dir = open_existing_dir(path, requested)?;
    open_dir(dir)
}

/// The store directory at `path`, opened and locked only if a store is there.
///
/// # Errors
/// As [`open_existing_store`].
pub(crate) fn open_existing_dir(
    path: &Path,
    requested: Option<BackendKind>,
) -> Result<StoreDir, StoreError> {
    let occupied = std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_some());
    if !occupied {
        return Err(StoreError::NoStore {
            path: path.to_owned(),
        });
    }
    StoreDir::open(path, requested)
}

/// Opens the store at `path`, creating it with `requested` (default: sled) if it does not
/// exist. An existing store keeps the backend it was created with; asking for another one is
/// an error, never a second empty store beside the first.
///
/// Opening sweeps away temp files and bodies no entry points at, left by a crash.
///
/// # Errors
/// [`StoreError::Locked`] while another process has the store open, and the errors of
/// creating or reading the store directory.
pub fn open_store(
    path: &Path,
    requested: Option<BackendKind>,
) -> Result<Box<dyn PartStore>, StoreError> {
    open_dir(StoreDir::open(path, requested)?)
}

fn open_dir(dir: StoreDir) -> Result<Box<dyn PartStore>, StoreError> {
    Ok(match dir.kind() {
        BackendKind::Sled => Box::new(SledStore::open(dir)?),
        BackendKind::Fs => Box::new(FsStore::open(dir)?),
    })
}
