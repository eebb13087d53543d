//! `FileError`: why one local file could not be read or stored; the others go on.

use std::io;
use std::path::PathBuf;

use crate::{CHUNK_PREFIX, ManifestError, NameError, PartName, StoreError};

/// Why a file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path} has no file name")]
    NoFileName { path: PathBuf },

    #[error(transparent)]
    Name(#[from] NameError),

    #[error("names of the form {CHUNK_PREFIX}<hash> are reserved for the chunks of files")]
    ReservedName,

    #[error("{path} is {what}, not a regular file")]
    NotRegular { path: PathBuf, what: &'static str },

    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot read it: {0}")]
    Read(#[source] io::Error),

    #[error("the file changed size while it was read")]
    ChangedSize,

    #[error(transparent)]
    Manifest(#[from] ManifestError),

    #[error("chunk {name}: {source}")]
    Chunk {
        name: PartName,
        #[source]
        source: StoreError,
    },

    #[error(transparent)]
    Store(#[from] StoreError),
}
