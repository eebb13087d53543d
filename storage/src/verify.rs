//! Re-hashing every stored part.

use crate::{PartName, PartStore, StoreError};

/// What a full check found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Parts whose bytes hash to their recorded hash.
    pub intact: u64,
    /// Bytes read and hashed.
    pub bytes: u64,
    /// Parts whose bytes are damaged or gone, with what was found.
    pub corrupt: Vec<(PartName, StoreError)>,
}

/// Reads back and re-hashes every part.
///
/// # Errors
/// Only failures that stop the check as a whole (the index cannot be listed, a disk read
/// fails); damaged parts are collected in the report.
pub fn verify(store: &dyn PartStore) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    for info in store.list()? {
        match store.get(&info.name) {
            Ok(bytes) => {
                report.intact += 1;
                report.bytes += bytes.len() as u64;
            }
            Err(err) if err.is_corruption() => report.corrupt.push((info.name, err)),
            Err(StoreError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(report)
}
