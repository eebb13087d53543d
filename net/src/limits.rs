//! The server's limits, each with a default a user can change from `serve`'s flags. The
//! server checks them when it is bound (`ServerConfig::validate`).

use std::time::Duration;

/// Bounds on what one peer, and all of them together, can make the server hold.
///
/// `#[non_exhaustive]`: start from [`Limits::default`] and change what you need with the
/// `with_*` methods, so a limit added later does not break your code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest part accepted, in bytes; offers above it are rejected before any byte moves.
    /// Files travel as chunks of 1 MiB by default, so a small limit costs them nothing and
    /// bounds what one request can make the server hold.
    pub max_part_size: u64,
    /// Connections held at once. When they are all taken, the connection idle longest (of the
    /// host holding the most; one stuck in its handshake counts as idle) is closed to make
    /// room; with none idle for a second, one between two requests of a host holding more than
    /// its fair share, two more than the newcomer's host and more than eight; with none of
    /// those either, the newcomer is told `Busy` and closed.
    pub max_connections: usize,
    /// Connections one host (an IPv4 address, or an IPv6 /64) may hold at once; one more from
    /// it is told `TooManyConnections` and closed. An honest peer needs a few (one per
    /// transfer); the default, 128, is an eighth of the default `max_connections`, so it takes
    /// at least eight hosts to fill the server, while a NAT or a build farm behind one address
    /// still has room. It does not follow `max_connections` by itself: raise it with it when
    /// one host needs more.
    pub max_connections_per_address: usize,
    /// Requests of one connection unanswered at once (announced in the handshake); a request
    /// past it is a broken client, told `TooManyRequests` and disconnected.
    pub max_in_flight: u32,
    /// Body bytes of one connection handed to the store and not yet acknowledged, and bytes
    /// of answers the peer has not yet read: past either, the server stops reading that
    /// connection (backpressure to the peer). The default, 64 MiB, lets a sender go on while
    /// the store syncs the batch before: with 32 MiB, a push of 1 GiB took 1.08x as long
    /// (median of 7 interleaved rounds, in two runs; worst 0.97x) and 79 syncs instead of 49.
    pub max_buffered_per_connection: u64,
    /// Bytes the server holds for its peers altogether: bodies as they arrive, uploads queued
    /// for the store, answers not yet read, and the state of requests in flight. At it, no
    /// connection is read, and the connections holding the most while their peers make no
    /// progress are closed to make room.
    pub max_memory: u64,
    /// Time from accepting a connection to its handshake.
    pub handshake_timeout: Duration,
    /// Time a connection may go without a whole frame, or body bytes in 64 KiB steps, while
    /// the server is not working on its requests.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_part_size: 16 * 1024 * 1024,
            max_connections: 1024,
            max_connections_per_address: 128,
            max_in_flight: 4096,
            max_buffered_per_connection: 64 * 1024 * 1024,
            max_memory: 256 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

impl Limits {
    #[must_use]
    pub fn with_max_part_size(mut self, bytes: u64) -> Self {
        self.max_part_size = bytes;
        self
    }

    #[must_use]
    pub fn with_max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    #[must_use]
    pub fn with_max_connections_per_address(mut self, connections: usize) -> Self {
        self.max_connections_per_address = connections;
        self
    }

    #[must_use]
    pub fn with_max_in_flight(mut self, requests: u32) -> Self {
        self.max_in_flight = requests;
        self
    }

    #[must_use]
    pub fn with_max_buffered_per_connection(mut self, bytes: u64) -> Self {
        self.max_buffered_per_connection = bytes;
        self
    }

    #[must_use]
    pub fn with_max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = bytes;
        self
    }

    #[must_use]
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }
}
