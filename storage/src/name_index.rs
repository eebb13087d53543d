//! An in-memory name -> (hash, size) index with reference counts on hashes, for the backends
//! that keep their index in memory (mem, and fs, which rebuilds it from disk on open).

use std::collections::{BTreeMap, HashMap};

use crate::{PartHash, PartInfo, PartKind, PartName, StoreStats};

#[derive(Debug, Default)]
pub(crate) struct NameIndex {
    names: BTreeMap<PartName, (PartHash, u64, PartKind)>,
    refs: HashMap<PartHash, usize>,
}

impl NameIndex {
    pub(crate) fn get(&self, name: &PartName) -> Option<PartInfo> {
        self.names.get(name).map(|&(hash, size, kind)| PartInfo {
            name: name.clone(),
            size,
            hash,
            kind,
        })
    }

    pub(crate) fn hash_of(&self, name: &PartName) -> Option<PartHash> {
        self.names.get(name).map(|&(hash, _, _)| hash)
    }

    /// Points `info.name` at `info.hash`; returns the hash it pointed at before if no name
    /// points at that any more (its body can go).
    pub(crate) fn insert(&mut self, info: PartInfo) -> Option<PartHash> {
        *self.refs.entry(info.hash).or_default() += 1;
        let previous = self
            .names
            .insert(info.name, (info.hash, info.size, info.kind));
        previous.and_then(|(hash, _, _)| self.release(hash))
    }

    /// Forgets `name`; returns its entry and whether its body is now unreferenced.
    pub(crate) fn remove(&mut self, name: &PartName) -> Option<(PartInfo, bool)> {
        let (hash, size, kind) = self.names.remove(name)?;
        let orphaned = self.release(hash).is_some();
        let info = PartInfo {
            name: name.clone(),
            size,
            hash,
            kind,
        };
        Some((info, orphaned))
    }

    fn release(&mut self, hash: PartHash) -> Option<PartHash> {
        let count = self.refs.get_mut(&hash)?;
        *count -= 1;
        if *count == 0 {
            self.refs.remove(&hash);
            Some(hash)
        } else {
            None
        }
    }

    pub(crate) fn is_referenced(&self, hash: &PartHash) -> bool {
        self.refs.contains_key(hash)
    }

    pub(crate) fn list(&self) -> Vec<PartInfo> {
        self.names
            .iter()
            .map(|(name, &(hash, size, kind))| PartInfo {
                name: name.clone(),
                size,
                hash,
                kind,
            })
            .collect()
    }

    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            parts: self.names.len() as u64,
            bytes: self.names.values().map(|&(_, size, _)| size).sum(),
        }
    }
}
