//! One peer's socket and buffers: bytes in, frames out of them, bytes out, through its
//! transport (TLS, `transport.rs`). No protocol decisions are made here; `session` makes them.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;

use super::body_pool::{BodyPool, POOLED_CAPACITY};
use super::output::Output;
use super::transport::{Sniffed, Transport, Wire};
use crate::frame::{self, FrameError, MAX_REQUEST_HEADER};
use crate::message::{Request, RequestId};

/// Bytes read from the socket in one call.
const READ_CHUNK: usize = 64 * 1024;

/// Unparsed input held before the connection stops reading and parses what it has.
const MAX_PENDING_INPUT: usize = 1024 * 1024;

/// Buffer capacity an idle connection keeps; more is given back once the buffer empties, so
/// ten thousand quiet connections cost kilobytes each, not the size of their last burst.
const IDLE_CAPACITY: usize = 4 * 1024;

/// Bytes one connection may read in one turn of the loop before the others get theirs, so
/// one fast uploader cannot hold the loop.
const READ_PER_TURN: usize = 4 * 1024 * 1024;

/// Body bytes that count as a sign of life: a large body on a slow link keeps its connection,
/// a peer dribbling a byte at a time does not.
const PROGRESS_STEP: usize = 64 * 1024;

/// What the next bytes of a connection amount to.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A whole request header. For `Request::Body`, the session must call
    /// [`Connection::expect_body`] or close the connection.
    Request(Request),
    /// The body expected by `expect_body`, complete.
    Body { id: RequestId, bytes: Vec<u8> },
}

/// Room a body's buffer grows by at least: a default 1 MiB chunk arrives in one allocation,
/// a buffer from the [`BodyPool`].
const BODY_GROWTH: usize = POOLED_CAPACITY;

/// A body being received, its buffer grown as its bytes arrive (never to the size the peer
/// declared up front, so a peer that stalls holds only what it sent), and read into without
/// zero-filling first.
#[derive(Debug)]
struct PendingBody {
    id: RequestId,
    bytes: Vec<u8>,
    size: usize,
    /// `bytes.len()` when activity was last recorded.
    progress_mark: usize,
}

impl PendingBody {
    fn is_complete(&self) -> bool {
        self.bytes.len() == self.size
    }

    /// Bytes of the body still to come.
    fn missing(&self) -> usize {
        self.size - self.bytes.len()
    }

    /// Makes room for the next bytes: the rest of the body, [`BODY_GROWTH`] at most, so one
    /// turn of the loop never takes much past what the budget allowed. A first room of
    /// exactly the pooled size is a buffer from `pool`.
    fn grow(&mut self, pool: &BodyPool) {
        if self.bytes.len() == self.bytes.capacity() {
            let room = self.missing().min(BODY_GROWTH);
            if self.bytes.capacity() == 0 && room == POOLED_CAPACITY {
                self.bytes = pool.take();
            } else {
                self.bytes.reserve_exact(room);
            }
        }
    }
}

/// Why a read stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// The socket has nothing more for now.
    Drained,
    /// Enough is buffered; parse it before reading more.
    Full,
    /// The peer closed its side.
    Closed,
    /// This turn's share is read; more may be waiting.
    Yield,
    /// The peer speaks plaintext version 1, and must be told to upgrade.
    Version1,
}

pub(crate) struct Connection {
    pub(crate) stream: TcpStream,
    pub(crate) peer: SocketAddr,
    transport: Transport,
    input: Vec<u8>,
    parsed: usize,
    body: Option<PendingBody>,
    output: Output,
    /// Bytes read since [`Connection::new_turn`].
    read_this_turn: usize,
    /// When a frame or body bytes last arrived.
    pub(crate) last_activity: Instant,
}

