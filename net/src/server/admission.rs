//! Who gets in, and who makes room: the allow-list, the per-host cap and the connection cap,
//! checked the moment a connection is accepted, before a byte of it is read.
//!
//! So that no single host can keep the others out, one host holds at most
//! `max_connections_per_address` connections, and a full server evicts a connection before it
//! refuses a newcomer. The one evicted is idle (greeted, nothing at the workers, no answer
//! unwritten, and no frame or body half-received unless its peer stopped sending it while the
//! server would read on) and has been for at least [`MIN_IDLE_TO_EVICT`], or has been that long
//! in its handshake; among those, it comes from the host holding the most connections, and is
//! the one idle longest. Closing it loses at most a request its peer stopped sending: the peer
//! can reconnect and send it again.
//!
//! Hosts that keep every connection busy leave none idle that long. Then the newcomer takes a slot
//! from a host holding more than its fair share (the connections split between the hosts holding
//! one done with its handshake, the newcomer's counted), at least two more than the newcomer's
//! host, and more than [`KEPT_BY_ANY_HOST`]: of the heaviest such host that has one, the connection
//! between two requests (nothing at the workers, no answer unwritten, nothing of a frame or body
//! received or held back) since longest, or one still in its handshake. So a few hosts cannot keep
//! every other out, shares even out as newcomers come and never swap back, and a host holding its
//! share or a few connections gives up only one idle for a second, however many addresses the
//! newcomers come from.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use mio::net::TcpStream;
use slab::Slab;
use tracing::warn;

use super::connection::Connection;
use super::session::Session;
use crate::Limits;
use crate::frame;
use crate::message::{ErrorCode, Response};

/// How long a connection must have been idle, or in its handshake, before it may be evicted.
/// Honest clients pause between requests for moments (a file being read, a window being
/// refilled) and finish a handshake in a few round trips; evicting them then would let a flood
/// of newcomers churn them out. A peer that idles for longer can reconnect when it has
/// something to ask.
const MIN_IDLE_TO_EVICT: Duration = Duration::from_secs(1);

/// Connections no host is made to give up for being over its share, however small the share:
/// an attacker with many addresses (an IPv6 host can claim many /64s) drives the share down to
/// one, and honest hosts with a few transfers under way keep them.
const KEPT_BY_ANY_HOST: usize = 8;

/// What becomes of a connection just accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Admit,
    /// Admit it once the connection in this slot is evicted to make room, for this reason.
    AdmitEvicting(usize, Eviction),
    /// It was told why, if its socket took the bytes at once; drop it.
    Refused,
}

/// Why a connection is evicted for a newcomer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eviction {
    /// It was idle, or in its handshake, for [`MIN_IDLE_TO_EVICT`].
    Idle,
    /// Its host held more than its fair share of the server's connections.
    OverShare,
}

/// The door: the rules, and how many connections each address holds.
pub(crate) struct Admission {
    allow: Vec<IpNet>,
    max_connections: usize,
    max_per_address: usize,
    /// Connections held, by host as [`host_of`] gives it; a host holding none is absent, so
    /// the map shrinks back after a flood.
    held: HashMap<IpAddr, usize>,
    /// Connections done with their handshake, by host: the hosts the connections are shared
    /// between. One that has not finished a handshake lowers no one's share, so addresses
    /// that only connect cannot drive the shares down.
    greeted: HashMap<IpAddr, usize>,
    /// Until then no connection can have been idle long enough to be evicted (a connection
    /// only turns idle on activity, which restarts its idle time, and one accepted since
    /// began its handshake later), so a full server refuses a flood of newcomers without
    /// looking at every connection for each.
    no_victim_before: Option<Instant>,
    /// The turn and the least share at which the last look found no connection to take from a
    /// host over its share: until something changes in a later turn, a flood of newcomers
    /// needing as much or more is refused without looking again.
    no_over_share_victim: Option<(Instant, usize)>,
}

impl Admission {
    pub(crate) fn new(allow: Vec<IpNet>, limits: &Limits) -> Self {
        Self {
            allow,
            max_connections: limits.max_connections,
            max_per_address: limits.max_connections_per_address,
            held: HashMap::new(),
            greeted: HashMap::new(),
            no_victim_before: None,
            no_over_share_victim: None,
        }
    }

