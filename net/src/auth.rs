//! Mutual proof of a pre-shared key, in the handshake, before any other request.
//!
//! Each side sends a fresh random nonce and proves it knows the key by a blake3 keyed hash
//! over both nonces and its role, so a proof is good for one connection and one direction
//! only: recording one side's proof and replaying it, or reflecting it back, proves nothing.
//! Proofs are compared in constant time (`blake3::Hash`'s equality). The key never travels.
//!
//! What the key protects: who may read and write the store. What it does not: the traffic
//! itself, which is not encrypted; anyone on the path can read the parts going by.

use std::path::Path;

use crate::message::WireHash;

/// Key material shorter than this is refused: it could be guessed.
pub const MIN_KEY_FILE_BYTES: usize = 16;

/// A pre-shared key, derived from a key file's whole contents.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the key file {path}: {cause}")]
    Unreadable { path: String, cause: std::io::Error },
    #[error(
        "the key file {path} holds {len} bytes; a key needs at least {MIN_KEY_FILE_BYTES} (e.g. `head -c 32 /dev/urandom > {path}`)"
    )]
    TooShort { path: String, len: usize },
}

impl Key {
    /// The key of a file's contents, whatever their form (raw bytes or text).
    ///
    /// # Errors
    /// When the file cannot be read or is too short to be a secret.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let display = path.display().to_string();
        let material = std::fs::read(path).map_err(|cause| KeyError::Unreadable {
            path: display.clone(),
            cause,
        })?;
        if material.len() < MIN_KEY_FILE_BYTES {
            return Err(KeyError::TooShort {
                path: display,
                len: material.len(),
            });
        }
        Ok(Self(blake3::derive_key(
            "p2p-store 2026-11 pre-shared key",
            &material,
        )))
    }

    /// The client's proof: over the server's nonce, then its own.
    pub fn client_proof(&self, server_nonce: &WireHash, client_nonce: &WireHash) -> WireHash {
        self.proof(b"client", server_nonce, client_nonce)
    }

    /// The server's proof: over the client's nonce, then its own.
    pub fn server_proof(&self, client_nonce: &WireHash, server_nonce: &WireHash) -> WireHash {
        self.proof(b"server", client_nonce, server_nonce)
    }

    fn proof(&self, role: &[u8], first: &WireHash, second: &WireHash) -> WireHash {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(role);
        hasher.update(first);
        hasher.update(second);
        *hasher.finalize().as_bytes()
    }
}

/// Whether a received proof is the expected one, in constant time.
pub fn proofs_match(expected: &WireHash, received: &WireHash) -> bool {
    blake3::Hash::from_bytes(*expected) == blake3::Hash::from_bytes(*received)
}

/// A fresh random nonce from the operating system.
///
/// # Errors
/// When the system's random source fails.
pub fn nonce() -> std::io::Result<WireHash> {
    let mut nonce = [0; 32];
    getrandom::fill(&mut nonce).map_err(|err| std::io::Error::other(err.to_string()))?;
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Key {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, text).unwrap();
        Key::from_file(&path).unwrap()
    }

    #[test]
    fn proofs_bind_the_key_the_role_and_both_nonces() {
        let (a, b) = (
            key("a shared secret of some length"),
            key("another secret entirely"),
        );
        let (n1, n2) = ([1; 32], [2; 32]);
        let client = a.client_proof(&n1, &n2);
        assert!(proofs_match(&client, &a.client_proof(&n1, &n2)));
        assert!(!proofs_match(&client, &b.client_proof(&n1, &n2)));
        assert!(!proofs_match(&client, &a.client_proof(&n2, &n1)));
        assert!(!proofs_match(&client, &a.server_proof(&n1, &n2)));
    }

    #[test]
    fn short_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "short").unwrap();
        assert!(matches!(
            Key::from_file(&path),
            Err(KeyError::TooShort { len: 5, .. })
        ));
        assert!(matches!(
            Key::from_file(&dir.path().join("missing")),
            Err(KeyError::Unreadable { .. })
        ));
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }
}
