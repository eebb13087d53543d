//! The protocol as one connection lives it: handshake, offers, bodies, lists and gets, turned
//! into jobs for the workers or into immediate answers. Runs on the event-loop thread, so it
//! never touches the store.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use storage::{PartHash, PartKind, PartName};
use tracing::{debug, warn};

use super::connection::{Connection, Incoming, ReadEnd};
use super::worker::{ConnId, Done, ReadJob, Upload};
use crate::Limits;
use crate::auth::{self, Key};
use crate::frame::{FrameError, MAX_PAGE_ENTRIES};
use crate::message::{
    ErrorCode, MAGIC, Request, RequestId, Response, SUPPORTED_VERSIONS, WireHash,
};

/// Time a failed connection gets to take its error reply before it is closed regardless.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// `Get`s of one connection at the reader at once. Their answers land in the output buffer,
/// which the peer may not be reading, so they are bounded here as well as by output bytes.
const MAX_GETS_AT_WORKERS: usize = 16;

/// What the sessions share: the limits, the way to the workers, the server-wide budget.
pub(crate) struct Shared {
    pub(crate) limits: Limits,
    pub(crate) peer_name: String,
    pub(crate) key: Option<Key>,
    pub(crate) read_only: bool,
    pub(crate) read_jobs: Sender<ReadJob>,
    pub(crate) uploads: Sender<Upload>,
    /// Upload bytes queued for the writer, over every connection.
    pub(crate) queued_bytes: u64,
    pub(crate) shutting_down: bool,
}

/// A request the session has not finished answering.
#[derive(Debug)]
enum Pending {
    Offer(Offer),
    List,
    Get,
}

/// An offer the session is working on.
#[derive(Debug)]
struct Offer {
    name: PartName,
    hash: PartHash,
    size: u64,
    kind: PartKind,
    wanted: bool,
}

pub(crate) struct Session {
    pub(crate) conn: Connection,
    pub(crate) id: ConnId,
    span: tracing::Span,
    accepted_at: Instant,
    greeted: bool,
    /// The nonce of a `Challenge` sent, and the version the client asked for, while its
    /// proof is awaited.
    challenge: Option<(WireHash, u16)>,
    /// Requests not yet answered in full, by id.
    active: HashMap<RequestId, Pending>,
    /// Jobs at the workers: while any is out, the wait is ours, not the peer's.
    at_workers: usize,
    /// The `Get`s among them.
    gets_at_workers: usize,
    /// Upload bytes of this connection queued for the writer.
    buffered: u64,
    /// When a fatal error was queued; the connection closes once it is written.
    closing_since: Option<Instant>,
    /// The peer closed its sending side.
    read_closed: bool,
    /// Reading stopped at a budget, not because the socket was empty.
    pub(crate) stalled: bool,
    pub(crate) wants_write: bool,
}

impl Session {
    pub(crate) fn new(conn: Connection, id: ConnId, now: Instant) -> Self {
        let span = tracing::info_span!("conn", peer = %conn.peer, slot = id.slot);
        Self {
            conn,
            id,
            span,
            accepted_at: now,
            greeted: false,
            challenge: None,
            active: HashMap::new(),
            at_workers: 0,
            gets_at_workers: 0,
            buffered: 0,
            closing_since: None,
            read_closed: false,
            stalled: false,
            wants_write: false,
        }
    }