    /// Decides on a connection just accepted while `sessions` are held.
    pub(crate) fn judge(
        &mut self,
        stream: &mut TcpStream,
        peer: SocketAddr,
        sessions: &Slab<Session>,
        now: Instant,
    ) -> Verdict {
        let ip = plain_ip(peer);
        if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(&ip)) {
            warn!(%peer, "refusing a connection: address not allowed");
            refuse(stream, ErrorCode::Forbidden, "this address may not connect");
            return Verdict::Refused;
        }
        let host = host_of(peer);
        if self.held_by(host) >= self.max_per_address {
            warn!(%peer, max = self.max_per_address, "refusing a connection: host holds its share");
            refuse(
                stream,
                ErrorCode::TooManyConnections,
                "this host (its IPv4 address, or its IPv6 /64) holds as many connections as the \
                 server gives one host",
            );
            return Verdict::Refused;
        }
        if sessions.len() < self.max_connections {
            return Verdict::Admit;
        }
        if let Some(slot) = self.idle_victim(sessions, now) {
            return Verdict::AdmitEvicting(slot, Eviction::Idle);
        }
        if let Some(slot) = self.over_share_victim(sessions, host, now) {
            return Verdict::AdmitEvicting(slot, Eviction::OverShare);
        }
        warn!(%peer, max = self.max_connections, "refusing a connection: server full");
        refuse(
            stream,
            ErrorCode::Busy,
            "the server holds its maximum number of connections; try again later",
        );
        Verdict::Refused
    }

    /// Counts a connection now held.
    pub(crate) fn opened(&mut self, peer: SocketAddr) {
        *self.held.entry(host_of(peer)).or_insert(0) += 1;
    }

    /// Counts a connection that finished its handshake.
    pub(crate) fn greeted(&mut self, peer: SocketAddr) {
        *self.greeted.entry(host_of(peer)).or_insert(0) += 1;
    }

    /// Counts a connection no longer held, `greeted` or not.
    pub(crate) fn closed(&mut self, peer: SocketAddr, greeted: bool) {
        let host = host_of(peer);
        uncount(&mut self.held, host);
        if greeted {
            uncount(&mut self.greeted, host);
        }
    }

    /// The connection idle or in its handshake long enough, of the host holding the most
    /// connections, idle longest.
    fn idle_victim(&mut self, sessions: &Slab<Session>, now: Instant) -> Option<usize> {
        if self.no_victim_before.is_some_and(|until| now < until) {
            return None;
        }
        let mut next_candidate = now + MIN_IDLE_TO_EVICT;
        let mut best = Heaviest::default();
        for (slot, session) in sessions {
            let Some(since) = session.evictable_since() else {
                continue;
            };
            if now < since + MIN_IDLE_TO_EVICT {
                next_candidate = next_candidate.min(since + MIN_IDLE_TO_EVICT);
                continue;
            }
            let held = self.held_by(session.conn.host());
            best.consider(slot, held, since);
        }
        self.no_victim_before = best.slot().is_none().then_some(next_candidate);
        best.slot()
    }

    /// The connection between two requests since longest, or in its handshake, of the
    /// heaviest host that must give one up to a newcomer from `newcomer` and has one.
    fn over_share_victim(
        &mut self,
        sessions: &Slab<Session>,
        newcomer: IpAddr,
        now: Instant,
    ) -> Option<usize> {
        let must_give_up =
            gives_up_a_slot_at(&self.held, &self.greeted, newcomer, self.max_connections);
        if self.held.values().all(|&held| held < must_give_up)
            || self
                .no_over_share_victim
                .is_some_and(|(turn, least)| turn == now && must_give_up >= least)
        {
            return None;
        }
        let mut best = Heaviest::default();
        for (slot, session) in sessions {
            let held = self.held_by(session.conn.host());
            if held < must_give_up {
                continue;
            }
            let Some(since) = session.between_requests_since() else {
                continue;
            };
            best.consider(slot, held, since);
        }
        if best.slot().is_none() {
            self.no_over_share_victim = Some((now, must_give_up));
        }
        best.slot()
    }

    fn held_by(&self, host: IpAddr) -> usize {
        self.held.get(&host).copied().unwrap_or(0)
    }
}

