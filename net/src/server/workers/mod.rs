//! The threads that touch the store, so the event loop never waits on a disk, and what
//! passes between them and the loop.
//!
//! The readers (`reader.rs`) answer offers, lists, gets and stats, hosts and then their
//! connections taking turns (`turns.rs`) so that none waits behind another's pipelined
//! requests, however many connections the other holds. A body the loop has not verified on
//! arrival (see [`Body::arrived`]) goes through the verifier (`verifier.rs`), which hashes it
//! while the writer syncs the bodies before it. The writer (`writer.rs`) takes every upload
//! queued when it wakes and commits them all with one `put_batch` (one durable sync), so many
//! small parts cost one flush. Each finished request goes back to the loop as a [`Done`]
//! through the [`Outbox`], which wakes the loop's [`mio::Waker`] only when the loop has taken
//! everything sent before. When the caller has work done before a part is acknowledged (an
//! export), the writer's answers pass through the acknowledging thread (`acker.rs`) first.

mod acker;
mod reader;
mod turns;
mod verifier;
mod writer;

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use mio::Waker;
use storage::{ManifestError, PartHash, PartKind, PartName, StoreError, VerifiedPart};
use tracing::error;

use crate::message::{ErrorCode, RequestId, Response};
use crate::tls::PeerId;

pub(crate) use acker::{Acks, run_acker};
pub(crate) use reader::spawn_readers;
pub(crate) use verifier::run_verifier;
pub(crate) use writer::run_writer;

/// A connection as the workers name it: its slab slot and a serial number, so an answer for a
/// closed connection is never delivered to a new one that reused the slot; and its host, which
/// the readers share their turns between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConnId {
    pub(crate) slot: usize,
    pub(crate) serial: u64,
    pub(crate) host: IpAddr,
}

/// What the loop tells the readers.
#[derive(Debug)]
pub(crate) enum ToReaders {
    /// Answer this.
    Job(ReadJob),
    /// This connection is closed: drop the jobs it still has waiting.
    Forget(ConnId),
}

/// Work for the reader threads.
#[derive(Debug)]
pub(crate) enum ReadJob {
    Offer {
        conn: ConnId,
        id: RequestId,
        name: PartName,
        hash: PartHash,
    },
    List {
        conn: ConnId,
        id: RequestId,
        after: Option<String>,
        limit: u32,
    },
    Get {
        conn: ConnId,
        id: RequestId,
        name: PartName,
    },
    Stat {
        conn: ConnId,
        id: RequestId,
        name: PartName,
    },
}

impl ReadJob {
    /// The connection that asked.
    pub(crate) fn conn(&self) -> ConnId {
        match self {
            Self::Offer { conn, .. }
            | Self::List { conn, .. }
            | Self::Get { conn, .. }
            | Self::Stat { conn, .. } => *conn,
        }
    }
}

/// A received body for the store writer, through the verifier when it is not verified yet.
#[derive(Debug)]
pub(crate) struct Upload {
    pub(crate) conn: ConnId,
    /// Whose part it is, for the `Stored` event and the log.
    pub(crate) peer: Option<PeerId>,
    pub(crate) id: RequestId,
    /// The body's length, released from the budgets once the part is answered.
    pub(crate) size: u64,
    pub(crate) body: Body,
}

/// Where the loop sends uploads: one still to be verified to the verifier, one verified on
/// arrival straight to the writer.
pub(crate) struct UploadQueue {
    pub(crate) to_verifier: Sender<Upload>,
    pub(crate) to_writer: Sender<Upload>,
}

impl UploadQueue {
    /// Hands `upload` over; false when the thread it is for has stopped.
    #[must_use]
    pub(crate) fn send(&self, upload: Upload) -> bool {
        let queue = match upload.body {
            Body::Unverified { .. } => &self.to_verifier,
            Body::Verified(_) => &self.to_writer,
        };
        queue.send(upload).is_ok()
    }
}

/// Bodies up to this size are verified on the loop as they arrive. For a small part, hashing
/// costs less than the writer's share of storing it, and the writer is what bounds how many
/// small parts a second the server takes; a larger body is left to the verifier, so that
/// hashing it never holds up the loop's other connections.
const VERIFIED_ON_ARRIVAL_MAX: usize = 64 * 1024;

/// An uploaded body, verified against its offered hash or still to be.
#[derive(Debug)]
pub(crate) enum Body {
    Verified(Result<VerifiedPart, StoreError>),
    Unverified {
        name: PartName,
        hash: PartHash,
        kind: PartKind,
        bytes: Vec<u8>,
    },
}

impl Body {
    /// A body as it arrives for the offer of `name`, `hash` and `kind`: verified now when it
    /// is small.
    pub(crate) fn arrived(name: PartName, hash: PartHash, kind: PartKind, bytes: Vec<u8>) -> Self {
        if bytes.len() <= VERIFIED_ON_ARRIVAL_MAX {
            Self::Verified(verify(name, hash, kind, bytes))
        } else {
            Self::Unverified {
                name,
                hash,
                kind,
                bytes,
            }
        }
    }

    /// The part, verified here if it was not on arrival.
    ///
    /// # Errors
    /// When the bytes are not the ones offered, or too large for a part.
    pub(crate) fn verified(self) -> Result<VerifiedPart, StoreError> {
        match self {
            Self::Verified(part) => part,
            Self::Unverified {
                name,
                hash,
                kind,
                bytes,
            } => verify(name, hash, kind, bytes),
        }
    }
}

