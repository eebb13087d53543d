//! One memory budget for the whole server: every byte held on a peer's behalf is charged to it,
//! whatever holds it (a body as it arrives, an upload queued for the store, an answer the peer
//! has not read, a request in flight), so what peers send cannot grow the server past it.
//!
//! Only the event loop touches it. Each session charges what it holds after each turn
//! ([`Memory::recharge`]); uploads a closed session left at the writer stay charged until the
//! writer is done with them.

/// What one request in flight costs beyond its buffers: its map entry, its name, its answer's
/// header.
pub(crate) const REQUEST_COST: u64 = 512;

/// Bytes held on behalf of peers, against a limit.
#[derive(Debug)]
pub(crate) struct Memory {
    used: u64,
    limit: u64,
    /// Bytes released since the allocator was last asked to give memory back.
    released_since_trim: u64,
}

/// Holders below this keep reading from the reserve while the limit is reached.
const LIGHT: u64 = 64 * 1024;

/// Released bytes after which the allocator is asked to return free memory to the system, so
/// the memory a departed attacker made the server hold does not stay with the process.
const TRIM_AFTER: u64 = 64 * 1024 * 1024;

impl Memory {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            used: 0,
            limit,
            released_since_trim: 0,
        }
    }

    /// Whether anything more may be taken on.
    pub(crate) fn has_room(&self) -> bool {
        self.used < self.limit
    }

    /// Whether a holder of `held` bytes may take more. The heaviest stop first: a holder of a
    /// sixteenth of the limit or more stops at half of it, so lighter ones still find room;
    /// everyone else stops at the limit, except those holding almost nothing (a new
    /// connection's handshake, one small request), who may go on into a reserve of an eighth
    /// of it, so a newcomer is never starved by the rest.
    pub(crate) fn has_room_for(&self, held: u64) -> bool {
        let stop_at = if held >= self.limit / 16 {
            self.limit / 2
        } else if held < LIGHT {
            self.limit + self.limit / 8
        } else {
            self.limit
        };
        self.used < stop_at
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    /// Whether more than half the limit is held: past it the heaviest holders stop reading,
    /// and holders whose peers take nothing are worth closing.
    pub(crate) fn is_pressed(&self) -> bool {
        self.used >= self.limit / 2
    }

    /// How much must be given back to bring the memory under half the limit, and a sixteenth
    /// of the limit more, so that a relieved server does not fill up again at once.
    pub(crate) fn excess_plus_slack(&self) -> u64 {
        if self.is_pressed() {
            self.used - self.limit / 2 + self.limit / 16
        } else {
            0
        }
    }

    /// Replaces a holder's charge `from` with `to`.
    pub(crate) fn recharge(&mut self, from: u64, to: u64) {
        if to < from {
            self.release(from - to);
        } else {
            self.used += to - from;
        }
    }

    /// Gives back `bytes` a holder no longer holds.
    pub(crate) fn release(&mut self, bytes: u64) {
        self.used -= bytes.min(self.used);
        self.released_since_trim += bytes;
    }

    /// Gives back to the system the `bytes` the server let go of while it held nothing for any
    /// peer (free body buffers, which no peer was charged for).
    pub(crate) fn freed_while_idle(&mut self, bytes: u64) {
        if bytes > 0 {
            self.released_since_trim = 0;
            trim_allocator();
        }
    }

    /// Asks the allocator to return free memory to the system once enough was released and
    /// little is held, so the resident size follows what is held.
    pub(crate) fn give_back(&mut self) {
        if self.released_since_trim >= TRIM_AFTER && self.used < self.limit / 4 {
            self.released_since_trim = 0;
            trim_allocator();
        }
    }
}

#[cfg(target_env = "gnu")]
fn trim_allocator() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(target_env = "gnu"))]
fn trim_allocator() {}
