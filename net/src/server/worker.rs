//! The threads that touch the store, so the event loop never waits on a disk.
//!
//! The reader answers offers, lists and gets one at a time. The writer takes every upload
//! queued when it wakes, verifies each against its offered hash, and commits them all with one
//! `put_batch` (one durable sync), so many small parts cost one flush. Each finished request
//! goes back to the loop as a [`Done`], followed by a wake of the loop's [`mio::Waker`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};

use mio::Waker;
use storage::{
    Manifest, OnConflict, Overwrite, PartHash, PartKind, PartName, PartStore, PutOutcome,
    StoreError, VerifiedPart,
};
use tracing::{debug, error, warn};

use crate::message::{ErrorCode, RequestId, Response, WireEntry};

/// A connection as the workers name it: its slab slot and a serial number, so an answer for a
/// closed connection is never delivered to a new one that reused the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnId {
    pub(crate) slot: usize,
    pub(crate) serial: u64,
}

/// Work for the reader thread.
#[derive(Debug)]
pub(crate) enum ReadJob {
    Offer {
        conn: ConnId,
        id: RequestId,
        name: PartName,
        hash: PartHash,
    },
    List {
        conn: ConnId,
        id: RequestId,
        after: Option<String>,
        limit: u32,
    },
    Get {
        conn: ConnId,
        id: RequestId,
        name: PartName,
    },
}

/// A received body for the writer thread, not yet verified.
#[derive(Debug)]
pub(crate) struct Upload {
    pub(crate) conn: ConnId,
    pub(crate) id: RequestId,
    pub(crate) name: PartName,
    pub(crate) hash: PartHash,
    pub(crate) kind: PartKind,
    pub(crate) bytes: Vec<u8>,
}

/// A finished request: the response to send, any body bytes after it, and the upload bytes it
/// releases from the connection's and the server's budgets.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) conn: ConnId,
    pub(crate) id: RequestId,
    pub(crate) response: Response,
    pub(crate) body: Vec<u8>,
    pub(crate) released: u64,
}

/// Where the workers send what they finish.
#[derive(Clone)]
pub(crate) struct Outbox {
    pub(crate) done: Sender<Done>,
    pub(crate) waker: Arc<Waker>,
}

impl Outbox {
    fn send(&self, done: Done) {
        // The loop only drops its receiver after joining the workers.
        let _ = self.done.send(done);
    }

    fn wake(&self) {
        if let Err(err) = self.waker.wake() {
            error!(%err, "cannot wake the event loop");
        }
    }
}

/// Serves [`ReadJob`]s until the loop drops its sender.
pub(crate) fn run_reader(store: Arc<dyn PartStore>, jobs: Receiver<ReadJob>, outbox: Outbox) {
    while let Ok(job) = jobs.recv() {
        outbox.send(answer(store.as_ref(), job));
        while let Ok(job) = jobs.try_recv() {
            outbox.send(answer(store.as_ref(), job));
        }
        outbox.wake();
    }
}

fn answer(store: &dyn PartStore, job: ReadJob) -> Done {
    match job {
        ReadJob::Offer {
            conn,
            id,
            name,
            hash,
        } => {
            let response = match store.lookup(&name) {
                Ok(None) => Response::Want { id },
                Ok(Some(held)) if held.hash == hash => Response::Have { id },
                Ok(Some(held)) => Response::Conflict {
                    id,
                    existing: *held.hash.as_bytes(),
                },
                Err(err) => rejection(id, &err),
            };
            done(conn, id, response)
        }
        ReadJob::List {
            conn,
            id,
            after,
            limit,
        } => {
            let response = match store.list() {
                Ok(parts) => {
                    let start = after.map_or(0, |after| {
                        parts.partition_point(|part| part.name.as_str() <= after.as_str())
                    });
                    let page = &parts[start..parts.len().min(start + limit as usize)];
                    let next = (start + page.len() < parts.len())
                        .then(|| page.last().map(|part| part.name.as_str().to_owned()))
                        .flatten();
                    Response::Page {
                        id,
                        parts: page.iter().map(WireEntry::from).collect(),
                        next,
                    }
                }
                Err(err) => rejection(id, &err),
            };
            done(conn, id, response)
        }
        ReadJob::Get { conn, id, name } => match store.get(&name) {
            Ok(bytes) => Done {
                conn,
                id,
                response: Response::Part {
                    id,
                    hash: *PartHash::of(&bytes).as_bytes(),
                    size: bytes.len() as u64,
                },
                body: bytes,
                released: 0,
            },
            Err(err) => done(conn, id, rejection(id, &err)),
        },
    }
}

/// How many uploads, and how many of their bytes, one commit takes at most.
const BATCH_PARTS: usize = 4096;
const BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// Where `serve --export-dir` writes each part once it is stored.
#[derive(Debug, Clone)]
pub(crate) struct ExportTo {
    pub(crate) dir: PathBuf,
    pub(crate) overwrite: Overwrite,
}

/// Commits [`Upload`]s in groups until the loop drops its sender.
pub(crate) fn run_writer(
    store: Arc<dyn PartStore>,
    uploads: Receiver<Upload>,
    outbox: Outbox,
    export: Option<ExportTo>,
) {
    while let Ok(first) = uploads.recv() {
        let mut batch_bytes = first.bytes.len() as u64;
        let mut batch = vec![first];
        while batch.len() < BATCH_PARTS && batch_bytes < BATCH_BYTES {
            let Ok(next) = uploads.try_recv() else { break };
            batch_bytes += next.bytes.len() as u64;
            batch.push(next);
        }
        let stored = commit(store.as_ref(), batch, &outbox);
        outbox.wake();
        if let Some(export) = &export {
            export_stored(store.as_ref(), export, &stored);
        }
    }
}

