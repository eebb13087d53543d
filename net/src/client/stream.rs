//! The client's side of the transport: the TLS 1.3 handshake over a blocking socket, the
//! plaintext refusals a server may send before TLS begins, and the stream of plaintext after.

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, ClientConnection, StreamOwned};

use super::ClientError;
use crate::Socket;
use crate::frame::{self, MAX_RESPONSE_HEADER};
use crate::message::{ErrorCode, Response};
use crate::tls::{self, Identity, PeerId, Trust};

/// Encrypted bytes the client queues before a write waits for the socket: large records
/// leave in few system calls.
const SEND_LIMIT: usize = 1024 * 1024;

/// A blocking TLS connection to a peer, as [`secure`] makes it: for programs and tests that
/// speak frames by hand.
pub type TlsStream = StreamOwned<ClientConnection, Socket>;

/// The plaintext of a connection: TLS, or bare frames for a loopback benchmark.
pub(crate) enum Stream {
    Tls(Box<TlsStream>),
    Plain(Socket),
}

impl Stream {
    /// The TCP socket underneath, to shut it down from another thread.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Self::Tls(tls) => &tls.sock.0,
            Self::Plain(plain) => &plain.0,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tls(tls) => tls.read(buf),
            Self::Plain(plain) => plain.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tls(tls) => tls.write(buf),
            Self::Plain(plain) => plain.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Tls(tls) => tls.write_vectored(bufs),
            Self::Plain(plain) => plain.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Tls(tls) => tls.flush(),
            Self::Plain(plain) => plain.flush(),
        }
    }
}

/// Does the TLS handshake on `socket`, showing `identity` and requiring the server's ID to be
/// `pin` when given; returns the stream and the server's ID. What follows is the protocol's
/// own handshake (`Hello`), which [`Client`](super::Client) does.
///
/// # Errors
/// [`ClientError::Refused`] for a refusal the server sent in plaintext before TLS (its address
/// rules, a full server); [`ClientError::WrongPeer`] when the server's ID is not the pinned
/// one; [`ClientError::Tls`] when the handshake fails otherwise.
pub fn secure(
    socket: TcpStream,
    identity: &Identity,
    pin: Option<PeerId>,
    timeout: Duration,
) -> Result<(TlsStream, PeerId), ClientError> {
    let trust = pin.map_or(Trust::Anyone, |id| Trust::Only(Arc::new([id].into())));
    let (config, verifier) = tls::client_config(identity, trust).map_err(tls_error)?;
    let name = ServerName::try_from(tls::SERVER_NAME).expect("a valid DNS name");
    let mut conn = ClientConnection::new(config, name).map_err(tls_error)?;
    let mut socket = Socket(socket);
    conn.set_buffer_limit(Some(SEND_LIMIT));
    let timed_out = |err: io::Error| match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            ClientError::TimedOut { after: timeout }
        }
        _ => ClientError::Io(err),
    };
    while conn.wants_write() {
        conn.write_tls(&mut socket).map_err(timed_out)?;
    }
    refused_in_plaintext(&socket, timeout).map_err(|err| match err {
        ClientError::Io(err) => timed_out(err),
        other => other,
    })?;
    while conn.is_handshaking() {
        if let Err(err) = conn.complete_io(&mut socket) {
            return Err(match (verifier.seen(), pin) {
                (Some(found), Some(expected)) if found != expected => {
                    ClientError::WrongPeer { expected, found }
                }
                _ => refusal(&err, identity.id()).unwrap_or_else(|| timed_out(err)),
            });
        }
    }
    let server = tls::peer_id_of(conn.peer_certificates())
        .ok_or_else(|| ClientError::Tls("the peer showed no certificate".into()))?;
    Ok((StreamOwned::new(conn, socket), server))
}

/// What a TLS failure in `err` means for the user: the server refusing this side's ID comes
/// as an alert once the handshake is done on our side.
pub(crate) fn refusal(err: &io::Error, own: PeerId) -> Option<ClientError> {
    let tls = err.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match tls {
        rustls::Error::AlertReceived(
            AlertDescription::AccessDenied
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown,
        ) => ClientError::NotTrusted { own },
        other => ClientError::Tls(other.to_string()),
    })
}

fn tls_error(err: rustls::Error) -> ClientError {
    ClientError::Tls(err.to_string())
}

/// Reads a refusal a server sends before TLS begins (a version-1 `Error` frame: a forbidden
/// address, a full server, or a server that does not speak version 2), if that is what came.
fn refused_in_plaintext(socket: &TcpStream, timeout: Duration) -> Result<(), ClientError> {
    let give_up = Instant::now() + timeout;
    let mut first = [0; 3];
    loop {
        let seen = socket.peek(&mut first)?;
        match tls::starts_tls(&first[..seen]) {
            _ if seen == 0 => return Ok(()),
            Some(true) => return Ok(()),
            Some(false) => break,
            // The rest of a record's header is on its way.
            None if Instant::now() < give_up => std::thread::sleep(Duration::from_millis(1)),
            None => return Err(ClientError::TimedOut { after: timeout }),
        }
    }
    let mut reader = socket;
    match frame::read::<Response, MAX_RESPONSE_HEADER>(&mut reader) {
        Ok(Some(Response::Error { code, message }))
            if !matches!(code, ErrorCode::Malformed | ErrorCode::FrameTooLarge) =>
        {
            Err(ClientError::Refused { code, message })
        }
        Ok(Some(Response::Error { code, message })) => Err(ClientError::Protocol(format!(
            "the peer does not speak protocol version 2 (TLS): it answered {code:?}: {message}"
        ))),
        _ => Err(ClientError::Protocol(
            "the peer answered in plaintext: it does not speak protocol version 2 (TLS)".into(),
        )),
    }
}