impl Connection {
    pub(crate) fn new(
        stream: TcpStream,
        peer: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Self {
        Self {
            stream,
            peer,
            transport,
            input: Vec::new(),
            parsed: 0,
            body: None,
            output: Output::default(),
            read_this_turn: 0,
            last_activity: now,
        }
    }

    /// Reads what the socket has, up to [`MAX_PENDING_INPUT`] unparsed bytes. A body's bytes
    /// go straight into the body's buffer (from `bodies` when it is of the pooled size) when
    /// nothing else is pending.
    ///
    /// # Errors
    /// The socket's errors other than `WouldBlock` and `Interrupted`.
    pub(crate) fn read(&mut self, now: Instant, bodies: &BodyPool) -> io::Result<ReadEnd> {
        match self.transport.sniff(&self.stream)? {
            Sniffed::Waiting => return Ok(ReadEnd::Drained),
            Sniffed::Closed => return Ok(ReadEnd::Closed),
            Sniffed::Version1 => return Ok(ReadEnd::Version1),
            Sniffed::Ready => {}
        }
        let mut grown = false;
        loop {
            if self.read_this_turn >= READ_PER_TURN {
                return Ok(ReadEnd::Yield);
            }
            self.note_body_progress(now);
            if self.pending_input() >= MAX_PENDING_INPUT {
                return Ok(ReadEnd::Full);
            }
            let into_body = self.body.is_some() && self.parsed == self.input.len();
            let result = match &mut self.body {
                Some(body) if self.parsed == self.input.len() => {
                    if body.is_complete() {
                        return Ok(ReadEnd::Full);
                    }
                    if body.bytes.len() == body.bytes.capacity() {
                        // A new allocation: let the session weigh it against the budget first.
                        if grown {
                            return Ok(ReadEnd::Full);
                        }
                        grown = true;
                        body.grow(bodies);
                    }
                    // Never past the body's end: what follows it is the next frame.
                    let room = body.missing().min(4 * READ_CHUNK);
                    self.transport
                        .read_append(&mut self.stream, &mut body.bytes, room)
                }
                _ => {
                    self.compact();
                    // Read into spare room, never zero-filled first: TLS hands out a record
                    // (16 KiB) per call, and zeroing the rest of the chunk each time cost more
                    // than decrypting it.
                    self.input.reserve(READ_CHUNK);
                    self.transport
                        .read_append(&mut self.stream, &mut self.input, READ_CHUNK)
                }
            };
            match result {
                Ok(0) => return Ok(ReadEnd::Closed),
                Ok(count) => {
                    self.read_this_turn += count;
                    if !into_body
                        && frame::starts_with_header::<MAX_REQUEST_HEADER>(
                            &self.input[self.parsed..],
                        )
                    {
                        return Ok(ReadEnd::Full);
                    }
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(ReadEnd::Drained),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// The next complete request or body from the buffered bytes, `Ok(None)` if more bytes
    /// are needed. A body of a pooled buffer's size or more that starts in the buffered bytes
    /// goes into a free buffer of `bodies`, when there is one.
    ///
    /// # Errors
    /// A [`FrameError`]: the stream can no longer be trusted.
    pub(crate) fn next_incoming(
        &mut self,
        now: Instant,
        bodies: &BodyPool,
    ) -> Result<Option<Incoming>, FrameError> {
        if let Some(body) = &mut self.body {
            let take = body.missing().min(self.input.len() - self.parsed);
            if take > 0 {
                // Resident already: taking it allocates nothing the budget has not weighed.
                if body.bytes.capacity() == 0
                    && body.missing() >= POOLED_CAPACITY
                    && let Some(buffer) = bodies.take_free()
                {
                    body.bytes = buffer;
                }
                body.bytes
                    .extend_from_slice(&self.input[self.parsed..self.parsed + take]);
                self.parsed += take;
            }
            if !body.is_complete() {
                self.note_body_progress(now);
                return Ok(None);
            }
            let body = self.body.take().expect("checked above");
            self.last_activity = now;
            return Ok(Some(Incoming::Body {
                id: body.id,
                bytes: body.bytes,
            }));
        }
        let decoded = frame::decode::<Request, MAX_REQUEST_HEADER>(&self.input[self.parsed..])?;
        Ok(decoded.map(|(request, used)| {
            self.parsed += used;
            self.last_activity = now;
            Incoming::Request(request)
        }))
    }

    /// Makes the next `size` bytes the body of request `id`; nothing is allocated until
    /// they arrive.
    pub(crate) fn expect_body(&mut self, id: RequestId, size: usize) {
        self.body = Some(PendingBody {
            id,
            bytes: Vec::new(),
            size,
            progress_mark: 0,
        });
    }

    fn note_body_progress(&mut self, now: Instant) {
        if let Some(body) = &mut self.body
            && body.bytes.len() - body.progress_mark >= PROGRESS_STEP
        {
            body.progress_mark = body.bytes.len();
            self.last_activity = now;
        }
    }

    /// Starts a turn of the loop: the connection may read its share again.
    pub(crate) fn new_turn(&mut self) {
        self.read_this_turn = 0;
    }

    /// Bytes this connection's buffers hold: what it read, what it is receiving, what it has
    /// yet to write.
    pub(crate) fn held(&self) -> u64 {
        let body = self.body.as_ref().map_or(0, |body| body.bytes.capacity());
        (self.input.capacity() + body + self.output.held() + self.transport.held()) as u64
    }

    /// The peer's host, as admission counts it (an IPv4 address, or an IPv6 /64), so that its
    /// connections, memory and turns are counted as one host's.
    pub(crate) fn host(&self) -> std::net::IpAddr {
        super::admission::host_of(self.peer)
    }

    /// Whether the TLS handshake is still under way.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.transport.is_handshaking()
    }

    /// The ID the peer proved in the TLS handshake; `None` before it, or without TLS.
    pub(crate) fn peer_id(&self) -> Option<crate::tls::PeerId> {
        self.transport.peer_id()
    }

    /// Whether the peer sent bytes that are not yet a whole frame or body.
    pub(crate) fn has_partial_input(&self) -> bool {
        self.body.is_some() || self.parsed < self.input.len()
    }

    /// Queues a response header, and the raw bytes after it.
    ///
    /// # Errors
    /// When the header does not encode within the response limit.
    pub(crate) fn queue(
        &mut self,
        response: &crate::message::Response,
        body: Vec<u8>,
    ) -> Result<(), FrameError> {
        self.output.queue(response, body)
    }

    /// Writes queued output until it is gone or the socket is full; returns whether output
    /// remains (and so write interest is needed).
    ///
    /// # Errors
    /// The socket's errors other than `WouldBlock` and `Interrupted`.
    pub(crate) fn flush(&mut self) -> io::Result<bool> {
        let mut wire = Wire {
            transport: &mut self.transport,
            stream: &mut self.stream,
        };
        let pending = self.output.flush(&mut wire)?;
        Ok(self.transport.send_records(&mut self.stream)? || pending)
    }

    /// Gives back the input buffer's memory if everything in it was parsed.
    pub(crate) fn trim(&mut self) {
        self.transport.trim();
        if self.parsed == self.input.len() && self.body.is_none() {
            release(&mut self.input);
            self.parsed = 0;
        }
    }

    /// Bytes read since [`Connection::new_turn`].
    pub(crate) fn read_this_turn(&self) -> usize {
        self.read_this_turn
    }

    /// Bytes queued and not yet written (encrypted bytes waiting count as one).
    pub(crate) fn pending_output(&self) -> usize {
        self.output.pending() + usize::from(self.transport.has_unsent())
    }

    fn pending_input(&self) -> usize {
        self.input.len() - self.parsed
    }

    /// Drops the parsed prefix of the input buffer.
    fn compact(&mut self) {
        if self.parsed == self.input.len() {
            release(&mut self.input);
            self.parsed = 0;
        } else if self.parsed > 0 {
            self.input.drain(..self.parsed);
            self.parsed = 0;
        }
    }
}

/// Empties a buffer, giving its memory back if it grew past [`IDLE_CAPACITY`].
fn release(buffer: &mut Vec<u8>) {
    if buffer.capacity() > IDLE_CAPACITY {
        *buffer = Vec::new();
    } else {
        buffer.clear();
    }
}
