//! Re-hashing every stored part.

use crate::file::assemble;
use crate::{PartKind, PartName, PartStore, StoreError};

/// What a full check found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Parts and files whose bytes hash to their recorded hashes (a file's chunks are counted
    /// with it, not on their own).
    pub intact: u64,
    /// Bytes read and hashed.
    pub bytes: u64,
    /// Parts whose bytes are damaged or gone, with what was found.
    pub corrupt: Vec<(PartName, StoreError)>,
}

/// Reads back and re-hashes every part; a file is read back chunk by chunk and checked whole.
/// A damaged chunk is reported once per file that uses it.
///
/// # Errors
/// Only failures that stop the check as a whole (the index cannot be listed, a disk read
/// fails); damaged parts are collected in the report.
pub fn verify(store: &dyn PartStore) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    for info in store.list()? {
        if info.name.is_chunk() {
            continue;
        }
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
            Err(err) if err.is_corruption() => report.corrupt.push((info.name, err)),
            Err(StoreError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(report)
}
