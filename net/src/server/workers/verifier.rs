//! The verifier: hashes the uploads the loop left unverified (see [`Body::arrived`]) and
//! passes them on to the writer. It runs beside the writer so that hashing the next bodies
//! overlaps the writer's wait for the disk to sync the ones before.

use std::sync::mpsc::{Receiver, Sender};

use super::{Body, Outbox, Upload};

/// Verifies every upload from `unverified` and sends it to the writer, until the loop drops
/// its sender (or the writer is gone). `outbox` only wakes the loop when this thread ends,
/// by a panic too, so that the loop sees at once that the verifier is gone.
pub(crate) fn run_verifier(unverified: Receiver<Upload>, writer: Sender<Upload>, outbox: Outbox) {
    let _wakes_the_loop_on_exit = outbox;
    for mut upload in unverified {
        upload.body = Body::Verified(upload.body.verified());
        if writer.send(upload).is_err() {
            return;
        }
    }
}
