//! Reaching another peer from the command line.

use std::time::Duration;

use anyhow::Context;
use net::Client;

/// How long the client waits for a connect or for any answer before giving up on the peer.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Connects to the peer at `addr` and does the handshake.
pub fn connect(addr: &str) -> anyhow::Result<Client> {
    connect_with(addr, TIMEOUT)
}

/// [`connect`], giving up on the peer after `timeout` without an answer.
pub fn connect_with(addr: &str, timeout: Duration) -> anyhow::Result<Client> {
    let name = format!(
        "p2p-store {} (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    Client::connect(addr, &name, timeout)
        .with_context(|| format!("cannot talk to the peer at {addr}"))
}
