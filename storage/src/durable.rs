//! Durable file writes: temp file in a chosen directory, fsync, rename into place.
//!
//! A reader sees either no file or the whole file, never a prefix. A rename is durable once its
//! directory is fsynced, which callers do once per batch with [`sync_dir`] rather than once per
//! file.

use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::StoreError;
use crate::error::IoContext;

/// Prefix of every temp file this crate creates, so a stray one is recognisable.
pub(crate) const TEMP_PREFIX: &str = ".p2p-store-";

/// What to do when the destination already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    Replace,
    Keep,
}

/// Writes `bytes` to `dest` through a temp file in `temp_dir` (same filesystem as `dest`),
/// fsyncing the data before the rename. The file gets the usual `0o666 & !umask` mode rather
/// than a temp file's private one.
///
/// # Errors
/// [`StoreError::ExportExists`] when `dest` exists and `existing` is [`Existing::Keep`];
/// [`StoreError::Io`] for any I/O failure, after which `dest` is untouched.
pub(crate) fn write_file(
    temp_dir: &Path,
    dest: &Path,
    bytes: &[u8],
    existing: Existing,
) -> Result<(), StoreError> {
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(temp_dir)
        .context(|| format!("creating a temp file in {}", temp_dir.display()))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_data())
        .context(|| format!("writing {}", temp.path().display()))?;
    let persisted = match existing {
        Existing::Replace => temp.persist(dest),
        Existing::Keep => temp.persist_noclobber(dest),
    };
    persisted.map(drop).map_err(|err| {
        if err.error.kind() == std::io::ErrorKind::AlreadyExists {
            StoreError::ExportExists {
                path: dest.to_owned(),
            }
        } else {
            StoreError::Io {
                context: format!("renaming into {}", dest.display()),
                source: err.error,
            }
        }
    })
}

/// Makes the renames and removals done in `dir` durable.
///
/// # Errors
/// [`StoreError::Io`] when the directory cannot be opened or synced.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .context(|| format!("syncing directory {}", dir.display()))
}

/// Creates `dir` (and its parents) if missing.
///
/// # Errors
/// [`StoreError::Io`].
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).context(|| format!("creating directory {}", dir.display()))
}