/// Verifies and stores one group, sends every answer, and returns the names newly stored.
fn commit(store: &dyn PartStore, batch: Vec<Upload>, outbox: &Outbox) -> Vec<PartName> {
    let mut verified = Vec::with_capacity(batch.len());
    let mut owners = Vec::with_capacity(batch.len());
    for upload in batch {
        let released = upload.bytes.len() as u64;
        let (conn, id) = (upload.conn, upload.id);
        let checked = VerifiedPart::new(upload.name, upload.hash, upload.bytes)
            .map(|part| part.with_kind(upload.kind))
            .and_then(|part| check_manifest(store, &part).map(|()| part));
        match checked {
            Ok(part) => {
                verified.push(part);
                owners.push((conn, id, released));
            }
            Err(err) => {
                warn!(%err, "refusing a pushed part");
                outbox.send(Done {
                    released,
                    ..done(conn, id, rejection(id, &err))
                });
            }
        }
    }
    if verified.is_empty() {
        return Vec::new();
    }
    let outcomes = match store.put_batch(&verified, OnConflict::Refuse) {
        Ok(outcomes) => outcomes,
        Err(err) => {
            error!(%err, parts = verified.len(), "cannot commit pushed parts");
            for &(conn, id, released) in &owners {
                let response = rejection(id, &err);
                outbox.send(Done {
                    released,
                    ..done(conn, id, response)
                });
            }
            return Vec::new();
        }
    };
    let mut stored = Vec::new();
    for ((part, outcome), (conn, id, released)) in verified.iter().zip(outcomes).zip(owners) {
        let response = match outcome {
            Ok(PutOutcome::Stored | PutOutcome::Replaced { .. }) => {
                debug!(name = %part.name(), size = part.size(), "stored");
                // A chunk is exported as part of its file, when the manifest arrives.
                if !part.name().is_chunk() {
                    stored.push(part.name().clone());
                }
                Response::Stored { id }
            }
            Ok(PutOutcome::AlreadyHad) => Response::Have { id },
            Err(StoreError::Conflict { existing, .. }) => Response::Conflict {
                id,
                existing: *existing.as_bytes(),
            },
            Err(err) => rejection(id, &err),
        };
        outbox.send(Done {
            released,
            ..done(conn, id, response)
        });
    }
    stored
}

/// A manifest is stored only once every chunk it lists is held, with the hash and length it
/// lists. The whole file's hash is not checked here, which would read every chunk back: it is
/// checked whenever the file is read (export, verify, and a fetching peer before it stores
/// the manifest).
fn check_manifest(store: &dyn PartStore, part: &VerifiedPart) -> Result<(), StoreError> {
    if part.kind() != PartKind::Manifest {
        return Ok(());
    }
    let bad = |reason| StoreError::BadManifest {
        name: part.name().clone(),
        reason,
    };
    let manifest = Manifest::decode(part.bytes()).map_err(bad)?;
    for (index, chunk) in manifest.chunk_infos().enumerate() {
        let held = store.lookup(&chunk.name)?;
        if held.is_none_or(|held| held.hash != chunk.hash || held.size != chunk.size) {
            return Err(StoreError::ChunkUnavailable {
                name: part.name().clone(),
                index,
                hash: chunk.hash,
                source: Box::new(StoreError::NotFound(chunk.name)),
            });
        }
    }
    Ok(())
}

fn export_stored(store: &dyn PartStore, export: &ExportTo, names: &[PartName]) {
    if names.is_empty() {
        return;
    }
    let options =
        storage::ExportOptions::new(storage::EXPORT_SUFFIX).map(|o| o.overwrite(export.overwrite));
    match options.and_then(|options| storage::export(store, &export.dir, Some(names), &options)) {
        Ok(outcomes) => {
            for (name, written) in outcomes {
                match written {
                    Ok(path) => debug!(%name, path = %path.display(), "exported"),
                    Err(err) => warn!(%name, %err, "cannot export a stored part"),
                }
            }
        }
        Err(err) => error!(%err, dir = %export.dir.display(), "cannot export stored parts"),
    }
}

fn done(conn: ConnId, id: RequestId, response: Response) -> Done {
    Done {
        conn,
        id,
        response,
        body: Vec::new(),
        released: 0,
    }
}

/// The `Rejected` answer for a store error, with the code a client can act on.
pub(crate) fn rejection(id: RequestId, err: &StoreError) -> Response {
    let code = match err {
        StoreError::NotFound(_) => ErrorCode::NotFound,
        StoreError::Conflict { .. } => ErrorCode::Conflict,
        StoreError::HashMismatch { .. } => ErrorCode::HashMismatch,
        StoreError::Corrupt { .. } | StoreError::BodyMissing { .. } => ErrorCode::Corrupt,
        StoreError::TooLarge { .. } => ErrorCode::PartTooLarge,
        StoreError::InvalidName { .. } | StoreError::ChunkNameMismatch { .. } => {
            ErrorCode::InvalidName
        }
        StoreError::BadManifest { .. } | StoreError::ChunkUnavailable { .. } => {
            ErrorCode::BadManifest
        }
        _ => ErrorCode::StorageFailed,
    };
    Response::Rejected {
        id,
        code,
        message: err.to_string(),
    }
}
