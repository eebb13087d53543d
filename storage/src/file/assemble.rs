//! Reading a stored file back: its chunks in order, each verified by the store and against
//! the manifest, and the whole checked against the manifest's file hash once the last chunk
//! has been handed on. A caller writing the bytes somewhere must therefore write where a
//! failure can be thrown away (export writes a temp file, renamed only on success).

use std::ops::Range;

use crate::{Manifest, ManifestError, PartHash, PartInfo, PartName, PartStore, StoreError};

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
        let bytes = fetch_chunk(store, name, index, &chunk)?;
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

/// The bytes `range` of the file `name`, one chunk (or the part of it inside `range`) per
/// item, in order: what a ranged download serves. Each chunk is verified by the store and its
/// length checked against the manifest before any of its bytes are handed on, so a caller
/// never sees a byte that is not the file's; the whole-file hash cannot be checked on a part
/// of the file, and is not. A range past the file's end is cut at its end.
///
/// # Errors
/// Each item: [`StoreError::ChunkUnavailable`] naming a chunk missing or damaged. The caller
/// should stop there.
pub fn read_range<'a>(
    store: &'a dyn PartStore,
    name: &'a PartName,
    manifest: &'a Manifest,
    range: Range<u64>,
) -> impl Iterator<Item = Result<Vec<u8>, StoreError>> + 'a {
    let end = range.end.min(manifest.file_size());
    let start = range.start.min(end);
    let chunk_size = manifest.chunk_size();
    let first = usize::try_from(start / chunk_size).unwrap_or(usize::MAX);
    let chunks = manifest.chunk_infos().enumerate().skip(first);
    chunks
        .map_while(move |(index, chunk)| {
            let chunk_start = index as u64 * chunk_size;
            (chunk_start < end).then_some((index, chunk_start, chunk))
        })
        .map(move |(index, chunk_start, chunk)| {
            let mut bytes = fetch_chunk(store, name, index, &chunk)?;
            // Both cuts fall inside this chunk, whose length was just checked.
            bytes.truncate((end - chunk_start).min(chunk.size) as usize);
            bytes.drain(..start.saturating_sub(chunk_start) as usize);
            Ok(bytes)
        })
}

/// Chunk `index` of the file `name`, verified by the store, its length checked against the
/// manifest's.
fn fetch_chunk(
    store: &dyn PartStore,
    name: &PartName,
    index: usize,
    chunk: &PartInfo,
) -> Result<Vec<u8>, StoreError> {
    let unavailable = |source| StoreError::ChunkUnavailable {
        name: name.clone(),
        index,
        hash: chunk.hash,
        source: Box::new(source),
    };
    let bytes = store.get(&chunk.name).map_err(unavailable)?;
    if bytes.len() as u64 != chunk.size {
        return Err(unavailable(StoreError::Corrupt {
            name: chunk.name.clone(),
            expected: chunk.hash,
            actual: PartHash::of(&bytes),
        }));
    }
    Ok(bytes)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileSource, ImportOptions, MemStore, import_files};

    /// A file of 10 chunks of 7 bytes and a last one of 3, imported into a fresh store.
    fn stored_file() -> (MemStore, PartName, Manifest, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..73u8).collect();
        std::fs::write(dir.path().join("f"), &bytes).unwrap();
        let store = MemStore::new();
        let options = ImportOptions::default().chunk_size(7);
        import_files(
            &store,
            &[FileSource::new(dir.path().join("f"))],
            options,
            |_| {},
        )
        .unwrap();
        let name = PartName::new("f").unwrap();
        let manifest = manifest_of(&store, &name).unwrap();
        (store, name, manifest, bytes)
    }

    #[test]
    fn every_range_reads_its_own_bytes() {
        let (store, name, manifest, bytes) = stored_file();
        for start in 0..=75 {
            for end in start..=75 {
                let read: Vec<u8> = read_range(&store, &name, &manifest, start..end)
                    .map(Result::unwrap)
                    .collect::<Vec<_>>()
                    .concat();
                let (start, end) = (start.min(73) as usize, end.min(73) as usize);
                assert_eq!(read, bytes[start..end], "range {start}..{end}");
            }
        }
    }

    #[test]
    fn a_missing_chunk_stops_the_read_where_it_is_needed() {
        let (store, name, manifest, _) = stored_file();
        assert!(
            store
                .remove(&PartName::chunk(&manifest.chunks()[3]))
                .unwrap()
        );
        let items: Vec<_> = read_range(&store, &name, &manifest, 0..73).collect();
        assert!(items[..3].iter().all(Result::is_ok));
        assert!(matches!(
            items[3],
            Err(StoreError::ChunkUnavailable { index: 3, .. })
        ));
        let after = read_range(&store, &name, &manifest, 28..73);
        assert_eq!(after.map(Result::unwrap).count(), 7);
    }
}
