//! Reaching other peers from the command line: the `--key-file` key, this store's identity and
//! the name this side gives, set once for every connection.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use net::auth::Key;
use net::tls::Identity;
use net::transfer::Dialer;
use storage::BackendKind;

use crate::open;

/// What `main` learnt from the global flags, once.
struct Settings {
    key: Option<Key>,
    db: PathBuf,
    plaintext: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Loads the key named by `--key-file`, if any, and notes the store and transport for every
/// connection this process makes or takes.
///
/// # Errors
/// When the key file cannot be read or is too short.
pub fn load(key_file: Option<&Path>, db: &Path, plaintext: bool) -> anyhow::Result<()> {
    let key = key_file.map(Key::from_file).transpose()?;
    let _ = SETTINGS.set(Settings {
        key,
        db: db.to_owned(),
        plaintext,
    });
    Ok(())
}

fn settings() -> &'static Settings {
    SETTINGS.get().expect("peer::load runs first")
}

/// The loaded key, if one was given.
pub fn key() -> Option<&'static Key> {
    settings().key.as_ref()
}

/// Whether `--plaintext-on-loopback` was given (benchmarks only).
pub fn plaintext() -> bool {
    settings().plaintext
}

/// The identity of the store at `db`, made on first use; with `create`, the store is made too
/// when missing, else a peer without a store shows a one-time identity.
///
/// # Errors
/// When the store cannot be made or the identity file cannot be read or written.
pub fn identity(
    db: &Path,
    backend: Option<BackendKind>,
    create: bool,
) -> anyhow::Result<Arc<Identity>> {
    if !storage::is_store(db) {
        if !create {
            tracing::info!(db = %db.display(), "no store here: showing a one-time identity");
            return Ok(Arc::new(Identity::generate()?));
        }
        drop(open::store(db, backend)?);
    }
    let identity = Identity::load_or_create(db)
        .with_context(|| format!("cannot use the identity of the store at {}", db.display()))?;
    Ok(Arc::new(identity))
}

/// How long the client waits for a connect or for any answer before giving up on the peer.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Connections to peers, showing the `--db` store's identity, giving up on one after `timeout`
/// without an answer.
///
/// # Errors
/// When the store's identity cannot be read or made.
pub fn dialer(timeout: Duration) -> anyhow::Result<Dialer> {
    let name = format!(
        "p2p-store {} (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    let dialer = Dialer::new(name)
        .timeout(timeout)
        .key(key().cloned())
        .identity(identity(&settings().db, None, false)?);
    Ok(if plaintext() {
        dialer.plaintext_on_loopback()
    } else {
        dialer
    })
}
