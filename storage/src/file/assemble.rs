//! Reading a stored file back: its chunks in order, each verified by the store and against
//! the manifest, and the whole checked against the manifest's file hash once the last chunk
//! has been handed on. A caller writing the bytes somewhere must therefore write where a
//! failure can be thrown away (export writes a temp file, renamed only on success).

use crate::{Manifest, ManifestError, PartHash, PartName, PartStore, StoreError};

/// Hands each chunk of the file `name` to `sink` in order.
///
/// # Errors
/// [`StoreError::ChunkUnavailable`] naming the first chunk that is missing or damaged,
/// [`StoreError::BadManifest`] when the chunks do not make the file the manifest promises,
/// and `sink`'s errors.
pub(crate) fn read_chunks(
    store: &dyn PartStore,
    name: &PartName,
    manifest: &Manifest,
    mut sink: impl FnMut(&[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut whole = blake3::Hasher::new();
    for (index, chunk) in manifest.chunk_infos().enumerate() {
        let unavailable = |source| StoreError::ChunkUnavailable {
            name: name.clone(),
            index,
            hash: chunk.hash,
            source: Box::new(source),
        };
        let bytes = store.get(&chunk.name).map_err(unavailable)?;
        if bytes.len() as u64 != chunk.size {
            return Err(unavailable(StoreError::Corrupt {
                name: chunk.name,
                expected: chunk.hash,
                actual: PartHash::of(&bytes),
            }));
        }
        whole.update(&bytes);
        sink(&bytes)?;
    }
    let actual = PartHash::from_bytes(*whole.finalize().as_bytes());
    if actual != manifest.file_hash() {
        return Err(StoreError::BadManifest {
            name: name.clone(),
            reason: ManifestError::FileHashMismatch {
                expected: manifest.file_hash(),
                actual,
            },
        });
    }
    Ok(())
}

/// Reads the file `name` back from its chunks and checks it whole, writing nothing: what a
/// store does before it takes a manifest from elsewhere.
///
/// # Errors
/// As [`read_chunks`].
pub fn check_file(
    store: &dyn PartStore,
    name: &PartName,
    manifest: &Manifest,
) -> Result<(), StoreError> {
    read_chunks(store, name, manifest, |_| Ok(()))
}

/// The manifest stored under `name`.
///
/// # Errors
/// The store's errors, or [`StoreError::BadManifest`].
pub(crate) fn manifest_of(store: &dyn PartStore, name: &PartName) -> Result<Manifest, StoreError> {
    let bytes = store.get(name)?;
    Manifest::decode(&bytes).map_err(|reason| StoreError::BadManifest {
        name: name.clone(),
        reason,
    })
}
