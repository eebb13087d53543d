//! Live totals of a running server, for anyone to read from any thread (the HTTP view, a
//! metrics exporter) without asking the event loop anything: the loop only adds to atomics,
//! so a reader can never make it wait.

use std::sync::atomic::{AtomicU64, Ordering};

use super::ServeSummary;

/// What the server has done since it was bound. Take it from
/// [`Server::counters`](super::Server::counters); every value only grows, except
/// `connections_open` and `peer_memory`.
#[derive(Debug, Default)]
pub struct ServerCounters {
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    parts_stored: AtomicU64,
    bytes_stored: AtomicU64,
    peer_memory: AtomicU64,
}

/// One reading of [`ServerCounters`]. Each value is read on its own, so two of them may be a
/// moment apart; none is ever ahead of what the server did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CountersSnapshot {
    /// Connections held now.
    pub connections_open: u64,
    /// Connections accepted since the server started.
    pub connections_total: u64,
    /// Bytes read from peers' sockets.
    pub bytes_in: u64,
    /// Bytes written to peers' sockets.
    pub bytes_out: u64,
    /// Parts (chunks included) pushed to this server and made durable.
    pub parts_stored: u64,
    /// The bytes of those parts.
    pub bytes_stored: u64,
    /// Bytes held now on peers' behalf, against the server's memory budget (`--max-memory`).
    pub peer_memory: u64,
}

impl ServerCounters {
    /// Every counter, read now.
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CountersSnapshot {
            connections_open: get(&self.connections_open),
            connections_total: get(&self.connections_total),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            parts_stored: get(&self.parts_stored),
            bytes_stored: get(&self.bytes_stored),
            peer_memory: get(&self.peer_memory),
        }
    }

    pub(crate) fn summary(&self) -> ServeSummary {
        let now = self.snapshot();
        ServeSummary {
            connections: now.connections_total,
            parts_stored: now.parts_stored,
            bytes_stored: now.bytes_stored,
        }
    }

    pub(crate) fn opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn read(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn written(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Notes what the memory budget holds for peers now.
    pub(crate) fn held_for_peers(&self, bytes: u64) {
        self.peer_memory.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn stored(&self, bytes: u64) {
        self.parts_stored.fetch_add(1, Ordering::Relaxed);
        self.bytes_stored.fetch_add(bytes, Ordering::Relaxed);
    }
}
