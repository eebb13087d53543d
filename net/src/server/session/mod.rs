//! The protocol as one connection lives it: its state, the dispatch of each frame, and the
//! answers queued for it. Runs on the event-loop thread, so it never touches the store.
//!
//! `handshake.rs` takes a connection up to `Welcome`, `requests.rs` turns requests into jobs
//! for the workers or immediate answers, and `budget.rs` decides when to read and when the
//! peer has been silent too long.

mod budget;
mod handshake;
mod requests;
mod subscription;

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use storage::{PartHash, PartKind, PartName};
use tracing::{info, warn};

use super::body_pool::BodyPool;
use super::connection::{Connection, Incoming, ReadEnd};
use super::memory::{Memory, REQUEST_COST};
use super::turn_shares::TurnShares;
use super::workers::{ConnId, Done, ReadJob, ToReaders};
use crate::Limits;
use crate::auth::Key;
use crate::frame::FrameError;
use crate::message::{ErrorCode, Request, RequestId, Response, WireHash};
use crate::tls::PeerId;

/// Requests in flight whose room the table keeps once they are all answered.
const IDLE_REQUEST_ROOM: usize = 64;

/// What a plaintext peer of version 1 is told, in a version-1 `Error` frame.
const VERSION_1_REFUSAL: &str = "this peer speaks protocol version 2, which begins with a TLS 1.3 handshake; \
     plaintext version 1 is not served: upgrade p2p-store (supported versions: [2])";

/// Time a failed connection gets to take its error reply before it is closed regardless.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// `Get`s of one connection at the reader at once. Their answers land in the output buffer,
/// which the peer may not be reading, so they are bounded here as well as by output bytes.
const MAX_GETS_AT_WORKERS: usize = 16;

/// `List`s of one connection at the reader at once, for the same reason.
const MAX_LISTS_AT_WORKERS: usize = 4;

/// What a `List` at the reader is charged: a full page of the longest names.
const LIST_COST: u64 = crate::frame::MAX_PAGE_ENTRIES as u64 * (PartName::MAX_LEN as u64 + 64);

/// What the sessions share: the limits, the way to the workers, the server-wide budget.
pub(crate) struct Shared {
    pub(crate) limits: Limits,
    pub(crate) peer_name: String,
    /// This server's ID, bound into the key proofs.
    pub(crate) own_id: PeerId,
    /// TLS for every connection; `None` only for a loopback benchmark.
    pub(crate) tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    pub(crate) key: Option<Key>,
    pub(crate) read_only: bool,
    pub(crate) read_jobs: Sender<ToReaders>,
    pub(crate) uploads: super::workers::UploadQueue,
    /// Everything held for the peers, against `limits.max_memory`.
    pub(crate) memory: Memory,
    /// What each host may still have handled in this turn of the loop.
    pub(crate) turn: TurnShares,
    /// Buffers for the next bodies, given back by the store writer.
    pub(crate) bodies: std::sync::Arc<BodyPool>,
    /// What the loop counts for the outside world.
    pub(crate) counters: std::sync::Arc<super::ServerCounters>,
    pub(crate) shutting_down: bool,
    /// What the store newly holds, for subscribers.
    pub(crate) feed: std::sync::Arc<storage::Feed>,
    /// Set by the feed when it has entries the loop has not announced yet.
    pub(crate) news: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A request the session has not finished answering.
#[derive(Debug)]
enum Pending {
    Offer(Offer),
    List,
    Get,
    Stat,
    /// Lasts as long as the connection.
    Subscription,
}

/// An offer the session is working on.
#[derive(Debug)]
struct Offer {
    name: PartName,
    hash: PartHash,
    size: u64,
    kind: PartKind,
    stage: Stage,
}

/// Where an offer is between its `Offer` and its final answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// At the store reader, which decides between `Want`, `Have` and `Conflict`.
    LookingUp,
    /// Answered `Want`: its `Body` or `Cancel` may come.
    Wanted,
    /// Its body is at the verifier or the store writer.
    Uploading,
}

