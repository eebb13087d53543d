//! Mutual proof of a group key (`--key-file`), inside TLS, before any other request.
//!
//! Each side sends a fresh random nonce and proves it knows the key by a blake3 keyed hash
//! over its role, both nonces and both sides' IDs, so a proof is good for one connection and
//! one direction only: replayed, reflected, or relayed by a man in the middle (whose TLS
//! sessions show his own ID to each side) it proves nothing. Proofs are compared in constant
//! time (`blake3::Hash`'s equality). The key never travels, and the proofs travel encrypted,
//! so a recorded connection gives nothing to test guesses of the key against.

use std::path::Path;

use crate::message::WireHash;
use crate::tls::PeerId;

/// The two ends of the TLS connection a proof is made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub server: PeerId,
    pub client: PeerId,
}

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

    /// The client's proof: over the server's nonce, then its own, then both IDs.
    pub fn client_proof(
        &self,
        server_nonce: &WireHash,
        client_nonce: &WireHash,
        ids: &Ids,
    ) -> WireHash {
        self.proof(b"client", server_nonce, client_nonce, ids)
    }

    /// The server's proof: over the client's nonce, then its own, then both IDs.
    pub fn server_proof(
        &self,
        client_nonce: &WireHash,
        server_nonce: &WireHash,
        ids: &Ids,
    ) -> WireHash {
        self.proof(b"server", client_nonce, server_nonce, ids)
    }

    fn proof(&self, role: &[u8], first: &WireHash, second: &WireHash, ids: &Ids) -> WireHash {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(role);
        hasher.update(first);
        hasher.update(second);
        hasher.update(ids.server.as_bytes());
        hasher.update(ids.client.as_bytes());
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

    fn ids(server: &[u8], client: &[u8]) -> Ids {
        Ids {
            server: PeerId::of_public_key(server),
            client: PeerId::of_public_key(client),
        }
    }

    #[test]
    fn proofs_bind_the_key_the_role_both_nonces_and_both_ids() {
        let (a, b) = (
            key("a shared secret of some length"),
            key("another secret entirely"),
        );
        let (n1, n2) = ([1; 32], [2; 32]);
        let real = ids(b"server", b"client");
        let client = a.client_proof(&n1, &n2, &real);
        assert!(proofs_match(&client, &a.client_proof(&n1, &n2, &real)));
        assert!(!proofs_match(&client, &b.client_proof(&n1, &n2, &real)));
        assert!(!proofs_match(&client, &a.client_proof(&n2, &n1, &real)));
        assert!(!proofs_match(&client, &a.server_proof(&n1, &n2, &real)));
        let relayed = ids(b"server", b"man in the middle");
        assert!(!proofs_match(&client, &a.client_proof(&n1, &n2, &relayed)));
    }

    /// The worked example of PROTOCOL.md §12.5.
    #[test]
    fn the_worked_example_is_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, (0..32u8).collect::<Vec<_>>()).unwrap();
        let key = Key::from_file(&path).unwrap();
        let spki = |first: u8| {
            let mut spki = b"\x30\x2a\x30\x05\x06\x03\x2b\x65\x70\x03\x21\x00".to_vec();
            spki.extend(first..first + 32);
            spki
        };
        let ids = ids(&spki(0), &spki(32));
        let hex = |hash: WireHash| blake3::Hash::from_bytes(hash).to_hex().to_string();
        assert_eq!(
            hex(key.client_proof(&[0x11; 32], &[0x22; 32], &ids)),
            "5dba4676188759d5948ede1ded4ef94121a8a11b1fdba6fac7c4b10f9d922598"
        );
        assert_eq!(
            hex(key.server_proof(&[0x22; 32], &[0x11; 32], &ids)),
            "305a5d119fc45c1dd470b53fa8a8efc296874818bdaae8115d797a665f96d263"
        );
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
