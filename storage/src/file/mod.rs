//! Files as parts: a file larger than one chunk is stored as chunks named by their hashes plus
//! a manifest under the file's name. This module cuts readers into chunks, imports local
//! files, and reads a stored file back, checked whole. The rule that a store never holds a
//! manifest without every chunk it lists is the store's own (see [`crate::PartStore`]).

pub(crate) mod assemble;
pub(crate) mod chunker;
mod error;
mod gc;
mod import;
pub(crate) mod manifest;
mod remove;

pub use assemble::{check_file, read_range};
pub use chunker::{Chunker, LocalFile, display_name, open_file};
pub use error::FileError;
pub use gc::{Garbage, collect_garbage};
pub use import::{FileOutcome, FileSource, ImportOptions, import_files};
pub use manifest::{
    DEFAULT_CHUNK_SIZE, MAX_CHUNK_REPEATS, MAX_MANIFEST_CHUNKS, Manifest, ManifestError,
};
pub use remove::{Removal, remove_parts};
