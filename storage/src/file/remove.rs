//! Removing parts and files so that no file is broken and no chunk is left behind: a chunk a
//! file still lists is not removed, and removing a file removes the chunks no other file lists.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Manifest, PartKind, PartName, PartStore, StoreError};

/// What became of one name given to [`remove_parts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Removed; for a file, with this many of its chunks no other file lists.
    Removed { chunks_released: usize },
    /// Nothing by that name.
    NotFound,
    /// A chunk these files list: removing it would break them.
    InUse { by: Vec<PartName> },
}

/// Removes `names` in order, each durably. Reads every manifest first, so its cost grows with
/// the number of files, not of parts.
///
/// # Errors
/// When the store cannot be read or a removal cannot be made durable; the names handled
/// before that are removed.
pub fn remove_parts(
    store: &dyn PartStore,
    names: &[PartName],
) -> Result<Vec<(PartName, Removal)>, StoreError> {
    let mut users = chunk_users(store)?;
    let mut outcomes = Vec::with_capacity(names.len());
    for name in names {
        let removal = match store.lookup(name)? {
            None => Removal::NotFound,
            Some(_) if users.get(name).is_some_and(|files| !files.is_empty()) => Removal::InUse {
                by: users[name].iter().cloned().collect(),
            },
            Some(info) if info.kind == PartKind::Manifest => {
                let chunks = listed_chunks(store, name)?;
                store.remove(name)?;
                let mut released = 0;
                for chunk in chunks {
                    let files = users.entry(chunk.clone()).or_default();
                    files.remove(name);
                    if files.is_empty() && store.remove(&chunk)? {
                        released += 1;
                    }
                }
                Removal::Removed {
                    chunks_released: released,
                }
            }
            Some(_) => {
                store.remove(name)?;
                Removal::Removed { chunks_released: 0 }
            }
        };
        outcomes.push((name.clone(), removal));
    }
    Ok(outcomes)
}

/// For each chunk, the files whose manifests list it.
fn chunk_users(
    store: &dyn PartStore,
) -> Result<BTreeMap<PartName, BTreeSet<PartName>>, StoreError> {
    let mut users: BTreeMap<PartName, BTreeSet<PartName>> = BTreeMap::new();
    for info in store.list()? {
        if info.kind == PartKind::Manifest {
            for chunk in listed_chunks(store, &info.name)? {
                users.entry(chunk).or_default().insert(info.name.clone());
            }
        }
    }
    Ok(users)
}

/// The chunks the manifest `name` lists, each once; none when it cannot be read (a damaged
/// manifest protects nothing, and `verify` reports it).
fn listed_chunks(store: &dyn PartStore, name: &PartName) -> Result<BTreeSet<PartName>, StoreError> {
    let manifest = match store.get(name) {
        Ok(bytes) => Manifest::decode(&bytes).ok(),
        Err(err) if err.is_corruption() => None,
        Err(err) => return Err(err),
    };
    Ok(manifest
        .map(|manifest| manifest.chunk_infos().map(|chunk| chunk.name).collect())
        .unwrap_or_default())
}
