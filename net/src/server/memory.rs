//! One memory budget for the whole server: every byte held on a peer's behalf is charged to it,
//! whatever holds it (a body as it arrives, an upload queued for the store, an answer the peer
//! has not read, a request in flight), so what peers send cannot grow the server past it.
//!
//! Only the event loop touches it. Each session charges what it holds after each turn
//! ([`Memory::recharge`]); uploads a closed session left at the writer stay charged until the
//! writer is done with them. Charges are also summed per host (IPv4 address or IPv6 /64), so
//! that when the memory runs short a host holding less than its share is still read.

use std::collections::HashMap;
use std::net::IpAddr;

/// What one request in flight costs beyond its buffers: its map entry, its name, its answer's
/// header.
pub(crate) const REQUEST_COST: u64 = 512;

/// Bytes held on behalf of peers, against a limit.
#[derive(Debug)]
pub(crate) struct Memory {
    used: u64,
    limit: u64,
    /// What the live connections of each host hold, for its share of the reserve.
    by_host: HashMap<IpAddr, u64>,
    /// The most held since [`Memory::take_peak`] was last asked.
    peak: u64,
    /// Bytes released since the allocator was last asked to give memory back.
    released_since_trim: u64,
}

/// Released bytes after which the allocator is asked to return free memory to the system, so
/// the memory a departed attacker made the server hold does not stay with the process.
const TRIM_AFTER: u64 = 64 * 1024 * 1024;

