//! An in-memory name -> (hash, size) index with reference counts on hashes, for the backends
//! that keep their index in memory (mem, and fs, which rebuilds it from disk on open).

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use crate::{PartHash, PartInfo, PartKind, PartName, StoreStats};

type Entry = (PartHash, u64, PartKind);

#[derive(Debug, Default)]
pub(crate) struct NameIndex {
    names: BTreeMap<Key, Entry>,
    refs: HashMap<PartHash, usize>,
}

/// A name as the map's key. It borrows as `str`, so a page can start after any string a peer
/// sends, a valid name or not; its order is `str`'s (byte order), as `PartName`'s is.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key(PartName);

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

fn info((Key(name), &(hash, size, kind)): (&Key, &Entry)) -> PartInfo {
    PartInfo {
        name: name.clone(),
        size,
        hash,
        kind,
    }
}

impl NameIndex {
    pub(crate) fn get(&self, name: &PartName) -> Option<PartInfo> {
        self.names.get_key_value(name.as_str()).map(info)
    }

    pub(crate) fn hash_of(&self, name: &PartName) -> Option<PartHash> {
        self.names.get(name.as_str()).map(|&(hash, _, _)| hash)
    }

    /// Points `info.name` at `info.hash`; returns the hash it pointed at before if no name
    /// points at that any more (its body can go).
    pub(crate) fn insert(&mut self, info: PartInfo) -> Option<PartHash> {
        *self.refs.entry(info.hash).or_default() += 1;
        let previous = self
            .names
            .insert(Key(info.name), (info.hash, info.size, info.kind));
        previous.and_then(|(hash, _, _)| self.release(hash))
    }

    /// Forgets `name`; returns its entry and whether its body is now unreferenced.
    pub(crate) fn remove(&mut self, name: &PartName) -> Option<(PartInfo, bool)> {
        let (hash, size, kind) = self.names.remove(name.as_str())?;
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
        self.names.iter().map(info).collect()
    }

    /// Up to `limit` entries named after `after`: a seek in the tree, then `limit` steps.
    pub(crate) fn page(&self, after: Option<&str>, limit: usize) -> Vec<PartInfo> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.names
            .range::<str, _>((start, Bound::Unbounded))
            .take(limit)
            .map(info)
            .collect()
    }

    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            parts: self.names.len() as u64,
            bytes: self.names.values().map(|&(_, size, _)| size).sum(),
        }
    }
}
