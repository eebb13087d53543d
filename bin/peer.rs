//! Reaching other peers from the command line: the `--key-file` key, the `--db` store's
//! identity and the name this side gives, set once for every connection.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use net::auth::Key;
use net::tls::Identity;
use net::transfer::Dialer;

/// The global flags every connection follows: `--key-file`, `--db`, `--plaintext-on-loopback`.
static SETTINGS: OnceLock<(Option<Key>, PathBuf, bool)> = OnceLock::new();

/// Loads the `--key-file` key, if any, and notes the rest of the settings.
///
/// # Errors
/// When the key file cannot be read or is too short.
pub fn load(key_file: Option<&Path>, db: &Path, plaintext: bool) -> anyhow::Result<()> {
    let key = key_file.map(Key::from_file).transpose()?;
    let _ = SETTINGS.set((key, db.to_owned(), plaintext));
    Ok(())
}

/// The loaded key, if one was given.
pub fn key() -> Option<&'static Key> {
    SETTINGS.get().and_then(|settings| settings.0.as_ref())
}

/// Whether `--plaintext-on-loopback` was given (benchmarks only).
pub fn plaintext() -> bool {
    SETTINGS.get().is_some_and(|settings| settings.2)
}

/// How long the client waits for a connect or for any answer before giving up on the peer.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Connections to peers, showing the `--db` store's identity (a one-time one without a
/// store), giving up on one after `timeout` without an answer.
///
/// # Errors
/// When the store's identity cannot be read or made.
pub fn dialer(timeout: Duration) -> anyhow::Result<Dialer> {
    let db = SETTINGS.get().map(|settings| settings.1.as_path());
    let identity = Identity::of_store(db.unwrap_or(Path::new("")))?;
    let name = format!(
        "p2p-store {} (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    let dialer = Dialer::new(name).timeout(timeout).key(key().cloned());
    let dialer = dialer.identity(Arc::new(identity));
    Ok(if plaintext() {
        dialer.plaintext_on_loopback()
    } else {
        dialer
    })
}
