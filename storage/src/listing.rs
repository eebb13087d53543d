//! Listing what a store holds as a person thinks of it: files with their own size and hash
//! (what `b3sum` prints) and their number of chunks, and plain parts; chunks only on request.

use std::collections::HashMap;

use serde::Serialize;

use crate::{Manifest, PartHash, PartInfo, PartKind, PartName, PartStore, StoreError};

/// One line of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    pub name: PartName,
    /// The file's size for a file, else the part's.
    pub size: u64,
    /// The whole file's blake3 for a file, else the part's.
    pub hash: PartHash,
    /// How many chunks a file is made of; absent for a plain part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<usize>,
}

/// Describes `parts` (sorted by name): chunks only when `with_chunks`, files from their
/// manifests (`manifests` maps a manifest's name to its bytes; one missing or unusable is
/// listed as the part it is).
pub fn describe(
    parts: Vec<PartInfo>,
    with_chunks: bool,
    manifests: &HashMap<PartName, Vec<u8>>,
) -> Vec<FileEntry> {
    parts
        .into_iter()
        .filter(|info| with_chunks || !info.name.is_chunk())
        .map(|info| {
            let file = manifests
                .get(&info.name)
                .filter(|_| info.kind == PartKind::Manifest)
                .and_then(|bytes| Manifest::decode(bytes).ok());
            FileEntry {
                size: file.as_ref().map_or(info.size, Manifest::file_size),
                hash: file.as_ref().map_or(info.hash, Manifest::file_hash),
                parts: file.map(|file| file.chunks().len()),
                name: info.name,
            }
        })
        .collect()
}

/// The listing of `store`.
///
/// # Errors
/// When the index cannot be read.
pub fn list_files(store: &dyn PartStore, with_chunks: bool) -> Result<Vec<FileEntry>, StoreError> {
    let parts = store.list()?;
    let manifests = parts
        .iter()
        .filter(|info| info.kind == PartKind::Manifest)
        .filter_map(|info| Some((info.name.clone(), store.get(&info.name).ok()?)))
        .collect();
    Ok(describe(parts, with_chunks, &manifests))
}
