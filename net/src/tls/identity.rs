//! A store's own key pair: made on first use, kept as `<store>/identity.key` (PKCS#8 DER,
//! mode 0600), never sent. The certificate that carries its public key is self-signed and made
//! afresh at every start: only the key is the identity, so nothing else needs keeping.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ED25519, PublicKeyData};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::PeerId;

/// The file, in a store's directory, that holds its private key.
pub const IDENTITY_FILE: &str = "identity.key";

/// Why an identity cannot be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("cannot {doing} {path}: {cause}")]
    Io {
        doing: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "{path} can be read by others (mode {mode:o}); a private key must be 0600 (`chmod 600 {path}`)"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{path} does not hold a private key this build can use: {cause}")]
    BadKey { path: PathBuf, cause: rcgen::Error },
    #[error("cannot make a key pair or its certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A key pair, its self-signed certificate and its ID.
pub struct Identity {
    key: Vec<u8>,
    cert: CertificateDer<'static>,
    id: PeerId,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.id)
    }
}

impl Identity {
    /// A new Ed25519 key pair, kept nowhere: for a peer with no store to keep it in.
    ///
    /// # Errors
    /// When the system's random source fails.
    pub fn generate() -> Result<Self, IdentityError> {
        let pair = KeyPair::generate_for(&PKCS_ED25519)?;
        Self::of(pair.serialize_der(), &pair)
    }

    /// The identity kept in `dir` (a store's directory), made and kept durably on first use.
    /// Two processes making it at once agree on one: the second keeps the first's.
    ///
    /// # Errors
    /// When the file cannot be read or written, is readable by others, or holds no key.
    pub fn load_or_create(dir: &Path) -> Result<Self, IdentityError> {
        if let Some(identity) = Self::load(dir)? {
            return Ok(identity);
        }
        let identity = Self::generate()?;
        let path = dir.join(IDENTITY_FILE);
        let io = |doing, cause| IdentityError::Io {
            doing,
            path: path.clone(),
            cause,
        };
        // tempfile makes the file 0600 before a byte is written.
        let mut temp = tempfile::Builder::new()
            .prefix(".p2p-store-identity-")
            .tempfile_in(dir)
            .map_err(|cause| io("write", cause))?;
        temp.write_all(&identity.key)
            .and_then(|()| temp.as_file().sync_all())
            .map_err(|cause| io("write", cause))?;
        match temp.persist_noclobber(&path) {
            Ok(_) => {}
            Err(err) if err.error.kind() == ErrorKind::AlreadyExists => {
                return Self::load(dir)?.ok_or_else(|| io("read", err.error));
            }
            Err(err) => return Err(io("write", err.error)),
        }
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|cause| io("sync the directory of", cause))?;
        tracing::info!(path = %path.display(), id = %identity.id, "made this store's identity");
        Ok(identity)
    }

    /// The identity of the store at `dir`, made on first use, or a one-time one when no store
    /// is there: an identity file is never written into a directory that is not a store.
    ///
    /// # Errors
    /// As [`Identity::load_or_create`].
    pub fn of_store(dir: &Path) -> Result<Self, IdentityError> {
        if storage::is_store(dir) {
            Self::load_or_create(dir)
        } else {
            tracing::info!(db = %dir.display(), "no store here: showing a one-time identity");
            Self::generate()
        }
    }

    /// The identity kept in `dir`, `None` when there is none yet.
    ///
    /// # Errors
    /// As [`Identity::load_or_create`].
    pub fn load(dir: &Path) -> Result<Option<Self>, IdentityError> {
        let path = dir.join(IDENTITY_FILE);
        let io = |doing, cause| IdentityError::Io {
            doing,
            path: path.clone(),
            cause,
        };
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io("open", err)),
        };
        let mode = file
            .metadata()
            .map_err(|cause| io("read", cause))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(IdentityError::Exposed {
                path,
                mode: mode & 0o777,
            });
        }
        let key = std::fs::read(&path).map_err(|cause| io("read", cause))?;
        let pair = KeyPair::try_from(key.as_slice()).map_err(|cause| IdentityError::BadKey {
            path: path.clone(),
            cause,
        })?;
        Self::of(key, &pair).map(Some)
    }

    fn of(key: Vec<u8>, pair: &KeyPair) -> Result<Self, IdentityError> {
        let id = PeerId::of_public_key(&pair.subject_public_key_info());
        let mut params = CertificateParams::new(vec!["p2p-store".to_owned()])?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, format!("p2p-store {id}"));
        params.distinguished_name = name;
        let cert = params.self_signed(pair)?.der().clone();
        Ok(Self { key, cert, id })
    }

    /// This peer's ID, as others see it.
    pub fn id(&self) -> PeerId {
        self.id
    }

    pub(crate) fn cert(&self) -> CertificateDer<'static> {
        self.cert.clone()
    }

    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_made_once_kept_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Identity::load(dir.path()).unwrap().is_none());
        let made = Identity::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(IDENTITY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            Identity::load_or_create(dir.path()).unwrap().id(),
            made.id()
        );
        assert_ne!(Identity::generate().unwrap().id(), made.id());

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Identity::load(dir.path()),
            Err(IdentityError::Exposed { mode: 0o644, .. })
        ));
    }

    #[test]
    fn the_id_is_that_of_the_certificate_key() {
        let identity = Identity::generate().unwrap();
        let cert = identity.cert();
        let parsed = rustls::server::ParsedCertificate::try_from(&cert).unwrap();
        let spki = parsed.subject_public_key_info();
        assert_eq!(PeerId::of_public_key(spki.as_ref()), identity.id());
    }
}
