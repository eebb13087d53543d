//! When a session reads and when it gives up: the budgets that stop reading a connection
//! (backpressure instead of memory growth) and the deadlines that end a silent one.

use std::time::Instant;

use super::{CLOSE_GRACE, MAX_GETS_AT_WORKERS, MAX_LISTS_AT_WORKERS, Session, Shared};
use crate::Limits;
use crate::message::ErrorCode;
use crate::server::memory::Memory;

impl Session {
    /// Whether to take more from the peer. The number of requests in flight is no reason to
    /// stop: an offer answered `Want` stays in flight until its body is read.
    ///
    /// A request is read only when whatever it may bring fits: the server's memory has room,
    /// and this connection's unread answers plus the parts its `Get`s will bring stay under
    /// its own budget. A handshake is read whatever the memory holds: it brings a few records,
    /// and with its deadline running, stopping it would close a newcomer for the server's own
    /// wait.
    pub(super) fn may_read(&self, shared: &Shared) -> bool {
        self.memory_allows_reading(&shared.memory) && self.own_budgets_allow_reading(shared)
    }

    /// Whether reading stopped for the server's memory alone: the session's own budgets
    /// would read on, so nothing of its own (a worker's answer, a write) will wake it, and
    /// the loop must when memory is given back.
    pub(crate) fn waits_for_memory(&self, shared: &Shared) -> bool {
        self.stalled
            && !self.memory_allows_reading(&shared.memory)
            && self.own_budgets_allow_reading(shared)
    }

    /// Whether a session that stopped reading may read on now: what stopped it was given
    /// back after it stopped (its own answers written, its charge lowered), by the same turn.
    pub(crate) fn could_read_on(&self, shared: &Shared) -> bool {
        self.stalled && self.may_read(shared)
    }

    /// Whether the server's memory lets this session read on.
    pub(crate) fn memory_allows_reading(&self, memory: &Memory) -> bool {
        !self.greeted || memory.has_room_for(self.charged, self.conn.host())
    }

    fn own_budgets_allow_reading(&self, shared: &Shared) -> bool {
        let limits = &shared.limits;
        let answers = self.conn.pending_output() as u64
            + (self.gets_at_workers as u64 + 1) * self.get_cost(limits);
        self.closing_since.is_none()
            && self.held.is_none()
            && !shared.shutting_down
            && self.buffered < limits.max_buffered_per_connection
            && (self.gets_at_workers == 0 || answers <= limits.max_buffered_per_connection)
            && (self.conn.pending_output() as u64) < limits.max_buffered_per_connection
            && self.gets_at_workers < MAX_GETS_AT_WORKERS
            && self.lists_at_workers < MAX_LISTS_AT_WORKERS
    }

    /// Whether the session holds memory while its peer has made no progress since `since`:
    /// answers it does not read, a body it stopped sending, offers it never sends. Such a
    /// session is the first to go when the server runs short.
    pub(crate) fn idle_holder(&self, since: Instant) -> Option<u64> {
        (self.conn.last_activity <= since && self.at_workers == 0).then(|| self.releasable())
    }

    /// When the session must hear from its peer again, `None` while the wait is ours.
    pub(crate) fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if let Some(since) = self.closing_since {
            return Some(since + CLOSE_GRACE);
        }
        if !self.greeted {
            return Some(self.accepted_at + limits.handshake_timeout);
        }
        // Held back by the store's budgets rather than by unread answers, the wait is ours.
        let held_by_store = self.stalled
            && (self.conn.pending_output() as u64) < limits.max_buffered_per_connection;
        // A subscriber with nothing unread waits for the store, not the other way round.
        let waits_for_news = self.is_subscribed() && self.conn.pending_output() == 0;
        // One that stopped at its share of a turn is read again next turn.
        (self.at_workers == 0 && !held_by_store && !waits_for_news && !self.yielded)
            .then_some(self.conn.last_activity + limits.idle_timeout)
    }

    /// Acts on a passed deadline: a first time, an error reply; after the grace, the end.
    /// Returns whether the connection must be dropped now.
    pub(crate) fn expire(&mut self, limits: &Limits) -> bool {
        // Mid-handshake there is no channel to say anything on.
        if self.closing_since.is_some() || self.conn.is_handshaking() {
            return true;
        }
        let message = if self.greeted {
            format!("no request for {}s", limits.idle_timeout.as_secs())
        } else {
            format!(
                "no handshake within {}s",
                limits.handshake_timeout.as_secs()
            )
        };
        self.fail(ErrorCode::Timeout, message);
        false
    }
}
