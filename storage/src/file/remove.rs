//! Removing parts and files so that no file is broken and no chunk is left behind: a chunk a
//! file still lists is not removed, and removing a file removes the chunks no other file lists.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Manifest, PartKind, PartName, PartStore, StoreError};

/// What became of one name given to [`remove_parts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Removed; for a file, with this many of its chunks no other file lists.
    Removed { chunks_released: usize },
    /// A file removed with its chunks kept: the manifests of these files cannot be read, so
    /// which chunks they list is unknown. `gc` releases the chunks once they are repaired.
    RemovedKeepingChunks { unreadable: Vec<PartName> },
    /// Nothing by that name.
    NotFound,
    /// A chunk these files list (or may list: their manifests cannot be read): removing it
    /// would break them.
    InUse { by: Vec<PartName> },
}

impl Removal {
    /// Whether the name was removed.
    pub fn removed(&self) -> bool {
        matches!(
            self,
            Self::Removed { .. } | Self::RemovedKeepingChunks { .. }
        )
    }

    /// One line saying what became of `name`, and why when it was kept.
    pub fn describe(&self, name: &PartName) -> String {
        let files = |names: &[PartName]| {
            let names: Vec<&str> = names.iter().map(PartName::as_str).collect();
            names.join(", ")
        };
        match self {
            Self::Removed { chunks_released: 0 } => format!("removed {name}"),
            Self::Removed { chunks_released } => {
                format!("removed {name} and {chunks_released} chunks no other file uses")
            }
            Self::RemovedKeepingChunks { unreadable } => format!(
                "removed {name}, keeping its chunks: the manifests of {} cannot be read \
                 (repair them, then run gc)",
                files(unreadable)
            ),
            Self::NotFound => format!("not found {name}"),
            Self::InUse { by } => format!("kept {name}: the files {} need it", files(by)),
        }
    }
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
    let (mut users, unreadable) = chunk_users(store)?;
    let mut outcomes = Vec::with_capacity(names.len());
    for name in names {
        let others_unreadable: Vec<PartName> = unreadable
            .iter()
            .filter(|file| *file != name)
            .cloned()
            .collect();
        let removal = match store.lookup(name)? {
            None => Removal::NotFound,
            Some(_) if users.get(name).is_some_and(|files| !files.is_empty()) => Removal::InUse {
                by: users[name].iter().cloned().collect(),
            },
            Some(_) if name.is_chunk() && !others_unreadable.is_empty() => Removal::InUse {
                by: others_unreadable,
            },
            Some(info) if info.kind == PartKind::Manifest && !others_unreadable.is_empty() => {
                store.remove(name)?;
                Removal::RemovedKeepingChunks {
                    unreadable: others_unreadable,
                }
            }
            Some(info) if info.kind == PartKind::Manifest => {
                let chunks = listed_chunks(store, name)?.unwrap_or_default();
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

/// Files by chunk name.
type Users = BTreeMap<PartName, BTreeSet<PartName>>;

/// For each chunk, the files whose manifests list it; and the files whose manifests cannot
/// be read.
fn chunk_users(store: &dyn PartStore) -> Result<(Users, Vec<PartName>), StoreError> {
    let mut users = Users::new();
    let mut unreadable = Vec::new();
    for info in store.list()? {
        if info.kind != PartKind::Manifest {
            continue;
        }
        match listed_chunks(store, &info.name)? {
            Some(chunks) => {
                for chunk in chunks {
                    users.entry(chunk).or_default().insert(info.name.clone());
                }
            }
            None => unreadable.push(info.name),
        }
    }
    Ok((users, unreadable))
}

/// The chunks the manifest `name` lists, each once; `None` when it cannot be read.
fn listed_chunks(
    store: &dyn PartStore,
    name: &PartName,
) -> Result<Option<BTreeSet<PartName>>, StoreError> {
    let manifest = match store.get(name) {
        Ok(bytes) => Manifest::decode(&bytes).ok(),
        Err(err) if err.is_corruption() => None,
        Err(err) => return Err(err),
    };
    Ok(manifest.map(|manifest| manifest.chunk_infos().map(|chunk| chunk.name).collect()))
}