    /// Reads and acts on whatever the peer sent, as far as the budgets allow.
    ///
    /// # Errors
    /// A socket error: the connection is gone.
    pub(crate) fn service(&mut self, shared: &mut Shared, now: Instant) -> std::io::Result<()> {
        let span = self.span.clone();
        let _entered = span.enter();
        loop {
            self.take_incoming(shared, now);
            self.stalled = !self.may_read(shared);
            if self.stalled || self.closing_since.is_some() || self.read_closed {
                return Ok(());
            }
            match self.conn.read(now)? {
                ReadEnd::Full => {}
                ReadEnd::Drained => {
                    self.take_incoming(shared, now);
                    self.stalled = !self.may_read(shared);
                    self.conn.trim();
                    return Ok(());
                }
                ReadEnd::Closed => {
                    self.read_closed = true;
                    self.take_incoming(shared, now);
                    if self.conn.has_partial_input() {
                        warn!(
                            "peer closed in the middle of a frame; its partial request is dropped"
                        );
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Applies a worker's answer and queues the response.
    pub(crate) fn complete(&mut self, done: Done, shared: &mut Shared) {
        self.at_workers -= 1;
        self.buffered -= done.released;
        shared.queued_bytes -= done.released;
        if let Response::Want { id } = done.response {
            if let Some(Pending::Offer(offer)) = self.active.get_mut(&id) {
                offer.wanted = true;
            }
        } else if let Some(Pending::Get) = self.active.remove(&done.id) {
            self.gets_at_workers -= 1;
        }
        self.respond(&done.response, &done.body);
    }

    /// Whether the session is finished and its socket can be dropped.
    pub(crate) fn is_finished(&self) -> bool {
        // Once the peer has stopped sending, an offer waiting for its body can never get it.
        let idle = self.at_workers == 0
            && self
                .active
                .values()
                .all(|pending| matches!(pending, Pending::Offer(offer) if offer.wanted));
        // Requests read but held back by a budget still need their answers.
        let unread = self.stalled && self.conn.has_partial_input();
        self.conn.pending_output() == 0
            && (self.closing_since.is_some() || (self.read_closed && idle && !unread))
    }

    /// When the session must hear from its peer again, `None` while the wait is ours.
    pub(crate) fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if let Some(since) = self.closing_since {
            return Some(since + CLOSE_GRACE);
        }
        if !self.greeted {
            return Some(self.accepted_at + limits.handshake_timeout);
        }
        // Held back by the store's budgets rather than by unread answers, the wait is ours.
        let held_by_store = self.stalled
            && (self.conn.pending_output() as u64) < limits.max_buffered_per_connection;
        (self.at_workers == 0 && !held_by_store)
            .then_some(self.conn.last_activity + limits.idle_timeout)
    }

    /// Acts on a passed deadline: a first time, an error reply; after the grace, the end.
    /// Returns whether the connection must be dropped now.
    pub(crate) fn expire(&mut self, limits: &Limits) -> bool {
        if self.closing_since.is_some() {
            return true;
        }
        let message = if self.greeted {
            format!("no request for {}s", limits.idle_timeout.as_secs())
        } else {
            format!(
                "no handshake within {}s",
                limits.handshake_timeout.as_secs()
            )
        };
        self.fail(ErrorCode::Timeout, message);
        false
    }

    /// Stops taking requests: new offers are refused, a body in progress is abandoned.
    pub(crate) fn shut_down(&mut self) {
        if self.closing_since.is_none() && self.at_workers == 0 {
            self.fail(ErrorCode::ShuttingDown, "the server is stopping".into());
        }
    }

    /// Records the write progress of a flush.
    pub(crate) fn note_written(&mut self, now: Instant) {
        self.conn.last_activity = now;
    }

    /// Whether to take more from the peer. The number of requests in flight is no reason to
    /// stop: an offer answered `Want` stays in flight until its body is read.
    fn may_read(&self, shared: &Shared) -> bool {
        let limits = &shared.limits;
        self.closing_since.is_none()
            && !shared.shutting_down
            && self.buffered < limits.max_buffered_per_connection
            && (self.conn.pending_output() as u64) < limits.max_buffered_per_connection
            && self.gets_at_workers < MAX_GETS_AT_WORKERS
            && shared.queued_bytes < limits.max_queued_bytes
    }

    fn take_incoming(&mut self, shared: &mut Shared, now: Instant) {
        while self.closing_since.is_none() && self.may_read(shared) {
            match self.conn.next_incoming(now) {
                Ok(Some(incoming)) => self.handle(incoming, shared),
                Ok(None) => return,
                Err(err) => {
                    let code = match err {
                        FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
                        _ => ErrorCode::Malformed,
                    };
                    self.fail(code, err.to_string());
                }
            }
        }
    }

    fn handle(&mut self, incoming: Incoming, shared: &mut Shared) {
        let request = match incoming {
            Incoming::Body { id, bytes } => return self.upload(id, bytes, shared),
            Incoming::Request(request) => request,
        };
        if !self.greeted {
            return match self.challenge.take() {
                Some(challenge) => self.check_proof(request, challenge, shared),
                None => self.greet(request, shared),
            };
        }
        match request {
            Request::Hello { .. } | Request::Prove { .. } => {
                self.fail(ErrorCode::HandshakeRequired, "a second handshake".into());
            }
            Request::Body { id, size } => self.start_body(id, size),
            Request::Cancel { id } => self.cancel(id),
            Request::Offer {
                id,
                name,
                hash,
                size,
                kind,
            } => {
                if self.begin(id, shared) {
                    let offer = (name, PartHash::from_bytes(hash), size, kind);
                    self.offer(id, offer, shared);
                }
            }
            Request::List { id, after, limit } => {
                if self.begin(id, shared) {
                    self.active.insert(id, Pending::List);
                    let limit = limit.clamp(1, MAX_PAGE_ENTRIES);
                    self.send_job(
                        shared,
                        ReadJob::List {
                            conn: self.id,
                            id,
                            after,
                            limit,
                        },
                    );
                }
            }
            Request::Get { id, name } => {
                if self.begin(id, shared)
                    && let Some(name) = self.valid_name(id, name)
                {
                    self.active.insert(id, Pending::Get);
                    self.gets_at_workers += 1;
                    self.send_job(
                        shared,
                        ReadJob::Get {
                            conn: self.id,
                            id,
                            name,
                        },
                    );
                }
            }
        }
    }

    fn greet(&mut self, request: Request, shared: &Shared) {
        let Request::Hello {
            magic,
            version,
            peer,
        } = request
        else {
            return self.fail(
                ErrorCode::HandshakeRequired,
                "the first frame must be Hello".into(),
            );
        };
        if magic != MAGIC {
            return self.fail(ErrorCode::BadMagic, format!("bad magic {magic:02x?}"));
        }
        if !SUPPORTED_VERSIONS.contains(&version) {
            return self.fail(
                ErrorCode::UnsupportedVersion,
                format!(
                    "version {version} is not supported; supported versions: {SUPPORTED_VERSIONS:?}"
                ),
            );
        }
        debug!(client = %peer.escape_debug(), version, "handshake");
        if shared.key.is_none() {
            return self.welcome(version, shared);
        }
        match auth::nonce() {
            Ok(nonce) => {
                self.challenge = Some((nonce, version));
                self.respond(&Response::Challenge { nonce }, &[]);
            }
            Err(err) => self.fail(ErrorCode::StorageFailed, format!("no random nonce: {err}")),
        }
    }

    /// Checks the client's proof of the key; on success proves the key back and welcomes.
    fn check_proof(
        &mut self,
        request: Request,
        (nonce, version): (WireHash, u16),
        shared: &Shared,
    ) {
        let Some(key) = &shared.key else {
            unreachable!("a challenge is only sent with a key");
        };
        let Request::Prove {
            nonce: client_nonce,
            proof,
        } = request
        else {
            return self.fail(
                ErrorCode::AuthFailed,
                "this server needs proof of its key before anything else (--key-file)".into(),
            );
        };
        if !auth::proofs_match(&key.client_proof(&nonce, &client_nonce), &proof) {
            return self.fail(
                ErrorCode::AuthFailed,
                "wrong key: the proof does not match this server's key".into(),
            );
        }
        let proof = key.server_proof(&client_nonce, &nonce);
        self.respond(&Response::Proven { proof }, &[]);
        self.welcome(version, shared);
    }

    fn welcome(&mut self, version: u16, shared: &Shared) {
        self.greeted = true;
        self.respond(
            &Response::Welcome {
                version,
                peer: shared.peer_name.clone(),
                max_part_size: shared.limits.max_part_size,
                max_in_flight: shared.limits.max_in_flight,
            },
            &[],
        );
    }

    fn offer(
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
            wanted: false,
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

    fn start_body(&mut self, id: RequestId, size: u64) {
        match self.active.get(&id) {
            Some(Pending::Offer(offer)) if offer.wanted && offer.size == size => {
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

    fn cancel(&mut self, id: RequestId) {
        match self.active.get(&id) {
            Some(Pending::Offer(offer)) if offer.wanted => {
                self.active.remove(&id);
                self.reject(id, ErrorCode::Cancelled, "offer withdrawn".into());
            }
            _ => self.fail(
                ErrorCode::UnexpectedBody,
                format!("a cancel for request {id}, which has no wanted offer"),
            ),
        }
    }

    fn upload(&mut self, id: RequestId, bytes: Vec<u8>, shared: &mut Shared) {
        let Some(Pending::Offer(offer)) = self.active.get_mut(&id) else {
            unreachable!("a body is only expected for an active offer");
        };
        offer.wanted = false;
        let size = bytes.len() as u64;
        self.buffered += size;
        shared.queued_bytes += size;
        self.at_workers += 1;
        let upload = Upload {
            conn: self.id,
            id,
            name: offer.name.clone(),
            hash: offer.hash,
            kind: offer.kind,
            bytes,
        };
        if shared.uploads.send(upload).is_err() {
            self.fail(
                ErrorCode::ShuttingDown,
                "the store writer has stopped".into(),
            );
        }
    }

    /// Checks a new request's id before anything else is answered under it: a duplicate,
    /// or one request more than the handshake allowed, is a broken client and ends the
    /// connection.
    fn begin(&mut self, id: RequestId, shared: &Shared) -> bool {
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

    fn valid_name(&mut self, id: RequestId, name: String) -> Option<PartName> {
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

    fn send_job(&mut self, shared: &Shared, job: ReadJob) {
        self.at_workers += 1;
        if shared.read_jobs.send(job).is_err() {
            self.fail(
                ErrorCode::ShuttingDown,
                "the store reader has stopped".into(),
            );
        }
    }

    fn reject(&mut self, id: RequestId, code: ErrorCode, message: String) {
        self.respond(&Response::Rejected { id, code, message }, &[]);
    }

    /// Queues the last frame of a connection that can no longer be trusted or served.
    fn fail(&mut self, code: ErrorCode, message: String) {
        if self.closing_since.is_some() {
            return;
        }
        warn!(?code, %message, "closing the connection");
        self.respond(&Response::Error { code, message }, &[]);
        self.closing_since = Some(Instant::now());
    }

    /// Queues a response; nothing follows the `Error` that closes a connection.
    fn respond(&mut self, response: &Response, body: &[u8]) {
        if self.closing_since.is_some() {
            return;
        }
        if let Err(err) = self.conn.queue(response, body) {
            tracing::error!(%err, "cannot encode a response");
        }
    }
}
