//! What a server is asked to be: where it listens, its limits, and who may connect.

use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use storage::Overwrite;

use crate::Limits;
use crate::auth::Key;

/// What `serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub limits: Limits,
    /// The name this peer gives in its handshake.
    pub peer_name: String,
    /// Also write each stored part as `<dir>/<name>_recebida`.
    pub export_dir: Option<PathBuf>,
    pub export_overwrite: Overwrite,
    pub access: Access,
}

/// Who may connect, and what they may do.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Peers must prove knowledge of this key in the handshake.
    pub key: Option<Key>,
    /// Serve lists and gets; refuse pushes.
    pub read_only: bool,
    /// When not empty, only addresses in these networks may connect.
    pub allow: Vec<IpNet>,
}
