//! Reaching a peer: the name this side gives, how long to wait, and the group key, set once.

use std::time::Duration;

use crate::auth::Key;
use crate::{Client, ClientError};

/// How long a [`Dialer`] waits for a connect or any answer by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Opens handshaken connections to peers, all alike.
#[derive(Debug, Clone)]
pub struct Dialer {
    name: String,
    timeout: Duration,
    key: Option<Key>,
}

impl Dialer {
    /// Connections that give `name` in the handshake, wait 60 s at most, and use no key.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            timeout: DEFAULT_TIMEOUT,
            key: None,
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

    /// Connects to `addr` (`HOST:PORT`) and does the handshake.
    ///
    /// # Errors
    /// As [`Client::connect_with_key`].
    pub fn dial(&self, addr: &str) -> Result<Client, ClientError> {
        Client::connect_with_key(addr, &self.name, self.timeout, self.key.as_ref())
    }
}
