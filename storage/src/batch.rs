//! Deciding what each part of a put needs, the same way for every backend, under the
//! backend's writer lock: whether it is already held (and readable), a conflict, or a manifest
//! whose chunks the store does not hold.

use std::collections::HashMap;

use crate::{
    Manifest, OnConflict, PartHash, PartInfo, PartKind, PartName, PutOutcome, StoreError,
    VerifiedPart,
};

/// One part's fate in a batch.
#[derive(Debug)]
pub(crate) enum Step {
    /// Write the part; `previous` is the hash the name pointed at, if any.
    Write { previous: Option<PartHash> },
    /// The name holds these bytes, but their body is gone or known to be damaged: write the
    /// body again, leaving the entry as it is.
    Repair,
    /// Nothing to write: already held, or refused.
    Done(Result<PutOutcome, StoreError>),
}

impl Step {
    /// The outcome to report once the writes of the batch are durable.
    pub(crate) fn into_outcome(self) -> Result<PutOutcome, StoreError> {
        match self {
            Self::Write { previous: None } => Ok(PutOutcome::Stored),
            Self::Write {
                previous: Some(previous),
            } => Ok(PutOutcome::Replaced { previous }),
            Self::Repair => Ok(PutOutcome::Repaired),
            Self::Done(outcome) => outcome,
        }
    }
}

/// Plans a batch against what the store holds (`current`), letting earlier parts of the batch
/// count as held for later ones with the same name. A part whose name already holds its bytes
/// is checked with `damaged` (the store's [`crate::PartStore::known_damaged`]), which must
/// not read the body whole: see `damage.rs` for why.
///
/// A manifest is refused ([`StoreError::ChunkUnavailable`]) unless every chunk it lists is
/// held before the batch: so a store never holds a file it cannot assemble, whoever calls it,
/// and the chunks are durable before the manifest that needs them.
pub(crate) fn plan(
    parts: &[VerifiedPart],
    on_conflict: OnConflict,
    mut current: impl FnMut(&PartName) -> Result<Option<PartHash>, StoreError>,
    mut damaged: impl FnMut(&PartInfo) -> Result<bool, StoreError>,
) -> Result<Vec<Step>, StoreError> {
    let mut pending: HashMap<&PartName, PartHash> = HashMap::new();
    let mut steps = Vec::with_capacity(parts.len());
    for part in parts {
        let (existing, earlier_in_batch) = match pending.get(part.name()) {
            Some(hash) => (Some(*hash), true),
            None => (current(part.name())?, false),
        };
        let new_manifest = part.kind() == PartKind::Manifest && existing != Some(part.hash());
        let refusal = if new_manifest {
            missing_chunk(part, &mut current)?
        } else {
            None
        };
        let held_here = existing == Some(part.hash()) && !earlier_in_batch;
        let step = match refusal {
            Some(refusal) => Step::Done(Err(refusal)),
            None if held_here && damaged(&part.info())? => Step::Repair,
            None => decide(part, existing, on_conflict),
        };
        if matches!(step, Step::Write { .. } | Step::Repair) {
            pending.insert(part.name(), part.hash());
        }
        steps.push(step);
    }
    Ok(steps)
}

/// The step for `part` given the hash its name holds now.
fn decide(part: &VerifiedPart, existing: Option<PartHash>, on_conflict: OnConflict) -> Step {
    match existing {
        None => Step::Write { previous: None },
        Some(hash) if hash == part.hash() => Step::Done(Ok(PutOutcome::AlreadyHad)),
        Some(hash) => match on_conflict {
            OnConflict::Refuse => Step::Done(Err(StoreError::Conflict {
                name: part.name().clone(),
                existing: hash,
                offered: part.hash(),
            })),
            OnConflict::Replace => Step::Write {
                previous: Some(hash),
            },
        },
    }
}

/// Why the manifest `part` cannot be stored yet, or `None` when every chunk is held. Decoding
/// refuses what is not a manifest and what breaks its bounds (too many chunks, a chunk listed
/// too often: see [`crate::MAX_CHUNK_REPEATS`]) before a single chunk is looked up.
///
/// # Errors
/// When the index cannot be read.
fn missing_chunk(
    part: &VerifiedPart,
    current: &mut impl FnMut(&PartName) -> Result<Option<PartHash>, StoreError>,
) -> Result<Option<StoreError>, StoreError> {
    let manifest = match Manifest::decode(part.bytes()) {
        Ok(manifest) => manifest,
        Err(reason) => {
            return Ok(Some(StoreError::BadManifest {
                name: part.name().clone(),
                reason,
            }));
        }
    };
    for (index, chunk) in manifest.chunk_infos().enumerate() {
        if current(&chunk.name)? != Some(chunk.hash) {
            return Ok(Some(StoreError::ChunkUnavailable {
                name: part.name().clone(),
                index,
                hash: chunk.hash,
                source: Box::new(StoreError::NotFound(chunk.name)),
            }));
        }
    }
    Ok(None)
}
