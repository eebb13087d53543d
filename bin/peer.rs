//! Reaching another peer from the command line.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use net::Client;
use net::auth::Key;

/// The `--key-file` key, loaded once at start.
static KEY: OnceLock<Option<Key>> = OnceLock::new();

/// Loads the key named by `--key-file`, if any, for every connection this process makes or
/// takes.
///
/// # Errors
/// When the file cannot be read or is too short.
pub fn load_key(path: Option<&Path>) -> anyhow::Result<()> {
    let key = path.map(Key::from_file).transpose()?;
    let _ = KEY.set(key);
    Ok(())
}

/// The loaded key, if one was given.
pub fn key() -> Option<&'static Key> {
    KEY.get().and_then(Option::as_ref)
}

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
    Client::connect_with_key(addr, &name, timeout, key())
        .with_context(|| format!("cannot talk to the peer at {addr}"))
}
