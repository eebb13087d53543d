//! Announcing a serving peer on the local network.

use std::net::SocketAddr;

use mdns_sd::{ServiceDaemon, ServiceInfo};

use super::{LanError, SERVICE_TYPE};
use crate::message::PROTOCOL_VERSION;
use crate::tls::PeerId;

/// A peer announced on the network until this is dropped, when it says goodbye.
pub struct Announcement {
    daemon: ServiceDaemon,
    fullname: String,
}

/// Announces the peer `id` serving on `listen`: on every interface's addresses when `listen`
/// is unspecified (`0.0.0.0`), else on that address. Runs on a thread of `mdns-sd`'s own.
///
/// # Errors
/// When `listen` is a loopback address (no other host could use it), or the mDNS socket
/// cannot be opened.
pub fn announce(id: &PeerId, listen: SocketAddr) -> Result<Announcement, LanError> {
    // An IPv4-mapped address (`[::ffff:127.0.0.1]`) is the IPv4 one: loopback too.
    let listen_ip = listen.ip().to_canonical();
    if listen_ip.is_loopback() {
        return Err(LanError::Loopback(listen));
    }
    let daemon = ServiceDaemon::new()?;
    let name = id.to_string();
    let host = format!("{}.local.", name.to_ascii_lowercase());
    let version = PROTOCOL_VERSION.to_string();
    let properties = [("id", name.as_str()), ("v", version.as_str())];
    let ip = if listen_ip.is_unspecified() {
        String::new()
    } else {
        listen_ip.to_string()
    };
    let mut info = ServiceInfo::new(
        SERVICE_TYPE,
        &name,
        &host,
        ip,
        listen.port(),
        &properties[..],
    )?;
    if listen_ip.is_unspecified() {
        info = info.enable_addr_auto();
    }
    let fullname = info.get_fullname().to_owned();
    daemon.register(info)?;
    tracing::info!(%id, %listen, "announced on the local network");
    Ok(Announcement { daemon, fullname })
}

impl Drop for Announcement {
    fn drop(&mut self) {
        // Goodbye packets let other peers forget this one at once rather than at expiry.
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = done.recv_timeout(std::time::Duration::from_secs(1));
        }
        let _ = self.daemon.shutdown();
    }
}
