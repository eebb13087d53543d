//! The directory a store lives in: its marker file, its lock, and the paths inside it.
//!
//! ```text
//! <db>/p2p-store.meta   which backend, which format version (written once, at creation)
//! <db>/LOCK             flock-ed while a process has the store open; holds that process's pid
//! <db>/damaged          hashes of bodies a read found damaged, until written again (`damage.rs`)
//! <db>/tmp/             fs backend: writes in progress; emptied on every open
//! <db>/bodies/          fs backend: part bodies as files named by their blake3 hash
//! <db>/index/           sled backend: the sled database
//! <db>/packs/           sled backend: the log of record, every put and removal as a record
//! <db>/reserve          sled backend: space kept so the store opens on a full disk
//! <db>/names/           fs backend: one small file per part name
//! ```

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::StoreError;
use crate::durable::{self, Existing};
use crate::error::IoContext;

/// The on-disk backends a store can be created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Pack files holding every record, with a sled index over them.
    Sled,
    /// A plain directory of files a person can inspect.
    Fs,
}

impl BackendKind {
    /// Every backend, in the order `--help` lists them; the first is the default.
    pub const ALL: [Self; 2] = [Self::Sled, Self::Fs];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Sled => "sled",
            Self::Fs => "fs",
        }
    }
}

impl Default for BackendKind {
    fn default() -> Self {
        Self::ALL[0]
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name given is not a backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?}; choose sled or fs")]
pub struct UnknownBackend(String);

impl FromStr for BackendKind {
    type Err = UnknownBackend;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| UnknownBackend(name.to_owned()))
    }
}

pub(crate) const MARKER: &str = "p2p-store.meta";

/// Whether a store has been made at `path` (it holds a store's marker file), without opening
/// or locking it: for files kept beside a store, such as a peer's identity, that must never be
/// written into a directory that is not one.
pub fn is_store(path: &Path) -> bool {
    path.join(MARKER).is_file()
}
const LOCK: &str = "LOCK";

impl BackendKind {
    /// The on-disk format this build writes and reads. Sled stores moved to format 3 when the
    /// packs became the log of record; a format-2 sled store kept small bodies in its index.
    const fn format_version(self) -> u32 {
        match self {
            Self::Sled => 3,
            Self::Fs => 2,
        }
    }
}

/// An open, locked store directory. The lock is held until this is dropped.
#[derive(Debug)]
pub(crate) struct StoreDir {
    root: PathBuf,
    kind: BackendKind,
    _lock: File,
}

impl StoreDir {
    /// Opens the store at `root`, creating it with `requested` (or the default backend) when
    /// `root` is missing or an empty directory.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another process has it open, [`StoreError::BackendMismatch`]
    /// when it was created with another backend than `requested`, [`StoreError::NotAStore`] for
    /// a file or a non-empty directory that is not a store.
    pub(crate) fn open(root: &Path, requested: Option<BackendKind>) -> Result<Self, StoreError> {
        if root.exists() && !root.is_dir() {
            return Err(StoreError::NotAStore {
                path: root.to_owned(),
                marker: MARKER,
            });
        }
        durable::ensure_dir(root)?;
        if read_marker(root)?.is_none() {
            ensure_empty(root)?;
        }
        let lock = lock(root)?;
        let kind = match read_marker(root)? {
            Some(found) => match requested {
                Some(requested) if requested != found => {
                    return Err(StoreError::BackendMismatch {
                        path: root.to_owned(),
                        found,
                        requested,
                    });
                }
                _ => found,
            },
            None => create(root, requested.unwrap_or_default())?,
        };
        Ok(Self {
            root: root.to_owned(),
            kind,
            _lock: lock,
        })
    }

    pub(crate) fn kind(&self) -> BackendKind {
        self.kind
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn temp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn bodies(&self) -> PathBuf {
        self.root.join("bodies")
    }

    pub(crate) fn damage_log(&self) -> PathBuf {
        self.root.join("damaged")
    }
}

/// Takes the exclusive lock and records our pid in it, so a second opener can say who has it.
fn lock(root: &Path) -> Result<File, StoreError> {
    let path = root.join(LOCK);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let holder = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(StoreError::Locked {
                path: root.to_owned(),
                holder,
            });
        }
        Err(TryLockError::Error(err)) => {
            return Err(StoreError::Io {
                context: format!("locking {}", path.display()),
                source: err,
            });
        }
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .context(|| format!("writing {}", path.display()))?;
    Ok(file)
}

/// The check line of a marker: a flipped byte anywhere in it is then told from a marker of
/// another version, which must never be rewritten.
fn marker_check(fields: &str) -> String {
    blake3::hash(fields.as_bytes()).to_hex()[..16].to_owned()
}

/// Whether a marker is as written: its check matches, or (written before markers had one)
/// it names a format and a backend.
fn is_intact_marker(text: &str) -> bool {
    match text.find("check ") {
        Some(at) => text[at..].trim_end() == format!("check {}", marker_check(&text[..at])),
        None => matches!(parse_marker(text), (Some(_), Some(_))),
    }
}

fn parse_marker(text: &str) -> (Option<u32>, Option<BackendKind>) {
    let mut format = None;
    let mut backend = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("format", value)) => format = value.parse::<u32>().ok(),
            Some(("backend", value)) => backend = value.parse::<BackendKind>().ok(),
            _ => {}
        }
    }
    (format, backend)
}

