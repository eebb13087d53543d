//! What the server reports as it works, so the caller can act on it (export what arrives,
//! mirror it, count it) without the server doing the caller's jobs.

use std::sync::mpsc::Sender;

use storage::{PartKind, PartName};

use crate::tls::PeerId;

/// One thing the server did. Taken from [`Server::events`](super::Server::events).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A pushed part is durable in the store; its `Stored` answer is on its way to the peer
    /// (once a [`BeforeAck`](super::BeforeAck) hook, if any, has run on it).
    /// Chunks are reported too: `name.is_chunk()` tells them apart.
    Stored {
        name: PartName,
        kind: PartKind,
        size: u64,
        /// The ID the pushing peer proved in its TLS handshake (`None` only on a plaintext
        /// benchmark connection), so a listener can tell whose parts arrive.
        peer: Option<PeerId>,
    },
}

/// The writer's end of the events channel. The channel is unbounded, so the writer never
/// waits for a listener; once the listener is gone, events are no longer made.
pub(crate) struct EventSender(Option<Sender<ServerEvent>>);

impl EventSender {
    pub(crate) fn new(sender: Option<Sender<ServerEvent>>) -> Self {
        Self(sender)
    }

    pub(crate) fn emit(&mut self, event: ServerEvent) {
        if let Some(sender) = &self.0
            && sender.send(event).is_err()
        {
            tracing::debug!("nobody listens to the server's events any more");
            self.0 = None;
        }
    }
}