/// Of the candidates for eviction, the one of the host holding the most connections, and of
/// that host the one waiting on its peer since longest.
#[derive(Default)]
struct Heaviest(Option<(usize, usize, Instant)>);

impl Heaviest {
    /// Considers the connection in `slot`, of a host holding `held`, waiting since `since`.
    fn consider(&mut self, slot: usize, held: usize, since: Instant) {
        let better = self.0.is_none_or(|(_, best_held, best_since)| {
            held > best_held || (held == best_held && since < best_since)
        });
        if better {
            self.0 = Some((slot, held, since));
        }
    }

    fn slot(&self) -> Option<usize> {
        self.0.map(|(slot, ..)| slot)
    }
}

/// Takes one connection of `host` off `counts`, leaving no entry for a host that holds none.
fn uncount(counts: &mut HashMap<IpAddr, usize>, host: IpAddr) {
    if let Some(count) = counts.get_mut(&host) {
        *count -= 1;
        if *count == 0 {
            counts.remove(&host);
        }
    }
}

/// How many connections a host must hold (`held`) to give one up to a newcomer from
/// `newcomer` on a full server of `max_connections`: more than its fair share, the connections
/// split between the hosts holding a `greeted` one and the newcomer's; at least two more than
/// the newcomer's host, so that a slot taken leaves the newcomer's host holding no more than
/// the other; and more than [`KEPT_BY_ANY_HOST`].
fn gives_up_a_slot_at(
    held: &HashMap<IpAddr, usize>,
    greeted: &HashMap<IpAddr, usize>,
    newcomer: IpAddr,
    max_connections: usize,
) -> usize {
    let newcomer_holds = held.get(&newcomer).copied().unwrap_or(0);
    let hosts = greeted.len() + usize::from(!greeted.contains_key(&newcomer));
    (max_connections / hosts + 1)
        .max(newcomer_holds + 2)
        .max(KEPT_BY_ANY_HOST + 1)
}

/// Tells a connection about to be evicted why, if its socket takes the bytes at once. One
/// evicted waits on its peer and has no output pending, so the frame goes first in line. One
/// still in its handshake has no channel to say it on.
pub(crate) fn say_evicted(conn: &mut Connection, why: Eviction) {
    let message = match why {
        Eviction::Idle => {
            "closed while idle to make room for another connection; reconnect when needed"
        }
        Eviction::OverShare => {
            "closed between requests to make room for another host's connection: this host \
             held more than its share of a full server; reconnect when needed"
        }
    };
    let evicted = Response::Error {
        code: ErrorCode::Evicted,
        message: message.into(),
    };
    if conn.queue(&evicted, Vec::new()).is_ok() {
        let _ = conn.flush();
    }
}

/// The peer's address, with an IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`)
/// given as the IPv4 address it is, so `--allow` rules for IPv4 networks apply to it and it
/// counts as the same host as its plain IPv4 connections.
fn plain_ip(peer: SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The host a peer is, for every share the server keeps (connections, memory, turns): its
/// IPv4 address, or the /64 of its IPv6 address. An IPv6 host is given a /64 and may connect
/// from any address in it, so counting addresses would give it 2^64 shares.
pub(crate) fn host_of(peer: SocketAddr) -> IpAddr {
    match plain_ip(peer) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & HOST_PREFIX_V6)),
        v4 => v4,
    }
}

/// The bits of an IPv6 address that name its host's network: the first 64.
const HOST_PREFIX_V6: u128 = u128::MAX << 64;