fn read_marker(root: &Path) -> Result<Option<BackendKind>, StoreError> {
    let path = root.join(MARKER);
    let text = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(StoreError::Io {
                context: format!("reading {}", path.display()),
                source: err,
            });
        }
    };
    let unsupported = || StoreError::UnsupportedFormat {
        path: root.to_owned(),
        marker: MARKER,
        found: text.clone(),
    };
    match parse_marker(&text) {
        (Some(format), Some(kind))
            if format == kind.format_version() && is_intact_marker(&text) =>
        {
            Ok(Some(kind))
        }
        _ => Err(unsupported()),
    }
}

/// Refuses a directory holding anything but our lock file, checked before the lock file is
/// created, so a mistyped `--db` never puts a file into someone's data.
fn ensure_empty(root: &Path) -> Result<(), StoreError> {
    let entries = std::fs::read_dir(root).context(|| format!("listing {}", root.display()))?;
    for entry in entries {
        let entry = entry.context(|| format!("listing {}", root.display()))?;
        if entry.file_name() != LOCK {
            return Err(StoreError::NotAStore {
                path: root.to_owned(),
                marker: MARKER,
            });
        }
    }
    Ok(())
}

/// Initialises an empty directory, checked again now that we hold the lock.
fn create(root: &Path, kind: BackendKind) -> Result<BackendKind, StoreError> {
    ensure_empty(root)?;
    write_marker(root, kind, Existing::Keep)?;
    tracing::info!(path = %root.display(), backend = %kind, "created a new store");
    Ok(kind)
}

fn write_marker(root: &Path, kind: BackendKind, existing: Existing) -> Result<(), StoreError> {
    let format = kind.format_version();
    let fields = format!("p2p-store store\nformat {format}\nbackend {kind}\n");
    let marker = format!("{fields}check {}\n", marker_check(&fields));
    durable::write_file(root, &root.join(MARKER), marker.as_bytes(), existing)?;
    durable::sync_dir(root)
}

/// Rewrites a damaged marker file of the store at `root`, under the store's lock, telling the
/// backend by the directories only it makes; returns the backend when it could tell.
///
/// # Errors
/// [`StoreError::Locked`] while another process has the store open, [`StoreError::Io`].
pub(crate) fn repair_marker_locked(root: &Path) -> Result<Option<BackendKind>, StoreError> {
    if !root.join(MARKER).is_file() {
        return Ok(None);
    }
    let _lock = lock(root)?;
    repair_marker(root)
}

fn repair_marker(root: &Path) -> Result<Option<BackendKind>, StoreError> {
    match read_marker(root) {
        Err(StoreError::UnsupportedFormat { found, .. }) if !is_intact_marker(&found) => {}
        _ => return Ok(None),
    }
    let kind = if root.join("packs").is_dir() || root.join("index").is_dir() {
        BackendKind::Sled
    } else if root.join("names").is_dir() || root.join("bodies").is_dir() {
        BackendKind::Fs
    } else {
        return Ok(None);
    };
    tracing::warn!(path = %root.display(), backend = %kind, "rewriting a damaged marker file");
    write_marker(root, kind, Existing::Replace)?;
    Ok(Some(kind))
}

/// Bytes the store at `root` takes on disk: the blocks its files use, which is what a full
/// disk runs out of.
///
/// # Errors
/// [`StoreError::Io`] when a directory cannot be listed.
pub fn disk_usage(root: &Path) -> Result<u64, StoreError> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let entries = std::fs::read_dir(root).context(|| format!("listing {}", root.display()))?;
    for entry in entries {
        let entry = entry.context(|| format!("listing {}", root.display()))?;
        let metadata = entry
            .metadata()
            .context(|| format!("reading {}", entry.path().display()))?;
        total += if metadata.is_dir() {
            disk_usage(&entry.path())?
        } else {
            metadata.blocks() * 512
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_round_trip() {
        for kind in BackendKind::ALL {
            assert_eq!(kind.name().parse::<BackendKind>(), Ok(kind));
        }
        assert!("mem".parse::<BackendKind>().is_err());
        assert_eq!(BackendKind::default(), BackendKind::Sled);
    }

    #[test]
    fn second_open_reports_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("db");
        let first = StoreDir::open(&root, Some(BackendKind::Fs)).unwrap();
        match StoreDir::open(&root, None) {
            Err(StoreError::Locked { holder, .. }) => {
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        assert_eq!(StoreDir::open(&root, None).unwrap().kind(), BackendKind::Fs);
    }

    #[test]
    fn refuses_a_backend_mismatch_and_foreign_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("db");
        drop(StoreDir::open(&root, Some(BackendKind::Sled)).unwrap());
        assert!(matches!(
            StoreDir::open(&root, Some(BackendKind::Fs)),
            Err(StoreError::BackendMismatch { .. })
        ));
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        assert!(matches!(
            StoreDir::open(dir.path(), None),
            Err(StoreError::NotAStore { .. })
        ));
        assert!(matches!(
            StoreDir::open(&dir.path().join("notes.txt"), None),
            Err(StoreError::NotAStore { .. })
        ));
    }
}