pub(crate) struct Session {
    pub(crate) conn: Connection,
    pub(crate) id: ConnId,
    span: tracing::Span,
    /// The ID the peer proved, noted once its handshake is done: every upload carries it.
    peer_id: Option<PeerId>,
    accepted_at: Instant,
    greeted: bool,
    /// The nonce of a `Challenge` sent, and the version the client asked for, while its
    /// proof is awaited.
    challenge: Option<(WireHash, u16)>,
    /// Requests not yet answered in full, by id.
    active: HashMap<RequestId, Pending>,
    /// A `Body` or `Cancel` that came while its offer was still being looked up: nothing
    /// more is parsed until the lookup's answer decides it, so the outcome does not depend on
    /// how fast the reader was.
    held: Option<(RequestId, Request)>,
    /// Jobs at the workers: while any is out, the wait is ours, not the peer's.
    at_workers: usize,
    /// The `Get`s among them.
    gets_at_workers: usize,
    /// The `List`s among them.
    lists_at_workers: usize,
    /// The largest part this connection was sent: parts stored before the server's part limit
    /// was lowered may be larger than it.
    largest_answer: u64,
    /// What this session has charged to the server's memory.
    charged: u64,
    /// Upload bytes of this connection queued for the verifier and the writer.
    buffered: u64,
    /// When a fatal error was queued; the connection closes once it is written.
    closing_since: Option<Instant>,
    /// The peer closed its sending side.
    read_closed: bool,
    /// Reading stopped at a budget, not because the socket was empty.
    pub(crate) stalled: bool,
    /// Reading stopped at this turn's share of the connection or of its host; the loop
    /// comes back to it.
    yielded: bool,
    /// Requests handled since the loop last drove the session.
    handled_this_drive: u32,
    pub(crate) wants_write: bool,
    /// What this connection follows, once it subscribed.
    subscription: Option<subscription::Subscription>,
}

impl Session {
    pub(crate) fn new(conn: Connection, id: ConnId, now: Instant) -> Self {
        let span = tracing::info_span!(
            "conn",
            peer = %conn.peer,
            slot = id.slot,
            peer_id = tracing::field::Empty
        );
        Self {
            conn,
            id,
            span,
            peer_id: None,
            accepted_at: now,
            greeted: false,
            challenge: None,
            active: HashMap::new(),
            held: None,
            at_workers: 0,
            gets_at_workers: 0,
            lists_at_workers: 0,
            largest_answer: 0,
            charged: 0,
            buffered: 0,
            closing_since: None,
            read_closed: false,
            stalled: false,
            yielded: false,
            handled_this_drive: 0,
            wants_write: false,
            subscription: None,
        }
    }

