//! What lies between a connection's socket and its frames: TLS 1.3, driven without ever
//! blocking the loop (`read_tls`, `process_new_packets`, `write_tls`, as rustls's mio example
//! does), after a look at the first bytes that tells a version-1 peer, which is refused in
//! plaintext; or, for loopback benchmarks only, nothing at all.
//!
//! What TLS holds is bounded: rustls keeps at most one record of ciphertext being assembled
//! and 16 KiB of plaintext not yet taken; the read-ahead below holds one socket read; records
//! waiting for the socket are capped at [`TLS_SEND_LIMIT`], past which writes wait. The
//! read-ahead and the unsent records are charged to the memory budget as held.

use std::io::{self, BufRead, ErrorKind, IoSlice, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};
use tracing::warn;

use crate::socket::NoSigPipe;
use crate::tls::{self, PeerId};

/// Encrypted bytes queued for the socket at most; a write past it waits for the socket.
pub(crate) const TLS_SEND_LIMIT: usize = 256 * 1024;

/// Ciphertext taken from the socket in one read at most: rustls takes a record at a time, and
/// a system call per 16 KiB record would cost more than the copy out of this buffer.
const READ_AHEAD: usize = 256 * 1024;

/// Ciphertext taken in one read at first: the read-ahead doubles while reads fill it, up to
/// [`READ_AHEAD`], so a handshake or a small request holds as little as a plaintext one would,
/// and only a bulk upload holds the large buffer (all of it charged to the budget).
const FIRST_READ_AHEAD: usize = 16 * 1024;

pub(crate) struct Transport {
    state: State,
    ahead: ReadAhead,
}

enum State {
    /// Nothing read yet: the first bytes tell a TLS ClientHello from a version-1 frame.
    Sniffing(Arc<ServerConfig>),
    Tls(Box<ServerConnection>),
    /// Frames without TLS: a loopback benchmark's connection, or a version-1 peer being told
    /// to upgrade.
    Plain,
}

/// What the first bytes of a connection showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniffed {
    /// Not enough bytes yet to tell.
    Waiting,
    /// The peer closed before saying anything.
    Closed,
    /// A plaintext peer of version 1: it must be told to upgrade.
    Version1,
    /// TLS (or no TLS expected): read on.
    Ready,
}

impl Transport {
    /// TLS with `config`, or plain frames without one (loopback benchmarks only).
    pub(crate) fn new(config: Option<Arc<ServerConfig>>) -> Self {
        Self {
            state: config.map_or(State::Plain, State::Sniffing),
            ahead: ReadAhead::new(),
        }
    }

    /// Looks at the first bytes, without taking them, until they tell what the peer speaks.
    ///
    /// # Errors
    /// The socket's, and rustls's refusal of the configuration.
    pub(crate) fn sniff(&mut self, stream: &TcpStream) -> io::Result<Sniffed> {
        let State::Sniffing(config) = &self.state else {
            return Ok(Sniffed::Ready);
        };
        let mut first = [0; 3];
        let seen = match stream.peek(&mut first) {
            Ok(0) => return Ok(Sniffed::Closed),
            Ok(seen) => seen,
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(Sniffed::Waiting),
            Err(err) => return Err(err),
        };
        match tls::starts_tls(&first[..seen]) {
            None => Ok(Sniffed::Waiting),
            Some(false) => {
                // Its Hello is taken and dropped: closing on unread bytes would reset the
                // connection and could lose the refusal on its way.
                let mut hello = [0; 4096];
                let _ = (&*stream).read(&mut hello);
                self.state = State::Plain;
                Ok(Sniffed::Version1)
            }
            Some(true) => {
                let mut conn =
                    ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
                conn.set_buffer_limit(Some(TLS_SEND_LIMIT));
                self.state = State::Tls(Box::new(conn));
                Ok(Sniffed::Ready)
            }
        }
    }

    /// Whether the TLS handshake is still going on (or has not begun).
    pub(crate) fn is_handshaking(&self) -> bool {
        match &self.state {
            State::Sniffing(_) => true,
            State::Tls(conn) => conn.is_handshaking(),
            State::Plain => false,
        }
    }

    /// The ID of the key the peer proved it holds, once the handshake is done.
    pub(crate) fn peer_id(&self) -> Option<PeerId> {
        match &self.state {
            State::Tls(conn) if !conn.is_handshaking() => tls::peer_id_of(conn.peer_certificates()),
            _ => None,
        }
    }

    /// Whether encrypted bytes wait for the socket.
    pub(crate) fn has_unsent(&self) -> bool {
        matches!(&self.state, State::Tls(conn) if conn.wants_write())
    }

    /// Bytes held by TLS on the peer's behalf, at most: the read-ahead, and the records
    /// waiting for the socket.
    pub(crate) fn held(&self) -> usize {
        let unsent = if self.has_unsent() { TLS_SEND_LIMIT } else { 0 };
        self.ahead.buf.capacity() + unsent
    }

    /// Gives back the read-ahead's memory once it is used up.
    pub(crate) fn trim(&mut self) {
        if self.ahead.is_used_up() {
            self.ahead = ReadAhead::new();
        }
    }

    /// Sends what TLS has queued; returns whether some is still waiting for the socket.
    ///
    /// # Errors
    /// The socket's errors other than `WouldBlock`.
    pub(crate) fn send_records(&mut self, stream: &mut TcpStream) -> io::Result<bool> {
        let State::Tls(conn) = &mut self.state else {
            return Ok(false);
        };
        match send_records(conn, stream) {
            Ok(()) => Ok(false),
            Err(err) if err.kind() == ErrorKind::WouldBlock => Ok(true),
            Err(err) => Err(err),
        }
    }

