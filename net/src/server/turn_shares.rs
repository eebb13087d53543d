//! How many requests each host may have handled in one turn of the loop. Without it, a turn
//! handles whatever every connection sent, and a thousand connections sending offers made one
//! turn last a second; a push from another host waited whole turns. A host's share is the
//! turn's requests split between the hosts that had requests handled in the last turn (idle
//! ones take nothing), so a turn stays short and every busy host gets its share of each one,
//! whatever number of connections the others opened.

use std::collections::HashMap;
use std::net::IpAddr;

/// Requests one turn handles when every host uses its share. A request from a host that just
/// connected waits for about one turn: at 2,048, a thousand connections sending offers made
/// turns of about 10 ms and an honest push under them a median 0.06 s (worst 0.19 s); at 512,
/// 0.04 s (0.06 s), with no change a push of small parts could measure.
const TURN_REQUESTS: u32 = 512;

/// The least a host may handle in a turn, however many hosts are connected.
const MIN_SHARE: u32 = 16;

pub(crate) struct TurnShares {
    share: u32,
    handled: HashMap<IpAddr, u32>,
}

impl TurnShares {
    pub(crate) fn new() -> Self {
        Self {
            share: TURN_REQUESTS,
            handled: HashMap::new(),
        }
    }

    /// Starts a turn: the last one's busy hosts split it, and every share is whole again.
    pub(crate) fn new_turn(&mut self) {
        let hosts = u32::try_from(self.handled.len().max(1)).unwrap_or(u32::MAX);
        self.share = (TURN_REQUESTS / hosts).max(MIN_SHARE);
        self.handled.clear();
    }

    /// How many more requests of `host` this turn may handle.
    pub(crate) fn left(&self, host: IpAddr) -> u32 {
        self.share
            .saturating_sub(self.handled.get(&host).copied().unwrap_or(0))
    }

    /// Counts `count` requests of `host` handled; a host with none handled is not busy.
    pub(crate) fn took(&mut self, host: IpAddr, count: u32) {
        if count > 0 {
            *self.handled.entry(host).or_default() += count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(last: u8) -> IpAddr {
        [127, 0, 1, last].into()
    }

    /// Handles requests of `host` one at a time, as long as its share lasts.
    fn handle_all_it_may(shares: &mut TurnShares, host: IpAddr) -> u32 {
        let mut count = 0;
        while shares.left(host) > 0 && count <= TURN_REQUESTS {
            shares.took(host, 1);
            count += 1;
        }
        count
    }

    /// A host alone has the whole turn; after a turn where four hosts were busy (and one
    /// connected host had nothing handled), each has a fourth of the next, and a host that
    /// used its share leaves the others theirs.
    #[test]
    fn the_busy_hosts_of_a_turn_split_the_next() {
        let mut shares = TurnShares::new();
        shares.new_turn();
        assert_eq!(handle_all_it_may(&mut shares, host(1)), TURN_REQUESTS);
        shares.took(host(5), 0);
        for last in 2..=4 {
            shares.took(host(last), 1);
        }
        shares.new_turn();
        assert_eq!(handle_all_it_may(&mut shares, host(1)), TURN_REQUESTS / 4);
        assert_eq!(shares.left(host(1)), 0);
        assert_eq!(handle_all_it_may(&mut shares, host(2)), TURN_REQUESTS / 4);
        shares.new_turn();
        assert_eq!(
            shares.left(host(3)),
            TURN_REQUESTS / 2,
            "two hosts were busy"
        );
    }

    /// However many hosts were busy, each may handle a few requests per turn.
    #[test]
    fn a_share_never_falls_below_its_floor() {
        let mut shares = TurnShares::new();
        for index in 0..5_000u32 {
            shares.took(IpAddr::from(index.to_be_bytes()), 1);
        }
        shares.new_turn();
        assert_eq!(handle_all_it_may(&mut shares, host(1)), MIN_SHARE);
    }
}
