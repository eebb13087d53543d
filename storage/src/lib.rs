//! Verified part storage for p2p-store.
//!
//! A part is a named run of bytes with its blake3 hash. Every backend implements
//! [`PartStore`]: it stores only [`VerifiedPart`]s (bytes already checked against the hash the
//! sender promised), re-hashes bytes whenever it reads them back, and reports a write only once
//! it is durable. A body found damaged or gone is remembered, and the next put of the bytes it
//! should hold writes it again ([`PutOutcome::Repaired`]); [`verify`] names what a repair must
//! fetch. Backends: [`SledStore`] (the default), [`FsStore`] (a plain directory) and
//! [`MemStore`] (tests and benchmarks); [`open_store`] picks an on-disk one by [`BackendKind`].
//!
//! Files larger than one chunk are stored as chunks named by their hashes plus a manifest
//! ([`import_files`], [`Chunker`]); every backend refuses a manifest until it holds every chunk
//! the manifest lists, so no caller can leave a file that cannot be assembled. [`export`]
//! writes parts and files back out, each checked whole before it is renamed into place.
//!
//! Threading: stores are `Send + Sync`; writers are serialised inside each backend, reads run
//! concurrently. Every call may block on disk, so an event loop must call them from a worker.
//!
//! ```
//! use storage::{open_store, BackendKind, OnConflict, PartName, PutOutcome, VerifiedPart};
//!
//! let dir = tempfile::tempdir()?;
//! let store = open_store(&dir.path().join("peer1.db"), Some(BackendKind::Sled))?;
//! let name = PartName::new("part2.txt")?;
//! let part = VerifiedPart::hashing(name.clone(), b"hello".to_vec())?;
//! assert_eq!(store.put(&part, OnConflict::Refuse)?, PutOutcome::Stored);
//! assert_eq!(store.get(&name)?, b"hello");
//!
//! std::fs::write(dir.path().join("big.bin"), vec![7u8; 3 << 20])?;
//! let files = [storage::FileSource::new(dir.path().join("big.bin"))];
//! storage::import_files(store.as_ref(), &files, storage::ImportOptions::default(), |(_, done)| {
//!     assert_eq!(done.unwrap(), PutOutcome::Stored);
//! })?;
//! let options = storage::ExportOptions::new("_copy")?;
//! storage::export(store.as_ref(), &dir.path().join("out"), None, &options)?;
//! assert_eq!(std::fs::read(dir.path().join("out/big.bin_copy"))?, vec![7u8; 3 << 20]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod batch;
mod body_files;
mod damage;
mod durable;
mod error;
mod export;
mod feed;
mod file;
mod fs_store;
mod hash;
mod listing;
mod mem_store;
mod name;
mod name_index;
mod pack_readers;
mod pack_record;
mod pack_scan;
mod packs;
mod part;
mod read_ahead;
mod recover;
mod recover_report;
mod registry;
mod reserve;
mod sled_compact;
mod sled_index;
mod sled_record;
mod sled_store;
mod store;
mod store_dir;
mod verify;
mod verify_report;
mod watch;

pub use error::{IndexError, StoreError};
pub use export::{
    ExportOptions, ExportOutcome, Overwrite, export, export_each, export_stored, exportable_names,
};
pub use feed::{Cursor, Feed, FeedStore, Since};
pub use file::{
    Chunker, DEFAULT_CHUNK_SIZE, FileError, FileOutcome, FileSource, Garbage, ImportOptions,
    LocalFile, MAX_CHUNK_REPEATS, MAX_MANIFEST_CHUNKS, Manifest, ManifestError, Removal,
    check_file, collect_garbage, display_name, import_files, open_file, read_range, remove_parts,
};
pub use fs_store::FsStore;
pub use hash::{ParseHashError, PartHash};
pub use listing::{FileEntry, describe, list_files};
pub use mem_store::MemStore;
pub use name::{CHUNK_PREFIX, NameError, PartName};
pub use part::{
    MAX_PART_SIZE, OnConflict, PartInfo, PartKind, PutOutcome, StoreStats, VerifiedPart, check_size,
};
pub use recover::recover;
pub use recover_report::{DamagedBytes, RecoverReport};
pub use registry::{open_existing_store, open_store};
pub use reserve::RESERVE;
pub use sled_store::{INLINE_MAX, SledStore};
pub use store::{BatchOutcome, PartStore};
pub use store_dir::{BackendKind, UnknownBackend, disk_usage, is_store};
pub use verify::{verify, verify_parts};
pub use verify_report::VerifyReport;
pub use watch::{RETRY_AFTER, WatchError, WatchOptions, Watched, Watching, watch};
