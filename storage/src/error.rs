//! `StoreError`: everything a store operation can fail with, as variants a caller can act on.

use std::io;
use std::path::PathBuf;

use crate::{BackendKind, NameError, PartHash, PartName};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no part named {0:?}")]
    NotFound(PartName),

    #[error("part {name:?} already holds {existing}, refusing different content {offered}")]
    Conflict {
        name: PartName,
        existing: PartHash,
        offered: PartHash,
    },

    #[error("bytes offered for {name:?} hash to {actual}, not the expected {expected}")]
    HashMismatch {
        name: PartName,
        expected: PartHash,
        actual: PartHash,
    },

    #[error(
        "part {name:?} is corrupt on disk: expected {expected}, read bytes hashing to {actual}"
    )]
    Corrupt {
        name: PartName,
        expected: PartHash,
        actual: PartHash,
    },

    #[error("part {name:?} is corrupt on disk: its body {hash} is missing")]
    BodyMissing { name: PartName, hash: PartHash },

    #[error("file {name:?} has an unusable manifest: {reason}")]
    BadManifest {
        name: PartName,
        reason: crate::ManifestError,
    },

    #[error("file {name:?}: chunk {index} ({hash}) is unusable: {source}")]
    ChunkUnavailable {
        name: PartName,
        index: usize,
        hash: PartHash,
        source: Box<StoreError>,
    },

    #[error("{name:?} is a chunk's name, but the bytes hash to {actual}")]
    ChunkNameMismatch { name: PartName, actual: PartHash },

    #[error("part {name:?} is {size} bytes, the limit is {max}")]
    TooLarge { name: String, size: u64, max: u64 },

    #[error("{path} already exists")]
    ExportExists { path: PathBuf },

    #[error("an export suffix may not contain '/' or NUL: {0:?}")]
    BadExportSuffix(String),

    #[error("invalid part name {raw:?}: {reason}")]
    InvalidName { raw: String, reason: NameError },

    #[error("the index entry {key:?} is unreadable: {reason}")]
    BadIndexEntry { key: String, reason: &'static str },

    #[error(
        "the store at {path} is in use by {holder}",
        holder = holder.map_or_else(|| "another process".to_owned(), |pid| format!("process {pid}"))
    )]
    Locked { path: PathBuf, holder: Option<u32> },

    #[error("the store at {path} uses the {found} backend, not {requested}")]
    BackendMismatch {
        path: PathBuf,
        found: BackendKind,
        requested: BackendKind,
    },

    #[error("there is no store at {path}")]
    NoStore { path: PathBuf },

    #[error("{path} exists and is not a p2p-store store (no {marker} file)")]
    NotAStore { path: PathBuf, marker: &'static str },

    #[error("the store at {path} has an unreadable or unsupported {marker} file: {found:?}")]
    UnsupportedFormat {
        path: PathBuf,
        marker: &'static str,
        found: String,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("the index at {path} is damaged: {reason}")]
    IndexDamaged { path: PathBuf, reason: String },

    #[error(
        "pack {pack:016x} is damaged at offset {offset}: records follow bytes that are not one"
    )]
    PackDamaged { pack: u64, offset: u64 },

    #[error("the index failed: {0}")]
    Index(IndexError),
}

/// A failure of the embedded index, kept opaque so the index engine can change without
/// changing this type.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct IndexError(sled::Error);

/// Turns an index failure into a [`StoreError`]; crate-private, so no index type shows in the
/// public API.
pub(crate) trait IndexResult<T> {
    fn index(self) -> Result<T, StoreError>;
}

impl<T> IndexResult<T> for Result<T, sled::Error> {
    fn index(self) -> Result<T, StoreError> {
        self.map_err(|err| StoreError::Index(IndexError(err)))
    }
}

impl StoreError {
    /// True when the stored bytes of a part are damaged or gone; other parts are unaffected.
    pub fn is_corruption(&self) -> bool {
        match self {
            Self::Corrupt { .. } | Self::BodyMissing { .. } | Self::BadManifest { .. } => true,
            Self::ChunkUnavailable { source, .. } => {
                source.is_corruption() || matches!(**source, Self::NotFound(_))
            }
            _ => false,
        }
    }
}

/// Adds what was being done to an I/O error, built only when there is an error.
pub(crate) trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Io {
            context: what(),
            source,
        })
    }
}
