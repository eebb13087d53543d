//! What a peer holds, described as [`storage::list_files`] describes a local store.

use std::collections::HashMap;

use storage::{FileEntry, PartInfo, PartKind};

use crate::{Client, ClientError};

/// The peer's listing: its parts, files with their own size and hash (read from their
/// manifests), chunks only when `with_chunks`.
///
/// # Errors
/// When the connection fails or the peer breaks the protocol.
pub fn list_files(client: &mut Client, with_chunks: bool) -> Result<Vec<FileEntry>, ClientError> {
    let parts = client.list()?;
    let wanted: Vec<PartInfo> = parts
        .iter()
        .filter(|info| info.kind == PartKind::Manifest)
        .cloned()
        .collect();
    let mut manifests = HashMap::new();
    client.fetch(&wanted, |info, part| {
        if let Ok(part) = part {
            manifests.insert(info.name.clone(), part.into_bytes());
        }
    })?;
    Ok(storage::describe(parts, with_chunks, &manifests))
}
