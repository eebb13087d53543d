//! `MemStore`: parts in memory, for tests and benchmarks. Nothing survives the process.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::batch::{self, Step};
use crate::name_index::NameIndex;
use crate::store::{BatchOutcome, verify_read};
use crate::{
    OnConflict, PartHash, PartInfo, PartName, PartStore, StoreError, StoreStats, VerifiedPart,
};

#[derive(Debug, Default)]
pub struct MemStore {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    index: NameIndex,
    bodies: HashMap<PartHash, Vec<u8>>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl PartStore for MemStore {
    fn put_batch(
        &self,
        parts: &[VerifiedPart],
        on_conflict: OnConflict,
    ) -> Result<BatchOutcome, StoreError> {
        let mut state = self.write();
        let steps = batch::plan(parts, on_conflict, |name| Ok(state.index.hash_of(name)))?;
        for (part, step) in parts.iter().zip(&steps) {
            if let Step::Write { .. } = step {
                state
                    .bodies
                    .entry(part.hash())
                    .or_insert_with(|| part.bytes().to_vec());
                if let Some(orphan) = state.index.insert(part.info()) {
                    state.bodies.remove(&orphan);
                }
            }
        }
        Ok(steps.into_iter().map(Step::into_outcome).collect())
    }

    fn lookup(&self, name: &PartName) -> Result<Option<PartInfo>, StoreError> {
        Ok(self.read().index.get(name))
    }

    fn get(&self, name: &PartName) -> Result<Vec<u8>, StoreError> {
        let state = self.read();
        let info = state
            .index
            .get(name)
            .ok_or_else(|| StoreError::NotFound(name.clone()))?;
        let bytes = state
            .bodies
            .get(&info.hash)
            .ok_or_else(|| StoreError::BodyMissing {
                name: name.clone(),
                hash: info.hash,
            })?
            .clone();
        verify_read(&info, bytes)
    }

    fn list(&self) -> Result<Vec<PartInfo>, StoreError> {
        Ok(self.read().index.list())
    }

    fn list_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<PartInfo>, StoreError> {
        Ok(self.read().index.page(after, limit))
    }

    fn remove(&self, name: &PartName) -> Result<bool, StoreError> {
        let mut state = self.write();
        let Some((info, orphaned)) = state.index.remove(name) else {
            return Ok(false);
        };
        if orphaned {
            state.bodies.remove(&info.hash);
        }
        Ok(true)
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(self.read().index.stats())
    }
}
