//! Judging the other side's certificate by the ID of its key, for both ends: no certificate
//! authority, no names, no dates. What makes a certificate good is the key it holds, proven in
//! the handshake's CertificateVerify by the usual rustls signature check.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::PeerId;

/// Which IDs are let through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Trust {
    /// Any key: the ID is shown, as SSH shows a new host key.
    #[default]
    Anyone,
    /// Only these.
    Only(Arc<BTreeSet<PeerId>>),
}

impl Trust {
    fn admits(&self, id: &PeerId) -> bool {
        match self {
            Self::Anyone => true,
            Self::Only(ids) => ids.contains(id),
        }
    }
}

/// Checks the other side's ID against a [`Trust`], and remembers the last one seen so a
/// refusal can say whom it met.
#[derive(Debug)]
pub(crate) struct PeerVerifier {
    trust: Trust,
    algorithms: WebPkiSupportedAlgorithms,
    seen: Mutex<Option<PeerId>>,
}

impl PeerVerifier {
    pub(crate) fn new(trust: Trust, crypto: &CryptoProvider) -> Self {
        Self {
            trust,
            algorithms: crypto.signature_verification_algorithms,
            seen: Mutex::new(None),
        }
    }

    /// The ID of the last certificate judged.
    pub(crate) fn seen(&self) -> Option<PeerId> {
        *self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn judge(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let id = super::peer_id_of(Some(std::slice::from_ref(end_entity))).ok_or(
            rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
        )?;
        *self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(id);
        if self.trust.admits(&id) {
            Ok(())
        } else {
            tracing::warn!(peer_id = %id, "refusing a peer whose ID is not trusted");
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.judge(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.judge(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
