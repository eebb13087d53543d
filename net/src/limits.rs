//! The server's limits, each with a default a user can change from `serve`'s flags.

use std::time::Duration;

/// Bounds on what one peer, and all of them together, can make the server hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest part accepted, in bytes; offers above it are rejected before any byte moves.
    pub max_part_size: u64,
    /// Connections held at once; one more is told `Busy` and closed.
    pub max_connections: usize,
    /// Requests of one connection unanswered at once (announced in the handshake); a request
    /// past it is a broken client, told `TooManyRequests` and disconnected.
    pub max_in_flight: u32,
    /// Body bytes of one connection handed to the store and not yet acknowledged, and bytes
    /// of answers the peer has not yet read: past either, the server stops reading that
    /// connection (backpressure to the peer).
    pub max_buffered_per_connection: u64,
    /// Body bytes of all connections queued for the store; every connection waits past this.
    pub max_queued_bytes: u64,
    /// Time from accepting a connection to its handshake.
    pub handshake_timeout: Duration,
    /// Time a connection may go without a whole frame, or body bytes in 64 KiB steps, while
    /// the server is not working on its requests.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_part_size: storage::MAX_PART_SIZE,
            max_connections: 1024,
            max_in_flight: 4096,
            max_buffered_per_connection: 32 * 1024 * 1024,
            max_queued_bytes: 512 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
        }
    }
}
