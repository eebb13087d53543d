//! Re-hashing every stored part, and naming the parts a repair must fetch again.

use std::collections::HashSet;

use crate::file::assemble;
use crate::verify_report::VerifyReport;
use crate::{Manifest, PartInfo, PartKind, PartStore, StoreError};

/// Reads back and re-hashes every part; a file is read back chunk by chunk and checked whole.
/// A damaged chunk is reported once per file that uses it.
///
/// # Errors
/// Only failures that stop the check as a whole (the index cannot be listed, a disk read
/// fails); damaged parts are collected in the report.
pub fn verify(store: &dyn PartStore) -> Result<VerifyReport, StoreError> {
    let parts: Vec<PartInfo> = store
        .list()?
        .into_iter()
        .filter(|info| !info.name.is_chunk())
        .collect();
    verify_parts(store, &parts)
}

/// [`verify`] of `parts` only (parts and files as [`PartStore::lookup`] gives them): what a
/// repair checks again after each fetch, at a cost that grows with the damage, not the store.
///
/// # Errors
/// As [`verify`].
pub fn verify_parts(store: &dyn PartStore, parts: &[PartInfo]) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let mut listed = HashSet::new();
    for info in parts {
        let checked = match info.kind {
            PartKind::Plain => store.get(&info.name).map(|bytes| bytes.len() as u64),
            PartKind::Manifest => assemble::manifest_of(store, &info.name).and_then(|manifest| {
                assemble::check_file(store, &info.name, &manifest).map(|()| manifest.file_size())
            }),
        };
        match checked {
            Ok(bytes) => {
                report.intact += 1;
                report.bytes += bytes;
            }
            Err(err) if err.is_corruption() => {
                for part in damaged_parts(store, info, &err)? {
                    if listed.insert(part.name.clone()) {
                        report.damaged.push(part);
                    }
                }
                report.corrupt.push((info.name.clone(), err));
            }
            Err(StoreError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(report)
}

/// The parts behind `err`, the damage of `info`: the part itself (a plain part, or a file's
/// manifest), or every chunk of the file that is missing or damaged, not only the first.
fn damaged_parts(
    store: &dyn PartStore,
    info: &PartInfo,
    err: &StoreError,
) -> Result<Vec<PartInfo>, StoreError> {
    match err {
        StoreError::ChunkUnavailable { .. } => {
            damaged_chunks(store, &assemble::manifest_of(store, &info.name)?)
        }
        StoreError::BadManifest { .. } => Ok(Vec::new()),
        _ => Ok(vec![info.clone()]),
    }
}

/// The chunks of `manifest` that cannot be read back whole, each once.
fn damaged_chunks(store: &dyn PartStore, manifest: &Manifest) -> Result<Vec<PartInfo>, StoreError> {
    let mut seen = HashSet::new();
    let mut damaged = Vec::new();
    for chunk in manifest.chunk_infos() {
        if !seen.insert(chunk.hash) {
            continue;
        }
        // A chunk's name is its hash, so the bytes a get returns are the ones listed.
        match store.get(&chunk.name) {
            Ok(_) => {}
            Err(err) if err.is_corruption() || matches!(err, StoreError::NotFound(_)) => {
                damaged.push(chunk);
            }
            Err(err) => return Err(err),
        }
    }
    Ok(damaged)
}