impl Memory {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            used: 0,
            limit,
            by_host: HashMap::new(),
            peak: 0,
            released_since_trim: 0,
        }
    }

    /// Whether any holder at all may take more: the lightest go on into the reserve.
    pub(crate) fn below_the_reserve_top(&self) -> bool {
        self.used < self.reserve_top()
    }

    /// The most held: the limit and a reserve of an eighth of it.
    fn reserve_top(&self) -> u64 {
        self.limit + self.limit / 8
    }

    /// Whether a holder of `held` bytes from `host` may take more. Until half the limit is
    /// used, everyone may. Past it, a holder of a sixteenth of the limit or more stops, and
    /// so does every connection of a host holding as much as the share it would have if one
    /// more host came (the limit over one more than the hosts holding anything): whatever
    /// many connections a few hosts open, they leave a share free, and a newcomer is served
    /// while they wait to be closed for what they hold. A host under that share goes on to
    /// the limit and into a reserve of an eighth of it.
    pub(crate) fn has_room_for(&self, held: u64, host: IpAddr) -> bool {
        if self.used < self.limit / 2 {
            return true;
        }
        let stop_at = if self.may_use_the_reserve(held, host) {
            self.reserve_top()
        } else {
            self.limit / 2
        };
        self.used < stop_at
    }

    /// Whether a holder of `held` bytes from `host` reads on past half the limit, into the
    /// reserve: it is light, and its host holds less than its share.
    pub(crate) fn may_use_the_reserve(&self, held: u64, host: IpAddr) -> bool {
        held < self.limit / 16 && self.leaves_a_share_free(host)
    }

    fn leaves_a_share_free(&self, host: IpAddr) -> bool {
        let holds = self.by_host.get(&host).copied().unwrap_or(0);
        let others = self.by_host.len() as u64 - u64::from(holds > 0);
        holds < self.limit / (others + 2)
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    /// The most held since the last call, which starts the next watch from what is held now.
    /// Sessions stop reading only when that much was held, which can happen and pass between
    /// two looks at [`Memory::used`].
    pub(crate) fn take_peak(&mut self) -> u64 {
        std::mem::replace(&mut self.peak, self.used)
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

    /// Replaces the charge `from` of a holder from `host` with `to`.
    pub(crate) fn recharge(&mut self, host: IpAddr, from: u64, to: u64) {
        if to < from {
            self.release(from - to);
        } else {
            self.used += to - from;
            self.peak = self.peak.max(self.used);
        }
        self.move_host(host, from, to);
    }

    /// Ends the charge `charged` of a holder from `host` that closed, giving back
    /// `releasable` of it now; the rest (uploads it left at the writer) is given back with
    /// [`Memory::release`] as they are done, and counts for no host.
    pub(crate) fn closed(&mut self, host: IpAddr, charged: u64, releasable: u64) {
        self.release(releasable);
        self.move_host(host, charged, 0);
    }

    fn move_host(&mut self, host: IpAddr, from: u64, to: u64) {
        let holds = self.by_host.entry(host).or_default();
        *holds = (*holds + to).saturating_sub(from);
        if *holds == 0 {
            self.by_host.remove(&host);
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 256;

    fn host(last: u8) -> IpAddr {
        [127, 0, 1, last].into()
    }

    /// Eight hosts fill the memory to the limit, a share each: none may take more, and a
    /// ninth host, whose arrival lowers every share, goes on into the reserve.
    #[test]
    fn a_newcomer_host_is_served_while_others_hold_their_shares() {
        let mut memory = Memory::new(LIMIT);
        for last in 1..=8 {
            memory.recharge(host(last), 0, LIMIT / 8);
        }
        assert!((1..=8).all(|last| !memory.has_room_for(1, host(last))));
        assert!(memory.has_room_for(0, host(9)));
    }

    /// Past half the limit, a host alone goes on only while it holds less than half of it:
    /// the other half is the share a newcomer would have. A holder of a sixteenth stops.
    #[test]
    fn a_lone_host_leaves_half_the_limit_to_a_newcomer() {
        let mut memory = Memory::new(LIMIT);
        memory.recharge(host(1), 0, LIMIT / 2 - 1);
        assert!(memory.has_room_for(1, host(1)));
        memory.recharge(host(1), LIMIT / 2 - 1, LIMIT / 2);
        assert!(!memory.has_room_for(1, host(1)));
        assert!(memory.has_room_for(0, host(2)));
        assert!(!memory.has_room_for(LIMIT / 16, host(2)));
    }

    /// A light holder of a host under its share may use the reserve; one of a host over it,
    /// or one holding a sixteenth of the limit, may not.
    #[test]
    fn the_reserve_is_for_light_holders_of_hosts_under_their_share() {
        let mut memory = Memory::new(LIMIT);
        memory.recharge(host(1), 0, LIMIT / 2);
        memory.recharge(host(2), 0, LIMIT / 8);
        assert!(memory.may_use_the_reserve(LIMIT / 16 - 1, host(2)));
        assert!(!memory.may_use_the_reserve(LIMIT / 16, host(2)));
        assert!(!memory.may_use_the_reserve(1, host(1)));
    }

    /// A closed holder's charge leaves its host at once; what it left at the writer stays in
    /// the total until released.
    #[test]
    fn a_closed_holder_leaves_its_host() {
        let mut memory = Memory::new(LIMIT);
        memory.recharge(host(1), 0, 100);
        memory.recharge(host(2), 0, 100);
        memory.closed(host(1), 100, 60);
        assert_eq!(memory.used(), 140);
        assert!(!memory.by_host.contains_key(&host(1)));
        memory.release(40);
        assert_eq!(memory.used(), 100);
        assert_eq!(memory.by_host.get(&host(2)), Some(&100));
    }

    /// A peak that came and went between two looks is still seen, once: the next look starts
    /// from what is held then.
    #[test]
    fn a_peak_between_two_looks_is_seen() {
        let mut memory = Memory::new(LIMIT);
        memory.recharge(host(1), 0, LIMIT / 2);
        memory.recharge(host(1), LIMIT / 2, 10);
        assert_eq!(memory.take_peak(), LIMIT / 2);
        assert_eq!(memory.take_peak(), 10);
        memory.release(10);
        assert_eq!(memory.take_peak(), 10);
        assert_eq!(memory.take_peak(), 0);
    }
}
