//! Part bodies kept as files named by their hash, shared by the fs and sled backends.
//!
//! Content addressing stores identical bytes once however many names point at them, and makes
//! a body's file name its own checksum. A new body is written under its final name (nothing
//! points at it yet); a damaged one is replaced through the store's `tmp/` directory. The
//! caller syncs the directory once per batch, before it
//! records any entry that points at the new bodies.

use std::collections::HashSet;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use crate::durable::{self, NewFile, Placement};
use crate::error::IoContext;
use crate::{PartHash, StoreError};

pub(crate) struct BodyFiles {
    dir: PathBuf,
    temp_dir: PathBuf,
}

impl BodyFiles {
    /// Uses `dir` for bodies and `temp_dir` (same filesystem) for writes in progress.
    pub(crate) fn open(dir: PathBuf, temp_dir: PathBuf) -> Result<Self, StoreError> {
        durable::ensure_dir(&dir)?;
        durable::ensure_dir(&temp_dir)?;
        Ok(Self { dir, temp_dir })
    }

    fn path(&self, hash: &PartHash) -> PathBuf {
        self.dir.join(hash.to_hex())
    }

    /// Writes the bodies not already there intact (the same content under another name). A new
    /// body is written in place, since nothing refers to it until the caller's index commit; a
    /// damaged copy is replaced through a temp file, so storing the bytes again repairs it.
    /// Durable once [`BodyFiles::sync`] returns.
    pub(crate) fn write_all(&self, bodies: &[(PartHash, &[u8])]) -> Result<(), StoreError> {
        let mut files = Vec::with_capacity(bodies.len());
        let mut seen = HashSet::with_capacity(bodies.len());
        for &(hash, bytes) in bodies {
            if !seen.insert(hash) {
                continue;
            }
            let placement = match self.read(&hash, bytes.len() as u64)? {
                None => Placement::Fresh,
                Some(existing) if PartHash::of(&existing) == hash => continue,
                Some(_) => Placement::Replace,
            };
            files.push(NewFile {
                dest: self.path(&hash),
                bytes,
                placement,
            });
        }
        durable::write_files(&self.temp_dir, &files)
    }

    /// Makes the bodies written since the last sync durable.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        durable::sync_dir(&self.dir)
    }

    /// A body's length on disk, or `None` when its file is gone: a check that reads no bytes.
    pub(crate) fn len(&self, hash: &PartHash) -> Result<Option<u64>, StoreError> {
        let path = self.path(hash);
        match std::fs::metadata(&path) {
            Ok(metadata) => Ok(Some(metadata.len())),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(StoreError::Io {
                context: format!("reading the size of {}", path.display()),
                source: err,
            }),
        }
    }

    /// Reads a body, or `None` when its file is gone. Reads at most `size + 1` bytes, so a body
    /// that grew on disk cannot make us allocate more than the index promised.
    pub(crate) fn read(&self, hash: &PartHash, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(hash);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => {
                return Err(StoreError::Io {
                    context: format!("opening {}", path.display()),
                    source: err,
                });
            }
        };
        let capacity = usize::try_from(size).unwrap_or(usize::MAX);
        let mut bytes = Vec::with_capacity(capacity);
        file.take(size.saturating_add(1))
            .read_to_end(&mut bytes)
            .context(|| format!("reading {}", path.display()))?;
        Ok(Some(bytes))
    }

    /// Deletes a body no entry points at any more. Already gone is fine.
    pub(crate) fn remove(&self, hash: &PartHash) -> Result<(), StoreError> {
        let path = self.path(hash);
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != ErrorKind::NotFound => Err(StoreError::Io {
                context: format!("removing {}", path.display()),
                source: err,
            }),
            _ => Ok(()),
        }
    }

    /// Startup cleanup: deletes every temp file and every body `is_referenced` does not
    /// claim, then syncs. Returns how many files went.
    pub(crate) fn sweep(
        &self,
        mut is_referenced: impl FnMut(&PartHash) -> Result<bool, StoreError>,
    ) -> Result<usize, StoreError> {
        let mut removed = remove_all_in(&self.temp_dir)?;
        for path in files_in(&self.dir)? {
            let hash = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.parse::<PartHash>().ok());
            let keep = match hash {
                Some(hash) => is_referenced(&hash)?,
                None => false,
            };
            if !keep {
                tracing::info!(path = %path.display(), "removing a body no entry points at");
                std::fs::remove_file(&path).context(|| format!("removing {}", path.display()))?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.sync()?;
            durable::sync_dir(&self.temp_dir)?;
        }
        Ok(removed)
    }
}

fn files_in(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = std::fs::read_dir(dir).context(|| format!("listing {}", dir.display()))?;
    entries
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()
        .context(|| format!("listing {}", dir.display()))
}

/// Empties a directory that only ever holds unfinished writes.
fn remove_all_in(dir: &Path) -> Result<usize, StoreError> {
    let paths = files_in(dir)?;
    for path in &paths {
        tracing::info!(path = %path.display(), "removing an unfinished write");
        std::fs::remove_file(path).context(|| format!("removing {}", path.display()))?;
    }
    Ok(paths.len())
}
