//! The handshake inside TLS: `Hello`, and with a key the `Challenge`/`Prove`/`Proven`
//! exchange, bound to both sides' IDs, up to the `Welcome` that lets requests in. Who the peer
//! is was settled by the TLS handshake before the `Hello` could be read.

use tracing::info;

use super::{Session, Shared};
use crate::auth;
use crate::message::{ErrorCode, MAGIC, Request, Response, SUPPORTED_VERSIONS, WireHash};

impl Session {
    pub(super) fn greet(&mut self, request: Request, shared: &Shared) {
        let Request::Hello {
            magic,
            version,
            peer,
        } = request
        else {
            return self.fail(
                ErrorCode::HandshakeRequired,
                "the first frame must be Hello".into(),
            );
        };
        if magic != MAGIC {
            return self.fail(ErrorCode::BadMagic, format!("bad magic {magic:02x?}"));
        }
        if !SUPPORTED_VERSIONS.contains(&version) {
            return self.fail(
                ErrorCode::UnsupportedVersion,
                format!(
                    "version {version} is not supported; supported versions: {SUPPORTED_VERSIONS:?}"
                ),
            );
        }
        match self.conn.peer_id() {
            Some(id) => {
                self.peer_id = Some(id);
                self.span.record("peer_id", tracing::field::display(id));
                info!(client = %peer.escape_debug(), peer_id = %id, version, "handshake");
            }
            None => info!(client = %peer.escape_debug(), version, "handshake without TLS"),
        }
        if shared.key.is_none() {
            return self.welcome(version, shared);
        }
        match auth::nonce() {
            Ok(nonce) => {
                self.challenge = Some((nonce, version));
                self.respond(&Response::Challenge { nonce }, Vec::new());
            }
            Err(err) => self.fail(ErrorCode::StorageFailed, format!("no random nonce: {err}")),
        }
    }

    /// Checks the client's proof of the key; on success proves the key back and welcomes.
    pub(super) fn check_proof(
        &mut self,
        request: Request,
        (nonce, version): (WireHash, u16),
        shared: &Shared,
    ) {
        let Some(key) = &shared.key else {
            unreachable!("a challenge is only sent with a key");
        };
        let Request::Prove {
            nonce: client_nonce,
            proof,
        } = request
        else {
            return self.fail(
                ErrorCode::AuthFailed,
                "this server needs proof of its key before anything else (--key-file)".into(),
            );
        };
        let Some(client) = self.conn.peer_id() else {
            return self.fail(ErrorCode::AuthFailed, "a key needs TLS".into());
        };
        let ids = auth::Ids {
            server: shared.own_id,
            client,
        };
        if !auth::proofs_match(&key.client_proof(&nonce, &client_nonce, &ids), &proof) {
            return self.fail(
                ErrorCode::AuthFailed,
                "wrong key: the proof does not match this server's key".into(),
            );
        }
        let proof = key.server_proof(&client_nonce, &nonce, &ids);
        self.respond(&Response::Proven { proof }, Vec::new());
        self.welcome(version, shared);
    }

    pub(super) fn welcome(&mut self, version: u16, shared: &Shared) {
        self.greeted = true;
        self.respond(
            &Response::Welcome {
                version,
                peer: shared.peer_name.clone(),
                max_part_size: shared.limits.max_part_size,
                max_in_flight: shared.limits.max_in_flight,
            },
            Vec::new(),
        );
    }
}