    /// The connection's span: its address, slot and, once the handshake is done, the peer's
    /// ID, so whatever the loop logs about the connection says whose it is.
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Reads and acts on whatever the peer sent, as far as the budgets allow.
    ///
    /// # Errors
    /// A socket error: the connection is gone.
    pub(crate) fn service(&mut self, shared: &mut Shared, now: Instant) -> std::io::Result<()> {
        let span = self.span.clone();
        let _entered = span.enter();
        self.conn.new_turn();
        self.yielded = false;
        self.handled_this_drive = 0;
        loop {
            self.take_incoming(shared, now);
            self.recharge(shared);
            self.stalled = !self.may_read(shared);
            if self.stalled || self.closing_since.is_some() || self.read_closed || self.yielded {
                return Ok(());
            }
            match self.conn.read(now, &shared.bodies)? {
                ReadEnd::Full => {}
                ReadEnd::Yield => {
                    self.yielded = true;
                    self.take_incoming(shared, now);
                    self.recharge(shared);
                    return Ok(());
                }
                ReadEnd::Drained => {
                    self.take_incoming(shared, now);
                    self.conn.trim();
                    self.recharge(shared);
                    self.stalled = !self.may_read(shared);
                    return Ok(());
                }
                ReadEnd::Version1 => {
                    self.fail(ErrorCode::UnsupportedVersion, VERSION_1_REFUSAL.into());
                    return Ok(());
                }
                ReadEnd::Closed => {
                    self.read_closed = true;
                    self.take_incoming(shared, now);
                    self.recharge(shared);
                    // Requests a budget or the turn's share held back are read once it frees;
                    // bytes left otherwise are a frame the peer cut short.
                    self.stalled = !self.may_read(shared);
                    if !self.stalled && !self.yielded && self.conn.has_partial_input() {
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
    pub(crate) fn complete(&mut self, mut done: Done, shared: &mut Shared) {
        self.at_workers -= 1;
        self.buffered -= done.released;
        if let Response::Want { id } = done.response {
            if let Some(Pending::Offer(offer)) = self.active.get_mut(&id) {
                offer.stage = Stage::Wanted;
            }
        } else {
            match self.active.remove(&done.id) {
                Some(Pending::Get) => {
                    self.gets_at_workers -= 1;
                    self.largest_answer = self.largest_answer.max(done.body.len() as u64);
                }
                Some(Pending::List) => self.lists_at_workers -= 1,
                _ => {}
            }
        }
        let body = std::mem::take(&mut done.body);
        self.respond(&done.response, body);
        if self.held.as_ref().is_some_and(|(id, _)| *id == done.id)
            && let Some((_, request)) = self.held.take()
        {
            self.handle(Incoming::Request(request), shared);
        }
        self.recharge(shared);
    }

    /// Bytes held for this peer: its buffers, its uploads at the writer, what its jobs at the
    /// reader will bring, and its requests in flight.
    fn held(&self, limits: &Limits) -> u64 {
        self.conn.held()
            + self.buffered
            + self.gets_at_workers as u64 * self.get_cost(limits)
            + self.lists_at_workers as u64 * LIST_COST
            + self.active.len() as u64 * REQUEST_COST
    }

    /// Brings this session's charge to the server's memory up to date.
    pub(crate) fn recharge(&mut self, shared: &mut Shared) {
        // The table keeps the room of its busiest moment, which the charge per request does
        // not count: a full window of 4096 leaves 8192 buckets behind.
        if self.active.is_empty() && self.active.capacity() > IDLE_REQUEST_ROOM {
            self.active = HashMap::new();
        }
        let held = self.held(&shared.limits);
        shared.memory.recharge(self.conn.host(), self.charged, held);
        self.charged = held;
    }

    /// What a `Get` at the reader is charged: the largest part it may bring, since its size is
    /// known only once the reader has it, and a peer picks what it asks for.
    fn get_cost(&self, limits: &Limits) -> u64 {
        limits.max_part_size.max(self.largest_answer)
    }

    /// Whether any of its jobs is at a worker.
    pub(crate) fn has_jobs_at_workers(&self) -> bool {
        self.at_workers > 0
    }

    /// Whether reading stopped at this turn's share, so the loop must come back to it.
    pub(crate) fn yielded(&self) -> bool {
        self.yielded
    }

    /// Whether it yielded with nothing handled: its host's share was gone before its turn.
    pub(crate) fn starved(&self) -> bool {
        self.yielded && self.handled_this_drive == 0
    }

    /// What this session has charged to the server's memory.
    pub(crate) fn charged(&self) -> u64 {
        self.charged
    }

    /// What closing this session gives back at once: everything but its uploads, which stay
    /// charged until the writer is done with them.
    pub(crate) fn releasable(&self) -> u64 {
        self.charged - self.buffered.min(self.charged)
    }

    /// Whether the session is finished and its socket can be dropped.
    pub(crate) fn is_finished(&self) -> bool {
        if self.conn.pending_output() > 0 {
            return false;
        }
        if self.closing_since.is_some() {
            return true;
        }
        // Requests read but held back by a budget or the turn's share still need their answers.
        let unread = (self.stalled || self.yielded) && self.conn.has_partial_input();
        // Once the peer has stopped sending, an offer waiting for its body can never get it.
        // Asked after every drive, so the requests in flight (thousands, for a peer that
        // offers and never sends) are looked through only once the peer has stopped sending.
        self.read_closed
            && !unread
            && self.at_workers == 0
            && self.active.values().all(
                |pending| matches!(pending, Pending::Offer(offer) if offer.stage == Stage::Wanted),
            )
    }

    /// Since when the session could have been closed to make room for a newcomer: since it
    /// was accepted if it has not finished its handshake (a peer that has not begun its
    /// session holds a slot for nothing), since its last activity if it waits on its peer and
    /// nothing else, `None` while the server owes the peer something.
    pub(crate) fn evictable_since(&self) -> Option<Instant> {
        if self.closing_since.is_some() {
            return None;
        }
        if !self.greeted {
            return Some(self.accepted_at);
        }
        self.waits_on_its_peer().then_some(self.conn.last_activity)
    }

    /// Since when the session has been between two requests, with nothing of one received or
    /// held back (since it was accepted, if it is in its handshake); `None` otherwise. Closing
    /// it then loses nothing the peer sent.
    pub(crate) fn between_requests_since(&self) -> Option<Instant> {
        self.evictable_since()
            .filter(|_| !self.conn.has_partial_input())
    }

    /// Whether the session has finished its handshake and said `Hello`.
    pub(crate) fn is_greeted(&self) -> bool {
        self.greeted
    }

    /// Whether only the peer can move the session on: nothing at the workers or held back, no
    /// answer unwritten, and a frame or body half-received only if the server would read on
    /// (neither a budget nor the turn's share stopped it). Closing it loses at most that half
    /// request, which the peer can send again; an offer answered `Want` whose body has not
    /// started can be offered again too.
    fn waits_on_its_peer(&self) -> bool {
        self.at_workers == 0
            && self.held.is_none()
            && self.conn.pending_output() == 0
            && !(self.conn.has_partial_input() && (self.stalled || self.yielded))
    }

    /// Stops taking requests: new offers are refused, a body in progress is abandoned.
    pub(crate) fn shut_down(&mut self) {
        if self.closing_since.is_none() && self.at_workers == 0 {
            self.fail(ErrorCode::ShuttingDown, "the server is stopping".into());
        }
    }

    /// Ends the connection with `Error ShuttingDown`, whatever it has at the workers: for when
    /// a worker has died and those answers will never come.
    pub(crate) fn abandon(&mut self, message: String) {
        self.fail(ErrorCode::ShuttingDown, message);
    }

    /// Records the write progress of a flush.
    pub(crate) fn note_written(&mut self, now: Instant) {
        self.conn.last_activity = now;
    }

    fn take_incoming(&mut self, shared: &mut Shared, now: Instant) {
        let host = self.conn.host();
        let share = shared.turn.left(host);
        let mut left = share;
        while self.closing_since.is_none() && self.may_read(shared) {
            if left == 0 {
                self.yielded = true;
                break;
            }
            match self.conn.next_incoming(now, &shared.bodies) {
                Ok(Some(incoming)) => {
                    left -= 1;
                    self.handle(incoming, shared);
                }
                Ok(None) => break,
                Err(err) => {
                    let code = match err {
                        FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
                        _ => ErrorCode::Malformed,
                    };
                    self.fail(code, err.to_string());
                }
            }
        }
        shared.turn.took(host, share - left);
        self.handled_this_drive += share - left;
    }

    /// Whether request `id` is an offer still at the store reader.
    fn looking_up(&self, id: RequestId) -> bool {
        matches!(self.active.get(&id), Some(Pending::Offer(offer)) if offer.stage == Stage::LookingUp)
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
            Request::Body { id, .. } | Request::Cancel { id } if self.looking_up(id) => {
                self.held = Some((id, request));
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
            Request::List { id, after, limit } => self.list(id, after, limit, shared),
            Request::Get { id, name } => self.get(id, name, shared),
            Request::Stat { id, name } => self.stat(id, name, shared),
            Request::Subscribe { id, epoch, after } => {
                let cursor = storage::Cursor { epoch, seq: after };
                self.subscribe(id, cursor, shared, Instant::now());
            }
        }
    }

    fn send_job(&mut self, shared: &Shared, job: ReadJob) {
        self.at_workers += 1;
        if shared.read_jobs.send(ToReaders::Job(job)).is_err() {
            self.fail(
                ErrorCode::ShuttingDown,
                "the store reader has stopped".into(),
            );
        }
    }

    fn reject(&mut self, id: RequestId, code: ErrorCode, message: String) {
        self.respond(&Response::Rejected { id, code, message }, Vec::new());
    }

    /// Queues the last frame of a connection that can no longer be trusted or served.
    fn fail(&mut self, code: ErrorCode, message: String) {
        if self.closing_since.is_some() {
            return;
        }
        // Timeouts and stops come from the loop, outside `service`'s span.
        let _in = self.span.clone().entered();
        // A stop closing its connections is what was asked for, not a problem to warn about.
        if code == ErrorCode::ShuttingDown {
            info!(?code, %message, "closing the connection");
        } else {
            warn!(?code, %message, "closing the connection");
        }
        self.respond(&Response::Error { code, message }, Vec::new());
        self.closing_since = Some(Instant::now());
    }

    /// Queues a response; nothing follows the `Error` that closes a connection.
    fn respond(&mut self, response: &Response, body: Vec<u8>) {
        if self.closing_since.is_some() {
            return;
        }
        if let Err(err) = self.conn.queue(response, body) {
            tracing::error!(%err, "cannot encode a response");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plaintext refusal a version-1 peer gets (PROTOCOL.md §1.1), byte for byte.
    #[test]
    fn the_version_1_refusal_is_pinned() {
        let refusal = Response::Error {
            code: ErrorCode::UnsupportedVersion,
            message: VERSION_1_REFUSAL.into(),
        };
        let hex: String = crate::frame::encode_response(&refusal)
            .unwrap()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(
            hex,
            "aa00000008000000040000009a0000000000000074686973207065657220737065616b732070726f746f636f6c2076657273696f6e20322c20776869636820626567696e732077697468206120544c5320312e332068616e647368616b653b20706c61696e746578742076657273696f6e2031206973206e6f74207365727665643a2075706772616465207032702d73746f72652028737570706f727465642076657273696f6e733a205b325d29"
        );
    }
}