fn verify(
    name: PartName,
    hash: PartHash,
    kind: PartKind,
    bytes: Vec<u8>,
) -> Result<VerifiedPart, StoreError> {
    VerifiedPart::new(name, hash, bytes).map(|part| part.with_kind(kind))
}

/// A finished request: the response to send, any body bytes after it, and the upload bytes it
/// releases from the connection's and the server's budgets.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) conn: ConnId,
    pub(crate) id: RequestId,
    pub(crate) response: Response,
    pub(crate) body: Vec<u8>,
    pub(crate) released: u64,
}

/// Where the workers send what they finish.
#[derive(Clone)]
pub(crate) struct Outbox {
    done: Sender<Done>,
    waker: Arc<Waker>,
    /// Set by the wake that the loop has not answered yet by taking its [`Inbox`]: answers
    /// sent meanwhile need no wake of their own. One wake per answer cost the readers a
    /// system call per offer, and the loop a turn per answer, when small parts stream in.
    wake_pending: Arc<AtomicBool>,
}

/// The loop's end of the [`Outbox`].
pub(crate) struct Inbox {
    done: Receiver<Done>,
    wake_pending: Arc<AtomicBool>,
}

/// A new outbox for the workers and the inbox where the loop, woken by `waker`, takes what
/// they send.
pub(crate) fn mailbox(waker: Arc<Waker>) -> (Outbox, Inbox) {
    let (done, receiver) = mpsc::channel();
    let wake_pending = Arc::new(AtomicBool::new(false));
    let inbox = Inbox {
        done: receiver,
        wake_pending: Arc::clone(&wake_pending),
    };
    let outbox = Outbox {
        done,
        waker,
        wake_pending,
    };
    (outbox, inbox)
}

impl Outbox {
    pub(crate) fn send(&self, done: Done) {
        // The loop only drops its receiver after joining the workers.
        let _ = self.done.send(done);
    }

    /// Wakes the loop to take what was sent, unless a wake is already on its way.
    pub(crate) fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::SeqCst)
            && let Err(err) = self.waker.wake()
        {
            // The next answer tries again.
            self.wake_pending.store(false, Ordering::SeqCst);
            error!(%err, "cannot wake the event loop");
        }
    }
}

impl Inbox {
    /// Everything the workers have sent. The pending wake is cleared first, so an answer sent
    /// after this looked is either among these or followed by a new wake.
    pub(crate) fn take(&self) -> impl Iterator<Item = Done> + '_ {
        self.wake_pending.store(false, Ordering::SeqCst);
        self.done.try_iter()
    }
}

/// A worker's outbox goes when its thread ends, by a panic too: the wake has the loop look at
/// once whether a worker died, instead of at its next sweep.
impl Drop for Outbox {
    fn drop(&mut self) {
        // After a normal stop the loop is gone, and nobody needs the wake.
        let _ = self.waker.wake();
    }
}

/// A finished request that releases no budget and carries no body.
pub(crate) fn done(conn: ConnId, id: RequestId, response: Response) -> Done {
    Done {
        conn,
        id,
        response,
        body: Vec::new(),
        released: 0,
    }
}

/// The `Rejected` answer for a store error, with the code a client can act on.
pub(crate) fn rejection(id: RequestId, err: &StoreError) -> Response {
    let code = match err {
        StoreError::NotFound(_) => ErrorCode::NotFound,
        StoreError::Conflict { .. } => ErrorCode::Conflict,
        StoreError::HashMismatch { .. } => ErrorCode::HashMismatch,
        StoreError::Corrupt { .. } | StoreError::BodyMissing { .. } => ErrorCode::Corrupt,
        StoreError::TooLarge { .. } => ErrorCode::PartTooLarge,
        StoreError::InvalidName { .. } | StoreError::ChunkNameMismatch { .. } => {
            ErrorCode::InvalidName
        }
        StoreError::BadManifest {
            reason: ManifestError::TooManyChunks { .. } | ManifestError::ChunkRepeated { .. },
            ..
        } => ErrorCode::ManifestTooLarge,
        StoreError::BadManifest { .. } | StoreError::ChunkUnavailable { .. } => {
            ErrorCode::BadManifest
        }
        _ => ErrorCode::StorageFailed,
    };
    Response::Rejected {
        id,
        code,
        message: err.to_string(),
    }
}

/// Starts a named worker thread.
pub(crate) fn spawn(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.into()).spawn(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrived(len: usize, offered: &[u8]) -> Body {
        let name = PartName::new("p").unwrap();
        Body::arrived(name, PartHash::of(offered), PartKind::Plain, vec![7; len])
    }

    /// Up to the limit a body is verified as it arrives, its bytes or its mismatch settled;
    /// one byte more and it is left, unverified, to the verifier, which settles it the same
    /// way.
    #[test]
    fn bodies_up_to_the_limit_are_verified_on_arrival_and_larger_ones_later() {
        let limit = VERIFIED_ON_ARRIVAL_MAX;
        for len in [0, 1, limit - 1, limit] {
            let genuine = vec![7; len];
            assert!(
                matches!(arrived(len, &genuine), Body::Verified(Ok(_))),
                "{len}"
            );
            assert!(
                matches!(arrived(len, b"other"), Body::Verified(Err(_))),
                "{len}"
            );
        }
        for len in [limit + 1, 4 * limit] {
            let genuine = vec![7; len];
            let body = arrived(len, &genuine);
            assert!(matches!(body, Body::Unverified { .. }), "{len}");
            assert_eq!(body.verified().unwrap().bytes(), genuine);
            let forged = arrived(len, b"other");
            assert!(matches!(
                forged.verified(),
                Err(StoreError::HashMismatch { .. })
            ));
        }
    }
}
