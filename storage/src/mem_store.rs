//! `MemStore`: parts in memory, for tests and benchmarks. Nothing survives the process.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::batch::{self, Step};
use crate::damage::DamageLog;
use crate::name_index::NameIndex;
use crate::store::BatchOutcome;
use crate::{
    OnConflict, PartHash, PartInfo, PartName, PartStore, StoreError, StoreStats, VerifiedPart,
};

/// Clones are handles to the same parts, so a test can keep one to [damage](MemStore::damage)
/// the store it handed to a server.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    state: Arc<RwLock<State>>,
    damage: Arc<DamageLog>,
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

    /// Flips a bit of the body `name` points at (drops it if it is empty), as a failing disk
    /// would: for tests of what the store and its users do with damage. Returns whether `name`
    /// is held.
    pub fn damage(&self, name: &PartName) -> bool {
        let mut state = self.write();
        let Some(info) = state.index.get(name) else {
            return false;
        };
        match state.bodies.get_mut(&info.hash) {
            Some(body) if !body.is_empty() => body[0] ^= 1,
            _ => drop(state.bodies.remove(&info.hash)),
        }
        true
    }
}

impl PartStore for MemStore {
    fn put_batch(
        &self,
        parts: &[VerifiedPart],
        on_conflict: OnConflict,
    ) -> Result<BatchOutcome, StoreError> {
        let mut state = self.write();
        let steps = batch::plan(
            parts,
            on_conflict,
            |name| Ok(state.index.hash_of(name)),
            |held| Ok(body_damaged(&state, &self.damage, held)),
        )?;
        let mut written = Vec::new();
        for (part, step) in parts.iter().zip(&steps) {
            if matches!(step, Step::Write { .. } | Step::Repair) {
                // Over any copy already there, which may be damaged.
                state.bodies.insert(part.hash(), part.bytes().to_vec());
                written.push(part.hash());
            }
            if let Step::Write { .. } = step
                && let Some(orphan) = state.index.insert(part.info())
            {
                state.bodies.remove(&orphan);
            }
        }
        self.damage.rewritten(written);
        Ok(steps.into_iter().map(Step::into_outcome).collect())
    }

    fn lookup(&self, name: &PartName) -> Result<Option<PartInfo>, StoreError> {
        Ok(self.read().index.get(name))
    }

    fn get_part(&self, name: &PartName) -> Result<VerifiedPart, StoreError> {
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
        self.damage.verify_read(&info, bytes)
    }

    fn known_damaged(&self, held: &PartInfo) -> Result<bool, StoreError> {
        Ok(body_damaged(&self.read(), &self.damage, held))
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

/// [`PartStore::known_damaged`]: the body is gone or of another length, or a read found it
/// damaged.
fn body_damaged(state: &State, damage: &DamageLog, held: &PartInfo) -> bool {
    let present = state
        .bodies
        .get(&held.hash)
        .is_some_and(|body| body.len() as u64 == held.size);
    !present || damage.is_damaged(&held.hash)
}
