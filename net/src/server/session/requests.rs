//! The requests after the handshake: offers and their bodies or cancels, lists and gets,
//! each checked here and turned into a job for a worker or an immediate answer.

use storage::{PartHash, PartKind, PartName};
use tracing::warn;

use super::{Offer, Pending, Session, Shared, Stage};
use crate::frame::MAX_PAGE_ENTRIES;
use crate::message::{ErrorCode, RequestId};
use crate::server::workers::{Body, ReadJob, Upload};

impl Session {
    pub(super) fn offer(
        &mut self,
        id: RequestId,
        (name, hash, size, kind): (String, PartHash, u64, PartKind),
        shared: &Shared,
    ) {
        let Some(name) = self.valid_name(id, name) else {
            return;
        };
        if shared.shutting_down {
            return self.reject(id, ErrorCode::ShuttingDown, "the server is stopping".into());
        }
        if shared.read_only {
            return self.reject(
                id,
                ErrorCode::ReadOnly,
                "this server is read-only: it serves lists and gets, not pushes".into(),
            );
        }
        if name.chunk_hash().is_some_and(|promised| promised != hash) {
            return self.reject(
                id,
                ErrorCode::InvalidName,
                format!("{name:?} is a chunk's name, but the offer's hash is {hash}"),
            );
        }
        if kind == PartKind::Manifest && name.is_chunk() {
            // Stored, it would be hidden by listings and skipped by exports as a chunk.
            return self.reject(
                id,
                ErrorCode::InvalidName,
                format!("{name:?} is a chunk's name; a manifest is offered under its file's name"),
            );
        }
        if size > shared.limits.max_part_size {
            let max = shared.limits.max_part_size;
            return self.reject(
                id,
                ErrorCode::PartTooLarge,
                format!("part {name:?} is {size} bytes, the limit is {max}"),
            );
        }
        let offer = Offer {
            name: name.clone(),
            hash,
            size,
            kind,
            stage: Stage::LookingUp,
        };
        self.active.insert(id, Pending::Offer(offer));
        self.send_job(
            shared,
            ReadJob::Offer {
                conn: self.id,
                id,
                name,
                hash,
            },
        );
    }

    pub(super) fn start_body(&mut self, id: RequestId, size: u64) {
        match self.active.get(&id) {
            Some(Pending::Offer(offer)) if offer.stage == Stage::Wanted && offer.size == size => {
                // size <= max_part_size was checked when the offer came.
                let size = usize::try_from(size).expect("a checked part size fits in memory");
                self.conn.expect_body(id, size);
            }
            _ => self.fail(
                ErrorCode::UnexpectedBody,
                format!("a body of {size} bytes for request {id}, which has no wanted offer of that size"),
            ),
        }
    }

    pub(super) fn cancel(&mut self, id: RequestId) {
        match self.active.get(&id) {
            Some(Pending::Offer(offer)) if offer.stage == Stage::Wanted => {
                self.active.remove(&id);
                self.reject(id, ErrorCode::Cancelled, "offer withdrawn".into());
            }
            _ => self.fail(
                ErrorCode::UnexpectedBody,
                format!("a cancel for request {id}, which has no wanted offer"),
            ),
        }
    }

    pub(super) fn upload(&mut self, id: RequestId, bytes: Vec<u8>, shared: &mut Shared) {
        let Some(Pending::Offer(offer)) = self.active.get_mut(&id) else {
            unreachable!("a body is only expected for an active offer");
        };
        offer.stage = Stage::Uploading;
        self.buffered += bytes.len() as u64;
        self.at_workers += 1;
        let upload = Upload {
            conn: self.id,
            peer: self.peer_id,
            id,
            size: bytes.len() as u64,
            body: Body::arrived(offer.name.clone(), offer.hash, offer.kind, bytes),
        };
        if !shared.uploads.send(upload) {
            self.fail(
                ErrorCode::ShuttingDown,
                "the store workers have stopped".into(),
            );
        }
    }

    pub(super) fn valid_name(&mut self, id: RequestId, name: String) -> Option<PartName> {
        match PartName::new(name.as_str()) {
            Ok(name) => Some(name),
            Err(reason) => {
                warn!(name = %name.escape_debug(), %reason, "refusing a part name");
                self.reject(
                    id,
                    ErrorCode::InvalidName,
                    format!("invalid part name {name:?}: {reason}"),
                );
                None
            }
        }
    }

    /// Checks a new request's id before anything else is answered under it: a duplicate,
    /// or one request more than the handshake allowed, is a broken client and ends the
    /// connection.
    pub(super) fn begin(&mut self, id: RequestId, shared: &Shared) -> bool {
        if self.active.contains_key(&id) {
            self.fail(
                ErrorCode::DuplicateId,
                format!("request id {id} is already in flight"),
            );
            return false;
        }
        let max = shared.limits.max_in_flight;
        if self.active.len() >= max as usize {
            self.fail(
                ErrorCode::TooManyRequests,
                format!("more than {max} requests in flight"),
            );
            return false;
        }
        true
    }

    pub(super) fn list(
        &mut self,
        id: RequestId,
        after: Option<String>,
        limit: u32,
        shared: &Shared,
    ) {
        if self.begin(id, shared) {
            self.active.insert(id, Pending::List);
            self.lists_at_workers += 1;
            let limit = limit.clamp(1, MAX_PAGE_ENTRIES);
            let job = ReadJob::List {
                conn: self.id,
                id,
                after,
                limit,
            };
            self.send_job(shared, job);
        }
    }

    pub(super) fn stat(&mut self, id: RequestId, name: String, shared: &Shared) {
        if self.begin(id, shared)
            && let Some(name) = self.valid_name(id, name)
        {
            self.active.insert(id, Pending::Stat);
            let job = ReadJob::Stat {
                conn: self.id,
                id,
                name,
            };
            self.send_job(shared, job);
        }
    }

    pub(super) fn get(&mut self, id: RequestId, name: String, shared: &Shared) {
        if self.begin(id, shared)
            && let Some(name) = self.valid_name(id, name)
        {
            self.active.insert(id, Pending::Get);
            self.gets_at_workers += 1;
            let job = ReadJob::Get {
                conn: self.id,
                id,
                name,
            };
            self.send_job(shared, job);
        }
    }
}
