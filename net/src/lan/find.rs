//! Browsing the local network for announced peers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mdns_sd::{ResolvedService, ServiceDaemon, ServiceEvent};

use super::{LanError, SERVICE_TYPE};
use crate::tls::PeerId;

/// A peer found on the network: its ID, as announced (proved only once dialled), and the
/// addresses it serves on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FoundPeer {
    pub id: PeerId,
    pub addrs: Vec<SocketAddr>,
}

impl FoundPeer {
    /// The address to dial, pinned to the announced ID (`HOST:PORT#ID`): IPv4 first.
    pub fn dial_address(&self) -> Option<String> {
        let addr = (self.addrs.iter().find(|addr| addr.is_ipv4())).or(self.addrs.first())?;
        Some(format!("{addr}#{}", self.id))
    }
}

/// Every peer that answers within `wait`, sorted by ID.
///
/// # Errors
/// When the mDNS socket cannot be opened.
pub fn find_peers(wait: Duration) -> Result<Vec<FoundPeer>, LanError> {
    browse(wait, |_| false)
}

/// The peer `id`, if it answers within `wait`; returns as soon as it does.
///
/// # Errors
/// When the mDNS socket cannot be opened.
pub fn find_peer(id: &PeerId, wait: Duration) -> Result<Option<FoundPeer>, LanError> {
    let found = browse(wait, |found| found.contains_key(id))?;
    Ok(found.into_iter().find(|peer| peer.id == *id))
}

/// Browses until `wait` is over or `enough` says so, gathering each resolved peer.
fn browse(
    wait: Duration,
    enough: impl Fn(&BTreeMap<PeerId, FoundPeer>) -> bool,
) -> Result<Vec<FoundPeer>, LanError> {
    let daemon = ServiceDaemon::new()?;
    let events = daemon.browse(SERVICE_TYPE)?;
    let deadline = Instant::now() + wait;
    let mut found = BTreeMap::new();
    while !enough(&found) {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(service)) => {
                if let Some(peer) = peer_of(&service) {
                    found.insert(peer.id, peer);
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = daemon.stop_browse(SERVICE_TYPE);
    let _ = daemon.shutdown();
    Ok(found.into_values().collect())
}

/// The peer a resolved announcement describes; `None` when its ID does not parse.
fn peer_of(service: &ResolvedService) -> Option<FoundPeer> {
    let id = service.get_property_val_str("id")?.parse().ok()?;
    let mut addrs: Vec<SocketAddr> = (service.addresses.iter())
        .map(|ip| SocketAddr::new(ip.to_ip_addr(), service.port))
        .collect();
    addrs.sort();
    Some(FoundPeer { id, addrs })
}
