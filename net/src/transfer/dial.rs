//! Reaching a peer: the name this side gives, how long to wait, the identity it shows, the
//! group key, set once; and addresses of the form `HOST:PORT#ID` that pin the peer's ID.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Key;
use crate::client::Connect;
use crate::tls::{Identity, PeerId};
use crate::{Client, ClientError};

/// How long a [`Dialer`] waits for a connect or any answer by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Opens handshaken connections to peers, all alike.
#[derive(Debug, Clone)]
pub struct Dialer {
    name: String,
    timeout: Duration,
    key: Option<Key>,
    identity: Option<Arc<Identity>>,
    plaintext: bool,
}

impl Dialer {
    /// Connections that give `name` in the handshake, wait 60 s at most, use no key, and show
    /// a one-time identity (a new key pair per connection) until [`Dialer::identity`] sets one.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            timeout: DEFAULT_TIMEOUT,
            key: None,
            identity: None,
            plaintext: false,
        }
    }

    /// Shows `identity` (a store's) to every peer, so peers that trust its ID let it in.
    pub fn identity(self, identity: Arc<Identity>) -> Self {
        Self {
            identity: Some(identity),
            ..self
        }
    }

    /// Speaks bare frames without TLS, to measure what TLS costs: only to loopback addresses,
    /// without a key; a server must have been started the same way.
    pub fn plaintext_on_loopback(self) -> Self {
        Self {
            plaintext: true,
            ..self
        }
    }

    /// Gives up on a peer after `timeout` without an answer (at least a second).
    pub fn timeout(self, timeout: Duration) -> Self {
        Self {
            timeout: timeout.max(Duration::from_secs(1)),
            ..self
        }
    }

    /// Proves knowledge of `key` to every peer, and requires its proof back.
    pub fn key(self, key: Option<Key>) -> Self {
        Self { key, ..self }
    }

    /// Connects to `addr` (`HOST:PORT`, `HOST:PORT#ID` to require the peer's ID, or an ID
    /// alone for a peer announced on the local network, dialled pinned to it) and does the
    /// handshake.
    ///
    /// # Errors
    /// [`ClientError::Connect`] for an address that does not parse or answer;
    /// [`ClientError::WrongPeer`] when the peer's ID is not the pinned one;
    /// [`ClientError::NotTrusted`] when the peer does not trust ours; [`ClientError::Refused`]
    /// and [`ClientError::Auth`] when the handshake is refused.
    pub fn dial(&self, addr: &str) -> Result<Client, ClientError> {
        let not_an_id = match addr.parse::<PeerId>() {
            Ok(id) => return self.dial(&find_on_lan(&id)?),
            Err(err) => err,
        };
        if !addr.contains(':') {
            // No port: it was meant as an ID (a mistyped one is caught by its check character).
            return Err(ClientError::Connect {
                addr: addr.to_owned(),
                cause: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("neither HOST:PORT nor a peer ID: {not_an_id}"),
                ),
            });
        }
        let (host, pin) = split_pin(addr).map_err(|cause| ClientError::Connect {
            addr: addr.to_owned(),
            cause,
        })?;
        let one_time;
        let identity = match &self.identity {
            Some(identity) => identity.as_ref(),
            None => {
                one_time = Identity::generate()
                    .map_err(|err| ClientError::Tls(format!("no key pair: {err}")))?;
                &one_time
            }
        };
        Client::open(&Connect {
            addr: host,
            pin,
            name: &self.name,
            timeout: self.timeout,
            key: self.key.as_ref(),
            identity,
            plaintext: self.plaintext,
        })
    }
}

/// How long a peer named by ID alone has to answer on the local network.
const LAN_WAIT: Duration = Duration::from_secs(5);

/// The pinned address of the peer `id` announces on the local network.
fn find_on_lan(id: &PeerId) -> Result<String, ClientError> {
    let not_found = |cause: String| ClientError::Connect {
        addr: id.to_string(),
        cause: std::io::Error::new(std::io::ErrorKind::NotFound, cause),
    };
    let secs = LAN_WAIT.as_secs();
    let found = crate::lan::find_peer(id, LAN_WAIT).map_err(|err| not_found(err.to_string()))?;
    found.and_then(|peer| peer.dial_address()).ok_or_else(|| {
        not_found(format!(
            "no peer with this ID answered on the local network within {secs} s"
        ))
    })
}

/// `HOST:PORT#ID` as the address and the pinned ID; `HOST:PORT` alone pins nothing.
///
/// # Errors
/// When the ID after `#` is not one.
pub fn split_pin(addr: &str) -> Result<(&str, Option<PeerId>), std::io::Error> {
    match addr.split_once('#') {
        None => Ok((addr, None)),
        Some((host, id)) => id
            .parse::<PeerId>()
            .map(|id| (host, Some(id)))
            .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err)),
    }
}
