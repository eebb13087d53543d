//! What a server is asked to be: where it listens, its limits, and who may connect; and the
//! check that it all makes sense, run by [`Server::bind`](super::Server::bind) before anything
//! is bound.
//!
//! The types are `#[non_exhaustive]` so they can grow without breaking callers: build them
//! with their constructors and `with_*` methods.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::Limits;
use crate::auth::Key;
use crate::tls::{Identity, PeerId};

/// Longest peer name a server gives in its handshake, in bytes.
pub const MAX_PEER_NAME: usize = 1024;

/// What a server was asked for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub limits: Limits,
    /// The name this peer gives in its handshake.
    pub peer_name: String,
    pub access: Access,
    /// The key pair the server shows; a new one, kept nowhere, when not given.
    pub identity: Option<Arc<Identity>>,
    /// Frames without TLS, to measure what TLS costs: refused off loopback.
    pub plaintext: bool,
}

impl ServerConfig {
    /// A server on `listen` with the default limits, open to everyone, named
    /// `p2p-store <version>`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            limits: Limits::default(),
            peer_name: format!("p2p-store {}", env!("CARGO_PKG_VERSION")),
            access: Access::default(),
            identity: None,
            plaintext: false,
        }
    }

    /// Shows `identity` (a store's, from [`Identity::load_or_create`]) to every peer.
    #[must_use]
    pub fn with_identity(mut self, identity: Arc<Identity>) -> Self {
        self.identity = Some(identity);
        self
    }

    /// With `plaintext`, serves frames without TLS, for benchmarks that measure what TLS
    /// costs; only on a loopback address, and with no key or trusted IDs, which need TLS
    /// ([`Server::bind`] refuses anything else).
    ///
    /// [`Server::bind`]: super::Server::bind
    #[must_use]
    pub fn with_plaintext_on_loopback(mut self, plaintext: bool) -> Self {
        self.plaintext = plaintext;
        self
    }

    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    #[must_use]
    pub fn with_access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    #[must_use]
    pub fn with_peer_name(mut self, peer_name: impl Into<String>) -> Self {
        self.peer_name = peer_name.into();
        self
    }

    /// Checks every limit and the peer name.
    ///
    /// # Errors
    /// The first setting a server cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let limits = &self.limits;
        if !(1..=storage::MAX_PART_SIZE).contains(&limits.max_part_size) {
            return Err(ConfigError::PartSize {
                value: limits.max_part_size,
                max: storage::MAX_PART_SIZE,
            });
        }
        let counts = [
            ("max_connections", limits.max_connections as u64),
            (
                "max_connections_per_address",
                limits.max_connections_per_address as u64,
            ),
            ("max_in_flight", u64::from(limits.max_in_flight)),
            (
                "max_buffered_per_connection",
                limits.max_buffered_per_connection,
            ),
            ("max_memory", limits.max_memory),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::Zero { name });
        }
        let timeouts = [
            ("handshake_timeout", limits.handshake_timeout),
            ("idle_timeout", limits.idle_timeout),
        ];
        if let Some((name, _)) = timeouts.iter().find(|(_, value)| *value < MIN_TIMEOUT) {
            return Err(ConfigError::Timeout {
                name,
                min: MIN_TIMEOUT,
            });
        }
        if self.plaintext && !self.listen.ip().is_loopback() {
            return Err(ConfigError::PlaintextOffLoopback { addr: self.listen });
        }
        if self.plaintext && (self.access.key.is_some() || !self.access.trusted.is_empty()) {
            return Err(ConfigError::PlaintextWithTrust);
        }
        if self.peer_name.len() > MAX_PEER_NAME {
            return Err(ConfigError::PeerName {
                len: self.peer_name.len(),
                max: MAX_PEER_NAME,
            });
        }
        Ok(())
    }
}

/// Shortest timeout a server takes: the error reply to a late peer is timed in whole seconds.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// A setting a server cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("the largest part accepted (max_part_size) must be 1 to {max} bytes, not {value}")]
    PartSize { value: u64, max: u64 },
    #[error("{name} must be at least 1")]
    Zero { name: &'static str },
    #[error("{name} must be at least {}s", min.as_secs())]
    Timeout { name: &'static str, min: Duration },
    #[error("the peer name is {len} bytes long, the limit is {max}")]
    PeerName { len: usize, max: usize },
    #[error("plaintext is for loopback benchmarks only, and {addr} is not a loopback address")]
    PlaintextOffLoopback { addr: SocketAddr },
    #[error("a key or trusted IDs need TLS, and plaintext has none")]
    PlaintextWithTrust,
}

/// Who may connect, and what they may do. Everyone, for reads and writes, by default.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Access {
    /// When not empty, only peers whose key has one of these IDs get past the TLS handshake.
    pub trusted: Vec<PeerId>,
    /// Peers must prove knowledge of this key in the handshake.
    pub key: Option<Key>,
    /// Serve lists and gets; refuse pushes.
    pub read_only: bool,
    /// When not empty, only addresses in these networks may connect.
    pub allow: Vec<IpNet>,
}

impl Access {
    /// Admits only peers with these IDs (everyone when empty).
    #[must_use]
    pub fn with_trusted(mut self, trusted: Vec<PeerId>) -> Self {
        self.trusted = trusted;
        self
    }

    #[must_use]
    pub fn with_key(mut self, key: Option<Key>) -> Self {
        self.key = key;
        self
    }

    #[must_use]
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    #[must_use]
    pub fn with_allow(mut self, allow: Vec<IpNet>) -> Self {
        self.allow = allow;
        self
    }
}
