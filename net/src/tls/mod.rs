//! The transport of protocol version 2: TLS 1.3 through rustls with the ring provider (AES-GCM
//! on AES-NI here), both sides showing a self-signed certificate, and each side judging the
//! other by the ID of its public key ([`PeerId`]) rather than by a certificate authority.
//!
//! Only TLS 1.3 is offered, with forward secrecy from its ephemeral key exchange; sessions are
//! never resumed, so every connection shows and checks both certificates. The server requires
//! a client certificate, so every peer it serves has an ID. PROTOCOL.md §5 says it all for a
//! writer of another client.

mod identity;
mod pair;
mod peer_id;
mod trust_file;
mod verify;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::crypto::ring as provider;
use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, ServerConfig};

pub use identity::{IDENTITY_FILE, Identity, IdentityError};
pub use pair::in_memory_pair;
pub use peer_id::{ID_BYTES, PeerId, PeerIdError};
pub use trust_file::{TrustFileError, read_trust_file};
pub(crate) use verify::{PeerVerifier, Trust};

/// The ALPN protocol both sides name, so a TLS peer of another protocol is told apart.
pub const ALPN: &[u8] = b"p2ps/2";

/// The name a client asks for (no SNI is sent; certificates are judged by ID only).
pub(crate) const SERVER_NAME: &str = "p2p-store";

/// The ring provider, its cipher suites in the order this CPU runs them fastest: AES-128-GCM
/// before AES-256-GCM, ChaCha20-Poly1305 last.
fn crypto() -> Arc<CryptoProvider> {
    let mut crypto = provider::default_provider();
    crypto.cipher_suites = vec![
        provider::cipher_suite::TLS13_AES_128_GCM_SHA256,
        provider::cipher_suite::TLS13_AES_256_GCM_SHA384,
        provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(crypto)
}

/// How a server shows itself and judges its clients.
///
/// # Errors
/// When rustls refuses the key (it never does for one [`Identity`] made).
pub(crate) fn server_config(
    identity: &Identity,
    trust: Trust,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let crypto = crypto();
    let verifier = Arc::new(PeerVerifier::new(trust, &crypto));
    let mut config = ServerConfig::builder_with_provider(crypto)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![identity.cert()], identity.private_key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok(Arc::new(config))
}

/// How a client shows itself and judges one server; the verifier tells whom it met.
///
/// # Errors
/// As [`server_config`].
pub(crate) fn client_config(
    identity: &Identity,
    trust: Trust,
) -> Result<(Arc<ClientConfig>, Arc<PeerVerifier>), rustls::Error> {
    let crypto = crypto();
    let verifier = Arc::new(PeerVerifier::new(trust, &crypto));
    let mut config = ClientConfig::builder_with_provider(crypto)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&verifier) as _)
        .with_client_auth_cert(vec![identity.cert()], identity.private_key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_sni = false;
    Ok((Arc::new(config), verifier))
}

/// A blocking server end of TLS, as [`accept`] makes it.
pub type TlsServerStream = rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>;

/// The server's end of the TLS handshake on a blocking socket, admitting any client: for
/// programs and tests that play a server by hand (the [`Server`](crate::Server) drives TLS
/// from its event loop instead). Returns the stream and the client's ID.
///
/// # Errors
/// When the handshake fails.
pub fn accept(
    mut socket: std::net::TcpStream,
    identity: &Identity,
) -> std::io::Result<(TlsServerStream, PeerId)> {
    let config = server_config(identity, Trust::Anyone).map_err(std::io::Error::other)?;
    let mut conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut socket)?;
    }
    let id = peer_id_of(conn.peer_certificates())
        .ok_or_else(|| std::io::Error::other("the client showed no certificate"))?;
    Ok((rustls::StreamOwned::new(conn, socket), id))
}

/// Whether the first bytes a peer sent begin a TLS record (a handshake or an alert), as no
/// frame of version 1 can: its first four bytes are a length, and a length whose second and
/// third bytes are `03` and non-zero is past any header limit. `None` until there are enough
/// bytes to tell.
pub fn starts_tls(first: &[u8]) -> Option<bool> {
    match first {
        [] => None,
        [0x15 | 0x16] => None,
        [0x15 | 0x16, 0x03] => None,
        [0x15 | 0x16, 0x03, minor, ..] => Some(*minor != 0),
        _ => Some(false),
    }
}

/// The ID of the certificate a peer showed, if it showed one that parses.
pub(crate) fn peer_id_of(
    certs: Option<&[rustls::pki_types::CertificateDer<'_>]>,
) -> Option<PeerId> {
    let cert = certs?.first()?;
    let parsed = rustls::server::ParsedCertificate::try_from(cert).ok()?;
    Some(PeerId::of_public_key(
        parsed.subject_public_key_info().as_ref(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_records_are_told_from_version_1_frames() {
        // A ClientHello record, a ServerHello record, an alert.
        assert_eq!(starts_tls(&[0x16, 0x03, 0x01, 0x00]), Some(true));
        assert_eq!(starts_tls(&[0x16, 0x03, 0x03]), Some(true));
        assert_eq!(starts_tls(&[0x15, 0x03, 0x03]), Some(true));
        // Version-1 frames: a Hello (header of 20 bytes), an Error of 22 bytes.
        assert_eq!(starts_tls(&[0x14, 0x00, 0x00, 0x00]), Some(false));
        assert_eq!(starts_tls(&[0x16, 0x00, 0x00, 0x00]), Some(false));
        assert_eq!(starts_tls(&[0x16, 0x03, 0x00, 0x00]), Some(false));
        assert_eq!(starts_tls(&[0x16]), None);
        assert_eq!(starts_tls(&[]), None);
    }
}
