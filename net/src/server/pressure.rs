//! What to give up when the server's memory is full: the connections that hold the most while
//! their peers take nothing (answers unread, a body stopped halfway, offers never followed by
//! their bodies). Stopping to read them is not enough, since what they hold stays held; closing
//! them gives it back, and the peers that are making progress keep being served.

use std::time::{Duration, Instant};

use slab::Slab;

use super::memory::Memory;
use super::session::Session;

/// How long a peer must have made no progress before its connection may be closed for the
/// memory it holds.
const STALE: Duration = Duration::from_secs(1);

/// Sessions holding less than this are never closed for memory: closing them would give back
/// too little to matter.
const WORTH_CLOSING: u64 = 256 * 1024;

/// The slots to close, heaviest first, so that `memory` is back under half its limit with
/// some to spare.
pub(crate) fn to_evict(sessions: &Slab<Session>, memory: &Memory, now: Instant) -> Vec<usize> {
    let Some(since) = now.checked_sub(STALE) else {
        return Vec::new();
    };
    let mut holders: Vec<(u64, usize)> = sessions
        .iter()
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
