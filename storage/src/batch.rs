//! Deciding what each part of a put needs, the same way for every backend.

use std::collections::HashMap;

use crate::{OnConflict, PartHash, PartName, PutOutcome, StoreError, VerifiedPart};

/// One part's fate in a batch.
#[derive(Debug)]
pub(crate) enum Step {
    /// Write the part; `previous` is the hash the name pointed at, if any.
    Write { previous: Option<PartHash> },
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
            Self::Done(outcome) => outcome,
        }
    }
}

/// Plans a batch against what the store holds (`current`), letting earlier parts of the batch
/// count as held for later ones with the same name.
pub(crate) fn plan(
    parts: &[VerifiedPart],
    on_conflict: OnConflict,
    mut current: impl FnMut(&PartName) -> Result<Option<PartHash>, StoreError>,
) -> Result<Vec<Step>, StoreError> {
    let mut pending: HashMap<&PartName, PartHash> = HashMap::new();
    let mut steps = Vec::with_capacity(parts.len());
    for part in parts {
        let existing = match pending.get(part.name()) {
            Some(hash) => Some(*hash),
            None => current(part.name())?,
        };
        let step = match existing {
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
        };
        if matches!(step, Step::Write { .. }) {
            pending.insert(part.name(), part.hash());
        }
        steps.push(step);
    }
    Ok(steps)
}
