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

/// What becomes of a connection just accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Admit,
    /// Admit it once the connection in this slot is evicted to make room.
    AdmitEvicting(usize),
    /// It was told why, if its socket took the bytes at once; drop it.
    Refused,
}

/// The door: the rules, and how many connections each address holds.
pub(crate) struct Admission {
    allow: Vec<IpNet>,
    max_connections: usize,
    max_per_address: usize,
    /// Connections held, by host as [`host_of`] gives it; a host holding none is absent, so
    /// the map shrinks back after a flood.
    held: HashMap<IpAddr, usize>,
    /// Until then no connection can have been idle long enough to be evicted (a connection
    /// only turns idle on activity, which restarts its idle time, and one accepted since
    /// began its handshake later), so a full server refuses a flood of newcomers without
    /// looking at every connection for each.
    no_victim_before: Option<Instant>,
}

impl Admission {
    pub(crate) fn new(allow: Vec<IpNet>, limits: &Limits) -> Self {
        Self {
            allow,
            max_connections: limits.max_connections,
            max_per_address: limits.max_connections_per_address,
            held: HashMap::new(),
            no_victim_before: None,
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
        if self.held.get(&host_of(peer)).copied().unwrap_or(0) >= self.max_per_address {
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
        if let Some(slot) = self.victim(sessions, now) {
            return Verdict::AdmitEvicting(slot);
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

    /// Counts a connection no longer held.
    pub(crate) fn closed(&mut self, peer: SocketAddr) {
        let host = host_of(peer);
        if let Some(count) = self.held.get_mut(&host) {
            *count -= 1;
            if *count == 0 {
                self.held.remove(&host);
            }
        }
    }

    /// The slot of the connection to evict: idle or in its handshake long enough, of the host
    /// holding the most connections, idle longest. `None` when no connection is.
    fn victim(&mut self, sessions: &Slab<Session>, now: Instant) -> Option<usize> {
        if self.no_victim_before.is_some_and(|until| now < until) {
            return None;
        }
        let mut next_candidate = now + MIN_IDLE_TO_EVICT;
        let mut best: Option<(usize, usize, Instant)> = None;
        for (slot, session) in sessions {
            let Some(since) = session.evictable_since() else {
                continue;
            };
            if now < since + MIN_IDLE_TO_EVICT {
                next_candidate = next_candidate.min(since + MIN_IDLE_TO_EVICT);
                continue;
            }
            let held = self.held.get(&host_of(session.conn.peer)).copied();
            let held = held.unwrap_or(0);
            let better = best.is_none_or(|(_, best_held, best_since)| {
                held > best_held || (held == best_held && since < best_since)
            });
            if better {
                best = Some((slot, held, since));
            }
        }
        self.no_victim_before = best.is_none().then_some(next_candidate);
        best.map(|(slot, ..)| slot)
    }
}

/// Tells a connection about to be evicted why, if its socket takes the bytes at once. An idle
/// connection has no output pending, so the frame goes first in line. One still in its
/// handshake has no channel to say it on.
pub(crate) fn say_evicted(conn: &mut Connection) {
    let evicted = Response::Error {
        code: ErrorCode::Evicted,
        message: "closed while idle to make room for another connection; reconnect when needed"
            .into(),
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
}
