//! What to give up when the server's memory is full: the connections that hold the most while
//! their peers take nothing (answers unread, a body stopped halfway, offers never followed by
//! their bodies). Stopping to read them is not enough, since what they hold stays held; closing
//! them gives it back, and the peers that are making progress keep being served.

use std::time::{Duration, Instant};

use slab::Slab;
use tracing::warn;

use super::EventLoop;
use crate::server::memory::Memory;
use crate::server::session::Session;

/// How long a peer must have made no progress before its connection may be closed for the
/// memory it holds.
const STALE: Duration = Duration::from_secs(1);

/// Sessions holding less than this are never closed for memory: closing them would give back
/// too little to matter.
const WORTH_CLOSING: u64 = 256 * 1024;

/// The slots to close, heaviest first, so that `memory` is back under half its limit with
/// some to spare.
fn to_evict(sessions: &Slab<Session>, memory: &Memory, now: Instant) -> Vec<usize> {
    let Some(since) = now.checked_sub(STALE) else {
        return Vec::new();
    };
    let mut holders: Vec<(u64, usize)> = sessions
        .iter()
        .filter(|(_, session)| !stopped_by_us(session, memory))
        .filter_map(|(slot, session)| Some((session.idle_holder(since)?, slot)))
        .filter(|&(held, _)| held >= WORTH_CLOSING)
        .collect();
    holders.sort_unstable_by(|a, b| b.cmp(a));
    let mut needed = memory.excess_plus_slack();
    let mut chosen = Vec::new();
    for (held, slot) in holders {
        if needed == 0 {
            break;
        }
        needed = needed.saturating_sub(held);
        chosen.push(slot);
    }
    chosen
}

/// Whether the server stopped reading a session its peer would have it read: a light one, of
/// a host under its share, that its peer owes nothing (no answer unread). Its silence is the
/// server's, since such a holder stops only when the reserve too is gone, which heavier
/// holders brought about; it is not one to close for it.
fn stopped_by_us(session: &Session, memory: &Memory) -> bool {
    session.stalled
        && session.conn.pending_output() == 0
        && memory.may_use_the_reserve(session.charged(), session.conn.host())
}

impl EventLoop {
    /// Closes the sessions that hold the most while their peers make no progress, until the
    /// server's memory has room again; sessions whose peers are active are left alone.
    pub(super) fn relieve_memory(&mut self, now: Instant) {
        for slot in to_evict(&self.sessions, &self.shared.memory, now) {
            let session = &self.sessions[slot];
            warn!(
                peer = %session.conn.peer,
                held = session.releasable(),
                "closing a connection that holds memory its peer does not take"
            );
            self.close(slot);
        }
    }

    /// Drives the sessions that stopped for memory and that it lets read again: those
    /// holding least first (the heaviest are the ones to wait), and among equals starting
    /// after the one resumed first last time, so no slot is always served first. Those it
    /// still stops are passed over without a drive.
    pub(super) fn resume_waiting_for_memory(&mut self, now: Instant) {
        let mut waiting: Vec<usize> = self.waiting_for_memory.iter().copied().collect();
        let start = waiting.partition_point(|&slot| slot <= self.resumed_last);
        waiting.rotate_left(start);
        waiting.sort_by_key(|&slot| self.sessions.get(slot).map(Session::charged));
        if let Some(&first) = waiting.first() {
            self.resumed_last = first;
        }
        for slot in waiting {
            if !self.shared.memory.below_the_reserve_top() {
                break;
            }
            let may_read = (self.sessions.get(slot))
                .is_some_and(|session| session.memory_allows_reading(&self.shared.memory));
            if may_read {
                self.drive_slot(slot, now);
            }
        }
    }
}
