//! How the loop stops: on request, after a grace for what the workers hold, or at once when a
//! store worker has died and the answers it owed will never come.

use std::time::Instant;

use tracing::{debug, error};

use super::{EventLoop, flush};

impl EventLoop {
    /// The name of a store worker that has ended, which while the loop runs means it died.
    pub(super) fn dead_worker(&self) -> Option<String> {
        self.workers
            .iter()
            .find(|handle| handle.is_finished())
            .map(|handle| handle.thread().name().unwrap_or("store worker").to_owned())
    }

    /// Stops serving after a worker died: its jobs will never be answered, so every connection
    /// is told the server is stopping and closed at once rather than left waiting.
    pub(super) fn abandon_all(&mut self, worker: &str) {
        error!(
            worker,
            connections = self.sessions.len(),
            "a store worker stopped unexpectedly; closing every connection and stopping"
        );
        self.begin_shutdown();
        let slots: Vec<usize> = self.sessions.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            let session = &mut self.sessions[slot];
            session.abandon(format!(
                "the store worker {worker} stopped; the server is stopping"
            ));
            if let Err(err) = session.conn.flush() {
                debug!(%err, "cannot tell a connection the server is stopping");
            }
            self.close(slot);
        }
    }

    pub(super) fn begin_shutdown(&mut self) {
        self.shared.shutting_down = true;
        if let Some(mut listener) = self.listener.take()
            && let Err(err) = self.poll.registry().deregister(&mut listener)
        {
            debug!(%err, "deregistering the listener");
        }
    }

    /// Tells each connection with nothing left at the workers that the server is stopping.
    pub(super) fn finish_shut_down_sessions(&mut self, now: Instant) {
        let slots: Vec<usize> = self.sessions.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            let session = &mut self.sessions[slot];
            session.shut_down();
            let result = flush(&self.poll, session, &self.shared.counters, now);
            self.settle(slot, result);
        }
    }
}
