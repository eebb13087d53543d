//! Telling subscribers what the store newly holds, from the loop: on news from the feed, and
//! at each sweep for the heartbeats of quiet subscriptions. What they leave unread is charged
//! to the server's memory, so subscribers that never read are cut like any other such peer.

use std::time::Instant;

use super::{EventLoop, flush};

impl EventLoop {
    /// Queues and writes each subscriber's announcements, as far as its budget allows.
    pub(super) fn announce_all(&mut self, now: Instant) {
        let subscribers: Vec<usize> = (self.sessions.iter())
            .filter(|(_, session)| session.is_subscribed())
            .map(|(slot, _)| slot)
            .collect();
        for slot in subscribers {
            let session = &mut self.sessions[slot];
            session.announce(&self.shared, now);
            let result = flush(&self.poll, session, &self.shared.counters, now);
            // What is queued and unread counts against the server's memory, as any answer.
            session.recharge(&mut self.shared);
            self.note_stop(slot);
            self.settle(slot, result);
        }
    }
}
