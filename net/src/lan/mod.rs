//! Finding peers on the local network with multicast DNS (DNS-SD, RFC 6763), through the
//! `mdns-sd` crate: a serving peer announces `_p2p-store._tcp` under its peer ID, with the
//! ID and protocol version in its TXT record, and a client finds peers by browsing for it.
//!
//! What mDNS says is not authenticated: anyone on the network can announce any ID. So a peer
//! found by ID is always dialled pinned to that ID (`ADDR#ID`), and the TLS handshake proves
//! it; an impostor's announcement can only make the connection fail.

mod announce;
mod find;

pub use announce::{Announcement, announce};
pub use find::{FoundPeer, find_peer, find_peers};

/// The DNS-SD service type peers announce.
pub const SERVICE_TYPE: &str = "_p2p-store._tcp.local.";

/// Why the local network could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LanError {
    #[error("mDNS: {0}")]
    Mdns(#[from] mdns_sd::Error),
    #[error(
        "{0} is a loopback address, which no other host can reach: announce a --listen of \
         0.0.0.0 or a LAN address"
    )]
    Loopback(std::net::SocketAddr),
}
