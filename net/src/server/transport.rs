//! What lies between a connection's socket and its frames: TLS 1.3, driven without ever
//! blocking the loop (`read_tls`, `process_new_packets`, `write_tls`, as rustls's mio example
//! does), after a look at the first bytes that tells a version-1 peer, which is refused in
//! plaintext; or, for loopback benchmarks only, nothing at all.
//!
//! What TLS holds is bounded: rustls keeps at most one record of ciphertext being assembled
//! and 16 KiB of plaintext not yet taken; the read-ahead below holds one socket read; records
//! waiting for the socket are capped at [`TLS_SEND_LIMIT`], past which writes wait. The
//! read-ahead and the unsent records are charged to the memory budget as held.

use std::io::{self, ErrorKind, IoSlice, Read, Write};
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
    /// Ciphertext read from the socket and not yet given to rustls, from `ahead_at` on.
    ahead: Vec<u8>,
    ahead_at: usize,
    /// Bytes the next socket read may take.
    ahead_size: usize,
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
            ahead: Vec::new(),
            ahead_at: 0,
            ahead_size: FIRST_READ_AHEAD,
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

    /// Whether reads land in a caller's buffer straight from the socket.
    pub(crate) fn is_plain(&self) -> bool {
        matches!(self.state, State::Plain)
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
        self.ahead.capacity() + unsent
    }

    /// Gives back the read-ahead's memory once it is used up.
    pub(crate) fn trim(&mut self) {
        if self.ahead_at == self.ahead.len() {
            self.ahead = Vec::new();
            self.ahead_at = 0;
            self.ahead_size = FIRST_READ_AHEAD;
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

    /// Reads plaintext: `Ok(0)` once the peer has closed.
    fn read(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        let conn = match &mut self.state {
            State::Plain => return stream.read(buf),
            State::Sniffing(_) => return Err(ErrorKind::WouldBlock.into()),
            State::Tls(conn) => conn,
        };
        let mut ended = false;
        loop {
            match conn.reader().read(buf) {
                Ok(read) => return Ok(read),
                Err(err) if err.kind() == ErrorKind::WouldBlock && !ended => {}
                // Closed without close_notify: a cut, which loses only what was cut.
                Err(err)
                    if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::UnexpectedEof) =>
                {
                    return Ok(0);
                }
                Err(err) => return Err(err),
            }
            let mut ahead = ReadAhead {
                buf: &mut self.ahead,
                at: &mut self.ahead_at,
                size: &mut self.ahead_size,
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

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.transport.read(self.stream, buf)
    }
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

/// The socket, read up to `size` bytes at a time into `buf`, given out as rustls asks.
struct ReadAhead<'a> {
    buf: &'a mut Vec<u8>,
    at: &'a mut usize,
    size: &'a mut usize,
    stream: &'a mut TcpStream,
}

impl Read for ReadAhead<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if *self.at == self.buf.len() {
            self.buf.resize(*self.size, 0);
            *self.at = 0;
            let read = loop {
                match self.stream.read(self.buf) {
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    other => break other,
                }
            };
            let read = read.inspect_err(|_| self.buf.clear())?;
            if read == *self.size {
                *self.size = (*self.size * 2).min(READ_AHEAD);
            }
            self.buf.truncate(read);
        }
        let count = out.len().min(self.buf.len() - *self.at);
        out[..count].copy_from_slice(&self.buf[*self.at..*self.at + count]);
        *self.at += count;
        Ok(count)
    }
}
