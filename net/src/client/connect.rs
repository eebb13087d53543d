//! Opening a client: the TCP connect, TLS (`stream.rs`), and the protocol's own handshake
//! inside it: `Hello`, with a key the `Challenge`/`Prove`/`Proven` exchange, then `Welcome`.

use std::io::{self, BufReader};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::stream::{self, Stream};
use super::{Client, ClientError, IO_BUFFER, MAX_WINDOW, unexpected};
use crate::auth::{self, Ids, Key};
use crate::frame::FrameError;
use crate::message::{MAGIC, PROTOCOL_VERSION, Request, Response};
use crate::tls::{Identity, PeerId};

/// Everything a connection needs, as a [`Dialer`](crate::transfer::Dialer) sets it once.
pub(crate) struct Connect<'a> {
    /// `HOST:PORT`.
    pub(crate) addr: &'a str,
    /// The ID the server must have, if pinned.
    pub(crate) pin: Option<PeerId>,
    /// This side's name in `Hello`.
    pub(crate) name: &'a str,
    pub(crate) timeout: Duration,
    pub(crate) key: Option<&'a Key>,
    pub(crate) identity: &'a Identity,
    /// Bare frames, for loopback benchmarks only.
    pub(crate) plaintext: bool,
}

impl Client {
    /// Connects, secures the connection and does the handshake.
    pub(crate) fn open(how: &Connect<'_>) -> Result<Self, ClientError> {
        let socket = connect_any(how.addr, how.timeout).map_err(|cause| ClientError::Connect {
            addr: how.addr.to_owned(),
            cause,
        })?;
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(how.timeout))?;
        socket.set_write_timeout(Some(how.timeout))?;
        let (stream, server_id) = if how.plaintext {
            if !socket.peer_addr()?.ip().is_loopback() || how.key.is_some() {
                return Err(ClientError::Protocol(
                    "plaintext is for loopback benchmarks only, without a key".into(),
                ));
            }
            (Stream::Plain(crate::Socket(socket)), None)
        } else {
            let (stream, id) = stream::secure(socket, how.identity, how.pin, how.timeout)?;
            let pinned = how.pin.is_some();
            tracing::info!(peer = how.addr, peer_id = %id, pinned, own_id = %how.identity.id(), "TLS up");
            (Stream::Tls(Box::new(stream)), Some(id))
        };
        let mut client = Self {
            reader: BufReader::with_capacity(IO_BUFFER, stream),
            out: Vec::with_capacity(IO_BUFFER),
            next_id: 1,
            window: 1,
            max_part_size: 0,
            server_name: String::new(),
            server_id,
            timeout: how.timeout,
        };
        let own = how.identity.id();
        match client.handshake(how.name, how.key, own) {
            Ok(()) => Ok(client),
            // The server judges our ID once TLS is done on our side: its refusal comes now.
            Err(ClientError::Io(err) | ClientError::Frame(FrameError::Io(err))) => {
                Err(stream::refusal(&err, own).unwrap_or(ClientError::Io(err)))
            }
            Err(err) => Err(err),
        }
    }

    fn handshake(&mut self, name: &str, key: Option<&Key>, own: PeerId) -> Result<(), ClientError> {
        self.send(&Request::Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            peer: name.to_owned(),
        })?;
        let mut answer = self.receive()?;
        match (answer, key) {
            (Response::Challenge { nonce }, Some(key)) => {
                let ids = Ids {
                    server: self.server_id.ok_or_else(|| {
                        ClientError::Auth("a key needs TLS, and this connection has none".into())
                    })?,
                    client: own,
                };
                let mine = auth::nonce()?;
                self.send(&Request::Prove {
                    nonce: mine,
                    proof: key.client_proof(&nonce, &mine, &ids),
                })?;
                match self.receive()? {
                    Response::Proven { proof }
                        if auth::proofs_match(&key.server_proof(&mine, &nonce, &ids), &proof) => {}
                    Response::Proven { .. } => {
                        return Err(ClientError::Auth(
                            "the peer's proof does not match our key".into(),
                        ));
                    }
                    other => return Err(unexpected(&other)),
                }
                answer = self.receive()?;
            }
            (Response::Challenge { .. }, None) => {
                return Err(ClientError::Auth(
                    "the peer requires a key: pass --key-file".into(),
                ));
            }
            (Response::Welcome { .. }, Some(_)) => {
                return Err(ClientError::Auth(
                    "the peer did not ask for our key, so it cannot prove it holds it".into(),
                ));
            }
            (other, _) => answer = other,
        }
        match answer {
            Response::Welcome {
                peer,
                max_part_size,
                max_in_flight,
                ..
            } => {
                self.server_name = peer;
                self.max_part_size = max_part_size.min(storage::MAX_PART_SIZE);
                self.window = max_in_flight.clamp(1, MAX_WINDOW);
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }
}

fn connect_any(addr: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(
        io::ErrorKind::InvalidInput,
        "the address resolves to nothing",
    );
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(err) => last = err,
        }
    }
    Err(last)
}
