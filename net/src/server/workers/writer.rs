//! The store writer: commits verified uploads in groups, one durable sync per group, refuses
//! those whose bytes were not the ones offered, then acknowledges each (through the
//! acknowledging thread when the caller has work done before an acknowledgement).

use std::sync::Arc;
use std::sync::mpsc::Receiver;

use storage::{OnConflict, PartStore, PutOutcome, StoreError};
use tracing::field::display;
use tracing::{debug, error, warn};

use super::acker::{Acks, Committed};
use super::{Done, Upload, done, rejection};
use crate::message::Response;
use crate::server::body_pool::BodyPool;
use crate::server::events::{EventSender, ServerEvent};

/// How many uploads, and how many of their bytes, one commit takes at most.
const BATCH_PARTS: usize = 4096;
const BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// Commits [`Upload`]s in groups until the loop and the verifier drop their senders. The bodies of
/// parts not newly stored go back to `bodies` here; [`Acks`] gives back the others.
pub(crate) fn run_writer(
    store: Arc<dyn PartStore>,
    uploads: Receiver<Upload>,
    acks: Acks,
    mut events: EventSender,
    bodies: &BodyPool,
) {
    while let Ok(first) = uploads.recv() {
        let mut batch_bytes = first.size;
        let mut batch = vec![first];
        while batch.len() < BATCH_PARTS && batch_bytes < BATCH_BYTES {
            let Ok(next) = uploads.try_recv() else { break };
            batch_bytes += next.size;
            batch.push(next);
        }
        acks.deliver(commit(store.as_ref(), batch, &mut events, bodies), bodies);
    }
}

/// Stores one group, refusing the bodies that failed verification, and reports each part newly
/// stored: the answers, and the parts that [`Acks`] may have work to do on before they go.
fn commit(
    store: &dyn PartStore,
    batch: Vec<Upload>,
    events: &mut EventSender,
    bodies: &BodyPool,
) -> Committed {
    let mut committed = Committed::default();
    let mut verified = Vec::with_capacity(batch.len());
    let mut owners = Vec::with_capacity(batch.len());
    for upload in batch {
        let (conn, id, peer, released) = (upload.conn, upload.id, upload.peer, upload.size);
        match upload.body.verified() {
            Ok(part) => {
                verified.push(part);
                owners.push((conn, id, released, peer));
            }
            Err(err) => {
                warn!(%err, peer_id = peer.map(display), "refusing a pushed part");
                committed.answers.push(Done {
                    released,
                    ..done(conn, id, rejection(id, &err))
                });
            }
        }
    }
    if verified.is_empty() {
        return committed;
    }
    let outcomes = match store.put_batch(&verified, OnConflict::Refuse) {
        Ok(outcomes) => outcomes,
        Err(err) => {
            error!(%err, parts = verified.len(), "cannot commit pushed parts");
            for &(conn, id, released, _) in &owners {
                let response = rejection(id, &err);
                committed.answers.push(Done {
                    released,
                    ..done(conn, id, response)
                });
            }
            return committed;
        }
    };
    for ((part, outcome), (conn, id, released, peer)) in
        verified.into_iter().zip(outcomes).zip(owners)
    {
        let peer_id = peer.map(display);
        let newly_stored = matches!(
            outcome,
            Ok(PutOutcome::Stored | PutOutcome::Replaced { .. })
        );
        let response = match outcome {
            Ok(PutOutcome::Stored | PutOutcome::Replaced { .. }) => {
                debug!(name = %part.name(), size = part.size(), peer_id, "stored");
                Response::Stored { id }
            }
            Ok(PutOutcome::Repaired) => {
                debug!(name = %part.name(), size = part.size(), peer_id, "repaired");
                Response::Stored { id }
            }
            Ok(PutOutcome::AlreadyHad) => Response::Have { id },
            Err(StoreError::Conflict { existing, .. }) => Response::Conflict {
                id,
                existing: *existing.as_bytes(),
            },
            Err(err) => rejection(id, &err),
        };
        if newly_stored {
            events.emit(ServerEvent::Stored {
                name: part.name().clone(),
                kind: part.kind(),
                size: part.size(),
                peer,
            });
            committed.stored.push((committed.answers.len(), part));
        } else {
            bodies.give(part.into_bytes());
        }
        committed.answers.push(Done {
            released,
            ..done(conn, id, response)
        });
    }
    committed
}
