//! Who the server lets in, as flags.

use std::path::PathBuf;

use crate::auth::Key;
use crate::server::Access;
use crate::tls::{PeerId, TrustFileError, read_trust_file};

#[derive(Debug, Clone, clap::Args)]
pub struct AccessFlags {
    /// Serve lists and gets only; refuse pushes.
    #[arg(long)]
    read_only: bool,

    /// Let in only peers whose address is in this network, e.g. 192.168.1.0/24 (repeatable;
    /// everyone when not given).
    #[arg(long = "allow", value_name = "CIDR")]
    allow: Vec<ipnet::IpNet>,

    /// Let in only the peer with this ID (`p2p-store id` prints it), refused in the TLS
    /// handshake otherwise (repeatable; with --trust-file, both lists count).
    #[arg(long = "trust", value_name = "ID")]
    trust: Vec<PeerId>,

    /// A file of trusted IDs, one a line (`#` starts a comment), as for --trust.
    #[arg(long, value_name = "FILE")]
    trust_file: Option<PathBuf>,
}

impl AccessFlags {
    /// The access rules, with the trust file read, and peers made to prove `key` if given.
    ///
    /// # Errors
    /// When the trust file cannot be read or a line of it is not an ID.
    pub fn into_access(self, key: Option<Key>) -> Result<Access, TrustFileError> {
        let mut trusted = self.trust;
        if let Some(file) = &self.trust_file {
            trusted.extend(read_trust_file(file)?);
        }
        Ok(Access::default()
            .with_trusted(trusted)
            .with_key(key)
            .with_read_only(self.read_only)
            .with_allow(self.allow))
    }
}
