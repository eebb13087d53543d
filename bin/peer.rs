//! Reaching other peers from the command line: the `--key-file` key and the name this side
//! gives, set once for every connection.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use net::auth::Key;
use net::transfer::Dialer;

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

/// Connections to peers, giving up on one after `timeout` without an answer.
pub fn dialer(timeout: Duration) -> Dialer {
    let name = format!(
        "p2p-store {} (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    Dialer::new(name).timeout(timeout).key(key().cloned())
}
