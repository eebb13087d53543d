//! Work a caller has the server do on each newly stored part before the peer is told
//! `Stored`: what `serve --export-dir` needs, so that the file exists (and is synced) when
//! the sender hears that it was kept, as in the example the project grew from.

use storage::{PartName, VerifiedPart};

/// Run by the server's acknowledging thread (`store-acks`), never by the event loop, on the
/// parts of one or more commits that were newly stored, in commit order; the answers to those
/// commits wait until it returns. The parts are durable in the store before it is called.
pub trait BeforeAck: Send + Sync {
    /// Does the work on `parts` (chunks included: `name().is_chunk()` tells them apart) and
    /// returns each part it could not do it for, with the reason. Such a part stays stored;
    /// its peer is answered `Rejected` with
    /// [`ErrorCode::ExportFailed`](crate::message::ErrorCode::ExportFailed) and the reason.
    fn stored(&self, parts: &[&VerifiedPart]) -> Vec<NotDone>;
}

/// A part [`BeforeAck::stored`] could not do its work for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotDone {
    pub name: PartName,
    pub reason: String,
}