    /// Appends up to `max` bytes of plaintext to `buf`, within its spare capacity and without
    /// zero-filling it first: `Ok(0)` once the peer has closed.
    pub(crate) fn read_append(
        &mut self,
        stream: &mut TcpStream,
        buf: &mut Vec<u8>,
        max: usize,
    ) -> io::Result<usize> {
        let max = max.min(buf.capacity() - buf.len());
        match self.state {
            State::Plain => read_spare(stream, buf, max),
            _ => self.pull(stream, |chunk| {
                let count = chunk.len().min(max);
                buf.extend_from_slice(&chunk[..count]);
                count
            }),
        }
    }

    /// Hands `take` the next plaintext rustls holds, reading and decrypting more when it holds
    /// none; `take` says how much it took. `Ok(0)` once the peer has closed.
    fn pull(
        &mut self,
        stream: &mut TcpStream,
        mut take: impl FnMut(&[u8]) -> usize,
    ) -> io::Result<usize> {
        let State::Tls(conn) = &mut self.state else {
            return Err(ErrorKind::WouldBlock.into());
        };
        let mut ended = false;
        loop {
            let mut reader = conn.reader();
            match reader.fill_buf() {
                Ok(chunk) if !chunk.is_empty() => {
                    let taken = take(chunk);
                    reader.consume(taken);
                    return Ok(taken);
                }
                // Closed with close_notify.
                Ok(_) => return Ok(0),
                Err(err) if err.kind() == ErrorKind::WouldBlock && !ended => {}
                // Closed without close_notify: a cut, which loses only what was cut.
                Err(err)
                    if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::UnexpectedEof) =>
                {
                    return Ok(0);
                }
                Err(err) => return Err(err),
            }
            let mut ahead = AheadReader {
                ahead: &mut self.ahead,
                stream,
            };
            ended = conn.read_tls(&mut ahead)? == 0;
            if let Err(err) = conn.process_new_packets() {
                warn!(%err, "TLS failed; closing the connection");
                // The alert that says why, if the socket takes it now.
                let _ = conn.write_tls(&mut NoSigPipe(&*stream));
                return Err(io::Error::new(ErrorKind::InvalidData, err));
            }
        }
    }
}

/// A connection's transport and socket together, as one stream of plaintext.
pub(crate) struct Wire<'a> {
    pub(crate) transport: &'a mut Transport,
    pub(crate) stream: &'a mut TcpStream,
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let conn = match &mut self.transport.state {
            State::Plain => return NoSigPipe(&*self.stream).write_vectored(bufs),
            State::Sniffing(_) => return Err(ErrorKind::WouldBlock.into()),
            State::Tls(conn) => conn,
        };
        // Records made earlier go first, as far as the socket takes them, to make room.
        pass_would_block(send_records(conn, self.stream))?;
        let taken = conn.writer().write_vectored(bufs)?;
        if taken == 0 {
            return Err(ErrorKind::WouldBlock.into());
        }
        pass_would_block(send_records(conn, self.stream))?;
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A full socket is no failure here: what it did not take waits for the next turn.
fn pass_would_block(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(err) if err.kind() == ErrorKind::WouldBlock => Ok(()),
        other => other,
    }
}

/// Writes TLS records until none is left.
fn send_records(conn: &mut ServerConnection, stream: &mut TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        match conn.write_tls(&mut NoSigPipe(&*stream)) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Ciphertext read from the socket ahead of rustls, which takes it a few KiB at a time.
struct ReadAhead {
    /// What the last socket read gave, read into spare capacity without zero-filling it
    /// first; `at` bytes of it were given out.
    buf: Vec<u8>,
    at: usize,
    /// Bytes the next socket read may take.
    size: usize,
}

impl ReadAhead {
    fn new() -> Self {
        Self {
            buf: Vec::new(),
            at: 0,
            size: FIRST_READ_AHEAD,
        }
    }

    fn is_used_up(&self) -> bool {
        self.at == self.buf.len()
    }
}

/// The socket seen through a [`ReadAhead`], as rustls reads it.
struct AheadReader<'a> {
    ahead: &'a mut ReadAhead,
    stream: &'a mut TcpStream,
}

impl Read for AheadReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let ahead = &mut *self.ahead;
        if ahead.is_used_up() {
            // Nothing in it is kept, so a larger one is a new allocation, not a copy.
            if ahead.buf.capacity() < ahead.size {
                ahead.buf = Vec::with_capacity(ahead.size);
            }
            ahead.buf.clear();
            ahead.at = 0;
            let filled = loop {
                match read_spare(self.stream, &mut ahead.buf, ahead.size) {
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    other => break other?,
                }
            };
            if filled == ahead.size {
                ahead.size = (ahead.size * 2).min(READ_AHEAD);
            }
        }
        let count = out.len().min(ahead.buf.len() - ahead.at);
        out[..count].copy_from_slice(&ahead.buf[ahead.at..ahead.at + count]);
        ahead.at += count;
        Ok(count)
    }
}

/// Reads once into `buf`'s spare capacity, at most `max` bytes, without zero-filling it first.
fn read_spare(stream: &TcpStream, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let len = spare.len().min(max);
    // SAFETY: recv writes at most `len` bytes into the spare capacity, which `buf` owns and
    // which is at least `len` long; the descriptor is open while `stream` is borrowed.
    let read = unsafe { libc::recv(stream.as_raw_fd(), spare.as_mut_ptr().cast(), len, 0) };
    let read = usize::try_from(read).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: the kernel initialised the first `read` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + read) };
    Ok(read)
}