/// Tells a connection refused at the door why, if its socket takes the bytes at once; never
/// waits for it.
fn refuse(stream: &mut TcpStream, code: ErrorCode, message: &str) {
    let refusal = Response::Error {
        code,
        message: message.into(),
    };
    if let Ok(frame) = frame::encode_response(&refusal) {
        let _ = stream.write(&frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(peer: &str) -> IpAddr {
        host_of(SocketAddr::new(peer.parse().unwrap(), 6881))
    }

    #[test]
    fn an_ipv4_host_is_its_address_even_through_an_ipv6_socket() {
        assert_eq!(host("192.0.2.7"), host("::ffff:192.0.2.7"));
        assert_ne!(host("192.0.2.7"), host("192.0.2.8"));
    }

    #[test]
    fn an_ipv6_host_is_its_64() {
        assert_eq!(host("2001:db8:1::5"), host("2001:db8:1:0:ffff:ffff:ffff:1"));
        assert_eq!(
            host("2001:db8:1::5"),
            "2001:db8:1::".parse::<IpAddr>().unwrap()
        );
        assert_ne!(host("2001:db8:1::5"), host("2001:db8:1:1::5"));
    }

    fn v4(c: u8, d: u8) -> IpAddr {
        [127, 0, c, d].into()
    }

    /// Eight hosts holding 128 each fill 1,024 slots: a ninth host's share is 113, so each of
    /// them gives one up, and keeps doing so until the newcomer holds as many as they do.
    #[test]
    fn hosts_over_their_share_give_slots_up_until_the_newcomer_has_as_many() {
        let mut held: HashMap<IpAddr, usize> = (1..=8).map(|d| (v4(1, d), 128)).collect();
        let newcomer = v4(0, 1);
        assert_eq!(gives_up_a_slot_at(&held, &held, newcomer, 1024), 114);
        held.insert(newcomer, 113);
        assert_eq!(gives_up_a_slot_at(&held, &held, newcomer, 1024), 115);
    }

    /// Ten hosts fill 1,024 slots, one holding 93, its share once a newcomer is counted
    /// (1,024 / 11), the nine others 103 or 104: those give slots up, and it keeps its own.
    #[test]
    fn a_host_holding_its_share_keeps_it_while_the_heavier_give_up() {
        let mut held: HashMap<IpAddr, usize> = (1..=9).map(|d| (v4(1, d), 103)).collect();
        held.insert(v4(1, 1), 107);
        held.insert(v4(1, 10), 93);
        assert_eq!(held.values().sum::<usize>(), 1024);
        let must_give_up = gives_up_a_slot_at(&held, &held, v4(0, 1), 1024);
        assert_eq!(must_give_up, 94);
        assert!(held[&v4(1, 10)] < must_give_up);
        assert!(held.values().filter(|&&n| n >= must_give_up).count() == 9);
    }

    /// 1,000 hosts holding one each and one honest host holding 24: however many addresses
    /// the newcomers come from, the honest host keeps a few.
    #[test]
    fn a_host_keeps_a_few_however_small_the_share() {
        let mut held: HashMap<IpAddr, usize> = (0..1000u16)
            .map(|n| (v4(2 + (n / 256) as u8, (n % 256) as u8), 1))
            .collect();
        held.insert(v4(0, 1), 24);
        assert_eq!(
            gives_up_a_slot_at(&held, &held, v4(9, 9), 1024),
            KEPT_BY_ANY_HOST + 1
        );
    }

    /// Four hosts hold 200 each, done with their handshakes, and 224 addresses one each, still
    /// in theirs: the shares are split between the four and the newcomer (204 each), so none
    /// of the four gives a slot up. Counted as hosts, the 224 would have cut the share to the
    /// floor and made each of the four give up all but eight.
    #[test]
    fn hosts_still_in_their_handshakes_lower_no_share() {
        let greeted: HashMap<IpAddr, usize> = (1..=4).map(|d| (v4(1, d), 200)).collect();
        let mut held = greeted.clone();
        held.extend((0..224).map(|d| (v4(2, d), 1)));
        assert_eq!(held.values().sum::<usize>(), 1024);
        let must_give_up = gives_up_a_slot_at(&held, &greeted, v4(0, 1), 1024);
        assert_eq!(must_give_up, 205);
        assert!(greeted.values().all(|&n| n < must_give_up));
        assert_eq!(
            gives_up_a_slot_at(&held, &held, v4(0, 1), 1024),
            KEPT_BY_ANY_HOST + 1
        );
    }
}
