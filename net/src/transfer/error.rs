//! `TransferError`: what stops a transfer as a whole. A single part that fails is reported to
//! the observer instead, and the transfer goes on.

use storage::StoreError;

use crate::ClientError;

/// Why a transfer stopped.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The connection to the peer failed.
    #[error(transparent)]
    Peer(#[from] ClientError),

    /// None of the peers given could be reached; each one's reason.
    #[error("no peer could be reached: {}", .0.join("; "))]
    NoPeer(Vec<String>),

    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
