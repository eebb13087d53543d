//! Collecting chunks no file lists: what an interrupted transfer leaves behind (its chunks
//! arrive before the manifest that would list them).

use std::collections::BTreeSet;
use std::fmt;

use crate::{Manifest, PartInfo, PartKind, PartStore, StoreError};

/// What [`collect_garbage`] removed, or would remove on a dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Garbage {
    /// The chunks no manifest lists.
    pub chunks: Vec<PartInfo>,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes of unused space given back by the compaction that follows.
    pub compacted: u64,
    /// Whether this only says what would be removed.
    pub dry_run: bool,
}

/// Removes every chunk (a part named `b3-<hash>`) that no manifest lists, then compacts the
/// store ([`PartStore::compact`]) so the space of everything removed so far is given back;
/// with `dry_run`, only says which chunks.
///
/// # Errors
/// When the store cannot be read or a removal cannot be made durable, and when a manifest
/// cannot be read: the chunks it lists are unknown, so nothing is removed until it is
/// repaired.
pub fn collect_garbage(store: &dyn PartStore, dry_run: bool) -> Result<Garbage, StoreError> {
    let parts = store.list()?;
    let mut listed = BTreeSet::new();
    for info in parts.iter().filter(|info| info.kind == PartKind::Manifest) {
        let bytes = store.get(&info.name)?;
        let manifest = Manifest::decode(&bytes).map_err(|reason| StoreError::BadManifest {
            name: info.name.clone(),
            reason,
        })?;
        listed.extend(manifest.chunks().iter().copied());
    }
    let mut garbage = Garbage {
        dry_run,
        ..Garbage::default()
    };
    for info in parts {
        if info
            .name
            .chunk_hash()
            .is_some_and(|hash| !listed.contains(&hash))
        {
            if !dry_run {
                store.remove(&info.name)?;
            }
            garbage.bytes += info.size;
            garbage.chunks.push(info);
        }
    }
    if !dry_run {
        garbage.compacted = store.compact()?;
    }
    Ok(garbage)
}

impl fmt::Display for Garbage {
    /// A line per chunk, the totals, and the space a compaction gave back, if any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for chunk in &self.chunks {
            writeln!(f, "{verb} {}", chunk.name)?;
        }
        let (chunks, bytes) = (self.chunks.len(), self.bytes);
        write!(f, "{verb} {chunks} chunks ({bytes} bytes) no file lists")?;
        if self.compacted > 0 {
            let compacted = self.compacted;
            write!(f, "\ngave back {compacted} bytes removals had left unused")?;
        }
        Ok(())
    }
}
